/*
 * l1_internal.h - the L1 cache's private layout shared by l1.c (API, tickets,
 * stats), l1_shard.c (hash table + S3-FIFO policy), l1_reclaim.c (lock-free reads,
 * deferred frees) and the tests.
 *
 * Concurrency: writers hold the shard's mutex; readers (hits) take no lock. They
 * load the table's slots with acquire loads (l1_table.h) and copy out of entries
 * whose key, value, version and expiry never change once published, so an update
 * always publishes a new entry. An entry removed from the table is freed only after
 * every reader that might still hold it has left (epoch-based reclamation,
 * l1_reclaim.c). Nothing here allocates, frees or calls out while a shard is locked.
 */
#ifndef PGCW_L1_INTERNAL_H
#define PGCW_L1_INTERNAL_H

#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "l1_hash.h"
#include "l1_slab.h"
#include "l1_table.h"
#include "pgcachewatch/l1.h"

/* Entry flags. */
#define PGCW__L1_MAIN 0x01u /* in the main queue (else the small one) */
#define PGCW__L1_TTL 0x02u  /* an int64 expiry follows the header */
#define PGCW__L1_DEAD 0x04u /* unlinked from the table, waiting in its queue */

/*
 * One allocation per entry: this 24-byte header, the expiry (only if TTL), the
 * key, the value. The queues are singly linked (S3-FIFO only pops heads and pushes
 * tails); a removed entry is taken out of the table at once and marked DEAD, and
 * its memory is reclaimed when its queue reaches it. That saves a back pointer per
 * entry, and the bounds count such entries until they are reclaimed. (No hash-chain
 * link: the table's slots point at entries, l1_table.h.)
 */
typedef struct pgcw__l1_entry {
    struct pgcw__l1_entry *qnext; /* FIFO queue, or a to-free list (writers only) */
    int64_t version;
    uint32_t vlen;
    uint16_t klen;
    _Atomic uint8_t freq;  /* S3-FIFO access count, 0..3; readers bump it */
    _Atomic uint8_t flags; /* PGCW__L1_*; readers only test PGCW__L1_TTL */
} pgcw__l1_entry;

static inline bool pgcw__l1_has_ttl(const pgcw__l1_entry *e)
{
    return (atomic_load_explicit(&e->flags, memory_order_relaxed) & PGCW__L1_TTL) != 0;
}
static inline size_t pgcw__l1_hdr(const pgcw__l1_entry *e)
{
    return sizeof(*e) + (pgcw__l1_has_ttl(e) ? sizeof(int64_t) : 0);
}
static inline const unsigned char *pgcw__l1_key(const pgcw__l1_entry *e)
{
    return (const unsigned char *)e + pgcw__l1_hdr(e);
}
static inline const unsigned char *pgcw__l1_val(const pgcw__l1_entry *e)
{
    return pgcw__l1_key(e) + e->klen;
}
static inline int64_t pgcw__l1_expiry(const pgcw__l1_entry *e)
{
    int64_t t = INT64_MAX;
    if (pgcw__l1_has_ttl(e))
        memcpy(&t, (const unsigned char *)e + sizeof(*e), sizeof(t));
    return t;
}

typedef struct pgcw__l1_queue {
    pgcw__l1_entry *tail; /* first: what an insert writes shares the mutex's line */
    size_t n, bytes;      /* including DEAD entries */
    pgcw__l1_entry *head;
} pgcw__l1_queue;

/* The counters a fill does not bump (inserts and evictions are in the writer's
 * lane, pgcw__l1_lane). */
typedef struct pgcw__l1_counters {
    uint64_t expirations, hits, misses, refused, invalidations, deletes;
} pgcw__l1_counters;

/* Entries waiting to be freed: slab entries on head..tail, malloc'ed ones on big
 * (sorted so at retire time, while the retiring core has their headers in its
 * cache, so that freeing the batch later touches none of them), and the global
 * epoch when the last member was added (every member was unlinked before that). */
typedef struct pgcw__l1_limbo {
    pgcw__l1_entry *head, *tail, *big;
    size_t n;
    uint64_t tag;
} pgcw__l1_limbo;

/*
 * What the writers of one lane (threads whose reader slot is the lane's number
 * modulo PGCW__L1_LANES) keep in a shard, on a line of its own: the entries they
 * retired, the slots of their batches readers are past (reused by their next
 * allocations first) and the counters every fill bumps. Why: a slot a writer
 * retires is on its own core (it just read the entry, and linked it into its limbo);
 * taken by the other core, every line of it moved (docs/l1.md, "Two threads, one
 * L1"). Still under the shard lock: the lane is where, not who may.
 */
#define PGCW__L1_LANES 4
typedef struct pgcw__l1_lane {
    alignas(64) pgcw__l1_limbo fresh; /* retired entries, filling */
    struct pgcw__l1_entry *released;  /* slots readers are past (pgcw__l1_slab_alloc) */
    uint64_t inserts, evictions;
} pgcw__l1_lane;

/* A slot's fill generations (tickets, l1.h). Written under the shard lock; read
 * lock-free by pgcw_l1_ticket_take(). */
typedef struct pgcw__l1_gen {
    _Atomic uint32_t hard;   /* sets and deletes: outdate every ticket */
    _Atomic uint32_t soft;   /* invalidations: outdate tickets of older versions */
    _Atomic int64_t inv_max; /* the highest version ever invalidated on the slot */
} pgcw__l1_gen;

typedef struct pgcw__l1_shard {
    /* Set at creation, then only read: lock-free readers need these, so they
     * share no cache line with anything a writer stores to. */
    alignas(64) pgcw__l1_table table;
    uint32_t gmask;
    pgcw__l1_gen *gens; /* fill generations per slot; gmask + 1 slots */
    uint64_t seed;      /* the cache's hash seed, to rehash entries being evicted */
    uint16_t *ghost;    /* fingerprints of keys recently evicted from the small queue */
    uint32_t nghost;
    uint32_t retire_batch; /* entries a lane's limbo gathers before a reclaim */
    bool payload_only;     /* charge keys + values only (opts.charge_payload_only) */
    size_t cap_n, cap_bytes;
    /* Writers' state, under mu, ordered so that a fill (lock, push on the small
     * queue, evict, retire, count, take a slot) writes two cache lines the other
     * core may well have written last: the mutex with the small queue's tail and
     * counts; the small queue's head, the live counts and the main queue. What else
     * it writes is its lane's (below). (With glibc's 40-byte mutex; checked in
     * l1_shard.c. Before, a fill wrote three, and four before that: docs/l1.md,
     * "Two threads, one L1".) */
    alignas(64) pthread_mutex_t mu;
    pgcw__l1_queue small;
    size_t live_n, live_bytes;
    pgcw__l1_queue main;
    /* Written only when the writer's lane has no released slot of the size. */
    alignas(64) pgcw__l1_slab slab; /* where this shard's entries are carved */
    pgcw__l1_counters ct;
    pgcw__l1_limbo aged[PGCW__L1_LANES]; /* each lane's batch waiting for readers */
    pgcw__l1_lane lanes[PGCW__L1_LANES];
} pgcw__l1_shard;

/* Per reader thread and cache: the epoch it entered at (0: not reading) and its
 * own hit/miss counters, on a line no other thread writes. */
typedef struct pgcw__l1_reader {
    alignas(64) _Atomic uint64_t epoch;
    _Atomic uint64_t hits, misses;
} pgcw__l1_reader;

/* Threads that can read lock-free at once; more fall back to the shard lock. */
#define PGCW__L1_READERS 64

struct pgcw_l1 {
    /* Read-mostly configuration first; each counter a writer bumps sits on a line
     * of its own so bumping it does not evict this one from readers' caches. */
    pgcw__l1_shard *shards;
    pgcw__l1_reader *readers; /* PGCW__L1_READERS of them */
    unsigned nshards;
    unsigned shard_shift; /* shard = hash >> shard_shift (0 shards bits: 64) */
    uint64_t seed;
    int64_t default_ttl_us;
    pgcw_l1_clock_fn clock;
    void *clock_ctx;
    size_t max_entries, max_bytes;
    _Atomic bool ttl_seen; /* once true, every get reads the clock before locking */
    void *tables;          /* every shard's hash table (l1_table.h), one region */
    size_t tables_bytes;
    pgcw__l1_pool pool;                  /* chunks the shards' slabs carve entries from */
    alignas(64) _Atomic uint64_t epoch;  /* clears */
    alignas(64) _Atomic uint64_t gepoch; /* reclamation epoch (not the clear epoch) */
};

/* --- l1_reclaim.c ------------------------------------------------------------ */

/* This thread's reader slot (claimed on first use, released at thread exit), or -1
 * if all are taken. Inline: a hit asks on every call. */
extern _Thread_local int pgcw__l1_t_slot; /* -2: not claimed yet */
int pgcw__l1_reader_claim(void);
static inline int pgcw__l1_reader_slot(void)
{
    int s = pgcw__l1_t_slot;
    return s != -2 ? s : pgcw__l1_reader_claim();
}

/* Enters / leaves a lock-free read on c as reader slot r. Between the two, every
 * entry reached through the table stays allocated. */
static inline void pgcw__l1_read_enter(pgcw_l1 *c, pgcw__l1_reader *r)
{
    uint64_t e = atomic_load_explicit(&c->gepoch, memory_order_acquire);
    /* Pairs with the fence in the reclaimer: either it sees us reading, or we see
     * every unlink it made before looking. On x86 a locked exchange is that full
     * barrier and, unlike MFENCE, lets the loads of consecutive gets overlap. */
#if defined(__x86_64__) || defined(__i386__)
    (void)atomic_exchange_explicit(&r->epoch, e, memory_order_seq_cst);
#else
    atomic_store_explicit(&r->epoch, e, memory_order_release);
    atomic_thread_fence(memory_order_seq_cst);
#endif
}
static inline void pgcw__l1_read_leave(pgcw__l1_reader *r)
{
    atomic_store_explicit(&r->epoch, 0, memory_order_release);
}

/* Called with s->mu held after removing entries: adds the unlinked entries `dead`
 * (a qnext list) to lane's limbo in s; the lane's slab entries readers can no longer
 * see go to its released slots at once (a constant-time splice); *to_free is set to
 * the malloc'ed ones (or NULL), which the caller frees after unlocking
 * (pgcw__l1_free_big). */
void pgcw__l1_retire(pgcw_l1 *c, pgcw__l1_shard *s, unsigned lane, pgcw__l1_entry *dead,
                     pgcw__l1_entry **to_free);

/* Waits (yielding) until no reader that entered before this call is still inside.
 * Never called with a lock held. */
void pgcw__l1_synchronize(pgcw_l1 *c);

/* The lane of this thread: its reader slot's, or lane 0 if it has none (a thread
 * that has never read, or found all slots taken). A write claims no slot: slots
 * are for readers, and a writer-only thread holding one would push a reader onto
 * the locked path. */
static inline unsigned pgcw__l1_lane_of_thread(void)
{
    int s = pgcw__l1_t_slot;
    return s < 0 ? 0 : (unsigned)s % PGCW__L1_LANES;
}

static inline pgcw__l1_shard *pgcw__l1_shard_of(pgcw_l1 *c, uint64_t h)
{
    return c->nshards == 1 ? c->shards : &c->shards[h >> c->shard_shift];
}

/* Key equality; keys of 8 to 16 bytes (the common case) in two overlapping word
 * compares instead of a call to memcmp. */
static inline bool pgcw__l1_key_eq(const unsigned char *a, const void *b, size_t n)
{
    if (n >= 8 && n <= 16) {
        const unsigned char *q = b;
        uint64_t a0, b0, a1, b1;
        memcpy(&a0, a, 8);
        memcpy(&b0, q, 8);
        memcpy(&a1, a + n - 8, 8);
        memcpy(&b1, q + n - 8, 8);
        return ((a0 ^ b0) | (a1 ^ b1)) == 0;
    }
    return n == 0 || memcmp(a, b, n) == 0;
}

/* Key's entry in group g of t, or NULL. */
static inline pgcw__l1_entry *pgcw__l1_find_in(const pgcw__l1_table *t, uint32_t g,
                                               const pgcw__l1_probe *p, const void *key,
                                               size_t klen)
{
    _Atomic uint64_t *grp = &t->slots[(size_t)g * PGCW__L1_GROUP];
    for (unsigned i = 0; i < PGCW__L1_GROUP; i++) {
        uint64_t w = atomic_load_explicit(&grp[(p->first + i) & (PGCW__L1_GROUP - 1)],
                                          memory_order_acquire);
        if (pgcw__l1_slot_tag(w) != p->tag)
            continue;
        pgcw__l1_entry *e = pgcw__l1_slot_entry(w);
        if (e->klen == klen && pgcw__l1_key_eq(pgcw__l1_key(e), key, klen))
            return e;
    }
    return NULL;
}

/* Key's entry in the groups after its home one (some entry was sent past it). Out
 * of line: 1% of entries are there at full load. */
pgcw__l1_entry *pgcw__l1_find_past(const pgcw__l1_table *t, const pgcw__l1_probe *p,
                                   const void *key, size_t klen);

/* The live entry for key, or NULL: with s->mu held, or lock-free inside a read
 * (pgcw__l1_read_enter). Reads the key's group line and, on a tag match, the entry
 * (l1_table.h). Inline: it is most of a hit. */
static inline pgcw__l1_entry *pgcw__l1_find(pgcw__l1_shard *s, uint64_t h,
                                            const void *key, size_t klen)
{
    const pgcw__l1_table *t = &s->table;
    pgcw__l1_probe p = pgcw__l1_probe_of(t, h);
    pgcw__l1_entry *e = pgcw__l1_find_in(t, p.group, &p, key, klen);
    if (e || atomic_load_explicit(&t->over[p.group], memory_order_relaxed) == 0)
        return e;
    return pgcw__l1_find_past(t, &p, key, klen);
}

/* Bytes the cache has mapped outside malloc (slab chunks, a big bucket region):
 * for bench_l1's memory figure, which adds them to malloc's count. */
size_t pgcw__l1_mapped_bytes(pgcw_l1 *c);

/* A global slot id for key's fill generation (tests use it as their model). */
uint64_t pgcw__l1_gen_slot(pgcw_l1 *c, const void *key, size_t key_len);

/* --- l1_shard.c: everything below runs with s->mu held ------------------------ */

/* Sets up a shard for cap_n entries / cap_bytes with its hash table on `table`
 * (pgcw__l1_table_bytes(cap_n) zeroed bytes, owned by the caller) and allocates its
 * other tables (no locking). */
pgcw_status pgcw__l1_shard_init(pgcw__l1_shard *s, size_t cap_n, size_t cap_bytes,
                                uint64_t seed, void *table, size_t run);
/* Frees the malloc'ed entries and the tables it allocated (slab slots go with the
 * cache's pool). */
void pgcw__l1_shard_destroy(pgcw__l1_shard *s);

/* Takes a live entry out of the table and marks it DEAD; it stays in its queue and
 * in the held counts until reclaimed. */
void pgcw__l1_kill(pgcw__l1_shard *s, uint64_t h, pgcw__l1_entry *e);

/* Makes room for an entry of `cost` bytes, then links e (already filled in) into the
 * table and a queue: the main queue if its key is a ghost or if it replaces an
 * entry that was there (`replaced_main`), else the small one. Entries reclaimed or
 * evicted on the way are chained on *graveyard (via qnext), to be retired
 * (pgcw__l1_retire) before unlocking. `now` decides which evicted entries count as
 * expired. */
void pgcw__l1_link(pgcw__l1_shard *s, pgcw__l1_lane *lane, uint64_t h, pgcw__l1_entry *e,
                   size_t cost, bool replaced_main, uint8_t freq, int64_t now,
                   pgcw__l1_entry **graveyard);

/* Moves every entry (and every retired one) to *graveyard and empties the shard;
 * the caller must wait for readers (pgcw__l1_synchronize) before freeing them. */
void pgcw__l1_shard_clear(pgcw__l1_shard *s, pgcw__l1_entry **graveyard);

/* Cost of an entry (the same formula as pgcw_l1_entry_cost()). */
size_t pgcw__l1_cost(size_t klen, size_t vlen, bool ttl);

#endif
