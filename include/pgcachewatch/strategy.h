/*
 * pgcachewatch/strategy.h - deciding when memoized results must be dropped.
 *
 * A strategy owns a subscriber (its own queue on a watcher) and answers one
 * question, "must the cache be cleared now?", by draining the queue under a
 * deadline (at most max_events events and max_time_us of time per call, defaults
 * 1000 and 1 ms, like the Python DeadlineSetting):
 *
 *   Greedy    clear as soon as one drained event satisfies the predicate (no
 *             predicate: any event).
 *   Windowed  clear when the last N operations seen form the given sequence.
 *   Timed     clear when an event was sent more than `interval` after the
 *             previous clearing event (the first reference is creation time).
 *
 * Unlike the Python strategies, a gap event (lost notifications) always answers
 * "clear", whatever the strategy: nothing else is safe. So does a schema event
 * (PGCW_EVENT_SCHEMA, from `install --ddl` triggers on a channel the watcher
 * listens to), whatever table it names, without consulting the predicate. Both
 * restart the Windowed history (operations on both sides are not one sequence). A drain
 * that stops at the deadline leaves the rest for the next call.
 *
 * Threads: every function is thread-safe. The predicate runs on the calling
 * thread with no lock held; concurrent callers may each run it.
 */
#ifndef PGCACHEWATCH_STRATEGY_H
#define PGCACHEWATCH_STRATEGY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "event.h"
#include "watcher.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pgcw_strategy pgcw_strategy;

/* Returns true when this event means "clear". `event` is borrowed for the call.
 * Key events (kind PGCW_EVENT_KEY) reach it too: a predicate that only cares about
 * table changes should test the kind. */
typedef bool (*pgcw_predicate_fn)(void *ctx, const pgcw_event *event);

typedef struct pgcw_deadline {
    size_t max_events;   /* 0: 1000 */
    int64_t max_time_us; /* 0: 1000 (1 ms) */
} pgcw_deadline;

typedef enum pgcw_strategy_kind {
    PGCW_STRATEGY_GREEDY = 0,
    PGCW_STRATEGY_WINDOWED = 1,
    PGCW_STRATEGY_TIMED = 2
} pgcw_strategy_kind;

/* Zeroed (with a watcher) means a Greedy strategy that clears on any event. Grows
 * at the end only (docs/abi.md). */
typedef struct pgcw_strategy_opts {
    pgcw_strategy_kind kind;
    pgcw_deadline deadline;
    size_t queue_capacity; /* its subscriber's capacity; 0: the watcher's default */

    /* Greedy: optional predicate (NULL: every event clears). */
    pgcw_predicate_fn predicate;
    void *predicate_ctx;

    /* Windowed: the operation sequence, oldest first (borrowed, copied). */
    const pgcw_op *window;
    size_t window_len;

    /* Timed: the interval, in microseconds (> 0). */
    int64_t interval_us;
} pgcw_strategy_opts;

/* Creates a strategy with its own subscriber on w (borrowed; must outlive it).
 * opts NULL means zeroed. Returns PGCW_OK, PGCW_EINVAL (Windowed with an empty
 * window or an operation other than INSERT..TRUNCATE in it, Timed with
 * interval_us <= 0, negative max_time_us, unknown kind) or PGCW_ENOMEM. *out is
 * owned: free with pgcw_strategy_free(). */
pgcw_status pgcw_strategy_new_sized(pgcw_watcher *w, const pgcw_strategy_opts *opts,
                                    size_t opts_size, pgcw_strategy **out);
#define pgcw_strategy_new(w, opts, out)                                                  \
    pgcw_strategy_new_sized((w), (opts), sizeof(pgcw_strategy_opts), (out))

/* Frees the strategy and its subscriber. NULL is fine. */
void pgcw_strategy_free(pgcw_strategy *s);

/* Drains events under the deadline; true when the cache must be cleared. */
bool pgcw_strategy_clear(pgcw_strategy *s);

/* The watcher's health, passed through. */
bool pgcw_strategy_healthy(const pgcw_strategy *s);

/* A number that changes whenever a gap may have happened (the watcher's epoch
 * combined with this strategy's queue overflows). A consumer that stored it with a
 * cached value may keep that value only while it is unchanged. */
uint64_t pgcw_strategy_generation(const pgcw_strategy *s);

/* The strategy's subscriber (borrowed, lives as long as the strategy). */
pgcw_sub *pgcw_strategy_sub(const pgcw_strategy *s);

#ifdef __cplusplus
}
#endif

#endif
