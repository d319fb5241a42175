/*
 * test_strategy.c - Greedy, Windowed and Timed against the Python semantics, the
 * drain deadline, gaps (always "clear"), the generation, and concurrent callers.
 * No server: events are injected with pgcw_watcher_dispatch() and health is
 * flipped with the watcher's internal test hook.
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <pgcachewatch/pgcachewatch.h>

#include "pgcw_testhook.h"

#define I PGCW_OP_INSERT
#define U PGCW_OP_UPDATE
#define D PGCW_OP_DELETE

static pgcw_watcher *new_watcher(void)
{
    pgcw_watcher *w = NULL;
    assert_int_equal(pgcw_watcher_new(NULL, NULL, &w), PGCW_OK);
    pgcw__watcher_set_healthy(w, true);
    return w;
}

/* A change event as the server would send it (our payload format). */
static pgcw_event *make_event(pgcw_op op, const char *table, int64_t sent_at_us)
{
    char ts[40], payload[256], err[128] = "";
    pgcw_time_format(sent_at_us, ts, sizeof ts);
    snprintf(payload, sizeof payload,
             "{\"operation\":\"%s\",\"table\":\"%s\",\"schema\":\"public\","
             "\"sent_at\":\"%s\"}",
             pgcw_op_name(op), table, ts);
    pgcw_event *e = NULL;
    pgcw_status st = pgcw__event_decode(PGCW_FORMAT_TABLE_CHANGE, "ch", payload,
                                        strlen(payload), 0, &e, err, sizeof err);
    if (st != PGCW_OK)
        fail_msg("parse %s: %s", payload, err);
    return e;
}

static void send_at(pgcw_watcher *w, pgcw_op op, const char *table, int64_t sent_at_us)
{
    pgcw_event *e = make_event(op, table, sent_at_us);
    assert_int_equal(pgcw_watcher_dispatch(w, e), PGCW_OK);
    pgcw_event_free(e);
}

static void send(pgcw_watcher *w, pgcw_op op, const char *table)
{
    send_at(w, op, table, pgcw__real_us());
}

/* A schema event as our DDL event trigger sends it. */
static void send_ddl(pgcw_watcher *w, const char *table)
{
    char ts[40], payload[512], err[128] = "";
    pgcw_time_format(pgcw__real_us(), ts, sizeof ts);
    snprintf(payload, sizeof payload,
             "{\"operation\":\"ddl\",\"command_tag\":\"ALTER TABLE\","
             "\"object_type\":\"table\",\"object_identity\":\"public.%s\","
             "\"schema\":\"public\",\"table\":\"%s\",\"sent_at\":\"%s\"}",
             table, table, ts);
    pgcw_event *e = NULL;
    pgcw_status st = pgcw__event_decode(PGCW_FORMAT_TABLE_CHANGE, "ch", payload,
                                        strlen(payload), 0, &e, err, sizeof err);
    if (st != PGCW_OK)
        fail_msg("parse %s: %s", payload, err);
    assert_int_equal(e->kind, PGCW_EVENT_SCHEMA);
    assert_int_equal(pgcw_watcher_dispatch(w, e), PGCW_OK);
    pgcw_event_free(e);
}

/* Unless a test is about the time budget, give the drain a generous one: on a
 * loaded machine (or under TSan) 1 ms can pass between two events, and only the
 * event budget should decide where a drain stops. */
static pgcw_strategy *new_strategy(pgcw_watcher *w, const pgcw_strategy_opts *o)
{
    pgcw_strategy_opts opts = o ? *o : (pgcw_strategy_opts){0};
    if (opts.deadline.max_time_us == 0)
        opts.deadline.max_time_us = 10 * 1000000;
    pgcw_strategy *s = NULL;
    assert_int_equal(pgcw_strategy_new(w, &opts, &s), PGCW_OK);
    assert_non_null(s);
    return s;
}

static void test_invalid_options(void **state)
{
    (void)state;
    pgcw_watcher *w = new_watcher();
    pgcw_strategy *s = (pgcw_strategy *)&s; /* must be reset to NULL on failure */
    pgcw_op none[] = {I, PGCW_OP_NONE};
    pgcw_op one[] = {I};

    assert_int_equal(pgcw_strategy_new(NULL, NULL, &s), PGCW_EINVAL);
    assert_null(s);
    assert_int_equal(pgcw_strategy_new(w, NULL, NULL), PGCW_EINVAL);
    pgcw_strategy_opts o = {.kind = PGCW_STRATEGY_WINDOWED};
    assert_int_equal(pgcw_strategy_new(w, &o, &s), PGCW_EINVAL);
    o.window = one; /* window_len still 0 */
    assert_int_equal(pgcw_strategy_new(w, &o, &s), PGCW_EINVAL);
    o.window = none;
    o.window_len = 2;
    assert_int_equal(pgcw_strategy_new(w, &o, &s), PGCW_EINVAL);
    o = (pgcw_strategy_opts){.kind = PGCW_STRATEGY_TIMED};
    assert_int_equal(pgcw_strategy_new(w, &o, &s), PGCW_EINVAL);
    o.interval_us = -5;
    assert_int_equal(pgcw_strategy_new(w, &o, &s), PGCW_EINVAL);
    o = (pgcw_strategy_opts){.kind = (pgcw_strategy_kind)7};
    assert_int_equal(pgcw_strategy_new(w, &o, &s), PGCW_EINVAL);
    o = (pgcw_strategy_opts){.deadline = {.max_time_us = -1}};
    assert_int_equal(pgcw_strategy_new(w, &o, &s), PGCW_EINVAL);
    assert_null(s);

    pgcw_strategy_free(NULL);
    assert_false(pgcw_strategy_clear(NULL));
    pgcw_watcher_free(w);
}

static void test_accessors_and_health(void **state)
{
    (void)state;
    pgcw_watcher *w = new_watcher();
    pgcw_strategy *s = NULL;
    assert_int_equal(pgcw_strategy_new(w, NULL, &s), PGCW_OK); /* all defaults */
    assert_ptr_equal(pgcw_sub_watcher(pgcw_strategy_sub(s)), w);
    send(w, I, "t");
    assert_true(pgcw_strategy_clear(s));
    assert_true(pgcw_strategy_healthy(s));
    pgcw__watcher_set_healthy(w, false);
    assert_false(pgcw_strategy_healthy(s));
    pgcw__watcher_set_healthy(w, true);
    assert_true(pgcw_strategy_healthy(s));
    pgcw_strategy_free(s);
    pgcw_watcher_free(w);
}

static void test_greedy_any_event(void **state)
{
    (void)state;
    pgcw_watcher *w = new_watcher();
    pgcw_strategy *s = new_strategy(w, NULL);
    pgcw_sub *sub = pgcw_strategy_sub(s);

    assert_false(pgcw_strategy_clear(s));
    send(w, I, "orders");
    assert_true(pgcw_strategy_clear(s));
    assert_false(pgcw_strategy_clear(s));

    /* It returns at the first clearing event; the rest wait for the next call. */
    send(w, I, "a");
    send(w, U, "b");
    send(w, D, "c");
    assert_true(pgcw_strategy_clear(s));
    assert_int_equal(pgcw_sub_pending(sub), 2);
    assert_true(pgcw_strategy_clear(s));
    assert_true(pgcw_strategy_clear(s));
    assert_false(pgcw_strategy_clear(s));
    assert_int_equal(pgcw_sub_pending(sub), 0);

    pgcw_strategy_free(s);
    pgcw_watcher_free(w);
}

typedef struct pred_ctx {
    const char *table;
    atomic_int calls;
} pred_ctx;

static bool table_is(void *ctx, const pgcw_event *e)
{
    pred_ctx *p = ctx;
    atomic_fetch_add(&p->calls, 1);
    assert_int_equal(e->kind, PGCW_EVENT_CHANGE); /* gaps never reach a predicate */
    return strcmp(e->table, p->table) == 0;
}

static void test_greedy_predicate(void **state)
{
    (void)state;
    pgcw_watcher *w = new_watcher();
    pred_ctx pc = {.table = "orders"};
    pgcw_strategy_opts o = {.predicate = table_is, .predicate_ctx = &pc};
    pgcw_strategy *s = new_strategy(w, &o);

    send(w, I, "users");
    send(w, U, "users");
    assert_false(pgcw_strategy_clear(s));
    assert_int_equal(atomic_load(&pc.calls), 2);
    assert_int_equal(pgcw_sub_pending(pgcw_strategy_sub(s)), 0);

    send(w, I, "users");
    send(w, D, "orders");
    send(w, I, "users");
    assert_true(pgcw_strategy_clear(s));
    assert_int_equal(atomic_load(&pc.calls), 4);
    assert_int_equal(pgcw_sub_pending(pgcw_strategy_sub(s)), 1);
    assert_false(pgcw_strategy_clear(s));
    assert_int_equal(atomic_load(&pc.calls), 5);

    pgcw_strategy_free(s);
    pgcw_watcher_free(w);
}

/* Sends ops one at a time and checks the answer after each. */
static void expect_window(pgcw_watcher *w, pgcw_strategy *s, const pgcw_op *ops,
                          const char *answers, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        send(w, ops[i], "t");
        bool want = answers[i] == 'T';
        if (pgcw_strategy_clear(s) != want)
            fail_msg("event %zu (%s): expected %s", i, pgcw_op_name(ops[i]),
                     want ? "clear" : "no clear");
    }
}

static void test_windowed_exact_sequence(void **state)
{
    (void)state;
    pgcw_watcher *w = new_watcher();
    pgcw_op window[] = {I, U, D};
    pgcw_strategy_opts o = {
        .kind = PGCW_STRATEGY_WINDOWED, .window = window, .window_len = 3};
    pgcw_strategy *s = new_strategy(w, &o);
    window[0] = D; /* the strategy copied the window */

    const pgcw_op a[] = {I, U, D, I, D, U, D, U, I, U, D};
    expect_window(w, s, a, "FFTFFFFFFFT", 11);

    /* A whole batch drained in one call, stopping at the match. */
    send(w, D, "t");
    send(w, I, "t");
    send(w, U, "t");
    send(w, D, "t");
    send(w, I, "t");
    assert_true(pgcw_strategy_clear(s));
    assert_int_equal(pgcw_sub_pending(pgcw_strategy_sub(s)), 1);
    assert_false(pgcw_strategy_clear(s));

    pgcw_strategy_free(s);
    pgcw_watcher_free(w);
}

static void test_windowed_overlapping(void **state)
{
    (void)state;
    pgcw_watcher *w = new_watcher();

    /* The history is not reset after a clear (as in Python): overlaps match. */
    pgcw_op ii[] = {I, I};
    pgcw_strategy_opts o = {
        .kind = PGCW_STRATEGY_WINDOWED, .window = ii, .window_len = 2};
    pgcw_strategy *s = new_strategy(w, &o);
    const pgcw_op a[] = {I, I, I, I, U, I, I};
    expect_window(w, s, a, "FTTTFFT", 7);
    pgcw_strategy_free(s);

    pgcw_op iuiu[] = {I, U, I, U};
    o.window = iuiu;
    o.window_len = 4;
    s = new_strategy(w, &o);
    const pgcw_op b[] = {I, U, I, U, I, U, U, I, U, I, U};
    expect_window(w, s, b, "FFFTFTFFFFT", 11);
    pgcw_strategy_free(s);

    pgcw_watcher_free(w);
}

static void test_timed_explicit_sent_at(void **state)
{
    (void)state;
    pgcw_watcher *w = new_watcher();
    const int64_t sec = 1000000;
    int64_t base = pgcw__real_us();
    pgcw_strategy_opts o = {.kind = PGCW_STRATEGY_TIMED, .interval_us = 10 * sec};
    pgcw_strategy *s = new_strategy(w, &o); /* reference: its creation time, >= base */

    send_at(w, I, "t", base - 3600 * sec);
    assert_false(pgcw_strategy_clear(s));
    send_at(w, I, "t", base + 1 * sec);
    assert_false(pgcw_strategy_clear(s));
    send_at(w, I, "t", base + 11 * sec); /* > 10 s after creation */
    assert_true(pgcw_strategy_clear(s));
    send_at(w, I, "t", base + 12 * sec);
    assert_false(pgcw_strategy_clear(s));
    send_at(w, I, "t", base + 21 * sec); /* exactly the interval: not more */
    assert_false(pgcw_strategy_clear(s));
    send_at(w, I, "t", base + 21 * sec + 1);
    assert_true(pgcw_strategy_clear(s));
    /* Several in one drain: the first one past the interval clears. */
    send_at(w, I, "t", base + 25 * sec);
    send_at(w, I, "t", base + 40 * sec);
    send_at(w, I, "t", base + 41 * sec);
    assert_true(pgcw_strategy_clear(s));
    assert_int_equal(pgcw_sub_pending(pgcw_strategy_sub(s)), 1);
    assert_false(pgcw_strategy_clear(s)); /* 41 - 40 */

    pgcw_strategy_free(s);
    pgcw_watcher_free(w);
}

static bool never(void *ctx, const pgcw_event *e)
{
    (void)e;
    atomic_fetch_add(&((pred_ctx *)ctx)->calls, 1);
    return false;
}

static void test_deadline_max_events(void **state)
{
    (void)state;
    pgcw_watcher *w = new_watcher();
    pred_ctx pc = {0};
    pgcw_strategy_opts o = {
        .predicate = never, .predicate_ctx = &pc, .deadline = {.max_events = 2}};
    pgcw_strategy *s = new_strategy(w, &o);
    pgcw_sub *sub = pgcw_strategy_sub(s);

    for (int i = 0; i < 5; i++)
        send(w, I, "t");
    assert_false(pgcw_strategy_clear(s));
    assert_int_equal(pgcw_sub_pending(sub), 3);
    assert_false(pgcw_strategy_clear(s));
    assert_int_equal(pgcw_sub_pending(sub), 1);
    assert_false(pgcw_strategy_clear(s));
    assert_int_equal(pgcw_sub_pending(sub), 0);
    assert_int_equal(atomic_load(&pc.calls), 5);

    pgcw_strategy_free(s);
    pgcw_watcher_free(w);
}

/* Burns more than the 1 ms budget, so each call gets through exactly one event. */
static bool slow_never(void *ctx, const pgcw_event *e)
{
    (void)e;
    atomic_fetch_add(&((pred_ctx *)ctx)->calls, 1);
    int64_t until = pgcw__mono_us() + 2000;
    while (pgcw__mono_us() < until)
        ;
    return false;
}

static void test_deadline_max_time(void **state)
{
    (void)state;
    pgcw_watcher *w = new_watcher();
    pred_ctx pc = {0};
    pgcw_strategy_opts o = {
        .predicate = slow_never, .predicate_ctx = &pc, .deadline = {.max_time_us = 1000}};
    pgcw_strategy *s = new_strategy(w, &o);
    pgcw_sub *sub = pgcw_strategy_sub(s);

    for (int i = 0; i < 3; i++)
        send(w, I, "t");
    assert_false(pgcw_strategy_clear(s));
    assert_int_equal(pgcw_sub_pending(sub), 2);
    assert_false(pgcw_strategy_clear(s));
    assert_int_equal(pgcw_sub_pending(sub), 1);
    assert_int_equal(atomic_load(&pc.calls), 2);

    pgcw_strategy_free(s);
    pgcw_watcher_free(w);
}

/* A lost connection clears whatever the strategy, and moves the generation. */
static void test_gap_clears_every_strategy(void **state)
{
    (void)state;
    pgcw_watcher *w = new_watcher();
    pred_ctx pc = {0};
    pgcw_op window[] = {I, U, D};
    pgcw_strategy_opts opts[] = {
        {.predicate = never, .predicate_ctx = &pc},
        {.kind = PGCW_STRATEGY_WINDOWED, .window = window, .window_len = 3},
        {.kind = PGCW_STRATEGY_TIMED, .interval_us = (int64_t)3600 * 1000000},
    };
    pgcw_strategy *s[3];
    uint64_t gen[3];
    for (int i = 0; i < 3; i++) {
        s[i] = new_strategy(w, &opts[i]);
        gen[i] = pgcw_strategy_generation(s[i]);
    }

    /* An ordinary event changes nothing and clears nothing here. */
    send(w, I, "t");
    for (int i = 0; i < 3; i++) {
        assert_false(pgcw_strategy_clear(s[i]));
        assert_int_equal(pgcw_strategy_generation(s[i]), gen[i]);
    }

    pgcw__watcher_set_healthy(w, false);
    for (int i = 0; i < 3; i++) {
        uint64_t g = pgcw_strategy_generation(s[i]);
        assert_int_not_equal(g, gen[i]); /* visible before the gap is read */
        gen[i] = g;
        assert_true(pgcw_strategy_clear(s[i]));
        assert_false(pgcw_strategy_clear(s[i]));
    }
    pgcw__watcher_set_healthy(w, true);
    for (int i = 0; i < 3; i++) {
        assert_int_not_equal(pgcw_strategy_generation(s[i]), gen[i]);
        assert_false(pgcw_strategy_clear(s[i]));
        pgcw_strategy_free(s[i]);
    }
    assert_int_equal(atomic_load(&pc.calls), 1);
    pgcw_watcher_free(w);
}

/* Operations on both sides of a gap are not one sequence. */
static void test_windowed_gap_resets_history(void **state)
{
    (void)state;
    pgcw_watcher *w = new_watcher();
    pgcw_op window[] = {I, U};
    pgcw_strategy_opts o = {
        .kind = PGCW_STRATEGY_WINDOWED, .window = window, .window_len = 2};
    pgcw_strategy *s = new_strategy(w, &o);

    send(w, I, "t");
    pgcw__watcher_set_healthy(w, false);
    pgcw__watcher_set_healthy(w, true);
    send(w, U, "t");
    assert_true(pgcw_strategy_clear(s));  /* I, then the gap */
    assert_false(pgcw_strategy_clear(s)); /* U alone */
    send(w, I, "t");
    send(w, U, "t");
    assert_true(pgcw_strategy_clear(s)); /* U, I, U ends with I, U */

    pgcw_strategy_free(s);
    pgcw_watcher_free(w);
}

/* A full queue yields a gap in this subscriber only, and it clears. */
static void test_overflow_gap(void **state)
{
    (void)state;
    pgcw_watcher *w = new_watcher();
    pred_ctx pc = {0};
    pgcw_strategy_opts small = {
        .predicate = never, .predicate_ctx = &pc, .queue_capacity = 3};
    pgcw_strategy_opts big = {.predicate = never, .predicate_ctx = &pc};
    pgcw_strategy *s = new_strategy(w, &small);
    pgcw_strategy *other = new_strategy(w, &big);
    uint64_t g = pgcw_strategy_generation(s);
    uint64_t g_other = pgcw_strategy_generation(other);

    for (int i = 0; i < 10; i++)
        send(w, I, "t");
    assert_int_not_equal(pgcw_strategy_generation(s), g);
    assert_int_equal(pgcw_strategy_generation(other), g_other);
    assert_true(pgcw_strategy_clear(s)); /* the events that fit, then the gap */
    assert_int_equal(pgcw_sub_pending(pgcw_strategy_sub(s)), 0);
    assert_false(pgcw_strategy_clear(s));
    assert_false(pgcw_strategy_clear(other));
    assert_int_equal(pgcw_sub_pending(pgcw_strategy_sub(other)), 0);

    pgcw_strategy_free(other);
    pgcw_strategy_free(s);
    pgcw_watcher_free(w);
}

/* Many threads draining one strategy while events arrive: each event is folded
 * in exactly once (window of one: every event is a clear). */
#define PRODUCED 3000
#define CONSUMERS 3

typedef struct race {
    pgcw_strategy *s;
    atomic_int clears;
    atomic_bool stop;
} race;

static void *drain_thread(void *arg)
{
    race *r = arg;
    while (!atomic_load(&r->stop))
        if (pgcw_strategy_clear(r->s))
            atomic_fetch_add(&r->clears, 1);
    return NULL;
}

static void run_race(pgcw_watcher *w, const pgcw_strategy_opts *o)
{
    race r = {.s = new_strategy(w, o)};
    pthread_t t[CONSUMERS];
    for (int i = 0; i < CONSUMERS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, drain_thread, &r), 0);
    /* For Timed (interval 1 us): each event is sent 2 us after the previous one
     * and the first 10 us after creation, so every event clears, but only if the
     * callers fold them in queue order. */
    int64_t start = pgcw__real_us() + 10;
    for (int i = 0; i < PRODUCED; i++)
        send_at(w, I, "t", start + 2 * i);
    int64_t deadline = pgcw__mono_us() + 30 * 1000000;
    while (atomic_load(&r.clears) < PRODUCED && pgcw__mono_us() < deadline)
        pgcw__sleep_us(1000);
    atomic_store(&r.stop, true);
    for (int i = 0; i < CONSUMERS; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(atomic_load(&r.clears), PRODUCED);
    assert_int_equal(pgcw_sub_pending(pgcw_strategy_sub(r.s)), 0);
    assert_false(pgcw_strategy_clear(r.s));
    pgcw_strategy_free(r.s);
}

static void test_concurrent_callers(void **state)
{
    (void)state;
    pgcw_watcher *w = new_watcher();
    pgcw_op one[] = {I};
    const pgcw_strategy_opts opts[] = {
        {.queue_capacity = PRODUCED + 8},
        {.kind = PGCW_STRATEGY_WINDOWED,
         .window = one,
         .window_len = 1,
         .queue_capacity = PRODUCED + 8},
        {.kind = PGCW_STRATEGY_TIMED, .interval_us = 1, .queue_capacity = PRODUCED + 8},
    };
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++)
        run_race(w, &opts[i]);
    pgcw_watcher_free(w);
}

/* A schema change clears whatever the strategy: Greedy without asking its
 * predicate, Windowed (restarting its history), Timed inside its interval. */
static void test_schema_event_clears_every_strategy(void **state)
{
    (void)state;
    pgcw_watcher *w = new_watcher();
    pred_ctx pc = {.table = "never"};
    pgcw_op window[] = {I, U};
    pgcw_strategy_opts og = {.predicate = table_is, .predicate_ctx = &pc};
    pgcw_strategy_opts ow = {
        .kind = PGCW_STRATEGY_WINDOWED, .window = window, .window_len = 2};
    pgcw_strategy_opts ot = {.kind = PGCW_STRATEGY_TIMED,
                             .interval_us = (int64_t)3600 * 1000000};
    pgcw_strategy *g = new_strategy(w, &og), *win = new_strategy(w, &ow),
                  *t = new_strategy(w, &ot);

    send(w, I, "items");
    assert_false(pgcw_strategy_clear(g));
    assert_false(pgcw_strategy_clear(win));
    assert_false(pgcw_strategy_clear(t));
    assert_int_equal(atomic_load(&pc.calls), 1);

    send_ddl(w, "items");
    assert_true(pgcw_strategy_clear(g));
    assert_int_equal(atomic_load(&pc.calls), 1); /* not consulted */
    assert_true(pgcw_strategy_clear(win));
    assert_true(pgcw_strategy_clear(t));

    /* The I before the schema event and the U after it are not one sequence. */
    send(w, U, "items");
    assert_false(pgcw_strategy_clear(win));
    send(w, I, "items");
    send(w, U, "items");
    assert_true(pgcw_strategy_clear(win));

    pgcw_strategy_free(g);
    pgcw_strategy_free(win);
    pgcw_strategy_free(t);
    pgcw_watcher_free(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_invalid_options),
        cmocka_unit_test(test_accessors_and_health),
        cmocka_unit_test(test_greedy_any_event),
        cmocka_unit_test(test_greedy_predicate),
        cmocka_unit_test(test_windowed_exact_sequence),
        cmocka_unit_test(test_windowed_overlapping),
        cmocka_unit_test(test_timed_explicit_sent_at),
        cmocka_unit_test(test_deadline_max_events),
        cmocka_unit_test(test_deadline_max_time),
        cmocka_unit_test(test_gap_clears_every_strategy),
        cmocka_unit_test(test_windowed_gap_resets_history),
        cmocka_unit_test(test_overflow_gap),
        cmocka_unit_test(test_concurrent_callers),
        cmocka_unit_test(test_schema_event_clears_every_strategy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
