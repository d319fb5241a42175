/*
 * test_cache_load_pg.c - get_or_set against a real server: 4 processes x 8 threads
 * on one missing key run the loader once; a load that raced a delete or a set (of
 * this library, or a plain SQL upsert as postgres-cache writes it) is returned but
 * never written (the lease), with the processes ordered by pipes; the advisory
 * lock times out clearly and wakes its waiter when released; a loader error
 * reaches every waiter and is not cached; calls fail within the lock timeout when a
 * row lock is held; a terminated pool backend costs no error.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <pgcachewatch/pgcachewatch.h>

#include "cachetest.h"
#include "pgtest.h"

/* --- one load across 4 processes x 8 threads ------------------------------------ */

typedef struct herd {
    pgcw_cache *c;
    const char *log_path;
    int ok;
    pthread_mutex_t mu;
} herd;

static pgcw_status slow_loader(void *ctx, const void *key, size_t key_len,
                               pgcw_cache_result *r)
{
    (void)key;
    (void)key_len;
    herd *h = ctx;
    int fd = open(h->log_path, O_WRONLY | O_APPEND | O_CREAT, 0600);
    if (fd < 0 || write(fd, "L", 1) != 1)
        return PGCW_ELOADER;
    close(fd);
    pgtest_sleep_ms(300); /* long enough for every caller to pile up */
    return pgcw_cache_result_set(r, "loaded once", 11);
}

static void *herd_thread(void *arg)
{
    herd *h = arg;
    void *v = NULL;
    size_t len = 0;
    pgcw_status st =
        pgcw_cache_get_or_set(h->c, "herd", 4, 60000, slow_loader, h, &v, &len);
    bool good = st == PGCW_OK && len == 11 && memcmp(v, "loaded once", 11) == 0;
    if (!good)
        fprintf(stderr, "get_or_set: %s: %s\n", pgcw_status_name(st),
                pgcw_cache_errmsg(h->c));
    pgcw_free(v);
    pthread_mutex_lock(&h->mu);
    h->ok += good;
    pthread_mutex_unlock(&h->mu);
    return NULL;
}

static int herd_process(const char *log_path, int go_fd)
{
    char b;
    pgcw_cache_opts o = {.schema_prefix = "herd_", .pool_size = 2};
    pgcw_conn_opts co = {.conninfo = pgtest_dsn()};
    pgcw_cache *c = NULL;
    if (pgcw_cache_new(&o, &co, &c) != PGCW_OK ||
        pgcw_cache_wait_healthy(c, CACHETEST_WAIT_MS) != PGCW_OK)
        return 2;
    if (read(go_fd, &b, 1) < 0)
        return 3;
    herd h = {.c = c, .log_path = log_path};
    pthread_mutex_init(&h.mu, NULL);
    pthread_t t[8];
    for (int i = 0; i < 8; i++)
        pthread_create(&t[i], NULL, herd_thread, &h);
    for (int i = 0; i < 8; i++)
        pthread_join(t[i], NULL);
    pgcw_cache_free(c);
    return h.ok == 8 ? 0 : 1;
}

/* Runs first: its children start threads, which TSan allows only in the child of a
 * parent that has none yet. */
static void test_one_load_across_processes(void **state)
{
    (void)state;
    cachetest_init("herd_");
    char log_path[] = "/tmp/pgcw-herd-XXXXXX";
    int fd = mkstemp(log_path);
    assert_true(fd >= 0);
    close(fd);
    int go[2];
    assert_int_equal(pipe(go), 0);
    pid_t kids[4];
    for (int i = 0; i < 4; i++) {
        kids[i] = fork();
        assert_true(kids[i] >= 0);
        if (kids[i] == 0) {
            close(go[1]);
            _exit(herd_process(log_path, go[0]));
        }
    }
    pgtest_sleep_ms(500); /* every process connected and waiting */
    close(go[0]);
    close(go[1]);
    for (int i = 0; i < 4; i++)
        assert_int_equal(pgtest_wait_pid(kids[i], 60000), 0);
    char *log = pgtest_slurp_path(log_path);
    assert_string_equal(log, "L"); /* 32 callers, one load */
    free(log);
    unlink(log_path);
}

/* --- the lease: a load that raced a write is not written -------------------------- */

typedef enum racer { RACE_DELETE, RACE_SET, RACE_SQL_UPSERT, RACE_SQL_DELETE } racer;

typedef struct lease_ctx {
    int to_child, from_child;
} lease_ctx;

static pgcw_status lease_loader(void *ctx, const void *key, size_t key_len,
                                pgcw_cache_result *r)
{
    (void)key;
    (void)key_len;
    lease_ctx *l = ctx;
    char b = 'g';
    /* The racing writer writes now, while this load is in flight. */
    if (write(l->to_child, &b, 1) != 1 || read(l->from_child, &b, 1) != 1)
        return PGCW_ELOADER;
    return pgcw_cache_result_set(r, "loaded before the write", 23);
}

static int racer_process(racer kind, int from_parent, int to_parent)
{
    char b;
    if (read(from_parent, &b, 1) != 1)
        return 3;
    pgcw_status st = PGCW_OK;
    if (kind == RACE_SQL_UPSERT || kind == RACE_SQL_DELETE) {
        /* What a postgres-cache client's set() or delete() sends. */
        PGconn *pg = PQconnectdb(pgtest_dsn());
        PGresult *res = PQexec(
            pg,
            kind == RACE_SQL_DELETE
                ? "DELETE FROM lease_cache_entries WHERE cache_key = 'k'"
                : "INSERT INTO lease_cache_entries (cache_key, value, expires_at) VALUES"
                  " ('k', convert_to('\"python\"', 'UTF8'), now() + interval '60 s')"
                  " ON CONFLICT (cache_key) DO UPDATE SET value = EXCLUDED.value,"
                  " expires_at = EXCLUDED.expires_at, version ="
                  " lease_cache_entries.version + 1, updated_at = timezone('UTC', "
                  "now())");
        st = PQresultStatus(res) == PGRES_COMMAND_OK ? PGCW_OK : PGCW_EQUERY;
        PQclear(res);
        PQfinish(pg);
    } else {
        pgcw_cache_opts o = {.schema_prefix = "lease_", .disable_l1 = true};
        pgcw_conn_opts co = {.conninfo = pgtest_dsn()};
        pgcw_cache *c = NULL;
        st = pgcw_cache_new(&o, &co, &c);
        if (st == PGCW_OK)
            st = kind == RACE_DELETE ? pgcw_cache_delete(c, "k", 1)
                                     : pgcw_cache_set(c, "k", 1, "\"fresh\"", 7, 60000);
        pgcw_cache_free(c);
    }
    b = 'd';
    if (write(to_parent, &b, 1) != 1)
        return 4;
    return st == PGCW_OK ? 0 : 1;
}

static void race(racer kind, bool row_first, const char *want_in_table, bool refused)
{
    pgcw_cache *c = cachetest_new("lease_", NULL);
    PGconn *pg = pgtest_connect();
    pgtest_exec(pg, "TRUNCATE lease_cache_entries");
    if (row_first) /* an expired row: the lease is its version */
        pgtest_exec(pg, "INSERT INTO lease_cache_entries (cache_key, value, version,"
                        " expires_at) VALUES ('k', 'old', 7, now() - interval '1 s')");
    int down[2], up[2];
    assert_int_equal(pipe(down), 0);
    assert_int_equal(pipe(up), 0);
    pid_t kid = fork();
    assert_true(kid >= 0);
    if (kid == 0)
        _exit(racer_process(kind, down[0], up[1]));
    lease_ctx l = {down[1], up[0]};
    pgcw_cache_stats before = cachetest_stats(c);
    void *v = NULL;
    size_t len = 0;
    assert_int_equal(pgcw_cache_get_or_set(c, "k", 1, 60000, lease_loader, &l, &v, &len),
                     PGCW_OK);
    /* Its callers get the value it loaded... */
    assert_int_equal(len, 23);
    assert_memory_equal(v, "loaded before the write", 23);
    pgcw_free(v);
    assert_int_equal(pgtest_wait_pid(kid, 30000), 0);
    assert_int_equal(cachetest_stats(c).lease_refusals, before.lease_refusals + refused);
    /* ...but the table holds the racing writer's outcome, and so does every read. */
    char *got =
        pgtest_query_value(pg, "SELECT coalesce((SELECT CASE WHEN expires_at > now()"
                               " THEN convert_from(value, 'UTF8') ELSE 'miss' END FROM"
                               " lease_cache_entries WHERE cache_key = 'k'), 'miss')");
    assert_string_equal(got, want_in_table);
    free(got);
    cachetest_wait_value(c, "k", strcmp(want_in_table, "miss") ? want_in_table : NULL);
    PQfinish(pg);
    pgcw_cache_free(c);
    close(down[0]);
    close(down[1]);
    close(up[0]);
    close(up[1]);
}

static void test_lease(void **state)
{
    (void)state;
    cachetest_init("lease_");
    race(RACE_DELETE, false, "miss", true);
    race(RACE_DELETE, true, "miss", true);
    race(RACE_SET, false, "\"fresh\"", true);
    race(RACE_SET, true, "\"fresh\"", true);
    race(RACE_SQL_UPSERT, false, "\"python\"", true);
    race(RACE_SQL_UPSERT, true, "\"python\"", true);
    /* postgres-cache's delete removes the row: noticed when there was one (expired)
     * at the re-check; a delete of an absent key leaves no trace, so the value
     * loaded is written (cache.h says so). */
    race(RACE_SQL_DELETE, true, "miss", true);
    race(RACE_SQL_DELETE, false, "loaded before the write", false);
}

/* --- the advisory lock ------------------------------------------------------------ */

static pgcw_status count_loader(void *ctx, const void *key, size_t key_len,
                                pgcw_cache_result *r)
{
    (void)key;
    (void)key_len;
    ++*(int *)ctx;
    return pgcw_cache_result_set(r, "mine", 4);
}

static void hold_lock(PGconn *pg, const char *key)
{
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT pg_advisory_lock(%lld)",
             (long long)pgcw_cache_lock_key(key, strlen(key)));
    pgtest_exec(pg, sql);
}

static void test_lock_timeout(void **state)
{
    (void)state;
    cachetest_init("lock_");
    pgcw_cache_opts o = {.lock_timeout_ms = 300};
    pgcw_cache *c = cachetest_new("lock_", &o);
    PGconn *holder = pgtest_connect();
    hold_lock(holder, "busy");
    int calls = 0;
    void *v = NULL;
    size_t len = 0;
    int64_t t0 = pgtest_now_ms();
    assert_int_equal(
        pgcw_cache_get_or_set(c, "busy", 4, 0, count_loader, &calls, &v, &len),
        PGCW_ETIMEDOUT);
    int64_t took = pgtest_now_ms() - t0;
    assert_true(took >= 290 && took < 3000);
    assert_int_equal(calls, 0);
    assert_non_null(strstr(pgcw_cache_errmsg(c), "was not granted within 300 ms"));
    pgcw_cache_stats s = cachetest_stats(c);
    assert_int_equal(s.lock_timeouts, 1);
    assert_int_equal(s.lock_waits, 1);
    PQfinish(holder); /* its session lock goes with it */
    assert_int_equal(
        pgcw_cache_get_or_set(c, "busy", 4, 0, count_loader, &calls, &v, &len), PGCW_OK);
    assert_int_equal(calls, 1);
    pgcw_free(v);
    pgcw_cache_free(c);
}

typedef struct releaser {
    PGconn *pg;
} releaser;

static void *release_later(void *arg)
{
    releaser *r = arg;
    pgtest_sleep_ms(300);
    /* The other loader writes its value, then unlocks. */
    pgtest_exec(r->pg, "INSERT INTO lock_cache_entries (cache_key, value, expires_at)"
                       " VALUES ('woken', 'theirs', now() + interval '60 s')");
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT pg_advisory_unlock(%lld)",
             (long long)pgcw_cache_lock_key("woken", 5));
    pgtest_exec(r->pg, sql);
    return NULL;
}

static void test_lock_wakes(void **state)
{
    (void)state;
    cachetest_init("lock_");
    pgcw_cache *c = cachetest_new("lock_", NULL);
    releaser r = {pgtest_connect()};
    hold_lock(r.pg, "woken");
    pthread_t t;
    int64_t t0 = pgtest_now_ms();
    pthread_create(&t, NULL, release_later, &r);
    int calls = 0;
    void *v = NULL;
    size_t len = 0;
    assert_int_equal(
        pgcw_cache_get_or_set(c, "woken", 5, 0, count_loader, &calls, &v, &len), PGCW_OK);
    int64_t took = pgtest_now_ms() - t0;
    pthread_join(t, NULL);
    assert_int_equal(calls, 0); /* the other's value, re-checked under the lock */
    assert_int_equal(len, 6);
    assert_memory_equal(v, "theirs", 6);
    pgcw_free(v);
    assert_true(took >= 290 && took < 2000);
    assert_int_equal(cachetest_stats(c).lock_waits, 1);
    PQfinish(r.pg);
    pgcw_cache_free(c);
}

/* --- a loader error reaches every waiter ---------------------------------------------
 */

typedef struct failing {
    pgcw_cache *c;
    int loads;
    int errors_seen;
    pthread_mutex_t mu;
} failing;

static pgcw_status failing_loader(void *ctx, const void *key, size_t key_len,
                                  pgcw_cache_result *r)
{
    (void)key;
    (void)key_len;
    failing *f = ctx;
    pthread_mutex_lock(&f->mu);
    f->loads++;
    pthread_mutex_unlock(&f->mu);
    /* Fail once the seven other callers wait for this load (a thread that started
     * after it ended would load again, rightly: not what is tested here). */
    int64_t until = pgtest_now_ms() + CACHETEST_WAIT_MS;
    while (cachetest_stats(f->c).flight_waits < 7 && pgtest_now_ms() < until)
        pgtest_sleep_ms(5);
    pgcw_cache_result_error(r, "upstream said boom");
    return PGCW_ELOADER;
}

static void *failing_thread(void *arg)
{
    failing *f = arg;
    void *v = NULL;
    size_t len = 0;
    pgcw_status st =
        pgcw_cache_get_or_set(f->c, "fails", 5, 0, failing_loader, f, &v, &len);
    bool seen = st == PGCW_ELOADER && v == NULL &&
                strstr(pgcw_cache_errmsg(f->c), "upstream said boom") != NULL;
    pthread_mutex_lock(&f->mu);
    f->errors_seen += seen;
    pthread_mutex_unlock(&f->mu);
    return NULL;
}

static void test_loader_error(void **state)
{
    (void)state;
    cachetest_init("fail_");
    failing f = {.c = cachetest_new("fail_", NULL)};
    pthread_mutex_init(&f.mu, NULL);
    pthread_t t[8];
    for (int i = 0; i < 8; i++)
        pthread_create(&t[i], NULL, failing_thread, &f);
    for (int i = 0; i < 8; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(f.loads, 1);
    assert_int_equal(f.errors_seen, 8);
    PGconn *pg = pgtest_connect();
    assert_int_equal(pgtest_query_int(pg, "SELECT count(*) FROM fail_cache_entries"), 0);
    PQfinish(pg);
    pgcw_cache_free(f.c);
}

/* --- bounded calls, lost pool connections ----------------------------------------- */

static void test_row_lock_timeout(void **state)
{
    (void)state;
    cachetest_init("rowlock_");
    pgcw_cache_opts o = {.lock_timeout_ms = 300};
    pgcw_cache *c = cachetest_new("rowlock_", &o);
    cachetest_set(c, "held", "v", 0);
    PGconn *pg = pgtest_connect();
    pgtest_exec(pg, "BEGIN; SELECT * FROM rowlock_cache_entries WHERE cache_key = 'held'"
                    " FOR UPDATE");
    int64_t t0 = pgtest_now_ms();
    assert_int_equal(pgcw_cache_set(c, "held", 4, "w", 1, 0), PGCW_ETIMEDOUT);
    assert_true(pgtest_now_ms() - t0 < 3000);
    assert_non_null(strstr(pgcw_cache_errmsg(c), "55P03"));
    pgtest_exec(pg, "ROLLBACK");
    cachetest_set(c, "held", "w", 0);
    PQfinish(pg);
    pgcw_cache_free(c);
}

static void test_pool_backend_killed(void **state)
{
    (void)state;
    cachetest_init("kill_");
    pgcw_cache_opts o = {.disable_l1 = true, .pool_size = 1};
    pgcw_cache *c = cachetest_new("kill_", &o);
    cachetest_set(c, "k", "v1", 0);
    PGconn *pg = pgtest_connect();
    for (int round = 0; round < 3; round++) {
        assert_true(pgtest_query_int(pg, "SELECT count(pg_terminate_backend(pid)) FROM"
                                         " pg_stat_activity WHERE datname ="
                                         " current_database() AND pid <>"
                                         " pg_backend_pid() AND backend_type ="
                                         " 'client backend'") >= 1);
        /* Idle a second or more: found dead at checkout; briefly idle: the first
         * statement fails and is retried on a fresh connection. */
        bool long_idle = round == 2;
        pgtest_sleep_ms(long_idle ? 1100 : 50);
        uint64_t retries = cachetest_stats(c).retries;
        char *v = cachetest_get(c, "k"); /* no error: a fresh connection answers */
        assert_string_equal(v, "v1");
        free(v);
        assert_int_equal(cachetest_stats(c).retries, retries + (long_idle ? 0 : 1));
    }
    assert_int_equal(cachetest_stats(c).errors, 0);
    PQfinish(pg);
    pgcw_cache_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_load_across_processes),
        cmocka_unit_test(test_lease),
        cmocka_unit_test(test_lock_timeout),
        cmocka_unit_test(test_lock_wakes),
        cmocka_unit_test(test_loader_error),
        cmocka_unit_test(test_row_lock_timeout),
        cmocka_unit_test(test_pool_backend_killed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
