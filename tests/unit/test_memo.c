/*
 * test_memo.c - memoized results: hits and misses, clearing by events and gaps,
 * single flight, loader errors, bypass while unhealthy, a load racing a clear, and
 * the store's bounds. No server: events are injected with pgcw_watcher_dispatch()
 * and health is flipped with the watcher's internal test hook. Threads meet on
 * condition variables or poll counters with a deadline; nothing sleeps to "let
 * something happen".
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include <pgcachewatch/pgcachewatch.h>

#include "pgcw_testhook.h"

#define WAIT_US (10 * 1000000) /* any wait longer than this is a failure */

/* --- a loader we can steer ----------------------------------------------------- */

typedef struct loader {
    atomic_int calls; /* numbers the values: "<key>#<n>" */
    pgcw_memo *memo;  /* for wait_for_waits */

    /* Single flight: the loader returns only once this many callers wait. */
    uint64_t wait_for_waits;

    /* A barrier: the first load of block_key announces itself and waits for
     * release (or WAIT_US, then flags a timeout). */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    const char *block_key;
    bool block_used, entered, released, timed_out;

    /* Failures: the next fail_times calls return fail_status (+ fail_msg). */
    atomic_int fail_times;
    pgcw_status fail_status;
    const char *fail_msg;
    bool ok_without_value;

    size_t pad; /* values are padded with '.' to this length */
} loader;

static void loader_init(loader *l)
{
    memset(l, 0, sizeof *l);
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv, NULL);
}

static void loader_destroy(loader *l)
{
    pthread_cond_destroy(&l->cv);
    pthread_mutex_destroy(&l->mu);
}

static struct timespec abs_deadline(int64_t us)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t ns = ts.tv_nsec + (us % 1000000) * 1000;
    ts.tv_sec += us / 1000000 + ns / 1000000000;
    ts.tv_nsec = ns % 1000000000;
    return ts;
}

static bool poll_until_waits(pgcw_memo *m, uint64_t n)
{
    int64_t deadline = pgcw__mono_us() + WAIT_US;
    for (;;) {
        pgcw_memo_stats st;
        pgcw_memo_stats_get(m, &st);
        if (st.waits >= n)
            return true;
        if (pgcw__mono_us() > deadline)
            return false;
        pgcw__sleep_us(200);
    }
}

static pgcw_status load(void *ctx, const void *key, size_t key_len, pgcw_memo_result *r)
{
    loader *l = ctx;
    int n = atomic_fetch_add(&l->calls, 1) + 1;
    char k[64];
    snprintf(k, sizeof k, "%.*s", (int)key_len, (const char *)key);

    pthread_mutex_lock(&l->mu);
    bool block = l->block_key && !l->block_used && strcmp(k, l->block_key) == 0;
    if (block) {
        l->block_used = true;
        l->entered = true;
        pthread_cond_broadcast(&l->cv);
        struct timespec until = abs_deadline(WAIT_US);
        while (!l->released && !l->timed_out)
            if (pthread_cond_timedwait(&l->cv, &l->mu, &until) != 0)
                l->timed_out = true;
    }
    pthread_mutex_unlock(&l->mu);

    if (l->wait_for_waits && !poll_until_waits(l->memo, l->wait_for_waits))
        l->timed_out = true; /* only the single loader of the test writes it */

    if (atomic_fetch_sub(&l->fail_times, 1) > 0) {
        if (l->fail_msg)
            pgcw_memo_result_error(r, l->fail_msg);
        return l->fail_status;
    }
    if (l->ok_without_value)
        return PGCW_OK;
    char v[4096];
    int len = snprintf(v, sizeof v, "%s#%d", k, n);
    while ((size_t)len < l->pad && (size_t)len < sizeof v - 1)
        v[len++] = '.';
    return pgcw_memo_result_set(r, v, (size_t)len);
}

static void wait_entered(loader *l)
{
    pthread_mutex_lock(&l->mu);
    struct timespec until = abs_deadline(WAIT_US);
    while (!l->entered)
        if (pthread_cond_timedwait(&l->cv, &l->mu, &until) != 0)
            break;
    bool ok = l->entered;
    pthread_mutex_unlock(&l->mu);
    assert_true(ok);
}

static void release(loader *l)
{
    pthread_mutex_lock(&l->mu);
    l->released = true;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
}

/* --- fixture -------------------------------------------------------------------- */

typedef struct counts {
    atomic_int hits, misses;
} counts;

static void on_stat(void *ctx, pgcw_memo_stat stat)
{
    counts *c = ctx;
    atomic_fetch_add(stat == PGCW_MEMO_HIT ? &c->hits : &c->misses, 1);
}

typedef struct fx {
    pgcw_watcher *w;
    pgcw_strategy *s;
    pgcw_memo *m;
    loader ld;
    counts cb;
} fx;

static void fx_open(fx *f, const pgcw_strategy_opts *so, size_t max_entries,
                    size_t max_bytes)
{
    memset(f, 0, sizeof *f);
    loader_init(&f->ld);
    assert_int_equal(pgcw_watcher_new(NULL, NULL, &f->w), PGCW_OK);
    pgcw__watcher_set_healthy(f->w, true);
    /* A generous drain time budget: only the event budget should decide where a
     * drain stops, even on a loaded machine. */
    pgcw_strategy_opts opts = so ? *so : (pgcw_strategy_opts){0};
    opts.deadline.max_time_us = 10 * 1000000;
    assert_int_equal(pgcw_strategy_new(f->w, &opts, &f->s), PGCW_OK);
    pgcw_memo_opts mo = {.strategy = f->s,
                         .load = load,
                         .load_ctx = &f->ld,
                         .stats = on_stat,
                         .stats_ctx = &f->cb,
                         .max_entries = max_entries,
                         .max_bytes = max_bytes};
    assert_int_equal(pgcw_memo_new(&mo, &f->m), PGCW_OK);
    f->ld.memo = f->m;
}

static void fx_close(fx *f)
{
    assert_false(f->ld.timed_out);
    pgcw_memo_free(f->m);
    pgcw_strategy_free(f->s);
    pgcw_watcher_free(f->w);
    loader_destroy(&f->ld);
}

static pgcw_memo_stats stats(fx *f)
{
    pgcw_memo_stats st;
    pgcw_memo_stats_get(f->m, &st);
    return st;
}

/* Gets key and checks the value equals want (NUL-terminated, right length). */
static void expect(fx *f, const char *key, const char *want)
{
    void *v = NULL;
    size_t len = 99;
    pgcw_status st = pgcw_memo_get(f->m, key, strlen(key), &v, &len);
    if (st != PGCW_OK)
        fail_msg("get %s: %s (%s)", key, pgcw_status_name(st), pgcw_memo_errmsg(f->m));
    assert_string_equal(pgcw_memo_errmsg(f->m), "");
    assert_int_equal(len, strlen(want));
    assert_memory_equal(v, want, len);
    assert_int_equal(((char *)v)[len], '\0');
    pgcw_free(v);
}

static void send_change(pgcw_watcher *w, const char *table)
{
    char ts[40], payload[200];
    pgcw_time_format(pgcw__real_us(), ts, sizeof ts);
    snprintf(payload, sizeof payload,
             "{\"operation\":\"update\",\"table\":\"%s\",\"sent_at\":\"%s\"}", table, ts);
    const pgcw_event *e = NULL;
    assert_int_equal(
        pgcw_event_parse(PGCW_FORMAT_TABLE_CHANGE, "ch", payload, strlen(payload), 0, &e),
        PGCW_OK);
    assert_int_equal(pgcw_watcher_dispatch(w, e), PGCW_OK);
    pgcw_event_free(e);
}

typedef struct getter {
    fx *f;
    const char *key;
    pthread_t thread;
    pgcw_status st;
    char *value;
    size_t len;
    char *err;          /* a copy of the thread's pgcw_memo_errmsg() after the get */
    uintptr_t err_addr; /* where the library kept it: each thread its own */
} getter;

static void *get_thread(void *arg)
{
    getter *g = arg;
    void *v = NULL;
    g->st = pgcw_memo_get(g->f->m, g->key, strlen(g->key), &v, &g->len);
    g->value = v;
    const char *msg = pgcw_memo_errmsg(g->f->m);
    g->err_addr = (uintptr_t)msg;
    g->err = msg[0] ? strdup(msg) : NULL;
    return NULL;
}

static void start(getter *g, fx *f, const char *key)
{
    memset(g, 0, sizeof *g);
    g->f = f;
    g->key = key;
    assert_int_equal(pthread_create(&g->thread, NULL, get_thread, g), 0);
}

static void join(getter *g)
{
    assert_int_equal(pthread_join(g->thread, NULL), 0);
}

static void getter_free(getter *g)
{
    pgcw_free(g->value);
    free(g->err);
}

/* --- tests ---------------------------------------------------------------------- */

static void test_invalid_arguments(void **state)
{
    (void)state;
    fx f;
    fx_open(&f, NULL, 0, 0);
    pgcw_memo *m = (pgcw_memo *)&m;
    pgcw_memo_opts o = {.load = load};
    assert_int_equal(pgcw_memo_new(&o, &m), PGCW_EINVAL);
    assert_null(m);
    o = (pgcw_memo_opts){.strategy = f.s};
    assert_int_equal(pgcw_memo_new(&o, &m), PGCW_EINVAL);
    assert_int_equal(pgcw_memo_new(NULL, &m), PGCW_EINVAL);

    void *v;
    size_t len;
    assert_int_equal(pgcw_memo_get(f.m, "k", 1, NULL, &len), PGCW_EINVAL);
    assert_int_equal(pgcw_memo_get(f.m, "k", 1, &v, NULL), PGCW_EINVAL);
    assert_int_equal(pgcw_memo_get(f.m, NULL, 1, &v, &len), PGCW_EINVAL);
    assert_int_equal(pgcw_memo_get(NULL, "k", 1, &v, &len), PGCW_EINVAL);
    assert_int_equal(atomic_load(&f.ld.calls), 0);

    pgcw_memo_free(NULL);
    pgcw_memo_clear(NULL);
    fx_close(&f);
}

static void test_hit_miss_and_stats(void **state)
{
    (void)state;
    fx f;
    fx_open(&f, NULL, 0, 0);

    expect(&f, "a", "a#1");
    expect(&f, "a", "a#1");
    expect(&f, "b", "b#2");
    expect(&f, "a", "a#1");
    expect(&f, "b", "b#2");

    /* Keys are bytes: embedded NULs and the empty key are keys like any other. */
    void *v;
    size_t len;
    assert_int_equal(pgcw_memo_get(f.m, "x\0y", 3, &v, &len), PGCW_OK);
    assert_int_equal(len, 3); /* "x#3" (the loader prints up to the NUL) */
    assert_memory_equal(v, "x#3", 3);
    pgcw_free(v);
    assert_int_equal(pgcw_memo_get(f.m, "x\0z", 3, &v, &len), PGCW_OK);
    assert_memory_equal(v, "x#4", 3);
    pgcw_free(v);
    assert_int_equal(pgcw_memo_get(f.m, NULL, 0, &v, &len), PGCW_OK);
    assert_string_equal(v, "#5");
    pgcw_free(v);
    assert_int_equal(pgcw_memo_get(f.m, "", 0, &v, &len), PGCW_OK);
    assert_string_equal(v, "#5");
    pgcw_free(v);

    pgcw_memo_stats st = stats(&f);
    assert_int_equal(st.hits, 4);
    assert_int_equal(st.misses, 5);
    assert_int_equal(st.loads, 5);
    assert_int_equal(st.bypasses, 0);
    assert_int_equal(st.waits, 0);
    assert_int_equal(st.clears, 0);
    assert_int_equal(st.load_errors, 0);
    assert_int_equal(st.entries, 5);
    /* a + a#1, b + b#2, x\0y + x#3, x\0z + x#4, "" + #5 */
    assert_int_equal(st.bytes, 4 + 4 + 6 + 6 + 2);
    assert_int_equal(atomic_load(&f.cb.hits), 4);
    assert_int_equal(atomic_load(&f.cb.misses), 5);
    fx_close(&f);
}

static void test_clear_on_event(void **state)
{
    (void)state;
    fx f;
    fx_open(&f, NULL, 0, 0);

    expect(&f, "a", "a#1");
    expect(&f, "b", "b#2");
    expect(&f, "a", "a#1");
    send_change(f.w, "orders");
    expect(&f, "a", "a#3");
    expect(&f, "b", "b#4");
    expect(&f, "a", "a#3");
    assert_int_equal(stats(&f).clears, 1);

    /* A clear by hand drops values too, but is not the strategy's clear. */
    pgcw_memo_clear(f.m);
    assert_int_equal(stats(&f).entries, 0);
    expect(&f, "a", "a#5");
    pgcw_memo_stats st = stats(&f);
    assert_int_equal(st.clears, 1);
    assert_int_equal(st.hits, 2);
    assert_int_equal(st.misses, 5);
    assert_int_equal(st.entries, 1);
    fx_close(&f);
}

/* Only events the predicate accepts clear. */
static bool only_orders(void *ctx, const pgcw_event *e)
{
    (void)ctx;
    return strcmp(e->table, "orders") == 0;
}

static void test_clear_follows_predicate(void **state)
{
    (void)state;
    fx f;
    pgcw_strategy_opts so = {.predicate = only_orders};
    fx_open(&f, &so, 0, 0);
    expect(&f, "a", "a#1");
    send_change(f.w, "users");
    expect(&f, "a", "a#1");
    send_change(f.w, "orders");
    expect(&f, "a", "a#2");
    assert_int_equal(stats(&f).clears, 1);
    fx_close(&f);
}

#define FLIGHT 16

static void test_single_flight(void **state)
{
    (void)state;
    fx f;
    fx_open(&f, NULL, 0, 0);
    f.ld.wait_for_waits = FLIGHT - 1; /* the load ends once everyone waits for it */

    getter g[FLIGHT];
    for (int i = 0; i < FLIGHT; i++)
        start(&g[i], &f, "k");
    for (int i = 0; i < FLIGHT; i++) {
        join(&g[i]);
        assert_int_equal(g[i].st, PGCW_OK);
        assert_string_equal(g[i].value, "k#1");
        assert_int_equal(g[i].len, 3);
        assert_null(g[i].err);
        getter_free(&g[i]);
    }
    assert_false(f.ld.timed_out);
    assert_int_equal(atomic_load(&f.ld.calls), 1);
    pgcw_memo_stats st = stats(&f);
    assert_int_equal(st.loads, 1);
    assert_int_equal(st.waits, FLIGHT - 1);
    assert_int_equal(st.misses, 1);
    assert_int_equal(st.hits, FLIGHT - 1); /* they found the load in flight */
    assert_int_equal(atomic_load(&f.cb.hits) + atomic_load(&f.cb.misses), FLIGHT);
    expect(&f, "k", "k#1");
    assert_int_equal(stats(&f).loads, 1);
    fx_close(&f);
}

static void test_loader_error_reaches_every_waiter(void **state)
{
    (void)state;
    fx f;
    fx_open(&f, NULL, 0, 0);
    f.ld.wait_for_waits = FLIGHT - 1;
    atomic_store(&f.ld.fail_times, 1);
    f.ld.fail_status = PGCW_EQUERY;
    f.ld.fail_msg = "ERROR: relation \"t\" does not exist (SQLSTATE 42P01)";

    getter g[FLIGHT];
    for (int i = 0; i < FLIGHT; i++)
        start(&g[i], &f, "k");
    for (int i = 0; i < FLIGHT; i++) {
        join(&g[i]);
        assert_int_equal(g[i].st, PGCW_EQUERY);
        assert_null(g[i].value);
        assert_int_equal(g[i].len, 0);
        assert_non_null(g[i].err);
        assert_string_equal(g[i].err, f.ld.fail_msg);
        for (int j = 0; j < i; j++)
            assert_true(g[i].err_addr != g[j].err_addr); /* each its own copy */
    }
    for (int i = 0; i < FLIGHT; i++)
        getter_free(&g[i]);
    pgcw_memo_stats st = stats(&f);
    assert_int_equal(st.loads, 1);
    assert_int_equal(st.load_errors, 1);
    assert_int_equal(st.entries, 0);

    /* Not cached: the next get loads again, and succeeds. */
    f.ld.wait_for_waits = 0;
    expect(&f, "k", "k#2");
    expect(&f, "k", "k#2");
    assert_int_equal(stats(&f).loads, 2);

    /* A failure without a message: an empty errmsg. */
    atomic_store(&f.ld.fail_times, 2);
    f.ld.fail_status = PGCW_ELOADER;
    f.ld.fail_msg = NULL;
    void *v = (void *)&v;
    size_t len = 7;
    assert_int_equal(pgcw_memo_get(f.m, "j", 1, &v, &len), PGCW_ELOADER);
    assert_null(v);
    assert_int_equal(len, 0);
    assert_string_equal(pgcw_memo_errmsg(f.m), "");
    assert_int_equal(pgcw_memo_get(f.m, "j", 1, &v, &len), PGCW_ELOADER);
    assert_int_equal(stats(&f).load_errors, 3);
    fx_close(&f);
}

static void test_loader_ok_without_value(void **state)
{
    (void)state;
    fx f;
    fx_open(&f, NULL, 0, 0);
    f.ld.ok_without_value = true;
    void *v;
    size_t len;
    assert_int_equal(pgcw_memo_get(f.m, "k", 1, &v, &len), PGCW_ELOADER);
    assert_true(strlen(pgcw_memo_errmsg(f.m)) > 0);
    assert_int_equal(stats(&f).entries, 0);
    assert_int_equal(pgcw_memo_result_set(NULL, "x", 1), PGCW_EINVAL);
    pgcw_memo_result_error(NULL, "x");
    fx_close(&f);
}

static void test_bypass_when_unhealthy(void **state)
{
    (void)state;
    fx f;
    fx_open(&f, NULL, 0, 0);
    expect(&f, "a", "a#1");

    pgcw__watcher_set_healthy(f.w, false);
    expect(&f, "a", "a#2");
    expect(&f, "a", "a#3");
    expect(&f, "a", "a#4");
    pgcw_memo_stats st = stats(&f);
    assert_int_equal(st.bypasses, 3);
    assert_int_equal(st.misses, 4);
    assert_int_equal(st.loads, 4);
    assert_int_equal(st.hits, 0);
    assert_int_equal(atomic_load(&f.cb.misses), 4);
    /* An error while bypassing reaches the caller too. */
    atomic_store(&f.ld.fail_times, 1);
    f.ld.fail_status = PGCW_ELOADER;
    f.ld.fail_msg = "down";
    void *v;
    size_t len;
    assert_int_equal(pgcw_memo_get(f.m, "a", 1, &v, &len), PGCW_ELOADER);
    assert_string_equal(pgcw_memo_errmsg(f.m), "down");

    /* Healthy again: the gap drops what was stored before the loss. */
    pgcw__watcher_set_healthy(f.w, true);
    expect(&f, "a", "a#6");
    expect(&f, "a", "a#6");
    st = stats(&f);
    assert_int_equal(st.bypasses, 4);
    assert_int_equal(st.load_errors, 1);
    assert_int_equal(st.hits, 1);
    assert_int_equal(st.entries, 1);
    assert_true(st.clears >= 1);
    fx_close(&f);
}

/* The loader of "k" is stalled while an event arrives and another get drains it:
 * the stalled value still reaches its callers, but is not stored. */
static void test_clear_racing_load(void **state)
{
    (void)state;
    fx f;
    fx_open(&f, NULL, 0, 0);
    f.ld.block_key = "k";

    getter leader, waiter;
    start(&leader, &f, "k");
    wait_entered(&f.ld);
    start(&waiter, &f, "k");
    assert_true(poll_until_waits(f.m, 1)); /* joined before the clear */

    send_change(f.w, "orders");
    expect(&f, "other", "other#2"); /* drains the event: clear */
    assert_int_equal(stats(&f).clears, 1);

    release(&f.ld);
    join(&leader);
    join(&waiter);
    assert_int_equal(leader.st, PGCW_OK);
    assert_string_equal(leader.value, "k#1");
    assert_int_equal(waiter.st, PGCW_OK);
    assert_string_equal(waiter.value, "k#1");
    getter_free(&leader);
    getter_free(&waiter);

    pgcw_memo_stats st = stats(&f);
    assert_int_equal(st.refused, 1);
    assert_int_equal(st.entries, 1); /* only "other" */
    expect(&f, "k", "k#3");
    expect(&f, "k", "k#3");
    expect(&f, "other", "other#2");
    fx_close(&f);
}

/* After a clear, a new caller must not wait for a load that began before it, and
 * that old load must not overwrite the newer value. */
static void test_clear_detaches_flight(void **state)
{
    (void)state;
    fx f;
    fx_open(&f, NULL, 0, 0);
    f.ld.block_key = "k";

    getter old;
    start(&old, &f, "k");
    wait_entered(&f.ld);
    pgcw_memo_clear(f.m);
    expect(&f, "k", "k#2"); /* loads itself while "k#1" is still stalled */
    assert_int_equal(stats(&f).waits, 0);

    release(&f.ld);
    join(&old);
    assert_int_equal(old.st, PGCW_OK);
    assert_string_equal(old.value, "k#1");
    getter_free(&old);
    assert_int_equal(stats(&f).refused, 1);
    expect(&f, "k", "k#2");
    fx_close(&f);
}

/* A gap that sits in the queue beyond the drain deadline still clears: the memo
 * sees the generation move. */
static bool never(void *ctx, const pgcw_event *e)
{
    (void)ctx;
    (void)e;
    return false;
}

static void test_gap_beyond_deadline_clears(void **state)
{
    (void)state;
    fx f;
    pgcw_strategy_opts so = {
        .predicate = never, .deadline = {.max_events = 1}, .queue_capacity = 3};
    fx_open(&f, &so, 0, 0);
    expect(&f, "a", "a#1");
    for (int i = 0; i < 10; i++) /* overflow: the gap goes behind what fits */
        send_change(f.w, "t");
    assert_true(pgcw_sub_pending(pgcw_strategy_sub(f.s)) > 1);
    expect(&f, "a", "a#2");
    assert_true(pgcw_sub_pending(pgcw_strategy_sub(f.s)) > 0); /* gap not read yet */
    assert_int_equal(stats(&f).clears, 1);
    fx_close(&f);
}

static void test_max_entries(void **state)
{
    (void)state;
    fx f;
    fx_open(&f, NULL, 3, 0);
    const char *keys[] = {"k1", "k2", "k3", "k4", "k5"};
    for (int i = 0; i < 5; i++) {
        char want[16];
        snprintf(want, sizeof want, "%s#%d", keys[i], i + 1);
        expect(&f, keys[i], want);
        assert_true(stats(&f).entries <= 3);
    }
    assert_int_equal(stats(&f).entries, 3);
    expect(&f, "k5", "k5#5"); /* the newest three stay */
    expect(&f, "k4", "k4#4");
    expect(&f, "k3", "k3#3");
    expect(&f, "k1", "k1#6"); /* the oldest went first */
    expect(&f, "k4", "k4#4");
    expect(&f, "k3", "k3#7"); /* k1 pushed out the oldest, k3 */
    assert_int_equal(stats(&f).entries, 3);
    fx_close(&f);
}

static void test_max_bytes(void **state)
{
    (void)state;
    fx f;
    fx_open(&f, NULL, 0, 40);
    f.ld.pad = 10; /* every entry: 2 key bytes + 10 value bytes */
    expect(&f, "k1", "k1#1......");
    expect(&f, "k2", "k2#2......");
    expect(&f, "k3", "k3#3......");
    assert_int_equal(stats(&f).bytes, 36);
    expect(&f, "k4", "k4#4......");
    pgcw_memo_stats st = stats(&f);
    assert_int_equal(st.entries, 3);
    assert_int_equal(st.bytes, 36);
    expect(&f, "k1", "k1#5......"); /* evicted */
    expect(&f, "k4", "k4#4......");

    /* A value bigger than the whole budget is returned, never stored. */
    f.ld.pad = 100;
    void *v;
    size_t len;
    assert_int_equal(pgcw_memo_get(f.m, "big", 3, &v, &len), PGCW_OK);
    assert_int_equal(len, 100);
    pgcw_free(v);
    st = stats(&f);
    assert_true(st.bytes <= 40);
    assert_int_equal(st.entries, 3);
    assert_int_equal(pgcw_memo_get(f.m, "big", 3, &v, &len), PGCW_OK);
    pgcw_free(v);
    assert_int_equal(stats(&f).loads, 7);
    fx_close(&f);
}

/* A loader may use the memo for other keys (no lock is held while it runs). */
typedef struct nested {
    pgcw_memo *m;
    atomic_int calls;
} nested;

static pgcw_status nested_load(void *ctx, const void *key, size_t key_len,
                               pgcw_memo_result *r)
{
    nested *n = ctx;
    atomic_fetch_add(&n->calls, 1);
    if (key_len == 5 && memcmp(key, "inner", 5) == 0)
        return pgcw_memo_result_set(r, "I", 1);
    void *v;
    size_t len;
    pgcw_status st = pgcw_memo_get(n->m, "inner", 5, &v, &len);
    if (st != PGCW_OK)
        return st;
    char out[16];
    snprintf(out, sizeof out, "outer(%s)", (char *)v);
    pgcw_free(v);
    return pgcw_memo_result_set(r, out, strlen(out));
}

static void test_loader_reenters(void **state)
{
    (void)state;
    pgcw_watcher *w;
    pgcw_strategy *s;
    assert_int_equal(pgcw_watcher_new(NULL, NULL, &w), PGCW_OK);
    pgcw__watcher_set_healthy(w, true);
    assert_int_equal(pgcw_strategy_new(w, NULL, &s), PGCW_OK);
    nested n = {0};
    pgcw_memo_opts mo = {.strategy = s, .load = nested_load, .load_ctx = &n};
    assert_int_equal(pgcw_memo_new(&mo, &n.m), PGCW_OK);
    for (int i = 0; i < 2; i++) {
        void *v;
        size_t len;
        assert_int_equal(pgcw_memo_get(n.m, "outer", 5, &v, &len), PGCW_OK);
        assert_string_equal(v, "outer(I)");
        pgcw_free(v);
    }
    assert_int_equal(atomic_load(&n.calls), 2);
    pgcw_memo_free(n.m);
    pgcw_strategy_free(s);
    pgcw_watcher_free(w);
}

/* Many threads, few keys, events and health flips: counters stay consistent and
 * every value belongs to its key (for TSan and ASan more than for the numbers). */
#define STRESS_THREADS 4
#define STRESS_GETS 4000

typedef struct stress {
    fx *f;
    atomic_int bad;
    int seed;
} stress;

static void *stress_thread(void *arg)
{
    stress *s = arg;
    unsigned x = (unsigned)s->seed * 2654435761u + 1;
    for (int i = 0; i < STRESS_GETS; i++) {
        x = x * 1103515245u + 12345u;
        char key[8];
        snprintf(key, sizeof key, "k%u", (x >> 16) % 8);
        void *v;
        size_t len;
        if (pgcw_memo_get(s->f->m, key, strlen(key), &v, &len) != PGCW_OK) {
            atomic_fetch_add(&s->bad, 1);
            continue;
        }
        if (len < strlen(key) + 2 || memcmp(v, key, strlen(key)) != 0 ||
            ((char *)v)[strlen(key)] != '#')
            atomic_fetch_add(&s->bad, 1);
        pgcw_free(v);
    }
    return NULL;
}

static void test_concurrent_stress(void **state)
{
    (void)state;
    fx f;
    fx_open(&f, NULL, 4, 0);
    stress st[STRESS_THREADS];
    pthread_t t[STRESS_THREADS];
    for (int i = 0; i < STRESS_THREADS; i++) {
        st[i] = (stress){.f = &f, .seed = i};
        assert_int_equal(pthread_create(&t[i], NULL, stress_thread, &st[i]), 0);
    }
    for (int i = 0; i < 300; i++) {
        send_change(f.w, "t");
        if (i % 50 == 0) {
            pgcw__watcher_set_healthy(f.w, false);
            pgcw__watcher_set_healthy(f.w, true);
        }
        if (i % 70 == 0)
            pgcw_memo_clear(f.m);
    }
    for (int i = 0; i < STRESS_THREADS; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(atomic_load(&st[i].bad), 0);
    }
    pgcw_memo_stats s = stats(&f);
    assert_int_equal(s.hits + s.misses, STRESS_THREADS * STRESS_GETS);
    assert_int_equal(s.misses, s.loads);
    assert_int_equal(s.loads, (uint64_t)atomic_load(&f.ld.calls));
    assert_int_equal(atomic_load(&f.cb.hits), s.hits);
    assert_int_equal(atomic_load(&f.cb.misses), s.misses);
    assert_true(s.entries <= 4);

    /* Quiet again: an event still means a fresh load. */
    char want[32];
    snprintf(want, sizeof want, "k1#%d", atomic_load(&f.ld.calls) + 1);
    send_change(f.w, "t");
    expect(&f, "k1", want);
    fx_close(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_invalid_arguments),
        cmocka_unit_test(test_hit_miss_and_stats),
        cmocka_unit_test(test_clear_on_event),
        cmocka_unit_test(test_clear_follows_predicate),
        cmocka_unit_test(test_single_flight),
        cmocka_unit_test(test_loader_error_reaches_every_waiter),
        cmocka_unit_test(test_loader_ok_without_value),
        cmocka_unit_test(test_bypass_when_unhealthy),
        cmocka_unit_test(test_clear_racing_load),
        cmocka_unit_test(test_clear_detaches_flight),
        cmocka_unit_test(test_gap_beyond_deadline_clears),
        cmocka_unit_test(test_max_entries),
        cmocka_unit_test(test_max_bytes),
        cmocka_unit_test(test_loader_reenters),
        cmocka_unit_test(test_concurrent_stress),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
