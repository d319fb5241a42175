/*
 * test_cache_combine_pg.c - write combining in the default notify mode
 * (cache_combine.c): single writes that threads of one cache make while the
 * pool's transactions are all running commit together, in one transaction, each
 * row still notified by the trigger; one write's error fails only that write; a
 * write queued past its deadline fails with PGCW_ETIMEDOUT.
 *
 * Deterministic: the cache has one pool connection, so one batch runs at a time,
 * and a test hook holds the first batch's leader until the writes the test starts
 * meanwhile are all queued.
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
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

#define N_QUEUED 7

/* --- holding the first leader ----------------------------------------------------- */

static pthread_mutex_t hold_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t hold_cv = PTHREAD_COND_INITIALIZER;
static bool armed, held, released;
static size_t sizes[64], n_sizes;

static void before_run(size_t n)
{
    pthread_mutex_lock(&hold_mu);
    if (n_sizes < 64)
        sizes[n_sizes++] = n;
    if (armed) {
        armed = false;
        held = true;
        pthread_cond_broadcast(&hold_cv);
        while (!released)
            pthread_cond_wait(&hold_cv, &hold_mu);
    }
    pthread_mutex_unlock(&hold_mu);
}

static void hold_arm(void)
{
    pthread_mutex_lock(&hold_mu);
    armed = true;
    held = released = false;
    n_sizes = 0;
    pthread_mutex_unlock(&hold_mu);
    pgcw__cache_test.before_combined_run = before_run;
}

static void hold_wait_held(void)
{
    pthread_mutex_lock(&hold_mu);
    while (!held)
        pthread_cond_wait(&hold_cv, &hold_mu);
    pthread_mutex_unlock(&hold_mu);
}

static void hold_release(void)
{
    pthread_mutex_lock(&hold_mu);
    released = true;
    pthread_cond_broadcast(&hold_cv);
    pthread_mutex_unlock(&hold_mu);
}

static size_t queued(pgcw_cache *c)
{
    size_t q = 0;
    pgcw__combiner_counts(c->combiner, NULL, NULL, &q);
    return q;
}

static void wait_queued(pgcw_cache *c, size_t want)
{
    int64_t until = pgtest_now_ms() + CACHETEST_WAIT_MS;
    while (queued(c) < want && pgtest_now_ms() < until)
        pgtest_sleep_ms(2);
    assert_int_equal(queued(c), want);
}

/* --- writers on threads ----------------------------------------------------------- */

typedef struct writer {
    pgcw_cache *c;
    char key[16384];
    size_t key_len;
    char value[32];
    bool del;
    pgcw_status st;
    int64_t version;
    char err[1024];
    pthread_t t;
} writer;

static void *write_main(void *arg)
{
    writer *w = arg;
    if (w->del)
        w->st = pgcw_cache_delete(w->c, w->key, w->key_len);
    else
        w->st = pgcw_cache_set_versioned(w->c, w->key, w->key_len, w->value,
                                         strlen(w->value), 60000, &w->version);
    snprintf(w->err, sizeof w->err, "%s", pgcw_cache_errmsg(w->c));
    return NULL;
}

static void start(writer *w, pgcw_cache *c, const char *key, const char *value)
{
    w->c = c;
    w->key_len = strlen(key);
    memcpy(w->key, key, w->key_len);
    snprintf(w->value, sizeof w->value, "%s", value ? value : "");
    w->del = value == NULL;
    assert_int_equal(pthread_create(&w->t, NULL, write_main, w), 0);
}

static void wait_queued(pgcw_cache *c, size_t want);

/* The first writer leads a batch of its own and is held; the others queue, one
 * after the other in this order. */
static void start_held(writer *ws, size_t n, pgcw_cache *c, const char *const *keys,
                       const char *const *values)
{
    hold_arm();
    start(&ws[0], c, keys[0], values[0]);
    hold_wait_held();
    for (size_t i = 1; i < n; i++) {
        start(&ws[i], c, keys[i], values[i]);
        wait_queued(c, i);
    }
}

static void join_all(writer *ws, size_t n)
{
    for (size_t i = 0; i < n; i++)
        assert_int_equal(pthread_join(ws[i].t, NULL), 0);
    pgcw__cache_test.before_combined_run = NULL;
}

static char *row_value(PGconn *pg, const char *prefix, const char *key)
{
    char q[512];
    snprintf(q, sizeof q,
             "SELECT convert_from(value, 'UTF8') FROM %scache_entries WHERE cache_key"
             " = '%s'",
             prefix, key);
    return pgtest_query_value(pg, q);
}

/* Notifications received on pg so far. */
static int drain_notifies(PGconn *pg)
{
    int n = 0;
    PGnotify *nt;
    assert_true(PQconsumeInput(pg));
    while ((nt = PQnotifies(pg)) != NULL) {
        n++;
        PQfreemem(nt);
    }
    return n;
}

/* --- the tests -------------------------------------------------------------------- */

static void test_writes_commit_together(void **state)
{
    (void)state;
    const char *prefix = "comb_";
    cachetest_init(prefix);
    pgcw_cache_opts wo = {.pool_size = 1};
    pgcw_cache *w = cachetest_new(prefix, &wo);
    pgcw_cache *reader = cachetest_new(prefix, NULL);
    /* Queued in this order; run sorted by key, "dup" in arrival order. */
    const char *keys[N_QUEUED + 1] = {"lead", "k3", "dup", "k1",
                                      "gone", "k4", "dup", "k2"};
    const char *values[N_QUEUED + 1] = {"L", "v3", "x", "v1", NULL, "v4", "y", "v2"};
    for (size_t i = 0; i <= N_QUEUED; i++) /* the reader holds old copies */
        cachetest_set(reader, keys[i], "old", 60000);
    for (size_t i = 0; i <= N_QUEUED; i++) {
        char *v = cachetest_get(reader, keys[i]);
        assert_string_equal(v, "old");
        free(v);
    }
    /* A log of the order the rows were written in, by a trigger of the test's. */
    PGconn *admin = pgtest_connect();
    char ddl[1024];
    snprintf(ddl, sizeof ddl,
             "CREATE TABLE comb_log (seq serial, k text);"
             "CREATE FUNCTION comb_log_f() RETURNS trigger LANGUAGE plpgsql AS"
             " $$BEGIN INSERT INTO comb_log (k) VALUES (NEW.cache_key); RETURN NULL;"
             " END$$;"
             "CREATE TRIGGER comb_log_t AFTER INSERT OR UPDATE ON %scache_entries"
             " FOR EACH ROW EXECUTE FUNCTION comb_log_f();",
             prefix);
    pgtest_exec(admin, ddl);
    PGconn *listen = pgtest_connect();
    pgtest_exec(listen, "LISTEN cache_events");
    pgcw_cache_stats before = cachetest_stats(w);

    writer ws[N_QUEUED + 1];
    memset(ws, 0, sizeof ws);
    start_held(ws, N_QUEUED + 1, w, keys, values);
    wait_queued(w, N_QUEUED);
    hold_release();
    join_all(ws, N_QUEUED + 1);

    for (size_t i = 0; i <= N_QUEUED; i++) {
        if (ws[i].st != PGCW_OK)
            fail_msg("write %zu (%s): %s: %s", i, keys[i], pgcw_status_name(ws[i].st),
                     ws[i].err);
    }
    /* The first batch was the leader's alone, the second the seven queued. */
    assert_int_equal(n_sizes, 2);
    assert_int_equal(sizes[0], 1);
    assert_int_equal(sizes[1], N_QUEUED);
    pgcw_cache_stats after = cachetest_stats(w);
    assert_int_equal(after.combined_batches - before.combined_batches, 1);
    assert_int_equal(after.combined_writes - before.combined_writes, N_QUEUED);
    assert_int_equal(after.sets - before.sets, N_QUEUED);
    assert_int_equal(after.deletes - before.deletes, 1);

    PGconn *pg = pgtest_connect();
    char q[512];
    snprintf(q, sizeof q,
             "SELECT count(DISTINCT xmin::text) FROM %scache_entries WHERE cache_key IN"
             " ('k1', 'k2', 'k3', 'k4', 'gone', 'dup')",
             prefix);
    char *xacts = pgtest_query_value(pg, q);
    assert_string_equal(xacts, "1"); /* one transaction wrote them all */
    free(xacts);
    for (size_t i = 1; i <= N_QUEUED; i++) {
        if (!values[i] || strcmp(keys[i], "dup") == 0)
            continue;
        char *v = row_value(pg, prefix, keys[i]);
        assert_string_equal(v, values[i]);
        free(v);
    }
    /* A delete leaves a tombstone (expired, so every client reads a miss). */
    snprintf(q, sizeof q,
             "SELECT expires_at = '-infinity' FROM %scache_entries WHERE cache_key = "
             "'gone'",
             prefix);
    char *gone = pgtest_query_value(pg, q);
    assert_string_equal(gone, "t");
    free(gone);
    /* The batch ran in key order (so two batches lock rows in one order), one key
     * set twice in arrival order: the later write has the higher version. */
    char *order = pgtest_query_value(
        admin, "SELECT string_agg(k, ',' ORDER BY seq) FROM comb_log WHERE k <> 'lead'");
    assert_string_equal(order, "dup,dup,gone,k1,k2,k3,k4");
    free(order);
    assert_true(ws[6].version > ws[2].version);
    const char *newest = "y";
    char *dup = row_value(pg, prefix, "dup");
    assert_string_equal(dup, newest);
    free(dup);

    /* Every row notified by the trigger (two sets of one key give two payloads:
     * their versions differ), and every copy of the other client evicted. */
    int64_t until = pgtest_now_ms() + CACHETEST_WAIT_MS;
    int got = 0;
    while (got < N_QUEUED + 1 && pgtest_now_ms() < until) {
        got += drain_notifies(listen);
        if (got < N_QUEUED + 1)
            pgtest_sleep_ms(5);
    }
    pgtest_sleep_ms(200);
    got += drain_notifies(listen);
    assert_int_equal(got, N_QUEUED + 1);
    for (size_t i = 0; i <= N_QUEUED; i++)
        if (values[i] && strcmp(keys[i], "dup") != 0)
            cachetest_wait_value(reader, keys[i], values[i]);
    cachetest_wait_value(reader, "gone", NULL);
    cachetest_wait_value(reader, "dup", newest);
    PQfinish(pg);
    PQfinish(admin);
    PQfinish(listen);
    pgcw_cache_free(reader);
    pgcw_cache_free(w);
}

static void test_one_bad_write_fails_alone(void **state)
{
    (void)state;
    const char *prefix = "combad_";
    cachetest_init(prefix);
    pgcw_cache_opts wo = {.pool_size = 1};
    pgcw_cache *w = cachetest_new(prefix, &wo);
    static char big[10 * 1024 + 1];
    cachetest_incompressible(big, sizeof big - 1); /* refused: 54000 */
    const char *keys[5] = {"lead", "g1", big, "g2", "g3"};
    const char *values[5] = {"L", "a", "b", "c", "d"};
    writer ws[5];
    memset(ws, 0, sizeof ws);
    start_held(ws, 5, w, keys, values);
    wait_queued(w, 4);
    hold_release();
    join_all(ws, 5);

    assert_int_equal(n_sizes, 2);
    assert_int_equal(sizes[1], 4); /* the four queued went as one batch */
    assert_int_equal(ws[2].st, PGCW_EQUERY);
    assert_non_null(strstr(ws[2].err, "54000"));
    PGconn *pg = pgtest_connect();
    for (size_t i = 0; i < 5; i++) {
        if (i == 2)
            continue;
        if (ws[i].st != PGCW_OK)
            fail_msg("write %zu: %s: %s", i, pgcw_status_name(ws[i].st), ws[i].err);
        assert_true(ws[i].version > 0);
        char *v = row_value(pg, prefix, keys[i]);
        assert_string_equal(v, values[i]);
        free(v);
    }
    /* The refused batch committed nothing; each write then ran alone. */
    assert_int_equal(cachetest_stats(w).combined_batches, 0);
    PQfinish(pg);
    pgcw_cache_free(w);
}

static void test_queued_write_times_out(void **state)
{
    (void)state;
    const char *prefix = "combto_";
    cachetest_init(prefix);
    pgcw_cache_opts wo = {
        .pool_size = 1, .statement_timeout_ms = 200, .lock_timeout_ms = 100};
    pgcw_cache *w = cachetest_new(prefix, &wo);
    const char *keys[2] = {"lead", "late"};
    const char *values[2] = {"L", "x"};
    writer ws[2];
    memset(ws, 0, sizeof ws);
    start_held(ws, 2, w, keys, values);
    wait_queued(w, 1);
    /* Held past the queued write's deadline (200 + 100 + 1000 ms): it gives up. */
    assert_int_equal(pthread_join(ws[1].t, NULL), 0);
    assert_int_equal(ws[1].st, PGCW_ETIMEDOUT);
    assert_non_null(strstr(ws[1].err, "no pool connection became free in time"));
    assert_int_equal(queued(w), 0);
    hold_release();
    assert_int_equal(pthread_join(ws[0].t, NULL), 0);
    pgcw__cache_test.before_combined_run = NULL;
    /* The cache goes on: a write now runs at once. */
    cachetest_set(w, "after", "ok", 60000);
    char *v = cachetest_get(w, "after");
    assert_string_equal(v, "ok");
    free(v);
    pgcw_cache_free(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_writes_commit_together),
        cmocka_unit_test(test_one_bad_write_fails_alone),
        cmocka_unit_test(test_queued_write_times_out),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
