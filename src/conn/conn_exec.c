/*
 * conn_exec.c - running prepared statements on a pool connection: one pipeline,
 * one sync, one round trip, binary in and out, under a deadline.
 *
 * The connection is non-blocking, so a batch bigger than the socket buffers cannot
 * deadlock (we read results while the rest is still being sent), and no wait here
 * outlives the deadline. Must never leave a connection mid-pipeline: either every
 * result up to the sync was read, or *broken says to close it.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <poll.h>
#include <string.h>

#include "conn_pool.h"
#include "core_time.h"
#include "core_util.h"

void pgcw__put_int64(char out[8], int64_t v)
{
    uint64_t u = (uint64_t)v;
    for (int i = 7; i >= 0; i--) {
        out[i] = (char)(u & 0xff);
        u >>= 8;
    }
}

int64_t pgcw__res_int64(const PGresult *res, int row, int col)
{
    const unsigned char *p = (const unsigned char *)PQgetvalue(res, row, col);
    if (PQgetlength(res, row, col) != 8)
        return 0;
    uint64_t u = 0;
    for (int i = 0; i < 8; i++)
        u = (u << 8) | p[i];
    return (int64_t)u;
}

bool pgcw__res_bool(const PGresult *res, int row, int col)
{
    return PQgetlength(res, row, col) == 1 && PQgetvalue(res, row, col)[0] != 0;
}

pgcw_status pgcw__result_status(const PGresult *res, PGconn *pg, bool *broken)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    if (PQstatus(pg) != CONNECTION_OK || !state) {
        *broken = true;
        return PGCW_ECONNLOST;
    }
    if (strcmp(state, "57014") == 0 || strcmp(state, "55P03") == 0)
        return PGCW_ETIMEDOUT;
    if (strncmp(state, "57P", 3) == 0 || strncmp(state, "08", 2) == 0) {
        *broken = true;
        return PGCW_ECONNLOST;
    }
    return PGCW_EQUERY;
}

static const int k_binary[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};

/* Waits until the socket is readable (or writable when want_write), at most until
 * the deadline. Returns false on timeout or a poll failure. */
static bool wait_socket(PGconn *pg, bool want_write, int64_t deadline_us)
{
    struct pollfd pfd = {.fd = PQsocket(pg),
                         .events = POLLIN | (want_write ? POLLOUT : 0)};
    for (;;) {
        int64_t left = pgcw__deadline_left_ms(deadline_us);
        if (left == 0)
            return false;
        int timeout = left < 0 || left > 1000 ? 1000 : (int)left;
        int r = poll(&pfd, 1, timeout);
        if (r > 0)
            return true;
        if (r < 0 && errno != EINTR)
            return false;
    }
}

pgcw_status pgcw__exec(PGconn *pg, const pgcw__stmt *stmts, size_t n, int64_t deadline_us,
                       pgcw__result_fn fn, void *ctx, char *err, size_t errlen,
                       bool *broken)
{
    *broken = false;
    if (err && errlen)
        err[0] = '\0';
    if (!PQenterPipelineMode(pg)) {
        pgcw__errf(err, errlen, "could not enter pipeline mode: %s", PQerrorMessage(pg));
        *broken = true;
        return PGCW_ECONNLOST;
    }
    for (size_t i = 0; i < n; i++) {
        if (stmts[i].n_params > 16 ||
            !PQsendQueryPrepared(pg, stmts[i].name, stmts[i].n_params, stmts[i].values,
                                 stmts[i].lengths, k_binary, 1)) {
            pgcw__errf(err, errlen, "could not send a statement: %s", PQerrorMessage(pg));
            pgcw__one_line(err);
            *broken = true;
            return PGCW_ECONNLOST;
        }
    }
    if (!PQpipelineSync(pg)) {
        pgcw__errf(err, errlen, "could not send a statement: %s", PQerrorMessage(pg));
        pgcw__one_line(err);
        *broken = true;
        return PGCW_ECONNLOST;
    }

    pgcw_status st = PGCW_OK;
    size_t i = 0;          /* the statement whose results come next */
    bool in_query = false; /* between its first result and its NULL */
    for (;;) {
        int f = PQflush(pg);
        if (f < 0)
            goto lost;
        while (!PQisBusy(pg)) {
            PGresult *res = PQgetResult(pg);
            if (!res) {
                if (in_query) {
                    in_query = false;
                    i++;
                }
                continue;
            }
            ExecStatusType rs = PQresultStatus(res);
            if (rs == PGRES_PIPELINE_SYNC) {
                PQclear(res);
                goto synced;
            }
            in_query = true;
            if (rs == PGRES_TUPLES_OK || rs == PGRES_COMMAND_OK) {
                if (st == PGCW_OK && fn && i < n)
                    st = fn(ctx, i, res);
            } else if (rs != PGRES_PIPELINE_ABORTED && st == PGCW_OK) {
                st = pgcw__result_status(res, pg, broken);
                pgcw__result_message(res, pg, err, errlen);
            }
            PQclear(res);
            if (*broken)
                return st;
        }
        if (!wait_socket(pg, f == 1, deadline_us)) {
            pgcw__errf(err, errlen, "no answer from the server in time");
            *broken = true;
            return PGCW_ETIMEDOUT;
        }
        if (!PQconsumeInput(pg))
            goto lost;
    }
synced:
    if (!PQexitPipelineMode(pg)) {
        *broken = true;
        if (st == PGCW_OK) {
            pgcw__errf(err, errlen, "could not leave pipeline mode: %s",
                       PQerrorMessage(pg));
            pgcw__one_line(err);
            st = PGCW_ECONNLOST;
        }
    }
    return st;
lost:
    pgcw__errf(err, errlen, "connection to the server lost: %s", PQerrorMessage(pg));
    pgcw__one_line(err);
    pgcw__trim_end(err);
    *broken = true;
    return PGCW_ECONNLOST;
}
