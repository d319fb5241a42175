/*
 * source_poll.c - the polling source (docs/source_poll.md): for connections where
 * LISTEN does not work (PgBouncer in transaction pooling mode, some proxies), read
 * a channel's change log (install --source poll; sql/changelog_*.sql) every
 * interval over a plain connection, decode each payload with the decoder the
 * LISTEN source would use, and hand the events to the hub in (xid, seq) order.
 *
 * The position (xid, seq) lives in this process, not the session, so it survives
 * a reconnect (nothing is lost while the rows are kept) and every statement stands
 * alone (PgBouncer may run each on another server session). The reader function
 * returns only rows of transactions below the oldest one still running, so a
 * transaction that commits late is read when it has committed, never skipped.
 * Rows this source had not read that were pruned meanwhile are a PGCW_GAP_PRUNED
 * gap. The source also prunes (every min(retention / 4, 60 s), at least one
 * interval apart).
 *
 * Non-blocking like every source: PQgetResult only when !PQisBusy. Must never
 * block, never hand a PGresult out, never move its position past a row it did not
 * turn into an event or skip as malformed.
 */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn_internal.h"
#include "core_time.h"
#include "core_util.h"
#include "event_internal.h"
#include "source.h"
#include "source_link.h"
#include "sql_changelog.h"

#define BATCH 256 /* rows per read; a full batch is followed by another at once */
#define WARN_BURST 5
#define PRUNE_MAX_US (60 * 1000000LL)

enum { Q_NONE = 0, Q_READ = 1, Q_PRUNE = 2 };

/* (xid, seq): the change log's order. */
typedef struct pos {
    uint64_t xid;
    int64_t seq;
} pos;

static int pos_cmp(pos a, pos b)
{
    if (a.xid != b.xid)
        return a.xid < b.xid ? -1 : 1;
    return a.seq < b.seq ? -1 : a.seq > b.seq;
}

typedef struct poll_source {
    pgcw__source base;

    /* Settings, fixed at creation. */
    char *channel;
    pgcw_payload_format format;
    char *read_sql, *prune_sql; /* the functions' names, quoted */
    int64_t interval_us, retention_ms, timeout_us, max_latency_us, prune_every_us;

    /* Touched only by the driving thread. SETUP is the first read of a
     * connection; READY is polling. */
    pgcw__link link;
    int query;             /* Q_*: the outstanding query */
    int64_t query_sent_us; /* when it left */
    int64_t next_read_us;  /* when the next read is due */
    int64_t next_prune_us; /* when the next prune is due */
    bool have_pos;         /* false until the first read: then "now" */
    /* The first read's snapshot, while the position is below its xmax: rows of
     * transactions visible in it had committed before this source started, and
     * are not delivered. NULL after. */
    char *history;
    uint64_t history_xmax;
    pos at;          /* every row up to here was delivered or skipped */
    pos pruned_seen; /* the pruning watermark already accounted for */
    bool result_bad; /* the outstanding query failed (message in err) */
    char err[512];
    pgcw__ratelimit rl_malformed, rl_late;
} poll_source;

static void count(atomic_uint_fast64_t *c, uint64_t n)
{
    if (n)
        atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

static void warn(poll_source *s, const char *msg)
{
    pgcw__logf(s->base.log, s->base.log_ctx, PGCW_LOG_WARNING, "%s", msg);
}

static void on_drop(pgcw__source *base)
{
    poll_source *s = (poll_source *)base;
    s->query = Q_NONE;
    s->result_bad = false;
}

static bool send_read(poll_source *s, int max_rows)
{
    char xid[24], seq[24], lim[16];
    snprintf(xid, sizeof xid, "%" PRIu64, s->at.xid);
    snprintf(seq, sizeof seq, "%" PRId64, s->at.seq);
    snprintf(lim, sizeof lim, "%d", max_rows);
    if (s->history && s->at.xid >= s->history_xmax) {
        free(s->history); /* every xid from here on began after it */
        s->history = NULL;
    }
    const char *params[4] = {xid, seq, lim, s->history};
    if (!PQsendQueryParams(s->link.conn.pg, s->read_sql, 4, NULL, params, NULL, NULL,
                           0)) {
        pgcw__link_lost(&s->link, pgcw__link_lost_what(&s->link), NULL);
        return false;
    }
    s->query = Q_READ;
    s->query_sent_us = pgcw__mono_us();
    return pgcw__link_flush(&s->link);
}

/* Connected: the first read is the setup. Without a position yet it reads no
 * rows, only the horizon, which becomes the position, and the snapshot, which
 * says what had committed already: history is not replayed. */
static void on_connected(pgcw__source *base)
{
    poll_source *s = (poll_source *)base;
    pgcw__link_setup(&s->link, s->link.params.connect_timeout_us);
    send_read(s, s->have_pos ? BATCH : 0);
}

/* Reads an xid8 (as text) and, with col_seq >= 0, a sequence number. */
static bool parse_pos(const PGresult *res, int row, int col_xid, int col_seq, pos *out)
{
    if (PQgetisnull(res, row, col_xid) ||
        (col_seq >= 0 && PQgetisnull(res, row, col_seq)))
        return false;
    char *end;
    out->xid = strtoull(PQgetvalue(res, row, col_xid), &end, 10);
    out->seq = col_seq >= 0 ? strtoll(PQgetvalue(res, row, col_seq), NULL, 10) : 0;
    return *end == '\0';
}

static void warn_malformed(poll_source *s, const char *payload, const char *why)
{
    uint64_t held;
    if (!pgcw__ratelimit_take(&s->rl_malformed, pgcw__mono_us(), &held))
        return;
    char msg[768];
    pgcw__errf(msg, sizeof msg,
               "malformed change-log row on channel \"%s\" skipped: %s: %.200s (%llu "
               "similar messages suppressed)",
               s->channel, why, payload, (unsigned long long)held);
    warn(s, msg);
}

/* Late here mostly means held back: rows wait below the oldest running
 * transaction, cluster-wide, so one left open delays everything after it. */
static void warn_late(poll_source *s, const pgcw_event *ev)
{
    uint64_t held;
    if (!pgcw__ratelimit_take(&s->rl_late, pgcw__mono_us(), &held))
        return;
    char msg[512];
    pgcw__errf(msg, sizeof msg,
               "latency %.3f ms above max_latency %lld ms on channel \"%s\" (a "
               "transaction left open holds the poller back until it ends?) (%llu "
               "similar messages suppressed)",
               (double)ev->latency_us / 1000.0, (long long)(s->max_latency_us / 1000),
               s->channel, (unsigned long long)held);
    warn(s, msg);
}

/* Columns of the read: horizon, snapshot, pruned_xid, pruned_seq, pruned_rows, xid,
 * seq, channel, payload. */
enum {
    C_HORIZON,
    C_SNAPSHOT,
    C_PRUNED_XID,
    C_PRUNED_SEQ,
    C_PRUNED_ROWS,
    C_XID,
    C_SEQ,
    C_CHAN,
    C_BODY
};

/* A read's rows: the gap first if rows not read were pruned, then the events.
 * Returns false if the connection was dropped (out of memory: the position stays
 * before the row, so it is read again after the reconnect). */
static bool take_rows(poll_source *s, const PGresult *res)
{
    int n = PQntuples(res);
    pos horizon = {0, 0}, pruned;
    if (n < 1 || !parse_pos(res, 0, C_HORIZON, -1, &horizon) ||
        !parse_pos(res, 0, C_PRUNED_XID, C_PRUNED_SEQ, &pruned)) {
        pgcw__link_lost(&s->link, "poll failed",
                        "the change log's reader returned no horizon");
        return false;
    }
    if (!s->have_pos) { /* the first read: start now */
        const char *snap = PQgetvalue(res, 0, C_SNAPSHOT);
        const char *colon = strchr(snap, ':');
        free(s->history);
        s->history = pgcw__strdup(snap);
        if (!s->history || !colon) {
            pgcw__link_lost(&s->link, "poll failed", "no snapshot (or out of memory)");
            return false;
        }
        s->history_xmax = strtoull(colon + 1, NULL, 10);
        s->have_pos = true;
        s->at = horizon;
        s->pruned_seen = pruned;
        return true;
    }
    if (pos_cmp(pruned, s->pruned_seen) > 0) {
        bool unread = pos_cmp(pruned, s->at) > 0;
        s->pruned_seen = pruned;
        if (unread) {
            char msg[256];
            pgcw__errf(
                msg, sizeof msg,
                "change-log rows on channel \"%s\" were pruned before this watcher "
                "read them (changelog_retention_ms too short, or it was away): gap",
                s->channel);
            warn(s, msg);
            s->base.hub_ops->gap(s->base.hub, &s->base, PGCW_GAP_PRUNED, 0);
        }
    }
    pgcw_event *batch[64];
    size_t nb = 0;
    /* Counted as they are decoded, before the hub delivers them: a consumer that
     * has an event and then reads the statistics finds it counted. */
    uint64_t rows = 0;
    uint64_t epoch = s->base.hub_ops->epoch(s->base.hub);
    int64_t now_us = pgcw__real_us();
    bool nomem = false;
    for (int r = 0; r < n; r++) {
        pos p;
        if (!parse_pos(res, r, C_XID, C_SEQ, &p))
            continue; /* the row that only carries the horizon */
        rows++;
        count(&s->base.st_notifications, 1);
        const char *chan = PQgetvalue(res, r, C_CHAN), *body = PQgetvalue(res, r, C_BODY);
        size_t len = (size_t)PQgetlength(res, r, C_BODY);
        pgcw_event *ev = NULL;
        char why[160];
        pgcw_status st = PGCW_EPARSE;
        if (len == 0)
            pgcw__errf(why, sizeof why, "empty payload");
        else
            st = pgcw__event_decode(s->format, chan, body, len, now_us, &ev, why,
                                    sizeof why);
        if (st == PGCW_ENOMEM) {
            nomem = true;
            break;
        }
        s->at = p;
        if (st != PGCW_OK) {
            count(&s->base.st_malformed, 1);
            warn_malformed(s, body, why);
            continue;
        }
        ev->epoch = epoch; /* still the only reference: ours to fill in */
        ev->source = PGCW_SOURCE_POLL;
        count(&s->base.st_events, 1);
        if (ev->kind == PGCW_EVENT_KEY)
            count(&s->base.st_key_events, 1);
        else if (s->max_latency_us >= 0 && ev->latency_us > s->max_latency_us) {
            count(&s->base.st_late, 1);
            warn_late(s, ev);
        }
        batch[nb++] = ev;
        if (nb == sizeof batch / sizeof batch[0]) {
            s->base.hub_ops->deliver(s->base.hub, &s->base, batch, nb);
            nb = 0;
        }
    }
    if (nb)
        s->base.hub_ops->deliver(s->base.hub, &s->base, batch, nb);
    if (nomem) {
        pgcw__link_lost(&s->link, "out of memory decoding a change-log row",
                        "it is read again after the reconnect");
        return false;
    }
    /* A full batch: more may wait, read again at once. Else every row below the
     * horizon was read, and the next read starts there. */
    if (rows == BATCH)
        s->next_read_us = pgcw__mono_us();
    else if (pos_cmp(horizon, s->at) > 0)
        s->at = horizon;
    return true;
}

/* Takes the outstanding query's results. Returns false if the connection was
 * dropped. */
static bool read_results(poll_source *s)
{
    while (s->query != Q_NONE && !PQisBusy(s->link.conn.pg)) {
        PGresult *res = PQgetResult(s->link.conn.pg);
        s->link.last_rx_us = pgcw__mono_us();
        if (res) {
            ExecStatusType rs = PQresultStatus(res);
            if (rs != PGRES_TUPLES_OK && !s->result_bad) {
                pgcw__result_message(res, s->link.conn.pg, s->err, sizeof s->err);
                s->result_bad = true;
            } else if (rs == PGRES_TUPLES_OK && s->query == Q_READ && !s->result_bad) {
                bool was_setup = s->link.st == PGCW__LINK_SETUP;
                if (was_setup) {
                    s->next_prune_us = pgcw__deadline_in_us(s->prune_every_us);
                    pgcw__link_ready(&s->link);
                    pgcw__logf(s->base.log, s->base.log_ctx, PGCW_LOG_INFO,
                               "polling the change log of channel \"%s\" every %lld ms, "
                               "epoch %llu",
                               s->channel, (long long)(s->interval_us / 1000),
                               (unsigned long long)s->base.hub_ops->epoch(s->base.hub));
                }
                if (!take_rows(s, res)) {
                    PQclear(res);
                    return false;
                }
            }
            PQclear(res);
            continue;
        }
        int q = s->query;
        s->query = Q_NONE;
        if (s->result_bad) {
            /* No reader function (42883): the change log is not installed, which
             * retrying does not fix by itself. */
            bool missing = strstr(s->err, "SQLSTATE 42883") != NULL;
            s->result_bad = false;
            char d[640];
            pgcw__errf(d, sizeof d, "%s%s%s%s", s->err,
                       missing ? " (no change log for channel \"" : "",
                       missing ? s->channel : "",
                       missing ? "\": run pgcachewatch install --source poll)" : "");
            pgcw__link_fail(&s->link, q == Q_READ ? "poll failed" : "prune failed", d,
                            missing);
            return false;
        }
        int64_t now = pgcw__mono_us();
        if (q == Q_READ && s->next_read_us <= s->query_sent_us)
            s->next_read_us = pgcw__deadline_from(s->query_sent_us, s->interval_us);
        if (q == Q_PRUNE)
            s->next_prune_us = pgcw__deadline_from(now, s->prune_every_us);
    }
    return true;
}

static void online_step(pgcw__source *base, int revents)
{
    poll_source *s = (poll_source *)base;
    if (!pgcw__link_io(&s->link, revents) || !read_results(s))
        return;
    int64_t now = pgcw__mono_us();
    if (s->query != Q_NONE) {
        int64_t limit = s->link.st == PGCW__LINK_SETUP
                            ? s->link.deadline_us
                            : pgcw__deadline_from(s->query_sent_us, s->timeout_us);
        if (now >= limit) {
            char d[96];
            pgcw__errf(d, sizeof d, "no answer to a poll within %lld ms",
                       (long long)((limit - s->query_sent_us) / 1000));
            pgcw__link_lost(&s->link, pgcw__link_lost_what(&s->link), d);
        }
        return;
    }
    if (s->link.st != PGCW__LINK_READY)
        return;
    /* A due read goes first, so the prune after it removes what was just read
     * rather than what is about to be. */
    if (now >= s->next_read_us) {
        send_read(s, BATCH);
    } else if (now >= s->next_prune_us) {
        char ms[24];
        snprintf(ms, sizeof ms, "%" PRId64, s->retention_ms);
        const char *params[1] = {ms};
        if (!PQsendQueryParams(s->link.conn.pg, s->prune_sql, 1, NULL, params, NULL, NULL,
                               0)) {
            pgcw__link_lost(&s->link, "connection lost", NULL);
            return;
        }
        s->query = Q_PRUNE;
        s->query_sent_us = now;
        pgcw__link_flush(&s->link);
    }
}

static int64_t source_deadline(const pgcw__source *base)
{
    const poll_source *s = (const poll_source *)base;
    if (s->link.st != PGCW__LINK_READY)
        return pgcw__link_deadline(&s->link);
    if (s->query != Q_NONE)
        return pgcw__deadline_from(s->query_sent_us, s->timeout_us);
    return s->next_read_us < s->next_prune_us ? s->next_read_us : s->next_prune_us;
}

static void source_free(pgcw__source *base)
{
    poll_source *s = (poll_source *)base;
    if (!s)
        return;
    pgcw__link_free(&s->link);
    free(s->channel);
    free(s->history);
    free(s->read_sql);
    free(s->prune_sql);
    free(s);
}

static const pgcw__source_vt poll_vt = {
    .name = "poll",
    .step = pgcw__link_source_step,
    .fd = pgcw__link_source_fd,
    .events = pgcw__link_source_events,
    .deadline_us = source_deadline,
    .close = pgcw__link_source_close,
    .backend_pid = pgcw__link_source_backend_pid,
    .free = source_free,
};

/* "<head><fn quoted><tail>": the functions' names are derived from the channel, so
 * they may need quoting. Owned; NULL on OOM. */
static char *statement(const char *head, const char *fn, const char *tail)
{
    char *q = pgcw_quote_ident(fn);
    pgcw__buf b = {0};
    if (q) {
        pgcw__buf_append(&b, head);
        pgcw__buf_append(&b, q);
        pgcw__buf_append(&b, tail);
    }
    free(q);
    if (!q || b.failed) {
        pgcw__buf_free(&b);
        return NULL;
    }
    return pgcw__buf_take(&b);
}

pgcw_status pgcw__source_poll_new(const pgcw__poll_cfg *cfg, const pgcw__hub_ops *ops,
                                  void *hub, pgcw__source **out)
{
    *out = NULL;
    poll_source *s = calloc(1, sizeof *s);
    if (!s)
        return PGCW_ENOMEM;
    s->base.vt = &poll_vt;
    s->base.hub_ops = ops;
    s->base.hub = hub;
    s->base.log = cfg->log;
    s->base.log_ctx = cfg->log_ctx;
    s->format = cfg->format;
    s->interval_us = cfg->interval_us;
    s->retention_ms = cfg->retention_ms;
    s->timeout_us = cfg->timeout_us;
    s->max_latency_us = cfg->max_latency_us;
    int64_t quarter = cfg->retention_ms / 4 * 1000;
    s->prune_every_us = quarter < PRUNE_MAX_US ? quarter : PRUNE_MAX_US;
    if (s->prune_every_us < s->interval_us)
        s->prune_every_us = s->interval_us;
    s->rl_malformed = (pgcw__ratelimit){.window_us = 1000000, .burst = WARN_BURST};
    s->rl_late = s->rl_malformed;
    pgcw__changelog_names names;
    pgcw__changelog_names_derive(NULL, cfg->channel, &names);
    s->channel = pgcw__strdup(cfg->channel);
    s->read_sql = statement("SELECT horizon::text, snapshot, pruned_xid::text, "
                            "pruned_seq, pruned_rows, xid::text, seq, channel, payload "
                            "FROM ",
                            names.read_function,
                            "($1::pg_catalog.xid8, $2::bigint, $3::integer, "
                            "$4::pg_catalog.pg_snapshot)");
    s->prune_sql = statement("SELECT ", names.prune_function, "($1::bigint)");
    /* Payloads are decoded as UTF-8, as the LISTEN source's are. */
    static const char *const keys[] = {"client_encoding", NULL};
    static const char *const vals[] = {"UTF8", NULL};
    const pgcw__link_cfg link_cfg = {.label = "poll connection",
                                     .keys = keys,
                                     .values = vals,
                                     .on_connected = on_connected,
                                     .on_drop = on_drop,
                                     .on_online = online_step};
    bool ok = pgcw__link_init(&s->link, &s->base, cfg->conn, &link_cfg) == PGCW_OK &&
              s->channel && s->read_sql && s->prune_sql;
    if (!ok) {
        source_free(&s->base);
        return PGCW_ENOMEM;
    }
    *out = &s->base;
    return PGCW_OK;
}
