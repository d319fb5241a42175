/*
 * l1_internal.h - the L1 cache's private layout shared by l1.c (API, tickets,
 * stats), l1_shard.c (hash table + S3-FIFO policy) and the tests.
 *
 * Everything in a shard is guarded by the shard's mutex except `gens`, which
 * tickets read lock-free. Nothing here allocates, frees or calls out while a shard
 * is locked: entries are built before locking and freed after unlocking.
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

#include "pgcachewatch/l1.h"

/* Entry flags. */
#define PGCW__L1_MAIN 0x01u /* in the main queue (else the small one) */
#define PGCW__L1_TTL 0x02u  /* an int64 expiry follows the header */
#define PGCW__L1_DEAD 0x04u /* unlinked from the table, waiting in its queue */

/*
 * One allocation per entry: this 32-byte header, the expiry (only if TTL), the
 * key, the value. The queues are singly linked (S3-FIFO only pops heads and pushes
 * tails); a removed entry is unlinked from the table at once and marked DEAD, and
 * its memory is reclaimed when its queue reaches it. That saves a back pointer per
 * entry, and the bounds count such entries until they are reclaimed.
 */
typedef struct pgcw__l1_entry {
    struct pgcw__l1_entry *hnext; /* hash chain */
    struct pgcw__l1_entry *qnext; /* FIFO queue, or the free-after-unlock list */
    int64_t version;
    uint32_t vlen;
    uint16_t klen;
    uint8_t freq;  /* S3-FIFO access count, 0..3 */
    uint8_t flags; /* PGCW__L1_* */
} pgcw__l1_entry;

static inline size_t pgcw__l1_hdr(const pgcw__l1_entry *e)
{
    return sizeof(*e) + ((e->flags & PGCW__L1_TTL) ? sizeof(int64_t) : 0);
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
    if (e->flags & PGCW__L1_TTL)
        memcpy(&t, (const unsigned char *)e + sizeof(*e), sizeof(t));
    return t;
}

typedef struct pgcw__l1_queue {
    pgcw__l1_entry *head, *tail;
    size_t n, bytes; /* including DEAD entries */
} pgcw__l1_queue;

typedef struct pgcw__l1_counters {
    uint64_t hits, misses, inserts, refused, evictions, expirations, invalidations,
        deletes;
} pgcw__l1_counters;

typedef struct pgcw__l1_shard {
    alignas(64) pthread_mutex_t mu;
    pgcw__l1_entry **buckets;
    uint32_t nbuckets;
    uint32_t nghost;
    uint16_t *ghost; /* fingerprints of keys recently evicted from the small queue */
    pgcw__l1_queue small, main;
    size_t cap_n, cap_bytes;
    size_t live_n, live_bytes;
    pgcw__l1_counters ct;
    _Atomic uint32_t *gens; /* fill generations per slot; gmask + 1 slots */
    uint32_t gmask;
    uint64_t seed; /* the cache's hash seed, to rehash entries being evicted */
} pgcw__l1_shard;

struct pgcw_l1 {
    pgcw__l1_shard *shards;
    unsigned nshards;
    unsigned shard_shift; /* shard = hash >> shard_shift (0 shards bits: 64) */
    uint64_t seed;
    int64_t default_ttl_us;
    pgcw_l1_clock_fn clock;
    void *clock_ctx;
    size_t max_entries, max_bytes;
    _Atomic uint64_t epoch;
    _Atomic bool ttl_seen; /* once true, every get reads the clock before locking */
};

uint64_t pgcw__l1_hash(uint64_t seed, const void *key, size_t len);

static inline pgcw__l1_shard *pgcw__l1_shard_of(pgcw_l1 *c, uint64_t h)
{
    return c->nshards == 1 ? c->shards : &c->shards[h >> c->shard_shift];
}

/* A global slot id for key's fill generation (tests use it as their model). */
uint64_t pgcw__l1_gen_slot(pgcw_l1 *c, const void *key, size_t key_len);

/* --- l1_shard.c: everything below runs with s->mu held ------------------------ */

/* Allocates the tables of a shard for cap_n entries / cap_bytes (no locking). */
pgcw_status pgcw__l1_shard_init(pgcw__l1_shard *s, size_t cap_n, size_t cap_bytes,
                                uint64_t seed);
/* Frees every entry and the tables. */
void pgcw__l1_shard_destroy(pgcw__l1_shard *s);

/* The live entry for key, or NULL. */
pgcw__l1_entry *pgcw__l1_find(pgcw__l1_shard *s, uint64_t h, const void *key,
                              size_t klen);

/* Unlinks a live entry from the table and marks it DEAD; it stays in its queue and
 * in the held counts until reclaimed. */
void pgcw__l1_kill(pgcw__l1_shard *s, uint64_t h, pgcw__l1_entry *e);

/* Makes room for an entry of `cost` bytes, then links e (already filled in) into the
 * table and a queue: the main queue if its key is a ghost or if it replaces an
 * entry that was there (`replaced_main`), else the small one. Entries reclaimed or
 * evicted on the way are chained on *graveyard (via qnext) to be freed after
 * unlocking. `now` decides which evicted entries count as expired. */
void pgcw__l1_link(pgcw__l1_shard *s, uint64_t h, pgcw__l1_entry *e, size_t cost,
                   bool replaced_main, uint8_t freq, int64_t now,
                   pgcw__l1_entry **graveyard);

/* Moves every entry to *graveyard and empties the shard. */
void pgcw__l1_shard_clear(pgcw__l1_shard *s, pgcw__l1_entry **graveyard);

/* Cost of an entry (the same formula as pgcw_l1_entry_cost()). */
size_t pgcw__l1_cost(size_t klen, size_t vlen, bool ttl);

#endif
