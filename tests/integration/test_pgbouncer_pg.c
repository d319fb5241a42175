/*
 * test_pgbouncer_pg.c - what LISTEN cannot do through PgBouncer in transaction
 * pooling mode, and what polling can (docs/source_poll.md). A real PgBouncer
 * (tests/pg/pgbouncer.sh, on loopback, stopped by pid afterwards and by its
 * watchdog if this process dies) in front of the suite's server: the LISTEN
 * source's self-probe reports that LISTEN does not work through it, as a
 * permanent error naming the polling source; connected directly the probe passes
 * and is never an event; the poll source through PgBouncer delivers every event.
 */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <pgcachewatch/pgcachewatch.h>

#include "pgtest.h"

#define WAIT_MS 15000
#define CHANNEL "bouncer_events"

static char bouncer_state[256], bouncer_dsn[512];

static int start_bouncer(void **state)
{
    (void)state;
    snprintf(bouncer_state, sizeof bouncer_state, "/tmp/pgcw-bouncer-%d.state",
             (int)getpid());
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "bash '%s/tests/pg/pgbouncer.sh' start '%s' '%s' %d >/dev/null",
             getenv("PGCW_SOURCE_DIR"), bouncer_state, getenv("PGCW_TEST_STATE"),
             (int)getpid());
    if (system(cmd) != 0)
        return -1;
    char *s = pgtest_slurp_path(bouncer_state);
    char *p = strstr(s, "dsn=");
    if (!p) {
        free(s);
        return -1;
    }
    /* The private database of this test, through PgBouncer ("*" forwards it). */
    PGconn *c = pgtest_connect();
    snprintf(bouncer_dsn, sizeof bouncer_dsn, "%.*s dbname=%s", (int)strcspn(p + 4, "\n"),
             p + 4, PQdb(c));
    PQfinish(c);
    free(s);
    return 0;
}

static int stop_bouncer(void **state)
{
    (void)state;
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "bash '%s/tests/pg/pgbouncer.sh' stop '%s'",
             getenv("PGCW_SOURCE_DIR"), bouncer_state);
    return system(cmd) == 0 ? 0 : -1;
}

typedef struct logged {
    int warnings;
    char last[1024];
} logged;

static void on_log(void *ctx, pgcw_log_level level, const char *msg)
{
    logged *l = ctx; /* the watcher is driven on this thread (wait_healthy) */
    if (level == PGCW_LOG_WARNING) {
        l->warnings++;
        snprintf(l->last, sizeof l->last, "%s", msg);
    }
}

/* Through PgBouncer in transaction mode the probe never comes back: a permanent
 * error that says why and what to use instead, in errmsg and in the log. */
static void test_probe_reports_listen_broken(void **state)
{
    (void)state;
    static const char *const channels[] = {CHANNEL};
    logged l = {0};
    pgcw_watcher_opts wo = {.channels = channels,
                            .n_channels = 1,
                            .ping_timeout_ms = 2000,
                            .log = on_log,
                            .log_ctx = &l};
    pgcw_conn_opts co = {.conninfo = bouncer_dsn};
    pgcw_watcher *w = NULL;
    assert_int_equal(pgcw_watcher_new(&wo, &co, &w), PGCW_OK);
    assert_int_equal(pgcw_watcher_wait_healthy(w, WAIT_MS), PGCW_ECONNECT);
    const char *msg = pgcw_watcher_errmsg(w);
    assert_non_null(strstr(msg, "LISTEN does not work through this connection"));
    assert_non_null(strstr(msg, "PgBouncer in transaction pooling mode"));
    assert_non_null(strstr(msg, "--source poll"));
    assert_non_null(strstr(l.last, "LISTEN probe failed"));
    assert_false(pgcw_watcher_healthy(w));
    pgcw_watcher_stats st;
    pgcw_watcher_stats_get(w, &st);
    assert_int_equal(st.connects, 0);
    assert_int_equal(st.notifications, 0);
    pgcw_watcher_free(w);

    /* The CLI says the same and exits 1. */
    char *out = NULL, *err = NULL;
    int rc = pgtest_cli_run(&out, &err, "listen --count 1 --pg-dsn '%s'", bouncer_dsn);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(err, "LISTEN does not work through this connection"));
    assert_non_null(strstr(err, "--source poll"));
    free(out);
    free(err);
}

/* Connected directly, the probe comes back: healthy, the probe channel was
 * LISTENed (the backend's last statement), and the probe is no event and no
 * notification in the counters; the next real notification is the first event.
 * Another listener on the channel hears only the real ones. Without the probe, no
 * probe channel. */
static void test_probe_passes_direct(void **state)
{
    (void)state;
    PGconn *c = pgtest_connect();
    /* Another listener on the user's channel: it must hear the real notifications
     * only, never a probe. */
    PGconn *other = pgtest_connect();
    pgtest_exec(other, "LISTEN " CHANNEL);
    for (int skip = 0; skip < 2; skip++) {
        static const char *const channels[] = {CHANNEL};
        pgcw_watcher_opts wo = {
            .channels = channels, .n_channels = 1, .skip_listen_probe = skip};
        pgcw_conn_opts co = {.conninfo = pgtest_dsn()};
        pgcw_watcher *w = NULL;
        pgcw_sub *sub = NULL;
        assert_int_equal(pgcw_watcher_new(&wo, &co, &w), PGCW_OK);
        assert_int_equal(pgcw_sub_new(w, NULL, &sub), PGCW_OK);
        if (pgcw_watcher_wait_healthy(w, WAIT_MS) != PGCW_OK)
            fail_msg("direct: %s", pgcw_watcher_errmsg(w));
        char sql[128];
        snprintf(sql, sizeof sql, "SELECT query FROM pg_stat_activity WHERE pid = %d",
                 pgcw_watcher_backend_pid(w));
        char *q = pgtest_query_value(c, sql);
        if ((strstr(q, "LISTEN pgcw_probe_") != NULL) == (bool)skip)
            fail_msg("skip_listen_probe %d, last statement: %s", skip, q);
        free(q);
        pgtest_exec(c, "SELECT pg_notify('" CHANNEL "', "
                       "'{\"operation\":\"insert\",\"table\":\"t\",\"sent_at\":"
                       "\"2024-01-01T00:00:00Z\"}')");
        const pgcw_event *e = NULL;
        while (pgcw_sub_try_get(sub, &e) != PGCW_OK)
            assert_int_equal(pgcw_watcher_run(w, 20), PGCW_OK);
        assert_int_equal(e->kind, PGCW_EVENT_CHANGE);
        assert_string_equal(e->channel, CHANNEL);
        assert_string_equal(e->table, "t");
        pgcw_event_free(e);
        pgcw_watcher_stats st;
        pgcw_watcher_stats_get(w, &st);
        assert_int_equal(st.notifications, 1);
        assert_int_equal(st.events, 1);
        assert_int_equal(st.malformed, 0);
        pgcw_sub_free(sub);
        pgcw_watcher_free(w);
    }
    /* Notifications arrive in commit order, so a probe sent there would come
     * before the second real one. */
    int heard = 0;
    int64_t until = pgtest_now_ms() + WAIT_MS;
    while (heard < 2) {
        PGnotify *n = NULL;
        assert_int_equal(PQconsumeInput(other), 1);
        while ((n = PQnotifies(other)) != NULL) {
            assert_string_equal(n->relname, CHANNEL);
            if (!strstr(n->extra, "\"table\":\"t\""))
                fail_msg("the other listener heard: %s", n->extra);
            PQfreemem(n);
            heard++;
        }
        if (heard < 2 && pgtest_now_ms() > until)
            fail_msg("the other listener heard %d of 2", heard);
        pgtest_sleep_ms(5);
    }
    assert_int_equal(heard, 2);
    PQfinish(other);
    PQfinish(c);
}

/* A probe that cannot be sent (the role's only connection is the LISTEN one) is
 * skipped with a warning: healthy, as before the probe existed. */
static void test_probe_unsent_is_skipped(void **state)
{
    (void)state;
    PGconn *c = pgtest_connect();
    pgtest_exec(c, "DROP ROLE IF EXISTS pgcw_one_conn; "
                   "CREATE ROLE pgcw_one_conn LOGIN CONNECTION LIMIT 1");
    char dsn[1024];
    snprintf(dsn, sizeof dsn, "%s user=pgcw_one_conn", pgtest_dsn());
    static const char *const channels[] = {CHANNEL};
    logged l = {0};
    pgcw_watcher_opts wo = {
        .channels = channels, .n_channels = 1, .log = on_log, .log_ctx = &l};
    pgcw_conn_opts co = {.conninfo = dsn};
    pgcw_watcher *w = NULL;
    assert_int_equal(pgcw_watcher_new(&wo, &co, &w), PGCW_OK);
    if (pgcw_watcher_wait_healthy(w, WAIT_MS) != PGCW_OK)
        fail_msg("one connection: %s", pgcw_watcher_errmsg(w));
    assert_non_null(strstr(l.last, "could not send the LISTEN probe"));
    assert_non_null(strstr(l.last, "assuming LISTEN works"));
    pgcw_watcher_free(w);
    pgtest_exec(c, "DROP ROLE pgcw_one_conn");
    PQfinish(c);
}

/* The poll source through PgBouncer: every insert, each its own transaction,
 * comes out once and in order. */
static void test_poll_through_pgbouncer(void **state)
{
    (void)state;
    PGconn *c = pgtest_connect();
    pgtest_exec(c, "DROP TABLE IF EXISTS items; CREATE TABLE items (id int primary key)");
    pgcw_install_opts io = {
        .channel = CHANNEL, .with_keys = true, .source = PGCW_WATCH_POLL};
    pgcw_install *in = NULL;
    assert_int_equal(pgcw_install_new(&io, &in), PGCW_OK);
    const char *tables[] = {"items"};
    if (pgcw_install_run(in, c, tables, 1, NULL) != PGCW_OK)
        fail_msg("install: %s", pgcw_install_errmsg(in));

    static const char *const channels[] = {CHANNEL};
    pgcw_watcher_opts wo = {.channels = channels,
                            .n_channels = 1,
                            .source = PGCW_WATCH_POLL,
                            .poll_interval_ms = 20};
    pgcw_conn_opts co = {.conninfo = bouncer_dsn};
    pgcw_watcher *w = NULL;
    pgcw_sub *sub = NULL;
    assert_int_equal(pgcw_watcher_new(&wo, &co, &w), PGCW_OK);
    assert_int_equal(pgcw_sub_new(w, NULL, &sub), PGCW_OK);
    assert_int_equal(pgcw_watcher_start(w), PGCW_OK);
    if (pgcw_watcher_wait_healthy(w, WAIT_MS) != PGCW_OK)
        fail_msg("poll through PgBouncer: %s", pgcw_watcher_errmsg(w));
    enum { N = 100 };
    PGconn *b = PQconnectdb(bouncer_dsn); /* the writers go through it too */
    assert_int_equal(PQstatus(b), CONNECTION_OK);
    for (int i = 1; i <= N; i++) {
        char sql[64];
        snprintf(sql, sizeof sql, "INSERT INTO items VALUES (%d)", i);
        pgtest_exec(i % 2 ? b : c, sql);
    }
    for (int i = 1; i <= N; i++) {
        const pgcw_event *e = NULL;
        if (pgcw_sub_get(sub, WAIT_MS, &e) != PGCW_OK)
            fail_msg("event %d of %d did not come", i, N);
        char key[16];
        snprintf(key, sizeof key, "[%d]", i);
        assert_int_equal(e->kind, PGCW_EVENT_CHANGE);
        assert_int_equal(e->source, PGCW_SOURCE_POLL);
        assert_int_equal(e->n_keys, 1);
        assert_string_equal(e->keys[0], key);
        pgcw_event_free(e);
    }
    assert_int_equal(pgcw_sub_pending(sub), 0);
    pgcw_watcher_stats st;
    pgcw_watcher_stats_get(w, &st);
    assert_int_equal(st.disconnects, 0);
    assert_int_equal(st.gaps, 0);
    PQfinish(b);
    assert_int_equal(pgcw_watcher_stop(w), PGCW_OK);
    pgcw_sub_free(sub);
    pgcw_watcher_free(w);
    assert_int_equal(pgcw_uninstall_run(in, c, NULL), PGCW_OK);
    pgcw_install_free(in);
    PQfinish(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_probe_reports_listen_broken),
        cmocka_unit_test(test_probe_passes_direct),
        cmocka_unit_test(test_probe_unsent_is_skipped),
        cmocka_unit_test(test_poll_through_pgbouncer),
    };
    return cmocka_run_group_tests(tests, start_bouncer, stop_bouncer);
}
