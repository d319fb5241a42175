/*
 * core_sflight.c - single flight per key (core_sflight.h).
 *
 * The group is a chained hash table of attached flights under one mutex, grown
 * when it averages more than one flight per bucket (the number in flight is
 * bounded by the number of threads loading at once). Each flight has its own mutex
 * and condition variable for its waiters and lives while the leader or a waiter
 * holds a reference. Must never call out under a lock but the caller's re-check,
 * never wake a waiter before the outcome is complete, and never free a flight a
 * waiter still holds.
 */
#include "core_sflight.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core_time.h"
#include "core_util.h"

struct pgcw__flight {
    struct pgcw__flight *next; /* bucket chain, g->mu */
    bool attached;             /* g->mu */
    pgcw__sflight *g;
    uint64_t hash;
    void *key;
    size_t key_len;
    atomic_uint refs;
    size_t waiters; /* g->mu: joined as WAIT */

    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done; /* mu; the outcome below is written before done is set */
    pgcw_status status;
    void *value;
    size_t value_len;
    char *errmsg;
};

struct pgcw__sflight {
    pthread_mutex_t mu;
    pgcw__flight **buckets;
    size_t n_buckets; /* a power of two */
    size_t attached;
};

static uint64_t hash_key(const void *key, size_t len)
{
    uint64_t h = 1469598103934665603u; /* FNV-1a */
    const unsigned char *p = key;
    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * 1099511628211u;
    return h ^ (h >> 29);
}

pgcw_status pgcw__sflight_new(pgcw__sflight **out)
{
    *out = NULL;
    pgcw__sflight *g = calloc(1, sizeof *g);
    if (!g)
        return PGCW_ENOMEM;
    g->n_buckets = 16;
    g->buckets = calloc(g->n_buckets, sizeof *g->buckets);
    if (!g->buckets || pthread_mutex_init(&g->mu, NULL) != 0) {
        free(g->buckets);
        free(g);
        return PGCW_ENOMEM;
    }
    *out = g;
    return PGCW_OK;
}

void pgcw__sflight_free(pgcw__sflight *g)
{
    if (!g)
        return;
    pthread_mutex_destroy(&g->mu);
    free(g->buckets);
    free(g);
}

static void flight_release(pgcw__flight *f)
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

/* g->mu held. */
static pgcw__flight **slot_of(pgcw__sflight *g, uint64_t h, const void *key, size_t len)
{
    pgcw__flight **p = &g->buckets[h & (g->n_buckets - 1)];
    for (; *p; p = &(*p)->next)
        if ((*p)->hash == h && (*p)->key_len == len &&
            (len == 0 || memcmp((*p)->key, key, len) == 0))
            break;
    return p;
}

/* g->mu held. Growing is best effort: a failed allocation only costs longer
 * chains. */
static void maybe_grow(pgcw__sflight *g)
{
    if (g->attached <= g->n_buckets)
        return;
    size_t n = g->n_buckets * 2;
    pgcw__flight **b = calloc(n, sizeof *b);
    if (!b)
        return;
    for (size_t i = 0; i < g->n_buckets; i++)
        for (pgcw__flight *f = g->buckets[i], *next; f; f = next) {
            next = f->next;
            f->next = b[f->hash & (n - 1)];
            b[f->hash & (n - 1)] = f;
        }
    free(g->buckets);
    g->buckets = b;
    g->n_buckets = n;
}

/* g->mu held; *p is f. */
static void unlink_at(pgcw__sflight *g, pgcw__flight **p)
{
    pgcw__flight *f = *p;
    *p = f->next;
    f->next = NULL;
    f->attached = false;
    g->attached--;
}

static pgcw__flight *flight_new(pgcw__sflight *g, uint64_t h, const void *key, size_t len)
{
    pgcw__flight *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->key = malloc(len ? len : 1);
    if (!f->key || pthread_mutex_init(&f->mu, NULL) != 0) {
        free(f->key);
        free(f);
        return NULL;
    }
    if (pgcw__cond_init(&f->cv) != 0) {
        pthread_mutex_destroy(&f->mu);
        free(f->key);
        free(f);
        return NULL;
    }
    if (len)
        memcpy(f->key, key, len);
    f->key_len = len;
    f->hash = h;
    f->g = g;
    atomic_init(&f->refs, 1);
    return f;
}

pgcw_status pgcw__sflight_join(pgcw__sflight *g, const void *key, size_t key_len,
                               pgcw__sflight_recheck_fn recheck, void *ctx,
                               pgcw__flight **out, pgcw__flight_role *role)
{
    *out = NULL;
    uint64_t h = hash_key(key, key_len);
    pthread_mutex_lock(&g->mu);
    pgcw__flight **p = slot_of(g, h, key, key_len);
    if (*p) {
        pgcw__flight *f = *p;
        atomic_fetch_add(&f->refs, 1);
        f->waiters++;
        pthread_mutex_unlock(&g->mu);
        *out = f;
        *role = PGCW__FLIGHT_WAIT;
        return PGCW_OK;
    }
    if (recheck && recheck(ctx)) {
        pthread_mutex_unlock(&g->mu);
        *role = PGCW__FLIGHT_FOUND;
        return PGCW_OK;
    }
    pgcw__flight *f = flight_new(g, h, key, key_len);
    if (!f) {
        pthread_mutex_unlock(&g->mu);
        return PGCW_ENOMEM;
    }
    *p = f;
    f->attached = true;
    g->attached++;
    maybe_grow(g);
    pthread_mutex_unlock(&g->mu);
    *out = f;
    *role = PGCW__FLIGHT_LEAD;
    return PGCW_OK;
}

void pgcw__sflight_detach(pgcw__sflight *g, const void *key, size_t key_len)
{
    uint64_t h = hash_key(key, key_len);
    pthread_mutex_lock(&g->mu);
    pgcw__flight **p = slot_of(g, h, key, key_len);
    if (*p)
        unlink_at(g, p);
    pthread_mutex_unlock(&g->mu);
}

void pgcw__sflight_detach_all(pgcw__sflight *g)
{
    pthread_mutex_lock(&g->mu);
    for (size_t i = 0; i < g->n_buckets; i++)
        while (g->buckets[i])
            unlink_at(g, &g->buckets[i]);
    pthread_mutex_unlock(&g->mu);
}

size_t pgcw__sflight_attached(pgcw__sflight *g)
{
    pthread_mutex_lock(&g->mu);
    size_t n = g->attached;
    pthread_mutex_unlock(&g->mu);
    return n;
}

size_t pgcw__flight_finish(pgcw__flight *f, pgcw_status status, const void *value,
                           size_t len, const char *errmsg)
{
    pgcw__sflight *g = f->g;
    /* Detached under the group lock, so a newcomer finds either this flight (and
     * waits for it) or none (and, after its re-check, sees what the leader stored
     * before finishing): never a second load of the same value. */
    pthread_mutex_lock(&g->mu);
    if (f->attached) {
        pgcw__flight **p = &g->buckets[f->hash & (g->n_buckets - 1)];
        while (*p != f)
            p = &(*p)->next;
        unlink_at(g, p);
    }
    size_t waiters = f->waiters;
    pthread_mutex_unlock(&g->mu);

    /* Detached: nobody can join any more, so waiters is final. */
    if (waiters > 0) {
        void *copy = NULL;
        char *msg = NULL;
        if (status == PGCW_OK) {
            copy = malloc(len + 1);
            if (copy) {
                if (len)
                    memcpy(copy, value, len);
                ((char *)copy)[len] = '\0';
            } else {
                status = PGCW_ENOMEM;
            }
        } else if (errmsg) {
            msg = pgcw__strdup(errmsg); /* NULL on OOM: the status still gets there */
        }
        pthread_mutex_lock(&f->mu);
        f->status = status;
        f->value = copy;
        f->value_len = copy ? len : 0;
        f->errmsg = msg;
        f->done = true;
        pthread_cond_broadcast(&f->cv);
        pthread_mutex_unlock(&f->mu);
    }
    flight_release(f);
    return waiters;
}

pgcw_status pgcw__flight_wait(pgcw__flight *f, int64_t deadline_us, void **value,
                              size_t *len, char **errmsg)
{
    *value = NULL;
    *len = 0;
    if (errmsg)
        *errmsg = NULL;
    pthread_mutex_lock(&f->mu);
    while (!f->done && pgcw__cond_wait_until(&f->cv, &f->mu, deadline_us))
        ;
    bool done = f->done;
    pthread_mutex_unlock(&f->mu);
    pgcw_status st = PGCW_ETIMEDOUT;
    if (done) {
        st = f->status;
        if (st == PGCW_OK) {
            char *copy = malloc(f->value_len + 1);
            if (copy) {
                if (f->value_len)
                    memcpy(copy, f->value, f->value_len);
                copy[f->value_len] = '\0';
                *value = copy;
                *len = f->value_len;
            } else {
                st = PGCW_ENOMEM;
            }
        } else if (errmsg && f->errmsg) {
            *errmsg = pgcw__strdup(f->errmsg);
        }
    }
    flight_release(f);
    return st;
}
