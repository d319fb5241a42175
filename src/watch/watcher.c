/*
 * watcher.c - the watcher handle: options, health and epoch, counters, the last
 * error, and fan-out of events and gaps to subscribers.
 *
 * The connection itself lives in watcher_conn.c and the loops in watcher_loop.c.
 * Must never call the log callback while holding a lock, never print, and never
 * let a health change happen without the matching gaps and epoch step.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "event_internal.h"
#include "pgcachewatch/install.h"
#include "watcher_internal.h"

/* PostgreSQL truncates identifiers to NAMEDATALEN - 1 bytes. */
#define CHANNEL_MAX 63

static int64_t ms_or(int64_t ms, int64_t dflt_ms)
{
    return (ms > 0 ? ms : dflt_ms) * 1000;
}

static bool set_nonblock_cloexec(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return false;
    int fdfl = fcntl(fd, F_GETFD);
    return fdfl >= 0 && fcntl(fd, F_SETFD, fdfl | FD_CLOEXEC) == 0;
}

static pgcw_status copy_opts(pgcw_watcher *w, const pgcw_watcher_opts *o)
{
    static const char *const default_channels[] = {PGCW_DEFAULT_CHANNEL};
    const char *const *chans = o->n_channels ? o->channels : default_channels;
    size_t n = o->n_channels ? o->n_channels : 1;
    if (!chans)
        return PGCW_EINVAL;
    for (size_t i = 0; i < n; i++) {
        size_t len = chans[i] ? strlen(chans[i]) : 0;
        if (len == 0 || len > CHANNEL_MAX)
            return PGCW_EINVAL;
    }
    w->channels = calloc(n, sizeof *w->channels);
    if (!w->channels)
        return PGCW_ENOMEM;
    w->n_channels = n;
    for (size_t i = 0; i < n; i++)
        if (!(w->channels[i] = pgcw__strdup(chans[i])))
            return PGCW_ENOMEM;

    const char *conninfo = o->conninfo ? o->conninfo : getenv("PGDSN");
    if (conninfo && !(w->conninfo = pgcw__strdup(conninfo)))
        return PGCW_ENOMEM;

    w->max_latency_us = o->max_latency_ms < 0 ? -1 : ms_or(o->max_latency_ms, 500);
    w->reconnect_min_us = ms_or(o->reconnect_min_ms, 100);
    w->reconnect_max_us = ms_or(o->reconnect_max_ms, 5000);
    if (w->reconnect_max_us < w->reconnect_min_us)
        w->reconnect_max_us = w->reconnect_min_us;
    w->connect_timeout_us = ms_or(o->connect_timeout_ms, 10000);
    w->ping_interval_us =
        o->ping_interval_ms < 0 ? -1 : ms_or(o->ping_interval_ms, 10000);
    w->ping_timeout_us = ms_or(o->ping_timeout_ms, 5000);
    w->queue_capacity = o->queue_capacity ? o->queue_capacity : 4096;
    w->log = o->log;
    w->log_ctx = o->log_ctx;
    return PGCW_OK;
}

static void free_opts(pgcw_watcher *w)
{
    for (size_t i = 0; w->channels && i < w->n_channels; i++)
        free(w->channels[i]);
    free(w->channels);
    free(w->conninfo);
}

pgcw_status pgcw_watcher_new(const pgcw_watcher_opts *opts, pgcw_watcher **out)
{
    if (!out)
        return PGCW_EINVAL;
    *out = NULL;
    static const pgcw_watcher_opts defaults = {0};
    pgcw_watcher *w = calloc(1, sizeof *w);
    if (!w)
        return PGCW_ENOMEM;
    w->wake_rd = w->wake_wr = -1;
    pgcw_status st = copy_opts(w, opts ? opts : &defaults);
    if (st != PGCW_OK) {
        free_opts(w);
        free(w);
        return st;
    }

    int fds[2];
    if (pipe(fds) != 0) {
        free_opts(w);
        free(w);
        return PGCW_ENOMEM;
    }
    w->wake_rd = fds[0];
    w->wake_wr = fds[1];
    pthread_condattr_t ca;
    bool ok = set_nonblock_cloexec(fds[0]) && set_nonblock_cloexec(fds[1]) &&
              pthread_condattr_init(&ca) == 0;
    if (ok) {
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        ok = pthread_cond_init(&w->state_cv, &ca) == 0;
        pthread_condattr_destroy(&ca);
    }
    if (!ok) {
        close(fds[0]);
        close(fds[1]);
        free_opts(w);
        free(w);
        return PGCW_ENOMEM;
    }
    pthread_mutex_init(&w->subs_mu, NULL);
    pthread_mutex_init(&w->state_mu, NULL);
    pthread_mutex_init(&w->err_mu, NULL);
    atomic_init(&w->healthy, false);
    atomic_init(&w->epoch, 0);
    atomic_init(&w->backend_pid, 0);
    atomic_init(&w->interrupted, false);
    atomic_init(&w->stopping, false);
    w->st = PGCW__ST_IDLE;
    w->backoff_us = w->reconnect_min_us;
    /* Jitter only has to differ between processes that lost the same server. */
    w->rng = (uint64_t)pgcw__real_us() ^ ((uint64_t)(uintptr_t)w << 16) ^
             ((uint64_t)getpid() << 40);
    if (w->rng == 0)
        w->rng = 0x9e3779b97f4a7c15u;
    *out = w;
    return PGCW_OK;
}

void pgcw_watcher_free(pgcw_watcher *w)
{
    if (!w)
        return;
    pgcw_watcher_stop(w);
    pgcw__watcher_close_conn(w);
    pgcw__watcher_became_unhealthy(w, false);
    close(w->wake_rd);
    close(w->wake_wr);
    pthread_mutex_destroy(&w->subs_mu);
    pthread_mutex_destroy(&w->state_mu);
    pthread_mutex_destroy(&w->err_mu);
    pthread_cond_destroy(&w->state_cv);
    free_opts(w);
    free(w);
}

const char *pgcw_watcher_errmsg(const pgcw_watcher *w)
{
    if (!w)
        return "";
    /* err_out is a snapshot so a reader never sees a half-written message from the
     * watcher's own thread. */
    pgcw_watcher *mw = (pgcw_watcher *)w;
    pthread_mutex_lock(&mw->err_mu);
    memcpy(mw->err_out, mw->err, sizeof mw->err_out);
    pthread_mutex_unlock(&mw->err_mu);
    return mw->err_out;
}

void pgcw__watcher_set_err(pgcw_watcher *w, const char *fmt, ...)
{
    char msg[sizeof w->err];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    size_t len = strlen(msg);
    while (len > 0 && (msg[len - 1] == '\n' || msg[len - 1] == ' '))
        msg[--len] = '\0';
    pthread_mutex_lock(&w->err_mu);
    memcpy(w->err, msg, len + 1);
    pthread_mutex_unlock(&w->err_mu);
}

bool pgcw_watcher_healthy(const pgcw_watcher *w)
{
    return w && atomic_load(&w->healthy);
}

uint64_t pgcw_watcher_epoch(const pgcw_watcher *w)
{
    return w ? atomic_load(&w->epoch) : 0;
}

int pgcw_watcher_backend_pid(const pgcw_watcher *w)
{
    return w ? atomic_load_explicit(&w->backend_pid, memory_order_relaxed) : 0;
}

void pgcw_watcher_stats_get(const pgcw_watcher *w, pgcw_watcher_stats *out)
{
    if (!out)
        return;
    *out = (pgcw_watcher_stats){0};
    if (!w)
        return;
#define LOAD(f) atomic_load_explicit(&w->st_##f, memory_order_relaxed)
    out->notifications = LOAD(notifications);
    out->events = LOAD(events);
    out->malformed = LOAD(malformed);
    out->late = LOAD(late);
    out->connects = LOAD(connects);
    out->disconnects = LOAD(disconnects);
    out->gaps = LOAD(gaps);
#undef LOAD
}

bool pgcw__watcher_became_healthy(pgcw_watcher *w)
{
    pthread_mutex_lock(&w->state_mu);
    bool was = atomic_load(&w->healthy);
    if (!was) {
        /* Epoch first: whoever sees healthy must also see the new epoch. */
        atomic_fetch_add(&w->epoch, 1);
        atomic_store(&w->healthy, true);
        pthread_cond_broadcast(&w->state_cv);
    }
    pthread_mutex_unlock(&w->state_mu);
    if (!was)
        atomic_fetch_add_explicit(&w->st_connects, 1, memory_order_relaxed);
    return !was;
}

bool pgcw__watcher_became_unhealthy(pgcw_watcher *w, bool lost)
{
    pthread_mutex_lock(&w->state_mu);
    bool was = atomic_load(&w->healthy);
    uint64_t epoch = atomic_load(&w->epoch);
    if (was) {
        atomic_store(&w->healthy, false);
        pthread_cond_broadcast(&w->state_cv);
    }
    pthread_mutex_unlock(&w->state_mu);
    if (!was)
        return false;

    /* Unhealthy is visible before any gap, so a consumer that sees the gap and
     * then asks pgcw_watcher_healthy() is told the truth. */
    pthread_mutex_lock(&w->subs_mu);
    size_t n = w->n_subs;
    for (pgcw_sub *s = w->subs; s; s = s->next)
        pgcw__sub_push_gap(s, PGCW_GAP_DISCONNECTED, 0, epoch);
    pthread_mutex_unlock(&w->subs_mu);
    atomic_fetch_add_explicit(&w->st_gaps, n, memory_order_relaxed);
    if (lost)
        atomic_fetch_add_explicit(&w->st_disconnects, 1, memory_order_relaxed);
    return true;
}

void pgcw__watcher_set_healthy(pgcw_watcher *w, bool healthy)
{
    if (!w)
        return;
    if (healthy)
        pgcw__watcher_became_healthy(w);
    else
        pgcw__watcher_became_unhealthy(w, true);
}

void pgcw__watcher_fanout(pgcw_watcher *w, pgcw_event **events, size_t n)
{
    if (n == 0)
        return;
    uint64_t epoch = atomic_load(&w->epoch);
    uint64_t gaps = 0;
    pthread_mutex_lock(&w->subs_mu);
    for (pgcw_sub *s = w->subs; s; s = s->next)
        gaps += pgcw__sub_push(s, events, n, epoch);
    pthread_mutex_unlock(&w->subs_mu);
    if (gaps)
        atomic_fetch_add_explicit(&w->st_gaps, gaps, memory_order_relaxed);
    for (size_t i = 0; i < n; i++)
        pgcw_event_free(events[i]);
}

pgcw_status pgcw_watcher_dispatch(pgcw_watcher *w, const pgcw_event *event)
{
    if (!w || !event)
        return PGCW_EINVAL;
    if (event->kind == PGCW_EVENT_GAP) {
        pthread_mutex_lock(&w->subs_mu);
        size_t n = w->n_subs;
        for (pgcw_sub *s = w->subs; s; s = s->next)
            pgcw__sub_push_gap(s, event->gap_reason, event->gap_lost, event->epoch);
        pthread_mutex_unlock(&w->subs_mu);
        atomic_fetch_add_explicit(&w->st_gaps, n, memory_order_relaxed);
        return PGCW_OK;
    }
    /* One copy shared by every subscriber; the caller keeps its event. */
    pgcw_event *copy = NULL;
    pgcw_status st = pgcw_event_clone(event, &copy);
    if (st != PGCW_OK)
        return st;
    pgcw__watcher_fanout(w, &copy, 1);
    return PGCW_OK;
}

void pgcw__watcher_close_conn(pgcw_watcher *w)
{
    if (w->conn) {
        PQfinish(w->conn);
        w->conn = NULL;
    }
    atomic_store_explicit(&w->backend_pid, 0, memory_order_relaxed);
    w->query = PGCW__Q_NONE;
    w->flush_pending = false;
    w->listen_ok = 0;
    free(w->listen_error);
    w->listen_error = NULL;
}
