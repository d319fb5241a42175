/*
 * memo.c - memoized results: bypass while unhealthy, clear when the strategy (or a
 * gap) says so, single-flight loading per key (core_sflight.h), and no storing of
 * a load that raced with a clear.
 *
 * Values live in a pgcw_l1 (l1.h) charged keys + values only, the memo's public
 * bound. A leader takes an L1 fill ticket before calling the loader and stores its
 * result through it, so a clear (which bumps the L1's epoch) refuses every load
 * that began before it; the clear also detaches every flight so that later callers
 * start fresh loads instead of waiting for a value from before it. The loader, the
 * statistics callback and the strategy (whose predicate is user code) are only ever
 * called with no lock held. This file must never hand a caller memory it shares
 * with anyone else: every value and message is copied out.
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

#include "core_abi.h"
#include "core_err.h"
#include "core_sflight.h"
#include "core_time.h"
#include "core_util.h"
#include "pgcachewatch/l1.h"

#define DEFAULT_MAX_ENTRIES 10000
#define DEFAULT_MAX_BYTES ((size_t)64 * 1024 * 1024)

struct pgcw_memo_result {
    void *value; /* malloc'd, NUL-terminated past len */
    size_t len;
    bool set;
    char *errmsg;
};

struct pgcw_memo {
    pgcw_strategy *strategy;
    pgcw_memo_load_fn load;
    void *load_ctx;
    pgcw_memo_stats_fn stats;
    void *stats_ctx;
    pgcw_l1 *values;
    pgcw__sflight *flights;

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
    char *copy = pgcw__strndup(len ? value : "", len); /* binary-safe */
    if (!copy)
        return PGCW_ENOMEM;
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

pgcw_status pgcw_memo_new_sized(const pgcw_memo_opts *user_opts, size_t opts_size,
                                pgcw_memo **out)
{
    if (!out)
        return PGCW_EINVAL;
    *out = NULL;
    pgcw_memo_opts o;
    if (!user_opts || pgcw__opts_copy(&o, sizeof o, user_opts, opts_size) != PGCW_OK ||
        !o.strategy || !o.load)
        return PGCW_EINVAL;
    pgcw_memo *m = calloc(1, sizeof *m);
    if (!m)
        return PGCW_ENOMEM;
    m->strategy = o.strategy;
    m->load = o.load;
    m->load_ctx = o.load_ctx;
    m->stats = o.stats;
    m->stats_ctx = o.stats_ctx;
    /* The memo's public bound is keys + values (memo.h), not the L1's cost. */
    pgcw_l1_opts lo = {.max_entries = o.max_entries ? o.max_entries : DEFAULT_MAX_ENTRIES,
                       .max_bytes = o.max_bytes ? o.max_bytes : DEFAULT_MAX_BYTES,
                       .charge_payload_only = true};
    pgcw_status st = pgcw_l1_new(&lo, &m->values);
    if (st == PGCW_OK)
        st = pgcw__sflight_new(&m->flights);
    if (st != PGCW_OK) {
        pgcw_l1_free(m->values);
        free(m);
        return st;
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
    pgcw__sflight_free(m->flights);
    pgcw_l1_free(m->values);
    free(m);
}

void pgcw_memo_clear(pgcw_memo *m)
{
    if (!m)
        return;
    /* Later callers start their own loads; loads already running hold tickets that
     * the L1's clear outdates, so their results are returned but never stored. */
    pgcw__sflight_detach_all(m->flights);
    pgcw_l1_clear(m->values);
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

/* Gives a loader's result, which nobody else shares, to its one caller; a failure's
 * message becomes the thread's pgcw_memo_errmsg(). */
static pgcw_status hand_over(pgcw_memo *m, pgcw_memo_result *r, pgcw_status st,
                             void **value, size_t *value_len)
{
    if (st == PGCW_OK) {
        *value = r->value; /* already a private NUL-terminated copy */
        *value_len = r->len;
    } else {
        pgcw__err_set(m, "%s", r->errmsg ? r->errmsg : "");
    }
    free(r->errmsg);
    return st;
}

/* The unhealthy path: every call loads, nothing is stored or shared. */
static pgcw_status bypass(pgcw_memo *m, const void *key, size_t key_len, void **value,
                          size_t *value_len)
{
    count(&m->bypasses);
    report(m, PGCW_MEMO_MISS);
    pgcw_memo_result r = {0};
    pgcw_status st = call_loader(m, key, key_len, &r);
    return hand_over(m, &r, st, value, value_len);
}

/* We lead the flight f: load, store through the ticket taken before the load (a
 * clear since then refuses it), then hand the outcome to the waiters. Stored
 * before finishing, so a newcomer either joins f or finds the value. */
static pgcw_status lead(pgcw_memo *m, pgcw__flight *f, const pgcw_l1_ticket *ticket,
                        const void *key, size_t key_len, void **value, size_t *value_len)
{
    pgcw_memo_result r = {0};
    pgcw_status st = call_loader(m, key, key_len, &r);
    if (st == PGCW_OK) {
        bool stored = false;
        /* Too big for the bounds, or out of memory: the value is still returned,
         * just not remembered. */
        pgcw_status fs = pgcw_l1_fill(m->values, ticket, key, key_len, r.value, r.len, 0,
                                      PGCW_L1_TTL_NONE, &stored);
        if (fs == PGCW_OK && !stored)
            count(&m->refused);
    }
    pgcw__flight_finish(f, st, r.value, r.len, r.errmsg);
    return hand_over(m, &r, st, value, value_len);
}

typedef struct recheck_ctx {
    pgcw_memo *m;
    const void *key;
    size_t key_len;
    void **value;
    size_t *value_len;
} recheck_ctx;

/* A load may have finished between our first look and the join. */
static bool recheck(void *arg)
{
    recheck_ctx *c = arg;
    return pgcw_l1_get_dup(c->m->values, c->key, c->key_len, c->value, c->value_len,
                           NULL) == PGCW_OK;
}

pgcw_status pgcw_memo_get(pgcw_memo *m, const void *key, size_t key_len, void **value,
                          size_t *value_len)
{
    if (value)
        *value = NULL;
    if (value_len)
        *value_len = 0;
    if (!m || !value || !value_len || (!key && key_len))
        return PGCW_EINVAL;
    pgcw__err_clear(m);

    if (!pgcw_strategy_healthy(m->strategy))
        return bypass(m, key, key_len, value, value_len);

    apply_strategy(m);

    pgcw_status st = pgcw_l1_get_dup(m->values, key, key_len, value, value_len, NULL);
    if (st == PGCW_OK) {
        report(m, PGCW_MEMO_HIT);
        return PGCW_OK;
    }
    if (st != PGCW_ENOTFOUND) {
        pgcw__err_set(m, "%s", pgcw_strerror(st));
        return st;
    }

    pgcw_l1_ticket ticket;
    pgcw_l1_ticket_take(m->values, key, key_len, &ticket);
    recheck_ctx rc = {m, key, key_len, value, value_len};
    pgcw__flight *f = NULL;
    pgcw__flight_role role;
    st = pgcw__sflight_join(m->flights, key, key_len, recheck, &rc, &f, &role);
    if (st != PGCW_OK) {
        pgcw__err_set(m, "out of memory");
        return st;
    }
    if (role == PGCW__FLIGHT_FOUND) {
        report(m, PGCW_MEMO_HIT);
        return PGCW_OK;
    }
    if (role == PGCW__FLIGHT_WAIT) {
        count(&m->waits);
        report(m, PGCW_MEMO_HIT);
        char *msg = NULL;
        st = pgcw__flight_wait(f, PGCW__NEVER, value, value_len, &msg);
        if (st != PGCW_OK)
            pgcw__err_set(m, "%s", msg ? msg : st == PGCW_ENOMEM ? "out of memory" : "");
        free(msg);
        return st;
    }
    report(m, PGCW_MEMO_MISS);
    return lead(m, f, &ticket, key, key_len, value, value_len);
}

const char *pgcw_memo_errmsg(const pgcw_memo *m)
{
    return pgcw__err_get(m);
}

void pgcw_memo_stats_get_sized(pgcw_memo *m, pgcw_memo_stats *dst, size_t dst_size)
{
    pgcw_memo_stats out = {0};
    if (m) {
        out.hits = atomic_load(&m->hits);
        out.misses = atomic_load(&m->misses);
        out.bypasses = atomic_load(&m->bypasses);
        out.loads = atomic_load(&m->loads);
        out.load_errors = atomic_load(&m->load_errors);
        out.waits = atomic_load(&m->waits);
        out.clears = atomic_load(&m->clears);
        out.refused = atomic_load(&m->refused);
        pgcw_l1_stats ls;
        pgcw_l1_stats_get(m->values, &ls);
        out.entries = ls.entries;
        out.bytes = ls.bytes;
    }
    pgcw__stats_copy(dst, dst_size, &out, sizeof out);
}
