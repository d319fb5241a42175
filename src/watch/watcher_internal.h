/*
 * watcher_internal.h - what the watcher's files (watcher.c, watcher_conn.c,
 * watcher_loop.c, sub.c) share: the handle layouts, the fan-out entry points and a
 * test hook. Never part of the public API. Nothing declared here calls the log
 * callback while holding a lock.
 *
 * Locks, always taken in this order: w->subs_mu, then one s->mu. w->state_mu and
 * w->err_mu are leaves (nothing else is taken while they are held).
 */
#ifndef PGCW_WATCHER_INTERNAL_H
#define PGCW_WATCHER_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "pgcachewatch/watcher.h"
#include "core_util.h"

/* One queue slot: a shared reference to a change event, or (ev == NULL) a gap
 * that is turned into a pgcw_event only when a consumer takes it, so recording a
 * gap can never fail for lack of memory. */
typedef struct pgcw__slot {
    pgcw_event *ev;
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
    size_t capacity; /* change events that fit */
    size_t head;
    size_t count;
    int waiters;
    atomic_uint_fast64_t gaps; /* pgcw_sub_gap_count() */
    atomic_size_t pending;     /* mirrors count for lock-free pgcw_sub_pending() */
};

typedef enum pgcw__conn_state {
    PGCW__ST_IDLE = 0,   /* no connection; connect at the next step */
    PGCW__ST_CONNECTING, /* PQconnectPoll in progress */
    PGCW__ST_LISTENING,  /* LISTEN statements sent, waiting for their results */
    PGCW__ST_READY,      /* healthy: reading notifications, pinging when idle */
    PGCW__ST_BACKOFF     /* lost or failed: waiting before the next attempt */
} pgcw__conn_state;

struct pgcw_watcher {
    /* Options, fixed after pgcw_watcher_new(). */
    char *conninfo; /* NULL: libpq defaults */
    char **channels;
    size_t n_channels;
    int64_t max_latency_us; /* < 0: never warn */
    int64_t reconnect_min_us, reconnect_max_us;
    int64_t connect_timeout_us;
    int64_t ping_interval_us; /* < 0: no pings */
    int64_t ping_timeout_us;
    size_t queue_capacity;
    pgcw_log_fn log;
    void *log_ctx;

    /* Subscribers. */
    pthread_mutex_t subs_mu;
    struct pgcw_sub *subs;
    size_t n_subs;

    /* Health, readable from any thread. Writers hold state_mu so that
     * wait_healthy() can sleep on state_cv without missing a change. */
    pthread_mutex_t state_mu;
    pthread_cond_t state_cv; /* CLOCK_MONOTONIC */
    atomic_bool healthy;
    atomic_uint_fast64_t epoch;
    atomic_int backend_pid;

    /* Counters (relaxed atomics: each is exact, the set is not a snapshot). */
    atomic_uint_fast64_t st_notifications, st_events, st_malformed, st_late, st_connects,
        st_disconnects, st_gaps;

    /* Last error, written by the driving thread, copied out by errmsg(). */
    pthread_mutex_t err_mu;
    char err[1024];
    char err_out[1024];

    /* Connection: touched only by the driving thread. */
    PGconn *conn;
    pgcw__conn_state st;
    int poll_events;      /* PGCW_IO_* wanted while connecting */
    bool flush_pending;   /* output queued in libpq that the socket did not take */
    int query;            /* PGCW__Q_*: what the outstanding query is */
    int listen_ok;        /* LISTEN results that succeeded in this attempt */
    char *listen_error;   /* first LISTEN failure of this attempt (owned) */
    int64_t deadline_us;  /* connect/LISTEN deadline, or end of the backoff */
    int64_t last_rx_us;   /* last time the server answered or notified */
    int64_t ping_sent_us; /* when the outstanding ping left */
    int64_t backoff_us;   /* next backoff base; doubles up to reconnect_max */
    uint64_t rng;         /* jitter */
    char notice[512];     /* last server notice (e.g. FATAL before a close) */

    /* Own thread / run(). */
    int wake_rd, wake_wr; /* non-blocking pipe: interrupt() and stop() write */
    atomic_bool interrupted;
    atomic_bool stopping;
    bool thread_started;
    pthread_t thread;
};

enum { PGCW__Q_NONE = 0, PGCW__Q_LISTEN = 1, PGCW__Q_PING = 2 };

/* --- watcher.c ---------------------------------------------------------------- */

/* Test hook: marks the watcher healthy or unhealthy exactly as a real connection
 * (connects++, epoch++) or loss (disconnects++, a PGCW_GAP_DISCONNECTED gap to
 * every subscriber) would, without touching the connection. No-op when the state
 * does not change. */
void pgcw__watcher_set_healthy(pgcw_watcher *w, bool healthy);

/* The transitions behind it. became_healthy: epoch++, connects++, wake waiters.
 * became_unhealthy: gaps to every subscriber; counts a disconnect when lost. Both
 * return false when the state was already so. */
bool pgcw__watcher_became_healthy(pgcw_watcher *w);
bool pgcw__watcher_became_unhealthy(pgcw_watcher *w, bool lost);

/* Hands n parsed events to every subscriber: one reference each (the caller's
 * references are dropped: the events are consumed). Takes w->subs_mu once. */
void pgcw__watcher_fanout(pgcw_watcher *w, pgcw_event **events, size_t n);

/* Records the last error (formatted, trailing newlines trimmed). */
void pgcw__watcher_set_err(pgcw_watcher *w, const char *fmt, ...) PGCW__PRINTF(2, 3);

/* Closes the connection if any (no health change). */
void pgcw__watcher_close_conn(pgcw_watcher *w);

/* --- sub.c --------------------------------------------------------------------- */

/* Appends events under s->mu (the caller holds w->subs_mu): takes a new
 * reference on each that fits; counts overflow into a gap. Returns the number of
 * gaps it started (0 or more). */
uint64_t pgcw__sub_push(pgcw_sub *s, pgcw_event *const *events, size_t n, uint64_t epoch);

/* Appends a gap (merged into an unread gap at the tail when the queue is full).
 * Always succeeds. */
void pgcw__sub_push_gap(pgcw_sub *s, pgcw_gap_reason reason, uint64_t lost,
                        uint64_t epoch);

/* --- watcher_conn.c ------------------------------------------------------------ */

/* One non-blocking step of the connection state machine. revents: what poll(2)
 * reported for the fd (PGCW_IO_*), or -1 when unknown (then input is tried). */
void pgcw__watcher_step(pgcw_watcher *w, int revents);

#endif
