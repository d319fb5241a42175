/*
 * test_cache_logical_pg.c - PGCW_CACHE_NOTIFY_LOGICAL against a real server
 * (wal_level = logical): init_db refuses an UNLOGGED table and creates the
 * publication for a LOGGED one, once; a cache refuses a shared watcher; pool
 * connections refuse a table that is not published; a write through one cache
 * evicts another cache's copy while sending no notification (the trigger still
 * notifies for plain SQL, whose writes evict too); a TRUNCATE flushes; a killed
 * walsender flushes the L1, a new temporary slot takes over and later reads are
 * fresh; a freed cache leaves no slot behind.
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
#include "pgtest.h"

static PGconn *conn;

static int setup(void **state)
{
    (void)state;
    conn = pgtest_connect();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    PQfinish(conn);
    return 0;
}

/* init_db in LOGICAL mode with the given durability; returns its status, and its
 * message in msg. */
static pgcw_status init_logical(const char *prefix, pgcw_cache_durability d, char *msg,
                                size_t len)
{
    pgcw_cache_opts o = {.schema_prefix = prefix,
                         .notify_mode = PGCW_CACHE_NOTIFY_LOGICAL,
                         .durability = d};
    pgcw_conn_opts co = {.conninfo = pgtest_dsn()};
    char *err = NULL;
    pgcw_status st = pgcw_cache_init_db(&o, &co, NULL, &err);
    snprintf(msg, len, "%s", err ? err : "");
    pgcw_free(err);
    return st;
}

static long long publications(const char *prefix)
{
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM pg_publication_tables WHERE pubname = "
             "'%scache_entries_pub' AND tablename = '%scache_entries'",
             prefix, prefix);
    return pgtest_query_int(conn, sql);
}

static long long cache_slots(void)
{
    return pgtest_query_int(conn, "SELECT count(*) FROM pg_replication_slots WHERE "
                                  "slot_name LIKE 'pgcw\\_cache\\_%'");
}

/* Waits until n of the caches' slots exist: a freed cache's walsender drops its
 * temporary slot as it exits, which may be just after the cache closed. */
static void wait_slots(long long n)
{
    int64_t until = pgtest_now_ms() + CACHETEST_WAIT_MS;
    while (cache_slots() != n && pgtest_now_ms() < until)
        pgtest_sleep_ms(10);
    assert_int_equal(cache_slots(), n);
}

static pgcw_cache *logical_cache(const char *prefix)
{
    pgcw_cache_opts o = {.notify_mode = PGCW_CACHE_NOTIFY_LOGICAL};
    return cachetest_new(prefix, &o);
}

static void test_unlogged_refused(void **state)
{
    (void)state;
    char msg[1024];
    assert_int_equal(init_logical("lgu_", PGCW_CACHE_UNLOGGED, msg, sizeof msg),
                     PGCW_EQUERY);
    assert_non_null(strstr(msg, "needs a LOGGED cache table"));
    assert_non_null(strstr(msg, "SET LOGGED"));
    assert_int_equal(publications("lgu_"), 0);
}

static void test_publication_created_once(void **state)
{
    (void)state;
    char msg[1024];
    assert_int_equal(init_logical("lgp_", PGCW_CACHE_LOGGED, msg, sizeof msg), PGCW_OK);
    assert_int_equal(publications("lgp_"), 1);
    assert_int_equal(init_logical("lgp_", PGCW_CACHE_LOGGED, msg, sizeof msg), PGCW_OK);
    assert_int_equal(publications("lgp_"), 1);
}

/* A watcher of the wrong kind would never evict: refused both ways. */
static void test_wrong_watcher_refused(void **state)
{
    (void)state;
    pgcw_watcher *listen = NULL, *logical = NULL;
    pgcw_conn_opts co = {.conninfo = pgtest_dsn()};
    assert_int_equal(pgcw_watcher_new(NULL, &co, &listen), PGCW_OK);
    pgcw_watcher_opts wo = {.source = PGCW_WATCH_LOGICAL,
                            .slot_name = "lgr_slot",
                            .publication = "lgr_cache_entries_pub",
                            .temporary_slot = true};
    assert_int_equal(pgcw_watcher_new(&wo, &co, &logical), PGCW_OK);
    pgcw_cache_opts o = {.notify_mode = PGCW_CACHE_NOTIFY_LOGICAL, .watcher = listen};
    pgcw_cache *c = NULL;
    assert_int_equal(pgcw_cache_new(&o, &co, &c), PGCW_EINVAL);
    assert_null(c);
    o = (pgcw_cache_opts){.notify_mode = PGCW_CACHE_NOTIFY_TRIGGER, .watcher = logical};
    assert_int_equal(pgcw_cache_new(&o, &co, &c), PGCW_EINVAL);
    assert_null(c);
    pgcw_watcher_free(listen);
    pgcw_watcher_free(logical);
}

/* A LOGGED table made in TRIGGER mode has no publication: calls say so. */
static void test_unpublished_table_refused(void **state)
{
    (void)state;
    pgcw_cache_opts o = {.schema_prefix = "lgn_", .durability = PGCW_CACHE_LOGGED};
    pgcw_conn_opts co = {.conninfo = pgtest_dsn()};
    assert_int_equal(pgcw_cache_init_db(&o, &co, NULL, NULL), PGCW_OK);
    pgcw_cache *c = logical_cache("lgn_");
    void *v = NULL;
    size_t len = 0;
    assert_int_equal(pgcw_cache_get(c, "k", 1, &v, &len), PGCW_EQUERY);
    assert_non_null(strstr(pgcw_cache_errmsg(c), "does not publish the cache table"));
    pgcw_cache_free(c);
}

#define WAIT_STAT(c, field, n)                                                           \
    do {                                                                                 \
        CACHETEST_WAIT_STAT((c), field, (n));                                            \
        cachetest_wait_visible(c);                                                       \
    } while (0)

/* The copy in b's L1 is served from it (a hit, not a table read). */
static void expect_l1_hit(pgcw_cache *b, const char *key, const char *want)
{
    uint64_t hits = cachetest_stats(b).l1_hits;
    char *got = cachetest_get(b, key);
    assert_non_null(got);
    assert_string_equal(got, want);
    free(got);
    assert_int_equal(cachetest_stats(b).l1_hits, hits + 1);
}

static void test_write_evicts_without_notify(void **state)
{
    (void)state;
    char msg[1024];
    assert_int_equal(init_logical("lgw_", PGCW_CACHE_LOGGED, msg, sizeof msg), PGCW_OK);
    pgcw_cache *a = logical_cache("lgw_"), *b = logical_cache("lgw_");
    PGconn *listener = pgtest_connect();
    pgtest_exec(listener, "LISTEN cache_events");

    cachetest_set(a, "k", "v1", 60000);
    /* b's first read fills its L1 once a's insert was decoded. */
    WAIT_STAT(b, invalidations_received, 1);
    char *v = cachetest_get(b, "k");
    assert_string_equal(v, "v1");
    free(v);
    expect_l1_hit(b, "k", "v1");

    uint64_t applied = cachetest_stats(b).invalidations_applied;
    cachetest_set(a, "k", "v2", 60000);
    WAIT_STAT(b, invalidations_applied, applied + 1);
    v = cachetest_get(b, "k");
    assert_string_equal(v, "v2");
    free(v);

    /* Plain SQL (not this library) still notifies, and its write evicts b's copy. */
    expect_l1_hit(b, "k", "v2");
    applied = cachetest_stats(b).invalidations_applied;
    pgtest_exec(conn, "UPDATE lgw_cache_entries SET value = convert_to('v3', 'UTF8'), "
                      "version = version + 1 WHERE cache_key = 'k'");
    WAIT_STAT(b, invalidations_applied, applied + 1);
    v = cachetest_get(b, "k");
    assert_string_equal(v, "v3");
    free(v);
    /* The first notification the listener hears is plain SQL's (version 3): the
     * queue is in commit order, so had a's writes notified, theirs came first. */
    int64_t until = pgtest_now_ms() + CACHETEST_WAIT_MS;
    PGnotify *nf = NULL;
    while (!nf && pgtest_now_ms() < until) {
        PQconsumeInput(listener);
        nf = PQnotifies(listener);
        if (!nf)
            pgtest_sleep_ms(5);
    }
    assert_non_null(nf);
    assert_string_equal(nf->extra, "u3|6b");
    PQfreemem(nf);

    PQfinish(listener);
    pgcw_cache_free(a);
    pgcw_cache_free(b);
}

/* A logical watcher of the caller's, shared with a sink of its own that sees the
 * same change events the cache's sink evicts by. */
static void count_changes(void *ctx, const pgcw_event *ev)
{
    if (ev->kind == PGCW_EVENT_CHANGE && ev->table &&
        strcmp(ev->table, "lgs_cache_entries") == 0)
        (*(int *)ctx)++;
}

static void test_shared_logical_watcher(void **state)
{
    (void)state;
    char msg[1024];
    assert_int_equal(init_logical("lgs_", PGCW_CACHE_LOGGED, msg, sizeof msg), PGCW_OK);
    pgcw_conn_opts co = {.conninfo = pgtest_dsn()};
    pgcw_watcher_opts wo = {.source = PGCW_WATCH_LOGICAL,
                            .slot_name = "lgs_slot",
                            .publication = "lgs_cache_entries_pub",
                            .temporary_slot = true};
    pgcw_watcher *w = NULL;
    assert_int_equal(pgcw_watcher_new(&wo, &co, &w), PGCW_OK);
    pgcw_cache_opts o = {.notify_mode = PGCW_CACHE_NOTIFY_LOGICAL, .watcher = w};
    pgcw_cache *b = cachetest_new("lgs_", &o), *a = logical_cache("lgs_");
    int changes = 0; /* written by the watcher's thread, read after its stop */
    pgcw_sink *sink = NULL;
    pgcw_sink_opts so = {.fn = count_changes, .ctx = &changes};
    assert_int_equal(pgcw_sink_new(w, &so, &sink), PGCW_OK);
    assert_int_equal(pgcw_watcher_start(w), PGCW_OK);
    assert_int_equal(pgcw_cache_wait_healthy(b, CACHETEST_WAIT_MS), PGCW_OK);

    cachetest_set(a, "k", "v1", 60000);
    WAIT_STAT(b, invalidations_received, 1);
    free(cachetest_get(b, "k"));
    expect_l1_hit(b, "k", "v1");
    uint64_t applied = cachetest_stats(b).invalidations_applied;
    cachetest_set(a, "k", "v2", 60000);
    WAIT_STAT(b, invalidations_applied, applied + 1);
    char *v = cachetest_get(b, "k");
    assert_string_equal(v, "v2");
    free(v);
    pgcw_watcher_stop(w);
    assert_true(changes >= 2);
    pgcw_cache_free(a);
    pgcw_cache_free(b);
    pgcw_sink_free(sink);
    pgcw_watcher_free(w);
}

/* A copy read before its change was visible is evicted again once it is
 * (test_cache_logical_vis_pg), so this mode sets no L1 lifetime of its own: a
 * copy outlives the 1 s cap it once had, and an l1_ttl_ms set still caps. */
static void test_copies_expire(void **state)
{
    (void)state;
    char msg[1024];
    assert_int_equal(init_logical("lge_", PGCW_CACHE_LOGGED, msg, sizeof msg), PGCW_OK);
    pgcw_cache *b = logical_cache("lge_");
    pgcw_cache_opts o = {.notify_mode = PGCW_CACHE_NOTIFY_LOGICAL, .l1_ttl_ms = 300};
    pgcw_cache *capped = cachetest_new("lge_", &o);
    cachetest_set(b, "k", "v1", 60000);
    WAIT_STAT(b, invalidations_received, 1);
    WAIT_STAT(capped, invalidations_received, 1);
    free(cachetest_get(b, "k"));
    free(cachetest_get(capped, "k"));
    expect_l1_hit(b, "k", "v1");
    expect_l1_hit(capped, "k", "v1");
    pgtest_sleep_ms(1200);
    expect_l1_hit(b, "k", "v1");
    pgcw_cache_stats before = cachetest_stats(capped);
    char *v = cachetest_get(capped, "k");
    assert_string_equal(v, "v1");
    free(v);
    pgcw_cache_stats after = cachetest_stats(capped);
    assert_int_equal(after.l1_hits, before.l1_hits);
    assert_int_equal(after.l2_hits, before.l2_hits + 1);
    pgcw_cache_free(capped);
    pgcw_cache_free(b);
}

static void test_truncate_flushes(void **state)
{
    (void)state;
    char msg[1024];
    assert_int_equal(init_logical("lgt_", PGCW_CACHE_LOGGED, msg, sizeof msg), PGCW_OK);
    pgcw_cache *b = logical_cache("lgt_");
    cachetest_set(b, "k", "v1", 60000);
    WAIT_STAT(b, invalidations_received, 1);
    free(cachetest_get(b, "k"));
    expect_l1_hit(b, "k", "v1");
    uint64_t flushes = cachetest_stats(b).flushes;
    pgtest_exec(conn, "TRUNCATE lgt_cache_entries");
    WAIT_STAT(b, flushes, flushes + 1);
    assert_null(cachetest_get(b, "k"));
    pgcw_cache_free(b);
}

static void test_walsender_killed(void **state)
{
    (void)state;
    char msg[1024];
    assert_int_equal(init_logical("lgk_", PGCW_CACHE_LOGGED, msg, sizeof msg), PGCW_OK);
    wait_slots(0); /* the earlier tests' caches are gone */
    pgcw_cache *b = logical_cache("lgk_");
    assert_int_equal(cache_slots(), 1);
    assert_int_equal(pgtest_query_int(conn, "SELECT count(*) FROM pg_replication_slots "
                                            "WHERE slot_name LIKE 'pgcw\\_cache\\_%' AND "
                                            "temporary"),
                     1);
    cachetest_set(b, "k", "v1", 60000);
    WAIT_STAT(b, invalidations_received, 1);
    free(cachetest_get(b, "k"));
    expect_l1_hit(b, "k", "v1");

    uint64_t flushes = cachetest_stats(b).flushes;
    pgtest_exec(conn, "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots "
                      "WHERE slot_name LIKE 'pgcw\\_cache\\_%'");
    WAIT_STAT(b, flushes, flushes + 1);
    /* Written while the slot was gone: no event will ever name it. */
    pgtest_exec(conn, "UPDATE lgk_cache_entries SET value = convert_to('v2', 'UTF8') "
                      "WHERE cache_key = 'k'");
    assert_int_equal(pgcw_cache_wait_healthy(b, CACHETEST_WAIT_MS), PGCW_OK);
    char *v = cachetest_get(b, "k");
    assert_string_equal(v, "v2");
    free(v);
    pgcw_cache_free(b);
    /* Temporary: the server dropped it with the connection. */
    wait_slots(0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unlogged_refused),
        cmocka_unit_test(test_publication_created_once),
        cmocka_unit_test(test_wrong_watcher_refused),
        cmocka_unit_test(test_shared_logical_watcher),
        cmocka_unit_test(test_unpublished_table_refused),
        cmocka_unit_test(test_write_evicts_without_notify),
        cmocka_unit_test(test_copies_expire),
        cmocka_unit_test(test_truncate_flushes),
        cmocka_unit_test(test_walsender_killed),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
