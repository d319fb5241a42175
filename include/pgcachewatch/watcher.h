/*
 * pgcachewatch/watcher.h - the hub: event sources in, subscribers and sinks out.
 *
 * A watcher owns its sources (today one: a dedicated libpq connection that LISTENs
 * on any number of channels, or, with source PGCW_WATCH_POLL, one that polls a
 * change log: see "Polling" below). Each notification is decoded by its channel's
 * decoder into a pgcw_event and handed to every consumer:
 *
 *   subscribers  a bounded queue each (pgcw_sub_*), drained by their owner at its
 *                own pace (strategies, `pgcachewatch listen`); several consumers
 *                never steal each other's events;
 *   sinks        a callback each (pgcw_sink_*), run synchronously on the thread
 *                that delivers the event, before any queue gets it, with no lock
 *                held: for consumers that must act before the next read (an L1
 *                evicting a key).
 *
 * Two ways to drive it, pick one per watcher:
 *   1. Your event loop: wait until pgcw_watcher_fd() is ready for
 *      pgcw_watcher_events(), or pgcw_watcher_timeout_ms() passes, then call
 *      pgcw_watcher_process(). See examples/poll_loop.c and include/pgcachewatch/
 *      adapters/.
 *   2. Its own thread: pgcw_watcher_start() ... pgcw_watcher_stop().
 * pgcw_watcher_run() drives it on the calling thread for a while (for tools).
 *
 * Health and gaps. A source is healthy once connected with every LISTEN
 * acknowledged; the watcher is healthy while every source is. PostgreSQL drops
 * notifications sent while a listener is disconnected, so when a source loses its
 * connection the watcher at once becomes unhealthy and puts a gap event
 * (PGCW_GAP_DISCONNECTED) in every subscriber's queue and through every sink; the
 * source reconnects with exponential backoff and jitter, re-LISTENs and, once every
 * source is healthy again, the watcher increments its epoch. A full subscriber
 * queue also yields a gap (PGCW_GAP_OVERFLOW), in that subscriber only. A consumer
 * that sees a gap must drop everything it cached. Sources ping an idle connection
 * so a silently dead peer is noticed, and their sessions are exempt from the
 * server's idle_session_timeout (a LISTEN session is always idle to the server).
 *
 * Logical decoding (opts.source = PGCW_WATCH_LOGICAL, since 0.4; the slot and
 * publication come from pgcachewatch install --source logical, install.h). The
 * source is one replication connection (replication=database; the role needs the
 * REPLICATION attribute) that checks the slot (opts.slot_name, default
 * "pgcachewatch_<first channel>"; a missing slot, or one that is not a pgoutput
 * slot of this database, fails pgcw_watcher_wait_healthy() with PGCW_ECONNECT and
 * an error naming the install command), then streams pgoutput (protocol version
 * 1) for the publication (opts.publication, default "pgcachewatch_<first
 * channel>_pub"). No trigger runs on the writers' path. Events (event.h) carry
 * PGCW_SOURCE_LOGICAL, the first channel (default PGCW_DEFAULT_CHANNEL), schema,
 * table, the replica identity's column names and values as pk_columns and keys
 * (an update that changes the key: the old key, then the new), the commit time
 * as sent_at_us and the commit LSN as lsn; a TRUNCATE is one event per table,
 * without keys. pgoutput sends only committed transactions, in commit order, so a
 * rolled-back one yields nothing. A transaction's events are delivered when its
 * commit arrives (one of more than 4096 changes in pieces of 4096 before that:
 * it has committed already), and its end position is confirmed to the server
 * (a standby status update) only after deliver returned, i.e. after every sink
 * ran and every queue holds the events. The slot keeps everything after the
 * confirmed position, so a lost connection loses nothing: the next one resumes
 * at the slot and may deliver again the transactions after the position the
 * server last received (whole, from their first event); commit LSNs only grow, so
 * a repeated event is one whose lsn was seen already. The watcher still reports
 * the loss as a gap, as for any source.
 * Status updates asking for an answer go every ping_interval_ms and an answer
 * must come within ping_timeout_ms. stats.confirmed_lsn is the slot's position
 * (read at each connect, then what this watcher confirmed) and
 * stats.slot_lag_bytes the server's WAL end (read at connect, then as its
 * messages say) minus it: the WAL the slot makes the server keep
 * (docs/source_logical.md on what a stalled or abandoned slot costs).
 * With opts.temporary_slot the watcher needs no install: at each connect it makes
 * slot_name as a TEMPORARY slot (CREATE_REPLICATION_SLOT ... TEMPORARY), which the
 * server drops when the connection ends, so a process that dies leaves no slot
 * retaining WAL; the publication must exist. Such a slot starts at the server's
 * current position, so a reconnect does lose what was committed meanwhile: the
 * gap says so. The name must be unique in the cluster while in use (a name still
 * held by the previous connection's backend fails that attempt, which is retried
 * with backoff). pgcw_cache's PGCW_CACHE_NOTIFY_LOGICAL uses this.
 *
 * Polling (opts.source = PGCW_WATCH_POLL; docs/source_poll.md). For connections
 * where LISTEN does not work (PgBouncer in transaction pooling mode): instead of
 * LISTENing, one plain connection reads the channel's change log (install.h,
 * source PGCW_WATCH_POLL) every poll_interval_ms (0: 250 ms), in (xid, seq) order
 * and only rows of transactions older than the oldest one still running, so a
 * transaction that commits late is delivered once it commits, never skipped.
 * Events are decoded as LISTEN's are (formats[0]) and carry PGCW_SOURCE_POLL and
 * backend_pid 0. One channel (n_channels 0 or 1); the change log of the default
 * function name (PGCW_DEFAULT_FUNCTION_NAME). The first read is "now": what had
 * committed before it is not delivered. The position is kept in the watcher, so a
 * lost connection loses nothing while the rows are kept: the watcher is unhealthy
 * meanwhile (a PGCW_GAP_DISCONNECTED gap, as for LISTEN, since nothing is read
 * then) and, reconnected, delivers what was written meanwhile. Rows it had not
 * read that were pruned are a PGCW_GAP_PRUNED gap. The watcher prunes rows older
 * than changelog_retention_ms (0: 10 minutes) every min(retention / 4, 60 s); a
 * read unanswered within ping_timeout_ms is a lost connection; ping_interval_ms
 * is not used. No change log for the channel: a permanent error (wait_healthy
 * returns PGCW_ECONNECT) that says to install one. Each statement stands alone
 * (no session state), so it works through a transaction-mode pooler.
 *
 * Threads. A watcher's driving calls (process, run, start/stop, free) must come
 * from one thread at a time. pgcw_watcher_healthy(), _epoch(), _stats(),
 * _dispatch(), _errmsg() and all pgcw_sub_* and pgcw_sink_* calls are thread-safe
 * and may be called from any thread at any time while the watcher lives. The log
 * callback runs on the thread that drives the watcher, sinks on the thread that
 * delivers (the driving thread, or the caller of pgcw_watcher_dispatch()), both
 * with no lock held.
 */
#ifndef PGCACHEWATCH_WATCHER_H
#define PGCACHEWATCH_WATCHER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "conn.h"
#include "event.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pgcw_watcher pgcw_watcher;
typedef struct pgcw_sub pgcw_sub;
typedef struct pgcw_sink pgcw_sink;

/* Zeroed means all defaults. Strings and arrays are borrowed for the duration of
 * pgcw_watcher_new() only (they are copied). Grows at the end only (docs/abi.md). */
typedef struct pgcw_watcher_opts {
    /* Channels to LISTEN on. n_channels == 0: { PGCW_DEFAULT_CHANNEL }. */
    const char *const *channels;
    size_t n_channels;
    /* How each channel's payloads are decoded, parallel to channels (the default
     * channel's is formats[0]). NULL: PGCW_FORMAT_AUTO for every channel. */
    const pgcw_payload_format *formats;
    /* Log a warning for events whose latency exceeds this. 0: 500 ms; < 0: never. */
    int64_t max_latency_ms;
    /* Ping the server after this long without traffic; a ping unanswered within
     * ping_timeout_ms counts as a lost connection. 0: 10000 ms / 5000 ms;
     * ping_interval_ms < 0 disables pings. Huge values mean never. */
    int64_t ping_interval_ms;
    int64_t ping_timeout_ms;
    /* Default capacity of subscriber queues. 0: 4096 events. */
    size_t queue_capacity;
    pgcw_log_fn log;
    void *log_ctx;
    /* --- since 0.4 ------------------------------------------------------------ */
    /* Where events come from. PGCW_WATCH_LISTEN (0): LISTEN on the channels above.
     * Other values, and the fields below, are described where they are supported;
     * a value this library does not support is PGCW_EINVAL. */
    pgcw_watch_source source;
    const char *slot_name;          /* logical decoding */
    const char *publication;        /* logical decoding */
    int64_t poll_interval_ms;       /* polling */
    int64_t changelog_retention_ms; /* polling */
    bool temporary_slot;            /* logical decoding: see the top of the file */
    /* LISTEN: skip the self-probe. By default each LISTEN connection, once its
     * LISTENs are acknowledged, has a second, short-lived session send a
     * notification on a channel of its own (pgcw_probe_<pid>_<hex>, never an
     * event), and becomes healthy only when it comes back. When it does not come
     * back within ping_timeout_ms of its commit (connecting and sending have the
     * connect timeout), LISTEN does not work through this connection
     * (PgBouncer in transaction pooling mode, or a proxy like it): a permanent
     * error (wait_healthy returns PGCW_ECONNECT; errmsg and the log say so and
     * name the polling source), and the watcher retries with backoff. If the
     * second session cannot connect or send in time, the probe is skipped with a
     * warning. Its cost: one extra connection and a round trip at each (re)connect
     * (docs/source_poll.md). */
    bool skip_listen_probe;
} pgcw_watcher_opts;

/* Creates a watcher. conn: how to connect (conn.h; NULL: all defaults, i.e.
 * $PGDSN and libpq's PG* variables), including the connect timeout and the
 * reconnect backoff. Does no I/O: the first pgcw_watcher_process()/_run()/_start()
 * connects. *out is owned: free with pgcw_watcher_free().
 * Returns PGCW_OK, PGCW_EINVAL (bad channel name: empty or longer than 63 bytes;
 * an unknown format; options from a newer header that set a field this library
 * does not know) or PGCW_ENOMEM. */
pgcw_status pgcw_watcher_new_sized(const pgcw_watcher_opts *opts, size_t opts_size,
                                   const pgcw_conn_opts *conn, size_t conn_size,
                                   pgcw_watcher **out);
#define pgcw_watcher_new(opts, conn, out)                                                \
    pgcw_watcher_new_sized((opts), sizeof(pgcw_watcher_opts), (conn),                    \
                           sizeof(pgcw_conn_opts), (out))

/* Stops its thread if started, closes the connections, frees the watcher. Every
 * subscriber and sink must be freed first. NULL is fine. */
void pgcw_watcher_free(pgcw_watcher *w);

/* The last connection problem (libpq's message, with the SQLSTATE when the server
 * sent one; never a password); "" while every source is healthy. Borrowed: valid
 * until the next call on this watcher from the same thread. */
const char *pgcw_watcher_errmsg(const pgcw_watcher *w);

/* --- Driving from your own event loop ------------------------------------------ */

/* PGCW_IO_READ / PGCW_IO_WRITE: common.h. */

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

/* True while every source is healthy (connected, every LISTEN acknowledged).
 * Thread-safe. */
bool pgcw_watcher_healthy(const pgcw_watcher *w);

/* Starts at 0; incremented each time the watcher becomes healthy after not being
 * healthy, so the first successful connection makes it 1. Two reads with equal
 * epochs and healthy in between mean no notification was lost. Thread-safe. */
uint64_t pgcw_watcher_epoch(const pgcw_watcher *w);

/* Blocks until healthy or timeout_ms passes (< 0: forever). With its own thread
 * started, it just waits; otherwise it drives the watcher on the calling thread.
 * Returns PGCW_OK, PGCW_ETIMEDOUT, or PGCW_ECONNECT as soon as an attempt made
 * during the wait fails for a reason that retrying will not fix by itself (the
 * server refused the role or the password, SQLSTATE class 28; the database does
 * not exist, 3D000; the role lacks a privilege the connection needs, 42501, e.g.
 * REPLICATION for logical decoding; settings libpq cannot parse; for logical
 * decoding, a slot that is missing, not a pgoutput slot of the database, or
 * invalidated). The watcher keeps retrying in the
 * background either way (the database may be created later); pgcw_watcher_errmsg()
 * says what the error is. */
pgcw_status pgcw_watcher_wait_healthy(pgcw_watcher *w, int64_t timeout_ms);

typedef struct pgcw_watcher_stats {
    uint64_t notifications; /* received from the server */
    uint64_t events;        /* decoded successfully */
    uint64_t malformed;     /* payloads that failed to decode (logged, skipped) */
    uint64_t late;          /* events over max_latency_ms */
    uint64_t connects;      /* successful connections */
    uint64_t disconnects;   /* connections lost */
    uint64_t gaps;          /* gap events delivered to subscribers, all reasons */
    /* --- since 0.2 ------------------------------------------------------------ */
    uint64_t key_events;  /* of events: cache key events */
    uint64_t sink_calls;  /* sink callbacks run (events and gaps) */
    uint64_t conn_errors; /* failed connection attempts (permanent ones included) */
    /* The server's NOTIFY queue, as pg_notification_queue_usage() said at the last
     * ping (0..1; every ping asks). A listener that stops reading (a session
     * holding a transaction open) keeps the queue from advancing; when it fills,
     * every pg_notify() and so every notifying write fails. The watcher logs a
     * warning when it passes 0.5 (again after it fell below 0.25). */
    double notify_queue_usage;
    /* --- since 0.4 ------------------------------------------------------------ */
    uint64_t slot_lag_bytes; /* logical decoding: WAL the slot retains past its
                              * confirmed position, as last reported; else 0 */
    uint64_t confirmed_lsn;  /* logical decoding: the last confirmed position */
} pgcw_watcher_stats;

/* Copies the counters. Thread-safe. */
void pgcw_watcher_stats_get_sized(const pgcw_watcher *w, pgcw_watcher_stats *out,
                                  size_t out_size);
#define pgcw_watcher_stats_get(w, out)                                                   \
    pgcw_watcher_stats_get_sized((w), (out), sizeof(pgcw_watcher_stats))

/* The backend pid of the current LISTEN connection, or 0 when not connected.
 * Thread-safe. (Used by tests that pg_terminate_backend() it.) */
int pgcw_watcher_backend_pid(const pgcw_watcher *w);

/* Delivers *event to every sink and subscriber as if a source had received it (a
 * local invalidation; tests). The event is borrowed and must have been made by the
 * library (pgcw_event_parse(), _new_key(), _new_gap(), _clone() or a queue). Sinks
 * run on the calling thread. Thread-safe. */
pgcw_status pgcw_watcher_dispatch(pgcw_watcher *w, const pgcw_event *event);

/* --- Subscribers --------------------------------------------------------------- */

/* Zeroed means defaults. Grows at the end only. */
typedef struct pgcw_sub_opts {
    /* Max queued events; 0: the watcher's queue_capacity. One more slot is kept
     * so that an overflow gap always fits. */
    size_t capacity;
} pgcw_sub_opts;

/* Adds a subscriber with its own bounded queue. It receives events from now on.
 * opts NULL means zeroed. *out is owned: free with pgcw_sub_free() before freeing
 * the watcher. Thread-safe. */
pgcw_status pgcw_sub_new_sized(pgcw_watcher *w, const pgcw_sub_opts *opts,
                               size_t opts_size, pgcw_sub **out);
#define pgcw_sub_new(w, opts, out)                                                       \
    pgcw_sub_new_sized((w), (opts), sizeof(pgcw_sub_opts), (out))

/* Removes the subscriber and frees its queue. A thread blocked in pgcw_sub_get() on
 * it must have returned first. NULL is fine. */
void pgcw_sub_free(pgcw_sub *s);

/*
 * Takes the oldest event. Blocks up to timeout_ms (0: do not wait; < 0 or huge:
 * forever). On PGCW_OK *out is a reference the caller owns: release it with
 * pgcw_event_free() (the event itself may be shared with other queues, hence
 * const). Returns PGCW_ETIMEDOUT
 * (or PGCW_EAGAIN when timeout_ms == 0) when the queue stayed empty. When the
 * queue overflowed, the events that did fit come first, then one gap event that
 * counts what was dropped, then newer events.
 */
pgcw_status pgcw_sub_get(pgcw_sub *s, int64_t timeout_ms, const pgcw_event **out);

/* pgcw_sub_get(s, 0, out). */
pgcw_status pgcw_sub_try_get(pgcw_sub *s, const pgcw_event **out);

/* Events waiting in the queue (a gap counts as one). Thread-safe. */
size_t pgcw_sub_pending(const pgcw_sub *s);

/* Number of gaps this subscriber has been sent so far (reconnects + overflows).
 * A consumer that remembers it can tell a gap happened even before it reads the
 * gap event. Thread-safe. */
uint64_t pgcw_sub_gap_count(const pgcw_sub *s);

/* The watcher this subscriber belongs to (borrowed). */
pgcw_watcher *pgcw_sub_watcher(const pgcw_sub *s);

/* --- Sinks --------------------------------------------------------------------- */

/* Called once per event, on the thread that delivers it (see the top of this
 * file), with no lock held: it may call any pgcw_* function, pgcw_sink_free() on
 * its own sink included, but should return quickly (it delays every other consumer
 * of the watcher). `event` is borrowed for the call: pgcw_event_clone() it to keep
 * it. Gaps come through as gap events. */
typedef void (*pgcw_sink_fn)(void *ctx, const pgcw_event *event);

/* Grows at the end only. */
typedef struct pgcw_sink_opts {
    pgcw_sink_fn fn; /* required */
    void *ctx;
} pgcw_sink_opts;

/* Adds a sink: fn sees every event delivered from now on. *out is owned: free with
 * pgcw_sink_free() before freeing the watcher. Returns PGCW_OK, PGCW_EINVAL (no fn)
 * or PGCW_ENOMEM. Thread-safe. */
pgcw_status pgcw_sink_new_sized(pgcw_watcher *w, const pgcw_sink_opts *opts,
                                size_t opts_size, pgcw_sink **out);
#define pgcw_sink_new(w, opts, out)                                                      \
    pgcw_sink_new_sized((w), (opts), sizeof(pgcw_sink_opts), (out))

/* Removes the sink. Once it returns, fn is not running on any other thread and is
 * never called again; called from inside fn itself (any sink's), the sink is freed
 * when that callback returns. NULL is fine. Thread-safe. */
void pgcw_sink_free(pgcw_sink *s);

#ifdef __cplusplus
}
#endif

#endif
