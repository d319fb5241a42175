/*
 * source_listen.c - the LISTEN/NOTIFY source: one libpq connection as a
 * non-blocking state machine. Connect (conn module), exempt the session from
 * idle_session_timeout, LISTEN on every channel in one round trip, decode each
 * notification with its channel's decoder, ping when idle, notice a loss, back off
 * and reconnect.
 *
 * Every libpq call here is non-blocking: PQgetResult only when !PQisBusy, output
 * through PQflush. Must never block, never hand a PGnotify/PGresult out, never hold
 * a lock while calling libpq, the hub or the log callback, and never let one bad
 * payload cost the connection.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core_time.h"
#include "core_util.h"
#include "event_internal.h"
#include "source_link.h"
#include "source_probe.h"

#define BATCH 64

enum { Q_NONE = 0, Q_LISTEN = 1, Q_PING = 2 };

typedef struct listen_source {
    pgcw__source base;

    /* Settings, fixed at creation. */
    char **channels;
    pgcw_payload_format *formats;
    size_t n_channels;
    int64_t max_latency_us, ping_interval_us, ping_timeout_us;

    /* Touched only by the driving thread. The link's SETUP state is the LISTEN
     * round trip (SET and LISTEN statements sent, waiting for their results); READY
     * is reading notifications and pinging when idle. */
    pgcw__link link;
    int query;            /* Q_*: what the outstanding query is */
    int results_want;     /* COMMAND_OK results the LISTEN round trip must bring */
    int results_ok;       /* ... and how many it brought so far */
    char *listen_error;   /* first failure of this round trip (owned) */
    int64_t ping_sent_us; /* when the outstanding ping left */
    /* Malformed and late notifications are logged at most WARN_BURST a second
     * each, so a flood of them cannot flood the log. */
    pgcw__ratelimit rl_malformed, rl_late;
    bool queue_warned; /* the queue passed half and has not fallen below a quarter */
    /* The self-probe: after the LISTEN round trip, SETUP lasts until it is back. */
    bool probe_on;
    int64_t probe_timeout_us;
    pgcw__probe probe;
} listen_source;

#define WARN_BURST 5

static void warn(listen_source *s, const char *msg)
{
    pgcw__logf(s->base.log, s->base.log_ctx, PGCW_LOG_WARNING, "%s", msg);
}

static void count(atomic_uint_fast64_t *c, uint64_t n)
{
    if (n)
        atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

/* The link dropped the connection: forget this connection's round trips. */
static void on_drop(pgcw__source *base)
{
    listen_source *s = (listen_source *)base;
    s->query = Q_NONE;
    s->results_ok = s->results_want = 0;
    free(s->listen_error);
    s->listen_error = NULL;
    pgcw__probe_stop(&s->probe);
}

static void lost(listen_source *s, const char *what, const char *detail)
{
    pgcw__link_lost(&s->link, what, detail);
}

/* Connected: in one round trip, make the session immune to idle_session_timeout
 * (a LISTEN session is always idle to the server, and being killed for it would be
 * a gap every few seconds), receive notifications without conversion in a
 * SQL_ASCII database (converting to UTF-8 there makes the server end the session
 * on the first payload that is not UTF-8: one bad NOTIFY would disconnect every
 * watcher), and LISTEN on every channel. Channel names are quoted identifiers, so
 * "Orders" and "a-b" work and nothing is pasted into SQL. */
static void send_listen(pgcw__source *base)
{
    listen_source *s = (listen_source *)base;
    PGconn *pg = s->link.conn.pg;
    pgcw__buf sql = {0};
    int want = 0;
    if (PQserverVersion(pg) >= 140000) {
        pgcw__buf_append(&sql, "SET idle_session_timeout = 0;");
        want++;
    }
    const char *enc = PQparameterStatus(pg, "server_encoding");
    if (enc && strcmp(enc, "SQL_ASCII") == 0) {
        pgcw__buf_append(&sql, "SET client_encoding = 'SQL_ASCII';");
        want++;
    }
    for (size_t i = 0; i < s->n_channels; i++) {
        char *q = PQescapeIdentifier(pg, s->channels[i], strlen(s->channels[i]));
        if (!q) {
            pgcw__buf_free(&sql);
            lost(s, "bad channel name", NULL);
            return;
        }
        pgcw__buf_appendf(&sql, "LISTEN %s;", q);
        PQfreemem(q);
        want++;
    }
    if (s->probe_on) { /* a name of our own making: nothing to quote */
        pgcw__probe_name(&s->probe);
        pgcw__buf_appendf(&sql, "LISTEN %s;", s->probe.channel);
        want++;
    }
    if (sql.failed) {
        pgcw__buf_free(&sql);
        lost(s, "could not connect", "out of memory");
        return;
    }
    int ok = PQsendQuery(pg, sql.data);
    pgcw__buf_free(&sql);
    if (!ok) {
        lost(s, "LISTEN failed", NULL);
        return;
    }
    s->query = Q_LISTEN;
    s->results_want = want;
    s->results_ok = 0;
    pgcw__link_setup(&s->link, s->link.params.connect_timeout_us);
    pgcw__link_flush(&s->link);
}

static void listen_result(listen_source *s, PGresult *res)
{
    if (PQresultStatus(res) == PGRES_COMMAND_OK) {
        s->results_ok++;
    } else if (!s->listen_error) {
        char msg[512];
        pgcw__result_message(res, s->link.conn.pg, msg, sizeof msg);
        s->listen_error = pgcw__strdup(msg);
    }
}

static bool listening(listen_source *s);

/* The LISTEN round trip finished. Returns false if the connection was dropped. */
static bool listen_done(listen_source *s)
{
    s->query = Q_NONE;
    if (s->listen_error || s->results_ok != s->results_want) {
        char d[512];
        pgcw__errf(d, sizeof d, "%s", s->listen_error ? s->listen_error : "no result");
        lost(s, "LISTEN failed", d);
        return false;
    }
    if (s->probe_on) { /* healthy only once the probe is back (online_step) */
        pgcw__probe_start(&s->probe, &s->link.params, s->probe_timeout_us);
        /* Room for the second session to connect and send, then the bound. */
        pgcw__link_setup(&s->link, PGCW__NEVER);
        return true;
    }
    return listening(s);
}

/* Ready: healthy, and said so. */
static bool listening(listen_source *s)
{
    pgcw__link_ready(&s->link);
    pgcw__logf(s->base.log, s->base.log_ctx, PGCW_LOG_INFO,
               "listening on %zu channel(s), backend pid %d, epoch %llu", s->n_channels,
               PQbackendPID(s->link.conn.pg),
               (unsigned long long)s->base.hub_ops->epoch(s->base.hub));
    return true;
}

/* Results of our own queries (SET/LISTEN, ping). Returns false if the connection
 * was dropped. */
/* The ping asks how full the server's NOTIFY queue is: a listener elsewhere that
 * stops reading (a transaction left open) keeps it from advancing, and once it is
 * full every notifying write fails. Logged when it passes half, as PostgreSQL's
 * own warning does, and again only after it fell below a quarter. */
void pgcw__source_listen_queue_usage(pgcw__source *base, double usage)
{
    listen_source *s = (listen_source *)base;
    if (!(usage >= 0.0 && usage <= 1.0))
        return;
    atomic_store_explicit(&s->base.st_queue_usage_ppb, (uint64_t)(usage * 1e9 + 0.5),
                          memory_order_relaxed);
    if (usage >= 0.5 && !s->queue_warned) {
        s->queue_warned = true;
        char msg[256];
        pgcw__errf(msg, sizeof msg,
                   "the server's NOTIFY queue is %.1f%% full: a listening session is not "
                   "reading (a transaction left open?); when it is full every write "
                   "that notifies fails",
                   usage * 100.0);
        warn(s, msg);
    } else if (usage < 0.25) {
        s->queue_warned = false;
    }
}

static void ping_result(listen_source *s, const PGresult *res)
{
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
        !PQgetisnull(res, 0, 0))
        pgcw__source_listen_queue_usage(&s->base, strtod(PQgetvalue(res, 0, 0), NULL));
}

static bool read_results(listen_source *s)
{
    while (s->query != Q_NONE && !PQisBusy(s->link.conn.pg)) {
        PGresult *res = PQgetResult(s->link.conn.pg);
        s->link.last_rx_us = pgcw__mono_us();
        if (!res) {
            if (s->query == Q_LISTEN)
                return listen_done(s);
            s->query = Q_NONE; /* ping answered */
            return true;
        }
        if (s->query == Q_LISTEN)
            listen_result(s, res);
        else if (s->query == Q_PING)
            ping_result(s, res);
        PQclear(res);
    }
    return true;
}

static pgcw_payload_format format_of(const listen_source *s, const char *channel)
{
    if (s->n_channels == 1)
        return s->formats[0];
    for (size_t i = 0; i < s->n_channels; i++)
        if (strcmp(s->channels[i], channel) == 0)
            return s->formats[i];
    return PGCW_FORMAT_AUTO;
}

/* " (N more suppressed)" when the limiter held some back, else "". */
static const char *suppressed_note(char *buf, size_t len, uint64_t suppressed)
{
    if (!suppressed)
        return "";
    pgcw__errf(buf, len, " (%llu similar messages suppressed)",
               (unsigned long long)suppressed);
    return buf;
}

static void warn_malformed(listen_source *s, const char *channel, const char *payload,
                           const char *why)
{
    uint64_t held;
    if (!pgcw__ratelimit_take(&s->rl_malformed, pgcw__mono_us(), &held))
        return;
    char msg[768], note[64];
    pgcw__errf(msg, sizeof msg,
               "malformed notification on channel \"%s\" skipped: %s: %.200s%s", channel,
               why, payload, suppressed_note(note, sizeof note, held));
    warn(s, msg);
}

static void warn_late(listen_source *s, const pgcw_event *ev)
{
    uint64_t held;
    if (!pgcw__ratelimit_take(&s->rl_late, pgcw__mono_us(), &held))
        return;
    char msg[512], note[64];
    pgcw__errf(msg, sizeof msg,
               "latency %.3f ms above max_latency %lld ms: %s %s%s%s on channel \"%s\"%s",
               (double)ev->latency_us / 1000.0, (long long)(s->max_latency_us / 1000),
               pgcw_op_name(ev->operation), ev->schema ? ev->schema : "",
               ev->schema ? "." : "", ev->table ? ev->table : "", ev->channel,
               suppressed_note(note, sizeof note, held));
    warn(s, msg);
}

/* Turns every queued notification into an event and hands them to the hub in
 * batches, so its consumers are visited once per batch, not per event. */
static void read_notifies(listen_source *s)
{
    pgcw_event *batch[BATCH];
    size_t n = 0;
    uint64_t notified = 0, decoded = 0, keys = 0, malformed = 0, late = 0;
    int64_t now_us = 0;
    bool nomem = false;
    uint64_t epoch = s->base.hub_ops->epoch(s->base.hub);
    PGnotify *nf;
    while ((nf = PQnotifies(s->link.conn.pg)) != NULL) {
        if (pgcw__probe_take(&s->probe, nf->relname, nf->extra)) {
            PQfreemem(nf); /* never an event, never counted */
            continue;
        }
        notified++;
        if (!now_us)
            now_us = pgcw__real_us();
        pgcw_event *ev = NULL;
        char why[160];
        pgcw_status st =
            pgcw__event_decode(format_of(s, nf->relname), nf->relname, nf->extra,
                               strlen(nf->extra), now_us, &ev, why, sizeof why);
        if (st == PGCW_ENOMEM) {
            /* An event we cannot hold is an event lost: a gap, never a skipped
             * payload. Drop the connection as if it were lost (everything after
             * the events already decoded is gone too), so every subscriber and
             * sink sees the gap, the epoch moves and the source reconnects. */
            PQfreemem(nf);
            nomem = true;
            break;
        }
        if (st != PGCW_OK) {
            malformed++;
            warn_malformed(s, nf->relname, nf->extra, why);
            PQfreemem(nf);
            continue;
        }
        /* Still the only reference: these fields are ours to fill in. */
        ev->epoch = epoch;
        ev->backend_pid = nf->be_pid;
        ev->source = PGCW_SOURCE_LISTEN;
        PQfreemem(nf);
        decoded++;
        if (ev->kind == PGCW_EVENT_KEY)
            keys++;
        else if (s->max_latency_us >= 0 && ev->latency_us > s->max_latency_us) {
            late++;
            warn_late(s, ev);
        }
        batch[n++] = ev;
        if (n == BATCH) {
            s->base.hub_ops->deliver(s->base.hub, &s->base, batch, n);
            n = 0;
        }
    }
    if (n)
        s->base.hub_ops->deliver(s->base.hub, &s->base, batch, n);
    if (notified) {
        s->link.last_rx_us = pgcw__mono_us();
        count(&s->base.st_notifications, notified);
        count(&s->base.st_events, decoded);
        count(&s->base.st_key_events, keys);
        count(&s->base.st_malformed, malformed);
        count(&s->base.st_late, late);
    }
    if (nomem)
        lost(s, "out of memory decoding a notification",
             "the notifications from there on are lost");
}

/* Advances the probe; false unless the source goes on (healthy, or probing). */
static bool probe_step(listen_source *s)
{
    pgcw__probe_step(&s->probe);
    switch (s->probe.st) {
    case PGCW__PROBE_ARRIVED:
        pgcw__probe_stop(&s->probe);
        return listening(s);
    case PGCW__PROBE_UNSENT: {
        /* Nothing learned (the role's connection limit, a killed session): go on
         * as before the probe existed rather than fail for it. */
        char msg[640];
        pgcw__errf(msg, sizeof msg,
                   "could not send the LISTEN probe (%s); assuming LISTEN works",
                   s->probe.err);
        warn(s, msg);
        pgcw__probe_stop(&s->probe);
        return listening(s);
    }
    default:
        break;
    }
    if (!pgcw__probe_expired(&s->probe))
        return true;
    char d[512];
    pgcw__errf(d, sizeof d,
               "a notification sent from another session did not come back within %lld "
               "ms: LISTEN does not work through this connection (PgBouncer in "
               "transaction pooling mode, or a proxy like it?); use the polling source "
               "(PGCW_WATCH_POLL, `pgcachewatch listen --source poll`) or connect "
               "directly",
               (long long)(s->probe_timeout_us / 1000));
    pgcw__link_fail(&s->link, "LISTEN probe failed", d, true);
    return false;
}

static void online_step(pgcw__source *base, int revents)
{
    listen_source *s = (listen_source *)base;
    if (!pgcw__link_io(&s->link, revents) || !read_results(s))
        return;
    bool probing = s->probe.st != PGCW__PROBE_OFF;
    if (s->link.st == PGCW__LINK_READY || probing) {
        read_notifies(s);
        if (s->link.conn.pg == NULL) /* out of memory: dropped as lost */
            return;
    }
    if (probing && !probe_step(s))
        return;

    int64_t now = pgcw__mono_us();
    if (s->link.st == PGCW__LINK_SETUP) {
        if (now >= s->link.deadline_us)
            lost(s, "could not connect", "LISTEN not acknowledged in time");
        return;
    }
    if (s->ping_interval_us < 0)
        return;
    if (s->query == Q_PING) {
        if (now - s->ping_sent_us >= s->ping_timeout_us) {
            char d[96];
            pgcw__errf(d, sizeof d, "no answer to a ping within %lld ms",
                       (long long)(s->ping_timeout_us / 1000));
            lost(s, "connection lost", d);
        }
    } else if (s->query == Q_NONE && now - s->link.last_rx_us >= s->ping_interval_us) {
        /* A round trip the server answers at once, which also reads how full
         * its NOTIFY queue is (ping_result). */
        if (!PQsendQuery(s->link.conn.pg,
                         "SELECT pg_catalog.pg_notification_queue_usage()")) {
            lost(s, "connection lost", NULL);
            return;
        }
        s->query = Q_PING;
        s->ping_sent_us = now;
        pgcw__link_flush(&s->link);
    }
}

static int64_t source_deadline(const pgcw__source *base)
{
    const listen_source *s = (const listen_source *)base;
    if (s->probe.st != PGCW__PROBE_OFF)
        return pgcw__probe_deadline(&s->probe);
    if (s->link.st != PGCW__LINK_READY)
        return pgcw__link_deadline(&s->link);
    if (s->ping_interval_us < 0)
        return PGCW__NEVER;
    if (s->query == Q_PING)
        return pgcw__deadline_from(s->ping_sent_us, s->ping_timeout_us);
    if (s->query != Q_NONE)
        return PGCW__NEVER;
    return pgcw__deadline_from(s->link.last_rx_us, s->ping_interval_us);
}

static void source_free(pgcw__source *base)
{
    listen_source *s = (listen_source *)base;
    if (!s)
        return;
    pgcw__link_free(&s->link);
    for (size_t i = 0; s->channels && i < s->n_channels; i++)
        free(s->channels[i]);
    free(s->channels);
    free(s->formats);
    free(s);
}

static const pgcw__source_vt listen_vt = {
    .name = "listen",
    .step = pgcw__link_source_step,
    .fd = pgcw__link_source_fd,
    .events = pgcw__link_source_events,
    .deadline_us = source_deadline,
    .close = pgcw__link_source_close,
    .backend_pid = pgcw__link_source_backend_pid,
    .free = source_free,
};

pgcw_status pgcw__source_listen_new(const pgcw__listen_cfg *cfg, const pgcw__hub_ops *ops,
                                    void *hub, pgcw__source **out)
{
    *out = NULL;
    listen_source *s = calloc(1, sizeof *s);
    if (!s)
        return PGCW_ENOMEM;
    s->base.vt = &listen_vt;
    s->base.hub_ops = ops;
    s->base.hub = hub;
    s->base.log = cfg->log;
    s->base.log_ctx = cfg->log_ctx;
    s->max_latency_us = cfg->max_latency_us;
    s->rl_malformed = (pgcw__ratelimit){.window_us = 1000000, .burst = WARN_BURST};
    s->rl_late = s->rl_malformed;
    s->ping_interval_us = cfg->ping_interval_us;
    s->ping_timeout_us = cfg->ping_timeout_us;
    s->probe_on = cfg->probe;
    s->probe_timeout_us = cfg->probe_timeout_us;
    s->channels = calloc(cfg->n_channels, sizeof *s->channels);
    s->formats = calloc(cfg->n_channels, sizeof *s->formats);
    /* Payloads are decoded as UTF-8 (invalid sequences are refused), so have the
     * server convert them whatever the database's encoding; applied after the
     * settings so it wins over a client_encoding in them. */
    static const char *const keys[] = {"client_encoding", NULL};
    static const char *const vals[] = {"UTF8", NULL};
    const pgcw__link_cfg link_cfg = {.label = "LISTEN connection",
                                     .keys = keys,
                                     .values = vals,
                                     .on_connected = send_listen,
                                     .on_drop = on_drop,
                                     .on_online = online_step};
    bool ok = pgcw__link_init(&s->link, &s->base, cfg->conn, &link_cfg) == PGCW_OK &&
              s->channels && s->formats;
    if (ok)
        s->n_channels = cfg->n_channels;
    for (size_t i = 0; ok && i < cfg->n_channels; i++) {
        ok = (s->channels[i] = pgcw__strdup(cfg->channels[i])) != NULL;
        s->formats[i] = cfg->formats ? cfg->formats[i] : PGCW_FORMAT_AUTO;
    }
    if (!ok) {
        source_free(&s->base);
        return PGCW_ENOMEM;
    }
    *out = &s->base;
    return PGCW_OK;
}
