/*
 * conn_async.c - one libpq connection attempt, non-blocking (PQconnectStartParams
 * + PQconnectPoll under a deadline), its failure as a message with the SQLSTATE,
 * and the notice receiver every connection gets.
 *
 * Must never block (but pgcw__conn_connect(), whose waits are bounded by the
 * attempt's deadline), never print (libpq's default notice processor would), and
 * never let the password into err or notice.
 */
#define _POSIX_C_SOURCE 200809L
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn_internal.h"
#include "core_util.h"
#include "pgcachewatch/adapters/poll.h"

/* libpq routes what the server says outside a query (the FATAL a terminated
 * backend sends before closing, NOTICEs) to the notice receiver, whose default
 * prints to stderr: a library must never. Keep it for the loss message. */
static void on_notice(void *arg, const PGresult *res)
{
    pgcw__conn *c = arg;
    pgcw__result_message(res, NULL, c->notice, sizeof c->notice);
    pgcw__scrub_password(c->notice, sizeof c->notice, c->password);
}

/* An attempt failed: "could not connect: detail". */
static pgcw__conn_step failed(pgcw__conn *c, pgcw_status status, bool permanent,
                              const char *detail)
{
    pgcw__errf(c->err, sizeof c->err, "could not connect: %s", detail);
    pgcw__scrub_password(c->err, sizeof c->err, c->password);
    c->status = status;
    c->permanent = permanent;
    if (c->pg) {
        PQfinish(c->pg);
        c->pg = NULL;
    }
    c->connecting = false;
    return PGCW__CONN_FAILED;
}

/* A failed attempt: libpq's message (made verbose so that the server's SQLSTATE is
 * in it), rewritten to one line with the SQLSTATE at the end. */
static pgcw__conn_step attempt_failed(pgcw__conn *c)
{
    char msg[sizeof c->err];
    pgcw__connect_message(c->pg ? PQerrorMessage(c->pg) : "", msg, sizeof msg,
                          c->sqlstate);
    return failed(c, PGCW_ECONNECT, pgcw__sqlstate_permanent(c->sqlstate), msg);
}

void pgcw__conn_close(pgcw__conn *c)
{
    if (c->pg) {
        PQfinish(c->pg);
        c->pg = NULL;
    }
    c->connecting = false;
    c->poll_events = 0;
}

pgcw__conn_step pgcw__conn_start(pgcw__conn *c, const pgcw__conn_params *p,
                                 const char *const *extra_keys,
                                 const char *const *extra_values)
{
    pgcw__conn_close(c);
    c->err[0] = c->sqlstate[0] = c->notice[0] = '\0';
    c->permanent = false;
    c->status = PGCW_OK;
    c->password = p->password;
    if (p->error)
        return failed(c, PGCW_EINVAL, true, p->error);

    size_t n_extra = 0;
    while (extra_keys && extra_keys[n_extra])
        n_extra++;
    const char **keys = malloc((p->n + n_extra + 1) * sizeof *keys);
    const char **vals = malloc((p->n + n_extra + 1) * sizeof *vals);
    if (!keys || !vals) {
        free(keys);
        free(vals);
        return failed(c, PGCW_ENOMEM, false, "out of memory");
    }
    for (size_t i = 0; i < p->n; i++) {
        keys[i] = p->keys[i];
        vals[i] = p->values[i];
    }
    for (size_t i = 0; i < n_extra; i++) {
        keys[p->n + i] = extra_keys[i];
        vals[p->n + i] = extra_values[i];
    }
    keys[p->n + n_extra] = vals[p->n + n_extra] = NULL;
    c->pg = PQconnectStartParams(keys, vals, 0);
    free(keys);
    free(vals);
    if (!c->pg)
        return failed(c, PGCW_ENOMEM, false, "out of memory");
    PQsetNoticeReceiver(c->pg, on_notice, c);
    /* Verbose until connected: the only way libpq lets us see the SQLSTATE of an
     * error the server sends during authentication (pgcw__connect_message). */
    PQsetErrorVerbosity(c->pg, PQERRORS_VERBOSE);
    /* Already failed: libpq refused an option's value, or tried every host at once
     * (a unix socket that does not exist fails inside PQconnectStartParams). */
    if (PQstatus(c->pg) == CONNECTION_BAD)
        return attempt_failed(c);
    c->connecting = true;
    /* libpq: act as if PQconnectPoll had returned PGRES_POLLING_WRITING. */
    c->poll_events = PGCW_IO_WRITE;
    c->timeout_us = p->connect_timeout_us;
    c->deadline_us = pgcw__deadline_in_us(p->connect_timeout_us);
    return pgcw__conn_poll(c, -1);
}

static bool fd_ready(int fd, int want)
{
    struct pollfd p = {.fd = fd, .events = pgcw_poll_events(want)};
    return poll(&p, 1, 0) > 0;
}

pgcw__conn_step pgcw__conn_poll(pgcw__conn *c, int revents)
{
    if (!c->connecting)
        return c->pg ? PGCW__CONN_OK : PGCW__CONN_FAILED;
    /* PQconnectPoll may only be called once the socket is ready. */
    bool ready = revents < 0 ? fd_ready(PQsocket(c->pg), c->poll_events)
                             : (revents & c->poll_events) != 0;
    if (ready) {
        switch (PQconnectPoll(c->pg)) {
        case PGRES_POLLING_READING:
            c->poll_events = PGCW_IO_READ;
            break;
        case PGRES_POLLING_WRITING:
            c->poll_events = PGCW_IO_WRITE;
            break;
        case PGRES_POLLING_OK:
            PQsetErrorVerbosity(c->pg, PQERRORS_DEFAULT);
            c->connecting = false;
            c->poll_events = 0;
            c->err[0] = c->sqlstate[0] = '\0';
            return PGCW__CONN_OK;
        default:
            return attempt_failed(c);
        }
    }
    if (c->deadline_us != PGCW__NEVER && pgcw__mono_us() >= c->deadline_us) {
        char d[96];
        pgcw__errf(d, sizeof d, "timeout expired after %lld ms",
                   (long long)(c->timeout_us / 1000));
        return failed(c, PGCW_ETIMEDOUT, false, d);
    }
    return PGCW__CONN_PENDING;
}

int pgcw__conn_fd(const pgcw__conn *c)
{
    return c->pg ? PQsocket(c->pg) : -1;
}

int pgcw__conn_events(const pgcw__conn *c)
{
    return c->connecting ? c->poll_events : 0;
}

pgcw_status pgcw__conn_connect(pgcw__conn *c, const pgcw__conn_params *p,
                               const char *const *extra_keys,
                               const char *const *extra_values)
{
    pgcw__conn_step st = pgcw__conn_start(c, p, extra_keys, extra_values);
    while (st == PGCW__CONN_PENDING) {
        struct pollfd pfd = {.fd = pgcw__conn_fd(c),
                             .events = pgcw_poll_events(pgcw__conn_events(c))};
        int64_t left = pgcw__deadline_left_ms(c->deadline_us);
        int timeout = left < 0 || left > 1000 ? 1000 : (int)left;
        int r = poll(&pfd, 1, timeout);
        st = pgcw__conn_poll(c, r > 0 ? pgcw_poll_io(pfd.revents) : 0);
    }
    return st == PGCW__CONN_OK ? PGCW_OK : c->status;
}

void pgcw__conn_fail(pgcw__conn *c, const char *what, const char *detail)
{
    char libpq_msg[512] = "";
    if (!detail && c->pg) {
        pgcw__errf(libpq_msg, sizeof libpq_msg, "%s", PQerrorMessage(c->pg));
        detail = pgcw__one_line(libpq_msg);
    }
    char notice[sizeof c->notice];
    memcpy(notice, c->notice, sizeof notice);
    c->notice[0] = '\0';
    bool have_notice = notice[0] && (!detail || !strstr(detail, notice));
    pgcw__errf(c->err, sizeof c->err, "%s: %s%s%s%s", what,
               detail && *detail ? detail : "unknown error",
               have_notice ? " (server: " : "", have_notice ? notice : "",
               have_notice ? ")" : "");
    pgcw__scrub_password(c->err, sizeof c->err, c->password);
    c->sqlstate[0] = '\0';
    c->permanent = false;
    c->status = PGCW_ECONNLOST;
    pgcw__conn_close(c);
}
