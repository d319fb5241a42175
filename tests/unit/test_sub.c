/*
 * test_sub.c - subscriber queues and fan-out without a server: order, overflow
 * gaps, capacity 1, blocking gets, many consumer threads, several subscribers,
 * add/remove while a producer runs, and the health hook (gaps + epoch).
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

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A change event whose payload carries seq as "part" (our payload format). */
static const pgcw_event *make_event(int seq)
{
    char payload[160];
    snprintf(payload, sizeof payload,
             "{\"operation\":\"update\",\"table\":\"t\",\"schema\":\"s\","
             "\"sent_at\":\"2024-05-01T12:00:00Z\",\"part\":%d}",
             seq);
    const pgcw_event *ev = NULL;
    assert_int_equal(pgcw_event_parse(PGCW_FORMAT_TABLE_CHANGE, "ch", payload,
                                      strlen(payload), 0, &ev),
                     PGCW_OK);
    return ev;
}

static int seq_of(const pgcw_event *ev)
{
    assert_int_equal(ev->kind, PGCW_EVENT_CHANGE);
    const char *p = strstr(ev->payload, "\"part\":");
    assert_non_null(p);
    return atoi(p + 7);
}

static void dispatch_seq(pgcw_watcher *w, int seq)
{
    const pgcw_event *ev = make_event(seq);
    assert_int_equal(pgcw_watcher_dispatch(w, ev), PGCW_OK);
    pgcw_event_free(ev);
}

static void expect_seq(pgcw_sub *s, int seq)
{
    const pgcw_event *ev = NULL;
    assert_int_equal(pgcw_sub_try_get(s, &ev), PGCW_OK);
    assert_int_equal(seq_of(ev), seq);
    pgcw_event_free(ev);
}

static void expect_gap(pgcw_sub *s, pgcw_gap_reason reason, uint64_t lost)
{
    const pgcw_event *ev = NULL;
    assert_int_equal(pgcw_sub_try_get(s, &ev), PGCW_OK);
    assert_int_equal(ev->kind, PGCW_EVENT_GAP);
    assert_int_equal(ev->gap_reason, reason);
    assert_int_equal(ev->gap_lost, lost);
    assert_null(ev->payload);
    pgcw_event_free(ev);
}

static void expect_empty(pgcw_sub *s)
{
    const pgcw_event *ev = (const pgcw_event *)1;
    assert_int_equal(pgcw_sub_try_get(s, &ev), PGCW_EAGAIN);
    assert_null(ev);
    assert_int_equal(pgcw_sub_pending(s), 0);
}

static pgcw_watcher *new_watcher(size_t capacity)
{
    pgcw_watcher_opts o = {.queue_capacity = capacity};
    pgcw_watcher *w = NULL;
    assert_int_equal(pgcw_watcher_new(&o, NULL, &w), PGCW_OK);
    return w;
}

static pgcw_sub *new_sub(pgcw_watcher *w, size_t capacity)
{
    pgcw_sub_opts o = {.capacity = capacity};
    pgcw_sub *s = NULL;
    assert_int_equal(pgcw_sub_new(w, &o, &s), PGCW_OK);
    assert_ptr_equal(pgcw_sub_watcher(s), w);
    return s;
}

static void test_new_validates(void **state)
{
    (void)state;
    pgcw_watcher *w = (pgcw_watcher *)1;
    const char *empty[] = {""};
    pgcw_watcher_opts o = {.channels = empty, .n_channels = 1};
    assert_int_equal(pgcw_watcher_new(&o, NULL, &w), PGCW_EINVAL);
    assert_null(w);
    char long_name[65];
    memset(long_name, 'a', 64);
    long_name[64] = '\0';
    const char *too_long[] = {"ok", long_name};
    o = (pgcw_watcher_opts){.channels = too_long, .n_channels = 2};
    assert_int_equal(pgcw_watcher_new(&o, NULL, &w), PGCW_EINVAL);
    const char *nulls[] = {NULL};
    o = (pgcw_watcher_opts){.channels = nulls, .n_channels = 1};
    assert_int_equal(pgcw_watcher_new(&o, NULL, &w), PGCW_EINVAL);
    o = (pgcw_watcher_opts){.channels = NULL, .n_channels = 1};
    assert_int_equal(pgcw_watcher_new(&o, NULL, &w), PGCW_EINVAL);
    assert_int_equal(pgcw_watcher_new(NULL, NULL, NULL), PGCW_EINVAL);

    long_name[63] = '\0'; /* 63 bytes is PostgreSQL's limit: accepted */
    const char *max_len[] = {long_name};
    o = (pgcw_watcher_opts){.channels = max_len, .n_channels = 1};
    assert_int_equal(pgcw_watcher_new(&o, NULL, &w), PGCW_OK);
    pgcw_watcher_free(w);

    assert_int_equal(pgcw_watcher_new(NULL, NULL, &w), PGCW_OK); /* all defaults */
    assert_false(pgcw_watcher_healthy(w));
    assert_int_equal(pgcw_watcher_epoch(w), 0);
    assert_int_equal(pgcw_watcher_backend_pid(w), 0);
    assert_string_equal(pgcw_watcher_errmsg(w), "");
    assert_int_equal(pgcw_watcher_fd(w), -1);
    assert_int_equal(pgcw_watcher_timeout_ms(w), 0); /* connect is due */
    assert_int_equal(pgcw_watcher_stop(w), PGCW_OK); /* idempotent, never started */
    pgcw_watcher_free(w);
    pgcw_watcher_free(NULL);
    pgcw_sub_free(NULL);
}

static void test_order_and_wraparound(void **state)
{
    (void)state;
    pgcw_watcher *w = new_watcher(4);
    pgcw_sub *s = new_sub(w, 0); /* the watcher's default: 4 */
    expect_empty(s);
    int next_in = 0, next_out = 0;
    for (int round = 0; round < 50; round++) {
        for (int i = 0; i < 3; i++)
            dispatch_seq(w, next_in++);
        assert_int_equal(pgcw_sub_pending(s), 3);
        for (int i = 0; i < 3; i++)
            expect_seq(s, next_out++);
        expect_empty(s);
    }
    assert_int_equal(pgcw_sub_gap_count(s), 0);
    pgcw_watcher_stats stats;
    pgcw_watcher_stats_get(w, &stats);
    assert_int_equal(stats.gaps, 0);
    pgcw_sub_free(s);
    pgcw_watcher_free(w);
}

static void test_overflow_gap_then_newer(void **state)
{
    (void)state;
    pgcw_watcher *w = new_watcher(0);
    pgcw_sub *s = new_sub(w, 3);
    for (int i = 0; i < 10; i++)
        dispatch_seq(w, i);
    /* The three that fit, then one gap for the seven dropped. */
    assert_int_equal(pgcw_sub_pending(s), 4);
    assert_int_equal(pgcw_sub_gap_count(s), 1);
    expect_seq(s, 0);
    dispatch_seq(w, 10); /* still full: the unread gap grows */
    assert_int_equal(pgcw_sub_gap_count(s), 1);
    expect_seq(s, 1);
    dispatch_seq(w, 11); /* room again: queued after the gap */
    expect_seq(s, 2);
    expect_gap(s, PGCW_GAP_OVERFLOW, 8);
    expect_seq(s, 11);
    expect_empty(s);

    /* A second overflow is a second gap. */
    for (int i = 20; i < 25; i++)
        dispatch_seq(w, i);
    assert_int_equal(pgcw_sub_gap_count(s), 2);
    expect_seq(s, 20);
    expect_seq(s, 21);
    expect_seq(s, 22);
    expect_gap(s, PGCW_GAP_OVERFLOW, 2);
    expect_empty(s);

    pgcw_watcher_stats stats;
    pgcw_watcher_stats_get(w, &stats);
    assert_int_equal(stats.gaps, 2);
    pgcw_sub_free(s);
    pgcw_watcher_free(w);
}

static void test_capacity_one(void **state)
{
    (void)state;
    pgcw_watcher *w = new_watcher(0);
    pgcw_sub *s = new_sub(w, 1);
    dispatch_seq(w, 1);
    dispatch_seq(w, 2);
    dispatch_seq(w, 3);
    assert_int_equal(pgcw_sub_pending(s), 2);
    expect_seq(s, 1);
    dispatch_seq(w, 4); /* the gap alone fills the queue: it grows */
    expect_gap(s, PGCW_GAP_OVERFLOW, 3);
    dispatch_seq(w, 5);
    expect_seq(s, 5);
    dispatch_seq(w, 6);
    dispatch_seq(w, 7);
    expect_seq(s, 6);
    expect_gap(s, PGCW_GAP_OVERFLOW, 1);
    expect_empty(s);
    assert_int_equal(pgcw_sub_gap_count(s), 2);
    pgcw_sub_free(s);
    pgcw_watcher_free(w);
}

static void test_get_timeout(void **state)
{
    (void)state;
    pgcw_watcher *w = new_watcher(0);
    pgcw_sub *s = new_sub(w, 0);
    const pgcw_event *ev = NULL;
    int64_t t0 = now_ms();
    assert_int_equal(pgcw_sub_get(s, 200, &ev), PGCW_ETIMEDOUT);
    int64_t took = now_ms() - t0;
    assert_null(ev);
    assert_true(took >= 200);
    assert_true(took < 1200); /* generous: the machine is shared */
    assert_int_equal(pgcw_sub_get(s, 0, &ev), PGCW_EAGAIN);
    dispatch_seq(w, 7); /* a huge timeout must not overflow into "already passed" */
    assert_int_equal(pgcw_sub_get(s, INT64_MAX, &ev), PGCW_OK);
    assert_int_equal(seq_of(ev), 7);
    pgcw_event_free(ev);
    assert_int_equal(pgcw_sub_get(NULL, 0, &ev), PGCW_EINVAL);
    assert_int_equal(pgcw_sub_get(s, 0, NULL), PGCW_EINVAL);
    pgcw_sub_free(s);
    pgcw_watcher_free(w);
}

struct delayed {
    pgcw_watcher *w;
    pgcw_sub *s;
};

static void *dispatch_when_waiting(void *arg)
{
    struct delayed *d = arg;
    /* Dispatch only once the consumer is really blocked, so the wakeup path is the
     * one under test (polling a condition with a deadline, not a sleep). */
    int64_t until = now_ms() + 10000;
    for (;;) {
        pthread_mutex_lock(&d->s->mu);
        int waiters = d->s->waiters;
        pthread_mutex_unlock(&d->s->mu);
        if (waiters > 0 || now_ms() > until)
            break;
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    dispatch_seq(d->w, 42);
    return NULL;
}

static void test_blocking_get_wakes(void **state)
{
    (void)state;
    pgcw_watcher *w = new_watcher(0);
    pgcw_sub *s = new_sub(w, 0);
    struct delayed d = {w, s};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, dispatch_when_waiting, &d), 0);
    const pgcw_event *ev = NULL;
    assert_int_equal(pgcw_sub_get(s, 10000, &ev), PGCW_OK);
    assert_int_equal(seq_of(ev), 42);
    pgcw_event_free(ev);
    pthread_join(t, NULL);

    /* Forever (< 0) also wakes. */
    assert_int_equal(pthread_create(&t, NULL, dispatch_when_waiting, &d), 0);
    assert_int_equal(pgcw_sub_get(s, -1, &ev), PGCW_OK);
    assert_int_equal(seq_of(ev), 42);
    pgcw_event_free(ev);
    pthread_join(t, NULL);
    pgcw_sub_free(s);
    pgcw_watcher_free(w);
}

#define MC_EVENTS 20000
#define MC_CONSUMERS 4

struct mc {
    pgcw_sub *s;
    atomic_int taken;
    atomic_uchar seen[MC_EVENTS];
    atomic_int dups;
};

static void *consumer(void *arg)
{
    struct mc *m = arg;
    while (atomic_load(&m->taken) < MC_EVENTS) {
        const pgcw_event *ev = NULL;
        pgcw_status st = pgcw_sub_get(m->s, 20, &ev);
        if (st == PGCW_ETIMEDOUT)
            continue;
        if (st != PGCW_OK || ev->kind != PGCW_EVENT_CHANGE) {
            atomic_fetch_add(&m->dups, 1000000); /* reported below */
            pgcw_event_free(ev);
            continue;
        }
        const char *p = strstr(ev->payload, "\"part\":");
        int seq = p ? atoi(p + 7) : -1;
        if (seq < 0 || seq >= MC_EVENTS || atomic_exchange(&m->seen[seq], 1))
            atomic_fetch_add(&m->dups, 1);
        atomic_fetch_add(&m->taken, 1);
        pgcw_event_free(ev);
    }
    return NULL;
}

static void test_many_consumers(void **state)
{
    (void)state;
    pgcw_watcher *w = new_watcher(0);
    pgcw_sub *s = new_sub(w, 256);
    struct mc *m = calloc(1, sizeof *m);
    assert_non_null(m);
    m->s = s;
    pthread_t t[MC_CONSUMERS];
    for (int i = 0; i < MC_CONSUMERS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, consumer, m), 0);
    int64_t until = now_ms() + 60000;
    for (int i = 0; i < MC_EVENTS; i++) {
        /* Flow control by condition: never overflow, so any loss would be a bug. */
        while (pgcw_sub_pending(s) >= 200 && now_ms() < until) {
            struct timespec ts = {0, 50000};
            nanosleep(&ts, NULL);
        }
        dispatch_seq(w, i);
    }
    for (int i = 0; i < MC_CONSUMERS; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(atomic_load(&m->dups), 0);
    assert_int_equal(atomic_load(&m->taken), MC_EVENTS);
    for (int i = 0; i < MC_EVENTS; i++)
        assert_int_equal(atomic_load(&m->seen[i]), 1);
    assert_int_equal(pgcw_sub_gap_count(s), 0);
    expect_empty(s);
    free(m);
    pgcw_sub_free(s);
    pgcw_watcher_free(w);
}

static void test_several_subscribers(void **state)
{
    (void)state;
    pgcw_watcher *w = new_watcher(16);
    pgcw_sub *a = new_sub(w, 0), *b = new_sub(w, 0), *c = new_sub(w, 0);
    dispatch_seq(w, 1);
    const pgcw_event *ea = NULL, *eb = NULL, *ec = NULL;
    assert_int_equal(pgcw_sub_try_get(a, &ea), PGCW_OK);
    assert_int_equal(pgcw_sub_try_get(b, &eb), PGCW_OK);
    assert_int_equal(pgcw_sub_try_get(c, &ec), PGCW_OK);
    assert_int_equal(seq_of(ea), 1);
    assert_int_equal(seq_of(eb), 1);
    assert_int_equal(seq_of(ec), 1);
    /* Each consumer owns what it got: freeing in any order is fine (ASan checks). */
    pgcw_event_free(eb);
    pgcw_event_free(ea);
    assert_string_equal(ec->table, "t");
    pgcw_event_free(ec);

    /* A subscriber freed with events still queued; the others go on. */
    dispatch_seq(w, 2);
    pgcw_sub_free(b);
    dispatch_seq(w, 3);
    expect_seq(a, 2);
    expect_seq(a, 3);
    expect_seq(c, 2);
    expect_seq(c, 3);
    expect_empty(a);
    expect_empty(c);

    /* A subscriber only sees events from its creation on. */
    pgcw_sub *d = new_sub(w, 0);
    expect_empty(d);
    dispatch_seq(w, 4);
    expect_seq(d, 4);

    /* Dispatched gaps reach everyone and count. */
    const pgcw_event *gap = NULL;
    assert_int_equal(pgcw_event_new_gap(NULL, PGCW_GAP_OVERFLOW, 5, 0, &gap), PGCW_OK);
    assert_int_equal(pgcw_watcher_dispatch(w, gap), PGCW_OK);
    pgcw_event_free(gap);
    expect_seq(a, 4);
    expect_gap(a, PGCW_GAP_OVERFLOW, 5);
    expect_seq(c, 4);
    expect_gap(c, PGCW_GAP_OVERFLOW, 5);
    expect_gap(d, PGCW_GAP_OVERFLOW, 5);
    assert_int_equal(pgcw_sub_gap_count(a), 1);
    assert_int_equal(pgcw_watcher_dispatch(w, NULL), PGCW_EINVAL);

    pgcw_sub_free(a);
    pgcw_sub_free(c);
    pgcw_sub_free(d);
    pgcw_watcher_free(w);
}

struct churn {
    pgcw_watcher *w;
    atomic_bool done;
    int sent;
};

#define CHURN_EVENTS 30000

static void *producer(void *arg)
{
    struct churn *c = arg;
    for (; c->sent < CHURN_EVENTS; c->sent++)
        dispatch_seq(c->w, c->sent);
    atomic_store(&c->done, true);
    return NULL;
}

static void test_add_remove_while_producing(void **state)
{
    (void)state;
    struct churn c = {.w = new_watcher(0)};
    pgcw_sub *steady = new_sub(c.w, CHURN_EVENTS);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, producer, &c), 0);
    while (!atomic_load(&c.done)) {
        pgcw_sub *tmp = new_sub(c.w, 8);
        const pgcw_event *ev = NULL;
        if (pgcw_sub_try_get(tmp, &ev) == PGCW_OK)
            pgcw_event_free(ev);
        pgcw_sub_free(tmp);
    }
    pthread_join(t, NULL);
    /* The steady subscriber saw every event in order, none lost. */
    assert_int_equal(pgcw_sub_pending(steady), CHURN_EVENTS);
    for (int i = 0; i < c.sent; i++)
        expect_seq(steady, i);
    assert_int_equal(pgcw_sub_gap_count(steady), 0);
    pgcw_sub_free(steady);
    pgcw_watcher_free(c.w);
}

static void test_health_hook(void **state)
{
    (void)state;
    pgcw_watcher *w = new_watcher(0);
    pgcw_sub *a = new_sub(w, 0), *b = new_sub(w, 0);
    assert_false(pgcw_watcher_healthy(w));
    pgcw__watcher_set_healthy(w, false); /* already unhealthy: nothing happens */
    assert_int_equal(pgcw_sub_gap_count(a), 0);

    pgcw__watcher_set_healthy(w, true);
    assert_true(pgcw_watcher_healthy(w));
    assert_int_equal(pgcw_watcher_epoch(w), 1);
    pgcw__watcher_set_healthy(w, true);
    assert_int_equal(pgcw_watcher_epoch(w), 1);
    assert_int_equal(pgcw_watcher_wait_healthy(w, 0), PGCW_OK);

    dispatch_seq(w, 1);
    pgcw__watcher_set_healthy(w, false);
    assert_false(pgcw_watcher_healthy(w));
    assert_int_equal(pgcw_watcher_epoch(w), 1);
    assert_int_equal(pgcw_sub_gap_count(a), 1);
    assert_int_equal(pgcw_sub_gap_count(b), 1);
    expect_seq(a, 1);
    const pgcw_event *ev = NULL;
    assert_int_equal(pgcw_sub_try_get(a, &ev), PGCW_OK);
    assert_int_equal(ev->kind, PGCW_EVENT_GAP);
    assert_int_equal(ev->gap_reason, PGCW_GAP_DISCONNECTED);
    assert_int_equal(ev->epoch, 1);
    pgcw_event_free(ev);
    expect_seq(b, 1);
    expect_gap(b, PGCW_GAP_DISCONNECTED, 0);

    pgcw__watcher_set_healthy(w, true);
    assert_int_equal(pgcw_watcher_epoch(w), 2);
    pgcw_watcher_stats stats;
    pgcw_watcher_stats_get(w, &stats);
    assert_int_equal(stats.connects, 2);
    assert_int_equal(stats.disconnects, 1);
    assert_int_equal(stats.gaps, 2);
    pgcw_sub_free(a);
    pgcw_sub_free(b);
    pgcw_watcher_free(w);
}

static void test_disconnect_gap_on_full_queue(void **state)
{
    (void)state;
    pgcw_watcher *w = new_watcher(0);
    pgcw_sub *s = new_sub(w, 2);
    pgcw__watcher_set_healthy(w, true);
    for (int i = 0; i < 5; i++)
        dispatch_seq(w, i); /* 0, 1, gap(3): every slot in use */
    pgcw__watcher_set_healthy(w, false);
    /* No room for a second gap: the unread one now says "disconnected". */
    assert_int_equal(pgcw_sub_gap_count(s), 2);
    assert_int_equal(pgcw_sub_pending(s), 3);
    expect_seq(s, 0);
    expect_seq(s, 1);
    expect_gap(s, PGCW_GAP_DISCONNECTED, 3);
    expect_empty(s);

    /* With room, a disconnect is its own gap after an overflow gap. */
    pgcw__watcher_set_healthy(w, true);
    for (int i = 0; i < 4; i++)
        dispatch_seq(w, i);
    expect_seq(s, 0);
    pgcw__watcher_set_healthy(w, false);
    expect_seq(s, 1);
    expect_gap(s, PGCW_GAP_OVERFLOW, 2);
    expect_gap(s, PGCW_GAP_DISCONNECTED, 0);
    expect_empty(s);
    pgcw_sub_free(s);
    pgcw_watcher_free(w);
}

/* No server: a socket directory that does not exist fails at once, every time. */
static void test_bad_dsn_times_out(void **state)
{
    (void)state;
    pgcw_conn_opts co = {.conninfo = "host=/nonexistent/pgcw port=1 connect_timeout=2",
                         .reconnect_min_ms = 20,
                         .reconnect_max_ms = 40};
    pgcw_watcher *w = NULL;
    assert_int_equal(pgcw_watcher_new(NULL, &co, &w), PGCW_OK);
    int64_t t0 = now_ms();
    assert_int_equal(pgcw_watcher_wait_healthy(w, 300), PGCW_ETIMEDOUT);
    assert_true(now_ms() - t0 >= 300);
    assert_non_null(strstr(pgcw_watcher_errmsg(w), "could not connect"));
    assert_non_null(strstr(pgcw_watcher_errmsg(w), "/nonexistent/pgcw"));
    const char *msg = pgcw_watcher_errmsg(w);
    assert_true(msg[strlen(msg) - 1] != '\n'); /* libpq's trailing newline trimmed */
    /* Between attempts there is no fd, only a timeout. */
    assert_int_equal(pgcw_watcher_fd(w), -1);
    assert_true(pgcw_watcher_timeout_ms(w) <= 40);
    assert_int_equal(pgcw_watcher_run(w, 50), PGCW_OK);
    pgcw_watcher_stats stats;
    pgcw_watcher_stats_get(w, &stats);
    assert_int_equal(stats.connects, 0);
    assert_int_equal(stats.disconnects, 0);
    pgcw_watcher_free(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_validates),
        cmocka_unit_test(test_order_and_wraparound),
        cmocka_unit_test(test_overflow_gap_then_newer),
        cmocka_unit_test(test_capacity_one),
        cmocka_unit_test(test_get_timeout),
        cmocka_unit_test(test_blocking_get_wakes),
        cmocka_unit_test(test_many_consumers),
        cmocka_unit_test(test_several_subscribers),
        cmocka_unit_test(test_add_remove_while_producing),
        cmocka_unit_test(test_health_hook),
        cmocka_unit_test(test_disconnect_gap_on_full_queue),
        cmocka_unit_test(test_bad_dsn_times_out),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
