/*
 * watcher.c - the hub: options, its sources, health (every source healthy) and the
 * epoch, counters, the last error, and fan-out of events and gaps to sinks and
 * subscribers.
 *
 * Sources are driven by watcher_loop.c, queues live in watcher_sub.c and sinks in
 * watcher_sink.c. Must never call a callback while holding a lock, never print,
 * and never let a health change happen without the matching gaps and epoch step.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core_abi.h"
#include "core_time.h"
#include "event_internal.h"
#include "pgcachewatch/install.h"
#include "source_logical.h"
#include "watcher_internal.h"
#include "watcher_kind.h"

/* PostgreSQL truncates identifiers to NAMEDATALEN - 1 bytes. */
#define CHANNEL_MAX 63

static bool set_nonblock_cloexec(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return false;
    int fdfl = fcntl(fd, F_GETFD);
    return fdfl >= 0 && fcntl(fd, F_SETFD, fdfl | FD_CLOEXEC) == 0;
}

/* A ms option that may be negative ("never"/"disabled"), as us: < 0 stays -1. */
static int64_t ms_opt(int64_t ms, int64_t dflt_ms)
{
    return ms < 0 ? -1 : pgcw__ms_or(ms, dflt_ms);
}

/* Every source's ping timeout: 5 s by default; a negative one means the default. */
static int64_t ping_timeout_us(const pgcw_watcher_opts *o)
{
    return pgcw__ms_or(o->ping_timeout_ms < 0 ? 0 : o->ping_timeout_ms, 5000);
}

/* Adds a source just made (st: how making it went), or frees it. */
pgcw_status pgcw__watcher_adopt(pgcw_watcher *w, pgcw_status st, pgcw__source *src)
{
    if (st == PGCW_OK && (st = pgcw__watcher_add_source(w, src)) != PGCW_OK)
        src->vt->free(src);
    return st;
}

/* Validates the channels and formats and creates the LISTEN source. */
static pgcw_status make_listen_source(pgcw_watcher *w, const pgcw_watcher_opts *o,
                                      const pgcw_conn_opts *conn)
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
        if (o->formats && !pgcw__payload_format_valid(o->formats[i]))
            return PGCW_EINVAL;
    }
    pgcw__listen_cfg cfg = {
        .conn = conn,
        .channels = chans,
        .formats = o->formats,
        .n_channels = n,
        .max_latency_us = ms_opt(o->max_latency_ms, 500),
        .ping_interval_us = ms_opt(o->ping_interval_ms, 10000),
        .ping_timeout_us = ping_timeout_us(o),
        .log = o->log,
        .log_ctx = o->log_ctx,
        .probe = !o->skip_listen_probe,
    };
    cfg.probe_timeout_us = cfg.ping_timeout_us;
    pgcw__source *src = NULL;
    pgcw_status st = pgcw__source_listen_new(&cfg, &pgcw__watcher_hub_ops, w, &src);
    return pgcw__watcher_adopt(w, st, src);
}

/* The logical decoding source: slot and publication from the options or, by
 * default, from the first channel (watcher.h). */
static pgcw_status make_logical_source(pgcw_watcher *w, const pgcw_watcher_opts *o,
                                       const pgcw_conn_opts *conn)
{
    if (o->n_channels && (!o->channels || !o->channels[0]))
        return PGCW_EINVAL;
    pgcw__logical_cfg cfg = {
        .conn = conn,
        .channel = o->n_channels ? o->channels[0] : PGCW_DEFAULT_CHANNEL,
        .slot_name = o->slot_name,
        .publication = o->publication,
        .ping_interval_us = ms_opt(o->ping_interval_ms, 10000),
        .ping_timeout_us = ping_timeout_us(o),
        .temporary = o->temporary_slot,
        .log = o->log,
        .log_ctx = o->log_ctx,
    };
    pgcw__source *src = NULL;
    pgcw_status st = pgcw__source_logical_new(&cfg, &pgcw__watcher_hub_ops, w, &src);
    return pgcw__watcher_adopt(w, st, src);
}

/* The source opts.source names. */
static pgcw_status make_source(pgcw_watcher *w, const pgcw_watcher_opts *o,
                               const pgcw_conn_opts *conn)
{
    w->source_kind = o->source;
    switch (o->source) {
    case PGCW_WATCH_LISTEN:
        return make_listen_source(w, o, conn);
    case PGCW_WATCH_LOGICAL:
        return make_logical_source(w, o, conn);
    case PGCW_WATCH_POLL:
        return pgcw__watcher_make_poll(w, o, conn);
    }
    return PGCW_EINVAL; /* not a source this library knows */
}

pgcw_watch_source pgcw__watcher_source_kind(const pgcw_watcher *w)
{
    return w->source_kind;
}

static void free_sources(pgcw_watcher *w)
{
    for (size_t i = 0; i < w->n_sources; i++)
        w->sources[i]->vt->free(w->sources[i]);
    free(w->sources);
    w->sources = NULL;
    w->n_sources = 0;
}

pgcw_status pgcw__watcher_add_source(pgcw_watcher *w, pgcw__source *src)
{
    pgcw__source **grown = realloc(w->sources, (w->n_sources + 1) * sizeof *grown);
    if (!grown)
        return PGCW_ENOMEM;
    w->sources = grown;
    atomic_init(&src->healthy, false);
    src->hub_ops = &pgcw__watcher_hub_ops;
    src->hub = w;
    pthread_mutex_lock(&w->state_mu);
    w->sources[w->n_sources++] = src;
    /* One more source that is not healthy yet: the watcher is not either. */
    atomic_store(&w->healthy, false);
    pthread_mutex_unlock(&w->state_mu);
    return PGCW_OK;
}

pgcw_status pgcw_watcher_new_sized(const pgcw_watcher_opts *opts, size_t opts_size,
                                   const pgcw_conn_opts *conn, size_t conn_size,
                                   pgcw_watcher **out)
{
    if (!out)
        return PGCW_EINVAL;
    *out = NULL;
    pgcw_watcher_opts o;
    pgcw_conn_opts co;
    if (pgcw__opts_copy(&o, sizeof o, opts, opts_size) != PGCW_OK ||
        pgcw__opts_copy(&co, sizeof co, conn, conn_size) != PGCW_OK)
        return PGCW_EINVAL;
    pgcw_watcher *w = calloc(1, sizeof *w);
    if (!w)
        return PGCW_ENOMEM;
    w->wake_rd = w->wake_wr = -1;
    w->queue_capacity = o.queue_capacity ? o.queue_capacity : 4096;
    w->log = o.log;
    w->log_ctx = o.log_ctx;

    int fds[2];
    if (pipe(fds) != 0) {
        free(w);
        return PGCW_ENOMEM;
    }
    w->wake_rd = fds[0];
    w->wake_wr = fds[1];
    bool ok = set_nonblock_cloexec(fds[0]) && set_nonblock_cloexec(fds[1]);
    bool cv_state = ok && pgcw__cond_init(&w->state_cv) == 0;
    bool cv_sinks = cv_state && pgcw__cond_init(&w->sinks_cv) == 0;
    if (!cv_sinks) {
        if (cv_state)
            pthread_cond_destroy(&w->state_cv);
        close(fds[0]);
        close(fds[1]);
        free(w);
        return PGCW_ENOMEM;
    }
    pthread_mutex_init(&w->subs_mu, NULL);
    pthread_mutex_init(&w->sinks_mu, NULL);
    pthread_mutex_init(&w->state_mu, NULL);
    pthread_mutex_init(&w->err_mu, NULL);
    atomic_init(&w->healthy, false);
    atomic_init(&w->epoch, 0);
    atomic_init(&w->permanent_failures, 0);
    atomic_init(&w->interrupted, false);
    atomic_init(&w->stopping, false);
    w->next_sink_id = 1;

    pgcw_status st = make_source(w, &o, &co);
    if (st != PGCW_OK) {
        pgcw_watcher_free(w);
        return st;
    }
    *out = w;
    return PGCW_OK;
}

void pgcw_watcher_free(pgcw_watcher *w)
{
    if (!w)
        return;
    pgcw_watcher_stop(w);
    free_sources(w);
    close(w->wake_rd);
    close(w->wake_wr);
    pthread_mutex_destroy(&w->subs_mu);
    pthread_mutex_destroy(&w->sinks_mu);
    pthread_mutex_destroy(&w->state_mu);
    pthread_mutex_destroy(&w->err_mu);
    pthread_cond_destroy(&w->state_cv);
    pthread_cond_destroy(&w->sinks_cv);
    free(w);
}

const char *pgcw_watcher_errmsg(const pgcw_watcher *w)
{
    /* A per-thread snapshot, so a reader never sees a half-written message from the
     * driving thread and two readers never share a buffer. */
    static _Thread_local char out[sizeof w->err];
    if (!w)
        return "";
    pgcw_watcher *mw = (pgcw_watcher *)w;
    pthread_mutex_lock(&mw->err_mu);
    pgcw__escape_line(out, sizeof out, mw->err, strlen(mw->err));
    pthread_mutex_unlock(&mw->err_mu);
    return out;
}

static void hub_error(void *hub, pgcw__source *src, const char *msg)
{
    (void)src;
    pgcw_watcher *w = hub;
    pthread_mutex_lock(&w->err_mu);
    pgcw__errf(w->err, sizeof w->err, "%s", msg ? msg : "");
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

static uint64_t hub_epoch(void *hub)
{
    return pgcw_watcher_epoch(hub);
}

int pgcw_watcher_backend_pid(const pgcw_watcher *w)
{
    if (!w)
        return 0;
    for (size_t i = 0; i < w->n_sources; i++) {
        int pid = w->sources[i]->vt->backend_pid(w->sources[i]);
        if (pid)
            return pid;
    }
    return 0;
}

void pgcw_watcher_stats_get_sized(const pgcw_watcher *w, pgcw_watcher_stats *out,
                                  size_t out_size)
{
    pgcw_watcher_stats st = {0};
    if (w) {
#define LOAD(a) atomic_load_explicit(&(a), memory_order_relaxed)
        for (size_t i = 0; i < w->n_sources; i++) {
            const pgcw__source *s = w->sources[i];
            st.notifications += LOAD(s->st_notifications);
            st.events += LOAD(s->st_events);
            st.key_events += LOAD(s->st_key_events);
            st.malformed += LOAD(s->st_malformed);
            st.late += LOAD(s->st_late);
            st.connects += LOAD(s->st_connects);
            st.disconnects += LOAD(s->st_disconnects);
            st.conn_errors += LOAD(s->st_conn_errors);
            double usage = (double)LOAD(s->st_queue_usage_ppb) / 1e9;
            if (usage > st.notify_queue_usage) /* the fullest server's */
                st.notify_queue_usage = usage;
            st.slot_lag_bytes += LOAD(s->st_slot_lag_bytes);
            if (LOAD(s->st_confirmed_lsn) > st.confirmed_lsn)
                st.confirmed_lsn = LOAD(s->st_confirmed_lsn);
        }
        st.gaps = LOAD(w->st_gaps);
        st.sink_calls = LOAD(w->st_sink_calls);
#undef LOAD
    }
    pgcw__stats_copy(out, out_size, &st, sizeof st);
}

static void hub_healthy(void *hub, pgcw__source *src)
{
    pgcw_watcher *w = hub;
    pthread_mutex_lock(&w->state_mu);
    if (!atomic_load(&src->healthy)) {
        atomic_store(&src->healthy, true);
        w->healthy_sources++;
        if (w->healthy_sources == w->n_sources && !atomic_load(&w->healthy)) {
            /* Epoch first: whoever sees healthy must also see the new epoch. */
            atomic_fetch_add(&w->epoch, 1);
            atomic_store(&w->healthy, true);
            pthread_cond_broadcast(&w->state_cv);
        }
    }
    pthread_mutex_unlock(&w->state_mu);
}

static void hub_unhealthy(void *hub, pgcw__source *src, bool lost, bool permanent)
{
    (void)lost; /* the source counts its own losses */
    pgcw_watcher *w = hub;
    pthread_mutex_lock(&w->state_mu);
    if (atomic_load(&src->healthy)) {
        atomic_store(&src->healthy, false);
        w->healthy_sources--;
    }
    bool was = atomic_load(&w->healthy);
    uint64_t epoch = atomic_load(&w->epoch);
    if (was)
        atomic_store(&w->healthy, false);
    if (permanent)
        atomic_fetch_add(&w->permanent_failures, 1);
    if (was || permanent)
        pthread_cond_broadcast(&w->state_cv);
    pthread_mutex_unlock(&w->state_mu);
    /* Unhealthy is visible before any gap, so a consumer that sees the gap and then
     * asks pgcw_watcher_healthy() is told the truth. */
    if (was)
        pgcw__watcher_gap_all(w, PGCW_GAP_DISCONNECTED, 0, epoch);
}

static void hub_deliver(void *hub, pgcw__source *src, pgcw_event **events, size_t n)
{
    (void)src;
    pgcw__watcher_fanout(hub, events, n);
}

static void hub_gap(void *hub, pgcw__source *src, pgcw_gap_reason reason, uint64_t lost)
{
    (void)src;
    pgcw_watcher *w = hub;
    pgcw__watcher_gap_all(w, reason, lost, atomic_load(&w->epoch));
}

const pgcw__hub_ops pgcw__watcher_hub_ops = {
    .healthy = hub_healthy,
    .unhealthy = hub_unhealthy,
    .deliver = hub_deliver,
    .error = hub_error,
    .epoch = hub_epoch,
    .gap = hub_gap,
};

void pgcw__watcher_set_healthy(pgcw_watcher *w, bool healthy)
{
    if (!w || w->n_sources == 0)
        return;
    if (healthy) {
        for (size_t i = 0; i < w->n_sources; i++) {
            pgcw__source *s = w->sources[i];
            if (!atomic_load(&s->healthy)) {
                atomic_fetch_add_explicit(&s->st_connects, 1, memory_order_relaxed);
                hub_healthy(w, s);
            }
        }
    } else if (atomic_load(&w->healthy)) {
        pgcw__source *s = w->sources[0];
        atomic_fetch_add_explicit(&s->st_disconnects, 1, memory_order_relaxed);
        hub_unhealthy(w, s, true, false);
    }
}

void pgcw__watcher_gap_all(pgcw_watcher *w, pgcw_gap_reason reason, uint64_t lost,
                           uint64_t epoch)
{
    /* Sinks see the gap synchronously; it lives on this stack for the calls only
     * (a sink that keeps it clones it), so announcing a gap never needs memory. */
    int64_t now = pgcw__real_us();
    pgcw_event gap = {.kind = PGCW_EVENT_GAP,
                      .operation = PGCW_OP_NONE,
                      .channel = "",
                      .sent_at_us = now,
                      .received_at_us = now,
                      .epoch = epoch,
                      .gap_reason = reason,
                      .gap_lost = lost,
                      .source = PGCW_SOURCE_LOCAL};
    const pgcw_event *one = &gap;
    uint64_t calls = pgcw__sinks_deliver(w, &one, 1);
    pthread_mutex_lock(&w->subs_mu);
    size_t n = w->n_subs;
    for (pgcw_sub *s = w->subs; s; s = s->next)
        pgcw__sub_push_gap(s, reason, lost, epoch);
    pthread_mutex_unlock(&w->subs_mu);
    atomic_fetch_add_explicit(&w->st_gaps, n, memory_order_relaxed);
    if (calls)
        atomic_fetch_add_explicit(&w->st_sink_calls, calls, memory_order_relaxed);
}

void pgcw__watcher_fanout(pgcw_watcher *w, pgcw_event **events, size_t n)
{
    if (n == 0)
        return;
    /* Sinks first: an L1 evicting a key must not lag behind a queue consumer. */
    uint64_t calls = pgcw__sinks_deliver(w, (const pgcw_event *const *)events, n);
    uint64_t epoch = atomic_load(&w->epoch);
    uint64_t gaps = 0;
    pthread_mutex_lock(&w->subs_mu);
    for (pgcw_sub *s = w->subs; s; s = s->next)
        gaps += pgcw__sub_push(s, events, n, epoch);
    pthread_mutex_unlock(&w->subs_mu);
    if (gaps)
        atomic_fetch_add_explicit(&w->st_gaps, gaps, memory_order_relaxed);
    if (calls)
        atomic_fetch_add_explicit(&w->st_sink_calls, calls, memory_order_relaxed);
    for (size_t i = 0; i < n; i++)
        pgcw_event_free(events[i]);
}

pgcw_status pgcw_watcher_dispatch(pgcw_watcher *w, const pgcw_event *event)
{
    if (!w || !event)
        return PGCW_EINVAL;
    if (event->kind == PGCW_EVENT_GAP) {
        pgcw__watcher_gap_all(w, event->gap_reason, event->gap_lost, event->epoch);
        return PGCW_OK;
    }
    /* One copy shared by every consumer; the caller keeps its event. */
    pgcw_event *copy = NULL;
    pgcw_status st =
        pgcw__event_build(event, event->payload ? strlen(event->payload) : 0, &copy);
    if (st != PGCW_OK)
        return st;
    pgcw__watcher_fanout(w, &copy, 1);
    return PGCW_OK;
}
