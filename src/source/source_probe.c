/*
 * source_probe.c - the LISTEN self-probe's second session (source_probe.h).
 * Non-blocking: PQconnectPoll through the conn module, PQsendQueryParams,
 * PQgetResult only when !PQisBusy. Never blocks, never reports to the hub (the
 * LISTEN source decides what a round means), never keeps a PGresult.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core_time.h"
#include "core_util.h"
#include "source_probe.h"

/* How often the second session is stepped while it is open. */
#define STEP_US 2000

void pgcw__probe_name(pgcw__probe *p)
{
    /* Named at each connect, in the process that connects (a fork after the
     * watcher was made gets a name of its own). */
    uint64_t r = (uint64_t)pgcw__real_us() ^ ((uint64_t)(uintptr_t)p << 12) ^ p->round;
    snprintf(p->channel, sizeof p->channel, "pgcw_probe_%d_%016llx", (int)getpid(),
             (unsigned long long)r);
}

void pgcw__probe_stop(pgcw__probe *p)
{
    pgcw__conn_close(&p->conn);
    p->sent = false;
    p->st = PGCW__PROBE_OFF;
}

static void unsent(pgcw__probe *p, const char *why)
{
    pgcw__errf(p->err, sizeof p->err, "%s", why);
    pgcw__conn_close(&p->conn);
    p->sent = false;
    p->st = PGCW__PROBE_UNSENT;
}

void pgcw__probe_start(pgcw__probe *p, const pgcw__conn_params *params,
                       int64_t timeout_us)
{
    pgcw__probe_stop(p);
    snprintf(p->token, sizeof p->token, "probe %u", ++p->round);
    p->err[0] = '\0';
    p->timeout_us = timeout_us;
    /* Connecting and sending are bounded by the connect timeout (a failure there
     * teaches nothing: UNSENT); the round's bound starts once it is committed. */
    p->deadline_us = PGCW__NEVER;
    p->send_deadline_us = pgcw__deadline_in_us(params->connect_timeout_us);
    p->st = PGCW__PROBE_SENDING;
    /* Named, so that it is never taken for the LISTEN connection itself. */
    static const char *const keys[] = {"application_name", NULL};
    static const char *const vals[] = {"pgcachewatch listen probe", NULL};
    if (pgcw__conn_start(&p->conn, params, keys, vals) == PGCW__CONN_FAILED)
        unsent(p, p->conn.err);
}

static void send_probe(pgcw__probe *p)
{
    const char *params[2] = {p->channel, p->token};
    if (PQsetnonblocking(p->conn.pg, 1) != 0 ||
        !PQsendQueryParams(p->conn.pg, "SELECT pg_catalog.pg_notify($1, $2)", 2, NULL,
                           params, NULL, NULL, 0)) {
        unsent(p, PQerrorMessage(p->conn.pg));
        return;
    }
    p->sent = true;
}

void pgcw__probe_step(pgcw__probe *p)
{
    if (p->st != PGCW__PROBE_SENDING && !(p->st == PGCW__PROBE_WAITING && p->conn.pg))
        return;
    if (!p->sent) {
        pgcw__conn_step r = pgcw__conn_poll(&p->conn, -1);
        if (r == PGCW__CONN_FAILED)
            unsent(p, p->conn.err);
        else if (r == PGCW__CONN_OK)
            send_probe(p);
        if (!p->sent)
            return;
    }
    if (p->st == PGCW__PROBE_SENDING && pgcw__mono_us() >= p->send_deadline_us) {
        unsent(p, "the probe's session did not answer within the connect timeout");
        return;
    }
    if (PQflush(p->conn.pg) < 0 || !PQconsumeInput(p->conn.pg)) {
        unsent(p, PQerrorMessage(p->conn.pg));
        return;
    }
    while (!PQisBusy(p->conn.pg)) {
        PGresult *res = PQgetResult(p->conn.pg);
        if (!res) { /* done: the notification is committed */
            pgcw__conn_close(&p->conn);
            p->sent = false;
            if (p->st == PGCW__PROBE_SENDING) {
                p->st = PGCW__PROBE_WAITING;
                p->deadline_us = pgcw__deadline_in_us(p->timeout_us);
            }
            return;
        }
        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
            char msg[512];
            pgcw__result_message(res, p->conn.pg, msg, sizeof msg);
            PQclear(res);
            unsent(p, msg);
            return;
        }
        PQclear(res);
    }
}

bool pgcw__probe_take(pgcw__probe *p, const char *channel, const char *payload)
{
    if (strcmp(channel, p->channel) != 0)
        return false;
    if ((p->st == PGCW__PROBE_SENDING || p->st == PGCW__PROBE_WAITING) &&
        strcmp(payload, p->token) == 0) {
        pgcw__conn_close(&p->conn);
        p->sent = false;
        p->st = PGCW__PROBE_ARRIVED;
    }
    return true;
}

int64_t pgcw__probe_deadline(const pgcw__probe *p)
{
    if (p->st != PGCW__PROBE_SENDING && p->st != PGCW__PROBE_WAITING)
        return PGCW__NEVER;
    if (p->conn.pg)
        return pgcw__deadline_in_us(STEP_US);
    return p->deadline_us;
}

bool pgcw__probe_expired(const pgcw__probe *p)
{
    return p->st == PGCW__PROBE_WAITING && pgcw__mono_us() >= p->deadline_us;
}
