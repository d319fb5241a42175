/*
 * watcher_receiver.h - bench_watcher's receiving side: the collector that checks
 * and times every event, and the three receivers (bare libpq loop, watcher driven
 * from a poll loop, watcher with its own thread). Bench-only. Must never count an
 * event twice or one from another phase, and never wait forever for an event.
 */
#ifndef PGCW_BENCH_WATCHER_RECEIVER_H
#define PGCW_BENCH_WATCHER_RECEIVER_H

#include <poll.h>

#include <libpq-fe.h>

#include <pgcachewatch/pgcachewatch.h>

#include "watcher_common.h"
#include "watcher_sender.h"

/* --- what the receiver saw -------------------------------------------------------- */

typedef struct collector {
    long run;
    size_t expect; /* events the sender sends in this phase, seq 0..expect-1 */
    size_t skip;   /* seqs below this are warmup: counted, not measured */
    bool latency;
    unsigned char *seen;
    int64_t *lat;
    size_t n_lat;
    /* Watcher modes: from the watcher's reading of the notification (the event's
     * received_at_us) to the application having it: parsing, queueing, handoff. */
    int64_t *lib;
    size_t n_lib;
    size_t got, dups, stray;
    uint64_t lost, gaps; /* watcher queue overflows */
    int64_t first_us, last_us;
} collector;

static int collector_init(collector *c, long run, size_t expect, size_t skip,
                          bool latency)
{
    memset(c, 0, sizeof *c);
    c->run = run;
    c->expect = expect;
    c->skip = skip;
    c->latency = latency;
    c->seen = calloc(expect ? expect : 1, 1);
    c->lat = latency ? malloc((expect ? expect : 1) * sizeof *c->lat) : NULL;
    c->lib = latency ? malloc((expect ? expect : 1) * sizeof *c->lib) : NULL;
    return c->seen == NULL || (latency && (c->lat == NULL || c->lib == NULL)) ? -1 : 0;
}

static void collector_free(collector *c)
{
    free(c->seen);
    free(c->lat);
    free(c->lib);
}

/* now: CLOCK_MONOTONIC when the application has the event; lib_us: time spent in
 * the watcher (< 0: not known, the bare loop). */
static void collector_take(collector *c, const char *payload, int64_t now, int64_t lib_us)
{
    long long run, seq, sent;
    if (!payload_int(payload, "\"run\":", &run) || run != c->run ||
        !payload_int(payload, "\"seq\":", &seq) || seq < 0 || (size_t)seq >= c->expect) {
        c->stray++;
        return;
    }
    if (c->seen[seq]) {
        c->dups++;
        return;
    }
    c->seen[seq] = 1;
    if (c->got++ == 0)
        c->first_us = now;
    c->last_us = now;
    if (c->latency && (size_t)seq >= c->skip &&
        payload_int(payload, "\"mono_us\":", &sent)) {
        c->lat[c->n_lat++] = now - (int64_t)sent;
        if (lib_us >= 0)
            c->lib[c->n_lib++] = lib_us;
    }
}

static bool collector_done(const collector *c)
{
    return c->got + c->lost >= c->expect;
}

/* --- receivers -------------------------------------------------------------------- */

typedef struct receiver {
    int mode;
    const cfg *cfg;
    PGconn *conn;    /* bare */
    pgcw_watcher *w; /* watcher-* */
    pgcw_sub *sub;
    char err[512];
} receiver;

static void watcher_log(void *ctx, pgcw_log_level level, const char *message)
{
    const cfg *c = ctx;
    if (level >= PGCW_LOG_WARNING || c->verbose)
        fprintf(stderr, "watcher %s: %s\n", pgcw_log_level_name(level), message);
}

static int receiver_open(receiver *r, const cfg *c, int mode, const char *conninfo)
{
    memset(r, 0, sizeof *r);
    r->mode = mode;
    r->cfg = c;
    if (mode == MODE_SENDER)
        return 0;
    if (mode == MODE_BARE) {
        r->conn = PQconnectdb(conninfo);
        if (PQstatus(r->conn) != CONNECTION_OK) {
            errf(r->err, sizeof r->err, "bare: cannot connect: %s",
                 PQerrorMessage(r->conn));
            return -1;
        }
        PGresult *res = PQexec(r->conn, "LISTEN " CHANNEL);
        bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
        PQclear(res);
        if (!ok) {
            errf(r->err, sizeof r->err, "bare: LISTEN: %s", PQerrorMessage(r->conn));
            return -1;
        }
        return 0;
    }
    const char *channels[] = {CHANNEL};
    pgcw_conn_opts co;
    memset(&co, 0, sizeof co);
    co.conninfo = conninfo;
    pgcw_watcher_opts o;
    memset(&o, 0, sizeof o);
    o.channels = channels;
    o.n_channels = 1;
    o.max_latency_ms = -1; /* a benchmark is not interested in late-event warnings */
    o.queue_capacity = c->queue;
    o.log = watcher_log;
    o.log_ctx = (void *)c;
    pgcw_status st = pgcw_watcher_new(&o, &co, &r->w);
    if (st == PGCW_OK)
        st = pgcw_sub_new(r->w, NULL, &r->sub);
    if (st == PGCW_OK && mode == MODE_WTHREAD)
        st = pgcw_watcher_start(r->w);
    if (st == PGCW_OK)
        st = pgcw_watcher_wait_healthy(r->w, 10000);
    if (st != PGCW_OK) {
        errf(r->err, sizeof r->err, "%s: %s: %s", mode_names[mode], pgcw_strerror(st),
             r->w ? pgcw_watcher_errmsg(r->w) : "");
        return -1;
    }
    return 0;
}

static void receiver_close(receiver *r)
{
    if (r->conn)
        PQfinish(r->conn);
    pgcw_sub_free(r->sub);
    pgcw_watcher_free(r->w); /* stops its thread */
    r->conn = NULL;
    r->sub = NULL;
    r->w = NULL;
}

/* Shared by every waiting loop: gives up when the sender failed or when nothing has
 * arrived for the idle timeout (a lost notification must not hang the run). */
static int receiver_check(receiver *r, const collector *c, const sender *s,
                          size_t *seen_before, int64_t *progress_us)
{
    int64_t now = mono_us();
    size_t seen = c->got + c->dups + c->stray + c->lost;
    if (seen != *seen_before) {
        *seen_before = seen;
        *progress_us = now;
    }
    if (atomic_load(&s->failed)) {
        errf(r->err, sizeof r->err, "%s: the sender failed", mode_names[r->mode]);
        return -1;
    }
    if (now - *progress_us > r->cfg->idle_timeout_us) {
        errf(r->err, sizeof r->err,
             "%s: nothing delivered for %" PRId64 " ms (%zu of %zu events, %zu stray)",
             mode_names[r->mode], r->cfg->idle_timeout_us / 1000, c->got, c->expect,
             c->stray);
        return -1;
    }
    return 0;
}

static int collect_bare(receiver *r, collector *c, const sender *s)
{
    struct pollfd pfd = {.fd = PQsocket(r->conn), .events = POLLIN};
    size_t seen = 0;
    int64_t progress = mono_us();
    for (;;) {
        if (!PQconsumeInput(r->conn)) {
            errf(r->err, sizeof r->err, "bare: %s", PQerrorMessage(r->conn));
            return -1;
        }
        PGnotify *n;
        while ((n = PQnotifies(r->conn)) != NULL) {
            /* What an application does with it: a copy it owns. */
            char *payload = strdup(n->extra);
            PQfreemem(n);
            if (payload == NULL) {
                errf(r->err, sizeof r->err, "bare: out of memory");
                return -1;
            }
            collector_take(c, payload, mono_us(), -1);
            free(payload);
        }
        if (collector_done(c))
            return 0;
        if (receiver_check(r, c, s, &seen, &progress) != 0)
            return -1;
        if (poll(&pfd, 1, POLL_SLICE_MS) < 0 && errno != EINTR) {
            errf(r->err, sizeof r->err, "bare: poll: %s", strerror(errno));
            return -1;
        }
    }
}

static int take_event(receiver *r, collector *c, const pgcw_event *ev, int64_t now)
{
    int64_t lib_us = real_us() - ev->received_at_us;
    if (ev->kind == PGCW_EVENT_GAP) {
        if (ev->gap_reason != PGCW_GAP_OVERFLOW) {
            errf(r->err, sizeof r->err, "%s: gap (%s) during the measurement",
                 mode_names[r->mode], pgcw_gap_reason_name(ev->gap_reason));
            return -1;
        }
        c->gaps++;
        c->lost += ev->gap_lost;
        return 0;
    }
    collector_take(c, ev->payload ? ev->payload : "", now, lib_us < 0 ? 0 : lib_us);
    return 0;
}

static int collect_wloop(receiver *r, collector *c, const sender *s)
{
    size_t seen = 0;
    int64_t progress = mono_us();
    for (;;) {
        const pgcw_event *ev;
        pgcw_status st;
        while ((st = pgcw_sub_try_get(r->sub, &ev)) == PGCW_OK) {
            int rc = take_event(r, c, ev, mono_us());
            pgcw_event_free(ev);
            if (rc != 0)
                return -1;
        }
        if (st != PGCW_EAGAIN) {
            errf(r->err, sizeof r->err, "watcher-loop: pgcw_sub_try_get: %s",
                 pgcw_strerror(st));
            return -1;
        }
        if (collector_done(c))
            return 0;
        if (receiver_check(r, c, s, &seen, &progress) != 0)
            return -1;
        int fd = pgcw_watcher_fd(r->w), want = pgcw_watcher_events(r->w);
        int64_t timeout = pgcw_watcher_timeout_ms(r->w);
        int wait = timeout >= 0 && timeout < POLL_SLICE_MS ? (int)timeout : POLL_SLICE_MS;
        struct pollfd pfd = {.fd = fd,
                             .events = (short)((want & PGCW_IO_READ ? POLLIN : 0) |
                                               (want & PGCW_IO_WRITE ? POLLOUT : 0))};
        if (poll(&pfd, fd >= 0 ? 1 : 0, wait) < 0 && errno != EINTR) {
            errf(r->err, sizeof r->err, "watcher-loop: poll: %s", strerror(errno));
            return -1;
        }
        st = pgcw_watcher_process(r->w);
        if (st != PGCW_OK) {
            errf(r->err, sizeof r->err, "watcher-loop: process: %s: %s",
                 pgcw_strerror(st), pgcw_watcher_errmsg(r->w));
            return -1;
        }
    }
}

static int collect_wthread(receiver *r, collector *c, const sender *s)
{
    size_t seen = 0;
    int64_t progress = mono_us();
    for (;;) {
        const pgcw_event *ev;
        pgcw_status st = pgcw_sub_get(r->sub, POLL_SLICE_MS, &ev);
        if (st == PGCW_OK) {
            int rc = take_event(r, c, ev, mono_us());
            pgcw_event_free(ev);
            if (rc != 0)
                return -1;
            if (collector_done(c))
                return 0;
        } else if (st != PGCW_ETIMEDOUT) {
            errf(r->err, sizeof r->err, "watcher-thread: pgcw_sub_get: %s",
                 pgcw_strerror(st));
            return -1;
        }
        if (receiver_check(r, c, s, &seen, &progress) != 0)
            return -1;
    }
}

static int receiver_collect(receiver *r, collector *c, const sender *s)
{
    if (collector_done(c))
        return 0;
    switch (r->mode) {
    case MODE_BARE:
        return collect_bare(r, c, s);
    case MODE_WLOOP:
        return collect_wloop(r, c, s);
    case MODE_WTHREAD:
        return collect_wthread(r, c, s);
    default:
        return 0; /* sender-alone: nobody listens */
    }
}

#endif
