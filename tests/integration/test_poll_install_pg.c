/*
 * test_poll_install_pg.c - the change log's install side (docs/source_poll.md):
 * pgcachewatch.notify = off feeds pollers but no LISTENers; uninstall restores
 * the catalog, and a poller without a change log fails at once saying what to
 * install; a LISTEN reinstall stops the logging; the CLI's install --source poll,
 * listen --source poll --json --count 1 and uninstall --source poll, with what
 * --help says and what it refuses.
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

#include "pgproc.h"
#include "pgtest.h"
#include "polltest.h"

/* pgcachewatch.notify = off: the change log still gets the row (pollers see it),
 * LISTENers no longer get the NOTIFY. */
static void test_notify_off_feeds_pollers_only(void **state)
{
    (void)state;
    PGconn *c = pgtest_connect();
    pgcw_install *in = polltest_install_items(c);
    pgcw_sub *sub = NULL;
    pgcw_watcher *w = polltest_start(0, &sub);
    PGconn *l = pgtest_connect();
    pgtest_exec(l, "LISTEN " POLLTEST_CHANNEL);

    pgtest_exec(c, "SET pgcachewatch.notify = off; INSERT INTO items VALUES (1, 'x'); "
                   "RESET pgcachewatch.notify; INSERT INTO items VALUES (2, 'y')");
    polltest_expect_next(sub, PGCW_OP_INSERT, "[1]");
    polltest_expect_next(sub, PGCW_OP_INSERT, "[2]");
    /* Notifications come in commit order: the first one must be [2]'s. */
    PGnotify *n = NULL;
    int64_t until = pgtest_now_ms() + POLLTEST_WAIT_MS;
    while (!(n = PQnotifies(l))) {
        if (pgtest_now_ms() > until)
            fail_msg("no notification");
        pgtest_sleep_ms(5);
        PQconsumeInput(l);
    }
    assert_non_null(strstr(n->extra, "\"keys\" : [[2]]"));
    PQfreemem(n);
    PQfinish(l);
    polltest_stop(w, sub);
    polltest_uninstall(in, c);
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
    pgcw_install *in = polltest_install_items(c);
    char *during = pgtest_catalog_snapshot(c);
    assert_non_null(strstr(during, "fn_pgcachewatch_table_change_poll_events_log"));
    polltest_uninstall(in, c);
    char *after = pgtest_catalog_snapshot(c);
    assert_string_equal(before, after);
    free(before);
    free(during);
    free(after);

    static const char *const channels[] = {POLLTEST_CHANNEL};
    pgcw_watcher_opts wo = {
        .channels = channels, .n_channels = 1, .source = PGCW_WATCH_POLL};
    pgcw_conn_opts co = {.conninfo = pgtest_dsn()};
    pgcw_watcher *w = NULL;
    assert_int_equal(pgcw_watcher_new(&wo, &co, &w), PGCW_OK);
    assert_int_equal(pgcw_watcher_wait_healthy(w, POLLTEST_WAIT_MS), PGCW_ECONNECT);
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
    int rc = pgtest_cli_run(
        &out, &err,
        "install --source poll --with-keys --channel-name " POLLTEST_CHANNEL
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
                              "--channel-name " POLLTEST_CHANNEL
                              " --json --count 1 --pg-dsn '%s'",
             pgtest_dsn());
    pgtest_proc p;
    pgtest_proc_start(&p, "test-poll-cli", cmd);
    /* Polling from the moment it says so: what is written after is read. */
    int64_t until = pgtest_now_ms() + POLLTEST_WAIT_MS;
    for (;;) {
        char *e = pgtest_slurp_path(p.err_path);
        bool polling = strstr(e, "polling the change log on " POLLTEST_CHANNEL) != NULL;
        free(e);
        if (polling)
            break;
        if (pgtest_now_ms() > until || pgtest_proc_wait(&p, 0) >= 0)
            fail_msg("listen --source poll did not start polling");
        pgtest_sleep_ms(10);
    }
    pgtest_exec(c, "INSERT INTO items VALUES (7, 'seven')");
    rc = pgtest_proc_finish(&p, POLLTEST_WAIT_MS, &out, &err);
    if (rc != 0)
        fail_msg("listen --source poll exited %d: %s", rc, err);
    if (!strstr(out, "\"operation\":\"insert\""))
        fail_msg("listen --source poll printed: %s (stderr: %s)", out, err);
    assert_non_null(strstr(out, "\"source\":\"poll\""));
    assert_non_null(strstr(out, "\"keys\":[[7]]"));
    free(out);
    free(err);
    rc = pgtest_cli_run(&out, &err,
                        "uninstall --source poll --channel-name " POLLTEST_CHANNEL
                        " --commit --pg-dsn '%s'",
                        pgtest_dsn());
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "DROP TABLE"));
    free(out);
    free(err);
    /* Without a change log: exit 1 at once, saying what to install. */
    int64_t t0 = pgtest_now_ms();
    rc = pgtest_cli_run(&out, &err,
                        "listen --source poll --channel-name " POLLTEST_CHANNEL
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
    pgcw_install *in = polltest_install_items(c);
    const char *count_sql =
        "SELECT count(*) FROM fn_pgcachewatch_table_change_poll_events_log";
    pgtest_exec(c, "INSERT INTO items VALUES (1, 'logged')");
    assert_int_equal(pgtest_query_int(c, count_sql), 1);
    pgcw_install_opts io = {.channel = POLLTEST_CHANNEL, .with_keys = true};
    pgcw_install *plain = NULL;
    assert_int_equal(pgcw_install_new(&io, &plain), PGCW_OK);
    const char *tables[] = {"items"};
    if (pgcw_install_run(plain, c, tables, 1, NULL) != PGCW_OK)
        fail_msg("install: %s", pgcw_install_errmsg(plain));
    pgcw_install_free(plain);
    pgtest_exec(c, "INSERT INTO items VALUES (2, 'notified only')");
    assert_int_equal(pgtest_query_int(c, count_sql), 1);
    polltest_uninstall(in, c);
    assert_int_equal(pgtest_query_int(c,
                                      "SELECT count(*) FROM pg_class WHERE relname = "
                                      "'fn_pgcachewatch_table_change_poll_events_log'"),
                     0);
    PQfinish(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_notify_off_feeds_pollers_only),
        cmocka_unit_test(test_uninstall_removes_changelog),
        cmocka_unit_test(test_cli_install_and_listen),
        cmocka_unit_test(test_listen_reinstall_stops_logging),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
