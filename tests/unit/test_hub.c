/*
 * test_hub.c - the watcher as a hub, without a server: health is every source's
 * (a second source, made here through the test hook, stands in for the logical
 * decoding and polling sources to come), one gap per loss of health and one epoch
 * step per recovery whatever the number of sources, a permanent failure ending
 * pgcw_watcher_wait_healthy() at once, and sinks: every event and gap, before any
 * queue, in registration order, beyond one delivery chunk, freed from their own
 * callback, from another sink's, or from another thread while deliveries run.
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

#include <cmocka.h>

#include <pgcachewatch/pgcachewatch.h>

#include "pgcw_testhook.h"

/* --- a source driven by the test ---------------------------------------------------- */

typedef struct fake_source {
    pgcw__source base;
    atomic_int steps;
    atomic_bool fail_permanently; /* the next step reports a permanent failure */
} fake_source;

static void fake_step(pgcw__source *s, int revents)
{
    (void)revents;
    fake_source *f = (fake_source *)s;
    atomic_fetch_add(&f->steps, 1);
    if (atomic_exchange(&f->fail_permanently, false)) {
        s->hub_ops->error(s->hub, s,
                          "could not connect: role \"x\" does not exist "
                          "(SQLSTATE 28000)");
        s->hub_ops->unhealthy(s->hub, s, false, true);
    }
}

static int fake_fd(const pgcw__source *s)
{
    (void)s;
    return -1;
}

static int fake_events(const pgcw__source *s)
{
    (void)s;
    return 0;
}

static int64_t fake_deadline(const pgcw__source *s)
{
    (void)s;
    return pgcw__deadline_in_ms(5); /* step often: the test scripts what happens */
}

static void fake_close(pgcw__source *s)
{
    s->hub_ops->unhealthy(s->hub, s, false, false);
}

static int fake_pid(const pgcw__source *s)
{
    (void)s;
    return 0;
}

static void fake_free(pgcw__source *s)
{
    free(s);
}

static const pgcw__source_vt fake_vt = {
    .name = "fake",
    .step = fake_step,
    .fd = fake_fd,
    .events = fake_events,
    .deadline_us = fake_deadline,
    .close = fake_close,
    .backend_pid = fake_pid,
    .free = fake_free,
};

static fake_source *add_fake(pgcw_watcher *w)
{
    fake_source *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->base.vt = &fake_vt;
    assert_int_equal(pgcw__watcher_add_source(w, &f->base), PGCW_OK);
    return f;
}

static void healthy(pgcw__source *s)
{
    s->hub_ops->healthy(s->hub, s);
}

static void lost(pgcw__source *s)
{
    s->hub_ops->unhealthy(s->hub, s, true, false);
}

/* A watcher whose LISTEN source (sources[0]) never connects (nothing drives it
 * toward a server here: the tests call the hub's operations themselves). */
static pgcw_watcher *new_watcher(void)
{
    pgcw_conn_opts co = {.conninfo = "host=/nonexistent/pgcw port=1",
                         .reconnect_min_ms = 60000};
    pgcw_watcher *w = NULL;
    assert_int_equal(pgcw_watcher_new(NULL, &co, &w), PGCW_OK);
    return w;
}

static pgcw_sub *new_sub(pgcw_watcher *w)
{
    pgcw_sub *s = NULL;
    assert_int_equal(pgcw_sub_new(w, NULL, &s), PGCW_OK);
    return s;
}

static void expect_gap(pgcw_sub *s)
{
    const pgcw_event *e = NULL;
    assert_int_equal(pgcw_sub_try_get(s, &e), PGCW_OK);
    assert_int_equal(e->kind, PGCW_EVENT_GAP);
    assert_int_equal(e->gap_reason, PGCW_GAP_DISCONNECTED);
    pgcw_event_free(e);
}

/* --- sinks that count ----------------------------------------------------------------
 */

typedef struct counter {
    atomic_int events, gaps, keys;
    pgcw_sub *queue;         /* optional: must not have the event yet */
    atomic_int queue_had_it; /* ... and how often it did */
    int order[64];           /* registration order check */
    atomic_int *order_at;
    int id;
    pgcw_sink *self; /* free_self: frees itself on its first event */
    bool free_self;
    pgcw_sink *victim;     /* frees this other sink on its first event */
    atomic_bool freed;     /* set by whoever freed this counter's sink */
    atomic_int after_free; /* calls seen after pgcw_sink_free returned */
} counter;

static void count_sink(void *ctx, const pgcw_event *e)
{
    counter *c = ctx;
    if (atomic_load(&c->freed))
        atomic_fetch_add(&c->after_free, 1);
    atomic_fetch_add(&c->events, 1);
    if (e->kind == PGCW_EVENT_GAP)
        atomic_fetch_add(&c->gaps, 1);
    int keys = e->kind == PGCW_EVENT_KEY ? atomic_fetch_add(&c->keys, 1) + 1 : 0;
    /* The queue holds the earlier key events, never this one yet. */
    if (c->queue && keys && pgcw_sub_pending(c->queue) >= (size_t)keys)
        atomic_fetch_add(&c->queue_had_it, 1);
    if (c->order_at) {
        int at = atomic_fetch_add(c->order_at, 1);
        if (at < 64)
            c->order[0] = at;
    }
    if (c->free_self && c->self) {
        pgcw_sink *s = c->self;
        c->self = NULL;
        pgcw_sink_free(s);
    }
    if (c->victim) {
        pgcw_sink *v = c->victim;
        c->victim = NULL;
        pgcw_sink_free(v);
    }
}

static pgcw_sink *new_sink(pgcw_watcher *w, counter *c)
{
    pgcw_sink_opts o = {.fn = count_sink, .ctx = c};
    pgcw_sink *s = NULL;
    assert_int_equal(pgcw_sink_new(w, &o, &s), PGCW_OK);
    return s;
}

static void dispatch_key(pgcw_watcher *w, const char *key)
{
    const pgcw_event *e = NULL;
    assert_int_equal(pgcw_event_new_key("c", PGCW_OP_UPDATE, key, strlen(key), 1, &e),
                     PGCW_OK);
    assert_int_equal(pgcw_watcher_dispatch(w, e), PGCW_OK);
    pgcw_event_free(e);
}

/* --- tests -----------------------------------------------------------------------------
 */

static void test_healthy_when_every_source_is(void **state)
{
    (void)state;
    pgcw_watcher *w = new_watcher();
    pgcw__source *listen = w->sources[0];
    fake_source *b = add_fake(w), *c = add_fake(w);
    pgcw_sub *s = new_sub(w);
    counter cs = {0};
    pgcw_sink *sink = new_sink(w, &cs);

    healthy(listen);
    healthy(&b->base);
    assert_false(pgcw_watcher_healthy(w));
    assert_int_equal(pgcw_watcher_epoch(w), 0);
    healthy(&c->base);
    assert_true(pgcw_watcher_healthy(w));
    assert_int_equal(pgcw_watcher_epoch(w), 1);
    healthy(&c->base); /* again: no change */
    assert_int_equal(pgcw_watcher_epoch(w), 1);
    assert_int_equal(pgcw_sub_pending(s), 0);

    /* One source lost: unhealthy, one gap to every queue and sink ... */
    lost(&b->base);
    assert_false(pgcw_watcher_healthy(w));
    assert_int_equal(pgcw_sub_pending(s), 1);
    assert_int_equal(atomic_load(&cs.gaps), 1);
    /* ... and a second loss while unhealthy adds none: nothing was cached since. */
    lost(listen);
    assert_int_equal(pgcw_sub_pending(s), 1);
    assert_int_equal(atomic_load(&cs.gaps), 1);
    expect_gap(s);

    /* Back only when both are. */
    healthy(&b->base);
    assert_false(pgcw_watcher_healthy(w));
    healthy(listen);
    assert_true(pgcw_watcher_healthy(w));
    assert_int_equal(pgcw_watcher_epoch(w), 2);

    pgcw_watcher_stats st;
    pgcw_watcher_stats_get(w, &st);
    assert_int_equal(st.gaps, 1);
    assert_int_equal(st.sink_calls, 1);

    /* The hook moves every source at once. */
    pgcw__watcher_set_healthy(w, false);
    assert_false(pgcw_watcher_healthy(w));
    pgcw__watcher_set_healthy(w, true);
    assert_true(pgcw_watcher_healthy(w));
    assert_int_equal(pgcw_watcher_epoch(w), 3);
    expect_gap(s);

    /* Stopping closes every source: one gap. */
    assert_int_equal(pgcw_watcher_stop(w), PGCW_OK);
    assert_false(pgcw_watcher_healthy(w));
    expect_gap(s);
    assert_int_equal(pgcw_sub_pending(s), 0);
    assert_int_equal(atomic_load(&cs.gaps), 3);

    pgcw_sink_free(sink);
    pgcw_sub_free(s);
    pgcw_watcher_free(w);
}

static void test_permanent_failure_ends_the_wait(void **state)
{
    (void)state;
    for (int threaded = 0; threaded < 2; threaded++) {
        pgcw_watcher *w = new_watcher();
        fake_source *b = add_fake(w);
        if (threaded)
            assert_int_equal(pgcw_watcher_start(w), PGCW_OK);
        /* A transient state times out ... */
        int64_t t0 = pgcw__mono_us();
        assert_int_equal(pgcw_watcher_wait_healthy(w, 100), PGCW_ETIMEDOUT);
        assert_true(pgcw__mono_us() - t0 >= 100000);
        /* ... a permanent failure ends the wait at once, with its message. */
        atomic_store(&b->fail_permanently, true);
        t0 = pgcw__mono_us();
        assert_int_equal(pgcw_watcher_wait_healthy(w, 30000), PGCW_ECONNECT);
        assert_true(pgcw__mono_us() - t0 < 10000000);
        assert_non_null(strstr(pgcw_watcher_errmsg(w), "SQLSTATE 28000"));
        assert_true(atomic_load(&b->steps) > 0);
        pgcw_watcher_free(w);
    }
}

static void test_sinks_see_everything_first(void **state)
{
    (void)state;
    pgcw_watcher *w = new_watcher();
    pgcw__watcher_set_healthy(w, true);
    pgcw_sub *s = new_sub(w);
    counter a = {.queue = s};
    pgcw_sink *sa = new_sink(w, &a);
    dispatch_key(w, "k1");
    dispatch_key(w, "k2");
    assert_int_equal(atomic_load(&a.keys), 2);
    assert_int_equal(atomic_load(&a.queue_had_it), 0); /* sinks run before queues */
    assert_int_equal(pgcw_sub_pending(s), 2);

    /* A gap, dispatched or from a loss, reaches sinks too. */
    const pgcw_event *g = NULL;
    assert_int_equal(pgcw_event_new_gap(NULL, PGCW_GAP_OVERFLOW, 3, 1, &g), PGCW_OK);
    assert_int_equal(pgcw_watcher_dispatch(w, g), PGCW_OK);
    pgcw_event_free(g);
    pgcw__watcher_set_healthy(w, false);
    assert_int_equal(atomic_load(&a.gaps), 2);
    pgcw_watcher_stats st;
    pgcw_watcher_stats_get(w, &st);
    assert_int_equal(st.sink_calls, 4);

    pgcw_sink_opts bad = {0};
    pgcw_sink *none = (pgcw_sink *)1;
    assert_int_equal(pgcw_sink_new(w, &bad, &none), PGCW_EINVAL);
    assert_null(none);
    assert_int_equal(pgcw_sink_new(NULL, &bad, &none), PGCW_EINVAL);
    assert_int_equal(pgcw_sink_new(w, NULL, &none), PGCW_EINVAL);
    pgcw_sink_free(NULL);
    pgcw_sink_free(sa);
    pgcw_sub_free(s);
    pgcw_watcher_free(w);
}

/* More sinks than one delivery pins at a time: all of them, in order, every event. */
static void test_many_sinks_in_order(void **state)
{
    (void)state;
    enum { N = 40 };
    pgcw_watcher *w = new_watcher();
    static counter c[N];
    pgcw_sink *s[N];
    atomic_int next = 0;
    for (int i = 0; i < N; i++) {
        memset(&c[i], 0, sizeof c[i]);
        c[i].order_at = &next;
        s[i] = new_sink(w, &c[i]);
    }
    dispatch_key(w, "k");
    for (int i = 0; i < N; i++) {
        assert_int_equal(atomic_load(&c[i].events), 1);
        assert_int_equal(c[i].order[0], i);
    }
    for (int i = 0; i < N; i++)
        pgcw_sink_free(s[i]);
    pgcw_watcher_free(w);
}

static void test_free_from_callbacks(void **state)
{
    (void)state;
    pgcw_watcher *w = new_watcher();
    counter self = {.free_self = true}, killer = {0}, victim = {0};
    self.self = new_sink(w, &self);
    pgcw_sink *k = new_sink(w, &killer);
    pgcw_sink *v = new_sink(w, &victim);
    killer.victim = v;
    dispatch_key(w, "k1"); /* self frees itself; killer frees victim (after it) */
    dispatch_key(w, "k2");
    assert_int_equal(atomic_load(&self.events), 1);
    assert_int_equal(atomic_load(&killer.events), 2);
    assert_int_equal(atomic_load(&victim.events), 0); /* freed before its turn */
    pgcw_sink_free(k);
    pgcw_watcher_free(w); /* every sink is gone: ASan/LSan check the rest */
}

/* A sink registered from inside a callback (no deadlock), seen from the next
 * delivery on. */
static pgcw_watcher *reg_w;
static pgcw_sink *reg_new;
static counter reg_counter;

static void registering_sink(void *ctx, const pgcw_event *e)
{
    (void)ctx;
    (void)e;
    if (!reg_new) {
        pgcw_sink_opts o = {.fn = count_sink, .ctx = &reg_counter};
        assert_int_equal(pgcw_sink_new(reg_w, &o, &reg_new), PGCW_OK);
    }
}

static void test_register_from_callback(void **state)
{
    (void)state;
    reg_w = new_watcher();
    reg_new = NULL;
    memset(&reg_counter, 0, sizeof reg_counter);
    pgcw_sink_opts o = {.fn = registering_sink};
    pgcw_sink *r = NULL;
    assert_int_equal(pgcw_sink_new(reg_w, &o, &r), PGCW_OK);
    dispatch_key(reg_w, "k1");
    dispatch_key(reg_w, "k2");
    assert_non_null(reg_new);
    assert_true(atomic_load(&reg_counter.events) >= 1);
    pgcw_sink_free(reg_new);
    pgcw_sink_free(r);
    pgcw_watcher_free(reg_w);
}

/* Deliveries from several threads while another thread frees a sink: once
 * pgcw_sink_free() returns, its callback is not running and never runs again. */
typedef struct storm {
    pgcw_watcher *w;
    atomic_bool stop;
} storm;

static void *dispatcher(void *arg)
{
    storm *st = arg;
    while (!atomic_load(&st->stop))
        dispatch_key(st->w, "hot");
    return NULL;
}

static void test_free_while_delivering(void **state)
{
    (void)state;
    storm st = {.w = new_watcher()};
    pthread_t t[3];
    for (int i = 0; i < 3; i++)
        assert_int_equal(pthread_create(&t[i], NULL, dispatcher, &st), 0);
    for (int round = 0; round < 200; round++) {
        counter *c = calloc(1, sizeof *c);
        assert_non_null(c);
        pgcw_sink *s = new_sink(st.w, c);
        while (atomic_load(&c->events) < 3)
            pgcw__sleep_us(50);
        pgcw_sink_free(s);
        atomic_store(&c->freed, true);
        pgcw__sleep_us(200);
        assert_int_equal(atomic_load(&c->after_free), 0);
        free(c); /* a late callback would now touch freed memory: ASan */
    }
    atomic_store(&st.stop, true);
    for (int i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    pgcw_watcher_free(st.w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_healthy_when_every_source_is),
        cmocka_unit_test(test_permanent_failure_ends_the_wait),
        cmocka_unit_test(test_sinks_see_everything_first),
        cmocka_unit_test(test_many_sinks_in_order),
        cmocka_unit_test(test_free_from_callbacks),
        cmocka_unit_test(test_register_from_callback),
        cmocka_unit_test(test_free_while_delivering),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
