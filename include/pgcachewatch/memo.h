/*
 * pgcachewatch/memo.h - memoized results, invalidated by a strategy.
 *
 * The C counterpart of the Python @cache decorator. Values are byte strings keyed
 * by byte strings; a miss calls the loader. On every get:
 *   1. if the strategy's watcher is unhealthy, the loader is called and its result
 *      returned but not stored (bypass: nothing is cached while notifications may
 *      be lost);
 *   2. if the strategy says "clear" (or a gap happened), every stored value is
 *      dropped;
 *   3. a stored value is a hit; otherwise the first caller loads and every
 *      concurrent caller of the same key waits for that one load (single flight).
 *      A loader error reaches every waiter and is not stored.
 * A load that raced with a clear is returned to its callers but not stored, so a
 * value loaded before an invalidation is never served after it: values live in a
 * pgcw_l1 (l1.h) and a load is stored through the fill ticket it took before
 * calling the loader, which a clear outdates.
 *
 * Threads: fully thread-safe. The loader and the statistics callback run on the
 * calling thread with no lock held; they may call back into the memo (a loader
 * that gets its own key would wait for itself: don't).
 */
#ifndef PGCACHEWATCH_MEMO_H
#define PGCACHEWATCH_MEMO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "strategy.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pgcw_memo pgcw_memo;

/* Where a loader puts its answer. Borrowed by the loader for the call only. */
typedef struct pgcw_memo_result pgcw_memo_result;

/* Stores the value (copied; a second call replaces it). Returns PGCW_OK,
 * PGCW_ENOMEM, or PGCW_EINVAL (r NULL, or value NULL with len > 0). */
pgcw_status pgcw_memo_result_set(pgcw_memo_result *r, const void *value, size_t len);

/* Records an error message (copied) to hand to every waiter. */
void pgcw_memo_result_error(pgcw_memo_result *r, const char *message);

/*
 * Loads the value for key. Returns PGCW_OK after pgcw_memo_result_set(), or any
 * other status for failure (PGCW_ELOADER is a good default), optionally after
 * pgcw_memo_result_error(). `key` is borrowed for the call.
 */
typedef pgcw_status (*pgcw_memo_load_fn)(void *ctx, const void *key, size_t key_len,
                                         pgcw_memo_result *result);

typedef enum pgcw_memo_stat { PGCW_MEMO_HIT = 0, PGCW_MEMO_MISS = 1 } pgcw_memo_stat;

/* Called once per get with hit or miss (a bypass counts as a miss and a caller
 * that waits for another caller's load as a hit, as in Python: misses == loads). */
typedef void (*pgcw_memo_stats_fn)(void *ctx, pgcw_memo_stat stat);

/* Grows at the end only (docs/abi.md). */
typedef struct pgcw_memo_opts {
    pgcw_strategy *strategy; /* required; borrowed, must outlive the memo */
    pgcw_memo_load_fn load;  /* required */
    void *load_ctx;
    pgcw_memo_stats_fn stats; /* optional */
    void *stats_ctx;
    size_t max_entries; /* 0: 10000; entries are evicted (S3-FIFO, l1.h) beyond it */
    size_t max_bytes;   /* keys + values; 0: 64 MiB (a value over 1/16 may go unstored) */
} pgcw_memo_opts;

/* *out is owned: free with pgcw_memo_free(). Returns PGCW_EINVAL without a strategy
 * or loader (or with options from a newer header that set a field this library
 * does not know). */
pgcw_status pgcw_memo_new_sized(const pgcw_memo_opts *opts, size_t opts_size,
                                pgcw_memo **out);
#define pgcw_memo_new(opts, out)                                                         \
    pgcw_memo_new_sized((opts), sizeof(pgcw_memo_opts), (out))

/* Frees the memo. No get may be in progress. NULL is fine. */
void pgcw_memo_free(pgcw_memo *m);

/*
 * Returns the value for key, from the memo or the loader. On PGCW_OK *value is
 * owned (free with pgcw_free(); it is NUL-terminated past *value_len for
 * convenience) and *value_len its length. On failure the loader's status is
 * returned (PGCW_ENOMEM and PGCW_EINVAL may come from the memo itself) and
 * pgcw_memo_errmsg() has the loader's message.
 */
pgcw_status pgcw_memo_get(pgcw_memo *m, const void *key, size_t key_len, void **value,
                          size_t *value_len);

/* The message of the calling thread's last failed pgcw_memo_get() on m (the
 * loader's, as given to pgcw_memo_result_error(); "" if it gave none), or "" if
 * that call succeeded. Per thread, as errno: threads failing at once each read
 * their own. Borrowed: valid until the calling thread's next pgcw_memo_get() on
 * any memo. */
const char *pgcw_memo_errmsg(const pgcw_memo *m);

/* Drops every stored value now. */
void pgcw_memo_clear(pgcw_memo *m);

/* Grows at the end only. */
typedef struct pgcw_memo_stats {
    uint64_t hits;
    uint64_t misses;   /* includes bypasses */
    uint64_t bypasses; /* loader called because the watcher was unhealthy */
    uint64_t loads;    /* loader calls */
    uint64_t load_errors;
    uint64_t waits;   /* callers that waited for another caller's load (hits) */
    uint64_t clears;  /* times the strategy (or a gap) cleared the memo */
    uint64_t refused; /* loads not stored because a clear raced with them */
    size_t entries;
    size_t bytes;
} pgcw_memo_stats;

/* Copies the counters. Thread-safe. */
void pgcw_memo_stats_get_sized(pgcw_memo *m, pgcw_memo_stats *out, size_t out_size);
#define pgcw_memo_stats_get(m, out)                                                      \
    pgcw_memo_stats_get_sized((m), (out), sizeof(pgcw_memo_stats))

#ifdef __cplusplus
}
#endif

#endif
