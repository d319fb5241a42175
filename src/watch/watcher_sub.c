/*
 * sub.c - a subscriber: one bounded, thread-safe event queue fed by its watcher.
 *
 * Overflow is never silent: the events that fit stay, then one gap slot counts
 * what was dropped, then newer events follow as room frees up. The ring has one
 * slot more than the capacity so that a gap always has room. Must never call the
 * log callback, never block a producer (the watcher) on a slow consumer, and never
 * signal the condition variable when nobody waits.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "core_abi.h"
#include "core_time.h"
#include "event_internal.h"
#include "watcher_internal.h"

static pgcw__slot *tail_slot(pgcw_sub *s)
{
    return &s->ring[(s->head + s->count - 1) % s->ring_len];
}

static pgcw__slot *next_slot(pgcw_sub *s)
{
    return &s->ring[(s->head + s->count) % s->ring_len];
}

pgcw_status pgcw_sub_new_sized(pgcw_watcher *w, const pgcw_sub_opts *opts,
                               size_t opts_size, pgcw_sub **out)
{
    if (!out)
        return PGCW_EINVAL;
    *out = NULL;
    pgcw_sub_opts o;
    if (!w || pgcw__opts_copy(&o, sizeof o, opts, opts_size) != PGCW_OK)
        return PGCW_EINVAL;
    size_t cap = o.capacity ? o.capacity : w->queue_capacity;
    if (cap >= SIZE_MAX / sizeof(pgcw__slot) - 1)
        return PGCW_EINVAL;

    pgcw_sub *s = calloc(1, sizeof *s);
    if (!s)
        return PGCW_ENOMEM;
    s->ring = calloc(cap + 1, sizeof *s->ring);
    if (!s->ring) {
        free(s);
        return PGCW_ENOMEM;
    }
    if (pgcw__cond_init(&s->cv) != 0) {
        free(s->ring);
        free(s);
        return PGCW_ENOMEM;
    }
    if (pthread_mutex_init(&s->mu, NULL) != 0) {
        pthread_cond_destroy(&s->cv);
        free(s->ring);
        free(s);
        return PGCW_ENOMEM;
    }
    s->w = w;
    s->capacity = cap;
    s->ring_len = cap + 1;
    atomic_init(&s->gaps, 0);
    atomic_init(&s->pending, 0);

    pthread_mutex_lock(&w->subs_mu);
    s->next = w->subs;
    if (w->subs)
        w->subs->prev = s;
    w->subs = s;
    w->n_subs++;
    pthread_mutex_unlock(&w->subs_mu);
    *out = s;
    return PGCW_OK;
}

void pgcw_sub_free(pgcw_sub *s)
{
    if (!s)
        return;
    pgcw_watcher *w = s->w;
    /* Once unlinked no producer can reach s: producers hold subs_mu while pushing. */
    pthread_mutex_lock(&w->subs_mu);
    if (s->prev)
        s->prev->next = s->next;
    else
        w->subs = s->next;
    if (s->next)
        s->next->prev = s->prev;
    w->n_subs--;
    pthread_mutex_unlock(&w->subs_mu);

    for (size_t i = 0; i < s->count; i++)
        pgcw_event_free(s->ring[(s->head + i) % s->ring_len].ev);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s->ring);
    free(s);
}

static void wake(pgcw_sub *s, int waiters, size_t added)
{
    if (waiters <= 0 || added == 0)
        return;
    if (added == 1)
        pthread_cond_signal(&s->cv);
    else
        pthread_cond_broadcast(&s->cv);
}

uint64_t pgcw__sub_push(pgcw_sub *s, pgcw_event *const *events, size_t n, uint64_t epoch)
{
    uint64_t gaps = 0;
    size_t added = 0;
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < n; i++) {
        if (s->count < s->capacity) {
            *next_slot(s) = (pgcw__slot){.ev = pgcw__event_ref(events[i])};
            s->count++;
            added++;
        } else if (tail_slot(s)->ev == NULL) {
            /* The unread gap at the tail already stands for this loss. */
            tail_slot(s)->gap_lost++;
        } else {
            *next_slot(s) = (pgcw__slot){
                .gap_reason = PGCW_GAP_OVERFLOW, .gap_lost = 1, .gap_epoch = epoch};
            s->count++;
            added++;
            gaps++;
        }
    }
    if (gaps)
        atomic_fetch_add(&s->gaps, gaps);
    atomic_store_explicit(&s->pending, s->count, memory_order_relaxed);
    int waiters = s->waiters;
    pthread_mutex_unlock(&s->mu);
    /* s stays alive: the caller holds subs_mu, which pgcw_sub_free() needs. */
    wake(s, waiters, added);
    return gaps;
}

void pgcw__sub_push_gap(pgcw_sub *s, pgcw_gap_reason reason, uint64_t lost,
                        uint64_t epoch)
{
    size_t added = 0;
    pthread_mutex_lock(&s->mu);
    if (s->count == s->ring_len) {
        /* Full, so the tail is an unread gap: widen it instead of dropping this one.
         * A consumer flushes on any gap, so one slot still tells the whole story. */
        pgcw__slot *t = tail_slot(s);
        if (reason == PGCW_GAP_DISCONNECTED)
            t->gap_reason = reason;
        if (epoch > t->gap_epoch)
            t->gap_epoch = epoch;
        t->gap_lost += lost;
    } else {
        *next_slot(s) =
            (pgcw__slot){.gap_reason = reason, .gap_lost = lost, .gap_epoch = epoch};
        s->count++;
        added = 1;
    }
    atomic_fetch_add(&s->gaps, 1);
    atomic_store_explicit(&s->pending, s->count, memory_order_relaxed);
    int waiters = s->waiters;
    pthread_mutex_unlock(&s->mu);
    wake(s, waiters, added);
}

pgcw_status pgcw_sub_get(pgcw_sub *s, int64_t timeout_ms, const pgcw_event **out)
{
    if (!out)
        return PGCW_EINVAL;
    *out = NULL;
    if (!s)
        return PGCW_EINVAL;

    pthread_mutex_lock(&s->mu);
    if (s->count == 0 && timeout_ms != 0) {
        int64_t deadline = pgcw__deadline_in_ms(timeout_ms); /* huge: never */
        s->waiters++;
        while (s->count == 0 && pgcw__cond_wait_until(&s->cv, &s->mu, deadline))
            ;
        s->waiters--;
    }
    if (s->count == 0) {
        pthread_mutex_unlock(&s->mu);
        return timeout_ms == 0 ? PGCW_EAGAIN : PGCW_ETIMEDOUT;
    }

    pgcw__slot *slot = &s->ring[s->head];
    const pgcw_event *ev = slot->ev;
    if (!ev) {
        /* Materialized only now, so recording the gap never needed memory. On OOM the
         * gap stays queued for the next try. */
        pgcw_status st = pgcw_event_new_gap(NULL, slot->gap_reason, slot->gap_lost,
                                            slot->gap_epoch, &ev);
        if (st != PGCW_OK) {
            pthread_mutex_unlock(&s->mu);
            return st;
        }
    }
    *slot = (pgcw__slot){0};
    s->head = (s->head + 1) % s->ring_len;
    s->count--;
    atomic_store_explicit(&s->pending, s->count, memory_order_relaxed);
    pthread_mutex_unlock(&s->mu);
    *out = ev;
    return PGCW_OK;
}

pgcw_status pgcw_sub_try_get(pgcw_sub *s, const pgcw_event **out)
{
    return pgcw_sub_get(s, 0, out);
}

size_t pgcw_sub_pending(const pgcw_sub *s)
{
    return s ? atomic_load_explicit(&s->pending, memory_order_relaxed) : 0;
}

uint64_t pgcw_sub_gap_count(const pgcw_sub *s)
{
    return s ? atomic_load(&s->gaps) : 0;
}

pgcw_watcher *pgcw_sub_watcher(const pgcw_sub *s)
{
    return s ? s->w : NULL;
}
