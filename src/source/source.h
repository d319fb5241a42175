/*
 * source.h - an event source behind one small interface: the watcher (the hub,
 * src/watch/) drives sources and knows nothing of how they get events; a source
 * knows nothing of subscribers, sinks or epochs and reports to the hub only
 * through pgcw__hub_ops. One file per implementation: source_listen.c
 * (LISTEN/NOTIFY), source_poll.c (a change-log table, polled); logical decoding
 * plugs in the same way.
 *
 * A source is driven by one thread at a time (the watcher's driving thread):
 * step() does whatever is due without blocking; fd(), events() and deadline_us()
 * say what to wait for before the next step. A source reports:
 *   healthy     it now receives everything that is sent (e.g. connected, every
 *               LISTEN acknowledged);
 *   unhealthy   it may have missed events from now on (lost, or an attempt failed);
 *               `permanent` when retrying the same settings will not fix it;
 *   deliver     decoded events, in order; the hub takes over the references;
 *   error       the detail of its last problem ("" when it is healthy again).
 * It must never call the hub with a lock of its own held, and never block.
 */
#ifndef PGCW_SOURCE_H
#define PGCW_SOURCE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pgcachewatch/conn.h"
#include "pgcachewatch/event.h"

typedef struct pgcw__source pgcw__source;

/* What the hub offers its sources; hub is the first argument of every call. */
typedef struct pgcw__hub_ops {
    void (*healthy)(void *hub, pgcw__source *src);
    void (*unhealthy)(void *hub, pgcw__source *src, bool lost, bool permanent);
    /* events[0..n) are the caller's references, handed over. */
    void (*deliver)(void *hub, pgcw__source *src, pgcw_event **events, size_t n);
    /* msg: one line, no password; "" clears. */
    void (*error)(void *hub, pgcw__source *src, const char *msg);
    /* The hub's epoch (stamped on delivered events). */
    uint64_t (*epoch)(void *hub);
    /* Events were lost while the source stays healthy (the poll source: rows it
     * had not read were pruned): a gap with this reason to every subscriber and
     * sink. lost: events known lost, 0 if unknown. */
    void (*gap)(void *hub, pgcw__source *src, pgcw_gap_reason reason, uint64_t lost);
} pgcw__hub_ops;

typedef struct pgcw__source_vt {
    const char *name; /* "listen" */
    /* One non-blocking step. revents: what poll(2) reported for fd() as PGCW_IO_*,
     * or -1 when unknown (then input is tried). */
    void (*step)(pgcw__source *s, int revents);
    int (*fd)(const pgcw__source *s);     /* -1: none right now */
    int (*events)(const pgcw__source *s); /* PGCW_IO_* */
    /* Monotonic time (us) by which step() must run even without I/O; PGCW__NEVER
     * for none; <= now: at once. */
    int64_t (*deadline_us)(const pgcw__source *s);
    /* Drops the connection and goes idle; the next step() starts over. Reports
     * unhealthy (not lost) if it was healthy. */
    void (*close)(pgcw__source *s);
    /* The server backend serving it, 0 when none. Thread-safe. */
    int (*backend_pid)(const pgcw__source *s);
    void (*free)(pgcw__source *s);
} pgcw__source_vt;

/* The part every source shares; implementations embed it first. */
struct pgcw__source {
    const pgcw__source_vt *vt;
    const pgcw__hub_ops *hub_ops;
    void *hub;
    pgcw_log_fn log;
    void *log_ctx;
    atomic_bool healthy; /* written by the hub's healthy/unhealthy */
    /* Counters (relaxed atomics, summed by the hub's stats). */
    atomic_uint_fast64_t st_notifications, st_events, st_key_events, st_malformed,
        st_late, st_connects, st_disconnects, st_conn_errors;
    /* The server's NOTIFY queue usage at the last answered ping, in parts per
     * billion (a relaxed atomic; 0 until one answers). */
    atomic_uint_fast64_t st_queue_usage_ppb;
    /* The logical source: the WAL its slot retains past the confirmed position as
     * of the server's last report, and that position (relaxed atomics; 0 for
     * other sources). */
    atomic_uint_fast64_t st_slot_lag_bytes, st_confirmed_lsn;
    /* The connection a source holds through source_link.h (set by
     * pgcw__link_init()), so the link's vtable entries can find it; else NULL. */
    struct pgcw__link *link;
};

/* What the LISTEN source needs; strings and arrays are copied. */
typedef struct pgcw__listen_cfg {
    const pgcw_conn_opts *conn;
    const char *const *channels;        /* n_channels >= 1, each 1..63 bytes */
    const pgcw_payload_format *formats; /* parallel; NULL: AUTO */
    size_t n_channels;
    int64_t max_latency_us;   /* < 0: never warn */
    int64_t ping_interval_us; /* < 0: no pings */
    int64_t ping_timeout_us;
    pgcw_log_fn log;
    void *log_ctx;
    /* Probe each connection (source_probe.h): healthy only once a notification
     * sent from a second session came back within probe_timeout_us. */
    bool probe;
    int64_t probe_timeout_us;
} pgcw__listen_cfg;

/* Creates the LISTEN source (no I/O). Returns PGCW_OK or PGCW_ENOMEM. */
pgcw_status pgcw__source_listen_new(const pgcw__listen_cfg *cfg, const pgcw__hub_ops *ops,
                                    void *hub, pgcw__source **out);

/* What the poll source needs (source_poll.c; docs/source_poll.md); strings are
 * copied. */
typedef struct pgcw__poll_cfg {
    const pgcw_conn_opts *conn;
    const char *channel;        /* 1..63 bytes: whose change log is read */
    pgcw_payload_format format; /* how its payloads are decoded */
    int64_t interval_us;        /* between polls (> 0) */
    int64_t retention_ms;       /* rows older than this are pruned (> 0) */
    int64_t timeout_us;         /* a poll unanswered this long: connection lost */
    int64_t max_latency_us;     /* < 0: never warn */
    pgcw_log_fn log;
    void *log_ctx;
} pgcw__poll_cfg;

/* Creates the poll source (no I/O). Returns PGCW_OK or PGCW_ENOMEM. */
pgcw_status pgcw__source_poll_new(const pgcw__poll_cfg *cfg, const pgcw__hub_ops *ops,
                                  void *hub, pgcw__source **out);

/* What the LISTEN source does with the NOTIFY queue usage a ping read (0..1):
 * records it for the statistics and warns when it passes half (again only after
 * it fell below a quarter). Called by the ping's result; tests call it directly,
 * since a full queue takes 8 GB of notifications. */
void pgcw__source_listen_queue_usage(pgcw__source *s, double usage);

#endif
