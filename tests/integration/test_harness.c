/*
 * test_harness.c - `pgcachewatch harness` against real servers: its help names
 * every flag it accepts and nothing else, each flag does what the help says (the
 * JSON report echoes it, the table shows it), usage errors connect to nothing, a
 * short run with --chaos ends with zero violations and real kills and recoveries,
 * a deliberately stale read (the test-only --inject-stale) is caught, and the
 * exact command `pgcachewatch harness --duration 5 --chaos --json` passes on the
 * throwaway server it starts by itself.
 *
 * Runs the binary named by $PGCW_CLI; every run is bounded by timeout(1).
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "pgtest.h"

/* No server there: a command that gets this far without connecting proves it. */
#define NO_SERVER "--pg-host /nonexistent/pgcw"
/* A run is longer than the usual CLI call: set-up of many clients, the run, and
 * under sanitizers everything slower. */
#define RUN_LIMIT "timeout -k 5 280 "
/* No connection setting at all: the harness starts its throwaway server. */
#define NO_SETTINGS "env -u PGDSN -u PGHOST -u PGPORT -u PGDATABASE -u PGSERVICE "

/* Runs `[NO_SETTINGS] RUN_LIMIT $PGCW_CLI harness [--pg-dsn <test db>] <args>`,
 * fails the test unless it exits want, and returns stdout parsed as one JSON
 * object (NULL when want_json is false); *out_p and *err_p (may be NULL) receive
 * the output, else it is freed. */
static json_object *run_report(int want, bool on_test_db, bool want_json, char **out_p,
                               char **err_p, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
static json_object *run_report(int want, bool on_test_db, bool want_json, char **out_p,
                               char **err_p, const char *fmt, ...)
{
    char args[2048], dsn[1400] = "", cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    if (on_test_db)
        snprintf(dsn, sizeof dsn, "--pg-dsn '%s'", pgtest_dsn());
    snprintf(cmd, sizeof cmd, "%s" RUN_LIMIT "'%s' harness %s %s",
             on_test_db ? "" : NO_SETTINGS, pgtest_cli(), dsn, args);
    char *out = NULL, *err = NULL;
    int rc = pgtest_run(cmd, &out, &err);
    if (rc != want)
        fail_msg("'harness %s' exited %d, not %d\nstdout:\n%s\nstderr:\n%s", args, rc,
                 want, out, err);
    json_object *o = NULL;
    if (want_json) {
        o = json_tokener_parse(out);
        if (!o || !json_object_is_type(o, json_type_object))
            fail_msg("the report is not one JSON object:\n%s\nstderr:\n%s", out, err);
    }
    if (out_p)
        *out_p = out;
    else
        free(out);
    if (err_p)
        *err_p = err;
    else
        free(err);
    return o;
}

/* The member at a dotted path ("chaos.pool_kills"); fails when missing. */
static json_object *get(json_object *o, const char *path)
{
    char buf[128];
    snprintf(buf, sizeof buf, "%s", path);
    json_object *cur = o;
    for (char *save = NULL, *p = strtok_r(buf, ".", &save); p;
         p = strtok_r(NULL, ".", &save))
        if (!json_object_object_get_ex(cur, p, &cur))
            fail_msg("the report has no %s", path);
    return cur;
}

static int64_t get_int(json_object *o, const char *path)
{
    return json_object_get_int64(get(o, path));
}

static double get_double(json_object *o, const char *path)
{
    return json_object_get_double(get(o, path));
}

/* What a report's config must say: a number (exact) or, when text is set, a
 * string. */
typedef struct expect_cfg {
    const char *path;
    double num;
    const char *text;
} expect_cfg;

static void expect_config(json_object *o, const expect_cfg *e, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (e[i].text) {
            const char *got = json_object_get_string(get(o, e[i].path));
            if (strcmp(got, e[i].text) != 0)
                fail_msg("%s is \"%s\", not \"%s\"", e[i].path, got, e[i].text);
        } else if (get_double(o, e[i].path) != e[i].num) {
            fail_msg("%s is %g, not %g", e[i].path, get_double(o, e[i].path), e[i].num);
        }
    }
}

/* The sums every report must satisfy, whatever the run did. */
static void check_report_sums(json_object *o)
{
    static const char *const ops[] = {"get_hit", "get_miss", "set", "delete",
                                      "get_or_set"};
    int64_t counted = 0;
    for (size_t i = 0; i < 5; i++) {
        char path[64];
        snprintf(path, sizeof path, "latency_us.%s.count", ops[i]);
        int64_t n = get_int(o, path);
        counted += n;
        if (n > 0) {
            /* Percentiles are ordered and bounded by the maximum. */
            double prev = 0;
            static const char *const q[] = {"p50", "p95", "p99", "p99_9", "max"};
            for (size_t j = 0; j < 5; j++) {
                snprintf(path, sizeof path, "latency_us.%s.%s", ops[i], q[j]);
                double v = get_double(o, path);
                assert_true(v >= prev);
                prev = v;
            }
        }
    }
    assert_int_equal(counted + get_int(o, "errors.total"), get_int(o, "ops"));
    assert_int_equal(get_int(o, "reads_checked"), get_int(o, "latency_us.get_hit.count"));
    double hr = get_double(o, "hit_rate");
    assert_true(hr >= 0.0 && hr <= 1.0);
}

/* --- help and usage ---------------------------------------------------------------- */

/* Every flag the parser knows, with a value it accepts ("" for none). */
static const struct {
    const char *flag, *value;
} flags[] = {
    {"--writers", "2"},
    {"--readers", "3"},
    {"--processes", "2"},
    {"--keys", "10"},
    {"--value-size", "40"},
    {"--ttl", "5"},
    {"--read-ratio", "0.5"},
    {"--get-or-set-ratio", "0.3"},
    {"--delete-ratio", "0.1"},
    {"--zipf", "1.1"},
    {"--duration", "2"},
    {"--ops", "50"},
    {"--inval-bound", "1500"},
    {"--notify-bound", "20"},
    {"--disable-notify", ""},
    {"--l1-ttl", "300"},
    {"--notify-mode", "after-commit"},
    {"--pool-size", "2"},
    {"--client-nice", "5"},
    {"--chaos", ""},
    {"--chaos-interval", "200"},
    {"--json", ""},
    {"--seed", "7"},
    {"--schema-prefix", "hx2_"},
    {"--channel-name", "hx2_events"},
    {"--help", ""},
    {"--pg-dsn", "x"},
    {"--pg-host", "x"},
    {"--pg-port", "1"},
    {"--pg-user", "x"},
    {"--pg-database", "x"},
    {"--pg-password", "x"},
};
#define N_FLAGS (sizeof flags / sizeof flags[0])

static void test_help(void **state)
{
    (void)state;
    char *out = NULL, *err = NULL;
    assert_int_equal(pgtest_cli_run(&out, &err, "harness --help"), 0);
    assert_non_null(strstr(out, "Usage: pgcachewatch harness"));
    /* Every "--flag" the help names is one the parser takes... */
    for (const char *p = out; (p = strstr(p, "--")) != NULL;) {
        size_t n = 2;
        while ((p[n] >= 'a' && p[n] <= 'z') || (p[n] >= '0' && p[n] <= '9') ||
               p[n] == '-')
            n++;
        bool known = false;
        for (size_t i = 0; i < N_FLAGS; i++)
            known |= strlen(flags[i].flag) == n && strncmp(flags[i].flag, p, n) == 0;
        if (!known)
            fail_msg("the help names %.*s, which the test does not know", (int)n, p);
        p += n;
    }
    /* ... and every flag is in the help, and accepted with its value. */
    for (size_t i = 0; i < N_FLAGS; i++) {
        char needle[64];
        snprintf(needle, sizeof needle, "%s ", flags[i].flag);
        if (!strstr(out, needle))
            fail_msg("the help does not describe %s", flags[i].flag);
        char *o2 = NULL, *e2 = NULL;
        int rc = pgtest_cli_run(&o2, &e2, "harness %s %s --help", flags[i].flag,
                                flags[i].value);
        if (rc != 0 || !strstr(o2, "Usage:"))
            fail_msg("'harness %s %s --help' exited %d: %s", flags[i].flag,
                     flags[i].value, rc, e2);
        free(o2);
        free(e2);
    }
    /* The test-only flag is not advertised. */
    assert_null(strstr(out, "inject"));
    free(out);
    free(err);
    /* `help harness` is the same text. */
    char *again = NULL;
    assert_int_equal(pgtest_cli_run(&again, NULL, "help harness"), 0);
    assert_non_null(strstr(again, "--chaos-interval MS"));
    free(again);
    char *top = NULL;
    assert_int_equal(pgtest_cli_run(&top, NULL, "--help"), 0);
    assert_non_null(strstr(top, "harness"));
    free(top);
}

static void test_usage_errors(void **state)
{
    (void)state;
    pgtest_cli_expect_usage_error("harness " NO_SERVER " --writers 0 --readers 0",
                                  "no clients");
    pgtest_cli_expect_usage_error("harness " NO_SERVER " --duration 2 --ops 5",
                                  "exclude each other");
    pgtest_cli_expect_usage_error("harness " NO_SERVER " --notify-mode later",
                                  "--notify-mode");
    pgtest_cli_expect_usage_error("harness " NO_SERVER " --read-ratio 1.5",
                                  "--read-ratio");
    pgtest_cli_expect_usage_error("harness " NO_SERVER " --value-size 8", "--value-size");
    pgtest_cli_expect_usage_error("harness " NO_SERVER " --keys 0", "--keys");
    pgtest_cli_expect_usage_error("harness " NO_SERVER " --duration 0", "--duration");
    pgtest_cli_expect_usage_error("harness " NO_SERVER " extra", "unexpected argument");
    pgtest_cli_expect_usage_error("harness " NO_SERVER " --no-such-flag", NULL);
    /* A server that is not there: a runtime error with libpq's reason. */
    char *out = NULL, *err = NULL;
    assert_int_equal(pgtest_cli_run(&out, &err, "harness " NO_SERVER " --ops 1"), 1);
    assert_non_null(strstr(err, "/nonexistent/pgcw"));
    free(out);
    free(err);
}

/* --- runs ----------------------------------------------------------------------------
 */

/* With --ops, a process whose clients are done early stays until the run ends: a
 * child that ended during the run used to count as failed, and the harness exited
 * 1 without a word (seen under load). Here it is certain: client 0, the only writer,
 * is process 0's; client 1, a reader hitting its L1, is process 1's and ends far
 * sooner. */
static void test_ops_uneven_processes(void **state)
{
    (void)state;
    json_object *o =
        run_report(0, true, true, NULL, NULL,
                   "--writers 1 --readers 1 --processes 2 --keys 4 --ops 2000"
                   " --schema-prefix hx3_ --channel-name hx3_events --json");
    assert_int_equal(get_int(o, "ops"), 2 * 2000);
    assert_int_equal(get_int(o, "violations"), 0);
    json_object_put(o);
}

/* The flags change what they say: every value is echoed in the report, the table
 * holds only keys k0..k9 with 40-byte values and 5 s TTLs, and --ops stops each
 * client after exactly that many operations. */
static void test_flags_take_effect(void **state)
{
    (void)state;
    json_object *o = run_report(
        0, true, true, NULL, NULL,
        "--writers 2 --readers 3 --processes 2 --keys 10 --value-size 40 --ttl 5"
        " --read-ratio 0.5 --get-or-set-ratio 0.3 --delete-ratio 0.1 --zipf 1.1 --ops 50"
        " --inval-bound 1500 --notify-bound 20 --notify-mode after-commit --pool-size 2"
        " --client-nice 5 --seed 7 --schema-prefix hx2_ --channel-name hx2_events "
        "--json");
    static const expect_cfg want[] = {
        {"config.writers", 2, NULL},
        {"config.readers", 3, NULL},
        {"config.processes", 2, NULL},
        {"config.keys", 10, NULL},
        {"config.value_size", 40, NULL},
        {"config.ttl_ms", 5000, NULL},
        {"config.read_ratio", 0.5, NULL},
        {"config.get_or_set_ratio", 0.3, NULL},
        {"config.delete_ratio", 0.1, NULL},
        {"config.zipf", 1.1, NULL},
        {"config.ops_per_client", 50, NULL},
        {"config.bound_ms", 1500, NULL},
        {"config.notify_bound_ms", 20, NULL},
        {"config.notify_mode", 0, "after-commit"},
        {"config.seed", 7, NULL},
        {"config.pool_size", 2, NULL},
        {"config.client_nice", 5, NULL},
        {"config.schema_prefix", 0, "hx2_"},
        {"config.server", 0, "given"},
    };
    expect_config(o, want, sizeof want / sizeof want[0]);
    assert_int_equal(get_int(o, "ops"), 5 * 50);
    assert_int_equal(get_int(o, "violations"), 0);
    /* after-commit: this library's writes are announced by the cache itself. */
    assert_true(get_int(o, "latency_us.set.count") > 0);
    check_report_sums(o);
    json_object_put(o);
    PGconn *pg = pgtest_connect();
    assert_true(pgtest_query_int(pg, "SELECT count(*) FROM hx2_cache_entries") > 0);
    assert_int_equal(pgtest_query_int(pg, "SELECT count(*) FROM hx2_cache_entries"
                                          " WHERE cache_key !~ '^k[0-9]$'"),
                     0);
    assert_int_equal(pgtest_query_int(pg, "SELECT count(*) FROM hx2_cache_entries"
                                          " WHERE expires_at > '-infinity'"
                                          " AND length(value) <> 40"),
                     0);
    /* TTL: a live row expires 5 s after it was written (to the second). */
    assert_int_equal(pgtest_query_int(pg,
                                      "SELECT count(*) FROM hx2_cache_entries"
                                      " WHERE expires_at > '-infinity' AND abs(extract("
                                      "epoch FROM expires_at - updated_at) - 5) > 1"),
                     0);
    /* The channel: the trigger notifies on hx2_events. */
    assert_true(pgtest_query_int(pg, "SELECT count(*) FROM pg_proc WHERE prosrc LIKE "
                                     "'%hx2_events%'") > 0);
    PQfinish(pg);
}

/* A short run with chaos on the test server: kills happen, clients recover, and
 * no read is stale. Text mode: the report, and no progress line (not a terminal). */
static void test_chaos_no_violations(void **state)
{
    (void)state;
    json_object *o = run_report(0, true, true, NULL, NULL,
                                "--writers 4 --readers 8 --processes 3 --duration 4"
                                " --chaos --chaos-interval 150 --json");
    assert_int_equal(get_int(o, "violations"), 0);
    assert_true(get_int(o, "reads_checked") > 100);
    assert_true(get_int(o, "latency_us.set.count") > 10);
    int64_t kills = get_int(o, "chaos.watcher_kills") + get_int(o, "chaos.pool_kills");
    assert_true(kills >= 3);
    /* Every kill was recovered from, and measured. */
    assert_int_equal(get_int(o, "chaos.watcher_recovery_ms.count") +
                         get_int(o, "chaos.pool_recovery_ms.count") +
                         get_int(o, "chaos.unrecovered"),
                     kills);
    /* ... each one listed, in the order of the kills, as the histograms count them. */
    json_object *rs = get(o, "chaos.recoveries");
    assert_int_equal((int64_t)json_object_array_length(rs),
                     get_int(o, "chaos.watcher_recovery_ms.count") +
                         get_int(o, "chaos.pool_recovery_ms.count"));
    double prev = -1;
    for (size_t i = 0; i < json_object_array_length(rs); i++) {
        json_object *r = json_object_array_get_idx(rs, i);
        double at = get_double(r, "killed_at_ms"), ms = get_double(r, "ms");
        assert_true(at >= prev && at >= 0 && ms > 0);
        prev = at;
        bool watcher = strcmp(json_object_get_string(get(r, "kind")), "watcher") == 0;
        assert_true(ms <= get_double(o, watcher ? "chaos.watcher_recovery_ms.max"
                                                : "chaos.pool_recovery_ms.max"));
    }
    assert_true(get_int(o, "invalidation_delay_us.count") > 0);
    assert_true(get_int(o, "cache.flushes") >= get_int(o, "chaos.watcher_kills"));
    check_report_sums(o);
    json_object_put(o);
    /* Text: no progress line when stdout is not a terminal. */
    char *out = NULL;
    run_report(0, true, false, &out, NULL,
               "--writers 2 --readers 2 --processes 2 --duration 1");
    assert_null(strchr(out, '\r'));
    assert_non_null(strstr(out, "0 violations"));
    assert_non_null(strstr(out, "get_or_set"));
    free(out);
    /* On a terminal (script(1) gives it one), the progress line is redrawn in
     * place; with --json never, even there. */
    char cmd[2048];
    for (int json = 0; json < 2; json++) {
        snprintf(cmd, sizeof cmd,
                 RUN_LIMIT "script -qec \"'%s' harness --pg-dsn '%s' --writers 1"
                           " --readers 1 --processes 1 --duration 1.5%s\" /dev/null",
                 pgtest_cli(), pgtest_dsn(), json ? " --json" : "");
        char *tty = NULL;
        assert_int_equal(pgtest_run(cmd, &tty, NULL), 0);
        if (json ? strstr(tty, "\r\033[K") != NULL : strstr(tty, "\r\033[K") == NULL)
            fail_msg("progress line %s on a terminal%s:\n%s", json ? "drawn" : "missing",
                     json ? " with --json" : "", tty);
        free(tty);
    }
}

/* With notifications off, reads are bounded by the L1 TTL: no violation either. */
static void test_disable_notify(void **state)
{
    (void)state;
    json_object *o = run_report(0, true, true, NULL, NULL,
                                "--writers 3 --readers 4 --processes 2 --duration 3"
                                " --disable-notify --l1-ttl 100 --json");
    assert_int_equal(get_int(o, "violations"), 0);
    assert_true(get_int(o, "reads_checked") > 100);
    /* No watcher: nothing was notified, nothing measured as a delay. */
    assert_int_equal(get_int(o, "invalidation_delay_us.count"), 0);
    assert_int_equal(get_int(o, "cache.invalidations_received"), 0);
    json_object_put(o);
}

/* A stale read served on purpose (test builds only: reader 0, the client after the
 * writers, serves an old copy of a key once a newer version was committed more
 * than the bound ago, and says which on stderr) is caught: exit 3, the violation
 * counted, that very read flagged with its key, versions and times. */
static void test_injected_stale_read_caught(void **state)
{
    (void)state;
    char *err = NULL;
    json_object *o =
        run_report(3, true, true, NULL, &err,
                   "--writers 4 --readers 2 --processes 2 --keys 4"
                   " --duration 4 --inval-bound 1000 --inject-stale 20 --json");
    assert_true(get_int(o, "violations") >= 1);
    const char *said = strstr(err, "test build: client ");
    int client = -1, key = -1;
    long long version = -1, committed = -1;
    if (!said || sscanf(said,
                        "test build: client %d serves key k%d at version %lld on "
                        "purpose (version %lld",
                        &client, &key, &version, &committed) != 4)
        fail_msg("no injected read announced:\n%s", err);
    assert_int_equal(client, 4);
    assert_true(version < committed);
    /* That read is the one flagged, on stderr and in the report. */
    char needle[128];
    snprintf(needle, sizeof needle,
             "VIOLATION (backwards): client 4 read key k%d: version %lld", key, version);
    char needle2[128];
    snprintf(needle2, sizeof needle2,
             "VIOLATION (committed): client 4 read key k%d: version %lld", key, version);
    if (!strstr(err, needle) && !strstr(err, needle2))
        fail_msg("the injected read of k%d version %lld was not flagged:\n%s", key,
                 version, err);
    json_object *samples = get(o, "violation_samples");
    bool found = false;
    char k[16];
    snprintf(k, sizeof k, "k%d", key);
    for (size_t i = 0; i < json_object_array_length(samples); i++) {
        json_object *v = json_object_array_get_idx(samples, i);
        if (get_int(v, "client") == 4 && get_int(v, "version_read") == version &&
            strcmp(json_object_get_string(get(v, "key")), k) == 0) {
            assert_true(get_int(v, "version_expected") > version);
            found = true;
        }
    }
    if (!found)
        fail_msg("the report's samples miss the injected read: %s",
                 json_object_to_json_string(samples));
    json_object_put(o);
    free(err);
}

/* Exactly the documented command, on the throwaway server it starts itself. */
static void test_default_command(void **state)
{
    (void)state;
    json_object *o =
        run_report(0, false, true, NULL, NULL, "--duration 5 --chaos --json");
    assert_int_equal(get_int(o, "violations"), 0);
    assert_string_equal(json_object_get_string(get(o, "config.server")), "throwaway");
    /* The defaults the help states. */
    static const expect_cfg want[] = {
        {"config.writers", 16, NULL},
        {"config.readers", 32, NULL},
        {"config.keys", 64, NULL},
        {"config.processes", 4, NULL},
        {"config.value_size", 128, NULL},
        {"config.bound_ms", 5000, NULL},
        {"config.notify_bound_ms", 0, NULL},
        {"config.client_nice", 10, NULL},
        {"config.ttl_ms", 30000, NULL},
        {"config.read_ratio", 0.2, NULL},
        {"config.get_or_set_ratio", 0.1, NULL},
        {"config.delete_ratio", 0.05, NULL},
        {"config.zipf", 0.0, NULL},
        {"config.duration_ms", 5000, NULL},
        {"config.l1_ttl_ms", 250, NULL},
        {"config.pool_size", 1, NULL},
        {"config.chaos_interval_ms", 300, NULL},
        {"config.notify_mode", 0, "trigger"},
        {"config.schema_prefix", 0, "harness_"},
    };
    expect_config(o, want, sizeof want / sizeof want[0]);
    assert_true(get_double(o, "seconds") >= 5.0);
    assert_true(get_int(o, "chaos.watcher_kills") + get_int(o, "chaos.pool_kills") > 0);
    check_report_sums(o);
    json_object_put(o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_help),
        cmocka_unit_test(test_usage_errors),
        cmocka_unit_test(test_flags_take_effect),
        cmocka_unit_test(test_ops_uneven_processes),
        cmocka_unit_test(test_chaos_no_violations),
        cmocka_unit_test(test_disable_notify),
        cmocka_unit_test(test_injected_stale_read_caught),
        cmocka_unit_test(test_default_command),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
