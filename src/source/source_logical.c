/*
 * source_logical.c - the logical decoding source: a replication=database
 * connection (source_link.c) that checks its slot, starts pgoutput on it
 * (START_REPLICATION ... LOGICAL, proto_version 1, one publication), reads the
 * CopyBoth stream without blocking, decodes each XLogData with
 * source_pgoutput.c, delivers each transaction's events at its commit, and then
 * confirms the commit's end LSN in a standby status update.
 *
 * The position the server keeps for the slot is the one this file confirmed, and
 * it confirms a commit only after hub deliver returned (deliver is synchronous
 * into every queue and sink), so a lost connection loses nothing: the next one
 * resumes at the slot and may repeat what came after the confirmed position.
 *
 * Must never block, never confirm a position whose events were not delivered,
 * never hold a lock while calling libpq, the hub or the log callback, and never
 * keep reading a stream it could not decode.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core_time.h"
#include "core_util.h"
#include "event_internal.h"
#include "source_link.h"
#include "source_logical.h"
#include "source_pgoutput.h"
#include "sql_logical.h"

#define BATCH 64
/* A transaction with more changes than this is delivered in pieces before its
 * Commit arrives (pgoutput v1 sends only committed transactions, so none of it
 * can roll back); its position is still confirmed only at the Commit. Bounds the
 * memory one huge transaction can take. */
#define TXN_HOLD_MAX 4096

enum { PH_NONE = 0, PH_CHECK, PH_CREATE, PH_START, PH_STREAM };
enum { CHECK_NONE = 0, CHECK_OK, CHECK_MISSING, CHECK_FOREIGN, CHECK_LOST };

typedef struct logical_source {
    pgcw__source base;
    pgcw__logical_names names;
    int64_t ping_interval_us, ping_timeout_us;
    bool temporary; /* the slot is made at each connect, TEMPORARY */

    /* Touched only by the driving thread. */
    pgcw__link link;
    pgcw__pgoutput *dec;
    int phase;
    int check;              /* CHECK_*: what the slot check found */
    char check_error[512];  /* its error, if it failed */
    uint64_t confirmed;     /* the position this process confirmed last */
    uint64_t sent_lsn;      /* ... and the one the last status update carried */
    uint64_t server_end;    /* the server's WAL end, as it last said */
    int64_t status_sent_us; /* when the last status update left */
    bool ping_pending;      /* it asked for an answer that has not come */
} logical_source;

static void count(atomic_uint_fast64_t *c, uint64_t n)
{
    if (n)
        atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

static void publish_stats(logical_source *s)
{
    uint64_t lag = s->server_end > s->confirmed ? s->server_end - s->confirmed : 0;
    atomic_store_explicit(&s->base.st_slot_lag_bytes, lag, memory_order_relaxed);
    atomic_store_explicit(&s->base.st_confirmed_lsn, s->confirmed, memory_order_relaxed);
}

static void lost(logical_source *s, const char *what, const char *detail)
{
    pgcw__link_lost(&s->link, what, detail);
}

static void on_drop(pgcw__source *base)
{
    logical_source *s = (logical_source *)base;
    s->phase = PH_NONE;
    s->ping_pending = false;
    /* A new session describes its relations again and resends what was not
     * confirmed, queued events included. */
    pgcw__pgoutput_reset(s->dec);
}

/* Connected, with a temporary slot: make it. It starts at the server's current
 * position, so what was committed before is not delivered (the hub's gap says
 * so). The name is [a-z0-9_]+ (sql_logical.h). The pre-15 spelling of the option,
 * which PostgreSQL 15 still takes. */
static void create_temporary(logical_source *s)
{
    pgcw__buf q = {0};
    pgcw__buf_appendf(&q,
                      "CREATE_REPLICATION_SLOT %s TEMPORARY LOGICAL pgoutput "
                      "NOEXPORT_SNAPSHOT",
                      s->names.slot);
    int ok = q.data && !q.failed && PQsendQuery(s->link.conn.pg, q.data);
    pgcw__buf_free(&q);
    if (!ok) {
        lost(s, "could not connect", NULL);
        return;
    }
    s->phase = PH_CREATE;
    s->check_error[0] = '\0';
    pgcw__link_setup(&s->link, s->link.params.connect_timeout_us);
    pgcw__link_flush(&s->link);
}

/* Connected: is the slot there, and is it ours to use? */
static void on_connected(pgcw__source *base)
{
    logical_source *s = (logical_source *)base;
    if (s->temporary) {
        create_temporary(s);
        return;
    }
    PGconn *pg = s->link.conn.pg;
    char *lit = PQescapeLiteral(pg, s->names.slot, strlen(s->names.slot));
    pgcw__buf q = {0};
    if (lit)
        pgcw__buf_appendf(&q,
                          "SELECT slot_type, plugin, database = current_database(), "
                          "coalesce(wal_status, ''), "
                          "coalesce(confirmed_flush_lsn, '0/0')::text, "
                          "pg_catalog.pg_current_wal_lsn()::text "
                          "FROM pg_catalog.pg_replication_slots WHERE slot_name = %s",
                          lit);
    PQfreemem(lit);
    int ok = q.data && !q.failed && PQsendQuery(pg, q.data);
    pgcw__buf_free(&q);
    if (!ok) {
        lost(s, "could not connect", NULL);
        return;
    }
    s->phase = PH_CHECK;
    s->check = CHECK_NONE;
    s->check_error[0] = '\0';
    pgcw__link_setup(&s->link, s->link.params.connect_timeout_us);
    pgcw__link_flush(&s->link);
}

static void start_replication(logical_source *s)
{
    PGconn *pg = s->link.conn.pg;
    /* publication_names is a string literal holding a list of identifiers. The
     * slot name is [a-z0-9_]+ (sql_logical.h), so it needs no quoting. */
    char *ident =
        PQescapeIdentifier(pg, s->names.publication, strlen(s->names.publication));
    pgcw__buf q = {0};
    if (ident) {
        pgcw__buf_appendf(&q,
                          "START_REPLICATION SLOT %s LOGICAL 0/0 (proto_version '1', "
                          "publication_names '",
                          s->names.slot);
        for (const char *p = ident; *p; p++)
            pgcw__buf_append(&q, *p == '\'' ? "''" : (char[2]){*p, 0});
        pgcw__buf_append(&q, "')");
    }
    PQfreemem(ident);
    int ok = q.data && !q.failed && PQsendQuery(pg, q.data);
    pgcw__buf_free(&q);
    if (!ok) {
        lost(s, "could not connect", NULL);
        return;
    }
    s->phase = PH_START;
    pgcw__link_flush(&s->link);
}

/* PostgreSQL's text form of a WAL position, "16/B374D848"; 0 when it is not. */
static uint64_t parse_lsn(const char *text)
{
    unsigned hi, lo;
    char end;
    if (sscanf(text, "%X/%X%c", &hi, &lo, &end) != 2)
        return 0;
    return (uint64_t)hi << 32 | lo;
}

/* The slot check's result: its rows are kept until the query's end, since the
 * next command can only be sent then. */
static void check_row(logical_source *s, PGresult *res)
{
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        if (!s->check_error[0])
            pgcw__result_message(res, s->link.conn.pg, s->check_error,
                                 sizeof s->check_error);
    } else if (PQntuples(res) == 0) {
        s->check = CHECK_MISSING;
    } else if (strcmp(PQgetvalue(res, 0, 0), "logical") != 0 ||
               strcmp(PQgetvalue(res, 0, 1), "pgoutput") != 0 ||
               strcmp(PQgetvalue(res, 0, 2), "t") != 0) {
        s->check = CHECK_FOREIGN;
    } else if (strcmp(PQgetvalue(res, 0, 3), "lost") == 0) {
        s->check = CHECK_LOST;
    } else {
        s->check = CHECK_OK;
        /* Where the slot stands: the statistics are right from the start, and
         * an abandoned slot's backlog shows before anything is read. */
        uint64_t slot_pos = parse_lsn(PQgetvalue(res, 0, 4));
        uint64_t wal_end = parse_lsn(PQgetvalue(res, 0, 5));
        if (slot_pos > s->confirmed)
            s->confirmed = slot_pos;
        if (wal_end > s->server_end)
            s->server_end = wal_end;
        publish_stats(s);
    }
}

static void check_done(logical_source *s)
{
    char d[640];
    if (s->check_error[0]) {
        lost(s, "could not check the replication slot", s->check_error);
    } else if (s->check == CHECK_MISSING) {
        pgcw__errf(d, sizeof d,
                   "replication slot \"%s\" does not exist; create it and its "
                   "publication with `pgcachewatch install --source logical TABLE... "
                   "--commit`",
                   s->names.slot);
        pgcw__link_fail(&s->link, "logical decoding", d, true);
    } else if (s->check == CHECK_FOREIGN) {
        pgcw__errf(d, sizeof d,
                   "replication slot \"%s\" is not a pgoutput slot of this database",
                   s->names.slot);
        pgcw__link_fail(&s->link, "logical decoding", d, true);
    } else if (s->check == CHECK_LOST) {
        pgcw__errf(d, sizeof d,
                   "replication slot \"%s\" was invalidated: it fell further behind "
                   "than max_slot_wal_keep_size and the changes since its position are "
                   "gone; drop it and install again (`pgcachewatch uninstall --source "
                   "logical --commit`, then install)",
                   s->names.slot);
        pgcw__link_fail(&s->link, "logical decoding", d, true);
    } else if (s->check == CHECK_OK) {
        start_replication(s);
    } else {
        lost(s, "could not check the replication slot", "no result");
    }
}

/* Results while setting up: the check's, then COPY_BOTH or an error. Returns
 * false if the connection was dropped. */
static bool read_setup(logical_source *s)
{
    while ((s->phase == PH_CHECK || s->phase == PH_CREATE || s->phase == PH_START) &&
           !PQisBusy(s->link.conn.pg)) {
        PGresult *res = PQgetResult(s->link.conn.pg);
        s->link.last_rx_us = pgcw__mono_us();
        if (s->phase == PH_CREATE) {
            if (res) {
                if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
                    PQnfields(res) >= 2) {
                    /* consistent_point: where the new slot starts. */
                    uint64_t at = parse_lsn(PQgetvalue(res, 0, 1));
                    s->confirmed = s->server_end = at;
                    publish_stats(s);
                } else if (!s->check_error[0]) {
                    pgcw__result_message(res, s->link.conn.pg, s->check_error,
                                         sizeof s->check_error);
                }
                PQclear(res);
                continue;
            }
            if (s->check_error[0]) {
                lost(s, "could not create the temporary replication slot",
                     s->check_error);
                return false;
            }
            start_replication(s);
            if (s->link.st != PGCW__LINK_SETUP)
                return false;
            continue;
        }
        if (s->phase == PH_CHECK) {
            if (res) {
                check_row(s, res);
                PQclear(res);
                continue;
            }
            check_done(s);
            if (s->link.st != PGCW__LINK_SETUP)
                return false;
            continue;
        }
        if (res && PQresultStatus(res) == PGRES_COPY_BOTH) {
            PQclear(res);
            s->phase = PH_STREAM;
            s->status_sent_us = pgcw__mono_us();
            pgcw__link_ready(&s->link);
            pgcw__logf(s->base.log, s->base.log_ctx, PGCW_LOG_INFO,
                       "logical decoding from slot %s (publication %s), backend pid "
                       "%d, epoch %llu",
                       s->names.slot, s->names.publication, PQbackendPID(s->link.conn.pg),
                       (unsigned long long)s->base.hub_ops->epoch(s->base.hub));
            return true;
        }
        char d[640] = "no result";
        if (res)
            pgcw__result_message(res, s->link.conn.pg, d, sizeof d);
        PQclear(res);
        lost(s, "could not start replication", d);
        return false;
    }
    return true;
}

static void put_be(unsigned char *p, uint64_t v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(v >> (8 * (n - 1 - i)));
}

static uint64_t get_be(const char *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = v << 8 | (unsigned char)p[i];
    return v;
}

/* A standby status update: written, flushed and applied are all the confirmed
 * position (the slot keeps what lies after it). reply asks the server to answer
 * at once, which is the ping. */
static bool send_status(logical_source *s, bool reply)
{
    unsigned char m[34];
    m[0] = 'r';
    put_be(m + 1, s->confirmed, 8);
    put_be(m + 9, s->confirmed, 8);
    put_be(m + 17, s->confirmed, 8);
    put_be(m + 25, (uint64_t)(pgcw__real_us() - PGCW__PG_EPOCH_US), 8);
    m[33] = reply ? 1 : 0;
    int r = PQputCopyData(s->link.conn.pg, (const char *)m, (int)sizeof m);
    if (r < 0) {
        lost(s, "connection lost", NULL);
        return false;
    }
    if (r == 0) /* libpq's buffer is full: flush what it holds, send again later */
        return pgcw__link_flush(&s->link);
    s->sent_lsn = s->confirmed;
    s->status_sent_us = pgcw__mono_us();
    if (reply)
        s->ping_pending = true;
    return pgcw__link_flush(&s->link);
}

static void deliver_queued(logical_source *s)
{
    pgcw_event *batch[BATCH];
    uint64_t epoch = s->base.hub_ops->epoch(s->base.hub);
    int pid = pgcw__link_backend_pid(&s->link);
    size_t n;
    while ((n = pgcw__pgoutput_take(s->dec, batch, BATCH)) > 0) {
        for (size_t i = 0; i < n; i++) { /* still the only reference */
            batch[i]->epoch = epoch;
            batch[i]->backend_pid = pid;
        }
        count(&s->base.st_events, n);
        s->base.hub_ops->deliver(s->base.hub, &s->base, batch, n);
    }
}

/* One XLogData payload. Returns false if the connection was dropped. */
static bool on_xlogdata(logical_source *s, const char *msg, size_t len)
{
    pgcw__pgoutput_info info;
    char why[256];
    pgcw_status st =
        pgcw__pgoutput_feed(s->dec, msg, len, pgcw__real_us(), &info, why, sizeof why);
    if (st != PGCW_OK) {
        /* What follows cannot be trusted: start over from the slot, which resends
         * everything after the confirmed position. */
        count(&s->base.st_malformed, 1);
        lost(s,
             st == PGCW_ENOMEM ? "out of memory decoding the stream"
                               : "malformed pgoutput message",
             why);
        return false;
    }
    if (info.kind == PGCW__PGO_COMMIT) {
        deliver_queued(s);
        if (info.end_lsn > s->confirmed)
            s->confirmed = info.end_lsn;
    } else if (pgcw__pgoutput_pending(s->dec) >= TXN_HOLD_MAX) {
        deliver_queued(s);
    }
    return true;
}

/* Every complete CopyData message libpq holds. Returns false if the connection
 * was dropped. */
static bool read_stream(logical_source *s)
{
    for (;;) {
        char *buf = NULL;
        int n = PQgetCopyData(s->link.conn.pg, &buf, 1);
        if (n == 0)
            return true;
        if (n < 0) {
            /* -1: the server ended the stream (its error follows); -2: broken. */
            char d[640] = "";
            PGresult *res = n == -1 ? PQgetResult(s->link.conn.pg) : NULL;
            if (res)
                pgcw__result_message(res, s->link.conn.pg, d, sizeof d);
            PQclear(res);
            lost(s, "connection lost", d[0] ? d : NULL);
            return false;
        }
        s->link.last_rx_us = pgcw__mono_us();
        s->ping_pending = false;
        size_t len = (size_t)n;
        bool ok = true;
        if (buf[0] == 'w' && len >= 25) {
            uint64_t wal_end = get_be(buf + 9, 8);
            if (wal_end > s->server_end)
                s->server_end = wal_end;
            ok = on_xlogdata(s, buf + 25, len - 25);
        } else if (buf[0] == 'k' && len >= 18) {
            uint64_t wal_end = get_be(buf + 1, 8);
            if (wal_end > s->server_end)
                s->server_end = wal_end;
            /* Between transactions with everything delivered, all the server
             * has sent up to wal_end is consumed: confirming it lets the slot
             * release WAL that held nothing for us. */
            if (!pgcw__pgoutput_in_transaction(s->dec) && wal_end > s->confirmed)
                s->confirmed = wal_end;
            if (buf[17])
                ok = send_status(s, false);
        } else {
            char d[64];
            pgcw__errf(d, sizeof d, "unexpected CopyData message 0x%02x of %zu bytes",
                       (unsigned)(unsigned char)buf[0], len);
            count(&s->base.st_malformed, 1);
            lost(s, "malformed replication stream", d);
            ok = false;
        }
        PQfreemem(buf);
        if (!ok)
            return false;
    }
}

static void online_step(pgcw__source *base, int revents)
{
    logical_source *s = (logical_source *)base;
    if (!pgcw__link_io(&s->link, revents))
        return;
    if (s->phase != PH_STREAM) {
        if (!read_setup(s))
            return;
        if (s->phase != PH_STREAM) {
            if (pgcw__mono_us() >= s->link.deadline_us)
                lost(s, "could not connect", "replication not started in time");
            return;
        }
    }
    if (!read_stream(s))
        return;
    publish_stats(s);
    int64_t now = pgcw__mono_us();
    if (s->ping_pending && now - s->status_sent_us >= s->ping_timeout_us) {
        char d[96];
        pgcw__errf(d, sizeof d, "no answer to a status update within %lld ms",
                   (long long)(s->ping_timeout_us / 1000));
        lost(s, "connection lost", d);
        return;
    }
    bool due = s->ping_interval_us >= 0 && !s->ping_pending &&
               now - s->status_sent_us >= s->ping_interval_us;
    if (s->confirmed != s->sent_lsn || due)
        send_status(s, due);
}

static int64_t source_deadline(const pgcw__source *base)
{
    const logical_source *s = (const logical_source *)base;
    if (s->link.st != PGCW__LINK_READY)
        return pgcw__link_deadline(&s->link);
    if (s->ping_pending)
        return pgcw__deadline_from(s->status_sent_us, s->ping_timeout_us);
    if (s->ping_interval_us < 0)
        return PGCW__NEVER;
    return pgcw__deadline_from(s->status_sent_us, s->ping_interval_us);
}

static void source_free(pgcw__source *base)
{
    logical_source *s = (logical_source *)base;
    if (!s)
        return;
    pgcw__link_free(&s->link);
    pgcw__pgoutput_free(s->dec);
    free(s);
}

static const pgcw__source_vt logical_vt = {
    .name = "logical",
    .step = pgcw__link_source_step,
    .fd = pgcw__link_source_fd,
    .events = pgcw__link_source_events,
    .deadline_us = source_deadline,
    .close = pgcw__link_source_close,
    .backend_pid = pgcw__link_source_backend_pid,
    .free = source_free,
};

pgcw_status pgcw__source_logical_new(const pgcw__logical_cfg *cfg,
                                     const pgcw__hub_ops *ops, void *hub,
                                     pgcw__source **out)
{
    *out = NULL;
    logical_source *s = calloc(1, sizeof *s);
    if (!s)
        return PGCW_ENOMEM;
    char why[256];
    if (pgcw__logical_names_resolve(cfg->channel, cfg->slot_name, cfg->publication,
                                    &s->names, why, sizeof why) != PGCW_OK) {
        pgcw__logf(cfg->log, cfg->log_ctx, PGCW_LOG_ERROR, "logical decoding: %s", why);
        free(s);
        return PGCW_EINVAL;
    }
    s->base.vt = &logical_vt;
    s->base.hub_ops = ops;
    s->base.hub = hub;
    s->base.log = cfg->log;
    s->base.log_ctx = cfg->log_ctx;
    s->ping_interval_us = cfg->ping_interval_us;
    s->ping_timeout_us = cfg->ping_timeout_us;
    s->temporary = cfg->temporary;
    static const char *const keys[] = {"replication", NULL};
    static const char *const vals[] = {"database", NULL};
    const pgcw__link_cfg link_cfg = {.label = "replication connection",
                                     .keys = keys,
                                     .values = vals,
                                     .on_connected = on_connected,
                                     .on_drop = on_drop,
                                     .on_online = online_step};
    bool ok = pgcw__link_init(&s->link, &s->base, cfg->conn, &link_cfg) == PGCW_OK &&
              pgcw__pgoutput_new(cfg->channel ? cfg->channel : PGCW_DEFAULT_CHANNEL,
                                 &s->dec) == PGCW_OK;
    if (!ok) {
        source_free(&s->base);
        return PGCW_ENOMEM;
    }
    *out = &s->base;
    return PGCW_OK;
}
