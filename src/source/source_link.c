/*
 * source_link.c - a source's connection life: connect, set up (the source's part),
 * ready, lost, back off, reconnect. See source_link.h.
 *
 * Every libpq call here is non-blocking once connected. Never holds a lock; calls
 * the hub and the log callback only through the owning source's hub_ops and log.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core_time.h"
#include "core_util.h"
#include "source_link.h"

static void count(atomic_uint_fast64_t *c)
{
    atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

pgcw_status pgcw__link_init(pgcw__link *l, pgcw__source *src, const pgcw_conn_opts *conn,
                            const pgcw__link_cfg *cfg)
{
    memset(l, 0, sizeof *l);
    l->src = src;
    src->link = l;
    l->cfg = *cfg;
    l->st = PGCW__LINK_IDLE;
    atomic_init(&l->backend_pid, 0);
    if (pgcw__conn_params_init(&l->params, conn) != PGCW_OK)
        return PGCW_ENOMEM;
    /* Jitter only has to differ between processes that lost the same server. */
    uint64_t seed = (uint64_t)pgcw__real_us() ^ ((uint64_t)(uintptr_t)l << 16) ^
                    ((uint64_t)getpid() << 40);
    pgcw__backoff_init(&l->backoff, l->params.reconnect_min_us,
                       l->params.reconnect_max_us, seed);
    return PGCW_OK;
}

static void drop(pgcw__link *l)
{
    pgcw__conn_close(&l->conn);
    atomic_store_explicit(&l->backend_pid, 0, memory_order_relaxed);
    l->flush_pending = false;
    if (l->cfg.on_drop)
        l->cfg.on_drop(l->src);
}

void pgcw__link_free(pgcw__link *l)
{
    drop(l);
    pgcw__conn_params_free(&l->params);
}

/* Ends the current attempt or connection (l->conn.err holds why): drops it,
 * reports unhealthy (lost, if it was healthy), schedules the next attempt. */
static void failed(pgcw__link *l)
{
    pgcw__source *s = l->src;
    drop(l);
    bool lost = atomic_load(&s->healthy);
    count(lost ? &s->st_disconnects : &s->st_conn_errors);
    s->hub_ops->error(s->hub, s, l->conn.err);
    s->hub_ops->unhealthy(s->hub, s, lost, l->conn.permanent);
    int64_t delay = pgcw__backoff_next(&l->backoff);
    l->st = PGCW__LINK_BACKOFF;
    l->deadline_us = pgcw__deadline_in_us(delay);

    char msg[sizeof l->conn.err + 96];
    pgcw__errf(msg, sizeof msg, "%s%s%s; retrying in %lld ms", lost ? l->cfg.label : "",
               lost ? ": " : "", l->conn.err,
               (long long)(delay / 1000 + (delay % 1000 != 0)));
    pgcw__logf(s->log, s->log_ctx, PGCW_LOG_WARNING, "%s", msg);
}

void pgcw__link_fail(pgcw__link *l, const char *what, const char *detail, bool permanent)
{
    pgcw__conn_fail(&l->conn, what, detail);
    l->conn.permanent = permanent;
    failed(l);
}

void pgcw__link_lost(pgcw__link *l, const char *what, const char *detail)
{
    pgcw__link_fail(l, what, detail, false);
}

const char *pgcw__link_lost_what(const pgcw__link *l)
{
    return l->st == PGCW__LINK_READY ? "connection lost" : "could not connect";
}

bool pgcw__link_flush(pgcw__link *l)
{
    int r = PQflush(l->conn.pg);
    if (r < 0) {
        pgcw__link_lost(l, pgcw__link_lost_what(l), NULL);
        return false;
    }
    l->flush_pending = r == 1;
    return true;
}

static void connected(pgcw__link *l)
{
    if (PQsetnonblocking(l->conn.pg, 1) != 0) {
        pgcw__link_lost(l, "could not connect", NULL);
        return;
    }
    atomic_store_explicit(&l->backend_pid, PQbackendPID(l->conn.pg),
                          memory_order_relaxed);
    l->st = PGCW__LINK_SETUP;
    l->deadline_us = pgcw__deadline_in_us(l->params.connect_timeout_us);
    l->cfg.on_connected(l->src);
}

bool pgcw__link_step(pgcw__link *l, int revents)
{
    pgcw__conn_step r;
    switch (l->st) {
    case PGCW__LINK_BACKOFF:
        if (pgcw__mono_us() < l->deadline_us)
            return true;
        /* fall through */
    case PGCW__LINK_IDLE:
        r = pgcw__conn_start(&l->conn, &l->params, l->cfg.keys, l->cfg.values);
        if (r == PGCW__CONN_FAILED) {
            failed(l);
            return true;
        }
        l->st = PGCW__LINK_CONNECTING;
        if (r == PGCW__CONN_OK)
            connected(l);
        return true;
    case PGCW__LINK_CONNECTING:
        r = pgcw__conn_poll(&l->conn, revents);
        if (r == PGCW__CONN_OK)
            connected(l);
        else if (r == PGCW__CONN_FAILED)
            failed(l);
        return true;
    case PGCW__LINK_SETUP:
    case PGCW__LINK_READY:
        break;
    }
    return false;
}

bool pgcw__link_io(pgcw__link *l, int revents)
{
    if (l->flush_pending && (revents < 0 || (revents & PGCW_IO_WRITE)) &&
        !pgcw__link_flush(l))
        return false;
    if (revents < 0 || (revents & PGCW_IO_READ)) {
        if (!PQconsumeInput(l->conn.pg) || PQstatus(l->conn.pg) == CONNECTION_BAD) {
            pgcw__link_lost(l, pgcw__link_lost_what(l), NULL);
            return false;
        }
    }
    return true;
}

void pgcw__link_setup(pgcw__link *l, int64_t timeout_us)
{
    l->st = PGCW__LINK_SETUP;
    l->deadline_us = pgcw__deadline_in_us(timeout_us);
}

void pgcw__link_ready(pgcw__link *l)
{
    pgcw__source *s = l->src;
    l->st = PGCW__LINK_READY;
    l->last_rx_us = pgcw__mono_us();
    pgcw__backoff_reset(&l->backoff);
    count(&s->st_connects);
    s->hub_ops->error(s->hub, s, "");
    s->hub_ops->healthy(s->hub, s);
}

void pgcw__link_close(pgcw__link *l)
{
    if (l->st == PGCW__LINK_IDLE)
        return;
    drop(l);
    l->st = PGCW__LINK_IDLE;
    pgcw__backoff_reset(&l->backoff);
    l->src->hub_ops->unhealthy(l->src->hub, l->src, false, false);
}

int pgcw__link_fd(const pgcw__link *l)
{
    return pgcw__conn_fd(&l->conn);
}

int pgcw__link_events(const pgcw__link *l)
{
    if (!l->conn.pg)
        return 0;
    if (l->st == PGCW__LINK_CONNECTING)
        return pgcw__conn_events(&l->conn);
    return PGCW_IO_READ | (l->flush_pending ? PGCW_IO_WRITE : 0);
}

int64_t pgcw__link_deadline(const pgcw__link *l)
{
    switch (l->st) {
    case PGCW__LINK_IDLE:
        return 0;
    case PGCW__LINK_CONNECTING:
        return l->conn.deadline_us;
    case PGCW__LINK_BACKOFF:
    case PGCW__LINK_SETUP:
        return l->deadline_us;
    case PGCW__LINK_READY:
        break;
    }
    return PGCW__NEVER;
}

int pgcw__link_backend_pid(const pgcw__link *l)
{
    return atomic_load_explicit(&l->backend_pid, memory_order_relaxed);
}

/* --- vtable entries for a source whose connection is its link ------------------ */

void pgcw__link_source_step(pgcw__source *s, int revents)
{
    if (!pgcw__link_step(s->link, revents))
        s->link->cfg.on_online(s, revents);
}

int pgcw__link_source_fd(const pgcw__source *s)
{
    return pgcw__link_fd(s->link);
}

int pgcw__link_source_events(const pgcw__source *s)
{
    return pgcw__link_events(s->link);
}

void pgcw__link_source_close(pgcw__source *s)
{
    pgcw__link_close(s->link);
}

int pgcw__link_source_backend_pid(const pgcw__source *s)
{
    return pgcw__link_backend_pid(s->link);
}
