/*
 * test_cli_cache.c - `pgcachewatch cache init|get|set|del|cleanup|stats` against a
 * real server: every subcommand's help and every flag it lists, usage errors
 * (nothing on stdout, no connection made), hostile prefixes refused with nothing
 * created, get's exit codes and raw output, binary values through stdin, --ttl
 * (fractions, 'none', expiry, the server's clock), keys that are not UTF-8,
 * cleanup in batches, stats in text and JSON, and that one-shot commands open one
 * connection and no LISTEN.
 *
 * Runs the binary named by $PGCW_CLI; every run is bounded by timeout(1), every
 * process a test starts is waited for or killed.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>
#include <pgcachewatch/pgcachewatch.h>

#include "pgproc.h"
#include "pgtest.h"

static PGconn *conn;
static char dsn_arg[1400]; /* --pg-dsn '<private db>' */

/* No server there: a command that gets this far without connecting proves it. */
#define NO_SERVER "--pg-host /nonexistent/pgcw"

/* Each test that talks to the server starts from an empty public schema (no cache
 * tables of any prefix), with conn open until it ends. */
static int fresh(void **state)
{
    (void)state;
    snprintf(dsn_arg, sizeof dsn_arg, "--pg-dsn '%s'", pgtest_dsn());
    conn = pgtest_connect();
    pgtest_exec(conn, "DROP SCHEMA public CASCADE; CREATE SCHEMA public");
    return 0;
}

static int done(void **state)
{
    (void)state;
    PQfinish(conn);
    conn = NULL;
    return 0;
}

/* Runs `$PGCW_CLI <args> --pg-dsn <ours>`; returns the exit status, output in *out
 * and *err (may be NULL). */
static int cli(char **out, char **err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int cli(char **out, char **err, const char *fmt, ...)
{
    char args[2600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    return pgtest_cli_run(out, err, "%s %s", args, dsn_arg);
}

/* Runs it and fails the test unless it exits want; returns stdout (malloc'd). */
static char *cli_expect(int want, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static char *cli_expect(int want, const char *fmt, ...)
{
    char args[2600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    char *out = NULL, *err = NULL;
    int rc = cli(&out, &err, "%s", args);
    if (rc != want)
        fail_msg("'%s' exited %d, not %d:\n%s%s", args, rc, want, out, err);
    free(err);
    return out;
}

static void cli_ok(const char *args)
{
    free(cli_expect(0, "%s", args));
}

/* The command exits 0 and prints exactly want. */
static void expect_out(const char *want, const char *args)
{
    char *out = cli_expect(0, "%s", args);
    if (strcmp(out, want) != 0)
        fail_msg("'%s' printed '%s', not '%s'", args, out, want);
    free(out);
}

/* `cache get ARGS` prints exactly want (exit 0), or nothing (exit 1: a miss). */
static void expect_get(const char *args, const char *want)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "cache get %s", args);
    expect_out(want, cmd);
}

static void expect_miss(const char *args)
{
    char *out = cli_expect(1, "cache get %s", args);
    assert_string_equal(out, "");
    free(out);
}

/* The value of key as the table holds it, in hex; NULL when there is no row. */
static char *row_hex(const char *table, const char *key)
{
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT (SELECT encode(value, 'hex') FROM %s WHERE cache_key = '%s')", table,
             key);
    return pgtest_query_value(conn, sql);
}

/* --- help and usage ---------------------------------------------------------------- */

static const char *const conn_flags[] = {"--pg-dsn",  "--pg-host",     "--pg-port",
                                         "--pg-user", "--pg-database", "--pg-password",
                                         NULL};

static void test_help(void **state)
{
    (void)state;
    const char *top[] = {"cache", NULL};
    pgtest_cli_expect_help("--help", top, NULL);
    const char *cache[] = {"init",  "get KEY", "set KEY [VALUE]", "del KEY...", "cleanup",
                           "stats", NULL};
    pgtest_cli_expect_help("cache --help", cache, NULL);
    pgtest_cli_expect_help("cache -h", cache, NULL);
    pgtest_cli_expect_help("cache help", cache, NULL);
    pgtest_cli_expect_help("help cache", cache, NULL);
    static const struct {
        const char *sub;
        const char *has[6];
        const char *lacks[5];
    } subs[] = {
        {"init",
         {"--schema-prefix", "--notify-channel", "--logged", "--help", "Exit status"},
         {"--ttl", "--json"}},
        {"get",
         {"--schema-prefix", "exits 1", "2 any error", "--help"},
         {"--ttl", "--json", "--logged", "--notify-channel"}},
        {"set",
         {"--schema-prefix", "--ttl", "stdin", "'none'", "--help"},
         {"--json", "--logged", "--notify-channel"}},
        {"del",
         {"--schema-prefix", "KEY...", "--help"},
         {"--ttl", "--json", "--logged", "--notify-channel"}},
        {"cleanup",
         {"--schema-prefix", "--help"},
         {"--ttl", "--json", "--logged", "--notify-channel"}},
        {"stats",
         {"--schema-prefix", "--json", "--help"},
         {"--ttl", "--logged", "--notify-channel"}},
    };
    /* --help wins over everything else, a missing server included. */
    static const char *const spellings[][2] = {
        {"cache ", " --help"}, {"cache ", " -h " NO_SERVER}, {"cache help ", ""}};
    for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++)
        for (size_t k = 0; k < sizeof spellings / sizeof spellings[0]; k++) {
            char args[128];
            snprintf(args, sizeof args, "%s%s%s", spellings[k][0], subs[i].sub,
                     spellings[k][1]);
            pgtest_cli_expect_help(args, subs[i].has, subs[i].lacks);
            pgtest_cli_expect_help(args, conn_flags, NULL);
        }
}

/* A usage error even with a server that is not there: refused before connecting. */
static void expect_usage_error(const char *args, const char *needle)
{
    char full[512];
    snprintf(full, sizeof full, "%s " NO_SERVER, args);
    pgtest_cli_expect_usage_error(full, needle);
}

static void test_usage_errors(void **state)
{
    (void)state;
    expect_usage_error("cache", "no subcommand");
    expect_usage_error("cache --schema-prefix x get k", "comes first");
    expect_usage_error("cache frobnicate", "frobnicate");
    expect_usage_error("cache help frobnicate", "frobnicate");
    expect_usage_error("cache get", "no KEY");
    expect_usage_error("cache get a b", "'b'");
    expect_usage_error("cache set", "no KEY");
    expect_usage_error("cache set k v extra", "'extra'");
    expect_usage_error("cache del", "no KEY");
    expect_usage_error("cache init stray", "'stray'");
    expect_usage_error("cache cleanup stray", "'stray'");
    expect_usage_error("cache stats stray", "'stray'");
    expect_usage_error("cache get --bogus k", "bogus");
    /* An option missing its argument (last, so nothing is taken for it). */
    char *out = NULL, *err = NULL;
    assert_int_equal(pgtest_cli_run(&out, &err, "cache get k --schema-prefix"), 2);
    assert_string_equal(out, "");
    assert_non_null(strstr(err, "schema-prefix"));
    free(out);
    free(err);
    /* Options of one subcommand are refused by the others. */
    expect_usage_error("cache get --ttl 5 k", "--ttl is not an option of 'cache get'");
    expect_usage_error("cache del --ttl 5 k", "--ttl");
    expect_usage_error("cache init --ttl 5", "--ttl");
    expect_usage_error("cache get --json k", "--json");
    expect_usage_error("cache init --json", "--json");
    expect_usage_error("cache stats --logged", "--logged");
    expect_usage_error("cache set --logged k v", "--logged");
    expect_usage_error("cache get --notify-channel c k", "--notify-channel");
    expect_usage_error("cache stats --notify-channel c", "--notify-channel");
    /* --ttl: seconds >= 1 ms or 'none'; nothing else. */
    static const char *const bad_ttls[] = {
        "-1",  "0",    "0.0001", "abc",  "5s",   "''",         "-0.5", "nan",
        "inf", "1e10", "1e3",    "0x10", "' 5'", "1000000001", "1.",   ".5"};
    for (size_t i = 0; i < sizeof bad_ttls / sizeof bad_ttls[0]; i++) {
        char args[64];
        snprintf(args, sizeof args, "cache set --ttl %s k v", bad_ttls[i]);
        expect_usage_error(args, "--ttl wants seconds");
    }
    /* A channel longer than PostgreSQL's 63 bytes. */
    expect_usage_error("cache init --notify-channel "
                       "c234567890123456789012345678901234567890123456789012345678901234",
                       "notify_channel");
    expect_usage_error("cache init --notify-channel ''", "notify_channel");
}

/* Hostile or impossible prefixes: every subcommand refuses them (exit 2, the
 * library's reason) before anything is sent, and nothing is created. */
static void test_hostile_prefix(void **state)
{
    (void)state;
    static const char *const prefixes[] = {
        "'x\"; DROP TABLE victim; --'",
        "'a b'",
        "\"$(printf 'caf\\351_')\"",
        "'x-y'",
        "'x.y_'",
        "p2345678901234567890123456789012345_", /* 36 bytes: names would not fit */
        /* 34 bytes: its broadcast trigger's name would be 64 */
        "p23456789023456789023456789012345_",
    };
    static const char *const subs[] = {"init",    "get k", "set k v",     "del k",
                                       "cleanup", "stats", "stats --json"};
    pgtest_exec(conn, "CREATE TABLE victim (id int)");
    char *before = pgtest_catalog_snapshot(conn);
    for (size_t p = 0; p < sizeof prefixes / sizeof prefixes[0]; p++)
        for (size_t s = 0; s < sizeof subs / sizeof subs[0]; s++) {
            char *out = NULL, *err = NULL;
            int rc = cli(&out, &err, "cache %s --schema-prefix %s", subs[s], prefixes[p]);
            if (rc != 2 || out[0] || !strstr(err, "schema_prefix"))
                fail_msg("cache %s --schema-prefix %s: exit %d\n%s%s", subs[s],
                         prefixes[p], rc, out, err);
            free(out);
            free(err);
        }
    char *after = pgtest_catalog_snapshot(conn);
    assert_string_equal(before, after);
    free(before);
    free(after);
    /* The longest prefix that fits is accepted, and no name is truncated: the
     * broadcast trigger's is exactly 63 bytes. */
    cli_ok("cache init --schema-prefix p2345678902345678902345678901234_");
    assert_int_equal(
        pgtest_query_int(
            conn, "SELECT count(*) FROM pg_trigger WHERE tgname = "
                  "'p2345678902345678902345678901234_cache_broadcast_change_trigger'"),
        1);
}

/* --- init -------------------------------------------------------------------------- */

static void test_init(void **state)
{
    (void)state;
    char *out = cli_expect(0, "cache init");
    assert_string_equal(out, "schema version 5: table public.cache_entries (unlogged), "
                             "notify channel cache_events\n");
    free(out);
    assert_int_equal(pgtest_query_int(conn, "SELECT version FROM cache_schema"), 5);
    char *p = pgtest_query_value(
        conn, "SELECT relpersistence FROM pg_class WHERE relname = 'cache_entries'");
    assert_string_equal(p, "u");
    free(p);
    /* Again: a no-op, the same report. */
    char *snap = pgtest_catalog_snapshot(conn);
    out = cli_expect(0, "cache init");
    assert_non_null(strstr(out, "schema version 5"));
    free(out);
    char *snap2 = pgtest_catalog_snapshot(conn);
    assert_string_equal(snap, snap2);
    free(snap);
    free(snap2);

    /* --logged and --notify-channel, on a new prefix (folded to lower case, as
     * postgres-cache's unquoted names are). */
    out =
        cli_expect(0, "cache init --schema-prefix Mkt_ --logged --notify-channel=mkt_ev");
    assert_string_equal(out, "schema version 5: table public.mkt_cache_entries (logged), "
                             "notify channel mkt_ev\n");
    free(out);
    p = pgtest_query_value(
        conn, "SELECT relpersistence FROM pg_class WHERE relname = 'mkt_cache_entries'");
    assert_string_equal(p, "p");
    free(p);
    /* The trigger notifies on that channel. */
    PGconn *listener = pgtest_connect();
    pgtest_exec(listener, "LISTEN mkt_ev");
    cli_ok("cache set --schema-prefix mkt_ hello world");
    int64_t deadline = pgtest_now_ms() + 10000;
    PGnotify *n = NULL;
    while (!n && pgtest_now_ms() < deadline) {
        PQconsumeInput(listener);
        n = PQnotifies(listener);
        if (!n)
            pgtest_sleep_ms(5);
    }
    assert_non_null(n);
    assert_string_equal(n->relname, "mkt_ev");
    assert_string_equal(n->extra, "u1|68656c6c6f"); /* 'u', version 1, "hello" in hex */
    PQfreemem(n);
    PQfinish(listener);

    /* An existing schema keeps its channel and durability, and init says so. */
    char *err = NULL;
    int rc = cli(&out, &err, "cache init --logged --notify-channel other");
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "(unlogged), notify channel cache_events"));
    assert_non_null(strstr(err, "notifies on cache_events, not other"));
    assert_non_null(strstr(err, "stays UNLOGGED"));
    free(out);
    free(err);
}

/* --- get, set, del ----------------------------------------------------------------- */

static void test_get_set_del(void **state)
{
    (void)state;
    cli_ok("cache init");
    char *out = NULL, *err = NULL;
    /* A miss: exit 1, nothing on either stream. */
    assert_int_equal(cli(&out, &err, "cache get nope"), 1);
    assert_string_equal(out, "");
    assert_string_equal(err, "");
    free(out);
    free(err);

    cli_ok("cache set greeting 'hello world'");
    expect_out("hello world", "cache get greeting"); /* raw: no newline added */
    /* A value that starts with '-' and a key that does, after '--' (so the DSN
     * goes before it). */
    assert_int_equal(pgtest_cli_run(NULL, NULL, "cache set %s -- -k -v", dsn_arg), 0);
    assert_int_equal(pgtest_cli_run(&out, NULL, "cache get %s -- -k", dsn_arg), 0);
    assert_string_equal(out, "-v");
    free(out);
    /* Unicode keys, and the empty key (both valid text). */
    cli_ok("cache set 'café ☕' 'crème'");
    expect_get("'café ☕'", "crème");
    cli_ok("cache set '' empty-key");
    expect_get("''", "empty-key");
    /* An empty value is a hit, not a miss. */
    cli_ok("cache set blank ''");
    expect_get("blank", "");

    /* Overwrite bumps the version. */
    cli_ok("cache set greeting bonjour");
    expect_get("greeting", "bonjour");
    assert_int_equal(
        pgtest_query_int(conn, "SELECT version FROM cache_entries WHERE cache_key = "
                               "'greeting'"),
        2);

    /* del: several keys, missing ones included; each leaves a tombstone. */
    cli_ok("cache del greeting blank never-set");
    expect_miss("greeting");
    expect_miss("blank");
    assert_int_equal(pgtest_query_int(conn, "SELECT count(*) FROM cache_entries WHERE"
                                            " expires_at = '-infinity'"),
                     3);
    assert_int_equal(pgtest_cli_run(&out, NULL, "cache get %s -- -k", dsn_arg), 0);
    assert_string_equal(out, "-v");
    free(out);
}

/* The prefix applies to every subcommand: the same key in two prefixes is two. */
static void test_prefixes_apart(void **state)
{
    (void)state;
    cli_ok("cache init");
    cli_ok("cache init --schema-prefix team_b_");
    cli_ok("cache set k default");
    cli_ok("cache set --schema-prefix team_b_ k b");
    expect_get("k", "default");
    expect_get("--schema-prefix TEAM_B_ k", "b");
    cli_ok("cache del --schema-prefix team_b_ k");
    expect_miss("--schema-prefix team_b_ k");
    expect_get("k", "default");
}

/* All 256 byte values (NUL and a trailing newline included) through stdin, and
 * back byte for byte; a large value; an empty stdin. */
static void test_stdin_binary(void **state)
{
    (void)state;
    cli_ok("cache init");
    char path[] = "/tmp/pgcw-cli-cache-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unsigned char bytes[257];
    for (int i = 0; i < 256; i++)
        bytes[i] = (unsigned char)i;
    bytes[256] = '\n';
    assert_int_equal(write(fd, bytes, sizeof bytes), (ssize_t)sizeof bytes);
    close(fd);
    char *out = NULL, *err = NULL;
    int rc = cli(&out, &err, "cache set bin < %s", path);
    if (rc != 0)
        fail_msg("set from stdin exited %d: %s", rc, err);
    free(out);
    free(err);
    char *hex = row_hex("cache_entries", "bin");
    assert_non_null(hex);
    assert_int_equal(strlen(hex), 2 * sizeof bytes);
    assert_memory_equal(hex, "000102", 6);
    assert_string_equal(hex + 2 * 255, "ff0a");
    free(hex);
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             PGTEST_RUN_LIMIT "\"$PGCW_CLI\" cache get bin %s | cmp - %s", dsn_arg, path);
    rc = pgtest_run(cmd, &out, &err);
    if (rc != 0)
        fail_msg("the value came back different (%d): %s%s", rc, out, err);
    free(out);
    free(err);

    /* 4 MiB of pseudo-random bytes. */
    snprintf(cmd, sizeof cmd, "head -c 4194304 /dev/urandom > %s", path);
    assert_int_equal(pgtest_run(cmd, NULL, NULL), 0);
    snprintf(cmd, sizeof cmd,
             PGTEST_RUN_LIMIT "\"$PGCW_CLI\" cache set big %s < %s && " PGTEST_RUN_LIMIT
                              "\"$PGCW_CLI\" cache get big %s | cmp - %s",
             dsn_arg, path, dsn_arg, path);
    rc = pgtest_run(cmd, &out, &err);
    if (rc != 0)
        fail_msg("the 4 MiB value came back different (%d): %s%s", rc, out, err);
    free(out);
    free(err);
    assert_int_equal(pgtest_query_int(conn, "SELECT octet_length(value) FROM"
                                            " cache_entries WHERE cache_key = 'big'"),
                     4194304);
    unlink(path);

    /* Empty stdin: an empty value. */
    assert_int_equal(cli(NULL, NULL, "cache set none < /dev/null"), 0);
    expect_get("none", "");
}

/* --- --ttl ------------------------------------------------------------------------- */

/* The lifetime key was written with, by the server's clock: expires_at minus the
 * write's own now() (updated_at), so it does not depend on how long the commands
 * took on a loaded machine. -1: never expires. */
static double ttl_written(const char *key)
{
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT coalesce(extract(epoch FROM expires_at - updated_at), -1) FROM"
             " cache_entries WHERE cache_key = '%s'",
             key);
    char *v = pgtest_query_value(conn, sql);
    double left = atof(v);
    free(v);
    return left;
}

static void test_ttl(void **state)
{
    (void)state;
    cli_ok("cache init");
    cli_ok("cache set default v");
    cli_ok("cache set thirty --ttl 30 v");
    cli_ok("cache set frac --ttl=1.5 v");
    cli_ok("cache set forever --ttl none v");
    cli_ok("cache set milli --ttl 0.001 v");
    double d = ttl_written("default"), t = ttl_written("thirty"), f = ttl_written("frac");
    if (fabs(d - 300) > 1e-6 || fabs(t - 30) > 1e-6 || fabs(f - 1.5) > 1e-6)
        fail_msg("TTLs written: default %.6f, 30 -> %.6f, 1.5 -> %.6f", d, t, f);
    assert_true(ttl_written("forever") == -1);
    assert_true(fabs(ttl_written("milli") - 0.001) < 1e-6);
    expect_miss("milli");
    /* A short TTL expires: written to live 0.4 s from its write (judged by the
     * server's clock; a separate `cache get` could start after 0.4 s on a loaded
     * machine, so the hit is not asked for), then a miss. */
    cli_ok("cache set brief --ttl 0.4 v");
    assert_true(fabs(ttl_written("brief") - 0.4) < 1e-6);
    pgtest_sleep_ms(600);
    expect_miss("brief");
    expect_get("forever", "v");
}

/* --- keys that are not text -------------------------------------------------------- */

static void test_invalid_keys(void **state)
{
    (void)state;
    cli_ok("cache init");
    cli_ok("cache set ok v");
    static const char *const cmds[] = {"get", "set", "del"};
    for (size_t i = 0; i < 3; i++) {
        char *out = NULL, *err = NULL;
        int rc = cli(&out, &err, "cache %s \"$(printf 'caf\\351')\" %s", cmds[i],
                     i == 1 ? "v" : "");
        if (rc != 2 || out[0] || !strstr(err, "key \"caf\\xe9\" refused") ||
            !strstr(err, "not valid UTF-8") || !strstr(err, "--help"))
            fail_msg("cache %s with a Latin-1 key: exit %d\n%s%s", cmds[i], rc, out, err);
        free(out);
        free(err);
    }
    /* One bad key among several: nothing is deleted. */
    char *out = NULL, *err = NULL;
    int rc = cli(&out, &err, "cache del ok \"$(printf '\\377')\"");
    if (rc != 2 || !strstr(err, "not valid UTF-8") || !strstr(err, "nothing was sent"))
        fail_msg("del with one bad key: exit %d\n%s", rc, err);
    free(out);
    free(err);
    expect_get("ok", "v");
    assert_int_equal(pgtest_query_int(conn, "SELECT count(*) FROM cache_entries"), 1);
}

/* --- cleanup and stats ------------------------------------------------------------- */

static void test_cleanup_and_stats(void **state)
{
    (void)state;
    cli_ok("cache init");
    cli_ok("cache set live1 abc");
    cli_ok("cache set live2 --ttl none de");
    cli_ok("cache set gone --ttl 0.05 xyzw");
    cli_ok("cache set deleted 12345");
    cli_ok("cache del deleted");
    pgtest_sleep_ms(200);

    char *out = cli_expect(0, "cache stats");
    static const char *const lines[] = {
        "table           public.cache_entries\n",
        "schema version  5\n",
        "durability      unlogged\n",
        "notify channel  cache_events\n",
        "rows            4\n",
        "  live          2\n",
        "  expired       1\n",
        "  tombstones    1\n",
        "value bytes     9\n", /* abc + de + xyzw; a tombstone's value is empty */
        "total bytes     ",
    };
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++)
        if (!strstr(out, lines[i]))
            fail_msg("stats lacks '%s':\n%s", lines[i], out);
    free(out);

    out = cli_expect(0, "cache stats --json");
    struct json_object *j = json_tokener_parse(out);
    if (!j)
        fail_msg("not JSON: %s", out);
    static const struct {
        const char *key;
        const char *want;
    } fields[] = {
        {"schema", "public"},
        {"table", "cache_entries"},
        {"schema_version", "5"},
        {"durability", "unlogged"},
        {"notify_channel", "cache_events"},
        {"rows", "4"},
        {"live", "2"},
        {"expired", "1"},
        {"tombstones", "1"},
        {"value_bytes", "9"},
    };
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        struct json_object *v = NULL;
        if (!json_object_object_get_ex(j, fields[i].key, &v))
            fail_msg("no %s in %s", fields[i].key, out);
        assert_string_equal(json_object_get_string(v), fields[i].want);
    }
    struct json_object *v = NULL;
    assert_true(json_object_object_get_ex(j, "total_bytes", &v));
    assert_true(json_object_get_int64(v) > 0);
    json_object_put(j);
    free(out);

    expect_out("removed 2 expired rows\n", "cache cleanup");
    expect_out("removed 0 expired rows\n", "cache cleanup");
    /* More than one batch (500) of expired rows. */
    pgtest_exec(conn, "INSERT INTO cache_entries (cache_key, value, expires_at)"
                      " SELECT 'old' || i, 'x', now() - interval '1 second'"
                      " FROM generate_series(1, 1201) i");
    expect_out("removed 1201 expired rows\n", "cache cleanup");
    out = cli_expect(0, "cache stats --json");
    assert_non_null(strstr(out, "\"rows\":2,\"live\":2,\"expired\":0,\"tombstones\":0"));
    free(out);
    cli_ok("cache set one --ttl 0.01 v");
    pgtest_sleep_ms(100);
    expect_out("removed 1 expired row\n", "cache cleanup");
}

/* --- errors ------------------------------------------------------------------------ */

static void test_missing_table(void **state)
{
    (void)state;
    static const struct {
        const char *args;
        int rc;
    } cases[] = {
        {"cache get k", 2},   {"cache set k v", 1}, {"cache del k", 1},
        {"cache cleanup", 1}, {"cache stats", 1},   {"cache stats --json", 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *out = NULL, *err = NULL;
        int rc = cli(&out, &err, "%s --schema-prefix nosuch_", cases[i].args);
        if (rc != cases[i].rc || out[0] || !strstr(err, "nosuch_cache_entries") ||
            !strstr(err, "cache init --schema-prefix nosuch_"))
            fail_msg("'%s' on a missing table: exit %d\n%s%s", cases[i].args, rc, out,
                     err);
        free(out);
        free(err);
    }
}

/* Connection options reach the cache commands: the server DSN names database
 * postgres, --pg-database ours; $PGDSN stands in for --pg-dsn. */
static void test_connection_options(void **state)
{
    (void)state;
    cli_ok("cache init");
    cli_ok("cache set where ours");
    const char *db = strrchr(pgtest_dsn(), '=');
    assert_non_null(db);
    char *out = NULL, *err = NULL;
    int rc = pgtest_cli_run(&out, &err, "cache get where --pg-dsn '%s' --pg-database %s",
                            pgtest_server_dsn(), db + 1);
    if (rc != 0 || strcmp(out, "ours") != 0)
        fail_msg("--pg-database: exit %d, '%s': %s", rc, out, err);
    free(out);
    free(err);
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             PGTEST_RUN_LIMIT "env PGDSN='%s' \"$PGCW_CLI\" cache get where",
             pgtest_dsn());
    rc = pgtest_run(cmd, &out, &err);
    if (rc != 0 || strcmp(out, "ours") != 0)
        fail_msg("$PGDSN: exit %d, '%s': %s", rc, out, err);
    free(out);
    free(err);
    /* A server that is not there: get's error is 2 (1 is a miss), set's is 1. */
    rc = pgtest_cli_run(&out, &err, "cache get where " NO_SERVER);
    assert_int_equal(rc, 2);
    assert_string_equal(out, "");
    assert_non_null(strstr(err, "/nonexistent/pgcw"));
    free(out);
    free(err);
    assert_int_equal(pgtest_cli_run(NULL, NULL, "cache set where x " NO_SERVER), 1);
}

/* A one-shot command opens one connection and never LISTENs: caught while its set
 * waits for a row lock held here. */
static void test_one_connection_no_listen(void **state)
{
    (void)state;
    cli_ok("cache init");
    cli_ok("cache set locked v1");
    PGconn *holder = pgtest_connect();
    pgtest_exec(
        holder,
        "BEGIN; SELECT 1 FROM cache_entries WHERE cache_key = 'locked' FOR UPDATE");
    char cmd[2048];
    snprintf(cmd, sizeof cmd, PGTEST_RUN_LIMIT "\"$PGCW_CLI\" cache set locked v2 %s",
             dsn_arg);
    pgtest_proc p;
    pgtest_proc_start(&p, "test-cli-cache", cmd);
    int64_t deadline = pgtest_now_ms() + 10000;
    long long waiting = 0;
    while (waiting == 0 && pgtest_now_ms() < deadline) {
        waiting = pgtest_query_int(
            conn,
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND application_name = 'pgcachewatch' AND wait_event_type = 'Lock'");
        if (!waiting)
            pgtest_sleep_ms(10);
    }
    long long sessions = pgtest_query_int(
        conn, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
              " AND application_name = 'pgcachewatch'");
    long long listening = pgtest_query_int(
        conn, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
              " AND application_name = 'pgcachewatch' AND query ILIKE 'LISTEN%'");
    pgtest_exec(holder, "ROLLBACK");
    int rc = pgtest_proc_wait(&p, 20000);
    char *err = pgtest_slurp_path(p.err_path);
    pgtest_proc_kill(&p);
    PQfinish(holder);
    if (rc != 0)
        fail_msg("set exited %d: %s", rc, err);
    free(err);
    assert_int_equal(waiting, 1);
    assert_int_equal(sessions, 1);
    assert_int_equal(listening, 0);
    expect_get("locked", "v2");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_help),
        cmocka_unit_test(test_usage_errors),
        cmocka_unit_test_setup_teardown(test_hostile_prefix, fresh, done),
        cmocka_unit_test_setup_teardown(test_init, fresh, done),
        cmocka_unit_test_setup_teardown(test_get_set_del, fresh, done),
        cmocka_unit_test_setup_teardown(test_prefixes_apart, fresh, done),
        cmocka_unit_test_setup_teardown(test_stdin_binary, fresh, done),
        cmocka_unit_test_setup_teardown(test_ttl, fresh, done),
        cmocka_unit_test_setup_teardown(test_invalid_keys, fresh, done),
        cmocka_unit_test_setup_teardown(test_cleanup_and_stats, fresh, done),
        cmocka_unit_test_setup_teardown(test_missing_table, fresh, done),
        cmocka_unit_test_setup_teardown(test_connection_options, fresh, done),
        cmocka_unit_test_setup_teardown(test_one_connection_no_listen, fresh, done),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
