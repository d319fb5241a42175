/*
 * l1_shard.c - one L1 shard: its hash table (l1_table.c) and the S3-FIFO queues
 * (small probationary FIFO, main FIFO with reinsertion, ghost fingerprints).
 *
 * Every function here runs with the shard's mutex held, so it must never allocate,
 * free, block or call out: entries to free go on a graveyard list that the caller
 * frees after unlocking. The bounds are enforced here, before every link.
 */
#define _GNU_SOURCE /* PTHREAD_MUTEX_ADAPTIVE_NP */
#include "l1_internal.h"

#include <stdlib.h>

/* The layout l1_internal.h promises: a fill writes the mutex's line and the one
 * after it, and of the shard's other lines only its own lane's. */
_Static_assert(offsetof(pgcw__l1_shard, main) + sizeof(pgcw__l1_queue) <=
                   offsetof(pgcw__l1_shard, mu) + 128,
               "mutex, small queue, live counts and main queue fill two lines");
_Static_assert(sizeof(pgcw__l1_lane) == 64, "a lane is one line");
#if defined(__GLIBC__) && defined(__x86_64__)
_Static_assert(offsetof(pgcw__l1_shard, small) + offsetof(pgcw__l1_queue, head) ==
                   offsetof(pgcw__l1_shard, mu) + 64,
               "an insert into the small queue writes the mutex's line only");
#endif

/* An entry's share of the hash table (15 slots per 8 entries: 15.2 bytes with the
 * counts) and ghost list (2 bytes), rounded up to what the chained table charged
 * (16) plus the 8-byte link the header lost with it: a slab entry costs exactly what
 * it did with chains, so a max_bytes holds the same entries as before. */
#define TABLE_SHARE 24u

size_t pgcw__l1_cost(size_t klen, size_t vlen, bool ttl)
{
    /* The memory it really occupies plus its share of the tables (above): its slab
     * slot (l1_slab.h), or for a big entry what malloc uses (glibc: 8-byte chunk
     * header, 16-byte granules). */
    /* Saturates rather than wrap: SIZE_MAX is above every bound. */
    if (klen > SIZE_MAX / 4 || vlen > SIZE_MAX / 4)
        return SIZE_MAX;
    size_t req = sizeof(pgcw__l1_entry) + (ttl ? 8 : 0) + klen + vlen;
    size_t slot = pgcw__l1_slot_size(req);
    if (slot)
        return slot + TABLE_SHARE;
    size_t chunk = (req + 8 + 15) & ~(size_t)15;
    if (chunk < 32)
        chunk = 32;
    return chunk + TABLE_SHARE;
}

static size_t entry_cost(const pgcw__l1_shard *s, const pgcw__l1_entry *e)
{
    return s->payload_only ? (size_t)e->klen + e->vlen
                           : pgcw__l1_cost(e->klen, e->vlen, pgcw__l1_has_ttl(e));
}

/* Writers hold a shard for a few hundred nanoseconds: a contended lock is better
 * spun on briefly than slept on (a futex round trip costs microseconds). */
static int init_mutex(pthread_mutex_t *mu)
{
    pthread_mutexattr_t a;
    if (pthread_mutexattr_init(&a) != 0)
        return -1;
#ifdef PTHREAD_ADAPTIVE_MUTEX_INITIALIZER_NP
    (void)pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ADAPTIVE_NP);
#endif
    int rc = pthread_mutex_init(mu, &a);
    pthread_mutexattr_destroy(&a);
    return rc;
}

pgcw_status pgcw__l1_shard_init(pgcw__l1_shard *s, size_t cap_n, size_t cap_bytes,
                                uint64_t seed, void *table, size_t run)
{
    memset(s, 0, sizeof(*s));
    s->seed = seed;
    s->cap_n = cap_n;
    s->cap_bytes = cap_bytes;
    /* cap_n <= UINT32_MAX is checked by pgcw_l1_new(). */
    s->nghost = (uint32_t)cap_n;
    /* A sixteenth of the entries: 16 bytes a slot (l1_internal.h) come to one byte
     * per entry, what four-byte slots for a quarter cost before; keys sharing a slot
     * can only refuse each other's fills, never make one stale. */
    uint32_t g = 64;
    while (g < 65536 && g < cap_n / 16)
        g <<= 1;
    s->gmask = g - 1;
    /* What waits in limbo is memory beyond the bounds (two batches per lane at
     * most): a fixed 64 would let a small shard hold several times its entries. */
    s->retire_batch = cap_n / 16 < 8 ? 8 : cap_n / 16 > 64 ? 64 : (uint32_t)(cap_n / 16);
    pgcw__l1_table_init(&s->table, table, cap_n);
    s->slab.run = run;
    s->ghost = calloc(s->nghost, sizeof(*s->ghost));
    s->gens = calloc(g, sizeof(*s->gens));
    if (!s->ghost || !s->gens || init_mutex(&s->mu) != 0) {
        free(s->ghost);
        free((void *)s->gens);
        return PGCW_ENOMEM;
    }
    return PGCW_OK;
}

void pgcw__l1_shard_destroy(pgcw__l1_shard *s)
{
    pgcw__l1_free_big(s->small.head);
    pgcw__l1_free_big(s->main.head);
    for (unsigned i = 0; i < PGCW__L1_LANES; i++) {
        pgcw__l1_free_big(s->lanes[i].fresh.big);
        pgcw__l1_free_big(s->aged[i].big);
    }
    free(s->ghost);
    free((void *)s->gens);
    pthread_mutex_destroy(&s->mu);
}

pgcw__l1_entry *pgcw__l1_find_past(const pgcw__l1_table *t, const pgcw__l1_probe *p,
                                   const void *key, size_t klen)
{
    uint32_t g = p->group;
    for (uint32_t seen = 1; seen < t->ngroups; seen++) {
        g = pgcw__l1_next_group(t, g);
        pgcw__l1_entry *e = pgcw__l1_find_in(t, g, p, key, klen);
        if (e || atomic_load_explicit(&t->over[g], memory_order_relaxed) == 0)
            return e;
    }
    return NULL;
}

/* Takes e out of the table and the live counts, but does not mark it: for an entry
 * already popped from its queue, which no one will look at again (writing it would
 * cost a line transfer when the other core created it or last read it). */
static void unpublish(pgcw__l1_shard *s, uint64_t h, pgcw__l1_entry *e)
{
    pgcw__l1_table_remove(&s->table, h, e);
    s->live_n--;
    s->live_bytes -= entry_cost(s, e);
}

void pgcw__l1_kill(pgcw__l1_shard *s, uint64_t h, pgcw__l1_entry *e)
{
    unpublish(s, h, e);
    atomic_fetch_or_explicit(&e->flags, PGCW__L1_DEAD, memory_order_relaxed);
}

static void qpush(const pgcw__l1_shard *s, pgcw__l1_queue *q, pgcw__l1_entry *e)
{
    e->qnext = NULL;
    if (q->tail)
        q->tail->qnext = e;
    else
        q->head = e;
    q->tail = e;
    q->n++;
    q->bytes += entry_cost(s, e);
}

static pgcw__l1_entry *qpop(const pgcw__l1_shard *s, pgcw__l1_queue *q)
{
    pgcw__l1_entry *e = q->head;
    q->head = e->qnext;
    if (!q->head)
        q->tail = NULL;
    /* e->qnext is left as it is: every caller overwrites it (push or bury), and
     * storing to a line the other core may hold costs a transfer. */
    q->n--;
    q->bytes -= entry_cost(s, e);
    return e;
}

/* The ghost list is direct-mapped: a slot holds the fingerprint of the last key
 * evicted there. A lost ghost only costs a key one more trip through the small
 * queue; a false match (1 in 65535 per probe) only admits a key to main early. */
static void ghost_slot(const pgcw__l1_shard *s, uint64_t h, uint32_t *idx, uint16_t *fp)
{
    uint64_t g = h * 0x9E3779B97F4A7C15u;
    *idx = pgcw__l1_fastrange((uint32_t)(g >> 32), s->nghost);
    *fp = (uint16_t)((g >> 16) | 1u);
}

static void ghost_add(pgcw__l1_shard *s, uint64_t h)
{
    uint32_t i;
    uint16_t fp;
    ghost_slot(s, h, &i, &fp);
    s->ghost[i] = fp;
}

static bool ghost_take(pgcw__l1_shard *s, uint64_t h)
{
    uint32_t i;
    uint16_t fp;
    ghost_slot(s, h, &i, &fp);
    if (s->ghost[i] != fp)
        return false;
    s->ghost[i] = 0;
    return true;
}

static void bury(pgcw__l1_entry *e, pgcw__l1_entry **graveyard)
{
    e->qnext = *graveyard;
    *graveyard = e;
}

static uint64_t entry_hash(const pgcw__l1_shard *s, const pgcw__l1_entry *e)
{
    return pgcw__l1_hash(s->seed, pgcw__l1_key(e), e->klen);
}

/* Frees held space: reclaims one dead entry or removes one live entry (expired, or
 * evicted by S3-FIFO). Entries with accesses are promoted/reinserted on the way. */
static void evict_one(pgcw__l1_shard *s, pgcw__l1_lane *lane, int64_t now,
                      pgcw__l1_entry **graveyard)
{
    for (;;) {
        bool small_over =
            s->small.n * 10 > s->cap_n || s->small.bytes * 10 > s->cap_bytes;
        bool from_small = s->small.n > 0 && (s->main.n == 0 || small_over);
        pgcw__l1_entry *e = qpop(s, from_small ? &s->small : &s->main);
        if (atomic_load_explicit(&e->flags, memory_order_relaxed) & PGCW__L1_DEAD) {
            bury(e, graveyard);
            return;
        }
        if (pgcw__l1_expiry(e) <= now) {
            unpublish(s, entry_hash(s, e), e);
            s->ct.expirations++;
            bury(e, graveyard);
            return;
        }
        uint8_t f = atomic_load_explicit(&e->freq, memory_order_relaxed);
        if (f > 0) {
            /* Small -> main on any access since insertion; main reinserts. */
            if (from_small) {
                atomic_store_explicit(&e->freq, 0, memory_order_relaxed);
                atomic_fetch_or_explicit(&e->flags, PGCW__L1_MAIN, memory_order_relaxed);
            } else {
                atomic_store_explicit(&e->freq, (uint8_t)(f - 1), memory_order_relaxed);
            }
            qpush(s, &s->main, e);
            continue;
        }
        uint64_t h = entry_hash(s, e);
        if (from_small)
            ghost_add(s, h);
        unpublish(s, h, e);
        lane->evictions++;
        bury(e, graveyard);
        return;
    }
}

/* Removes every dead entry from q in one pass. */
static void compact(const pgcw__l1_shard *s, pgcw__l1_queue *q,
                    pgcw__l1_entry **graveyard)
{
    pgcw__l1_entry **pp = &q->head, *last = NULL;
    while (*pp) {
        pgcw__l1_entry *e = *pp;
        if (atomic_load_explicit(&e->flags, memory_order_relaxed) & PGCW__L1_DEAD) {
            *pp = e->qnext;
            q->n--;
            q->bytes -= entry_cost(s, e);
            bury(e, graveyard);
        } else {
            last = e;
            pp = &e->qnext;
        }
    }
    q->tail = last;
}

/* Removes every dead entry from both queues. */
static void compact_all(pgcw__l1_shard *s, pgcw__l1_entry **graveyard)
{
    compact(s, &s->small, graveyard);
    compact(s, &s->main, graveyard);
}

void pgcw__l1_link(pgcw__l1_shard *s, pgcw__l1_lane *lane, uint64_t h, pgcw__l1_entry *e,
                   size_t cost, bool replaced_main, uint8_t freq, int64_t now,
                   pgcw__l1_entry **graveyard)
{
    bool compacted = false;
    /* Removed entries outnumber the live ones and are an eighth of the bound:
     * reclaim them now rather than when the shard is full, so a cache holding few
     * live entries does not keep its whole bound's worth of memory in dead ones. A
     * pass frees at least half of what it visits; the live entries keep their
     * places, so hits are the same. */
    size_t dead_n = s->small.n + s->main.n - s->live_n;
    if (dead_n >= s->live_n && dead_n * 8 >= s->cap_n) { /* cap_n >= 1: dead_n > 0 */
        compact_all(s, graveyard);
        compacted = true;
    }
    while (s->small.n + s->main.n > 0 &&
           (s->small.n + s->main.n + 1 > s->cap_n ||
            s->small.bytes + s->main.bytes + cost > s->cap_bytes)) {
        size_t held_n = s->small.n + s->main.n;
        size_t held_b = s->small.bytes + s->main.bytes;
        /* Full, but an eighth of it is removed entries waiting in the queues:
         * reclaim them all rather than evict live ones. A pass frees at least an
         * eighth of what it visits, so its cost is amortized O(1) per removal.
         * (Measured against removing them at once: 1/2 loses 1.8 points of
         * hit ratio, 1/4 1.4, 1/8 0.6; see docs/l1.md.) */
        if (!compacted && ((held_n - s->live_n) * 8 >= held_n ||
                           (held_b - s->live_bytes) * 8 >= held_b)) {
            compact_all(s, graveyard);
            compacted = true;
            continue;
        }
        evict_one(s, lane, now, graveyard);
    }
    bool to_main = ghost_take(s, h) || replaced_main;
    atomic_store_explicit(&e->freq, freq, memory_order_relaxed);
    uint8_t fl = atomic_load_explicit(&e->flags, memory_order_relaxed) & PGCW__L1_TTL;
    atomic_store_explicit(&e->flags, (uint8_t)(fl | (to_main ? PGCW__L1_MAIN : 0)),
                          memory_order_relaxed);
    /* Publishes the entry: its key, value and header are complete before this. */
    pgcw__l1_table_insert(&s->table, h, e);
    qpush(s, to_main ? &s->main : &s->small, e);
    s->live_n++;
    s->live_bytes += cost;
}

static void move_all(const pgcw__l1_shard *s, pgcw__l1_queue *q,
                     pgcw__l1_entry **graveyard)
{
    while (q->head)
        bury(qpop(s, q), graveyard);
}

void pgcw__l1_shard_clear(pgcw__l1_shard *s, pgcw__l1_entry **graveyard)
{
    move_all(s, &s->small, graveyard);
    move_all(s, &s->main, graveyard);
    /* Entries already waiting for readers go with them: the caller waits once. */
    for (unsigned i = 0; i < 2 * PGCW__L1_LANES; i++) {
        pgcw__l1_limbo *lb =
            i < PGCW__L1_LANES ? &s->lanes[i].fresh : &s->aged[i - PGCW__L1_LANES];
        pgcw__l1_entry *l[2] = {lb->head, lb->big};
        for (int k = 0; k < 2; k++)
            while (l[k]) {
                pgcw__l1_entry *e = l[k];
                l[k] = e->qnext;
                bury(e, graveyard);
            }
        *lb = (pgcw__l1_limbo){0};
    }
    pgcw__l1_table_clear(&s->table);
    memset(s->ghost, 0, (size_t)s->nghost * sizeof(*s->ghost));
    s->live_n = 0;
    s->live_bytes = 0;
}
