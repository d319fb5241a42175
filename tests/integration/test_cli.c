/*
 * test_cli.c - the `pgcachewatch` command against a real server: help and usage
 * errors, option order, install/uninstall dry runs (proved by catalog snapshots)
 * and commits, PostgreSQL's errors, listen with --count/--timeout/SIGTERM, and
 * the demo (its cache part included). The cache commands: test_cli_cache.c.
 *
 * Runs the binary named by $PGCW_CLI; every run is bounded by timeout(1) or a
 * deadline, and every process a test starts is waited for or killed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>
#include <pgcachewatch/pgcachewatch.h>

#include "pgproc.h"
#include "pgtest.h"

static PGconn *conn;
/* The name of the default channel's trigger, the same on every table. */
#define DEFAULT_TRIGGER PGCW_DEFAULT_TRIGGER_PREFIX PGCW_DEFAULT_CHANNEL
static char dsn_arg[1400]; /* --pg-dsn '<private db>' */

static char *catalog_snapshot(void)
{
    return pgtest_catalog_snapshot(conn);
}

static int setup(void **state)
{
    (void)state;
    conn = pgtest_connect();
    snprintf(dsn_arg, sizeof dsn_arg, "--pg-dsn '%s'", pgtest_dsn());
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    PQfinish(conn);
    conn = NULL;
    return 0;
}

/* Each test starts from two fresh tables and nothing installed. */
static int fresh(void **state)
{
    (void)state;
    pgtest_exec(conn, "DROP TABLE IF EXISTS items, other CASCADE;"
                      "CREATE TABLE items (id int PRIMARY KEY, name text);"
                      "CREATE TABLE other (id int PRIMARY KEY);"
                      "INSERT INTO items VALUES (1, 'one'), (2, 'two')");
    char *err = NULL;
    int rc = pgtest_cli_run(NULL, &err, "uninstall --commit %s", dsn_arg);
    if (rc != 0)
        fprintf(stderr, "uninstall failed (%d): %s\n", rc, err);
    free(err);
    return rc == 0 ? 0 : -1;
}

/* --- help and usage ---------------------------------------------------------------- */

static void test_help(void **state)
{
    (void)state;
    static const char *const conn_opts[] = {"--pg-dsn",      "--pg-host",
                                            "--pg-port",     "--pg-user",
                                            "--pg-database", "--pg-password"};
    const char *top[] = {"install", "uninstall", "listen", "cache",
                         "demo",    "--version", NULL};
    pgtest_cli_expect_help("--help", top, NULL);
    const char *install[] = {"--tables",
                             "--channel-name",
                             "--function-name",
                             "--trigger-name",
                             "--trigger-name-prefix",
                             "--commit",
                             "--with-keys",
                             "--ddl",
                             "--help",
                             conn_opts[0],
                             conn_opts[1],
                             conn_opts[2],
                             conn_opts[3],
                             conn_opts[4],
                             conn_opts[5],
                             "(ps): prefer PGPASSWORD or ~/.pgpass",
                             "Exit status",
                             NULL};
    pgtest_cli_expect_help("install --help", install, NULL);
    pgtest_cli_expect_help("help install", install, NULL);
    pgtest_cli_expect_help("install --help sometable --commit", install,
                           NULL); /* help wins, no SQL */
    const char *uninstall[] = {
        "--channel-name", "--function-name", "--trigger-name", "--commit",
        "--ddl",          conn_opts[0],      conn_opts[5],     NULL};
    pgtest_cli_expect_help("uninstall --help", uninstall, NULL);
    const char *listen[] = {"--channel-name", "--json",     "--count", "--timeout",
                            conn_opts[0],     conn_opts[4], NULL};
    pgtest_cli_expect_help("listen --help", listen, NULL);
    const char *demo[] = {"--help", conn_opts[0], conn_opts[1], NULL};
    pgtest_cli_expect_help("demo --help", demo, NULL);

    char *out = NULL;
    assert_int_equal(pgtest_cli_run(&out, NULL, "--version"), 0);
    assert_non_null(strstr(out, PGCW_VERSION_STRING));
    free(out);
}

static void test_usage_errors(void **state)
{
    (void)state;
    pgtest_cli_expect_usage_error("", "no command");
    pgtest_cli_expect_usage_error("--bogus", "bogus");
    pgtest_cli_expect_usage_error("frobnicate", "frobnicate");
    pgtest_cli_expect_usage_error("install --bogus items", "bogus");
    pgtest_cli_expect_usage_error("install items --bogus", "bogus");
    pgtest_cli_expect_usage_error("install", "no table");
    pgtest_cli_expect_usage_error("install --channel-name", "channel-name");
    pgtest_cli_expect_usage_error("install 'two words'", NULL);
    pgtest_cli_expect_usage_error("uninstall items", "items");
    pgtest_cli_expect_usage_error("uninstall --with-keys", "with-keys");
    pgtest_cli_expect_usage_error("listen --count zero", "count");
    pgtest_cli_expect_usage_error("listen --count 0", "count");
    pgtest_cli_expect_usage_error("listen --timeout -1", "timeout");
    /* One number syntax for both, and out of range is refused, never clamped. */
    static const char *const not_numbers[] = {
        "' 5'", "+5", "5x", "0x10", "1e3", "inf", "nan", "1.", ".5", "''", "1,5",
    };
    for (size_t i = 0; i < sizeof not_numbers / sizeof not_numbers[0]; i++) {
        char args[64];
        snprintf(args, sizeof args, "listen --count %s", not_numbers[i]);
        pgtest_cli_expect_usage_error(args, "count");
        snprintf(args, sizeof args, "listen --timeout %s", not_numbers[i]);
        pgtest_cli_expect_usage_error(args, "timeout");
    }
    pgtest_cli_expect_usage_error("listen --count 9223372036854775808", "count");
    pgtest_cli_expect_usage_error("listen --count 99999999999999999999999", "count");
    pgtest_cli_expect_usage_error("listen --timeout 1000000001", "timeout");
    pgtest_cli_expect_usage_error("listen --timeout 1e9", "timeout");
    pgtest_cli_expect_usage_error("listen stray", "stray");
    pgtest_cli_expect_usage_error("demo --bogus", "bogus");
}

/* Options before or after the tables, and both table spellings, give one script. */
static void test_option_order(void **state)
{
    (void)state;
    static const char *const spellings[] = {
        "install --with-keys --channel-name chx --trigger-name p_ --function-name fx "
        "items other",
        "install items other --function-name fx --trigger-name-prefix p_ "
        "--channel-name=chx --with-keys",
        "install --tables items other --with-keys --channel-name chx --trigger-name p_ "
        "--function-name fx",
        "install --tables items --tables other --channel-name chx --function-name fx "
        "--trigger-name p_ --with-keys",
        "install items --with-keys --tables other --channel-name chx --function-name fx "
        "--trigger-name p_",
    };
    char *first = NULL;
    for (size_t i = 0; i < sizeof spellings / sizeof spellings[0]; i++) {
        char *out = NULL, *err = NULL;
        int rc = pgtest_cli_run(&out, &err, "%s", spellings[i]);
        if (rc != 0)
            fail_msg("'%s' exited %d: %s", spellings[i], rc, err);
        if (!first) {
            first = out;
            assert_non_null(strstr(out, "chx"));
            assert_non_null(strstr(out, "TRIGGER \"p_chx\" AFTER TRUNCATE ON \"items\""));
            assert_non_null(
                strstr(out, "TRIGGER \"p_chx_ins\" AFTER INSERT ON \"other\""));
            assert_non_null(strstr(out, "fx_chx"));
        } else {
            assert_string_equal(out, first);
            free(out);
        }
        free(err);
    }
    free(first);
}

/* --- install / uninstall ----------------------------------------------------------- */

static void test_install_dry_run(void **state)
{
    (void)state;
    char *before = catalog_snapshot();
    char *out = NULL, *err = NULL;
    /* A host that cannot exist proves the dry run does not connect. */
    int rc = pgtest_cli_run(&out, &err, "install --pg-host /nonexistent/pgcw items");
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "CREATE"));
    assert_non_null(strstr(out, "TRIGGER"));
    assert_non_null(strstr(out, "items"));
    assert_non_null(strstr(err, "::: Use '--commit' to write changes to db. :::"));
    char *after = catalog_snapshot();
    assert_string_equal(before, after);
    free(out);
    free(err);
    free(before);
    free(after);
}

/* Waits for one notification on conn; returns its payload (malloc'd) or NULL. */
static char *wait_notify(PGconn *c, int64_t ms)
{
    int64_t deadline = pgtest_now_ms() + ms;
    for (;;) {
        PQconsumeInput(c);
        PGnotify *n = PQnotifies(c);
        if (n) {
            char *payload = strdup(n->extra);
            PQfreemem(n);
            return payload;
        }
        int64_t left = deadline - pgtest_now_ms();
        if (left <= 0)
            return NULL;
        fd_set rd;
        FD_ZERO(&rd);
        FD_SET(PQsocket(c), &rd);
        struct timeval tv = {(time_t)(left / 1000), (suseconds_t)(left % 1000) * 1000};
        select(PQsocket(c) + 1, &rd, NULL, NULL, &tv);
    }
}

static void test_install_commit(void **state)
{
    (void)state;
    char *before = catalog_snapshot();
    char *out = NULL, *err = NULL;
    int rc = pgtest_cli_run(&out, &err, "install --commit --with-keys %s items", dsn_arg);
    if (rc != 0)
        fail_msg("install --commit exited %d: %s", rc, err);
    assert_non_null(strstr(out, "CREATE"));
    assert_null(strstr(err, "--commit")); /* no dry-run hint */
    char *after = catalog_snapshot();
    assert_string_not_equal(before, after);
    assert_non_null(strstr(after, "trigger items." DEFAULT_TRIGGER));
    assert_null(strstr(after, "trigger other."));

    PGconn *listener = pgtest_connect();
    pgtest_exec(listener, "LISTEN " PGCW_DEFAULT_CHANNEL);
    pgtest_exec(conn, "UPDATE items SET name = 'uno' WHERE id = 1");
    char *payload = wait_notify(listener, 10000);
    assert_non_null(payload);
    struct json_object *j = json_tokener_parse(payload);
    assert_non_null(j);
    struct json_object *v = NULL;
    assert_true(json_object_object_get_ex(j, "table", &v));
    assert_string_equal(json_object_get_string(v), "items");
    assert_true(json_object_object_get_ex(j, "operation", &v));
    assert_string_equal(json_object_get_string(v), "update");
    assert_true(json_object_object_get_ex(j, "keys", &v));
    json_object_put(j);
    free(payload);
    PQfinish(listener);
    free(out);
    free(err);
    free(before);
    free(after);
}

/* Explicit options override the DSN: the server DSN names database postgres,
 * --pg-database names ours, and ours is where the triggers land. */
static void test_connection_override(void **state)
{
    (void)state;
    const char *db = strrchr(pgtest_dsn(), '=');
    assert_non_null(db);
    db++;
    char *err = NULL;
    int rc = pgtest_cli_run(NULL, &err,
                            "install --commit --pg-dsn '%s' --pg-database %s items",
                            pgtest_server_dsn(), db);
    if (rc != 0)
        fail_msg("exited %d: %s", rc, err);
    free(err);
    char *snap = catalog_snapshot();
    assert_non_null(strstr(snap, "trigger items." DEFAULT_TRIGGER));
    free(snap);
    /* And $PGDSN is the DSN when --pg-dsn is absent. */
    char *out = NULL;
    char cmd[2048];
    snprintf(cmd, sizeof cmd, PGTEST_RUN_LIMIT "env PGDSN='%s' \"$PGCW_CLI\" uninstall",
             pgtest_dsn());
    rc = pgtest_run(cmd, &out, &err);
    if (rc != 0)
        fail_msg("uninstall with PGDSN exited %d: %s", rc, err);
    assert_non_null(strstr(out, "DROP TRIGGER"));
    free(out);
    free(err);
}

static void test_install_missing_table(void **state)
{
    (void)state;
    char *before = catalog_snapshot();
    char *out = NULL, *err = NULL;
    int rc =
        pgtest_cli_run(&out, &err, "install --commit %s items no_such_table", dsn_arg);
    assert_int_equal(rc, 1);
    if (!strstr(err, "relation \"no_such_table\" does not exist"))
        fail_msg("PostgreSQL's message is missing: %s", err);
    char *after = catalog_snapshot();
    assert_string_equal(before, after); /* items got nothing either: one transaction */
    free(out);
    free(err);
    free(before);
    free(after);
}

static void test_connection_failure(void **state)
{
    (void)state;
    char *err = NULL;
    int rc =
        pgtest_cli_run(NULL, &err, "uninstall --pg-host /nonexistent/pgcw --pg-port 1");
    assert_int_equal(rc, 1);
    assert_non_null(strstr(err, "could not connect"));
    assert_non_null(strstr(err, "/nonexistent/pgcw")); /* libpq's own detail */
    free(err);
}

static void test_uninstall(void **state)
{
    (void)state;
    char *baseline = catalog_snapshot();
    char *out = NULL, *err = NULL;
    int rc = pgtest_cli_run(&out, &err, "uninstall %s", dsn_arg);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(err, "nothing installed"));
    free(out);
    free(err);

    assert_int_equal(
        pgtest_cli_run(NULL, NULL, "install --commit %s items other", dsn_arg), 0);
    char *installed = catalog_snapshot();
    rc = pgtest_cli_run(&out, &err, "uninstall %s", dsn_arg);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "DROP TRIGGER"));
    assert_non_null(strstr(out, "DROP FUNCTION"));
    assert_non_null(strstr(err, "::: Use '--commit' to write changes to db. :::"));
    char *snap = catalog_snapshot();
    assert_string_equal(snap, installed);
    free(snap);
    free(out);
    free(err);

    /* Another channel's objects are not ours to drop. */
    assert_int_equal(
        pgtest_cli_run(
            NULL, NULL,
            "install --commit --channel-name keep --trigger-name keep_ %s other",
            dsn_arg),
        0);
    char *with_keep = catalog_snapshot();
    rc = pgtest_cli_run(&out, &err, "uninstall --commit %s", dsn_arg);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "DROP TRIGGER"));
    free(out);
    free(err);
    snap = catalog_snapshot();
    assert_string_not_equal(snap, with_keep);
    assert_null(strstr(snap, "items." DEFAULT_TRIGGER));
    assert_non_null(strstr(snap, "keep"));
    free(snap);
    rc = pgtest_cli_run(&out, &err, "uninstall --commit --channel-name keep %s", dsn_arg);
    assert_int_equal(rc, 0);
    free(out);
    free(err);
    snap = catalog_snapshot();
    assert_string_equal(snap, baseline);
    free(snap);
    free(with_keep);
    free(installed);
    free(baseline);
}

/* --- listen ------------------------------------------------------------------------ */

static void test_listen_json_count(void **state)
{
    (void)state;
    assert_int_equal(
        pgtest_cli_run(NULL, NULL, "install --commit --with-keys %s items", dsn_arg), 0);
    char cmd[2048];
    snprintf(cmd, sizeof cmd, PGTEST_RUN_LIMIT "\"$PGCW_CLI\" listen --json --count 3 %s",
             dsn_arg);
    pgtest_proc p;
    pgtest_proc_start(&p, "test-cli", cmd);
    pgtest_proc_wait_listening(&p, conn);
    pgtest_exec(conn, "INSERT INTO items VALUES (10, 'ten')");
    pgtest_exec(conn, "UPDATE items SET name = 'TEN' WHERE id = 10");
    pgtest_exec(conn, "DELETE FROM items WHERE id = 10");
    char *out, *err;
    int rc = pgtest_proc_finish(&p, 20000, &out, &err);
    if (rc != 0)
        fail_msg("listen exited %d: %s", rc, err);
    static const char *const ops[] = {"insert", "update", "delete"};
    char *save = NULL;
    char *line = strtok_r(out, "\n", &save);
    for (int i = 0; i < 3; i++, line = strtok_r(NULL, "\n", &save)) {
        if (!line)
            fail_msg("only %d lines: %s", i, out);
        struct json_object *j = json_tokener_parse(line);
        if (!j)
            fail_msg("not JSON: %s", line);
        struct json_object *v = NULL;
        assert_true(json_object_object_get_ex(j, "table", &v));
        assert_string_equal(json_object_get_string(v), "items");
        assert_true(json_object_object_get_ex(j, "operation", &v));
        assert_string_equal(json_object_get_string(v), ops[i]);
        assert_true(json_object_object_get_ex(j, "keys", &v));
        assert_string_equal(json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN),
                            "[[10]]");
        json_object_put(j);
    }
    assert_null(line);
    free(out);
    free(err);
}

static void test_listen_timeout(void **state)
{
    (void)state;
    int64_t t0 = pgtest_now_ms();
    char *out = NULL, *err = NULL;
    int rc = pgtest_cli_run(&out, &err, "listen --timeout 2 %s", dsn_arg);
    if (rc != 0)
        fail_msg("listen --timeout exited %d: %s", rc, err);
    assert_string_equal(out, "");
    free(out);
    free(err);
    rc = pgtest_cli_run(
        &out, &err, "listen --count 1 --timeout 0.5 --channel-name quiet %s", dsn_arg);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(err, "timed out"));
    free(out);
    free(err);
    assert_true(pgtest_now_ms() - t0 < 20000);

    /* An unreachable server is an error, not a silent wait. */
    rc = pgtest_cli_run(&out, &err,
                        "listen --count 1 --timeout 2 --pg-host /nonexistent/pgcw");
    assert_int_equal(rc, 1);
    assert_non_null(strstr(err, "could not"));
    free(out);
    free(err);
}

/* Anyone who may NOTIFY on a watched channel chooses a malformed payload's bytes, and
 * a malformed payload is logged: it must not forge a line of the CLI's stderr nor
 * reach the terminal as an escape sequence, and a flood of them is rate-limited. */
static size_t count_lines_with(const char *text, const char *needle)
{
    size_t n = 0;
    for (const char *line = text; line && *line;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        char buf[4096];
        snprintf(buf, sizeof buf, "%.*s", (int)len, line);
        n += strstr(buf, needle) != NULL;
        line = end ? end + 1 : NULL;
    }
    return n;
}

static void test_listen_hostile_payloads(void **state)
{
    (void)state;
    assert_int_equal(pgtest_cli_run(NULL, NULL, "install --commit %s items", dsn_arg), 0);
    char cmd[2048];
    snprintf(cmd, sizeof cmd, PGTEST_RUN_LIMIT "\"$PGCW_CLI\" listen --json --count 1 %s",
             dsn_arg);
    pgtest_proc p;
    pgtest_proc_start(&p, "test-cli", cmd);
    pgtest_proc_wait_listening(&p, conn);
    /* Eight in one burst (five are logged, three held back), then one more a
     * second later, which says how many were held back. */
    for (int i = 0; i < 8; i++)
        pgtest_exec(conn,
                    "SELECT pg_notify('" PGCW_DEFAULT_CHANNEL "', "
                    "E'hello\\npgcachewatch listen: listening on forged\\x1b[31m')");
    pgtest_sleep_ms(1100);
    pgtest_exec(conn, "SELECT pg_notify('" PGCW_DEFAULT_CHANNEL "', E'late\\r\\u202e')");
    pgtest_exec(conn, "INSERT INTO items VALUES (11, 'eleven')");
    char *out, *err;
    int rc = pgtest_proc_finish(&p, 20000, &out, &err);
    if (rc != 0)
        fail_msg("listen exited %d: %s", rc, err);
    assert_non_null(strstr(out, "\"insert\""));
    if (count_lines_with(err, "malformed notification") != 6)
        fail_msg("expected 5 + 1 malformed warnings: %s", err);
    assert_non_null(
        strstr(err, "hello\\npgcachewatch listen: listening on forged\\x1b[31m"));
    assert_non_null(strstr(err, "late\\r\\u202e (3 similar messages suppressed)"));
    for (const char *c = err; *c; c++)
        if ((unsigned char)*c < 0x20 && *c != '\n')
            fail_msg("a control byte 0x%02x reached stderr: %s", (unsigned char)*c, err);
    if (count_lines_with(err, "listening on forged") != 5 ||
        strstr(err, "\npgcachewatch listen: listening on forged"))
        fail_msg("a forged line reached stderr: %s", err);
    free(out);
    free(err);
}

static void test_listen_sigterm(void **state)
{
    (void)state;
    assert_int_equal(pgtest_cli_run(NULL, NULL, "install --commit %s items", dsn_arg), 0);
    char cmd[2048];
    /* exec: the signal must reach the CLI, not a shell around it. */
    snprintf(cmd, sizeof cmd,
             "exec \"$PGCW_CLI\" listen --channel-name " PGCW_DEFAULT_CHANNEL " %s",
             dsn_arg);
    pgtest_proc p;
    pgtest_proc_start(&p, "test-cli", cmd);
    pgtest_proc_wait_listening(&p, conn);
    pgtest_exec(conn, "DELETE FROM items WHERE id = 2");
    /* The event is printed as it arrives, long before the process ends. */
    int64_t deadline = pgtest_now_ms() + 10000;
    char *out = pgtest_slurp_path(p.out_path);
    while (!strstr(out, "items") && pgtest_now_ms() < deadline) {
        free(out);
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
        out = pgtest_slurp_path(p.out_path);
    }
    bool printed = strstr(out, "delete") != NULL;
    free(out);
    kill(p.pid, SIGTERM);
    int rc = pgtest_proc_wait(&p, 10000);
    char *err = pgtest_slurp_path(p.err_path);
    pgtest_proc_kill(&p);
    assert_true(printed);
    if (rc != 0)
        fail_msg("listen after SIGTERM exited %d: %s", rc, err);
    free(err);
}

/* --- demo -------------------------------------------------------------------------- */

static void test_demo(void **state)
{
    (void)state;
    char *before = catalog_snapshot();
    for (int run = 0; run < 2; run++) { /* it leaves nothing behind: it can rerun */
        char *out = NULL, *err = NULL;
        int rc = pgtest_cli_run(&out, &err, "demo %s", dsn_arg);
        if (rc != 0)
            fail_msg("demo exited %d:\n%s\n%s", rc, out, err);
        const char *expect[] = {
            "miss", "hit", "event:", "[1]", "ms", "3.60",
            /* The cache part: two processes, B's write evicts A's L1 copy, and
             * get_or_set from both loads once. */
            "init_db: pgcachewatch_demo.cache_entries at schema version 5",
            "   B: set greeting = \"hello\"\n",
            "   A: get greeting -> \"hello\"   [read from PostgreSQL, now in A's L1]\n",
            "   A: get greeting -> \"hello\"   [A's L1]\n",
            "   B: set greeting = \"bonjour\"\n",
            "   A: notification: update key \"greeting\" version=2 -> A's L1 copy "
            "evicted\n",
            "   A: get greeting -> \"bonjour\"   [read from PostgreSQL, now in A's L1]\n",
            "[ran the loader]", "the loader ran once in total", "Done"};
        for (size_t i = 0; i < sizeof expect / sizeof expect[0]; i++)
            if (!strstr(out, expect[i]))
                fail_msg("demo output lacks '%s':\n%s", expect[i], out);
        /* One client loaded; the other one read what it wrote. */
        const char *a = strstr(out, "   A: -> \"report made by ");
        const char *b = strstr(out, "   B: -> \"report made by ");
        if (!a || !b || strncmp(a + 9, b + 9, 30) != 0)
            fail_msg("the two clients got different reports:\n%s", out);
        free(out);
        free(err);
        assert_int_equal(pgtest_query_int(conn, "SELECT count(*) FROM pg_namespace"
                                                " WHERE nspname = 'pgcachewatch_demo'"),
                         0);
        assert_int_equal(pgtest_query_int(conn, "SELECT count(*) FROM pg_class"
                                                " WHERE relname LIKE '%cache_entries'"),
                         0);
        char *after = catalog_snapshot();
        assert_string_equal(before, after);
        free(after);
    }
    /* It refuses to touch a schema it did not create. */
    pgtest_exec(
        conn, "CREATE SCHEMA pgcachewatch_demo; CREATE TABLE pgcachewatch_demo.mine ()");
    char *out = NULL, *err = NULL;
    int rc = pgtest_cli_run(&out, &err, "demo %s", dsn_arg);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(err, "already exists"));
    assert_int_equal(pgtest_query_int(conn, "SELECT count(*) FROM pg_class"
                                            " WHERE relname = 'mine'"),
                     1);
    pgtest_exec(conn, "DROP SCHEMA pgcachewatch_demo CASCADE");
    free(out);
    free(err);
    free(before);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_help),
        cmocka_unit_test(test_usage_errors),
        cmocka_unit_test(test_option_order),
        cmocka_unit_test_setup(test_install_dry_run, fresh),
        cmocka_unit_test_setup(test_install_commit, fresh),
        cmocka_unit_test_setup(test_connection_override, fresh),
        cmocka_unit_test_setup(test_install_missing_table, fresh),
        cmocka_unit_test(test_connection_failure),
        cmocka_unit_test_setup(test_uninstall, fresh),
        cmocka_unit_test_setup(test_listen_json_count, fresh),
        cmocka_unit_test_setup(test_listen_timeout, fresh),
        cmocka_unit_test_setup(test_listen_hostile_payloads, fresh),
        cmocka_unit_test_setup(test_listen_sigterm, fresh),
        cmocka_unit_test_setup(test_demo, fresh),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
