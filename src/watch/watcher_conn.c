/*
 * watcher_conn.c - the LISTEN connection as a non-blocking state machine:
 * connect, LISTEN, read notifications, ping when idle, notice a loss, back off and
 * reconnect. Also the event-loop interface (fd, events, timeout, process).
 *
 * Every libpq call here is non-blocking: PQgetResult only when !PQisBusy, output
 * through PQflush. Must never block, never hand a PGnotify/PGresult out, and never
 * hold a lock while calling libpq or the log callback.
 */
#define _POSIX_C_SOURCE 200809L
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "watcher_internal.h"

#define BATCH 64

static void warn(pgcw_watcher *w, const char *msg)
{
    pgcw__logf(w->log, w->log_ctx, PGCW_LOG_WARNING, "%s", msg);
}

static int64_t ceil_ms(int64_t us)
{
    return us <= 0 ? 0 : (us + 999) / 1000;
}

/* libpq's text without its trailing newline(s). */
static void trimmed(char *dst, size_t len, const char *src)
{
    pgcw__errf(dst, len, "%s", src ? src : "");
    size_t n = strlen(dst);
    while (n > 0 && (dst[n - 1] == '\n' || dst[n - 1] == ' '))
        dst[--n] = '\0';
}

static void result_message(char *dst, size_t len, const PGresult *res)
{
    char msg[512];
    trimmed(msg, sizeof msg, PQresultErrorMessage(res));
    const char *sqlstate = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    pgcw__errf(dst, len, "%s%s%s%s", msg, sqlstate ? " (SQLSTATE " : "",
               sqlstate ? sqlstate : "", sqlstate ? ")" : "");
}

/* libpq routes an error that arrives outside a query (the FATAL a terminated
 * backend sends before closing) to the notice receiver; its default prints to
 * stderr, which a library must never do. Keep it for the loss message instead. */
static void on_notice(void *arg, const PGresult *res)
{
    pgcw_watcher *w = arg;
    result_message(w->notice, sizeof w->notice, res);
}

static uint64_t next_rand(pgcw_watcher *w)
{
    uint64_t x = w->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return w->rng = x;
}

/* Half the current base plus up to the other half at random ("equal jitter"), so a
 * fleet that lost the same server does not come back in lockstep. */
static int64_t next_backoff_us(pgcw_watcher *w)
{
    int64_t base = w->backoff_us;
    int64_t delay = base / 2 + (int64_t)(next_rand(w) % (uint64_t)(base / 2 + 1));
    w->backoff_us = base > w->reconnect_max_us / 2 ? w->reconnect_max_us : base * 2;
    return delay;
}

/* Ends the current attempt or connection: records why, drops the connection,
 * marks the watcher unhealthy (gaps, if it was healthy) and schedules the next
 * attempt. what: "connection lost", "could not connect", ... */
static void conn_failed(pgcw_watcher *w, const char *what, const char *detail)
{
    char libpq_msg[512] = "";
    if (!detail && w->conn) {
        trimmed(libpq_msg, sizeof libpq_msg, PQerrorMessage(w->conn));
        detail = libpq_msg;
    }
    char notice[sizeof w->notice];
    memcpy(notice, w->notice, sizeof notice);
    w->notice[0] = '\0';
    bool have_notice = notice[0] && (!detail || !strstr(detail, notice));
    char err[sizeof w->err];
    pgcw__errf(err, sizeof err, "%s: %s%s%s%s", what,
               detail && *detail ? detail : "unknown error",
               have_notice ? " (server: " : "", have_notice ? notice : "",
               have_notice ? ")" : "");
    pgcw__watcher_set_err(w, "%s", err);

    pgcw__watcher_close_conn(w);
    bool lost = pgcw__watcher_became_unhealthy(w, true);
    int64_t delay = next_backoff_us(w);
    w->st = PGCW__ST_BACKOFF;
    w->deadline_us = pgcw__mono_us() + delay;

    char msg[sizeof err + 64];
    pgcw__errf(msg, sizeof msg, "%s%s; retrying in %lld ms",
               lost ? "LISTEN connection: " : "", err, (long long)ceil_ms(delay));
    warn(w, msg);
}

static void start_connect(pgcw_watcher *w)
{
    /* Payloads are parsed as UTF-8 (invalid sequences are refused), so have the
     * server convert them whatever the database's encoding; set after dbname so it
     * wins over a client_encoding in the connection string. */
    const char *const keys[] = {"dbname", "fallback_application_name", "client_encoding",
                                NULL};
    const char *const vals[] = {w->conninfo, "pgcachewatch", "UTF8", NULL};
    w->notice[0] = '\0';
    w->conn = PQconnectStartParams(keys, vals, 1);
    if (!w->conn) {
        conn_failed(w, "could not connect", "out of memory");
        return;
    }
    PQsetNoticeReceiver(w->conn, on_notice, w);
    if (PQstatus(w->conn) == CONNECTION_BAD) {
        conn_failed(w, "could not connect", NULL);
        return;
    }
    w->st = PGCW__ST_CONNECTING;
    /* libpq: act as if PQconnectPoll had returned PGRES_POLLING_WRITING. */
    w->poll_events = PGCW_IO_WRITE;
    w->deadline_us = pgcw__mono_us() + w->connect_timeout_us;
}

static bool flush(pgcw_watcher *w)
{
    int r = PQflush(w->conn);
    if (r < 0) {
        conn_failed(w, w->st == PGCW__ST_READY ? "connection lost" : "could not connect",
                    NULL);
        return false;
    }
    w->flush_pending = r == 1;
    return true;
}

/* Connected: LISTEN on every channel in one round trip. Channel names are quoted
 * identifiers, so "Orders" and "a-b" work and nothing is pasted into SQL. */
static void send_listen(pgcw_watcher *w)
{
    if (PQsetnonblocking(w->conn, 1) != 0) {
        conn_failed(w, "could not connect", NULL);
        return;
    }
    atomic_store_explicit(&w->backend_pid, PQbackendPID(w->conn), memory_order_relaxed);
    pgcw__buf sql = {0};
    for (size_t i = 0; i < w->n_channels; i++) {
        char *q = PQescapeIdentifier(w->conn, w->channels[i], strlen(w->channels[i]));
        if (!q) {
            pgcw__buf_free(&sql);
            conn_failed(w, "bad channel name", NULL);
            return;
        }
        pgcw__buf_appendf(&sql, "LISTEN %s;", q);
        PQfreemem(q);
    }
    if (sql.failed) {
        pgcw__buf_free(&sql);
        conn_failed(w, "could not connect", "out of memory");
        return;
    }
    int ok = PQsendQuery(w->conn, sql.data);
    pgcw__buf_free(&sql);
    if (!ok) {
        conn_failed(w, "LISTEN failed", NULL);
        return;
    }
    w->query = PGCW__Q_LISTEN;
    w->listen_ok = 0;
    w->st = PGCW__ST_LISTENING;
    flush(w);
}

static bool fd_ready(int fd, int want)
{
    struct pollfd p = {.fd = fd,
                       .events = (short)((want & PGCW_IO_READ ? POLLIN : 0) |
                                         (want & PGCW_IO_WRITE ? POLLOUT : 0))};
    return poll(&p, 1, 0) > 0;
}

static void connect_step(pgcw_watcher *w, int revents)
{
    /* PQconnectPoll may only be called once the socket is ready. */
    bool ready = revents < 0 ? fd_ready(PQsocket(w->conn), w->poll_events)
                             : (revents & w->poll_events) != 0;
    if (ready) {
        switch (PQconnectPoll(w->conn)) {
        case PGRES_POLLING_READING:
            w->poll_events = PGCW_IO_READ;
            break;
        case PGRES_POLLING_WRITING:
            w->poll_events = PGCW_IO_WRITE;
            break;
        case PGRES_POLLING_OK:
            send_listen(w);
            return;
        default:
            conn_failed(w, "could not connect", NULL);
            return;
        }
    }
    if (pgcw__mono_us() >= w->deadline_us) {
        char d[64];
        pgcw__errf(d, sizeof d, "timeout expired after %lld ms",
                   (long long)(w->connect_timeout_us / 1000));
        conn_failed(w, "could not connect", d);
    }
}

static void listen_result(pgcw_watcher *w, PGresult *res)
{
    if (PQresultStatus(res) == PGRES_COMMAND_OK) {
        w->listen_ok++;
    } else if (!w->listen_error) {
        char msg[512];
        result_message(msg, sizeof msg, res);
        w->listen_error = pgcw__strdup(msg);
    }
}

/* The LISTEN round trip finished. Returns false if the connection was dropped. */
static bool listen_done(pgcw_watcher *w)
{
    w->query = PGCW__Q_NONE;
    if (w->listen_error || w->listen_ok != (int)w->n_channels) {
        char d[512];
        pgcw__errf(d, sizeof d, "%s", w->listen_error ? w->listen_error : "no result");
        conn_failed(w, "LISTEN failed", d);
        return false;
    }
    w->st = PGCW__ST_READY;
    w->last_rx_us = pgcw__mono_us();
    w->backoff_us = w->reconnect_min_us;
    pgcw__watcher_set_err(w, "%s", "");
    pgcw__watcher_became_healthy(w);
    pgcw__logf(w->log, w->log_ctx, PGCW_LOG_INFO,
               "listening on %zu channel(s), backend pid %d, epoch %llu", w->n_channels,
               PQbackendPID(w->conn), (unsigned long long)pgcw_watcher_epoch(w));
    return true;
}

/* Results of our own queries (LISTEN, ping). Returns false if the connection was
 * dropped. */
static bool read_results(pgcw_watcher *w)
{
    while (w->query != PGCW__Q_NONE && !PQisBusy(w->conn)) {
        PGresult *res = PQgetResult(w->conn);
        w->last_rx_us = pgcw__mono_us();
        if (!res) {
            if (w->query == PGCW__Q_LISTEN)
                return listen_done(w);
            w->query = PGCW__Q_NONE; /* ping answered */
            return true;
        }
        if (w->query == PGCW__Q_LISTEN)
            listen_result(w, res);
        PQclear(res);
    }
    return true;
}

static void warn_malformed(pgcw_watcher *w, const char *channel, const char *payload,
                           const char *why)
{
    char msg[768];
    pgcw__errf(msg, sizeof msg,
               "malformed notification on channel \"%s\" skipped: %s: %.200s", channel,
               why, payload);
    warn(w, msg);
}

static void warn_late(pgcw_watcher *w, const pgcw_event *ev)
{
    char msg[512];
    pgcw__errf(msg, sizeof msg,
               "latency %.3f ms above max_latency %lld ms: %s %s%s%s on channel \"%s\"",
               (double)ev->latency_us / 1000.0, (long long)(w->max_latency_us / 1000),
               pgcw_op_name(ev->operation), ev->schema ? ev->schema : "",
               ev->schema ? "." : "", ev->table ? ev->table : "", ev->channel);
    warn(w, msg);
}

/* Turns every queued notification into an event and hands them to subscribers in
 * batches, so the subscriber list is locked once per batch, not per event. */
static void read_notifies(pgcw_watcher *w)
{
    pgcw_event *batch[BATCH];
    size_t n = 0;
    uint64_t notified = 0, parsed = 0, malformed = 0, late = 0;
    int64_t now_us = 0;
    uint64_t epoch = pgcw_watcher_epoch(w);
    PGnotify *nf;
    while ((nf = PQnotifies(w->conn)) != NULL) {
        notified++;
        if (!now_us)
            now_us = pgcw__real_us();
        pgcw_event *ev = NULL;
        char why[160];
        pgcw_status st = pgcw_event_parse(nf->relname, nf->extra, strlen(nf->extra),
                                          now_us, &ev, why, sizeof why);
        if (st != PGCW_OK) {
            if (st == PGCW_ENOMEM)
                pgcw__errf(why, sizeof why, "out of memory");
            malformed++;
            warn_malformed(w, nf->relname, nf->extra, why);
            PQfreemem(nf);
            continue;
        }
        ev->epoch = epoch;
        ev->backend_pid = nf->be_pid;
        PQfreemem(nf);
        parsed++;
        if (w->max_latency_us >= 0 && ev->latency_us > w->max_latency_us) {
            late++;
            warn_late(w, ev);
        }
        batch[n++] = ev;
        if (n == BATCH) {
            pgcw__watcher_fanout(w, batch, n);
            n = 0;
        }
    }
    pgcw__watcher_fanout(w, batch, n);
    if (notified) {
        w->last_rx_us = pgcw__mono_us();
        atomic_fetch_add_explicit(&w->st_notifications, notified, memory_order_relaxed);
        atomic_fetch_add_explicit(&w->st_events, parsed, memory_order_relaxed);
        atomic_fetch_add_explicit(&w->st_malformed, malformed, memory_order_relaxed);
        atomic_fetch_add_explicit(&w->st_late, late, memory_order_relaxed);
    }
}

static void online_step(pgcw_watcher *w, int revents)
{
    const char *lost = w->st == PGCW__ST_READY ? "connection lost" : "could not connect";
    if (w->flush_pending && (revents < 0 || (revents & PGCW_IO_WRITE)) && !flush(w))
        return;
    if (revents < 0 || (revents & PGCW_IO_READ)) {
        if (!PQconsumeInput(w->conn) || PQstatus(w->conn) == CONNECTION_BAD) {
            conn_failed(w, lost, NULL);
            return;
        }
    }
    if (!read_results(w))
        return;
    if (w->st == PGCW__ST_READY)
        read_notifies(w);

    int64_t now = pgcw__mono_us();
    if (w->st == PGCW__ST_LISTENING) {
        if (now >= w->deadline_us)
            conn_failed(w, "could not connect", "LISTEN not acknowledged in time");
        return;
    }
    if (w->ping_interval_us < 0)
        return;
    if (w->query == PGCW__Q_PING) {
        if (now - w->ping_sent_us >= w->ping_timeout_us) {
            char d[96];
            pgcw__errf(d, sizeof d, "no answer to a ping within %lld ms",
                       (long long)(w->ping_timeout_us / 1000));
            conn_failed(w, "connection lost", d);
        }
    } else if (w->query == PGCW__Q_NONE && now - w->last_rx_us >= w->ping_interval_us) {
        /* An empty query: the cheapest round trip the server answers. */
        if (!PQsendQuery(w->conn, "")) {
            conn_failed(w, "connection lost", NULL);
            return;
        }
        w->query = PGCW__Q_PING;
        w->ping_sent_us = now;
        flush(w);
    }
}

void pgcw__watcher_step(pgcw_watcher *w, int revents)
{
    switch (w->st) {
    case PGCW__ST_IDLE:
    case PGCW__ST_BACKOFF:
        if (w->st == PGCW__ST_BACKOFF && pgcw__mono_us() < w->deadline_us)
            return;
        start_connect(w);
        if (w->st == PGCW__ST_CONNECTING)
            connect_step(w, -1);
        return;
    case PGCW__ST_CONNECTING:
        connect_step(w, revents);
        return;
    case PGCW__ST_LISTENING:
    case PGCW__ST_READY:
        online_step(w, revents);
        return;
    }
}

int pgcw_watcher_fd(const pgcw_watcher *w)
{
    if (!w || !w->conn)
        return -1;
    return PQsocket(w->conn);
}

int pgcw_watcher_events(const pgcw_watcher *w)
{
    if (!w || !w->conn)
        return 0;
    if (w->st == PGCW__ST_CONNECTING)
        return w->poll_events;
    return PGCW_IO_READ | (w->flush_pending ? PGCW_IO_WRITE : 0);
}

int64_t pgcw_watcher_timeout_ms(const pgcw_watcher *w)
{
    if (!w)
        return -1;
    int64_t now = pgcw__mono_us();
    switch (w->st) {
    case PGCW__ST_IDLE:
        return 0;
    case PGCW__ST_BACKOFF:
    case PGCW__ST_CONNECTING:
    case PGCW__ST_LISTENING:
        return ceil_ms(w->deadline_us - now);
    case PGCW__ST_READY:
        if (w->ping_interval_us < 0)
            return -1;
        if (w->query == PGCW__Q_PING)
            return ceil_ms(w->ping_sent_us + w->ping_timeout_us - now);
        if (w->query != PGCW__Q_NONE)
            return -1;
        return ceil_ms(w->last_rx_us + w->ping_interval_us - now);
    }
    return -1;
}

pgcw_status pgcw_watcher_process(pgcw_watcher *w)
{
    if (!w)
        return PGCW_EINVAL;
    if (w->thread_started)
        return PGCW_ESTATE;
    pgcw__watcher_step(w, -1);
    return PGCW_OK;
}
