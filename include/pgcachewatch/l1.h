/*
 * pgcachewatch/l1.h - the concurrent in-process cache every client reads first.
 *
 * Keys and values are byte strings, copied in on set and copied out on get (into a
 * buffer you own: a hit allocates nothing, makes no system call and leaves you no
 * reference to release, so there is nothing to misuse after the call returns).
 *
 * Bounds. The cache holds at most max_entries entries and max_bytes bytes, where an
 * entry costs its key + value + a per-entry overhead (pgcw_l1_entry_cost()). Both
 * bounds hold at every instant, not eventually: a set evicts before it inserts. The
 * cache is split into shards that each own an equal share of both bounds, so one
 * entry may use at most max_bytes / shards (see pgcw_l1_opts.shards).
 *
 * Eviction is S3-FIFO (a small probationary FIFO, a main FIFO with reinsertion and
 * a ghost list of recently evicted keys): its hit ratio is at least LRU's on skewed
 * workloads, and a one-pass scan only churns the probationary queue, so the hot set
 * survives it. docs/l1.md has the measurements.
 *
 * Time. TTLs are measured on a monotonic clock in microseconds (CLOCK_MONOTONIC by
 * default; injectable for tests). An entry whose expiry is <= now is never returned.
 *
 * Versions and fill generations (the "no stale fills" rule of the architecture):
 * every entry carries an int64 version. pgcw_l1_invalidate(key, v) removes the entry
 * only if its version is < v; pgcw_l1_delete() always removes; pgcw_l1_clear()
 * removes everything and bumps the epoch. A reader that misses takes a ticket with
 * pgcw_l1_ticket_take() *before* it queries PostgreSQL and stores the answer with
 * pgcw_l1_fill(): the fill is refused (counted, not an error) if, since the ticket,
 * the key's slot saw a set or delete, or the cache was cleared, or an invalidate
 * that may have been of a newer version than the fill's (the slot's highest
 * invalidated version ever is above it): a writer's fill of version v survives
 * the notification of its own write (v), arriving first. Slots are shared by a
 * few keys, so an unrelated key can occasionally refuse a fill: a lost fill, never
 * a stale one.
 *
 * Threads. Every function is thread-safe except pgcw_l1_free(). Each shard has its
 * own lock; there is no global lock on any path. The clock callback is the only
 * callback and it is never called with a lock held.
 */
#ifndef PGCACHEWATCH_L1_H
#define PGCACHEWATCH_L1_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pgcw_l1 pgcw_l1;

/* Monotonic time in microseconds. Must never go backwards. Called from any thread
 * that uses the cache, with no lock held; it must not call into the cache. */
typedef int64_t (*pgcw_l1_clock_fn)(void *ctx);

/* Pass as ttl_us: the entry never expires (whatever default_ttl_us says). */
#define PGCW_L1_TTL_NONE ((int64_t)-1)
/* Pass as ttl_us: use the cache's default_ttl_us. */
#define PGCW_L1_TTL_DEFAULT ((int64_t)0)

/* Longest key accepted (bytes). */
#define PGCW_L1_MAX_KEY 65535u

/* Zeroed means all defaults. Grows at the end only (docs/abi.md). */
typedef struct pgcw_l1_opts {
    size_t max_entries; /* 0: 10000 */
    size_t max_bytes;   /* keys + values + per-entry overhead; 0: 64 MiB */
    /* Number of shards, rounded down to a power of two, then halved until every
     * shard holds at least 64 entries and 4 KiB. 0: 16. */
    unsigned shards;
    int64_t default_ttl_us; /* TTL for PGCW_L1_TTL_DEFAULT; 0 or < 0: none */
    pgcw_l1_clock_fn clock; /* NULL: CLOCK_MONOTONIC */
    void *clock_ctx;        /* passed to clock */
    /* --- since 0.2 ------------------------------------------------------------ */
    /* Charge an entry its key + value bytes only against max_bytes, leaving out the
     * per-entry overhead (for callers whose own bound is stated in payload bytes,
     * like pgcw_memo_opts.max_bytes). The memory used is then above max_bytes by up
     * to the overhead of every entry. */
    bool charge_payload_only;
} pgcw_l1_opts;

/* Creates a cache; all memory for its tables is allocated here (entries are
 * allocated by set/fill: up to 512 bytes from the cache's own 2 MiB chunks, which
 * are kept, and their freed slots reused, until pgcw_l1_free(); bigger ones with
 * malloc). opts may be NULL (all defaults). *out is owned: free with
 * pgcw_l1_free(). Returns PGCW_OK, PGCW_EINVAL (out NULL, or more than 2^32 entries
 * per shard) or PGCW_ENOMEM. */
pgcw_status pgcw_l1_new_sized(const pgcw_l1_opts *opts, size_t opts_size, pgcw_l1 **out);
#define pgcw_l1_new(opts, out) pgcw_l1_new_sized((opts), sizeof(pgcw_l1_opts), (out))

/* Frees the cache and every entry, and unmaps its chunks. No other call may be in
 * progress or follow. NULL is fine. */
void pgcw_l1_free(pgcw_l1 *c);

/* Bytes one entry is charged against max_bytes: key + value + overhead (header,
 * allocator rounding, its share of the hash table). ttl: whether it expires.
 * Chunk memory not yet carved into entries is not charged. Saturates at SIZE_MAX
 * (never wraps) for lengths no entry can have.
 * Keys longer than PGCW_L1_MAX_KEY are refused or missed by their length alone,
 * before anything reads them: get is PGCW_ENOTFOUND (not counted), set and fill
 * PGCW_ETOOBIG, delete and invalidate PGCW_ENOTFOUND. */
size_t pgcw_l1_entry_cost(size_t key_len, size_t value_len, bool ttl);

/*
 * Looks key up and copies its value into buf (buf_len bytes, borrowed for the call).
 *   PGCW_OK        hit: *value_len = length copied; *version (if not NULL) its
 *                  version.
 *   PGCW_ENOTFOUND miss (absent or expired); counted as a miss.
 *   PGCW_ETOOBIG   present but longer than buf_len: nothing copied, *value_len = the
 *                  length needed; counted neither as hit nor miss (retry with a
 *                  bigger buffer; the value may change in between).
 *   PGCW_EINVAL    c or value_len NULL, or buf NULL with buf_len > 0.
 * No lock, no allocation and no system call (a TTL'd entry reads the clock: vDSO),
 * except a thread's first get, which claims one of 64 reader slots, and threads
 * beyond 64 reading at once, which read under the shard lock.
 */
pgcw_status pgcw_l1_get(pgcw_l1 *c, const void *key, size_t key_len, void *buf,
                        size_t buf_len, size_t *value_len, int64_t *version);

/*
 * Like pgcw_l1_get() but allocates the copy: on PGCW_OK *value is owned (free with
 * pgcw_free(); NUL-terminated past *value_len). version may be NULL. Returns
 * PGCW_OK, PGCW_ENOTFOUND, PGCW_EINVAL or PGCW_ENOMEM. Allocates outside the lock.
 */
pgcw_status pgcw_l1_get_dup(pgcw_l1 *c, const void *key, size_t key_len, void **value,
                            size_t *value_len, int64_t *version);

/*
 * Stores a copy of key and value with a version and a TTL (microseconds > 0,
 * PGCW_L1_TTL_DEFAULT or PGCW_L1_TTL_NONE), replacing any previous entry whatever
 * its version (this is the process's own write: read-your-writes). Outdates pending
 * tickets on the key's slot. Evicts until both bounds hold with the new entry.
 * Returns PGCW_OK, PGCW_EINVAL, PGCW_ETOOBIG (key longer than PGCW_L1_MAX_KEY or
 * entry cost above one shard's bytes; any previous entry is removed) or PGCW_ENOMEM
 * (cache unchanged).
 */
pgcw_status pgcw_l1_set(pgcw_l1 *c, const void *key, size_t key_len, const void *value,
                        size_t value_len, int64_t version, int64_t ttl_us);

/* A fill ticket: a value to copy around, its fields are private. Valid for the key
 * it was taken for only. */
typedef struct pgcw_l1_ticket {
    uint64_t priv_[3];
} pgcw_l1_ticket;

/* Takes a ticket for key: call it on a miss, before reading the source of truth.
 * Lock-free; never fails (c and ticket must not be NULL). */
void pgcw_l1_ticket_take(pgcw_l1 *c, const void *key, size_t key_len,
                         pgcw_l1_ticket *ticket);

/*
 * Stores what the reader loaded after taking ticket, unless the ticket is outdated
 * (see the top of this file) or a live entry with a newer version is present: then
 * nothing is stored and the fill is counted as refused. *stored (may be NULL) says
 * which. Returns PGCW_OK either way, PGCW_EINVAL (ticket taken for another key or
 * bad ttl), PGCW_ETOOBIG or PGCW_ENOMEM for the same reasons as pgcw_l1_set() (then
 * nothing is stored and nothing removed).
 */
pgcw_status pgcw_l1_fill(pgcw_l1 *c, const pgcw_l1_ticket *ticket, const void *key,
                         size_t key_len, const void *value, size_t value_len,
                         int64_t version, int64_t ttl_us, bool *stored);

/* Removes key if its entry's version is < version; outdates pending tickets for
 * fills of versions below the slot's highest invalidated one (top of file) on the
 * key's slot either way. Returns PGCW_OK (removed) or PGCW_ENOTFOUND (nothing to
 * remove), PGCW_EINVAL. */
pgcw_status pgcw_l1_invalidate(pgcw_l1 *c, const void *key, size_t key_len,
                               int64_t version);

/* Removes key whatever its version; outdates pending tickets on its slot. Returns
 * PGCW_OK (removed), PGCW_ENOTFOUND or PGCW_EINVAL. */
pgcw_status pgcw_l1_delete(pgcw_l1 *c, const void *key, size_t key_len);

/* Removes every entry and bumps the epoch, outdating every pending ticket. */
void pgcw_l1_clear(pgcw_l1 *c);

/* Number of clears so far (starts at 0). Lock-free. */
uint64_t pgcw_l1_epoch(pgcw_l1 *c);

/* Grows at the end only. */
typedef struct pgcw_l1_stats {
    uint64_t hits;
    uint64_t misses;        /* includes expired entries found by a get */
    uint64_t inserts;       /* sets and stored fills */
    uint64_t refused_fills; /* fills not stored: outdated ticket or newer entry */
    uint64_t evictions;     /* removed to make room */
    uint64_t expirations;   /* expired entries removed (by a get or eviction) */
    uint64_t invalidations; /* entries removed by pgcw_l1_invalidate() */
    uint64_t deletes;       /* entries removed by pgcw_l1_delete() */
    uint64_t clears;
    size_t entries;      /* live entries */
    size_t bytes;        /* cost of live entries (pgcw_l1_entry_cost()) */
    size_t held_entries; /* live + removed ones whose memory is not yet reclaimed: */
    size_t held_bytes;   /* the bounds apply to these two */
    size_t max_entries;  /* the bounds as configured */
    size_t max_bytes;
    unsigned shards;
} pgcw_l1_stats;

/* Sums every shard's counters (each shard's are consistent; the sum is not one
 * instant). Locks each shard briefly in turn. */
void pgcw_l1_stats_get_sized(pgcw_l1 *c, pgcw_l1_stats *out, size_t out_size);
#define pgcw_l1_stats_get(c, out)                                                        \
    pgcw_l1_stats_get_sized((c), (out), sizeof(pgcw_l1_stats))

#ifdef __cplusplus
}
#endif

#endif
