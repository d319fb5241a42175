/*
 * test_cli_conn.c - the `pgcachewatch` command's connections: every command (the
 * cache subcommands included) gives up on a server that accepts TCP and never
 * answers, no password reaches stdout or stderr whatever libpq makes of the DSN,
 * `listen` reports a refused role or a missing database at once, --pg-* values
 * travel unquoted and intact, and `listen` decodes postgres-cache key
 * notifications (--format chooses the decoder).
 *
 * Every run is bounded by timeout(1); every process started is waited for or
 * killed.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
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

/* Every command that connects, with the exit status of its connection failure:
 * install --commit, uninstall, demo, listen (which retries a first connection for
 * up to 15 s, or --timeout) and every cache subcommand (get's errors are 2: its 1
 * is a miss). */
static const struct {
    const char *args;
    int rc;
} connecting[] = {
    {"install --commit t", 1},
    {"uninstall", 1},
    {"uninstall --commit", 1},
    {"demo", 1},
    {"listen --count 1 --timeout 3", 1},
    {"cache init", 1},
    {"cache get k", 2},
    {"cache set k v", 1},
    {"cache del k", 1},
    {"cache cleanup", 1},
    {"cache stats", 1},
};

#define N_CONNECTING (sizeof connecting / sizeof connecting[0])

static void test_silent_server_bounded(void **state)
{
    (void)state;
    int port;
    int hole = pgtest_blackhole_open(&port);
    for (size_t i = 0; i < N_CONNECTING; i++) {
        const char *cmd = connecting[i].args;
        int64_t t0 = pgtest_now_ms();
        char *out = NULL, *err = NULL;
        int rc = pgtest_cli_run(&out, &err,
                                "%s --pg-dsn 'host=127.0.0.1 port=%d user=x dbname=x "
                                "connect_timeout=1'",
                                cmd, port);
        int64_t took = pgtest_now_ms() - t0;
        if (rc != connecting[i].rc || took > 8000)
            fail_msg("'%s' exited %d after %lld ms: %s", cmd, rc, (long long)took, err);
        if (!strstr(err, "timeout expired"))
            fail_msg("'%s' does not say why: %s", cmd, err);
        free(out);
        free(err);
    }
    close(hole);
}

/* The two DSNs, and others in the same spirit, through every command. */
static void test_passwords_never_printed(void **state)
{
    (void)state;
    static const struct {
        const char *option;
        const char *secrets[2];
    } cases[] = {
        {"--pg-dsn 'host=h user=u password=Zq9 Leak7'", {"Zq9", "Leak7"}},
        {"--pg-dsn 'postgresql://u:sekr1t%zz@h/db'", {"sekr1t", NULL}},
        {"--pg-dsn 'postgresql://u:pAss9w0rd@127.0.0.1:1/db?connect_timeout=2'",
         {"pAss9w0rd", NULL}},
        {"--pg-host /nonexistent/pgcw --pg-password 'Pw0rd'\\''s'", {"Pw0rd", NULL}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
        for (size_t i = 0; i < N_CONNECTING; i++) {
            const char *cmd = connecting[i].args;
            char *out = NULL, *err = NULL;
            int rc = pgtest_cli_run(&out, &err, "%s %s", cmd, cases[c].option);
            if (rc != connecting[i].rc)
                fail_msg("'%s %s' exited %d: %s", cmd, cases[c].option, rc, err);
            for (int k = 0; k < 2 && cases[c].secrets[k]; k++)
                if (strstr(out, cases[c].secrets[k]) || strstr(err, cases[c].secrets[k]))
                    fail_msg("'%s %s' printed [%s]:\n%s%s", cmd, cases[c].option,
                             cases[c].secrets[k], out, err);
            assert_true(strlen(err) > 0); /* it still says what went wrong */
            free(out);
            free(err);
        }
}

static void test_listen_refused_at_once(void **state)
{
    (void)state;
    static const char *const extra[] = {"dbname=pgcw_no_such_db",
                                        "user=pgcw_no_such_role"};
    static const char *const says[] = {"(SQLSTATE 3D000)", "(SQLSTATE 28000)"};
    for (int i = 0; i < 2; i++) {
        int64_t t0 = pgtest_now_ms();
        char *out = NULL, *err = NULL;
        int rc = pgtest_cli_run(&out, &err, "listen --count 1 --pg-dsn '%s %s'",
                                pgtest_server_dsn(), extra[i]);
        int64_t took = pgtest_now_ms() - t0;
        /* It used to retry for its whole 15 s connection wait. */
        if (rc != 1 || took > 8000 || !strstr(err, "does not exist") ||
            !strstr(err, says[i]))
            fail_msg("listen with %s: exit %d after %lld ms: %s", extra[i], rc,
                     (long long)took, err);
        free(out);
        free(err);
    }
}

/* --pg-* values reach libpq as they are: a host directory with a quote, a space and
 * a backslash is looked for under exactly that name. */
static void test_values_unquoted(void **state)
{
    (void)state;
    char *out = NULL, *err = NULL;
    int rc = pgtest_cli_run(&out, &err,
                            "uninstall --pg-host '/nonexistent/o'\\''dd dir\\x' "
                            "--pg-port 5");
    assert_int_equal(rc, 1);
    if (!strstr(err, "/nonexistent/o'dd dir\\x/.s.PGSQL.5"))
        fail_msg("the host did not arrive intact: %s", err);
    free(out);
    free(err);
}

static void test_listen_cache_channel(void **state)
{
    (void)state;
    PGconn *conn = pgtest_connect();
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             PGTEST_RUN_LIMIT "\"$PGCW_CLI\" listen --channel-name cache_events --json "
                              "--count 2 --pg-dsn '%s'",
             pgtest_dsn());
    pgtest_proc p;
    pgtest_proc_start(&p, "test-cli-conn", cmd);
    pgtest_proc_wait_listening(&p, conn);
    pgtest_exec(conn, "SELECT pg_notify('cache_events', 'u42' || chr(31) || 'profile:7');"
                      "SELECT pg_notify('cache_events', 'd43|6b6579')");
    char *out, *err;
    int rc = pgtest_proc_finish(&p, 20000, &out, &err);
    if (rc != 0)
        fail_msg("listen exited %d: %s", rc, err);
    assert_null(strstr(err, "malformed")); /* it used to say "not JSON" for each */
    static const char *const keys[] = {"profile:7", "key"};
    static const char *const ops[] = {"update", "delete"};
    char *save = NULL;
    char *line = strtok_r(out, "\n", &save);
    for (int i = 0; i < 2; i++, line = strtok_r(NULL, "\n", &save)) {
        if (!line)
            fail_msg("only %d lines: %s", i, out);
        json_object *j = json_tokener_parse(line);
        if (!j)
            fail_msg("not JSON: %s", line);
        json_object *v = NULL;
        assert_true(json_object_object_get_ex(j, "kind", &v));
        assert_string_equal(json_object_get_string(v), "key");
        assert_true(json_object_object_get_ex(j, "key", &v));
        assert_string_equal(json_object_get_string(v), keys[i]);
        assert_true(json_object_object_get_ex(j, "operation", &v));
        assert_string_equal(json_object_get_string(v), ops[i]);
        assert_true(json_object_object_get_ex(j, "version", &v));
        assert_int_equal(json_object_get_int64(v), 42 + i);
        json_object_put(j);
    }
    free(out);
    free(err);

    /* --format table-change insists on JSON: the same payload is skipped, said so. */
    snprintf(cmd, sizeof cmd,
             PGTEST_RUN_LIMIT
             "\"$PGCW_CLI\" listen --channel-name cache_events --count 1 "
             "--format table-change --pg-dsn '%s'",
             pgtest_dsn());
    pgtest_proc_start(&p, "test-cli-conn", cmd);
    pgtest_proc_wait_listening(&p, conn);
    pgtest_exec(conn, "SELECT pg_notify('cache_events', 'u1' || chr(31) || 'k');"
                      "SELECT pg_notify('cache_events', '{\"operation\":\"update\","
                      "\"table\":\"t\",\"sent_at\":\"2026-01-01T00:00:00Z\"}')");
    rc = pgtest_proc_finish(&p, 20000, &out, &err);
    if (rc != 0)
        fail_msg("listen exited %d: %s", rc, err);
    assert_non_null(strstr(err, "malformed notification on channel \"cache_events\""));
    assert_non_null(strstr(out, "update t "));
    free(out);
    free(err);
    PQfinish(conn);

    rc = pgtest_cli_run(&out, &err, "listen --format yaml");
    assert_int_equal(rc, 2);
    assert_non_null(strstr(err, "--format wants auto, table-change or cache-key"));
    free(out);
    free(err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_silent_server_bounded),
        cmocka_unit_test(test_passwords_never_printed),
        cmocka_unit_test(test_listen_refused_at_once),
        cmocka_unit_test(test_values_unquoted),
        cmocka_unit_test(test_listen_cache_channel),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
