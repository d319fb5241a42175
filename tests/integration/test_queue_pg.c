/*
 * test_queue_pg.c - the server's NOTIFY queue filling behind a listener that stopped
 * reading (a session holding a transaction open): the watcher's statistics show the
 * usage rising while that session holds the queue, and falling once it lets go.
 * And what a cache write does when its notification cannot be queued: the write
 * fails, so it is never reported done while other clients keep their copy.
 */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pgcachewatch/pgcachewatch.h>

#include "cachetest.h"
#include "pgcw_testhook.h"
#include "pgtest.h"

static double usage_now(pgcw_watcher *w)
{
    pgcw_watcher_stats st;
    pgcw_watcher_stats_get(w, &st);
    return st.notify_queue_usage;
}

/* Waits up to 10 s for the usage the watcher reports to satisfy above/below. */
static double wait_usage(pgcw_watcher *w, double threshold, bool above)
{
    int64_t until = pgtest_now_ms() + 10000;
    for (;;) {
        double u = usage_now(w);
        if (above ? u > threshold : u < threshold)
            return u;
        if (pgtest_now_ms() > until)
            fail_msg("the queue usage stayed at %g (waiting for %s %g)", u,
                     above ? "above" : "below", threshold);
        pgtest_sleep_ms(20);
    }
}

static void test_queue_usage_reported(void **state)
{
    (void)state;
    pgcw_conn_opts co = {.conninfo = pgtest_dsn()};
    static const char *const channels[] = {"q_watch"};
    pgcw_watcher_opts wo = {
        .channels = channels, .n_channels = 1, .ping_interval_ms = 50};
    pgcw_watcher *w = NULL;
    assert_int_equal(pgcw_watcher_new(&wo, &co, &w), PGCW_OK);
    assert_int_equal(pgcw_watcher_start(w), PGCW_OK);
    assert_int_equal(pgcw_watcher_wait_healthy(w, 15000), PGCW_OK);

    /* A listener that stops reading: it holds the queue's tail. */
    PGconn *stuck = pgtest_connect();
    pgtest_exec(stuck, "LISTEN q_fill");
    pgtest_exec(stuck, "BEGIN; SELECT 1");
    PGconn *writer = pgtest_connect();
    pgtest_exec(writer, "SELECT pg_notify('q_fill', repeat(md5(g::text), 240))"
                        " FROM generate_series(1, 2000) g");
    /* 2000 payloads of 7.7 kB in an 8 GB queue: about 0.001 (other tests running
     * at the same time may add to it, never take from it: this session holds the
     * tail). */
    double high = wait_usage(w, 0.0005, true);
    assert_true(high < 0.05);

    /* It lets go (and reads); the queue empties once the others advance it. */
    pgtest_exec(stuck, "COMMIT");
    PGnotify *first;
    while ((first = PQnotifies(stuck)) == NULL && PQconsumeInput(stuck))
        pgtest_sleep_ms(5);
    PQfreemem(first);
    for (int i = 0; i < 50 && usage_now(w) >= high / 2; i++) {
        pgtest_exec(writer, "SELECT pg_notify('q_fill', 'nudge')");
        PQconsumeInput(stuck);
        pgtest_sleep_ms(50);
    }
    double low = wait_usage(w, high / 2, false);
    print_message("NOTIFY queue usage: %g held, %g after the listener let go\n", high,
                  low);
    PQfinish(stuck);
    PQfinish(writer);
    pgcw_watcher_free(w);
}

/* A full queue makes the commit of every notifying transaction fail with "too
 * many notifications in the NOTIFY queue" (SQLSTATE 54000). Filling PostgreSQL
 * 15's 8 GB queue is out of reach here, so a deferred constraint trigger raises
 * that error at the same moment: at commit, after the row was written and its
 * version returned. The set must fail, the table keep the old row, the writer's
 * own L1 not keep the new value, and the other client's copy stay right. */
static void test_full_queue_fails_the_write(void **state)
{
    (void)state;
    cachetest_init("qfull_");
    pgcw_cache *writer = cachetest_new("qfull_", NULL);
    pgcw_cache *reader = cachetest_new("qfull_", NULL);
    cachetest_set(writer, "k", "v1", 60000);
    cachetest_wait_value(reader, "k", "v1"); /* an L1 copy in the reader */
    PGconn *pg = pgtest_connect();
    pgtest_exec(pg, "CREATE FUNCTION qfull_queue_full() RETURNS trigger LANGUAGE plpgsql"
                    " AS $$ BEGIN RAISE EXCEPTION 'too many notifications in the NOTIFY"
                    " queue' USING ERRCODE = 'program_limit_exceeded'; END $$;"
                    "CREATE CONSTRAINT TRIGGER qfull_at_commit AFTER INSERT OR UPDATE ON"
                    " qfull_cache_entries DEFERRABLE INITIALLY DEFERRED FOR EACH ROW"
                    " EXECUTE FUNCTION qfull_queue_full()");
    pgcw_status st = pgcw_cache_set(writer, "k", 1, "v2", 2, 60000);
    assert_int_equal(st, PGCW_EQUERY);
    assert_non_null(strstr(pgcw_cache_errmsg(writer), "54000"));
    char *v = pgtest_query_value(
        pg, "SELECT convert_from(value, 'UTF8') FROM qfull_cache_entries"
            " WHERE cache_key = 'k'");
    assert_string_equal(v, "v1");
    free(v);
    char *w = cachetest_get(writer, "k"), *r = cachetest_get(reader, "k");
    assert_string_equal(w, "v1");
    assert_string_equal(r, "v1");
    free(w);
    free(r);
    pgtest_exec(pg, "DROP TRIGGER qfull_at_commit ON qfull_cache_entries");
    cachetest_set(writer, "k", "v3", 60000);
    cachetest_wait_value(reader, "k", "v3");
    PQfinish(pg);
    pgcw_cache_free(reader);
    pgcw_cache_free(writer);
}

/* The notify modes that send after commit, when PostgreSQL refuses the batch as on
 * a full queue (a test hook makes the notifier's statement call a function that
 * raises what a full queue raises; the error comes back through the real send
 * path). AFTER_COMMIT: the row is written but the call fails, saying so, so the
 * write is not reported done. BACKGROUND: the call returned at commit already; the
 * failure is logged and counted, and other clients keep their copy until it
 * expires: that mode trades this guarantee away (cache.h). */
static int logged_errors;
static void on_log(void *ctx, pgcw_log_level level, const char *msg)
{
    (void)ctx;
    if (level == PGCW_LOG_ERROR && strstr(msg, "54000"))
        logged_errors++;
}

static void test_full_queue_after_commit_modes(void **state)
{
    (void)state;
    PGconn *pg = pgtest_connect();
    pgtest_exec(pg, "CREATE OR REPLACE FUNCTION q_queue_full(text) RETURNS boolean"
                    " LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'too many"
                    " notifications in the NOTIFY queue' USING ERRCODE ="
                    " 'program_limit_exceeded'; END $$");
    pgcw__cache_test.notify_sql =
        "PREPARE pgcw_cache_notify (text, text) AS SELECT count(pg_notify($1, x)) FROM"
        " unnest(string_to_array($2, ',')) x WHERE public.q_queue_full(x)";
    static const char *const prefixes[] = {"qac_", "qbg_"};
    for (int i = 0; i < 2; i++) {
        cachetest_init(prefixes[i]);
        pgcw_cache *reader = cachetest_new(prefixes[i], NULL);
        pgcw_cache_opts wo = {.notify_mode = i == 0 ? PGCW_CACHE_NOTIFY_AFTER_COMMIT
                                                    : PGCW_CACHE_NOTIFY_BACKGROUND,
                              .log = on_log};
        pgcw_cache *writer = cachetest_new(prefixes[i], &wo);
        cachetest_set(reader, "k", "v1", 60000);
        cachetest_wait_value(reader, "k", "v1");
        logged_errors = 0;
        pgcw_status st = pgcw_cache_set(writer, "k", 1, "v2", 2, 60000);
        if (i == 0) {
            assert_int_equal(st, PGCW_EQUERY);
            const char *msg = pgcw_cache_errmsg(writer);
            assert_non_null(
                strstr(msg, "written, but its invalidation could not be sent"));
            assert_non_null(strstr(msg, "54000"));
        } else {
            assert_int_equal(st, PGCW_OK); /* returned at commit, before the send */
            int64_t until = pgtest_now_ms() + CACHETEST_WAIT_MS;
            while (cachetest_stats(writer).notify_failures == 0 &&
                   pgtest_now_ms() < until)
                pgtest_sleep_ms(10);
        }
        assert_true(cachetest_stats(writer).notify_failures >= 1);
        char q[128];
        snprintf(q, sizeof q,
                 "SELECT convert_from(value, 'UTF8') FROM %scache_entries"
                 " WHERE cache_key = 'k'",
                 prefixes[i]);
        char *row = pgtest_query_value(pg, q);
        assert_string_equal(row, "v2"); /* committed */
        free(row);
        char *r = cachetest_get(reader, "k");
        assert_string_equal(r, "v1"); /* the other client was not told */
        free(r);
        pgcw_cache_free(writer); /* BACKGROUND: logs once its thread is done */
        if (i == 1)
            assert_true(logged_errors >= 1);
        pgcw_cache_free(reader);
    }
    pgcw__cache_test.notify_sql = NULL;
    PQfinish(pg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_queue_usage_reported),
        cmocka_unit_test(test_full_queue_fails_the_write),
        cmocka_unit_test(test_full_queue_after_commit_modes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
