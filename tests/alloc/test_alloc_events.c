/*
 * test_alloc_events.c - allocation failure, for every N, on the event paths:
 * decoding each payload format, cloning, and the watcher's notification loop on a
 * real server. Each call returns PGCW_ENOMEM or succeeds, never anything else, and
 * nothing leaks (the suite runs this under ASan); an event the watcher cannot
 * allocate is a gap that every subscriber sees, never a silent loss.
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
#include "pgtest.h"

#define MAX_N 10000

static const struct {
    pgcw_payload_format format;
    const char *payload;
} payloads[] = {
    {PGCW_FORMAT_TABLE_CHANGE,
     "{\"operation\":\"update\",\"table\":\"t\",\"schema\":\"s\","
     "\"sent_at\":\"2024-05-01T12:34:56Z\"}"},
    {PGCW_FORMAT_TABLE_CHANGE,
     "{\"operation\":\"update\",\"table\":\"t\",\"schema\":\"s\","
     "\"sent_at\":\"2024-05-01T12:34:56Z\",\"pk\":[\"a\",\"b\"],"
     "\"keys\":[[1,\"x\"],[2,\"y\"]],\"part\":2}"},
    {PGCW_FORMAT_CACHE_KEY, "u42|70726f66696c653a37"},
    {PGCW_FORMAT_CACHE_KEY, "d7\x1fprofile:7"},
    {PGCW_FORMAT_AUTO, "{\"operation\":\"delete\",\"table\":\"t\","
                       "\"sent_at\":\"2024-05-01T12:34:56Z\"}"},
};

/* Fails the 1st, 2nd, ... allocation of one decode and clone until a run makes no
 * failure happen: then that run must have succeeded. */
static void test_decode_every_n(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof payloads / sizeof payloads[0]; i++) {
        const char *p = payloads[i].payload;
        unsigned long n = 1;
        for (; n < MAX_N; n++) {
            pgcw_event *e = NULL;
            const pgcw_event *copy = NULL;
            char why[160] = "";
            failalloc_arm(n, false);
            pgcw_status st = pgcw__event_decode(payloads[i].format, "ch", p, strlen(p),
                                                1700000000000000, &e, why, sizeof why);
            pgcw_status cst = st == PGCW_OK ? pgcw_event_clone(e, &copy) : PGCW_OK;
            bool fired = failalloc_fired();
            failalloc_arm(0, false);
            if (st != PGCW_OK && st != PGCW_ENOMEM)
                fail_msg("payload %zu, allocation %lu failed: %s (%s)", i, n,
                         pgcw_status_name(st), why);
            assert_true(st == PGCW_OK || e == NULL);
            assert_true(cst == PGCW_OK || cst == PGCW_ENOMEM);
            assert_true(st == PGCW_OK || fired);
            pgcw_event_free(copy);
            pgcw_event_free(e);
            if (!fired) {
                assert_int_equal(st, PGCW_OK);
                assert_int_equal(cst, PGCW_OK);
                break;
            }
        }
        assert_true(n > 1); /* at least one allocation was failed */
        assert_true(n < MAX_N);
    }
}

/* Drives w on this thread until cond(ctx) or 15 s. */
static bool drive_until(pgcw_watcher *w, bool (*cond)(void *), void *ctx)
{
    int64_t until = pgtest_now_ms() + 15000;
    while (!cond(ctx)) {
        if (pgtest_now_ms() > until)
            return false;
        pgcw_watcher_run(w, 10);
    }
    return true;
}

static bool is_healthy(void *w)
{
    return pgcw_watcher_healthy(w);
}

static bool has_pending(void *s)
{
    return pgcw_sub_pending(s) > 0;
}

/* The notification loop: the Nth allocation after a notification arrives fails,
 * for every N. The subscriber then gets the event or a gap (never nothing), and
 * the watcher is healthy again afterwards. */
static void test_watcher_every_n(void **state)
{
    (void)state;
    PGconn *conn = pgtest_connect();
    pgcw_conn_opts co = {.conninfo = pgtest_dsn()};
    const char *const channels[] = {"alloc_ch"};
    pgcw_watcher_opts wo = {.channels = channels, .n_channels = 1};
    pgcw_watcher *w = NULL;
    assert_int_equal(pgcw_watcher_new(&wo, &co, &w), PGCW_OK);
    pgcw_sub *sub = NULL;
    assert_int_equal(pgcw_sub_new(w, NULL, &sub), PGCW_OK);
    assert_true(drive_until(w, is_healthy, w));

    unsigned long n = 1, gaps = 0, events = 0;
    for (; n < 200; n++) {
        pgtest_exec(conn, "SELECT pg_notify('alloc_ch', 'u' || 7 || '|6b6579')");
        /* Wait for the notification to be readable, then fail within its handling. */
        pgtest_sleep_ms(20);
        failalloc_arm(n, false);
        pgcw_watcher_process(w);
        bool fired = failalloc_fired();
        failalloc_arm(0, false);
        if (!drive_until(w, has_pending, sub))
            fail_msg("allocation %lu failed: the subscriber saw neither event nor gap",
                     n);
        const pgcw_event *e = NULL;
        assert_int_equal(pgcw_sub_try_get(sub, &e), PGCW_OK);
        if (e->kind == PGCW_EVENT_GAP) {
            gaps++;
            assert_true(fired);
        } else {
            events++;
            assert_int_equal(e->kind, PGCW_EVENT_KEY);
        }
        pgcw_event_free(e);
        /* Drain whatever the reconnect brought, and be healthy again. */
        assert_true(drive_until(w, is_healthy, w));
        while (pgcw_sub_try_get(sub, &e) == PGCW_OK)
            pgcw_event_free(e);
        if (!fired)
            break;
    }
    assert_true(n < 200);
    assert_true(gaps >= 1); /* the event's own allocation failed at least once */
    assert_true(events >= 1);
    pgcw_sub_free(sub);
    pgcw_watcher_free(w);
    PQfinish(conn);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decode_every_n),
        cmocka_unit_test(test_watcher_every_n),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
