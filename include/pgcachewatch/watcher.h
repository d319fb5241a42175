/*
 * pgcachewatch/watcher.h - the LISTEN connection and its subscribers.
 *
 * A watcher owns one dedicated libpq connection that LISTENs on any number of
 * channels. It parses every notification into a pgcw_event and copies it into the
 * queue of each subscriber (several consumers never steal each other's events).
 *
 * Two ways to drive it, pick one per watcher:
 *   1. Your event loop: wait until pgcw_watcher_fd() is ready for
 *      pgcw_watcher_events(), or pgcw_watcher_timeout_ms() passes, then call
 *      pgcw_watcher_process(). See examples/poll_loop.c and include/pgcachewatch/
 *      adapters/.
 *   2. Its own thread: pgcw_watcher_start() ... pgcw_watcher_stop().
 * pgcw_watcher_run() drives it on the calling thread for a while (for tools).
 *
 * Health and gaps. The watcher is healthy once it is connected and every LISTEN is
 * acknowledged. PostgreSQL drops notifications sent while a listener is
 * disconnected, so when the connection is lost the watcher at once becomes
 * unhealthy and puts a gap event (PGCW_GAP_DISCONNECTED) in every subscriber's
 * queue; then it reconnects with exponential backoff, re-LISTENs and, healthy
 * again, increments its epoch. A full subscriber queue also yields a gap
 * (PGCW_GAP_OVERFLOW), in that subscriber only. A consumer that sees a gap must drop
 * everything it cached. The watcher also pings an idle connection so a silently dead peer
 * is noticed.
 *
 * Threads. A watcher's driving calls (process, run, start/stop, free) must come
 * from one thread at a time. pgcw_watcher_healthy(), _epoch(), _stats(),
 * _dispatch() and all pgcw_sub_* calls are thread-safe and may be called from any
 * thread at any time while the watcher lives. The log callback runs on the thread
 * that drives the watcher, with no lock held.
 */
#ifndef PGCACHEWATCH_WATCHER_H
#define PGCACHEWATCH_WATCHER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "event.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pgcw_watcher pgcw_watcher;
typedef struct pgcw_sub pgcw_sub;

/* Zeroed means all defaults. Strings and arrays are borrowed for the duration of
 * pgcw_watcher_new() only (they are copied). */
typedef struct pgcw_watcher_opts {
    /* libpq connection string (key=value or URI). NULL: $PGDSN if set, else libpq's
     * defaults and PG* environment variables. */
    const char *conninfo;
    /* Channels to LISTEN on. n_channels == 0: { PGCW_DEFAULT_CHANNEL }. */
    const char *const *channels;
    size_t n_channels;
    /* Log a warning for events whose latency exceeds this. 0: 500 ms; < 0: never. */
    int64_t max_latency_ms;
    /* Reconnect backoff: first delay and cap, doubling with jitter.
     * 0: 100 ms and 5000 ms. */
    int64_t reconnect_min_ms;
    int64_t reconnect_max_ms;
    /* Connection attempt timeout. 0: 10000 ms. */
    int64_t connect_timeout_ms;
    /* Ping the server after this long without traffic; a ping unanswered within
     * ping_timeout_ms counts as a lost connection. 0: 10000 ms / 5000 ms;
     * ping_interval_ms < 0 disables pings. */
    int64_t ping_interval_ms;
    int64_t ping_timeout_ms;
    /* Default capacity of subscriber queues. 0: 4096 events. */
    size_t queue_capacity;
    pgcw_log_fn log;
    void *log_ctx;
} pgcw_watcher_opts;

/* Creates a watcher. Does no I/O: the first pgcw_watcher_process()/_run()/_start()
 * connects. *out is owned: free with pgcw_watcher_free().
 * Returns PGCW_OK, PGCW_EINVAL (bad channel name: empty or longer than 63 bytes)
 * or PGCW_ENOMEM. */
pgcw_status pgcw_watcher_new(const pgcw_watcher_opts *opts, pgcw_watcher **out);

/* Stops its thread if started, closes the connection, frees the watcher. Every
 * subscriber must be freed first. NULL is fine. */
void pgcw_watcher_free(pgcw_watcher *w);

/* The last error's detail (libpq's message, SQLSTATE when there is one); "" if
 * none. Borrowed: valid until the next call on the driving thread. */
const char *pgcw_watcher_errmsg(const pgcw_watcher *w);

/* --- Driving from your own event loop ------------------------------------------ */

#define PGCW_IO_READ 1
#define PGCW_IO_WRITE 2

/* The socket to wait on, or -1 when there is none right now (between reconnect
 * attempts: then wait for the timeout only). May change after every process call;
 * re-read it each time. */
int pgcw_watcher_fd(const pgcw_watcher *w);

/* PGCW_IO_READ and/or PGCW_IO_WRITE: what to wait for on the fd. */
int pgcw_watcher_events(const pgcw_watcher *w);

/* Milliseconds until pgcw_watcher_process() must be called even if the fd is not
 * ready (backoff, connect timeout, ping), or -1 for no deadline. */
int64_t pgcw_watcher_timeout_ms(const pgcw_watcher *w);

/* Does whatever is due without blocking: connects, reads notifications and hands
 * them to subscribers, pings, reconnects. Returns PGCW_OK (including while
 * reconnecting: a lost connection is not an error of this call; watch health) or
 * PGCW_ESTATE when the watcher is driven by its own thread. */
pgcw_status pgcw_watcher_process(pgcw_watcher *w);

/* Drives the watcher on the calling thread until timeout_ms passes (< 0: until
 * pgcw_watcher_interrupt()), poll(2)-based. Returns PGCW_OK when the time is up or
 * on interrupt, PGCW_ESTATE if the watcher has its own thread. */
pgcw_status pgcw_watcher_run(pgcw_watcher *w, int64_t timeout_ms);

/* Makes a pgcw_watcher_run() in progress return soon. Async-signal-safe and
 * thread-safe. */
void pgcw_watcher_interrupt(pgcw_watcher *w);

/* --- Driving with a thread of its own ------------------------------------------ */

/* Starts the background thread. Returns PGCW_ESTATE if already started. */
pgcw_status pgcw_watcher_start(pgcw_watcher *w);

/* Stops and joins the background thread; the connection is closed (unhealthy, with a
 * gap to every subscriber if it was healthy). Idempotent. */
pgcw_status pgcw_watcher_stop(pgcw_watcher *w);

/* --- Health -------------------------------------------------------------------- */

/* True while connected with every LISTEN acknowledged. Thread-safe. */
bool pgcw_watcher_healthy(const pgcw_watcher *w);

/* Starts at 0; incremented each time the watcher becomes healthy after not being
 * healthy, so the first successful connection makes it 1. Two reads with equal
 * epochs and healthy in between mean no notification was lost. Thread-safe. */
uint64_t pgcw_watcher_epoch(const pgcw_watcher *w);

/* Blocks until healthy or timeout_ms passes (< 0: forever). With its own thread
 * started, it just waits; otherwise it drives the watcher on the calling thread.
 * Returns PGCW_OK or PGCW_ETIMEDOUT (see pgcw_watcher_errmsg() for the last
 * connection error). */
pgcw_status pgcw_watcher_wait_healthy(pgcw_watcher *w, int64_t timeout_ms);

typedef struct pgcw_watcher_stats {
    uint64_t notifications; /* received from the server */
    uint64_t events;        /* parsed successfully */
    uint64_t malformed;     /* payloads that failed to parse (logged, skipped) */
    uint64_t late;          /* events over max_latency_ms */
    uint64_t connects;      /* successful connections */
    uint64_t disconnects;   /* connections lost */
    uint64_t gaps;          /* gap events delivered to subscribers, all reasons */
} pgcw_watcher_stats;

/* Copies the counters. Thread-safe. */
void pgcw_watcher_stats_get(const pgcw_watcher *w, pgcw_watcher_stats *out);

/* The backend pid of the current LISTEN connection, or 0 when not connected.
 * Thread-safe. (Used by tests that pg_terminate_backend() it.) */
int pgcw_watcher_backend_pid(const pgcw_watcher *w);

/* Delivers a copy of *event to every subscriber as if it had come from the server
 * (local invalidation; tests). The event is borrowed. Thread-safe. */
pgcw_status pgcw_watcher_dispatch(pgcw_watcher *w, const pgcw_event *event);

/* --- Subscribers --------------------------------------------------------------- */

/* Zeroed means defaults. */
typedef struct pgcw_sub_opts {
    /* Max queued events; 0: the watcher's queue_capacity. One more slot is kept
     * so that an overflow gap always fits. */
    size_t capacity;
} pgcw_sub_opts;

/* Adds a subscriber with its own bounded queue. It receives events from now on.
 * *out is owned: free with pgcw_sub_free() before freeing the watcher.
 * Thread-safe. */
pgcw_status pgcw_sub_new(pgcw_watcher *w, const pgcw_sub_opts *opts, pgcw_sub **out);

/* Removes the subscriber and frees its queue. A thread blocked in pgcw_sub_get() on
 * it must have returned first. NULL is fine. */
void pgcw_sub_free(pgcw_sub *s);

/*
 * Takes the oldest event. Blocks up to timeout_ms (0: do not wait; < 0: forever).
 * On PGCW_OK *out is owned: free with pgcw_event_free(). Returns PGCW_ETIMEDOUT
 * (or PGCW_EAGAIN when timeout_ms == 0) when the queue stayed empty. When the
 * queue overflowed, the events that did fit come first, then one gap event that
 * counts what was dropped, then newer events.
 */
pgcw_status pgcw_sub_get(pgcw_sub *s, int64_t timeout_ms, pgcw_event **out);

/* pgcw_sub_get(s, 0, out). */
pgcw_status pgcw_sub_try_get(pgcw_sub *s, pgcw_event **out);

/* Events waiting in the queue (a gap counts as one). Thread-safe. */
size_t pgcw_sub_pending(const pgcw_sub *s);

/* Number of gaps this subscriber has been sent so far (reconnects + overflows).
 * A consumer that remembers it can tell a gap happened even before it reads the
 * gap event. Thread-safe. */
uint64_t pgcw_sub_gap_count(const pgcw_sub *s);

/* The watcher this subscriber belongs to (borrowed). */
pgcw_watcher *pgcw_sub_watcher(const pgcw_sub *s);

#ifdef __cplusplus
}
#endif

#endif
