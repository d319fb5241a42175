/*
 * test_poll_pg.c - the polling source's delivery against a real server
 * (docs/source_poll.md): every event with its keys in commit order (a rollback
 * yields nothing, a TRUNCATE one keyless event) and no history replayed; a transaction
 * that commits after a later one is held back until it commits and then delivered, not
 * skipped; a poll connection killed six times with writes while it is down loses nothing;
 * a stalled network makes it unhealthy and loses nothing either; the options it refuses.
 * Pruning is in test_poll_prune_pg.c, the install side and the CLI in
 * test_poll_install_pg.c.
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
#include "tcpproxy.h"

/* Whether the poller's backend has finished a statement that started after t (a
 * server timestamp as text). */
static bool polled_since(PGconn *c, int pid, const char *t)
{
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM pg_stat_activity WHERE pid = %d AND state = 'idle' "
             "AND query_start > '%s'::timestamptz",
             pid, t);
    return pgtest_query_int(c, sql) == 1;
}

/* Waits until the poller has run two reads that started after now: the first one's
 * result was then taken (a source sends its next query only after that). */
static void wait_two_polls(PGconn *c, pgcw_watcher *w)
{
    for (int round = 0; round < 2; round++) {
        char *t = pgtest_query_value(c, "SELECT clock_timestamp()::text");
        int64_t until = pgtest_now_ms() + POLLTEST_WAIT_MS;
        while (!polled_since(c, pgcw_watcher_backend_pid(w), t)) {
            if (pgtest_now_ms() > until)
                fail_msg("the poller did not poll");
            pgtest_sleep_ms(5);
        }
        free(t);
    }
}

/* Sequential transactions come out in their commit order, with their keys, and
 * nothing that committed before the watcher started is replayed, even above the
 * horizon that a transaction open at the start holds back; that transaction's
 * rows, committed later, are news; a rolled-back insert yields nothing and a
 * TRUNCATE one event without keys. */
static void test_commit_order_with_keys(void **state)
{
    (void)state;
    PGconn *c = pgtest_connect();
    pgcw_install *in = polltest_install_items(c);
    PGconn *open_at_start = pgtest_connect();
    pgtest_exec(open_at_start, "BEGIN; INSERT INTO items VALUES (50, 'open at start')");
    pgtest_exec(c, "INSERT INTO items VALUES (99, 'history')");
    pgcw_sub *sub = NULL;
    pgcw_watcher *w = polltest_start(0, &sub);
    pgtest_exec(open_at_start, "COMMIT");
    PQfinish(open_at_start);
    polltest_expect_next(sub, PGCW_OP_INSERT, "[50]");

    pgtest_exec(c, "INSERT INTO items VALUES (1, 'a')");
    pgtest_exec(c, "UPDATE items SET v = 'b' WHERE id = 1");
    pgtest_exec(c, "INSERT INTO items VALUES (2, 'c')");
    pgtest_exec(c, "DELETE FROM items WHERE id = 1");
    pgtest_exec(c, "BEGIN; INSERT INTO items VALUES (3, 'rolled back'); ROLLBACK");
    pgtest_exec(c, "UPDATE items SET v = 'd' WHERE id = 2");
    polltest_expect_next(sub, PGCW_OP_INSERT, "[1]");
    polltest_expect_next(sub, PGCW_OP_UPDATE, "[1]");
    polltest_expect_next(sub, PGCW_OP_INSERT, "[2]");
    polltest_expect_next(sub, PGCW_OP_DELETE, "[1]");
    polltest_expect_next(sub, PGCW_OP_UPDATE, "[2]");
    /* A TRUNCATE is one event for the table, without keys. */
    pgtest_exec(c, "TRUNCATE items");
    const pgcw_event *t = polltest_next(sub, NULL);
    assert_int_equal(t->kind, PGCW_EVENT_CHANGE);
    assert_int_equal(t->operation, PGCW_OP_TRUNCATE);
    assert_string_equal(t->table, "items");
    assert_int_equal(t->source, PGCW_SOURCE_POLL);
    assert_int_equal(t->n_keys, 0);
    pgcw_event_free(t);
    assert_int_equal(pgcw_sub_pending(sub), 0);
    pgcw_watcher_stats st;
    pgcw_watcher_stats_get(w, &st);
    assert_int_equal(st.events, 7);
    assert_int_equal(st.gaps, 0);
    polltest_stop(w, sub);
    polltest_uninstall(in, c);
    PQfinish(c);
}

/* The skip a sequence number alone would make: A takes its xid and sequence number
 * first, B writes after it and commits first. A poller that went by sequence
 * numbers would deliver B, move past A's number and never deliver A. Ours holds B
 * back while A runs (A's xid is the horizon), then delivers both. */
static void test_late_commit_is_not_skipped(void **state)
{
    (void)state;
    PGconn *c = pgtest_connect();
    pgcw_install *in = polltest_install_items(c);
    pgcw_sub *sub = NULL;
    pgcw_watcher *w = polltest_start(0, &sub);
    PGconn *a = pgtest_connect(), *b = pgtest_connect();

    pgtest_exec(a, "BEGIN; INSERT INTO items VALUES (100, 'A, commits last')");
    pgtest_exec(b, "INSERT INTO items VALUES (200, 'B, commits first')");
    wait_two_polls(c, w);
    assert_int_equal(pgcw_sub_pending(sub), 0); /* B waits for A */
    pgtest_exec(a, "COMMIT");
    polltest_expect_next(sub, PGCW_OP_INSERT, "[100]"); /* xid order: A began first */
    polltest_expect_next(sub, PGCW_OP_INSERT, "[200]");
    assert_int_equal(pgcw_sub_pending(sub), 0);
    /* Held back for two polls of 20 ms at least: late, and said so. */
    pgcw_watcher_stats st;
    pgcw_watcher_stats_get(w, &st);
    assert_true(st.late >= 1);

    PQfinish(a);
    PQfinish(b);
    polltest_stop(w, sub);
    assert_true(polltest_warned("holds the poller back"));
    polltest_uninstall(in, c);
    PQfinish(c);
}

/* Killing the poll connection again and again, with writes while it is down, loses
 * nothing: every committed insert comes out once, in order, and only disconnection
 * gaps come between them. */
static void test_killed_connection_loses_nothing(void **state)
{
    (void)state;
    PGconn *c = pgtest_connect();
    pgcw_install *in = polltest_install_items(c);
    pgcw_sub *sub = NULL;
    pgcw_watcher *w = polltest_start(0, &sub);
    enum { N = 60 };
    int kills = 0, killed = 0;
    for (int i = 1; i <= N + 1; i++) {
        char sql[128];
        snprintf(sql, sizeof sql, "INSERT INTO items VALUES (%d, 'x')", i);
        pgtest_exec(c, sql);
        if (i % 10 != 0 && i <= N)
            continue;
        /* The writes right after a kill find the poller down; the next kill (and
         * the last write) waits until it is back. */
        int64_t until = pgtest_now_ms() + POLLTEST_WAIT_MS;
        int pid;
        while ((pid = pgcw_watcher_backend_pid(w)) == 0 || pid == killed ||
               !pgcw_watcher_healthy(w)) {
            if (pgtest_now_ms() > until)
                fail_msg("the poller did not reconnect");
            pgtest_sleep_ms(2);
        }
        if (i > N)
            break;
        snprintf(sql, sizeof sql, "SELECT pg_terminate_backend(%d)", pid);
        free(pgtest_query_value(c, sql));
        killed = pid;
        kills++;
    }
    pgtest_exec(c, "INSERT INTO items VALUES (0, 'last')");
    int disconnects = 0;
    for (int i = 1; i <= N + 2; i++) {
        char key[16];
        snprintf(key, sizeof key, "[%d]", i % (N + 2));
        const pgcw_event *e = polltest_next(sub, &disconnects);
        polltest_expect_change(e, PGCW_OP_INSERT, key);
        pgcw_event_free(e);
    }
    /* What was committed is what came out. */
    assert_int_equal(pgtest_query_int(c, "SELECT count(*) FROM items"), N + 2);
    assert_int_equal(kills, N / 10);
    pgcw_watcher_stats st;
    pgcw_watcher_stats_get(w, &st);
    assert_int_equal(st.events, N + 2);
    /* Each kill found it healthy: one disconnection each, one gap each. */
    assert_int_equal(st.disconnects, kills);
    assert_int_equal(disconnects, kills);
    polltest_stop(w, sub);
    polltest_uninstall(in, c);
    PQfinish(c);
}

/* A network that stops carrying packets: the read left unanswered for
 * ping_timeout_ms makes the watcher unhealthy; what is written meanwhile comes
 * out once the network is back. */
static void test_stalled_network(void **state)
{
    (void)state;
    PGconn *c = pgtest_connect();
    pgcw_install *in = polltest_install_items(c);
    const char *p = strstr(pgtest_dsn(), "port=");
    assert_non_null(p);
    int port = 0;
    tcpproxy *proxy = tcpproxy_start(atoi(p + 5), &port);
    char conninfo[1024];
    snprintf(conninfo, sizeof conninfo, "%s host=127.0.0.1 port=%d", pgtest_dsn(), port);
    static const char *const channels[] = {POLLTEST_CHANNEL};
    pgcw_watcher_opts wo = {.channels = channels,
                            .n_channels = 1,
                            .source = PGCW_WATCH_POLL,
                            .poll_interval_ms = 20,
                            .ping_timeout_ms = 500};
    pgcw_conn_opts co = {.conninfo = conninfo,
                         .connect_timeout_ms = 1000,
                         .reconnect_min_ms = 50,
                         .reconnect_max_ms = 200};
    pgcw_watcher *w = NULL;
    pgcw_sub *sub = NULL;
    assert_int_equal(pgcw_watcher_new(&wo, &co, &w), PGCW_OK);
    assert_int_equal(pgcw_sub_new(w, NULL, &sub), PGCW_OK);
    assert_int_equal(pgcw_watcher_start(w), PGCW_OK);
    if (pgcw_watcher_wait_healthy(w, POLLTEST_WAIT_MS) != PGCW_OK)
        fail_msg("through the proxy: %s", pgcw_watcher_errmsg(w));

    tcpproxy_stall(proxy, true);
    pgtest_exec(c, "INSERT INTO items VALUES (1, 'written during the stall')");
    int64_t until = pgtest_now_ms() + POLLTEST_WAIT_MS;
    while (pgcw_watcher_healthy(w)) {
        if (pgtest_now_ms() > until)
            fail_msg("still healthy %d ms into a stall", POLLTEST_WAIT_MS);
        pgtest_sleep_ms(10);
    }
    assert_non_null(strstr(pgcw_watcher_errmsg(w), "no answer to a poll within 500 ms"));
    tcpproxy_stall(proxy, false);
    int disconnects = 0;
    const pgcw_event *e = polltest_next(sub, &disconnects);
    polltest_expect_change(e, PGCW_OP_INSERT, "[1]");
    pgcw_event_free(e);
    assert_int_equal(disconnects, 1);
    polltest_stop(w, sub);
    tcpproxy_stop(proxy);
    polltest_uninstall(in, c);
    PQfinish(c);
}

/* Options the poll source refuses. */
static void test_refused_options(void **state)
{
    (void)state;
    const char *two[] = {"a", "b"};
    pgcw_watcher_opts bad[] = {
        {.source = PGCW_WATCH_POLL, .channels = two, .n_channels = 2},
        {.source = PGCW_WATCH_POLL, .poll_interval_ms = -1},
        {.source = PGCW_WATCH_POLL, .changelog_retention_ms = -1},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        pgcw_watcher *w = NULL;
        assert_int_equal(pgcw_watcher_new(&bad[i], NULL, &w), PGCW_EINVAL);
        assert_null(w);
    }
    pgcw_install_opts io = {.ddl = true, .source = PGCW_WATCH_POLL};
    pgcw_install *in = NULL;
    assert_int_equal(pgcw_install_new(&io, &in), PGCW_OK);
    char *sql = NULL;
    assert_int_equal(pgcw_install_sql(in, NULL, 0, &sql), PGCW_EINVAL);
    assert_null(sql);
    pgcw_install_free(in);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_commit_order_with_keys),
        cmocka_unit_test(test_late_commit_is_not_skipped),
        cmocka_unit_test(test_killed_connection_loses_nothing),
        cmocka_unit_test(test_stalled_network),
        cmocka_unit_test(test_refused_options),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
