/*
 * l1.c - the L1 cache's public API: options and sharding, get/set, fill tickets,
 * versions, clear, statistics.
 *
 * The rule every function follows: read the clock and hash before locking the key's
 * shard; free what was removed after unlocking (through l1_reclaim.c, since a
 * lock-free reader may still be copying it). Under the lock there is only table and
 * queue work (l1_shard.c) and, for an entry of up to 512 bytes, taking a slot from
 * the shard's slab and copying key and value into it (l1_slab.c: pointer work; when
 * the slab needs memory the writer unlocks, gets it and starts over). Big entries
 * are malloc'ed and built before locking. A hit takes no lock at all. Never prints.
 */
#define _POSIX_C_SOURCE 200809L
#include "l1_internal.h"

#include <stdlib.h>

#include "core_abi.h"
#include "core_util.h"

#define DEFAULT_MAX_ENTRIES 10000u
#define DEFAULT_MAX_BYTES ((size_t)64 << 20)
#define DEFAULT_SHARDS 16u
#define MIN_SHARD_ENTRIES 64u
#define MIN_SHARD_BYTES 4096u

static int64_t mono_clock(void *ctx)
{
    (void)ctx;
    return pgcw__mono_us();
}

size_t pgcw_l1_entry_cost(size_t key_len, size_t value_len, bool ttl)
{
    return pgcw__l1_cost(key_len, value_len, ttl);
}

pgcw_status pgcw_l1_new_sized(const pgcw_l1_opts *opts, size_t opts_size, pgcw_l1 **out)
{
    if (!out)
        return PGCW_EINVAL;
    *out = NULL;
    pgcw_l1_opts o;
    if (pgcw__opts_copy(&o, sizeof o, opts, opts_size) != PGCW_OK)
        return PGCW_EINVAL;
    size_t max_n = o.max_entries ? o.max_entries : DEFAULT_MAX_ENTRIES;
    size_t max_b = o.max_bytes ? o.max_bytes : DEFAULT_MAX_BYTES;
    unsigned n = 1;
    unsigned want = o.shards ? o.shards : DEFAULT_SHARDS;
    while (n * 2 <= want && n < (1u << 16))
        n *= 2;
    while (n > 1 && (max_n / n < MIN_SHARD_ENTRIES || max_b / n < MIN_SHARD_BYTES))
        n /= 2;
    if (max_n / n + 1 > UINT32_MAX)
        return PGCW_EINVAL;

    pgcw_l1 *c = aligned_alloc(64, sizeof(*c)); /* its counters own cache lines */
    if (!c)
        return PGCW_ENOMEM;
    memset(c, 0, sizeof(*c));
    /* Every shard's hash table in one region, each on its own cache lines: a big
     * region is huge-page advised, so a cold get's group load rarely pays a TLB
     * miss (l1_slab.c). */
    size_t tb = 0;
    for (unsigned i = 0; i < n; i++)
        tb += pgcw__l1_table_bytes(max_n / n + (i < max_n % n));
    size_t expected = max_n * 96 < max_b ? max_n * 96 : max_b;
    c->shards = aligned_alloc(64, n * sizeof(*c->shards));
    c->readers = aligned_alloc(64, PGCW__L1_READERS * sizeof(*c->readers));
    c->tables = pgcw__l1_table_alloc(tb);
    c->tables_bytes = tb;
    if (!c->shards || !c->readers || !c->tables ||
        pgcw__l1_pool_init(&c->pool, expected) != 0) {
        free(c->shards);
        free(c->readers);
        pgcw__l1_table_free(c->tables, tb);
        free(c);
        return PGCW_ENOMEM;
    }
    for (unsigned i = 0; i < PGCW__L1_READERS; i++) {
        atomic_init(&c->readers[i].epoch, 0);
        atomic_init(&c->readers[i].hits, 0);
        atomic_init(&c->readers[i].misses, 0);
    }
    atomic_init(&c->gepoch, 1);
    c->nshards = n;
    unsigned bits = 0;
    while ((1u << bits) < n)
        bits++;
    c->shard_shift = 64 - bits;
    c->max_entries = max_n;
    c->max_bytes = max_b;
    c->default_ttl_us = o.default_ttl_us > 0 ? o.default_ttl_us : 0;
    c->clock = o.clock ? o.clock : mono_clock;
    c->clock_ctx = o.clock ? o.clock_ctx : NULL;
    atomic_init(&c->epoch, 0);
    atomic_init(&c->ttl_seen, false);
    c->seed = pgcw__l1_hash((uint64_t)pgcw__mono_us(), &c, sizeof(c));
    unsigned char *bk = c->tables;
    for (unsigned i = 0; i < n; i++) {
        size_t cn = max_n / n + (i < max_n % n);
        size_t cb = max_b / n + (i < max_b % n);
        if (pgcw__l1_shard_init(&c->shards[i], cn, cb, c->seed, bk,
                                pgcw__l1_pool_run(&c->pool)) != PGCW_OK) {
            for (unsigned j = 0; j < i; j++)
                pgcw__l1_shard_destroy(&c->shards[j]);
            pgcw__l1_pool_destroy(&c->pool);
            pgcw__l1_table_free(c->tables, tb);
            free(c->shards);
            free(c->readers);
            free(c);
            return PGCW_ENOMEM;
        }
        c->shards[i].payload_only = o.charge_payload_only;
        bk += pgcw__l1_table_bytes(cn);
    }
    *out = c;
    return PGCW_OK;
}

void pgcw_l1_free(pgcw_l1 *c)
{
    if (!c)
        return;
    for (unsigned i = 0; i < c->nshards; i++)
        pgcw__l1_shard_destroy(&c->shards[i]);
    pgcw__l1_pool_destroy(&c->pool);
    pgcw__l1_table_free(c->tables, c->tables_bytes);
    free(c->shards);
    free(c->readers);
    free(c);
}

size_t pgcw__l1_mapped_bytes(pgcw_l1 *c)
{
    pthread_mutex_lock(&c->pool.mu);
    size_t m = c->pool.mapped;
    pthread_mutex_unlock(&c->pool.mu);
    return m + pgcw__l1_table_mapped(c->tables_bytes);
}

/* Returns entries of any kind that no reader can reach any more to s's slab
 * (malloc'ed ones to malloc); for clear. Called unlocked: the walk over cold entries
 * runs without the lock, which is then held only to splice one list per size class. */
static void release(pgcw__l1_shard *s, pgcw__l1_entry *e)
{
    if (!e)
        return;
    pgcw__l1_sorted sorted;
    pgcw__l1_slab_sort(e, &sorted);
    if (!sorted.any)
        return;
    pthread_mutex_lock(&s->mu);
    pgcw__l1_slab_splice(&s->slab, &sorted);
    pthread_mutex_unlock(&s->mu);
}

static pgcw__l1_gen *gen_of(pgcw__l1_shard *s, uint64_t h)
{
    return &s->gens[(h >> 32) & s->gmask];
}

uint64_t pgcw__l1_gen_slot(pgcw_l1 *c, const void *key, size_t key_len)
{
    uint64_t h = pgcw__l1_hash(c->seed, key, key_len);
    pgcw__l1_shard *s = pgcw__l1_shard_of(c, h);
    return (uint64_t)(s - c->shards) * ((uint64_t)s->gmask + 1) + ((h >> 32) & s->gmask);
}

/*
 * Locks s and returns key's live entry (NULL if absent). An expired entry is
 * removed (counted) and reported absent. The clock is read before locking when a
 * TTL has ever been used; if a TTL'd entry shows up without a clock reading (the
 * first TTL raced with us), unlock, read the clock and look again, so the clock is
 * never called under the lock. Returns with s->mu held.
 */
static pgcw__l1_entry *lock_find(pgcw_l1 *c, pgcw__l1_shard *s, uint64_t h,
                                 const void *key, size_t klen)
{
    bool have_now = atomic_load_explicit(&c->ttl_seen, memory_order_acquire);
    int64_t now = have_now ? c->clock(c->clock_ctx) : 0;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        pgcw__l1_entry *e = pgcw__l1_find(s, h, key, klen);
        if (!e || !pgcw__l1_has_ttl(e))
            return e;
        if (!have_now) {
            pthread_mutex_unlock(&s->mu);
            now = c->clock(c->clock_ctx);
            have_now = true;
            continue;
        }
        if (pgcw__l1_expiry(e) > now)
            return e;
        pgcw__l1_kill(s, h, e);
        s->ct.expirations++;
        return NULL;
    }
}

static bool key_ok(const void *key, size_t klen)
{
    return key || klen == 0;
}

/* Copies n bytes; values of 8 to 32 bytes in two overlapping fixed-size copies the
 * compiler inlines, instead of a call to memcpy (which was 11 of a hit's
 * instructions plus the call). */
static inline void copy_value(unsigned char *dst, const unsigned char *src, size_t n)
{
    if (n >= 16 && n <= 32) {
        memcpy(dst, src, 16);
        memcpy(dst + n - 16, src + n - 16, 16);
    } else if (n >= 8 && n < 16) {
        memcpy(dst, src, 8);
        memcpy(dst + n - 8, src + n - 8, 8);
    } else if (n) {
        memcpy(dst, src, n);
    }
}

/* A hit's copy-out, shared by the locked and the lock-free get: reports the length,
 * copies the value if buf can hold it, and counts the access for S3-FIFO. The
 * caller holds the shard lock or is inside a read section. Inline: it is a third
 * of a hit. */
static inline pgcw_status copy_out(pgcw__l1_entry *e, void *buf, size_t buf_len,
                                   size_t *value_len, int64_t *version)
{
    *value_len = e->vlen;
    if (e->vlen > buf_len)
        return PGCW_ETOOBIG;
    copy_value(buf, pgcw__l1_val(e), e->vlen);
    if (version)
        *version = e->version;
    /* A lost increment between two lock-free readers only costs an access count. */
    uint8_t f = atomic_load_explicit(&e->freq, memory_order_relaxed);
    if (f < 3)
        atomic_store_explicit(&e->freq, (uint8_t)(f + 1), memory_order_relaxed);
    return PGCW_OK;
}

/* The get of threads without a reader slot, and of hits that need a closer look
 * (a TTL'd entry: expired, or no clock reading yet). */
static pgcw_status get_locked(pgcw_l1 *c, uint64_t h, const void *key, size_t key_len,
                              void *buf, size_t buf_len, size_t *value_len,
                              int64_t *version)
{
    pgcw__l1_shard *s = pgcw__l1_shard_of(c, h);
    pgcw__l1_entry *e = lock_find(c, s, h, key, key_len);
    if (!e) {
        s->ct.misses++;
        pthread_mutex_unlock(&s->mu);
        return PGCW_ENOTFOUND;
    }
    pgcw_status st = copy_out(e, buf, buf_len, value_len, version);
    if (st == PGCW_OK)
        s->ct.hits++;
    pthread_mutex_unlock(&s->mu);
    return st;
}

/* Only this thread writes its reader's counters: no read-modify-write needed. */
static void bump(_Atomic uint64_t *ctr)
{
    atomic_store_explicit(ctr, atomic_load_explicit(ctr, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

pgcw_status pgcw_l1_get(pgcw_l1 *c, const void *key, size_t key_len, void *buf,
                        size_t buf_len, size_t *value_len, int64_t *version)
{
    if (!c || !value_len || !key_ok(key, key_len) || (!buf && buf_len))
        return PGCW_EINVAL;
    if (key_len > PGCW_L1_MAX_KEY) /* never stored; and not hashed for nothing */
        return PGCW_ENOTFOUND;
    uint64_t h = pgcw__l1_hash(c->seed, key, key_len);
    int slot = pgcw__l1_reader_slot();
    if (slot < 0)
        return get_locked(c, h, key, key_len, buf, buf_len, value_len, version);
    pgcw__l1_reader *r = &c->readers[slot];
    bool have_now = atomic_load_explicit(&c->ttl_seen, memory_order_acquire);
    int64_t now = have_now ? c->clock(c->clock_ctx) : 0;
    pgcw__l1_read_enter(c, r);
    pgcw__l1_entry *e = pgcw__l1_find(pgcw__l1_shard_of(c, h), h, key, key_len);
    if (!e) {
        pgcw__l1_read_leave(r);
        bump(&r->misses);
        return PGCW_ENOTFOUND;
    }
    if (pgcw__l1_has_ttl(e) && (!have_now || pgcw__l1_expiry(e) <= now)) {
        pgcw__l1_read_leave(r);
        return get_locked(c, h, key, key_len, buf, buf_len, value_len, version);
    }
    pgcw_status st = copy_out(e, buf, buf_len, value_len, version);
    pgcw__l1_read_leave(r);
    if (st == PGCW_OK)
        bump(&r->hits);
    return st;
}

pgcw_status pgcw_l1_get_dup(pgcw_l1 *c, const void *key, size_t key_len, void **value,
                            size_t *value_len, int64_t *version)
{
    if (!value || !value_len)
        return PGCW_EINVAL;
    *value = NULL;
    unsigned char small[256];
    size_t len = 0;
    pgcw_status st = pgcw_l1_get(c, key, key_len, small, sizeof(small), &len, version);
    if (st == PGCW_OK) {
        unsigned char *p = malloc(len + 1);
        if (!p)
            return PGCW_ENOMEM;
        memcpy(p, small, len);
        p[len] = 0;
        *value = p;
        *value_len = len;
        return PGCW_OK;
    }
    /* Too big for the stack: allocate what it needs (outside the lock) and retry;
     * the value may grow in between, hence the loop. */
    unsigned char *p = NULL;
    while (st == PGCW_ETOOBIG) {
        size_t need = len;
        unsigned char *np = realloc(p, need + 1);
        if (!np) {
            free(p);
            return PGCW_ENOMEM;
        }
        p = np;
        st = pgcw_l1_get(c, key, key_len, p, need, &len, version);
    }
    if (st != PGCW_OK) {
        free(p);
        return st;
    }
    p[len] = 0;
    *value = p;
    *value_len = len;
    return PGCW_OK;
}

/* Everything a store (set or fill) prepares before taking the lock. */
typedef struct prepared {
    uint64_t h;
    pgcw__l1_shard *s;
    pgcw__l1_entry *e; /* built; NULL until a slab slot is taken under the lock */
    size_t cost;
    size_t slot; /* the entry's slab slot size, 0 if it is malloc'ed */
    int64_t now; /* INT64_MIN when unknown: nothing is then treated as expired */
    int64_t exp; /* expiry if has_ttl */
    bool has_ttl;
    const void *key, *value;
    size_t klen, vlen;
    int64_t version;
    unsigned lane; /* the writing thread's (pgcw__l1_lane) */
} prepared;

/* Writes the entry p describes into mem. */
static pgcw__l1_entry *build(const prepared *p, void *mem)
{
    pgcw__l1_entry *e = mem;
    size_t hdr = sizeof(pgcw__l1_entry) + (p->has_ttl ? sizeof(int64_t) : 0);
    e->qnext = NULL;
    e->version = p->version;
    e->vlen = (uint32_t)p->vlen;
    e->klen = (uint16_t)p->klen;
    atomic_init(&e->freq, 0);
    atomic_init(&e->flags, p->has_ttl ? PGCW__L1_TTL : 0);
    if (p->has_ttl)
        memcpy((unsigned char *)e + sizeof(*e), &p->exp, sizeof(p->exp));
    if (p->klen)
        memcpy((unsigned char *)e + hdr, p->key, p->klen);
    if (p->vlen)
        memcpy((unsigned char *)e + hdr + p->klen, p->value, p->vlen);
    return e;
}

static pgcw_status prepare(pgcw_l1 *c, const void *key, size_t klen, const void *value,
                           size_t vlen, int64_t version, int64_t ttl_us, prepared *p)
{
    if (!c || !key_ok(key, klen) || (!value && vlen) || ttl_us < PGCW_L1_TTL_NONE)
        return PGCW_EINVAL;
    /* Lengths first: a 4 GiB key would take seconds to hash only to be refused. */
    if (klen > PGCW_L1_MAX_KEY || vlen > UINT32_MAX)
        return PGCW_ETOOBIG;
    p->h = pgcw__l1_hash(c->seed, key, klen);
    p->s = pgcw__l1_shard_of(c, p->h);
    p->e = NULL;
    int64_t ttl = ttl_us == PGCW_L1_TTL_DEFAULT ? c->default_ttl_us : ttl_us;
    p->has_ttl = ttl > 0;
    p->cost = p->s->payload_only ? klen + vlen : pgcw__l1_cost(klen, vlen, p->has_ttl);
    if (p->cost > p->s->cap_bytes)
        return PGCW_ETOOBIG;
    if (p->has_ttl && !atomic_load_explicit(&c->ttl_seen, memory_order_relaxed))
        atomic_store_explicit(&c->ttl_seen, true, memory_order_release);
    p->now = p->has_ttl || atomic_load_explicit(&c->ttl_seen, memory_order_acquire)
                 ? c->clock(c->clock_ctx)
                 : INT64_MIN;
    p->exp = p->has_ttl ? (p->now > INT64_MAX - ttl ? INT64_MAX : p->now + ttl) : 0;
    p->key = key;
    p->klen = klen;
    p->value = value;
    p->vlen = vlen;
    p->version = version;
    p->lane = pgcw__l1_lane_of_thread();
    size_t size =
        sizeof(pgcw__l1_entry) + (p->has_ttl ? sizeof(int64_t) : 0) + klen + vlen;
    p->slot = pgcw__l1_slot_size(size);
    if (p->slot)
        return PGCW_OK; /* carved under the lock: pointer work, no call out */
    void *mem = malloc(size);
    if (mem && !pgcw__l1_addr_fits((unsigned char *)mem + size - 1)) {
        free(mem);
        mem = NULL;
    }
    if (!mem)
        return PGCW_ENOMEM;
    p->e = build(p, mem);
    return PGCW_OK;
}

/* With p->s locked: makes p->e ready. False if the shard's slab needs a run: then
 * the caller unlocks, calls refill() and starts over. */
static bool take_slot(prepared *p)
{
    if (p->e)
        return true;
    /* The lane's own released slots first (the likeliest on this core), then any
     * other lane's before carving new memory, so no lane's slots are stranded. */
    pgcw__l1_lane *ln = p->s->lanes;
    void *mem = pgcw__l1_slab_alloc(&p->s->slab, &ln[p->lane].released, p->slot, false);
    for (unsigned i = 1; !mem && i < PGCW__L1_LANES; i++)
        mem = pgcw__l1_slab_alloc(
            &p->s->slab, &ln[(p->lane + i) % PGCW__L1_LANES].released, p->slot, false);
    if (!mem)
        mem = pgcw__l1_slab_alloc(&p->s->slab, &ln[p->lane].released, p->slot, true);
    if (!mem)
        return false;
    p->e = build(p, mem);
    return true;
}

/* Unlocked: gives p's shard a run from the pool (mapping memory if needed). */
static pgcw_status refill(pgcw_l1 *c, pgcw__l1_shard *s)
{
    unsigned char *run = pgcw__l1_pool_take(&c->pool);
    if (!run)
        return PGCW_ENOMEM;
    pthread_mutex_lock(&s->mu);
    bool added = pgcw__l1_slab_add(&s->slab, run);
    pthread_mutex_unlock(&s->mu);
    if (!added) /* another writer refilled meanwhile */
        pgcw__l1_pool_give(&c->pool, run);
    return PGCW_OK;
}

/* Puts p->e in place of `old` (NULL: none). Entries never change once published
 * (readers copy them without a lock), so the new entry replaces the old one and
 * inherits its queue and access count. Called locked. */
static void store_locked(prepared *p, pgcw__l1_entry *old, pgcw__l1_entry **graveyard)
{
    pgcw__l1_shard *s = p->s;
    s->lanes[p->lane].inserts++;
    bool was_main = false;
    uint8_t freq = 0;
    if (old) {
        was_main = (atomic_load_explicit(&old->flags, memory_order_relaxed) &
                    PGCW__L1_MAIN) != 0;
        freq = atomic_load_explicit(&old->freq, memory_order_relaxed);
        pgcw__l1_kill(s, p->h, old);
    }
    pgcw__l1_link(s, &s->lanes[p->lane], p->h, p->e, p->cost, was_main, freq, p->now,
                  graveyard);
}

/* Unlocks s after handing what was unlinked to the reclaimer (which gives slab
 * entries readers can no longer see back to the slab); frees the malloc'ed ones. */
static void unlock_retire(pgcw_l1 *c, const prepared *p, pgcw__l1_entry *graveyard)
{
    pgcw__l1_shard *s = p->s;
    pgcw__l1_entry *to_free;
    pgcw__l1_retire(c, s, p->lane, graveyard, &to_free);
    pthread_mutex_unlock(&s->mu);
    pgcw__l1_free_big(to_free);
}

/* Removes key's entry (if any) after a store was refused as too big. */
static void drop_key(pgcw_l1 *c, const void *key, size_t klen)
{
    if (klen > PGCW_L1_MAX_KEY)
        return;
    (void)pgcw_l1_delete(c, key, klen);
}

pgcw_status pgcw_l1_set(pgcw_l1 *c, const void *key, size_t key_len, const void *value,
                        size_t value_len, int64_t version, int64_t ttl_us)
{
    prepared p;
    pgcw_status st = prepare(c, key, key_len, value, value_len, version, ttl_us, &p);
    if (st == PGCW_ETOOBIG)
        drop_key(c, key, key_len);
    if (st != PGCW_OK)
        return st;
    pgcw__l1_entry *graveyard = NULL;
    for (;;) {
        pthread_mutex_lock(&p.s->mu);
        if (take_slot(&p))
            break;
        pthread_mutex_unlock(&p.s->mu);
        if ((st = refill(c, p.s)) != PGCW_OK)
            return st;
    }
    pgcw__l1_entry *old = pgcw__l1_find(p.s, p.h, key, key_len);
    atomic_fetch_add_explicit(&gen_of(p.s, p.h)->hard, 1, memory_order_release);
    store_locked(&p, old, &graveyard);
    unlock_retire(c, &p, graveyard);
    return PGCW_OK;
}

void pgcw_l1_ticket_take(pgcw_l1 *c, const void *key, size_t key_len,
                         pgcw_l1_ticket *ticket)
{
    if (key_len > PGCW_L1_MAX_KEY) { /* its fill is refused as too big anyway */
        *ticket = (pgcw_l1_ticket){{0, 0, 0}};
        return;
    }
    uint64_t h = pgcw__l1_hash(c->seed, key, key_len);
    pgcw__l1_shard *s = pgcw__l1_shard_of(c, h);
    ticket->priv_[0] = atomic_load_explicit(&c->epoch, memory_order_acquire);
    ticket->priv_[1] = h;
    pgcw__l1_gen *g = gen_of(s, h);
    uint64_t hard = atomic_load_explicit(&g->hard, memory_order_acquire);
    uint64_t soft = atomic_load_explicit(&g->soft, memory_order_acquire);
    ticket->priv_[2] = hard | soft << 32;
}

pgcw_status pgcw_l1_fill(pgcw_l1 *c, const pgcw_l1_ticket *ticket, const void *key,
                         size_t key_len, const void *value, size_t value_len,
                         int64_t version, int64_t ttl_us, bool *stored)
{
    if (stored)
        *stored = false;
    if (!c || !ticket || !key_ok(key, key_len))
        return PGCW_EINVAL;
    if (key_len > PGCW_L1_MAX_KEY)
        return PGCW_ETOOBIG;
    if (ticket->priv_[1] != pgcw__l1_hash(c->seed, key, key_len))
        return PGCW_EINVAL;
    prepared p;
    pgcw_status st = prepare(c, key, key_len, value, value_len, version, ttl_us, &p);
    if (st != PGCW_OK)
        return st;
    pgcw__l1_entry *graveyard = NULL;
    pgcw__l1_entry *old;
    for (;;) {
        old = lock_find(c, p.s, p.h, key, key_len);
        /* Under the shard lock, which every generation change holds too. An
         * invalidation since the ticket refuses the fill only if it may have been
         * of a newer version than the fill's (the slot's highest ever is above it):
         * a writer's own notification, arriving before its fill, does not. */
        pgcw__l1_gen *g = gen_of(p.s, p.h);
        uint32_t hard = atomic_load_explicit(&g->hard, memory_order_relaxed);
        uint32_t soft = atomic_load_explicit(&g->soft, memory_order_relaxed);
        bool fresh =
            atomic_load_explicit(&c->epoch, memory_order_acquire) == ticket->priv_[0] &&
            hard == (uint32_t)ticket->priv_[2] &&
            (soft == (uint32_t)(ticket->priv_[2] >> 32) ||
             atomic_load_explicit(&g->inv_max, memory_order_relaxed) <= version);
        if (!fresh || (old && old->version > version)) {
            p.s->ct.refused++;
            pthread_mutex_unlock(&p.s->mu);
            free(p.e); /* never published; NULL unless malloc'ed */
            return PGCW_OK;
        }
        /* A slab slot is taken only once the fill is known to be kept. */
        if (take_slot(&p))
            break;
        pthread_mutex_unlock(&p.s->mu);
        if ((st = refill(c, p.s)) != PGCW_OK)
            return st;
    }
    store_locked(&p, old, &graveyard);
    if (stored)
        *stored = true;
    unlock_retire(c, &p, graveyard);
    return PGCW_OK;
}

typedef enum removal { BY_INVALIDATE, BY_DELETE } removal;

static pgcw_status remove_key(pgcw_l1 *c, const void *key, size_t klen, int64_t version,
                              removal how)
{
    if (!c || !key_ok(key, klen))
        return PGCW_EINVAL;
    if (klen > PGCW_L1_MAX_KEY) /* never stored, and no fill of it can succeed */
        return PGCW_ENOTFOUND;
    uint64_t h = pgcw__l1_hash(c->seed, key, klen);
    pgcw__l1_shard *s = pgcw__l1_shard_of(c, h);
    pgcw__l1_entry *e = lock_find(c, s, h, key, klen);
    pgcw__l1_gen *g = gen_of(s, h);
    if (how == BY_DELETE) {
        atomic_fetch_add_explicit(&g->hard, 1, memory_order_release);
    } else {
        if (atomic_load_explicit(&g->inv_max, memory_order_relaxed) < version)
            atomic_store_explicit(&g->inv_max, version, memory_order_relaxed);
        atomic_fetch_add_explicit(&g->soft, 1, memory_order_release);
    }
    pgcw_status st = PGCW_ENOTFOUND;
    if (e && (how == BY_DELETE || e->version < version)) {
        pgcw__l1_kill(s, h, e);
        if (how == BY_DELETE)
            s->ct.deletes++;
        else
            s->ct.invalidations++;
        st = PGCW_OK;
    }
    pthread_mutex_unlock(&s->mu);
    return st;
}

pgcw_status pgcw_l1_invalidate(pgcw_l1 *c, const void *key, size_t key_len,
                               int64_t version)
{
    return remove_key(c, key, key_len, version, BY_INVALIDATE);
}

pgcw_status pgcw_l1_delete(pgcw_l1 *c, const void *key, size_t key_len)
{
    return remove_key(c, key, key_len, 0, BY_DELETE);
}

void pgcw_l1_clear(pgcw_l1 *c)
{
    if (!c)
        return;
    /* Bump first: a fill that checks the epoch before this is inserted before its
     * shard is swept below (it holds the shard lock), so the sweep removes it. */
    atomic_fetch_add_explicit(&c->epoch, 1, memory_order_acq_rel);
    for (unsigned i = 0; i < c->nshards; i++) {
        pgcw__l1_shard *s = &c->shards[i];
        pgcw__l1_entry *graveyard = NULL;
        pthread_mutex_lock(&s->mu);
        pgcw__l1_shard_clear(s, &graveyard);
        pthread_mutex_unlock(&s->mu);
        /* Readers may still be copying what we unlinked: wait them out (no lock
         * held; reads take nanoseconds), then give the slots back to this shard. */
        pgcw__l1_synchronize(c);
        release(s, graveyard);
    }
}

uint64_t pgcw_l1_epoch(pgcw_l1 *c)
{
    return c ? atomic_load_explicit(&c->epoch, memory_order_acquire) : 0;
}

void pgcw_l1_stats_get_sized(pgcw_l1 *c, pgcw_l1_stats *dst, size_t dst_size)
{
    if (!dst)
        return;
    pgcw_l1_stats st = {0}, *out = &st;
    if (!c) {
        pgcw__stats_copy(dst, dst_size, &st, sizeof st);
        return;
    }
    for (unsigned i = 0; i < c->nshards; i++) {
        pgcw__l1_shard *s = &c->shards[i];
        pthread_mutex_lock(&s->mu);
        out->hits += s->ct.hits;
        out->misses += s->ct.misses;
        for (unsigned k = 0; k < PGCW__L1_LANES; k++) {
            out->inserts += s->lanes[k].inserts;
            out->evictions += s->lanes[k].evictions;
        }
        out->refused_fills += s->ct.refused;
        out->expirations += s->ct.expirations;
        out->invalidations += s->ct.invalidations;
        out->deletes += s->ct.deletes;
        out->entries += s->live_n;
        out->bytes += s->live_bytes;
        out->held_entries += s->small.n + s->main.n;
        out->held_bytes += s->small.bytes + s->main.bytes;
        pthread_mutex_unlock(&s->mu);
    }
    for (unsigned i = 0; i < PGCW__L1_READERS; i++) {
        out->hits += atomic_load_explicit(&c->readers[i].hits, memory_order_relaxed);
        out->misses += atomic_load_explicit(&c->readers[i].misses, memory_order_relaxed);
    }
    out->clears = atomic_load_explicit(&c->epoch, memory_order_acquire);
    out->max_entries = c->max_entries;
    out->max_bytes = c->max_bytes;
    out->shards = c->nshards;
    pgcw__stats_copy(dst, dst_size, &st, sizeof st);
}
