/*
 * test_cache_coherence_pg.c - the consistency contract across clients, against a
 * real server: a write in another process evicts this process's L1 copy; versions
 * decide (an older notification, sent by plain SQL in postgres-cache's payload
 * format, keeps the copy, a newer one or a delete evicts it); a killed watcher
 * backend flushes the L1 and later reads are fresh; a fill that raced an
 * invalidation is refused; with disable_notify the L1 lives under l1_ttl_ms alone
 * and no LISTEN connection is opened; rows written by plain SQL in the
 * postgres-cache layout are read, and ours read back by plain SQL.
 */
#define _GNU_SOURCE
#include <poll.h>
#include <pthread.h>
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

#include "cachetest.h"
#include "pgtest.h"

/* Changes the row by plain SQL with triggers off for the session: no notification,
 * so only a copy that was evicted (or never kept) can show the new value. */
static void silent_update(PGconn *pg, const char *table, const char *key,
                          const char *value)
{
    char sql[512];
    snprintf(sql, sizeof sql,
             "SET session_replication_role = replica; UPDATE %s SET value ="
             " convert_to('%s', 'UTF8') WHERE cache_key = '%s';"
             " SET session_replication_role = origin",
             table, value, key);
    pgtest_exec(pg, sql);
}

static void notify(PGconn *pg, const char *payload)
{
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT pg_notify('cache_events', '%s')", payload);
    pgtest_exec(pg, sql);
}

static void wait_received(pgcw_cache *c, uint64_t n)
{
    int64_t until = pgtest_now_ms() + CACHETEST_WAIT_MS;
    while (cachetest_stats(c).invalidations_received < n) {
        if (pgtest_now_ms() > until)
            fail_msg("only %llu notifications reached the sink",
                     (unsigned long long)cachetest_stats(c).invalidations_received);
        pgtest_sleep_ms(2);
    }
}

static void test_other_process_evicts(void **state)
{
    (void)state;
    cachetest_init("xp_");
    pgcw_cache *c = cachetest_new("xp_", NULL);
    cachetest_set(c, "k", "one", 60000);
    cachetest_wait_value(c, "k", "one");
    int go[2], done[2];
    assert_int_equal(pipe(go), 0);
    assert_int_equal(pipe(done), 0);
    pid_t kid = fork();
    assert_true(kid >= 0);
    if (kid == 0) {
        char b;
        if (read(go[0], &b, 1) != 1)
            _exit(3);
        /* No L1, so no thread: a child of a threaded parent must not start any
         * (TSan refuses it). */
        pgcw_cache_opts o = {.schema_prefix = "xp_", .disable_l1 = true};
        pgcw_conn_opts co = {.conninfo = pgtest_dsn()};
        pgcw_cache *w = NULL;
        if (pgcw_cache_new(&o, &co, &w) != PGCW_OK)
            _exit(2);
        pgcw_status st = pgcw_cache_set(w, "k", 1, "two", 3, 60000);
        pgcw_cache_free(w);
        b = 'd';
        _exit(st == PGCW_OK && write(done[1], &b, 1) == 1 ? 0 : 1);
    }
    /* The copy is in the L1 now: reads are hits. */
    uint64_t hits = cachetest_stats(c).l1_hits;
    free(cachetest_get(c, "k"));
    assert_int_equal(cachetest_stats(c).l1_hits, hits + 1);
    char b = 'g';
    assert_int_equal(write(go[1], &b, 1), 1);
    struct pollfd pfd = {.fd = done[0], .events = POLLIN};
    assert_int_equal(poll(&pfd, 1, CACHETEST_WAIT_MS), 1);
    assert_int_equal(read(done[0], &b, 1), 1); /* the other process committed */
    int64_t took = cachetest_wait_value(c, "k", "two");
    assert_true(took < 5000);
    assert_int_equal(pgtest_wait_pid(kid, 30000), 0);
    assert_true(cachetest_stats(c).invalidations_applied >= 1);
    pgcw_cache_free(c);
    close(go[0]);
    close(go[1]);
    close(done[0]);
    close(done[1]);
}

static void test_versions_decide(void **state)
{
    (void)state;
    cachetest_init("ver_");
    pgcw_cache *c = cachetest_new("ver_", NULL);
    for (int i = 0; i < 3; i++)
        cachetest_set(c, "k", "mine", 60000); /* version 3 */
    wait_received(c, 3);
    cachetest_wait_value(c, "k", "mine");
    PGconn *pg = pgtest_connect();
    silent_update(pg, "ver_cache_entries", "k", "changed");
    uint64_t n = cachetest_stats(c).invalidations_received;
    notify(pg, "u2|6b"); /* older than our copy: kept */
    wait_received(c, n + 1);
    char *v = cachetest_get(c, "k");
    assert_string_equal(v, "mine");
    free(v);
    notify(pg, "u3|6b"); /* the same version: kept */
    wait_received(c, n + 2);
    v = cachetest_get(c, "k");
    assert_string_equal(v, "mine");
    free(v);
    notify(pg, "u4|6b"); /* newer: evicted, the next read is the table's */
    wait_received(c, n + 3);
    v = cachetest_get(c, "k");
    assert_string_equal(v, "changed");
    free(v);
    /* A delete evicts whatever its version; the 0x1F form is understood too. */
    silent_update(pg, "ver_cache_entries", "k", "again");
    notify(pg, "d1\x1f"
               "k");
    wait_received(c, n + 4);
    v = cachetest_get(c, "k");
    assert_string_equal(v, "again");
    free(v);
    PQfinish(pg);
    pgcw_cache_free(c);
}

static void test_watcher_killed_flushes(void **state)
{
    (void)state;
    cachetest_init("gap_");
    pgcw_cache *c = cachetest_new("gap_", NULL);
    cachetest_set(c, "k", "before", 60000);
    cachetest_wait_value(c, "k", "before");
    free(cachetest_get(c, "k"));
    PGconn *pg = pgtest_connect();
    uint64_t flushes = cachetest_stats(c).flushes;
    assert_int_equal(
        pgtest_query_int(
            pg,
            "SELECT count(pg_terminate_backend(pid)) FROM"
            " pg_stat_activity WHERE datname ="
            " current_database() AND query LIKE '%LISTEN %' AND pid <> pg_backend_pid()"),
        1);
    /* Written while nobody listens: no notification will ever tell us. */
    silent_update(pg, "gap_cache_entries", "k", "during");
    int64_t until = pgtest_now_ms() + CACHETEST_WAIT_MS;
    while (cachetest_stats(c).flushes == flushes && pgtest_now_ms() < until)
        pgtest_sleep_ms(2);
    assert_true(cachetest_stats(c).flushes > flushes);
    /* Fresh at once (bypassing while unhealthy, then from a flushed L1). */
    char *v = cachetest_get(c, "k");
    assert_string_equal(v, "during");
    free(v);
    assert_int_equal(pgcw_cache_wait_healthy(c, CACHETEST_WAIT_MS), PGCW_OK);
    v = cachetest_get(c, "k");
    assert_string_equal(v, "during");
    free(v);
    PQfinish(pg);
    pgcw_cache_free(c);
}

/* A fill that raced an invalidation: the loader runs while another client writes
 * the key and the notification is processed; the value it loaded is neither
 * written nor kept in the L1. */
typedef struct racing {
    PGconn *pg;
    pgcw_cache *c;
} racing;

static pgcw_status racing_loader(void *ctx, const void *key, size_t key_len,
                                 pgcw_cache_result *r)
{
    (void)key;
    (void)key_len;
    racing *x = ctx;
    uint64_t n = cachetest_stats(x->c).invalidations_received;
    pgtest_exec(x->pg, "INSERT INTO race_cache_entries (cache_key, value) VALUES"
                       " ('k', 'newer')");
    wait_received(x->c, n + 1);
    return pgcw_cache_result_set(r, "older", 5);
}

static void test_raced_fill_refused(void **state)
{
    (void)state;
    cachetest_init("race_");
    racing x = {pgtest_connect(), cachetest_new("race_", NULL)};
    void *v = NULL;
    size_t len = 0;
    assert_int_equal(pgcw_cache_get_or_set(x.c, "k", 1, 0, racing_loader, &x, &v, &len),
                     PGCW_OK);
    assert_memory_equal(v, "older", 5);
    pgcw_free(v);
    char *got = cachetest_get(x.c, "k");
    assert_string_equal(got, "newer");
    free(got);
    PQfinish(x.pg);
    pgcw_cache_free(x.c);
}

static void test_disable_notify(void **state)
{
    (void)state;
    cachetest_init("ttlonly_");
    PGconn *pg = pgtest_connect();
    /* The cache's connections carry a name of their own: counting every LISTEN on
     * the server raced the other tests that ctest -j runs beside this one. */
    pgcw_cache_opts o = {
        .schema_prefix = "ttlonly_", .disable_notify = true, .l1_ttl_ms = 500};
    pgcw_conn_opts co = {.conninfo = pgtest_dsn(), .application_name = "pgcw_ttlonly"};
    pgcw_cache *c = NULL;
    assert_int_equal(pgcw_cache_new(&o, &co, &c), PGCW_OK);
    cachetest_set(c, "k", "one", 60000);
    free(cachetest_get(c, "k"));
    /* The name finds the cache's pool connection, and no LISTEN among them. */
    assert_true(pgtest_query_int(pg, "SELECT count(*) FROM pg_stat_activity WHERE"
                                     " application_name = 'pgcw_ttlonly'") >= 1);
    assert_int_equal(pgtest_query_int(pg, "SELECT count(*) FROM pg_stat_activity WHERE"
                                          " application_name = 'pgcw_ttlonly' AND"
                                          " query LIKE '%LISTEN %'"),
                     0);
    int64_t t0 = pgtest_now_ms();
    pgtest_exec(pg,
                "UPDATE ttlonly_cache_entries SET value = 'two', version = version + 1");
    /* Stale for at most l1_ttl_ms, then fresh. */
    int64_t took = cachetest_wait_value(c, "k", "two");
    assert_true(pgtest_now_ms() - t0 <= 500 + 300);
    (void)took;
    assert_true(cachetest_stats(c).l1_hits >= 1);
    PQfinish(pg);
    pgcw_cache_free(c);
}

static void test_plain_sql_interop(void **state)
{
    (void)state;
    cachetest_init("py_");
    pgcw_cache *c = cachetest_new("py_", NULL);
    PGconn *pg = pgtest_connect();
    /* A row as postgres-cache writes it (JSON text, client-side UTC expiry). */
    pgtest_exec(pg, "INSERT INTO py_cache_entries (cache_key, value, expires_at) VALUES"
                    " ('profile:456', convert_to('{\"name\":\"Nova\"}', 'UTF8'),"
                    " timezone('UTC', now()) + interval '120 s')");
    char *v = cachetest_get(c, "profile:456");
    assert_string_equal(v, "{\"name\":\"Nova\"}");
    free(v);
    /* Ours, read back the way postgres-cache reads it and as JSON. */
    cachetest_set(c, "profile:123", "{\"name\":\"Ava\"}", 300000);
    char *name = pgtest_query_value(
        pg, "SELECT convert_from(value, 'UTF8')::json->>'name' FROM py_cache_entries"
            " WHERE cache_key = 'profile:123' AND (expires_at IS NULL OR expires_at >"
            " timezone('UTC', now()))");
    assert_string_equal(name, "Ava");
    free(name);
    PQfinish(pg);
    pgcw_cache_free(c);
}

/* Notifications on the channel seen by a plain LISTEN connection, for up to ms. */
static int count_notifications(PGconn *pg, int want, int64_t ms)
{
    int n = 0;
    int64_t until = pgtest_now_ms() + ms;
    while (pgtest_now_ms() < until && n < want + 1) {
        PQconsumeInput(pg);
        PGnotify *nt;
        while ((nt = PQnotifies(pg))) {
            n++;
            PQfreemem(nt);
        }
        pgtest_sleep_ms(5);
    }
    return n;
}

static pgcw_status count_loads(void *ctx, const void *key, size_t key_len,
                               pgcw_cache_result *r)
{
    (void)key;
    (void)key_len;
    ++*(int *)ctx;
    return pgcw_cache_result_set(r, "loaded", 6);
}

typedef struct writer_arg {
    pgcw_cache *c;
    int id;
    int failures;
} writer_arg;

static void *many_writes(void *arg)
{
    writer_arg *w = arg;
    for (int i = 0; i < 50; i++) {
        char key[32];
        snprintf(key, sizeof key, "w%d:%d", w->id, i);
        if (pgcw_cache_set(w->c, key, strlen(key), "v", 1, 60000) != PGCW_OK)
            w->failures++;
    }
    return NULL;
}

/* Notifying after commit: our writes skip the trigger and are announced after
 * commit, one notification each, batched; other writers still notify from the
 * trigger. */
static void notify_after_commit(pgcw_cache_notify_mode mode, const char *prefix)
{
    cachetest_init(prefix);
    char table[64], insert[160];
    snprintf(table, sizeof table, "%scache_entries", prefix);
    snprintf(insert, sizeof insert,
             "INSERT INTO %s (cache_key, value) VALUES ('sql', 'x')", table);
    pgcw_cache_opts wo = {.notify_mode = mode, .pool_size = 8};
    pgcw_cache *w = cachetest_new(prefix, &wo);
    pgcw_cache *r = cachetest_new(prefix, NULL);
    PGconn *listener = pgtest_connect();
    pgtest_exec(listener, "LISTEN cache_events");
    cachetest_set(w, "k", "one", 60000);
    assert_int_equal(count_notifications(listener, 1, 300), 1); /* not two */
    cachetest_wait_value(r, "k", "one");
    free(cachetest_get(r, "k")); /* r's copy is in its L1 */
    cachetest_set(w, "k", "two", 60000);
    assert_true(cachetest_wait_value(r, "k", "two") < 5000);
    assert_int_equal(count_notifications(listener, 1, 300), 1);
    /* Deletes and get_or_set's writes are announced the same way. */
    assert_int_equal(pgcw_cache_delete(w, "k", 1), PGCW_OK);
    cachetest_wait_value(r, "k", NULL);
    assert_int_equal(count_notifications(listener, 1, 300), 1);
    int loads = 0;
    void *v = NULL;
    size_t len = 0;
    assert_int_equal(pgcw_cache_get_or_set(w, "gos", 3, 0, count_loads, &loads, &v, &len),
                     PGCW_OK);
    pgcw_free(v);
    assert_int_equal(loads, 1);
    assert_int_equal(count_notifications(listener, 1, 300), 1);
    /* A writer that is not this library: the trigger notifies. */
    PGconn *pg = pgtest_connect();
    pgtest_exec(pg, insert);
    assert_int_equal(count_notifications(listener, 1, 300), 1);
    /* Eight threads, 400 writes: one notification each, in fewer transactions. */
    pgcw_cache_stats before = cachetest_stats(w);
    pthread_t t[8];
    writer_arg args[8];
    for (int i = 0; i < 8; i++) {
        args[i] = (writer_arg){w, i, 0};
        pthread_create(&t[i], NULL, many_writes, &args[i]);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(args[i].failures, 0);
    }
    assert_int_equal(count_notifications(listener, 400, 3000), 400);
    pgcw_cache_stats after = cachetest_stats(w);
    assert_int_equal(after.notify_sent - before.notify_sent, 400);
    uint64_t batches = after.notify_batches - before.notify_batches;
    if (batches >= 400)
        fail_msg("400 writes from 8 threads took %llu notify transactions",
                 (unsigned long long)batches);
    print_message("400 writes from 8 threads: %llu notify transactions\n",
                  (unsigned long long)batches);
    /* Freeing the writer sends what it still has queued (BACKGROUND). */
    cachetest_set(w, "last", "x", 60000);
    pgcw_cache_free(w);
    assert_int_equal(count_notifications(listener, 1, 1000), 1);
    PQfinish(pg);
    PQfinish(listener);
    pgcw_cache_free(r);
}

static void test_notify_after_commit(void **state)
{
    (void)state;
    notify_after_commit(PGCW_CACHE_NOTIFY_AFTER_COMMIT, "nac_");
}

static void test_notify_background(void **state)
{
    (void)state;
    notify_after_commit(PGCW_CACHE_NOTIFY_BACKGROUND, "nbg_");
}

/* One watcher shared by two caches (and anything else): one LISTEN connection,
 * and both L1s are evicted through it. */
static void test_shared_watcher(void **state)
{
    (void)state;
    cachetest_init("shared_");
    PGconn *pg = pgtest_connect();
    const char *listen_count = "SELECT count(*) FROM pg_stat_activity WHERE datname ="
                               " current_database() AND query LIKE '%LISTEN %' AND pid <>"
                               " pg_backend_pid()";
    long long before = pgtest_query_int(pg, listen_count);
    const char *channels[1] = {"cache_events"};
    pgcw_watcher_opts wo = {.channels = channels, .n_channels = 1};
    pgcw_conn_opts co = {.conninfo = pgtest_dsn()};
    pgcw_watcher *w = NULL;
    assert_int_equal(pgcw_watcher_new(&wo, &co, &w), PGCW_OK);
    assert_int_equal(pgcw_watcher_start(w), PGCW_OK);
    pgcw_cache_opts o = {.watcher = w};
    pgcw_cache *a = cachetest_new("shared_", &o);
    pgcw_cache *b = cachetest_new("shared_", &o);
    pgcw_cache_opts wr = {.disable_l1 = true};
    pgcw_cache *writer = cachetest_new("shared_", &wr);
    assert_int_equal(pgtest_query_int(pg, listen_count), before + 1);
    cachetest_set(writer, "k", "one", 60000);
    /* Once the write's notification is in, a read fills each L1 and the next hits. */
    wait_received(a, 1);
    wait_received(b, 1);
    pgcw_cache *both[2] = {a, b};
    for (int i = 0; i < 2; i++) {
        free(cachetest_get(both[i], "k"));
        uint64_t hits = cachetest_stats(both[i]).l1_hits;
        char *v = cachetest_get(both[i], "k");
        assert_string_equal(v, "one");
        free(v);
        assert_int_equal(cachetest_stats(both[i]).l1_hits, hits + 1);
    }
    cachetest_set(writer, "k", "two", 60000);
    cachetest_wait_value(a, "k", "two");
    cachetest_wait_value(b, "k", "two");
    assert_true(cachetest_stats(a).invalidations_applied >= 1);
    assert_true(cachetest_stats(b).invalidations_applied >= 1);
    pgcw_cache_free(writer);
    pgcw_cache_free(a);
    pgcw_cache_free(b);
    pgcw_watcher_free(w);
    PQfinish(pg);
}

/* A client on another channel than the trigger's would never hear of a write: its
 * calls fail with the reason instead of serving stale copies. */
static void test_wrong_channel_refused(void **state)
{
    (void)state;
    cachetest_init("chan_"); /* the trigger notifies on cache_events */
    pgcw_cache_opts o = {.schema_prefix = "chan_", .notify_channel = "other"};
    pgcw_conn_opts co = {.conninfo = pgtest_dsn()};
    pgcw_cache *c = NULL;
    assert_int_equal(pgcw_cache_new(&o, &co, &c), PGCW_OK);
    void *v = NULL;
    size_t len = 0;
    assert_int_equal(pgcw_cache_get(c, "k", 1, &v, &len), PGCW_EQUERY);
    assert_non_null(strstr(pgcw_cache_errmsg(c),
                           "notifies on channel 'cache_events', not on"
                           " this client's notify_channel 'other'"));
    pgcw_cache_free(c);
    /* Without notifications the channel does not matter. */
    o.disable_notify = true;
    assert_int_equal(pgcw_cache_new(&o, &co, &c), PGCW_OK);
    assert_int_equal(pgcw_cache_get(c, "k", 1, &v, &len), PGCW_ENOTFOUND);
    pgcw_cache_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_other_process_evicts),
        cmocka_unit_test(test_versions_decide),
        cmocka_unit_test(test_watcher_killed_flushes),
        cmocka_unit_test(test_raced_fill_refused),
        cmocka_unit_test(test_disable_notify),
        cmocka_unit_test(test_plain_sql_interop),
        cmocka_unit_test(test_wrong_channel_refused),
        cmocka_unit_test(test_shared_watcher),
        cmocka_unit_test(test_notify_after_commit),
        cmocka_unit_test(test_notify_background),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
