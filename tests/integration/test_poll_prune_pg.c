/*
 * test_poll_prune_pg.c - pruning the change log (docs/source_poll.md): rows
 * pruned before the poller read them are a PGCW_GAP_PRUNED gap and rows pruned
 * after are none; the poller prunes by age; two pollers prune one channel
 * together, each row once, with gaps where rows went missing, never holes.
 */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pgcachewatch/pgcachewatch.h>

#include "pgtest.h"
#include "polltest.h"

/* The prune function's name for POLLTEST_CHANNEL, quoted, from the catalog. */
static char *prune_call(PGconn *c, const char *arg)
{
    char *fn = pgtest_query_value(
        c, "SELECT quote_ident(proname) FROM pg_proc WHERE proname LIKE "
           "'fn_pgcachewatch_table_change_poll_events_log_prune'");
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT %s(%s)", fn, arg);
    free(fn);
    return strdup(sql);
}

/* Rows pruned after they were read are no gap; rows pruned before are one. */
static void test_pruned_unread_rows_are_a_gap(void **state)
{
    (void)state;
    PGconn *c = pgtest_connect();
    pgcw_install *in = polltest_install_items(c);
    pgcw_sub *sub = NULL;
    pgcw_watcher *w = polltest_start(0, &sub);
    char *prune = prune_call(c, "0");

    pgtest_exec(c, "INSERT INTO items VALUES (1, 'read, then pruned')");
    polltest_expect_next(sub, PGCW_OP_INSERT, "[1]");
    assert_int_equal(pgtest_query_int(c, prune), 1);
    pgtest_exec(c, "INSERT INTO items VALUES (2, 'after')");
    polltest_expect_next(sub, PGCW_OP_INSERT, "[2]"); /* no gap first */

    /* Away (closed, so it reads nothing) while rows come and go. */
    assert_int_equal(pgcw_watcher_stop(w), PGCW_OK);
    pgtest_exec(c, "INSERT INTO items VALUES (3, 'never read')");
    assert_int_equal(pgtest_query_int(c, prune), 2); /* [2] and [3] */
    pgtest_exec(c, "INSERT INTO items VALUES (4, 'kept')");
    assert_int_equal(pgcw_watcher_start(w), PGCW_OK);
    const pgcw_event *e = polltest_next(sub, NULL);
    assert_int_equal(e->kind, PGCW_EVENT_GAP);
    assert_int_equal(e->gap_reason, PGCW_GAP_DISCONNECTED); /* from the stop */
    pgcw_event_free(e);
    e = polltest_next(sub, NULL);
    assert_int_equal(e->kind, PGCW_EVENT_GAP);
    assert_int_equal(e->gap_reason, PGCW_GAP_PRUNED);
    pgcw_event_free(e);
    polltest_expect_next(sub, PGCW_OP_INSERT, "[4]");
    assert_int_equal(pgcw_sub_pending(sub), 0);

    free(prune);
    polltest_stop(w, sub);
    polltest_uninstall(in, c);
    PQfinish(c);
}

/* The poller prunes: with a retention of 1 ms, the rows it read leave the table. */
static void test_poller_prunes_by_age(void **state)
{
    (void)state;
    PGconn *c = pgtest_connect();
    pgcw_install *in = polltest_install_items(c);
    pgcw_sub *sub = NULL;
    pgcw_watcher *w = polltest_start(1, &sub);
    const char *count_sql =
        "SELECT count(*) FROM fn_pgcachewatch_table_change_poll_events_log";
    pgtest_exec(c, "INSERT INTO items VALUES (1, 'x'), (2, 'y')");
    /* At 1 ms the poller may prune the row before it reads it: then a gap says
     * so. Either way, never nothing. */
    const pgcw_event *e = polltest_next(sub, NULL);
    if (e->kind == PGCW_EVENT_GAP)
        assert_int_equal(e->gap_reason, PGCW_GAP_PRUNED);
    else
        assert_int_equal(e->n_keys, 2);
    pgcw_event_free(e);
    int64_t until = pgtest_now_ms() + POLLTEST_WAIT_MS;
    while (pgtest_query_int(c, count_sql) != 0) {
        if (pgtest_now_ms() > until)
            fail_msg("the poller did not prune the change log");
        pgtest_sleep_ms(10);
    }
    assert_true(
        pgtest_query_int(c, "SELECT pruned_rows FROM "
                            "fn_pgcachewatch_table_change_poll_events_log_pruned") >= 1);
    polltest_stop(w, sub);
    polltest_uninstall(in, c);
    PQfinish(c);
}

/* Two pollers on one channel both prune: each delivers every event or a pruned
 * gap in its place, and each row is pruned once. */
static void test_two_pollers_prune_together(void **state)
{
    (void)state;
    PGconn *c = pgtest_connect();
    pgcw_install *in = polltest_install_items(c);
    pgcw_sub *s1 = NULL, *s2 = NULL;
    pgcw_watcher *w1 = polltest_start(1, &s1), *w2 = polltest_start(1, &s2);
    enum { N = 40 };
    for (int i = 1; i <= N; i++) {
        char sql[64];
        snprintf(sql, sizeof sql, "INSERT INTO items VALUES (%d, 'x')", i);
        pgtest_exec(c, sql);
    }
    int64_t until = pgtest_now_ms() + POLLTEST_WAIT_MS;
    while (pgtest_query_int(
               c, "SELECT count(*) FROM fn_pgcachewatch_table_change_poll_events_log") !=
           0) {
        if (pgtest_now_ms() > until)
            fail_msg("the pollers did not prune");
        pgtest_sleep_ms(10);
    }
    /* Each row was pruned once. */
    assert_int_equal(
        pgtest_query_int(c, "SELECT pruned_rows FROM "
                            "fn_pgcachewatch_table_change_poll_events_log_pruned"),
        N);
    assert_int_equal(pgcw_watcher_stop(w1), PGCW_OK);
    assert_int_equal(pgcw_watcher_stop(w2), PGCW_OK);
    /* With 1 ms, one poller may prune rows before the other read them: what each
     * delivered is in order, and where rows are missing a pruned gap came first,
     * never a silent hole. */
    pgcw_sub *subs[2] = {s1, s2};
    for (int k = 0; k < 2; k++) {
        int next = 1;
        bool gap = false;
        const pgcw_event *e = NULL;
        while (pgcw_sub_try_get(subs[k], &e) == PGCW_OK) {
            if (e->kind == PGCW_EVENT_GAP) {
                gap = gap || e->gap_reason == PGCW_GAP_PRUNED;
            } else {
                int id = atoi(e->keys[0] + 1);
                if (id != next && !(gap && id > next))
                    fail_msg("poller %d: [%d] after [%d] with no gap", k, id, next - 1);
                next = id + 1;
                gap = false;
            }
            pgcw_event_free(e);
        }
    }
    pgcw_sub_free(s1);
    pgcw_sub_free(s2);
    pgcw_watcher_free(w1);
    pgcw_watcher_free(w2);
    polltest_uninstall(in, c);
    PQfinish(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pruned_unread_rows_are_a_gap),
        cmocka_unit_test(test_poller_prunes_by_age),
        cmocka_unit_test(test_two_pollers_prune_together),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
