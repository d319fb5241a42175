/*
 * test_restart_pg.c - the server goes away while clients read and write through
 * the cache: `pgcachewatch harness` runs against a server of this test's own (not
 * the suite's shared one) while the test restarts it with pg_ctl -m fast, then
 * -m immediate (a crash), then stops it for 10 s and starts it again. The run must
 * end on time with zero violations from the harness's checker (no stale read
 * before, during or after), the calls made during the outages must have failed
 * (errors > 0, with messages), and the load must have gone on after the last
 * restart (recovery without user action).
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
#include <json-c/json.h>
#include <pgcachewatch/pgcachewatch.h>

#include "pgproc.h"
#include "pgtest.h"

#define DURATION_S 50

static char state[256], script[1024];

static void server(const char *args)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "bash '%s' %s '%s' %s >/dev/null", script,
             strncmp(args, "start", 5) == 0 ? "start" : "restart", state,
             strncmp(args, "start", 5) == 0 ? args + 5 : args);
    if (system(cmd) != 0)
        fail_msg("pgserver.sh %s failed", args);
}

static char *state_value(const char *key)
{
    char *s = pgtest_slurp_path(state);
    char *p = strstr(s, key), *v = NULL;
    if (p) {
        p += strlen(key);
        size_t n = strcspn(p, "\n");
        v = strndup(p, n);
    }
    free(s);
    assert_non_null(v);
    return v;
}

static json_object *member(json_object *o, const char *a, const char *b)
{
    json_object *v = NULL;
    if (!json_object_object_get_ex(o, a, &v) ||
        (b && !json_object_object_get_ex(v, b, &v)))
        fail_msg("the report has no %s%s%s", a, b ? "." : "", b ? b : "");
    return v;
}

static void test_restarts_under_load(void **state_)
{
    (void)state_;
    snprintf(state, sizeof state, "/tmp/pgcw-restart-%d.state", (int)getpid());
    snprintf(script, sizeof script, "%s/tests/pg/pgserver.sh", getenv("PGCW_SOURCE_DIR"));
    char start_args[64];
    snprintf(start_args, sizeof start_args, "start %d", (int)getpid()); /* watchdog */
    server(start_args);
    char *dsn = state_value("dsn=");
    /* LOGGED: a crash (-m immediate) empties an UNLOGGED table, and then versions
     * start again at 1 (cache.h), which the checker rightly calls going backwards.
     * A LOGGED table keeps its rows and versions through crash recovery. */
    char *out = NULL, *err = NULL;
    if (pgtest_cli_run(&out, &err,
                       "cache init --logged --schema-prefix harness_ --notify-channel "
                       "harness_events --pg-dsn '%s'",
                       dsn) != 0)
        fail_msg("cache init --logged: %s", err);
    free(out);
    free(err);

    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             PGTEST_RUN_LIMIT "\"$PGCW_CLI\" harness --pg-dsn '%s' --duration %d --json"
                              " --writers 4 --readers 8 --processes 2 --keys 64",
             dsn, DURATION_S);
    pgtest_proc p;
    int64_t t0 = pgtest_now_ms();
    pgtest_proc_start(&p, "test-restart", cmd);
    pgtest_sleep_ms(6000);
    server("fast 0");
    pgtest_sleep_ms(5000);
    server("immediate 0");
    pgtest_sleep_ms(5000);
    server("fast 10");
    int64_t back_at = pgtest_now_ms() - t0;
    /* Recovery without help: writes commit again after the last start (judged by
     * the server, since pg_ctl on a loaded machine takes seconds of the run). */
    PGconn *direct = PQconnectdb(dsn);
    assert_int_equal(PQstatus(direct), CONNECTION_OK);
    pgtest_exec(direct, "CREATE TEMP TABLE back AS SELECT now() AS at");
    bool wrote_after = false;
    for (int i = 0; i < 200 && !wrote_after && pgtest_proc_wait(&p, 0) < 0; i++) {
        wrote_after =
            pgtest_query_int(direct, "SELECT count(*) FROM harness_cache_entries"
                                     " WHERE updated_at > (SELECT at FROM back)") > 0;
        if (!wrote_after)
            pgtest_sleep_ms(100);
    }
    PQfinish(direct);

    int rc = pgtest_proc_finish(&p, 120000, &out, &err);
    int64_t took = pgtest_now_ms() - t0;
    if (rc != 0) {
        print_message("harness stderr:\n%s\n", err); /* the violations, in full */
        fail_msg("harness exited %d", rc);
    }
    json_object *o = json_tokener_parse(out);
    if (!o)
        fail_msg("not JSON: %s", out);
    int64_t violations = json_object_get_int64(member(o, "violations", NULL));
    int64_t errors = json_object_get_int64(member(o, "errors", "total"));
    int64_t ops = json_object_get_int64(member(o, "ops", NULL));
    print_message("restarts under load: %lld ops, %lld errors, %lld violations, the "
                  "server back at %lld ms, the run took %lld ms\n",
                  (long long)ops, (long long)errors, (long long)violations,
                  (long long)back_at, (long long)took);
    assert_int_equal(violations, 0);
    assert_true(errors > 0); /* calls during the outages failed, not hung or faked */
    if (!wrote_after)
        fail_msg("no write committed after the server came back (%lld ms into the run)",
                 (long long)back_at);
    /* No hang: the run ends within its duration plus the calls' bounded timeouts. */
    assert_true(took < (DURATION_S + 40) * 1000);
    json_object_put(o);
    free(out);
    free(err);
    free(dsn);
    char stop[1400];
    snprintf(stop, sizeof stop, "bash '%s' stop '%s'", script, state);
    assert_int_equal(system(stop), 0);
}

/* What a crash costs an UNLOGGED cache table (the default): PostgreSQL empties it
 * in crash recovery, so the rows are gone and a key's versions start again at 1.
 * No client may serve a copy from before: the crash drops every LISTEN connection,
 * and a reconnect means a flush. */
static void test_crash_empties_unlogged(void **state_)
{
    (void)state_;
    snprintf(state, sizeof state, "/tmp/pgcw-crash-%d.state", (int)getpid());
    snprintf(script, sizeof script, "%s/tests/pg/pgserver.sh", getenv("PGCW_SOURCE_DIR"));
    char start_args[64];
    snprintf(start_args, sizeof start_args, "start %d", (int)getpid());
    server(start_args);
    char *dsn = state_value("dsn=");
    pgcw_cache_opts o = {.schema_prefix = "crash_"};
    pgcw_conn_opts co = {.conninfo = dsn, .reconnect_max_ms = 200};
    char *initerr = NULL;
    assert_int_equal(pgcw_cache_init_db(&o, &co, NULL, &initerr), PGCW_OK);
    pgcw_cache *c = NULL;
    assert_int_equal(pgcw_cache_new(&o, &co, &c), PGCW_OK);
    assert_int_equal(pgcw_cache_wait_healthy(c, 15000), PGCW_OK);
    int64_t version = 0;
    for (int i = 0; i < 3; i++)
        assert_int_equal(
            pgcw_cache_set_versioned(c, "k", 1, "before", 6, 60000, &version), PGCW_OK);
    assert_int_equal(version, 3);
    void *v = NULL;
    size_t len = 0;
    assert_int_equal(pgcw_cache_get_versioned(c, "k", 1, &v, &len, &version), PGCW_OK);
    pgcw_free(v); /* an L1 copy, version 3 */

    server("immediate 0");
    /* Until the watcher is back, reads bypass the L1; after, the L1 was flushed. */
    assert_int_equal(pgcw_cache_wait_healthy(c, 30000), PGCW_OK);
    pgcw_status st = PGCW_ECONNLOST;
    for (int i = 0; i < 100 && (st == PGCW_ECONNLOST || st == PGCW_ECONNECT); i++) {
        st = pgcw_cache_get(c, "k", 1, &v, &len);
        if (st == PGCW_OK)
            fail_msg("after the crash the cache served \"%.*s\"", (int)len, (char *)v);
        if (st != PGCW_ENOTFOUND)
            pgtest_sleep_ms(100); /* the pool reconnects on a later call */
    }
    assert_int_equal(st, PGCW_ENOTFOUND);
    assert_int_equal(pgcw_cache_set_versioned(c, "k", 1, "after", 5, 60000, &version),
                     PGCW_OK);
    assert_int_equal(version, 1); /* versions started again */
    pgcw_cache_free(c);
    free(dsn);
    char stop[1400];
    snprintf(stop, sizeof stop, "bash '%s' stop '%s'", script, state);
    assert_int_equal(system(stop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crash_empties_unlogged),
        cmocka_unit_test(test_restarts_under_load),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
