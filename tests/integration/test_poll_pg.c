/*
 * test_poll_pg.c - the polling source against a real server (docs/source_poll.md):
 * install --source poll writes a change log that the same triggers fill; a watcher
 * with PGCW_WATCH_POLL delivers every event with its keys in commit order; a
 * transaction that commits after a later one is held back until it commits and
 * then delivered, not skipped; a killed poll connection resumes with no event
 * lost; rows pruned before they were read are a PGCW_GAP_PRUNED gap (and rows
 * pruned after they were read are not); the poller prunes by age; a writer with
 * pgcachewatch.notify = off still feeds pollers but no longer LISTENers; uninstall
 * removes the change log; the CLI's install --source poll and listen --source
 * poll --json --count 1, with what --help says and what it refuses.
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pgcachewatch/pgcachewatch.h>

#include "pgproc.h"
#include "pgtest.h"
#include "tcpproxy.h"

#define WAIT_MS 15000
#define CHANNEL "poll_events"

static pgcw_install *install_items(PGconn *c)
{
    pgtest_exec(c, "DROP TABLE IF EXISTS items; CREATE TABLE items (id int primary key, "
                   "v text)");
    pgcw_install_opts io = {
        .channel = CHANNEL, .with_keys = true, .source = PGCW_WATCH_POLL};
    pgcw_install *in = NULL;
    assert_int_equal(pgcw_install_new(&io, &in), PGCW_OK);
    /* What a failed test left behind goes first. */
    assert_int_equal(pgcw_uninstall_run(in, c, NULL), PGCW_OK);
    const char *tables[] = {"items"};
    if (pgcw_install_run(in, c, tables, 1, NULL) != PGCW_OK)
        fail_msg("install: %s", pgcw_install_errmsg(in));
    return in;
}

static void uninstall(pgcw_install *in, PGconn *c)
{
    if (pgcw_uninstall_run(in, c, NULL) != PGCW_OK)
        fail_msg("uninstall: %s", pgcw_install_errmsg(in));
    pgcw_install_free(in);
}

/* The last warning of any watcher (their threads write, the test reads after
 * stopping them). */
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static char last_warning[1024];

static void on_log(void *ctx, pgcw_log_level level, const char *msg)
{
    (void)ctx;
    if (level != PGCW_LOG_WARNING)
        return;
    pthread_mutex_lock(&log_mu);
    snprintf(last_warning, sizeof last_warning, "%s", msg);
    pthread_mutex_unlock(&log_mu);
}

/* A started poll watcher with one subscriber, healthy; max_latency_ms 1. */
static pgcw_watcher *start_poller(int64_t retention_ms, pgcw_sub **sub)
{
    static const char *const channels[] = {CHANNEL};
    pgcw_watcher_opts wo = {.channels = channels,
                            .n_channels = 1,
                            .source = PGCW_WATCH_POLL,
                            .poll_interval_ms = 20,
                            .changelog_retention_ms = retention_ms,
                            .max_latency_ms = 1,
                            .log = on_log};
    pgcw_conn_opts co = {
        .conninfo = pgtest_dsn(), .reconnect_min_ms = 10, .reconnect_max_ms = 50};
    pgcw_watcher *w = NULL;
    assert_int_equal(pgcw_watcher_new(&wo, &co, &w), PGCW_OK);
    assert_int_equal(pgcw_sub_new(w, NULL, sub), PGCW_OK);
    assert_int_equal(pgcw_watcher_start(w), PGCW_OK);
    if (pgcw_watcher_wait_healthy(w, WAIT_MS) != PGCW_OK)
        fail_msg("poll watcher: %s", pgcw_watcher_errmsg(w));
    return w;
}

static void stop_poller(pgcw_watcher *w, pgcw_sub *sub)
{
    assert_int_equal(pgcw_watcher_stop(w), PGCW_OK);
    pgcw_sub_free(sub);
    pgcw_watcher_free(w);
}

/* The next event that is not a disconnection gap (counted in *disconnects). */
static const pgcw_event *next_event(pgcw_sub *sub, int *disconnects)
{
    for (;;) {
        const pgcw_event *e = NULL;
        if (pgcw_sub_get(sub, WAIT_MS, &e) != PGCW_OK)
            fail_msg("no event within %d ms", WAIT_MS);
        if (e->kind == PGCW_EVENT_GAP && e->gap_reason == PGCW_GAP_DISCONNECTED &&
            disconnects) {
            (*disconnects)++;
            pgcw_event_free(e);
            continue;
        }
        return e;
    }
}

static void expect_change(const pgcw_event *e, pgcw_op op, const char *key)
{
    if (e->kind != PGCW_EVENT_CHANGE)
        fail_msg("a %s event (%s), wanted a change", pgcw_event_kind_name(e->kind),
                 pgcw_gap_reason_name(e->gap_reason));
    assert_string_equal(e->channel, CHANNEL);
    assert_string_equal(e->table, "items");
    assert_int_equal(e->source, PGCW_SOURCE_POLL);
    assert_int_equal(e->backend_pid, 0);
    if (e->operation != op || e->n_keys != 1 || strcmp(e->keys[0], key) != 0)
        fail_msg("%s %s, wanted %s %s", pgcw_op_name(e->operation),
                 e->n_keys ? e->keys[0] : "(no key)", pgcw_op_name(op), key);
}

static void expect_and_free(pgcw_sub *sub, pgcw_op op, const char *key)
{
    const pgcw_event *e = next_event(sub, NULL);
    expect_change(e, op, key);
    pgcw_event_free(e);
}

/* Sequential transactions come out in their commit order, with their keys, and
 * nothing that committed before the watcher started is replayed, even above the
 * horizon that a transaction open at the start holds back; that transaction's
 * rows, committed later, are news. */
static void test_commit_order_with_keys(void **state)
{
    (void)state;
    PGconn *c = pgtest_connect();
    pgcw_install *in = install_items(c);
    PGconn *open_at_start = pgtest_connect();
    pgtest_exec(open_at_start, "BEGIN; INSERT INTO items VALUES (50, 'open at start')");
    pgtest_exec(c, "INSERT INTO items VALUES (99, 'history')");
    pgcw_sub *sub = NULL;
    pgcw_watcher *w = start_poller(0, &sub);
    pgtest_exec(open_at_start, "COMMIT");
    PQfinish(open_at_start);
    expect_and_free(sub, PGCW_OP_INSERT, "[50]");

    pgtest_exec(c, "INSERT INTO items VALUES (1, 'a')");
    pgtest_exec(c, "UPDATE items SET v = 'b' WHERE id = 1");
    pgtest_exec(c, "INSERT INTO items VALUES (2, 'c')");
    pgtest_exec(c, "DELETE FROM items WHERE id = 1");
    pgtest_exec(c, "BEGIN; INSERT INTO items VALUES (3, 'rolled back'); ROLLBACK");
    pgtest_exec(c, "UPDATE items SET v = 'd' WHERE id = 2");
    expect_and_free(sub, PGCW_OP_INSERT, "[1]");
    expect_and_free(sub, PGCW_OP_UPDATE, "[1]");
    expect_and_free(sub, PGCW_OP_INSERT, "[2]");
    expect_and_free(sub, PGCW_OP_DELETE, "[1]");
    expect_and_free(sub, PGCW_OP_UPDATE, "[2]");
    assert_int_equal(pgcw_sub_pending(sub), 0);
    pgcw_watcher_stats st;
    pgcw_watcher_stats_get(w, &st);
    assert_int_equal(st.events, 6);
    assert_int_equal(st.gaps, 0);
    stop_poller(w, sub);
    uninstall(in, c);
    PQfinish(c);
}

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
        int64_t until = pgtest_now_ms() + WAIT_MS;
        while (!polled_since(c, pgcw_watcher_backend_pid(w), t)) {
            if (pgtest_now_ms() > until)
                fail_msg("the poller did not poll");
            pgtest_sleep_ms(5);
        }
        free(t);
    }
}

/* The skip a sequence number alone would make: A takes its xid and sequence number
 * first, B writes after it and commits first. A poller that went by sequence
 * numbers would deliver B, move past A's number and never deliver A. Ours holds B
 * back while A runs (A's xid is the horizon), then delivers both. */
static void test_late_commit_is_not_skipped(void **state)
{
    (void)state;
    PGconn *c = pgtest_connect();
    pgcw_install *in = install_items(c);
    pgcw_sub *sub = NULL;
    pgcw_watcher *w = start_poller(0, &sub);
    PGconn *a = pgtest_connect(), *b = pgtest_connect();

    pgtest_exec(a, "BEGIN; INSERT INTO items VALUES (100, 'A, commits last')");
    pgtest_exec(b, "INSERT INTO items VALUES (200, 'B, commits first')");
    wait_two_polls(c, w);
    assert_int_equal(pgcw_sub_pending(sub), 0); /* B waits for A */
    pgtest_exec(a, "COMMIT");
    expect_and_free(sub, PGCW_OP_INSERT, "[100]"); /* xid order: A began first */
    expect_and_free(sub, PGCW_OP_INSERT, "[200]");
    assert_int_equal(pgcw_sub_pending(sub), 0);
    /* Held back for two polls of 20 ms at least: late, and said so. */
    pgcw_watcher_stats st;
    pgcw_watcher_stats_get(w, &st);
    assert_true(st.late >= 1);

    PQfinish(a);
    PQfinish(b);
    stop_poller(w, sub);
    pthread_mutex_lock(&log_mu);
    assert_non_null(strstr(last_warning, "holds the poller back"));
    pthread_mutex_unlock(&log_mu);
    uninstall(in, c);
    PQfinish(c);
}

/* Killing the poll connection again and again, with writes while it is down, loses
 * nothing: every committed insert comes out once, in order, and only disconnection
 * gaps come between them. */
static void test_killed_connection_loses_nothing(void **state)
{
    (void)state;
    PGconn *c = pgtest_connect();
    pgcw_install *in = install_items(c);
    pgcw_sub *sub = NULL;
    pgcw_watcher *w = start_poller(0, &sub);
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
        int64_t until = pgtest_now_ms() + WAIT_MS;
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
        const pgcw_event *e = next_event(sub, &disconnects);
        expect_change(e, PGCW_OP_INSERT, key);
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
    stop_poller(w, sub);
    uninstall(in, c);
    PQfinish(c);
}

/* A network that stops carrying packets: the read left unanswered for
 * ping_timeout_ms makes the watcher unhealthy; what is written meanwhile comes
 * out once the network is back. */
static void test_stalled_network(void **state)
{
    (void)state;
    PGconn *c = pgtest_connect();
    pgcw_install *in = install_items(c);
    const char *p = strstr(pgtest_dsn(), "port=");
    assert_non_null(p);
    int port = 0;
    tcpproxy *proxy = tcpproxy_start(atoi(p + 5), &port);
    char conninfo[1024];
    snprintf(conninfo, sizeof conninfo, "%s host=127.0.0.1 port=%d", pgtest_dsn(), port);
    static const char *const channels[] = {CHANNEL};
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
    if (pgcw_watcher_wait_healthy(w, WAIT_MS) != PGCW_OK)
        fail_msg("through the proxy: %s", pgcw_watcher_errmsg(w));

    tcpproxy_stall(proxy, true);
    pgtest_exec(c, "INSERT INTO items VALUES (1, 'written during the stall')");
    int64_t until = pgtest_now_ms() + WAIT_MS;
    while (pgcw_watcher_healthy(w)) {
        if (pgtest_now_ms() > until)
            fail_msg("still healthy %d ms into a stall", WAIT_MS);
        pgtest_sleep_ms(10);
    }
    assert_non_null(strstr(pgcw_watcher_errmsg(w), "no answer to a poll within 500 ms"));
    tcpproxy_stall(proxy, false);
    int disconnects = 0;
    const pgcw_event *e = next_event(sub, &disconnects);
    expect_change(e, PGCW_OP_INSERT, "[1]");
    pgcw_event_free(e);
    assert_int_equal(disconnects, 1);
    stop_poller(w, sub);
    tcpproxy_stop(proxy);
    uninstall(in, c);
    PQfinish(c);
}

/* The prune function's name for CHANNEL, quoted, from the catalog. */
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
    pgcw_install *in = install_items(c);
    pgcw_sub *sub = NULL;
    pgcw_watcher *w = start_poller(0, &sub);
    char *prune = prune_call(c, "0");

    pgtest_exec(c, "INSERT INTO items VALUES (1, 'read, then pruned')");
    expect_and_free(sub, PGCW_OP_INSERT, "[1]");
    assert_int_equal(pgtest_query_int(c, prune), 1);
    pgtest_exec(c, "INSERT INTO items VALUES (2, 'after')");
    expect_and_free(sub, PGCW_OP_INSERT, "[2]"); /* no gap first */

    /* Away (closed, so it reads nothing) while rows come and go. */
    assert_int_equal(pgcw_watcher_stop(w), PGCW_OK);
    pgtest_exec(c, "INSERT INTO items VALUES (3, 'never read')");
    assert_int_equal(pgtest_query_int(c, prune), 2); /* [2] and [3] */
    pgtest_exec(c, "INSERT INTO items VALUES (4, 'kept')");
    assert_int_equal(pgcw_watcher_start(w), PGCW_OK);
    const pgcw_event *e = next_event(sub, NULL);
    assert_int_equal(e->kind, PGCW_EVENT_GAP);
    assert_int_equal(e->gap_reason, PGCW_GAP_DISCONNECTED); /* from the stop */
    pgcw_event_free(e);
    e = next_event(sub, NULL);
    assert_int_equal(e->kind, PGCW_EVENT_GAP);
    assert_int_equal(e->gap_reason, PGCW_GAP_PRUNED);
    pgcw_event_free(e);
    expect_and_free(sub, PGCW_OP_INSERT, "[4]");
    assert_int_equal(pgcw_sub_pending(sub), 0);

    free(prune);
    stop_poller(w, sub);
    uninstall(in, c);
    PQfinish(c);
}

/* The poller prunes: with a retention of 1 ms, the rows it read leave the table. */
static void test_poller_prunes_by_age(void **state)
{
    (void)state;
    PGconn *c = pgtest_connect();
    pgcw_install *in = install_items(c);
    pgcw_sub *sub = NULL;
    pgcw_watcher *w = start_poller(1, &sub);
    const char *count_sql =
        "SELECT count(*) FROM fn_pgcachewatch_table_change_poll_events_log";
    pgtest_exec(c, "INSERT INTO items VALUES (1, 'x'), (2, 'y')");
    const pgcw_event *e = next_event(sub, NULL);
    assert_int_equal(e->n_keys, 2);
    pgcw_event_free(e);
    int64_t until = pgtest_now_ms() + WAIT_MS;
    while (pgtest_query_int(c, count_sql) != 0) {
        if (pgtest_now_ms() > until)
            fail_msg("the poller did not prune the change log");
        pgtest_sleep_ms(10);
    }
    assert_true(
        pgtest_query_int(c, "SELECT pruned_rows FROM "
                            "fn_pgcachewatch_table_change_poll_events_log_pruned") >= 1);
    stop_poller(w, sub);
    uninstall(in, c);
    PQfinish(c);
}

/* Two pollers on one channel both prune: each delivers every event or a pruned
 * gap in its place, and each row is pruned once. */
static void test_two_pollers_prune_together(void **state)
{
    (void)state;
    PGconn *c = pgtest_connect();
    pgcw_install *in = install_items(c);
    pgcw_sub *s1 = NULL, *s2 = NULL;
    pgcw_watcher *w1 = start_poller(1, &s1), *w2 = start_poller(1, &s2);
    enum { N = 40 };
    for (int i = 1; i <= N; i++) {
        char sql[64];
        snprintf(sql, sizeof sql, "INSERT INTO items VALUES (%d, 'x')", i);
        pgtest_exec(c, sql);
    }
    int64_t until = pgtest_now_ms() + WAIT_MS;
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
    uninstall(in, c);
    PQfinish(c);
}

/* pgcachewatch.notify = off: the change log still gets the row (pollers see it),
 * LISTENers no longer get the NOTIFY. */
static void test_notify_off_feeds_pollers_only(void **state)
{
    (void)state;
    PGconn *c = pgtest_connect();
    pgcw_install *in = install_items(c);
    pgcw_sub *sub = NULL;
    pgcw_watcher *w = start_poller(0, &sub);
    PGconn *l = pgtest_connect();
    pgtest_exec(l, "LISTEN " CHANNEL);

    pgtest_exec(c, "SET pgcachewatch.notify = off; INSERT INTO items VALUES (1, 'x'); "
                   "RESET pgcachewatch.notify; INSERT INTO items VALUES (2, 'y')");
    expect_and_free(sub, PGCW_OP_INSERT, "[1]");
    expect_and_free(sub, PGCW_OP_INSERT, "[2]");
    /* Notifications come in commit order: the first one must be [2]'s. */
    PGnotify *n = NULL;
    int64_t until = pgtest_now_ms() + WAIT_MS;
    while (!(n = PQnotifies(l))) {
        if (pgtest_now_ms() > until)
            fail_msg("no notification");
        pgtest_sleep_ms(5);
        PQconsumeInput(l);
    }
    assert_non_null(strstr(n->extra, "\"keys\" : [[2]]"));
    PQfreemem(n);
    PQfinish(l);
    stop_poller(w, sub);
    uninstall(in, c);
    PQfinish(c);
}

/* Uninstall leaves the catalog as it was before install: the change log's tables
 * and functions are gone with the triggers. A poller without a change log fails
 * with a permanent error that says how to install one. */
static void test_uninstall_removes_changelog(void **state)
{
    (void)state;
    PGconn *c = pgtest_connect();
    pgtest_exec(c, "DROP TABLE IF EXISTS items; CREATE TABLE items (id int primary key, "
                   "v text)");
    char *before = pgtest_catalog_snapshot(c);
    pgcw_install *in = install_items(c);
    char *during = pgtest_catalog_snapshot(c);
    assert_non_null(strstr(during, "fn_pgcachewatch_table_change_poll_events_log"));
    uninstall(in, c);
    char *after = pgtest_catalog_snapshot(c);
    assert_string_equal(before, after);
    free(before);
    free(during);
    free(after);

    static const char *const channels[] = {CHANNEL};
    pgcw_watcher_opts wo = {
        .channels = channels, .n_channels = 1, .source = PGCW_WATCH_POLL};
    pgcw_conn_opts co = {.conninfo = pgtest_dsn()};
    pgcw_watcher *w = NULL;
    assert_int_equal(pgcw_watcher_new(&wo, &co, &w), PGCW_OK);
    assert_int_equal(pgcw_watcher_wait_healthy(w, WAIT_MS), PGCW_ECONNECT);
    assert_non_null(strstr(pgcw_watcher_errmsg(w), "install --source poll"));
    pgcw_watcher_free(w);
    PQfinish(c);
}

/* The CLI: install --source poll --commit, then listen --source poll --json
 * --count 1 prints the insert with its key, read from the change log. */
static void test_cli_install_and_listen(void **state)
{
    (void)state;
    PGconn *c = pgtest_connect();
    pgtest_exec(c, "DROP TABLE IF EXISTS items; CREATE TABLE items (id int primary key, "
                   "v text)");
    char *out = NULL, *err = NULL;
    int rc = pgtest_cli_run(&out, &err,
                            "install --source poll --with-keys --channel-name " CHANNEL
                            " --commit --pg-dsn '%s' items",
                            pgtest_dsn());
    if (rc != 0)
        fail_msg("install --source poll: %s", err);
    assert_non_null(strstr(out, "_log_write"));
    free(out);
    free(err);
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             PGTEST_RUN_LIMIT "\"$PGCW_CLI\" listen --source poll --poll-interval 0.05 "
                              "--channel-name " CHANNEL " --json --count 1 --pg-dsn '%s'",
             pgtest_dsn());
    pgtest_proc p;
    pgtest_proc_start(&p, "test-poll-cli", cmd);
    /* Polling from the moment it says so: what is written after is read. */
    int64_t until = pgtest_now_ms() + WAIT_MS;
    for (;;) {
        char *e = pgtest_slurp_path(p.err_path);
        bool polling = strstr(e, "polling the change log on " CHANNEL) != NULL;
        free(e);
        if (polling)
            break;
        if (pgtest_now_ms() > until || pgtest_proc_wait(&p, 0) >= 0)
            fail_msg("listen --source poll did not start polling");
        pgtest_sleep_ms(10);
    }
    pgtest_exec(c, "INSERT INTO items VALUES (7, 'seven')");
    rc = pgtest_proc_finish(&p, WAIT_MS, &out, &err);
    if (rc != 0)
        fail_msg("listen --source poll exited %d: %s", rc, err);
    if (!strstr(out, "\"operation\":\"insert\""))
        fail_msg("listen --source poll printed: %s (stderr: %s)", out, err);
    assert_non_null(strstr(out, "\"source\":\"poll\""));
    assert_non_null(strstr(out, "\"keys\":[[7]]"));
    free(out);
    free(err);
    rc = pgtest_cli_run(&out, &err,
                        "uninstall --source poll --channel-name " CHANNEL
                        " --commit --pg-dsn '%s'",
                        pgtest_dsn());
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "DROP TABLE"));
    free(out);
    free(err);
    /* Without a change log: exit 1 at once, saying what to install. */
    int64_t t0 = pgtest_now_ms();
    rc = pgtest_cli_run(&out, &err,
                        "listen --source poll --channel-name " CHANNEL
                        " --count 1 --timeout 30 --pg-dsn '%s'",
                        pgtest_dsn());
    assert_int_equal(rc, 1);
    assert_non_null(strstr(err, "install --source poll"));
    assert_true(pgtest_now_ms() - t0 < 30000); /* not the timeout */
    free(out);
    free(err);

    static const char *const listen_has[] = {"--source SOURCE", "--poll-interval SECONDS",
                                             "PgBouncer", NULL};
    pgtest_cli_expect_help("listen --help", listen_has, NULL);
    static const char *const install_has[] = {"--source SOURCE", "change log",
                                              "pgcachewatch.notify = off", NULL};
    pgtest_cli_expect_help("install --help", install_has, NULL);
    pgtest_cli_expect_usage_error("listen --poll-interval 1", "--poll-interval needs");
    pgtest_cli_expect_usage_error("listen --source poll --poll-interval 0", "above 0");
    pgtest_cli_expect_usage_error("listen --source carrier-pigeon", "--source wants");
    pgtest_cli_expect_usage_error(
        "listen --source poll --channel-name a --channel-name b", "one channel");
    pgtest_cli_expect_usage_error("install --source poll --ddl", "--ddl without");
    PQfinish(c);
}

/* Installed again for LISTEN, the notify functions notify only: the change log
 * stays (uninstall removes it) but gets no more rows. */
static void test_listen_reinstall_stops_logging(void **state)
{
    (void)state;
    PGconn *c = pgtest_connect();
    pgcw_install *in = install_items(c);
    const char *count_sql =
        "SELECT count(*) FROM fn_pgcachewatch_table_change_poll_events_log";
    pgtest_exec(c, "INSERT INTO items VALUES (1, 'logged')");
    assert_int_equal(pgtest_query_int(c, count_sql), 1);
    pgcw_install_opts io = {.channel = CHANNEL, .with_keys = true};
    pgcw_install *plain = NULL;
    assert_int_equal(pgcw_install_new(&io, &plain), PGCW_OK);
    const char *tables[] = {"items"};
    if (pgcw_install_run(plain, c, tables, 1, NULL) != PGCW_OK)
        fail_msg("install: %s", pgcw_install_errmsg(plain));
    pgcw_install_free(plain);
    pgtest_exec(c, "INSERT INTO items VALUES (2, 'notified only')");
    assert_int_equal(pgtest_query_int(c, count_sql), 1);
    uninstall(in, c);
    assert_int_equal(pgtest_query_int(c,
                                      "SELECT count(*) FROM pg_class WHERE relname = "
                                      "'fn_pgcachewatch_table_change_poll_events_log'"),
                     0);
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
        cmocka_unit_test(test_pruned_unread_rows_are_a_gap),
        cmocka_unit_test(test_poller_prunes_by_age),
        cmocka_unit_test(test_two_pollers_prune_together),
        cmocka_unit_test(test_notify_off_feeds_pollers_only),
        cmocka_unit_test(test_uninstall_removes_changelog),
        cmocka_unit_test(test_listen_reinstall_stops_logging),
        cmocka_unit_test(test_refused_options),
        cmocka_unit_test(test_cli_install_and_listen),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
