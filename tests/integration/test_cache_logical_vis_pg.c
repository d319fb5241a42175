/*
 * test_cache_logical_vis_pg.c - notify_mode LOGICAL and a change that arrives
 * before its transaction is visible, on a server of its own: with
 * synchronous_standby_names naming a standby that never comes, a writer with
 * synchronous_commit on flushes its commit record (so the slot decodes the
 * change and the cache evicts) and then waits for that standby before
 * PostgreSQL takes its transaction out of the running set: committed in the WAL,
 * invisible to every other session. A read then returns the old row (correct: it
 * is what the table shows) and fills the L1 with it; once the wait is cancelled
 * (pg_cancel_backend: "the transaction has already committed locally") the
 * transaction is visible, and the cache must serve the new value within moments,
 * not after its 60 s L1 TTL. The setting is server-wide (SIGHUP), so the shared
 * test server must never see it; every session but the writer's runs with
 * synchronous_commit = local, through the conninfo.
 */
#define _GNU_SOURCE
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
#include "pgserver.h"
#include "pgtest.h"

#define PREFIX "vis_"
#define NEW_WITHIN_MS 5000

static pgtest_server server;
static char dsn[1024]; /* the server's, with synchronous_commit = local */
static PGconn *admin;

static int setup(void **state)
{
    (void)state;
    pgtest_server_start(&server, "vis");
    snprintf(dsn, sizeof dsn, "%s options='-csynchronous_commit=local'", server.dsn);
    admin = PQconnectdb(dsn);
    assert_int_equal(PQstatus(admin), CONNECTION_OK);
    pgcw_cache_opts o = {.schema_prefix = PREFIX,
                         .notify_mode = PGCW_CACHE_NOTIFY_LOGICAL,
                         .durability = PGCW_CACHE_LOGGED};
    pgcw_conn_opts co = {.conninfo = dsn};
    char *err = NULL;
    if (pgcw_cache_init_db(&o, &co, NULL, &err) != PGCW_OK)
        fail_msg("init_db: %s", err);
    pgtest_exec(admin, "ALTER SYSTEM SET synchronous_standby_names = 'pgcw_nobody'");
    pgtest_exec(admin, "SELECT pg_reload_conf()");
    /* The reload is asynchronous: wait until a new session has it. */
    int64_t until = pgtest_now_ms() + CACHETEST_WAIT_MS;
    for (;;) {
        PGconn *c = PQconnectdb(dsn);
        char *v = pgtest_query_value(c, "SHOW synchronous_standby_names");
        bool set = strcmp(v, "pgcw_nobody") == 0;
        free(v);
        PQfinish(c);
        if (set)
            break;
        if (pgtest_now_ms() > until)
            fail_msg("synchronous_standby_names was not reloaded");
        pgtest_sleep_ms(10);
    }
    return 0;
}

/* Also when a test failed: the writer's wait ends with the server. */
static int teardown(void **state)
{
    (void)state;
    PQfinish(admin);
    admin = NULL;
    return pgtest_server_stop(&server);
}

static pgcw_cache *logical_cache(void)
{
    pgcw_cache_opts o = {.schema_prefix = PREFIX,
                         .notify_mode = PGCW_CACHE_NOTIFY_LOGICAL,
                         .l1_ttl_ms = 60000};
    pgcw_conn_opts co = {.conninfo = dsn};
    pgcw_cache *c = NULL;
    assert_int_equal(pgcw_cache_new(&o, &co, &c), PGCW_OK);
    if (pgcw_cache_wait_healthy(c, CACHETEST_WAIT_MS) != PGCW_OK)
        fail_msg("cache: %s", pgcw_cache_errmsg(c));
    return c;
}

/* get(key) is want, and served from the L1 when from_l1, else from the table. */
static void expect_get(pgcw_cache *c, const char *key, const char *want, bool from_l1)
{
    pgcw_cache_stats s0 = cachetest_stats(c);
    char *got = cachetest_get(c, key);
    assert_non_null(got);
    assert_string_equal(got, want);
    free(got);
    pgcw_cache_stats s1 = cachetest_stats(c);
    assert_int_equal(s1.l1_hits, s0.l1_hits + from_l1);
    assert_int_equal(s1.l2_hits, s0.l2_hits + !from_l1);
}

/* The cache holds key = "old" in its L1, every change so far seen visible. */
static void hold_old(pgcw_cache *b, const char *key)
{
    uint64_t received = cachetest_stats(b).invalidations_received;
    cachetest_set(b, key, "old", 600000);
    CACHETEST_WAIT_STAT(b, invalidations_received, received + 1);
    cachetest_wait_visible(b);
    expect_get(b, key, "old", false);
    expect_get(b, key, "old", true);
}

/* A session with synchronous_commit on that sends sql (one implicit transaction)
 * and hangs in its commit, waiting for the standby: until then invisible. */
static PGconn *hanging_writer(const char *sql)
{
    PGconn *w = PQconnectdb(server.dsn);
    assert_int_equal(PQstatus(w), CONNECTION_OK);
    char *sc = pgtest_query_value(w, "SHOW synchronous_commit");
    assert_string_equal(sc, "on");
    free(sc);
    assert_int_equal(PQsendQuery(w, sql), 1);
    char q[128];
    snprintf(q, sizeof q,
             "SELECT count(*) FROM pg_stat_activity WHERE pid = %d AND wait_event = "
             "'SyncRep'",
             PQbackendPID(w));
    int64_t until = pgtest_now_ms() + CACHETEST_WAIT_MS;
    while (pgtest_query_int(admin, q) != 1) {
        if (pgtest_now_ms() > until)
            fail_msg("the writer never waited for the standby");
        pgtest_sleep_ms(2);
    }
    return w;
}

/* Ends the writer's wait: its transaction becomes visible. */
static void release(PGconn *w)
{
    char q[96];
    snprintf(q, sizeof q, "SELECT pg_cancel_backend(%d)", PQbackendPID(w));
    pgtest_exec(admin, q);
    PGresult *r;
    while ((r = PQgetResult(w)) != NULL) {
        /* COMMAND_OK, with the WARNING "canceling wait for synchronous
         * replication ... already committed locally" */
        assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
        PQclear(r);
    }
    PQfinish(w);
}

/* Polls get(key) until it is want; fails after NEW_WITHIN_MS. Returns the ms. */
static int64_t wait_new(pgcw_cache *b, const char *key, const char *want)
{
    int64_t t0 = pgtest_now_ms();
    for (;;) {
        char *got = cachetest_get(b, key);
        bool same = got && strcmp(got, want) == 0;
        if (!same && pgtest_now_ms() - t0 > NEW_WITHIN_MS)
            fail_msg("%s still reads \"%s\" %d ms after its new value became visible",
                     key, got ? got : "(none)", NEW_WITHIN_MS);
        free(got);
        if (same)
            return pgtest_now_ms() - t0;
        pgtest_sleep_ms(1);
    }
}

static void test_change_before_visible(void **state)
{
    (void)state;
    pgcw_cache *b = logical_cache();
    hold_old(b, "k");
    pgcw_cache_stats s0 = cachetest_stats(b);
    PGconn *w = hanging_writer("UPDATE " PREFIX "cache_entries SET value = "
                               "convert_to('new', 'UTF8'), version = version + 1 "
                               "WHERE cache_key = 'k'");
    /* Decoded and evicted, yet invisible: the table still shows the old row, and
     * the read fills the L1 with it. */
    CACHETEST_WAIT_STAT(b, invalidations_applied, s0.invalidations_applied + 1);
    expect_get(b, "k", "old", false);
    expect_get(b, "k", "old", true);

    release(w);
    int64_t ms = wait_new(b, "k", "new");
    /* Asked about (and found invisible) while the writer waited, confirmed once. */
    pgcw_cache_stats s = cachetest_stats(b);
    assert_true(s.visibility_rechecks > s0.visibility_rechecks);
    assert_int_equal(s.visibility_confirmed, s0.visibility_confirmed + 1);
    assert_int_equal(s.visibility_pending, 0);
    print_message("the new value served %lld ms after the writer's release; %llu "
                  "checks, %llu re-checks\n",
                  (long long)ms, (unsigned long long)s.visibility_checks,
                  (unsigned long long)s.visibility_rechecks);
    expect_get(b, "k", "new", true);
    pgcw_cache_free(b);
}

/* More keys in one invisible transaction than the cache keeps waiting (1000
 * here, 65536 by default; 1501 keys): the L1 is flushed at once (a gap) and again once
 * the transaction is visible. */
static void test_pending_overflow(void **state)
{
    (void)state;
    pgcw__cache_test.vis_max_items = 1000;
    pgcw_cache *b = logical_cache();
    hold_old(b, "j");
    pgcw_cache_stats s0 = cachetest_stats(b);
    PGconn *w = hanging_writer(
        "WITH u AS (UPDATE " PREFIX "cache_entries SET value = convert_to('new', "
        "'UTF8'), version = version + 1 WHERE cache_key = 'j') INSERT INTO " PREFIX
        "cache_entries (cache_key, value) SELECT 'many:' || g, '\\x00' FROM "
        "generate_series(1, 1500) g");
    /* Every change delivered: one overflow (the 500 keys after it fit). */
    CACHETEST_WAIT_STAT(b, invalidations_received, s0.invalidations_received + 1501);
    pgcw_cache_stats s1 = cachetest_stats(b);
    assert_int_equal(s1.visibility_overflows, s0.visibility_overflows + 1);
    assert_true(s1.flushes > s0.flushes);
    expect_get(b, "j", "old", false);
    expect_get(b, "j", "old", true);

    release(w);
    wait_new(b, "j", "new");
    cachetest_wait_visible(b);
    assert_true(cachetest_stats(b).flushes > s1.flushes);
    pgcw_cache_free(b);
    pgcw__cache_test.vis_max_items = 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_change_before_visible),
        cmocka_unit_test(test_pending_overflow),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
