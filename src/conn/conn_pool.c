/*
 * conn_pool.c - a fixed set of connections, handed out one holder at a time.
 *
 * Connecting and setting up happen outside the pool's lock (they block for up to
 * the connect timeout), so one slow connect never holds up a checkout that finds a
 * ready connection. Free slots are a stack: the most recently used connection is
 * handed out first, so a lightly loaded pool keeps using one warm backend.
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "conn_pool.h"
#include "core_time.h"
#include "core_util.h"

struct pgcw__pool {
    const pgcw__conn_params *params;
    char *setup_sql;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    size_t size;
    size_t n_free;
    size_t *free_stack; /* slot indexes */
    pgcw__pooled *slots;
    atomic_size_t n_open; /* slots connected and set up */
};

pgcw_status pgcw__pool_new(const pgcw__conn_params *params, size_t size,
                           const char *setup_sql, pgcw__pool **out)
{
    *out = NULL;
    if (size == 0)
        return PGCW_EINVAL;
    pgcw__pool *p = calloc(1, sizeof *p);
    if (!p)
        return PGCW_ENOMEM;
    p->params = params;
    p->size = size;
    p->slots = calloc(size, sizeof *p->slots);
    p->free_stack = calloc(size, sizeof *p->free_stack);
    p->setup_sql = setup_sql ? pgcw__strdup(setup_sql) : NULL;
    if (!p->slots || !p->free_stack || (setup_sql && !p->setup_sql)) {
        free(p->slots);
        free(p->free_stack);
        free(p->setup_sql);
        free(p);
        return PGCW_ENOMEM;
    }
    if (pthread_mutex_init(&p->mu, NULL) != 0 || pgcw__cond_init(&p->cv) != 0) {
        free(p->slots);
        free(p->free_stack);
        free(p->setup_sql);
        free(p);
        return PGCW_ENOMEM;
    }
    /* Slot 0 on top of the stack. */
    for (size_t i = 0; i < size; i++) {
        p->slots[i].index = i;
        p->free_stack[i] = size - 1 - i;
    }
    p->n_free = size;
    *out = p;
    return PGCW_OK;
}

void pgcw__pool_free(pgcw__pool *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->size; i++)
        pgcw__conn_close(&p->slots[i].conn);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p->slots);
    free(p->free_stack);
    free(p->setup_sql);
    free(p);
}

/* Closes a slot's connection (it reconnects on its next checkout). */
static void drop(pgcw__pool *p, pgcw__pooled *pc)
{
    if (pc->ready)
        atomic_fetch_sub(&p->n_open, 1);
    pc->ready = false;
    pgcw__conn_close(&pc->conn);
}

/* Connections idle at least this long are checked at checkout (a recv each). */
#define IDLE_CHECK_US 1000000

/* Whether an idle connection is still usable. A backend that was terminated or a
 * server that went down sent a FATAL and closed: reading finds it without waiting,
 * so the call never goes out on a dead connection. */
static bool still_alive(PGconn *pg)
{
    if (PQstatus(pg) != CONNECTION_OK)
        return false;
    /* The first read may return the FATAL message alone; the second sees the end
     * of the stream (on a live connection both find nothing to read). */
    for (int i = 0; i < 2; i++)
        if (!PQconsumeInput(pg) || PQstatus(pg) != CONNECTION_OK)
            return false;
    return true;
}

static pgcw_status set_up(pgcw__pool *p, pgcw__pooled *pc, char *err, size_t errlen)
{
    pgcw_status st = pgcw__conn_connect(&pc->conn, p->params, NULL, NULL);
    if (st != PGCW_OK) {
        pgcw__errf(err, errlen, "%s", pc->conn.err);
        return st;
    }
    PGconn *pg = pc->conn.pg;
    if (p->setup_sql) {
        PGresult *res = PQexec(pg, p->setup_sql);
        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
            char msg[768];
            pgcw__result_message(res, pg, msg, sizeof msg);
            pgcw__scrub_password(msg, sizeof msg, p->params->password);
            pgcw__errf(err, errlen, "setting up a pool connection: %s", msg);
            PQclear(res);
            pgcw__conn_close(&pc->conn);
            return res ? PGCW_EQUERY : PGCW_ECONNLOST;
        }
        PQclear(res);
    }
    if (PQsetnonblocking(pg, 1) != 0) {
        pgcw__errf(err, errlen, "could not make a pool connection non-blocking");
        pgcw__conn_close(&pc->conn);
        return PGCW_ECONNLOST;
    }
    pc->ready = true;
    pc->fresh = true;
    atomic_fetch_add(&p->n_open, 1);
    return PGCW_OK;
}

pgcw_status pgcw__pool_checkout(pgcw__pool *p, int64_t deadline_us, pgcw__pooled **out,
                                char *err, size_t errlen)
{
    *out = NULL;
    pthread_mutex_lock(&p->mu);
    while (p->n_free == 0) {
        if (!pgcw__cond_wait_until(&p->cv, &p->mu, deadline_us) && p->n_free == 0) {
            pthread_mutex_unlock(&p->mu);
            pgcw__errf(err, errlen,
                       "no pool connection became free in time (all %zu in use)",
                       p->size);
            return PGCW_ETIMEDOUT;
        }
    }
    pgcw__pooled *pc = &p->slots[p->free_stack[--p->n_free]];
    pthread_mutex_unlock(&p->mu);

    pc->fresh = false;
    if (pc->ready && pgcw__mono_us() - pc->idle_since_us >= IDLE_CHECK_US &&
        !still_alive(pc->conn.pg))
        drop(p, pc);
    if (!pc->ready) {
        pgcw_status st = set_up(p, pc, err, errlen);
        if (st != PGCW_OK) {
            pgcw__pool_checkin(p, pc, true);
            return st;
        }
    }
    *out = pc;
    return PGCW_OK;
}

void pgcw__pool_checkin(pgcw__pool *p, pgcw__pooled *pc, bool broken)
{
    if (broken || (pc->conn.pg && PQstatus(pc->conn.pg) != CONNECTION_OK))
        drop(p, pc);
    pc->idle_since_us = pgcw__mono_us();
    pthread_mutex_lock(&p->mu);
    p->free_stack[p->n_free++] = pc->index;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

size_t pgcw__pool_size(const pgcw__pool *p)
{
    return p->size;
}

size_t pgcw__pool_open(pgcw__pool *p)
{
    return atomic_load(&p->n_open);
}
