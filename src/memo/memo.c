/*
 * memo.c - memoized results: bypass while unhealthy, clear when the strategy (or a
 * gap) says so, single-flight loading per key, and no storing of a load that raced
 * with a clear.
 *
 * Locks: m->mu guards the generation and the in-flight list and is taken before
 * the store's own lock; each in-flight record has its own mutex + condvar for its
 * waiters. The loader, the statistics callback and the strategy (whose predicate is
 * user code) are only ever called with no lock held. This file must never hand a
 * caller memory it shares with anyone else: every value and message is copied out.
 *
 * Counting follows the Python decorator: a caller that finds the key in flight
 * counts as a hit (it found the future in the cache), so misses == loads.
 *
 * What "clear" guarantees under concurrency: a get that begins after the get which
 * drained an invalidating event has returned never sees a value stored before it.
 * A get running at the same time as that draining get may still be served the old
 * value: that overlap is part of the invalidation delay (see ARCHITECTURE.md,
 * "bounded staleness"); closing it would mean holding a lock across the user's
 * predicate.
 */
#define _POSIX_C_SOURCE 200809L
#include "pgcachewatch/memo.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "memo_store.h"
#include "core_util.h"

#define DEFAULT_MAX_ENTRIES 10000
#define DEFAULT_MAX_BYTES ((size_t)64 * 1024 * 1024)

struct pgcw_memo_result {
    void *value; /* malloc'd, NUL-terminated past len */
    size_t len;
    bool set;
    char *errmsg;
};

/* One load in progress. Lives while the loader or any waiter holds a reference;
 * sits in the memo's list while attached (a clear detaches it so later callers
 * start a fresh load instead of waiting for a value from before the clear). */
typedef struct flight {
    struct flight *prev, *next; /* m->mu */
    bool attached;              /* m->mu */
    uint64_t gen;               /* m->gen when the load began */
    void *key;
    size_t key_len;
    atomic_uint refs;

    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done; /* mu; the fields below are written before done is set */
    pgcw_status status;
    void *value;
    size_t value_len;
    char *errmsg;
} flight;

struct pgcw_memo {
    pgcw_strategy *strategy;
    pgcw_memo_load_fn load;
    void *load_ctx;
    pgcw_memo_stats_fn stats;
    void *stats_ctx;
    pgcw__memo_store *store;

    pthread_mutex_t mu;
    uint64_t gen;    /* bumped by every clear; a load stores only if unchanged */
    flight *flights; /* attached in-flight loads */

    _Atomic uint64_t seen_generation; /* pgcw_strategy_generation() last looked at */

    _Atomic uint64_t hits, misses, bypasses, loads, load_errors, waits, clears, refused;
};

static void count(_Atomic uint64_t *c)
{
    atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

/* --- pgcw_memo_result ------------------------------------------------------------ */

pgcw_status pgcw_memo_result_set(pgcw_memo_result *r, const void *value, size_t len)
{
    if (!r || (!value && len))
        return PGCW_EINVAL;
    char *copy = malloc(len + 1);
    if (!copy)
        return PGCW_ENOMEM;
    if (len)
        memcpy(copy, value, len);
    copy[len] = '\0';
    free(r->value);
    r->value = copy;
    r->len = len;
    r->set = true;
    return PGCW_OK;
}

void pgcw_memo_result_error(pgcw_memo_result *r, const char *message)
{
    if (!r || !message)
        return;
    char *copy = pgcw__strdup(message);
    if (!copy)
        return; /* the status still reaches every waiter; only the detail is lost */
    free(r->errmsg);
    r->errmsg = copy;
}

/* --- the memo -------------------------------------------------------------------- */

pgcw_status pgcw_memo_new(const pgcw_memo_opts *opts, pgcw_memo **out)
{
    if (!out)
        return PGCW_EINVAL;
    *out = NULL;
    if (!opts || !opts->strategy || !opts->load)
        return PGCW_EINVAL;
    pgcw_memo *m = calloc(1, sizeof *m);
    if (!m)
        return PGCW_ENOMEM;
    m->strategy = opts->strategy;
    m->load = opts->load;
    m->load_ctx = opts->load_ctx;
    m->stats = opts->stats;
    m->stats_ctx = opts->stats_ctx;
    pgcw_status st = pgcw__memo_store_new(
        opts->max_entries ? opts->max_entries : DEFAULT_MAX_ENTRIES,
        opts->max_bytes ? opts->max_bytes : DEFAULT_MAX_BYTES, &m->store);
    if (st != PGCW_OK) {
        free(m);
        return st;
    }
    if (pthread_mutex_init(&m->mu, NULL) != 0) {
        pgcw__memo_store_free(m->store);
        free(m);
        return PGCW_ENOMEM;
    }
    atomic_init(&m->seen_generation, pgcw_strategy_generation(m->strategy));
    *out = m;
    return PGCW_OK;
}

void pgcw_memo_free(pgcw_memo *m)
{
    if (!m)
        return;
    /* No get is in progress (the header's rule), so no flight is left. */
    pgcw__memo_store_free(m->store);
    pthread_mutex_destroy(&m->mu);
    free(m);
}

static void detach(pgcw_memo *m, flight *f)
{
    if (!f->attached)
        return;
    if (f->prev)
        f->prev->next = f->next;
    else
        m->flights = f->next;
    if (f->next)
        f->next->prev = f->prev;
    f->prev = f->next = NULL;
    f->attached = false;
}

void pgcw_memo_clear(pgcw_memo *m)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->mu);
    m->gen++;
    while (m->flights)
        detach(m, m->flights);
    pgcw__memo_store_clear(m->store);
    pthread_mutex_unlock(&m->mu);
}

/* Clears when the strategy says so, or when its generation moved since we last
 * looked: a gap may still sit in the queue behind the deadline. Two callers racing
 * here may both clear; that only costs a reload. */
static void apply_strategy(pgcw_memo *m)
{
    uint64_t g = pgcw_strategy_generation(m->strategy);
    uint64_t seen = atomic_load(&m->seen_generation);
    bool clear =
        g != seen && atomic_compare_exchange_strong(&m->seen_generation, &seen, g);
    if (pgcw_strategy_clear(m->strategy))
        clear = true;
    if (clear) {
        pgcw_memo_clear(m);
        count(&m->clears);
    }
}

static void report(pgcw_memo *m, pgcw_memo_stat stat)
{
    count(stat == PGCW_MEMO_HIT ? &m->hits : &m->misses);
    if (m->stats)
        m->stats(m->stats_ctx, stat);
}

/* Calls the loader and normalizes its answer: on PGCW_OK, r->value is set. */
static pgcw_status call_loader(pgcw_memo *m, const void *key, size_t key_len,
                               pgcw_memo_result *r)
{
    count(&m->loads);
    pgcw_status st = m->load(m->load_ctx, key, key_len, r);
    if (st == PGCW_OK && !r->set) {
        st = PGCW_ELOADER;
        pgcw_memo_result_error(r, "loader returned PGCW_OK without setting a value");
    }
    if (st != PGCW_OK) {
        count(&m->load_errors);
        free(r->value);
        r->value = NULL;
        r->len = 0;
    }
    return st;
}

static pgcw_status copy_out(const void *src, size_t len, void **value, size_t *value_len)
{
    char *copy = malloc(len + 1);
    if (!copy)
        return PGCW_ENOMEM;
    if (len)
        memcpy(copy, src, len);
    copy[len] = '\0';
    *value = copy;
    *value_len = len;
    return PGCW_OK;
}

static void flight_release(flight *f)
{
    if (atomic_fetch_sub(&f->refs, 1) != 1)
        return;
    pthread_cond_destroy(&f->cv);
    pthread_mutex_destroy(&f->mu);
    free(f->value);
    free(f->errmsg);
    free(f->key);
    free(f);
}

/* Hands the flight's outcome to one caller (loader or waiter), copying. */
static pgcw_status flight_result(const flight *f, void **value, size_t *value_len,
                                 char **errmsg)
{
    if (f->status == PGCW_OK)
        return copy_out(f->value, f->value_len, value, value_len);
    if (errmsg && f->errmsg)
        *errmsg = pgcw__strdup(f->errmsg);
    return f->status;
}

static flight *flight_find(pgcw_memo *m, const void *key, size_t key_len)
{
    for (flight *f = m->flights; f; f = f->next)
        if (f->key_len == key_len && (key_len == 0 || memcmp(f->key, key, key_len) == 0))
            return f;
    return NULL;
}

static flight *flight_new(const void *key, size_t key_len, uint64_t gen)
{
    flight *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->key = malloc(key_len ? key_len : 1);
    if (!f->key || pthread_mutex_init(&f->mu, NULL) != 0) {
        free(f->key);
        free(f);
        return NULL;
    }
    if (pthread_cond_init(&f->cv, NULL) != 0) {
        pthread_mutex_destroy(&f->mu);
        free(f->key);
        free(f);
        return NULL;
    }
    if (key_len)
        memcpy(f->key, key, key_len);
    f->key_len = key_len;
    f->gen = gen;
    atomic_init(&f->refs, 1);
    return f;
}

static pgcw_status wait_for(flight *f, void **value, size_t *value_len, char **errmsg)
{
    pthread_mutex_lock(&f->mu);
    while (!f->done)
        pthread_cond_wait(&f->cv, &f->mu);
    pthread_mutex_unlock(&f->mu);
    pgcw_status st = flight_result(f, value, value_len, errmsg);
    flight_release(f);
    return st;
}

/* Gives a loader's result, which nobody else shares, to its one caller. */
static pgcw_status hand_over(pgcw_memo_result *r, pgcw_status st, void **value,
                             size_t *value_len, char **errmsg)
{
    if (st == PGCW_OK) {
        *value = r->value; /* already a private NUL-terminated copy */
        *value_len = r->len;
    } else if (errmsg) {
        *errmsg = r->errmsg;
        r->errmsg = NULL;
    }
    free(r->errmsg);
    return st;
}

/* The unhealthy path: every call loads, nothing is stored or shared. */
static pgcw_status bypass(pgcw_memo *m, const void *key, size_t key_len, void **value,
                          size_t *value_len, char **errmsg)
{
    count(&m->bypasses);
    report(m, PGCW_MEMO_MISS);
    pgcw_memo_result r = {0};
    pgcw_status st = call_loader(m, key, key_len, &r);
    return hand_over(&r, st, value, value_len, errmsg);
}

/* We own the flight f (attached): load, store if no clear intervened, publish. */
static pgcw_status lead(pgcw_memo *m, flight *f, void **value, size_t *value_len,
                        char **errmsg)
{
    pgcw_memo_result r = {0};
    pgcw_status st = call_loader(m, f->key, f->key_len, &r);

    pthread_mutex_lock(&m->mu);
    if (st == PGCW_OK) {
        if (f->gen == m->gen)
            /* Too big for the bounds, or out of memory: the value is still
             * returned, just not remembered. */
            (void)pgcw__memo_store_put(m->store, f->key, f->key_len, r.value, r.len);
        else
            count(&m->refused);
    }
    /* Stored (or not) and detached in one step, so a newcomer sees one or the
     * other and never starts a second load of the same value. */
    detach(m, f);
    pthread_mutex_unlock(&m->mu);

    /* Nobody can join a detached flight: alone, the loader keeps its result
     * without a copy. */
    if (atomic_load(&f->refs) == 1) {
        flight_release(f);
        return hand_over(&r, st, value, value_len, errmsg);
    }

    pthread_mutex_lock(&f->mu);
    f->status = st;
    f->value = r.value;
    f->value_len = r.len;
    f->errmsg = r.errmsg;
    f->done = true;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);

    st = flight_result(f, value, value_len, errmsg);
    flight_release(f);
    return st;
}

pgcw_status pgcw_memo_get(pgcw_memo *m, const void *key, size_t key_len, void **value,
                          size_t *value_len, char **errmsg)
{
    if (errmsg)
        *errmsg = NULL;
    if (value)
        *value = NULL;
    if (value_len)
        *value_len = 0;
    if (!m || !value || !value_len || (!key && key_len))
        return PGCW_EINVAL;

    if (!pgcw_strategy_healthy(m->strategy))
        return bypass(m, key, key_len, value, value_len, errmsg);

    apply_strategy(m);

    pgcw_status st = pgcw__memo_store_get(m->store, key, key_len, value, value_len);
    if (st == PGCW_OK) {
        report(m, PGCW_MEMO_HIT);
        return PGCW_OK;
    }
    if (st != PGCW_ENOTFOUND)
        return st;

    pthread_mutex_lock(&m->mu);
    flight *f = flight_find(m, key, key_len);
    if (f) {
        atomic_fetch_add(&f->refs, 1);
        pthread_mutex_unlock(&m->mu);
        count(&m->waits);
        report(m, PGCW_MEMO_HIT);
        return wait_for(f, value, value_len, errmsg);
    }
    /* A load may have finished between our first look and the lock. */
    st = pgcw__memo_store_get(m->store, key, key_len, value, value_len);
    if (st != PGCW_ENOTFOUND) {
        pthread_mutex_unlock(&m->mu);
        if (st == PGCW_OK)
            report(m, PGCW_MEMO_HIT);
        return st;
    }
    f = flight_new(key, key_len, m->gen);
    if (!f) {
        pthread_mutex_unlock(&m->mu);
        return PGCW_ENOMEM;
    }
    f->next = m->flights;
    if (m->flights)
        m->flights->prev = f;
    m->flights = f;
    f->attached = true;
    pthread_mutex_unlock(&m->mu);

    report(m, PGCW_MEMO_MISS);
    return lead(m, f, value, value_len, errmsg);
}

void pgcw_memo_stats_get(pgcw_memo *m, pgcw_memo_stats *out)
{
    if (!out)
        return;
    memset(out, 0, sizeof *out);
    if (!m)
        return;
    out->hits = atomic_load(&m->hits);
    out->misses = atomic_load(&m->misses);
    out->bypasses = atomic_load(&m->bypasses);
    out->loads = atomic_load(&m->loads);
    out->load_errors = atomic_load(&m->load_errors);
    out->waits = atomic_load(&m->waits);
    out->clears = atomic_load(&m->clears);
    out->refused = atomic_load(&m->refused);
    pgcw__memo_store_stats(m->store, &out->entries, &out->bytes);
}
