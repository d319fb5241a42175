/*
 * watcher_internal.h - what the hub's files share (watcher.c: options, health,
 * epoch, counters, errors and fan-out; watcher_sub.c: queues; watcher_sink.c:
 * sinks; watcher_loop.c: driving the sources), and the test hooks. Never part of
 * the public API. Nothing declared here calls a callback while holding a lock.
 *
 * Locks, always taken in this order: w->subs_mu, then one s->mu. w->sinks_mu,
 * w->state_mu and w->err_mu are leaves (nothing else is taken while they are
 * held).
 */
#ifndef PGCW_WATCHER_INTERNAL_H
#define PGCW_WATCHER_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "core_util.h"
#include "pgcachewatch/watcher.h"
#include "source.h"

/* One queue slot: a shared reference to an event, or (ev == NULL) a gap that is
 * turned into a pgcw_event only when a consumer takes it, so recording a gap can
 * never fail for lack of memory. */
typedef struct pgcw__slot {
    const pgcw_event *ev;
    pgcw_gap_reason gap_reason;
    uint64_t gap_lost;
    uint64_t gap_epoch;
} pgcw__slot;

struct pgcw_sub {
    pgcw_watcher *w;
    struct pgcw_sub *prev, *next; /* in w->subs, under w->subs_mu */

    pthread_mutex_t mu;
    pthread_cond_t cv; /* signalled only when waiters > 0 */
    pgcw__slot *ring;  /* capacity + 1 slots: the extra one is kept for a gap */
    size_t ring_len;
    size_t capacity; /* events that fit */
    size_t head;
    size_t count;
    int waiters;
    atomic_uint_fast64_t gaps; /* pgcw_sub_gap_count() */
    atomic_size_t pending;     /* mirrors count for lock-free pgcw_sub_pending() */
};

struct pgcw_sink {
    pgcw_watcher *w;
    pgcw_sink_fn fn;
    void *ctx;
    uint64_t id;            /* registration order; the list is sorted by it */
    struct pgcw_sink *next; /* in w->sinks, under w->sinks_mu */
    int calls;              /* deliveries holding it (w->sinks_mu) */
    atomic_bool removed;    /* pgcw_sink_free() was called */
    bool free_when_idle;    /* freed from inside a callback: the last delivery frees */
};

struct pgcw_watcher {
    /* Options, fixed after pgcw_watcher_new(). */
    size_t queue_capacity;
    pgcw_log_fn log;
    void *log_ctx;

    /* Sources, fixed after pgcw_watcher_new(); driven by the driving thread. */
    pgcw_watch_source source_kind; /* opts.source */
    pgcw__source **sources;
    size_t n_sources;

    /* Subscribers. */
    pthread_mutex_t subs_mu;
    struct pgcw_sub *subs;
    size_t n_subs;

    /* Sinks. */
    pthread_mutex_t sinks_mu;
    pthread_cond_t sinks_cv; /* a delivery released a removed sink */
    struct pgcw_sink *sinks;
    uint64_t next_sink_id;

    /* Health, readable from any thread. Writers hold state_mu so that
     * wait_healthy() can sleep on state_cv without missing a change. */
    pthread_mutex_t state_mu;
    pthread_cond_t state_cv; /* CLOCK_MONOTONIC */
    size_t healthy_sources;  /* state_mu */
    atomic_bool healthy;     /* every source is */
    atomic_uint_fast64_t epoch;
    /* Attempts that failed for a reason retrying will not fix (wait_healthy
     * returns at once when it moves). */
    atomic_uint_fast64_t permanent_failures;

    /* Hub counters (relaxed atomics; the sources keep their own). */
    atomic_uint_fast64_t st_gaps, st_sink_calls;

    /* Last problem of any source, copied out by errmsg(). */
    pthread_mutex_t err_mu;
    char err[1024];

    /* Own thread / run(). */
    int wake_rd, wake_wr; /* non-blocking pipe: interrupt() and stop() write */
    atomic_bool interrupted;
    atomic_bool stopping;
    bool thread_started;
    pthread_t thread;
};

/* --- watcher.c ----------------------------------------------------------------- */

/* What the sources call (source.h). */
extern const pgcw__hub_ops pgcw__watcher_hub_ops;

/* Test hook: marks the watcher healthy or unhealthy exactly as its first source
 * connecting (connects++, epoch++ once every source is healthy) or losing its
 * connection (disconnects++, a PGCW_GAP_DISCONNECTED gap to every subscriber and
 * sink) would, without touching any connection. No-op when the state does not
 * change. */
void pgcw__watcher_set_healthy(pgcw_watcher *w, bool healthy);

/* Test hook: adds a source (made by the test; the watcher owns it from now on and
 * frees it with its vt->free). Call before driving the watcher. Returns PGCW_OK or
 * PGCW_ENOMEM. */
pgcw_status pgcw__watcher_add_source(pgcw_watcher *w, pgcw__source *src);

/* A constructor's result st and source: adds src when st is PGCW_OK, freeing it
 * if that fails; returns the status. For the make_*_source functions. */
pgcw_status pgcw__watcher_adopt(pgcw_watcher *w, pgcw_status st, pgcw__source *src);

/* Hands n events to every sink, then every subscriber: one reference each (the
 * caller's references are dropped: the events are consumed). */
void pgcw__watcher_fanout(pgcw_watcher *w, pgcw_event **events, size_t n);

/* A gap with this reason to every subscriber and every sink. */
void pgcw__watcher_gap_all(pgcw_watcher *w, pgcw_gap_reason reason, uint64_t lost,
                           uint64_t epoch);

/* --- watcher_poll.c ------------------------------------------------------------- */

/* Validates the poll source's options and adds it (opts.source PGCW_WATCH_POLL).
 * Returns PGCW_OK, PGCW_EINVAL or PGCW_ENOMEM. */
pgcw_status pgcw__watcher_make_poll(pgcw_watcher *w, const pgcw_watcher_opts *o,
                                    const pgcw_conn_opts *conn);

/* --- watcher_sub.c --------------------------------------------------------------- */

/* Appends events under s->mu (the caller holds w->subs_mu): takes a new
 * reference on each that fits; counts overflow into a gap. Returns the number of
 * gaps it started (0 or more). */
uint64_t pgcw__sub_push(pgcw_sub *s, pgcw_event *const *events, size_t n, uint64_t epoch);

/* Appends a gap (merged into an unread gap at the tail when the queue is full).
 * Always succeeds. */
void pgcw__sub_push_gap(pgcw_sub *s, pgcw_gap_reason reason, uint64_t lost,
                        uint64_t epoch);

/* --- watcher_sink.c --------------------------------------------------------------- */

/* Runs every sink on each of events[0..n), on the calling thread, with no lock
 * held. Returns the number of callbacks run. */
uint64_t pgcw__sinks_deliver(pgcw_watcher *w, const pgcw_event *const *events, size_t n);

#endif
