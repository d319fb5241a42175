/*
 * test_ddl.c - `pgcachewatch install --ddl` against a real server: the dry run
 * changes nothing, the commit's event triggers notify ALTER TABLE, CREATE INDEX and
 * CREATE TRIGGER (seen by `listen --json --count 1`) and, through sql_drop, a
 * dropped column, constraint and table, each naming its table; a long identity is
 * cut under the payload limit, a strategy clears on a schema event, a role that is
 * not a superuser is refused with nothing created, and uninstall --ddl leaves
 * pg_event_trigger and pg_proc as they were (while plain uninstall leaves the DDL
 * objects alone), and a cache flushes its L1 on a schema change of its own table.
 *
 * Every process a test starts is waited for or killed; every run is bounded.
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

#include "cachetest.h"
#include "pgproc.h"
#include "pgtest.h"

static PGconn *conn;
static char dsn_arg[1400]; /* --pg-dsn '<private db>' */

/* The catalogs install --ddl writes to: event triggers and functions outside the
 * system schemas. */
static char *ddl_snapshot(void)
{
    return pgtest_query_value(
        conn,
        "SELECT coalesce((SELECT string_agg(evtname || ':' || evtevent || ':' || "
        "evtfoid::regprocedure::text, ',' ORDER BY evtname) FROM pg_event_trigger), "
        "'') || ' | ' || coalesce((SELECT string_agg(p.oid::regprocedure::text, ',' "
        "ORDER BY p.oid::regprocedure::text) FROM pg_proc p JOIN pg_namespace n ON n.oid "
        "= p.pronamespace "
        "WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')), '')");
}

/* Fails unless the catalogs match before (a snapshot, freed here). */
static void expect_unchanged(char *before)
{
    char *after = ddl_snapshot();
    assert_string_equal(before, after);
    free(before);
    free(after);
}

static long long event_triggers(void)
{
    return pgtest_query_int(conn, "SELECT count(*) FROM pg_event_trigger");
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

/* Each test starts with a fresh table and no DDL triggers. */
static int fresh(void **state)
{
    (void)state;
    char *err = NULL;
    int rc = pgtest_cli_run(NULL, &err, "uninstall --ddl --commit %s", dsn_arg);
    if (rc != 0)
        fprintf(stderr, "uninstall --ddl failed (%d): %s\n", rc, err);
    free(err);
    pgtest_exec(conn, "DROP TABLE IF EXISTS items CASCADE;"
                      "CREATE TABLE items (id int PRIMARY KEY, name text)");
    return rc == 0 ? 0 : -1;
}

static void install_ddl(void)
{
    char *out = NULL, *err = NULL;
    int rc = pgtest_cli_run(&out, &err, "install --ddl --commit %s", dsn_arg);
    if (rc != 0)
        fail_msg("install --ddl exited %d: %s", rc, err);
    assert_non_null(strstr(err, "installed the DDL event triggers"));
    free(out);
    free(err);
    assert_int_equal(event_triggers(), 2);
}

/* Runs `listen --json --count 1`, runs sql, returns the one line it printed. */
static json_object *listen_one(const char *sql)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, PGTEST_RUN_LIMIT "\"$PGCW_CLI\" listen --json --count 1 %s",
             dsn_arg);
    pgtest_proc p;
    pgtest_proc_start(&p, "test-ddl", cmd);
    pgtest_proc_wait_listening(&p, conn);
    pgtest_exec(conn, sql);
    char *out, *err;
    int rc = pgtest_proc_finish(&p, 20000, &out, &err);
    if (rc != 0)
        fail_msg("listen exited %d: %s", rc, err);
    json_object *j = json_tokener_parse(out);
    if (!j)
        fail_msg("not one JSON line: %s", out);
    free(out);
    free(err);
    return j;
}

static const char *member(json_object *o, const char *name)
{
    json_object *v = NULL;
    if (!json_object_object_get_ex(o, name, &v) || !v)
        return NULL;
    return json_object_get_string(v);
}

static void test_dry_run_changes_nothing(void **state)
{
    (void)state;
    char *before = ddl_snapshot();
    char *out = NULL, *err = NULL;
    int rc = pgtest_cli_run(&out, &err, "install --ddl %s", dsn_arg);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "CREATE EVENT TRIGGER"));
    assert_non_null(strstr(out, "ON ddl_command_end"));
    assert_non_null(strstr(out, "ON sql_drop"));
    assert_non_null(strstr(out, "SET search_path = pg_catalog, pg_temp"));
    assert_non_null(strstr(err, "--commit"));
    free(out);
    free(err);
    expect_unchanged(before);
    pgtest_cli_expect_usage_error("install --ddl items", "--ddl");
    pgtest_cli_expect_usage_error("install --ddl --with-keys", "--ddl");
}

/* Runs sql under `listen --json --count 1` and checks the one schema event it
 * printed, about public.items. */
static void expect_ddl(const char *sql, const char *tag, const char *type,
                       const char *identity)
{
    json_object *j = listen_one(sql);
    assert_string_equal(member(j, "kind"), "schema");
    assert_string_equal(member(j, "command_tag"), tag);
    assert_string_equal(member(j, "object_type"), type);
    assert_string_equal(member(j, "object_identity"), identity);
    assert_string_equal(member(j, "schema"), "public");
    assert_string_equal(member(j, "table"), "items");
    assert_non_null(strstr(json_object_to_json_string(j), tag));
    json_object_put(j);
}

static void test_alter_table_event(void **state)
{
    (void)state;
    install_ddl();
    expect_ddl("ALTER TABLE items ADD COLUMN x int", "ALTER TABLE", "table",
               "public.items");
    /* An index and a trigger name their table. */
    expect_ddl("CREATE INDEX items_name_idx ON items (name)", "CREATE INDEX", "index",
               "public.items_name_idx");
    assert_int_equal(pgtest_cli_run(NULL, NULL, "install --commit %s items", dsn_arg), 0);
    expect_ddl("CREATE TRIGGER t2 AFTER INSERT ON items EXECUTE FUNCTION "
               "fn_pgcachewatch_table_change_ch_pgcachewatch_table_change()",
               "CREATE TRIGGER", "trigger", "t2 on public.items");
    assert_int_equal(pgtest_cli_run(NULL, NULL, "uninstall --commit %s", dsn_arg), 0);
}

/* Through sql_drop, which fires before ddl_command_end: the first event. */
static void test_drop_events(void **state)
{
    (void)state;
    install_ddl();
    expect_ddl("ALTER TABLE items DROP COLUMN name", "ALTER TABLE", "table column",
               "public.items.name");
    expect_ddl("ALTER TABLE items DROP CONSTRAINT items_pkey", "ALTER TABLE",
               "table constraint", "items_pkey on public.items");
    /* A dropped index's table is gone from the catalogs by then: none named. */
    pgtest_exec(conn, "CREATE INDEX items_id_idx ON items (id)");
    json_object *j = listen_one("DROP INDEX items_id_idx");
    assert_string_equal(member(j, "object_type"), "index");
    assert_null(member(j, "table"));
    json_object_put(j);
    expect_ddl("DROP TABLE items", "DROP TABLE", "table", "public.items");
}

/* The raw payloads, as any LISTENer (Python's included) receives them. */
static void test_payloads_and_limit(void **state)
{
    (void)state;
    install_ddl();
    PGconn *l = pgtest_connect();
    pgtest_exec(l, "LISTEN " PGCW_DEFAULT_CHANNEL);
    /* A function whose identity (its argument types) is far over the limit: a
     * domain named with 60 double quotes is 122 characters quoted, twice that as
     * JSON, and the function takes 60 of them. */
    char name[61];
    memset(name, '"', 60);
    name[60] = '\0';
    char quoted[128];
    snprintf(quoted, sizeof quoted, "\"%s%s\"", name, name); /* inner quotes doubled */
    char *sql = malloc(64 * 1024);
    assert_non_null(sql);
    size_t n =
        (size_t)sprintf(sql, "CREATE DOMAIN %s AS int; CREATE FUNCTION f_long(", quoted);
    for (int i = 0; i < 60; i++)
        n += (size_t)sprintf(sql + n, "%s%s", i ? ", " : "", quoted);
    sprintf(sql + n, ") RETURNS int LANGUAGE sql AS 'SELECT 1'");
    pgtest_exec(conn, sql);
    free(sql);
    int64_t deadline = pgtest_now_ms() + 20000;
    int seen = 0;
    bool cut = false;
    while (seen < 2 && pgtest_now_ms() < deadline) {
        PQconsumeInput(l);
        PGnotify *nf;
        while ((nf = PQnotifies(l))) {
            size_t len = strlen(nf->extra);
            assert_true(len < PGCW_MAX_PAYLOAD);
            const pgcw_event *e = NULL;
            assert_int_equal(
                pgcw_event_parse(PGCW_FORMAT_AUTO, nf->relname, nf->extra, len, 0, &e),
                PGCW_OK);
            assert_int_equal(e->kind, PGCW_EVENT_SCHEMA);
            json_object *j = json_tokener_parse(nf->extra);
            assert_string_equal(member(j, "operation"), "ddl");
            assert_string_equal(member(j, "event"), "ddl_command_end");
            assert_non_null(member(j, "sent_at"));
            if (strcmp(e->object_type, "function") == 0) {
                cut = member(j, "identity_truncated") != NULL;
                assert_non_null(strstr(e->object_identity, "f_long("));
            }
            json_object_put(j);
            pgcw_event_free(e);
            PQfreemem(nf);
            seen++;
        }
        usleep(20000);
    }
    assert_int_equal(seen, 2); /* the domain, the function */
    assert_true(cut);
    PQfinish(l);
    char drop[160];
    snprintf(drop, sizeof drop, "DROP DOMAIN %s CASCADE", quoted);
    pgtest_exec(conn, drop);
}

static void test_strategy_clears(void **state)
{
    (void)state;
    install_ddl();
    pgcw_conn_opts co = {.conninfo = pgtest_dsn()};
    pgcw_watcher *w = NULL;
    assert_int_equal(pgcw_watcher_new(NULL, &co, &w), PGCW_OK);
    pgcw_strategy_opts so = {0};
    pgcw_strategy *s = NULL;
    assert_int_equal(pgcw_strategy_new(w, &so, &s), PGCW_OK);
    assert_int_equal(pgcw_watcher_start(w), PGCW_OK);
    assert_int_equal(pgcw_watcher_wait_healthy(w, 20000), PGCW_OK);
    assert_false(pgcw_strategy_clear(s));
    pgtest_exec(conn, "ALTER TABLE items ADD COLUMN y int");
    int64_t deadline = pgtest_now_ms() + 20000;
    bool cleared = false;
    while (!cleared && pgtest_now_ms() < deadline) {
        cleared = pgcw_strategy_clear(s);
        if (!cleared)
            usleep(10000);
    }
    assert_true(cleared);
    pgcw_strategy_free(s);
    pgcw_watcher_stop(w);
    pgcw_watcher_free(w);
}

static void test_not_superuser_refused(void **state)
{
    (void)state;
    char role[64], sql[512];
    snprintf(role, sizeof role, "pgcw_plain_%ld", (long)getpid());
    snprintf(sql, sizeof sql,
             "DROP ROLE IF EXISTS %s; CREATE ROLE %s LOGIN; "
             "GRANT CREATE ON SCHEMA public TO %s",
             role, role, role);
    pgtest_exec(conn, sql);
    char *before = ddl_snapshot();
    char *out = NULL, *err = NULL;
    int rc = pgtest_cli_run(&out, &err, "install --ddl --commit --pg-dsn '%s user=%s'",
                            pgtest_dsn(), role);
    assert_int_equal(rc, 1);
    if (!strstr(err, "needs a superuser") || !strstr(err, "42501"))
        fail_msg("unclear refusal: %s", err);
    free(out);
    free(err);
    expect_unchanged(before);
    snprintf(sql, sizeof sql, "DROP OWNED BY %s; DROP ROLE %s", role, role);
    pgtest_exec(conn, sql);
}

static void test_uninstall_restores_catalog(void **state)
{
    (void)state;
    char *before = ddl_snapshot();
    assert_int_equal(pgtest_cli_run(NULL, NULL, "install --commit %s items", dsn_arg), 0);
    char *tables_only = ddl_snapshot();
    install_ddl();

    /* Plain uninstall leaves the DDL objects. */
    assert_int_equal(pgtest_cli_run(NULL, NULL, "uninstall --commit %s", dsn_arg), 0);
    assert_int_equal(event_triggers(), 2);
    assert_int_equal(pgtest_cli_run(NULL, NULL, "install --commit %s items", dsn_arg), 0);

    char *out = NULL, *err = NULL;
    assert_int_equal(pgtest_cli_run(&out, &err, "uninstall --ddl %s", dsn_arg), 0);
    assert_non_null(strstr(out, "DROP EVENT TRIGGER"));
    assert_int_equal(event_triggers(), 2); /* a dry run */
    free(out);
    free(err);
    assert_int_equal(pgtest_cli_run(NULL, NULL, "uninstall --ddl --commit %s", dsn_arg),
                     0);
    char *after = ddl_snapshot();
    assert_string_equal(after, tables_only); /* the table triggers' function stays */
    free(after);
    assert_int_equal(pgtest_cli_run(NULL, NULL, "uninstall --commit %s", dsn_arg), 0);
    after = ddl_snapshot();
    assert_string_equal(after, before);
    free(after);
    free(before);
    free(tables_only);
}

/* The cache flushes its L1 on a schema change of its own table, and only then:
 * DDL events are delivered in commit order, so when the own table's flush is
 * seen, the earlier ALTER of another table was handled without one. */
static void test_cache_flushes_on_own_table(void **state)
{
    (void)state;
    cachetest_init("ddl_");
    pgcw_cache *c = cachetest_new("ddl_", NULL);
    char *out = NULL, *err = NULL;
    int rc = pgtest_cli_run(
        &out, &err, "install --ddl --commit --channel-name cache_events %s", dsn_arg);
    if (rc != 0)
        fail_msg("install --ddl exited %d: %s", rc, err);
    free(out);
    free(err);
    cachetest_set(c, "k", "v", 60000);
    free(cachetest_get(c, "k"));
    assert_true(cachetest_stats(c).l1_entries > 0);
    uint64_t flushes = cachetest_stats(c).flushes;

    pgtest_exec(conn, "ALTER TABLE items SET (fillfactor = 90)");
    pgtest_exec(conn, "ALTER TABLE ddl_cache_entries SET (fillfactor = 90)");
    int64_t until = pgtest_now_ms() + CACHETEST_WAIT_MS;
    while (cachetest_stats(c).flushes == flushes && pgtest_now_ms() < until)
        usleep(2000);
    assert_int_equal(cachetest_stats(c).flushes, flushes + 1);
    assert_int_equal(cachetest_stats(c).l1_entries, 0);
    pgcw_cache_free(c);
    assert_int_equal(
        pgtest_cli_run(NULL, NULL,
                       "uninstall --ddl --commit --channel-name cache_events %s",
                       dsn_arg),
        0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_dry_run_changes_nothing, fresh),
        cmocka_unit_test_setup(test_alter_table_event, fresh),
        cmocka_unit_test_setup(test_drop_events, fresh),
        cmocka_unit_test_setup(test_payloads_and_limit, fresh),
        cmocka_unit_test_setup(test_strategy_clears, fresh),
        cmocka_unit_test_setup(test_not_superuser_refused, fresh),
        cmocka_unit_test_setup(test_uninstall_restores_catalog, fresh),
        cmocka_unit_test_setup(test_cache_flushes_on_own_table, fresh),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
