/*
 * test_alloc_api.c - allocation failure, for every N, on the in-process paths of
 * the public API: L1 set, fill and get_dup, memo get, and the watcher's fan-out
 * (pgcw_watcher_dispatch to a subscriber, a sink and a strategy). Each call
 * returns PGCW_OK or PGCW_ENOMEM, never anything else; after a failure the
 * structure is as its header says (an L1 set or fill that failed changed nothing;
 * a memo get that failed stored nothing), and nothing leaks (ASan build).
 */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <pgcachewatch/pgcachewatch.h>

#include "failalloc.h"
#include "pgcw_testhook.h"

#define MAX_N 10000

/* Runs `call` with its nth allocation failed, for n = 1, 2, ... until a run needs
 * no failure (which must then succeed); `check` looks at the outcome of each run.
 * Returns how many runs failed an allocation. */
typedef pgcw_status (*call_fn)(void *ctx);
typedef void (*check_fn)(void *ctx, pgcw_status st);

static unsigned long sweep(const char *what, call_fn call, check_fn check, void *ctx)
{
    unsigned long n = 1;
    for (; n < MAX_N; n++) {
        failalloc_arm(n, false);
        pgcw_status st = call(ctx);
        bool fired = failalloc_fired();
        failalloc_arm(0, false);
        if (st != PGCW_OK && st != PGCW_ENOMEM)
            fail_msg("%s, allocation %lu failed: %s", what, n, pgcw_status_name(st));
        if (st == PGCW_ENOMEM && !fired)
            fail_msg("%s: PGCW_ENOMEM with no allocation failed", what);
        check(ctx, st);
        if (!fired) {
            assert_int_equal(st, PGCW_OK);
            return n - 1;
        }
    }
    fail_msg("%s: still allocating after %d runs", what, MAX_N);
    return 0;
}

/* --- L1 ---------------------------------------------------------------------------- */

typedef struct l1_case {
    pgcw_l1 *l1;
    int round;
    char key[64], value[600], before[600];
    bool had_before;
} l1_case;

static void l1_prepare(l1_case *t)
{
    t->round++;
    /* Alternate small values (slab) and large ones (malloc), new keys and known. */
    snprintf(t->key, sizeof t->key, "key-%d", t->round % 7);
    size_t len = t->round % 2 ? 20 : 520;
    memset(t->value, 'a' + t->round % 26, len);
    t->value[len] = '\0';
    size_t got = 0;
    t->had_before = pgcw_l1_get(t->l1, t->key, strlen(t->key), t->before,
                                sizeof t->before - 1, &got, NULL) == PGCW_OK;
    t->before[t->had_before ? got : 0] = '\0';
}

/* After a failed write the entry is what it was; after a good one, the new value. */
static void l1_check(void *ctx, pgcw_status st)
{
    l1_case *t = ctx;
    char buf[600];
    size_t got = 0;
    pgcw_status g =
        pgcw_l1_get(t->l1, t->key, strlen(t->key), buf, sizeof buf - 1, &got, NULL);
    buf[g == PGCW_OK ? got : 0] = '\0';
    if (st == PGCW_OK) {
        assert_int_equal(g, PGCW_OK);
        assert_string_equal(buf, t->value);
    } else if (t->had_before) {
        assert_int_equal(g, PGCW_OK);
        assert_string_equal(buf, t->before);
    } else {
        assert_int_equal(g, PGCW_ENOTFOUND);
    }
}

static pgcw_status l1_set_call(void *ctx)
{
    l1_case *t = ctx;
    l1_prepare(t);
    return pgcw_l1_set(t->l1, t->key, strlen(t->key), t->value, strlen(t->value),
                       t->round, PGCW_L1_TTL_NONE);
}

static pgcw_status l1_fill_call(void *ctx)
{
    l1_case *t = ctx;
    l1_prepare(t);
    pgcw_l1_ticket ticket;
    pgcw_l1_ticket_take(t->l1, t->key, strlen(t->key), &ticket);
    bool stored = false;
    pgcw_status st =
        pgcw_l1_fill(t->l1, &ticket, t->key, strlen(t->key), t->value, strlen(t->value),
                     1000000 + t->round, 60000000, &stored);
    assert_true(st != PGCW_OK || stored); /* nothing raced it */
    return st;
}

static void test_l1_set_and_fill(void **state)
{
    (void)state;
    /* Small bounds, so that writes also evict and retire entries. */
    pgcw_l1_opts o = {.max_entries = 4, .shards = 1};
    l1_case t = {0};
    assert_int_equal(pgcw_l1_new(&o, &t.l1), PGCW_OK);
    unsigned long failed_sets = 0, failed_fills = 0;
    for (int i = 0; i < 20; i++) {
        failed_sets += sweep("pgcw_l1_set", l1_set_call, l1_check, &t);
        failed_fills += sweep("pgcw_l1_fill", l1_fill_call, l1_check, &t);
    }
    assert_true(failed_sets >= 1);
    assert_true(failed_fills >= 1);
    pgcw_l1_free(t.l1);
}

static pgcw_status l1_new_call(void *ctx)
{
    pgcw_l1 **out = ctx;
    pgcw_l1_opts o = {.max_entries = 100};
    *out = NULL;
    pgcw_status st = pgcw_l1_new(&o, out);
    assert_true(st == PGCW_OK || *out == NULL);
    return st;
}

static void l1_new_check(void *ctx, pgcw_status st)
{
    pgcw_l1 **out = ctx;
    (void)st;
    pgcw_l1_free(*out);
    *out = NULL;
}

static void test_l1_new(void **state)
{
    (void)state;
    pgcw_l1 *l1 = NULL;
    assert_true(sweep("pgcw_l1_new", l1_new_call, l1_new_check, &l1) >= 1);
}

typedef struct dup_case {
    pgcw_l1 *l1;
    void *value;
} dup_case;

static pgcw_status dup_call(void *ctx)
{
    dup_case *t = ctx;
    size_t len = 0;
    t->value = NULL;
    return pgcw_l1_get_dup(t->l1, "k", 1, &t->value, &len, NULL);
}

static void dup_check(void *ctx, pgcw_status st)
{
    dup_case *t = ctx;
    if (st == PGCW_OK)
        assert_string_equal(t->value, "the value");
    else
        assert_null(t->value);
    pgcw_free(t->value);
}

static void test_l1_get_dup(void **state)
{
    (void)state;
    dup_case t = {0};
    assert_int_equal(pgcw_l1_new(NULL, &t.l1), PGCW_OK);
    assert_int_equal(pgcw_l1_set(t.l1, "k", 1, "the value", 9, 1, PGCW_L1_TTL_NONE),
                     PGCW_OK);
    assert_true(sweep("pgcw_l1_get_dup", dup_call, dup_check, &t) >= 1);
    pgcw_l1_free(t.l1);
}

/* --- memo and the watcher's fan-out --------------------------------------------- */

typedef struct memo_case {
    pgcw_watcher *w;
    pgcw_strategy *strategy;
    pgcw_memo *memo;
    pgcw_sub *sub;
    int loads, round, sink_calls;
    char key[32];
    void *value;
} memo_case;

static pgcw_status load(void *ctx, const void *key, size_t key_len, pgcw_memo_result *r)
{
    memo_case *t = ctx;
    t->loads++;
    char v[64];
    snprintf(v, sizeof v, "value of %.*s", (int)key_len, (const char *)key);
    return pgcw_memo_result_set(r, v, strlen(v));
}

static pgcw_status memo_call(void *ctx)
{
    memo_case *t = ctx;
    t->round++;
    snprintf(t->key, sizeof t->key, "k%d", t->round);
    size_t len = 0;
    t->value = NULL;
    return pgcw_memo_get(t->memo, t->key, strlen(t->key), &t->value, &len);
}

static void memo_check(void *ctx, pgcw_status st)
{
    memo_case *t = ctx;
    char want[64];
    snprintf(want, sizeof want, "value of %s", t->key);
    if (st == PGCW_OK)
        assert_string_equal(t->value, want);
    pgcw_free(t->value);
    /* Whatever happened, a second get returns the true value. */
    size_t len = 0;
    void *again = NULL;
    assert_int_equal(pgcw_memo_get(t->memo, t->key, strlen(t->key), &again, &len),
                     PGCW_OK);
    assert_string_equal(again, want);
    pgcw_free(again);
}

static void sink(void *ctx, const pgcw_event *e)
{
    (void)e;
    ((memo_case *)ctx)->sink_calls++;
}

static pgcw_status dispatch_call(void *ctx)
{
    memo_case *t = ctx;
    const pgcw_event *e = NULL;
    t->sink_calls = 0;
    pgcw_status st = pgcw_event_new_key("ch", PGCW_OP_UPDATE, "k1", 2, 7, &e);
    if (st != PGCW_OK)
        return st;
    st = pgcw_watcher_dispatch(t->w, e);
    pgcw_event_free(e);
    return st;
}

/* The event reached the subscriber and the sink, or (ENOMEM) neither. */
static void dispatch_check(void *ctx, pgcw_status st)
{
    memo_case *t = ctx;
    const pgcw_event *got = NULL;
    pgcw_status g = pgcw_sub_try_get(t->sub, &got);
    if (st == PGCW_OK) {
        assert_int_equal(g, PGCW_OK);
        assert_int_equal(got->kind, PGCW_EVENT_KEY);
        assert_int_equal(t->sink_calls, 1);
    } else {
        assert_int_equal(g, PGCW_EAGAIN);
        assert_int_equal(t->sink_calls, 0);
    }
    pgcw_event_free(got);
    assert_int_equal(pgcw_sub_try_get(t->sub, &got), PGCW_EAGAIN);
}

static void test_memo_and_dispatch(void **state)
{
    (void)state;
    memo_case t = {0};
    pgcw_conn_opts co = {.conninfo = "host=/nonexistent/pgcw"};
    assert_int_equal(pgcw_watcher_new(NULL, &co, &t.w), PGCW_OK);
    pgcw__watcher_set_healthy(t.w, true); /* never connected: driven by hand */
    pgcw_strategy_opts so = {0};
    assert_int_equal(pgcw_strategy_new(t.w, &so, &t.strategy), PGCW_OK);
    pgcw_memo_opts mo = {.strategy = t.strategy, .load = load, .load_ctx = &t};
    assert_int_equal(pgcw_memo_new(&mo, &t.memo), PGCW_OK);
    assert_true(sweep("pgcw_memo_get", memo_call, memo_check, &t) >= 1);

    assert_int_equal(pgcw_sub_new(t.w, NULL, &t.sub), PGCW_OK);
    pgcw_sink *s = NULL;
    pgcw_sink_opts sk = {.fn = sink, .ctx = &t};
    assert_int_equal(pgcw_sink_new(t.w, &sk, &s), PGCW_OK);
    assert_true(sweep("pgcw_watcher_dispatch", dispatch_call, dispatch_check, &t) >= 1);
    pgcw_sink_free(s);
    pgcw_sub_free(t.sub);
    pgcw_memo_free(t.memo);
    pgcw_strategy_free(t.strategy);
    pgcw_watcher_free(t.w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_l1_new),
        cmocka_unit_test(test_l1_set_and_fill),
        cmocka_unit_test(test_l1_get_dup),
        cmocka_unit_test(test_memo_and_dispatch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
