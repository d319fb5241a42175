/*
 * strategy.c - Greedy, Windowed and Timed: drain a subscriber under a deadline and
 * answer "must the cache be cleared now?".
 *
 * Semantics follow the Python strategies (pick_until_deadline, Greedy, Windowed,
 * Timed) with one addition: a gap event always means "clear". A gap also resets the
 * Windowed history (the operations around it are not a contiguous sequence any
 * more) and leaves the Timed reference alone (a gap clears outside the timing
 * rule).
 *
 * It must never run the predicate or any other callback while holding its mutex,
 * and never block: the queue is only ever read with pgcw_sub_try_get().
 */
#define _POSIX_C_SOURCE 200809L
#include "pgcachewatch/strategy.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core_abi.h"
#include "core_util.h"

#define DEFAULT_MAX_EVENTS 1000
#define DEFAULT_MAX_TIME_US 1000

struct pgcw_strategy {
    pgcw_watcher *watcher;
    pgcw_sub *sub;
    pgcw_strategy_kind kind;
    size_t max_events;
    int64_t max_time_us;

    pgcw_predicate_fn predicate; /* Greedy */
    void *predicate_ctx;

    /* Windowed and Timed state. Held while taking an event from the queue and
     * folding it in, so concurrent callers fold events in queue order. */
    pthread_mutex_t mu;

    pgcw_op *window; /* Windowed: the wanted sequence, oldest first */
    pgcw_op *seen;   /* ring of the last window_len operations (Python's deque) */
    size_t window_len;
    size_t seen_head; /* index of the oldest */
    size_t seen_count;

    int64_t interval_us; /* Timed */
    int64_t previous_us; /* sent_at of the last clearing event (realtime clock) */
};

static bool valid_op(pgcw_op op)
{
    return op >= PGCW_OP_INSERT && op <= PGCW_OP_TRUNCATE;
}

pgcw_status pgcw_strategy_new_sized(pgcw_watcher *w, const pgcw_strategy_opts *user_opts,
                                    size_t opts_size, pgcw_strategy **out)
{
    if (!out)
        return PGCW_EINVAL;
    *out = NULL;
    pgcw_strategy_opts copy;
    if (!w || pgcw__opts_copy(&copy, sizeof copy, user_opts, opts_size) != PGCW_OK)
        return PGCW_EINVAL;
    const pgcw_strategy_opts *opts = &copy;
    if (opts->deadline.max_time_us < 0)
        return PGCW_EINVAL;
    switch (opts->kind) {
    case PGCW_STRATEGY_GREEDY:
        break;
    case PGCW_STRATEGY_WINDOWED:
        if (!opts->window || opts->window_len == 0)
            return PGCW_EINVAL;
        for (size_t i = 0; i < opts->window_len; i++)
            if (!valid_op(opts->window[i]))
                return PGCW_EINVAL;
        break;
    case PGCW_STRATEGY_TIMED:
        if (opts->interval_us <= 0)
            return PGCW_EINVAL;
        break;
    default:
        return PGCW_EINVAL;
    }

    pgcw_strategy *s = calloc(1, sizeof *s);
    if (!s)
        return PGCW_ENOMEM;
    s->watcher = w;
    s->kind = opts->kind;
    s->max_events =
        opts->deadline.max_events ? opts->deadline.max_events : DEFAULT_MAX_EVENTS;
    s->max_time_us =
        opts->deadline.max_time_us ? opts->deadline.max_time_us : DEFAULT_MAX_TIME_US;
    s->predicate = opts->predicate;
    s->predicate_ctx = opts->predicate_ctx;
    s->interval_us = opts->interval_us;
    s->previous_us = pgcw__real_us();
    if (s->kind == PGCW_STRATEGY_WINDOWED) {
        s->window_len = opts->window_len;
        s->window = malloc(s->window_len * sizeof *s->window);
        s->seen = malloc(s->window_len * sizeof *s->seen);
        if (!s->window || !s->seen) {
            free(s->window);
            free(s->seen);
            free(s);
            return PGCW_ENOMEM;
        }
        memcpy(s->window, opts->window, s->window_len * sizeof *s->window);
    }
    if (pthread_mutex_init(&s->mu, NULL) != 0) {
        free(s->window);
        free(s->seen);
        free(s);
        return PGCW_ENOMEM;
    }
    pgcw_sub_opts so = {.capacity = opts->queue_capacity};
    pgcw_status st = pgcw_sub_new(w, &so, &s->sub);
    if (st != PGCW_OK) {
        pthread_mutex_destroy(&s->mu);
        free(s->window);
        free(s->seen);
        free(s);
        return st;
    }
    *out = s;
    return PGCW_OK;
}

void pgcw_strategy_free(pgcw_strategy *s)
{
    if (!s)
        return;
    pgcw_sub_free(s->sub);
    pthread_mutex_destroy(&s->mu);
    free(s->window);
    free(s->seen);
    free(s);
}

/* Windowed, under s->mu: events.append(op); return events == window. */
static bool window_push(pgcw_strategy *s, pgcw_op op)
{
    size_t n = s->window_len;
    if (s->seen_count < n) {
        s->seen[(s->seen_head + s->seen_count) % n] = op;
        s->seen_count++;
    } else {
        s->seen[s->seen_head] = op; /* overwrite the oldest: deque(maxlen=n) */
        s->seen_head = (s->seen_head + 1) % n;
    }
    if (s->seen_count < n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (s->seen[(s->seen_head + i) % n] != s->window[i])
            return false;
    return true;
}

/* A gap (lost notifications) or a schema change (the columns a memoized result
 * was built from may be gone): whatever the strategy or predicate, only clearing
 * is safe. */
static bool must_clear(const pgcw_event *e)
{
    return e->kind == PGCW_EVENT_GAP || e->kind == PGCW_EVENT_SCHEMA;
}

/* Takes one event and, for the stateful strategies, folds it in under the mutex.
 * Returns PGCW_OK with *clear set, or the queue's status when it is empty. The
 * event is handed back for Greedy's predicate (owned by the caller); otherwise it
 * is already freed. */
static pgcw_status take_one(pgcw_strategy *s, bool *clear, const pgcw_event **greedy_ev)
{
    const pgcw_event *e = NULL;
    *clear = false;
    *greedy_ev = NULL;
    if (s->kind == PGCW_STRATEGY_GREEDY) {
        pgcw_status st = pgcw_sub_try_get(s->sub, &e);
        if (st != PGCW_OK)
            return st;
        if (must_clear(e)) {
            *clear = true;
            pgcw_event_free(e);
        } else {
            *greedy_ev = e;
        }
        return PGCW_OK;
    }

    pthread_mutex_lock(&s->mu);
    pgcw_status st = pgcw_sub_try_get(s->sub, &e);
    if (st == PGCW_OK) {
        if (must_clear(e)) {
            *clear = true;
            s->seen_count = 0;
            s->seen_head = 0;
        } else if (s->kind == PGCW_STRATEGY_WINDOWED) {
            *clear = window_push(s, e->operation);
        } else if (e->sent_at_us - s->previous_us > s->interval_us) {
            s->previous_us = e->sent_at_us;
            *clear = true;
        }
    }
    pthread_mutex_unlock(&s->mu);
    pgcw_event_free(e);
    return st;
}

bool pgcw_strategy_clear(pgcw_strategy *s)
{
    /* The common case, nothing queued, costs one atomic read instead of the
     * queue's mutex: that lock is shared by every thread that asks. */
    if (!s || pgcw_sub_pending(s->sub) == 0)
        return false;
    int64_t now = pgcw__mono_us();
    int64_t deadline = now + s->max_time_us;
    for (size_t n = 0; n < s->max_events && deadline > now; n++) {
        bool clear;
        const pgcw_event *e;
        if (take_one(s, &clear, &e) != PGCW_OK)
            return false;
        if (e) {
            clear = !s->predicate || s->predicate(s->predicate_ctx, e);
            pgcw_event_free(e);
        }
        if (clear)
            return true;
        now = pgcw__mono_us();
    }
    return false;
}

bool pgcw_strategy_healthy(const pgcw_strategy *s)
{
    return s && pgcw_watcher_healthy(s->watcher);
}

uint64_t pgcw_strategy_generation(const pgcw_strategy *s)
{
    if (!s)
        return 0;
    /* Both counts only grow, so their sum changes whenever either does: a
     * reconnect (epoch) or any gap sent to this subscriber (loss or overflow). */
    return pgcw_watcher_epoch(s->watcher) + pgcw_sub_gap_count(s->sub);
}

pgcw_sub *pgcw_strategy_sub(const pgcw_strategy *s)
{
    return s ? s->sub : NULL;
}
