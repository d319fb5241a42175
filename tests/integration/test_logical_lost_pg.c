/*
 * test_logical_lost_pg.c - what max_slot_wal_keep_size does to a slot nobody
 * reads, on a server of its own (the setting is server-wide, and the shared test
 * server's other slots must not be invalidated): the abandoned slot falls more
 * than the limit behind, PostgreSQL invalidates it (wal_status 'lost') and its
 * changes are gone; the logical watcher then fails at once (PGCW_ECONNECT) saying
 * so and what to do, and after uninstall + install the same watcher, retrying,
 * streams from the new slot.
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
#include <unistd.h>

#include <cmocka.h>
#include <pgcachewatch/pgcachewatch.h>

#include "pgserver.h"
#include "pgtest.h"

static pgtest_server server;

static void install(PGconn *c, pgcw_install *in)
{
    const char *tables[] = {"items"};
    if (pgcw_install_run(in, c, tables, 1, NULL) != PGCW_OK)
        fail_msg("install: %s", pgcw_install_errmsg(in));
}

static void test_invalidated_slot(void **st)
{
    (void)st;
    pgtest_server_start(&server, "lost");
    const char *dsn = server.dsn;
    PGconn *c = PQconnectdb(dsn);
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    pgtest_exec(c, "ALTER SYSTEM SET max_slot_wal_keep_size = '16MB'");
    pgtest_exec(c, "SELECT pg_reload_conf()");
    pgtest_exec(c,
                "CREATE TABLE items (id int primary key); CREATE TABLE filler (x text)");
    pgcw_install_opts io = {.source = PGCW_WATCH_LOGICAL};
    pgcw_install *in = NULL;
    assert_int_equal(pgcw_install_new(&io, &in), PGCW_OK);
    install(c, in);
    pgtest_exec(c, "INSERT INTO items VALUES (1)");

    /* 80 MB of WAL the slot must keep, past its 16 MB allowance. */
    int64_t until = pgtest_now_ms() + 60000;
    for (;;) {
        char *status =
            pgtest_query_value(c, "SELECT wal_status FROM pg_replication_slots");
        bool lost = strcmp(status, "lost") == 0;
        free(status);
        if (lost)
            break;
        if (pgtest_now_ms() > until)
            fail_msg("the slot was never invalidated");
        pgtest_exec(c, "INSERT INTO filler SELECT repeat('x', 1000) FROM "
                       "generate_series(1, 40000);"
                       "SELECT pg_switch_wal(); CHECKPOINT");
    }

    const char *channels[] = {PGCW_DEFAULT_CHANNEL};
    pgcw_watcher_opts wo = {
        .channels = channels, .n_channels = 1, .source = PGCW_WATCH_LOGICAL};
    pgcw_conn_opts co = {
        .conninfo = dsn, .reconnect_min_ms = 20, .reconnect_max_ms = 200};
    pgcw_watcher *w = NULL;
    assert_int_equal(pgcw_watcher_new(&wo, &co, &w), PGCW_OK);
    assert_int_equal(pgcw_watcher_wait_healthy(w, 20000), PGCW_ECONNECT);
    const char *msg = pgcw_watcher_errmsg(w);
    assert_non_null(strstr(msg, "was invalidated"));
    assert_non_null(strstr(msg, "max_slot_wal_keep_size"));
    assert_non_null(strstr(msg, "uninstall --source logical"));

    /* What the message says to do: a new slot, which the same watcher picks up
     * on its next attempt. */
    assert_int_equal(pgcw_uninstall_run(in, c, NULL), PGCW_OK);
    install(c, in);
    pgcw_sub *q = NULL;
    assert_int_equal(pgcw_sub_new(w, NULL, &q), PGCW_OK);
    if (pgcw_watcher_wait_healthy(w, 20000) != PGCW_OK)
        fail_msg("watcher: %s", pgcw_watcher_errmsg(w));
    pgtest_exec(c, "INSERT INTO items VALUES (2)");
    const pgcw_event *e = NULL;
    until = pgtest_now_ms() + 20000;
    while (pgcw_sub_try_get(q, &e) != PGCW_OK || e->kind != PGCW_EVENT_CHANGE) {
        pgcw_event_free(e);
        e = NULL;
        if (pgtest_now_ms() > until)
            fail_msg("no event from the new slot");
        pgcw_watcher_run(w, 50);
    }
    assert_string_equal(e->keys[0], "[2]");
    pgcw_event_free(e);
    pgcw_sub_free(q);
    pgcw_watcher_free(w);
    pgcw_install_free(in);
    PQfinish(c);
    assert_int_equal(pgtest_server_stop(&server), 0);
}

/* Also when the test failed: the server is stopped by its pid. */
static int teardown(void **st)
{
    (void)st;
    pgtest_server_stop(&server);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_invalidated_slot),
    };
    return cmocka_run_group_tests(tests, NULL, teardown);
}
