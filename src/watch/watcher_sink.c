/*
 * watcher_sink.c - sinks: callbacks that see every event synchronously, on the
 * delivering thread, before any queue does (watcher.h).
 *
 * Deliveries never hold a lock while calling out: under w->sinks_mu a delivery
 * pins up to CHUNK sinks (calls++), in registration order, then calls them
 * unlocked, then unpins them; the next chunk starts after the last id seen, so the
 * list may change in between and needs no allocation. pgcw_sink_free() unlinks the
 * sink and waits until no delivery pins it, unless it is called from inside a
 * callback (it could wait for itself): then the last delivery to unpin it frees it.
 * Must never allocate while delivering, nor call a callback of a removed sink from
 * a delivery that pinned it after the removal.
 */
#include <stdlib.h>

#include "core_abi.h"
#include "watcher_internal.h"

#define CHUNK 16

/* How many sink callbacks this thread is inside (a sink may call back in). */
static _Thread_local int in_callback;

pgcw_status pgcw_sink_new_sized(pgcw_watcher *w, const pgcw_sink_opts *opts,
                                size_t opts_size, pgcw_sink **out)
{
    if (!out)
        return PGCW_EINVAL;
    *out = NULL;
    pgcw_sink_opts o;
    if (!w || pgcw__opts_copy(&o, sizeof o, opts, opts_size) != PGCW_OK || !o.fn)
        return PGCW_EINVAL;
    pgcw_sink *s = calloc(1, sizeof *s);
    if (!s)
        return PGCW_ENOMEM;
    s->w = w;
    s->fn = o.fn;
    s->ctx = o.ctx;
    atomic_init(&s->removed, false);
    pthread_mutex_lock(&w->sinks_mu);
    s->id = w->next_sink_id++;
    pgcw_sink **tail = &w->sinks;
    while (*tail)
        tail = &(*tail)->next;
    *tail = s;
    pthread_mutex_unlock(&w->sinks_mu);
    *out = s;
    return PGCW_OK;
}

void pgcw_sink_free(pgcw_sink *s)
{
    if (!s)
        return;
    pgcw_watcher *w = s->w;
    pthread_mutex_lock(&w->sinks_mu);
    for (pgcw_sink **p = &w->sinks; *p; p = &(*p)->next)
        if (*p == s) {
            *p = s->next;
            break;
        }
    atomic_store(&s->removed, true);
    if (s->calls > 0 && in_callback > 0) {
        s->free_when_idle = true;
        pthread_mutex_unlock(&w->sinks_mu);
        return;
    }
    while (s->calls > 0)
        pthread_cond_wait(&w->sinks_cv, &w->sinks_mu);
    pthread_mutex_unlock(&w->sinks_mu);
    free(s);
}

uint64_t pgcw__sinks_deliver(pgcw_watcher *w, const pgcw_event *const *events, size_t n)
{
    uint64_t calls = 0, after = 0;
    for (;;) {
        pgcw_sink *chunk[CHUNK];
        size_t k = 0;
        pthread_mutex_lock(&w->sinks_mu);
        for (pgcw_sink *s = w->sinks; s && k < CHUNK; s = s->next)
            if (s->id > after) {
                s->calls++;
                chunk[k++] = s;
            }
        pthread_mutex_unlock(&w->sinks_mu);
        if (k == 0)
            return calls;
        after = chunk[k - 1]->id;

        in_callback++;
        for (size_t i = 0; i < k; i++)
            for (size_t e = 0; e < n && !atomic_load(&chunk[i]->removed); e++) {
                chunk[i]->fn(chunk[i]->ctx, events[e]);
                calls++;
            }
        in_callback--;

        pgcw_sink *to_free[CHUNK];
        size_t nf = 0;
        bool wake = false;
        pthread_mutex_lock(&w->sinks_mu);
        for (size_t i = 0; i < k; i++) {
            pgcw_sink *s = chunk[i];
            if (--s->calls > 0 || !atomic_load(&s->removed))
                continue;
            if (s->free_when_idle)
                to_free[nf++] = s;
            else
                wake = true;
        }
        if (wake)
            pthread_cond_broadcast(&w->sinks_cv);
        pthread_mutex_unlock(&w->sinks_mu);
        for (size_t i = 0; i < nf; i++)
            free(to_free[i]);
    }
}
