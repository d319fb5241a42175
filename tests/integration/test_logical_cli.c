/*
 * test_logical_cli.c - the CLI over logical decoding: `install --source logical
 * items --commit`, then `listen --source logical --json --count 1` shows an
 * insert with its key (made before listen started: the slot kept it), its status
 * lines (ready, every 10 s, at exit) give the slot lag, a second listen starts after what
 * the first confirmed, the dry runs change nothing, and `uninstall --source logical
 * --commit` drops the slot and the publication. Usage errors for the new options.
 */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "pgtest.h"

static PGconn *conn;
static char dsn_arg[1400]; /* --pg-dsn '<private db>' */

static long long objects(void)
{
    return pgtest_query_int(
        conn, "SELECT (SELECT count(*) FROM pg_replication_slots WHERE slot_name = "
              "'pgcachewatch_ch_pgcachewatch_table_change') + (SELECT count(*) FROM "
              "pg_publication WHERE pubname = "
              "'pgcachewatch_ch_pgcachewatch_table_change_pub')");
}

/* One `listen --source logical --json --count 1`: its single event, parsed. */
static json_object *listen_one(char **err_out)
{
    char *out = NULL, *err = NULL;
    int rc = pgtest_cli_run(
        &out, &err, "listen --source logical --json --count 1 --timeout 20 %s", dsn_arg);
    if (rc != 0)
        fail_msg("listen exited %d: %s", rc, err);
    json_object *o = json_tokener_parse(out);
    if (!o || strchr(out, '\n') != strrchr(out, '\n'))
        fail_msg("not one JSON line: [%s]", out);
    free(out);
    *err_out = err;
    return o;
}

static const char *member(json_object *o, const char *name)
{
    json_object *v;
    if (!json_object_object_get_ex(o, name, &v))
        fail_msg("no \"%s\" in %s", name, json_object_to_json_string(o));
    return json_object_get_string(v);
}

static void test_install_listen_uninstall(void **state)
{
    (void)state;
    pgtest_exec(conn, "DROP TABLE IF EXISTS items; CREATE TABLE items (id int primary "
                      "key, name text)");
    /* The dry run prints both steps and changes nothing (no connection needed). */
    char *out = NULL, *err = NULL;
    assert_int_equal(pgtest_cli_run(&out, &err, "install --source logical items"), 0);
    assert_non_null(strstr(out, "CREATE PUBLICATION"));
    assert_non_null(strstr(out, "pg_create_logical_replication_slot"));
    assert_non_null(strstr(err, "--commit"));
    free(out);
    free(err);
    assert_int_equal(objects(), 0);

    assert_int_equal(
        pgtest_cli_run(NULL, &err, "install --source logical items --commit %s", dsn_arg),
        0);
    assert_non_null(strstr(err, "installed logical decoding on 1 table"));
    free(err);
    assert_int_equal(objects(), 2);

    /* Written before anyone reads: the slot keeps it for the first listen. */
    pgtest_exec(conn, "INSERT INTO items VALUES (42, 'widget')");
    json_object *e = listen_one(&err);
    assert_string_equal(member(e, "kind"), "change");
    assert_string_equal(member(e, "operation"), "insert");
    assert_string_equal(member(e, "table"), "items");
    assert_string_equal(member(e, "source"), "logical");
    assert_non_null(strchr(member(e, "lsn"), '/'));
    json_object *keys;
    assert_true(json_object_object_get_ex(e, "keys", &keys));
    assert_string_equal(json_object_to_json_string_ext(keys, JSON_C_TO_STRING_PLAIN),
                        "[[42]]");
    char first_lsn[32];
    snprintf(first_lsn, sizeof first_lsn, "%s", member(e, "lsn"));
    json_object_put(e);
    assert_non_null(strstr(err, "slot lag"));
    assert_non_null(strstr(err, "at exit: confirmed LSN"));
    free(err);

    /* The first listen confirmed its insert: the next one starts after it. */
    pgtest_exec(conn, "INSERT INTO items VALUES (43, 'gadget')");
    e = listen_one(&err);
    /* Its first status line already knows where the slot stands. */
    assert_non_null(strstr(err, "reading the replication slot: confirmed LSN"));
    assert_null(strstr(err, "reading the replication slot: confirmed LSN 0/0,"));
    assert_string_equal(json_object_to_json_string_ext(json_object_object_get(e, "keys"),
                                                       JSON_C_TO_STRING_PLAIN),
                        "[[43]]");
    assert_string_not_equal(member(e, "lsn"), first_lsn);
    json_object_put(e);
    free(err);

    /* A slot and publication of its own look without taking: the insert is
     * still there for the channel's slot afterwards. */
    assert_int_equal(pgtest_cli_run(NULL, NULL,
                                    "install --source logical --slot peek --publication "
                                    "peek_pub items --commit %s",
                                    dsn_arg),
                     0);
    pgtest_exec(conn, "INSERT INTO items VALUES (44, 'peeked')");
    assert_int_equal(pgtest_cli_run(&out, NULL,
                                    "listen --source logical --slot peek --publication "
                                    "peek_pub --json --count 1 --timeout 20 %s",
                                    dsn_arg),
                     0);
    assert_non_null(strstr(out, "\"keys\":[[44]]"));
    free(out);
    e = listen_one(&err);
    assert_string_equal(json_object_to_json_string_ext(json_object_object_get(e, "keys"),
                                                       JSON_C_TO_STRING_PLAIN),
                        "[[44]]");
    json_object_put(e);
    free(err);
    assert_int_equal(
        pgtest_cli_run(NULL, NULL,
                       "uninstall --source logical --slot peek --publication "
                       "peek_pub --commit %s",
                       dsn_arg),
        0);
    assert_int_equal(pgtest_query_int(conn, "SELECT count(*) FROM pg_replication_slots "
                                            "WHERE slot_name = 'peek'"),
                     0);
    assert_int_equal(objects(), 2);

    /* Nothing to read: a status line every 10 seconds all the same. */
    assert_int_equal(
        pgtest_cli_run(NULL, &err, "listen --source logical --timeout 10.5 %s", dsn_arg),
        0);
    assert_non_null(strstr(err, "listen: status: confirmed LSN"));
    free(err);

    /* Uninstall: the dry run names both and drops nothing; --commit drops both. */
    assert_int_equal(pgtest_cli_run(&out, NULL, "uninstall --source logical %s", dsn_arg),
                     0);
    assert_non_null(strstr(out, "pg_drop_replication_slot"));
    assert_non_null(strstr(out, "DROP PUBLICATION"));
    free(out);
    assert_int_equal(objects(), 2);
    assert_int_equal(
        pgtest_cli_run(NULL, NULL, "uninstall --source logical --commit %s", dsn_arg), 0);
    assert_int_equal(objects(), 0);
    /* Nothing left: said, exit 0. */
    assert_int_equal(
        pgtest_cli_run(NULL, &err, "uninstall --source logical --commit %s", dsn_arg), 0);
    assert_non_null(strstr(err, "nothing installed"));
    free(err);

    /* No slot: listen fails at once and says what to run. */
    assert_int_equal(pgtest_cli_run(NULL, &err,
                                    "listen --source logical --count 1 --timeout 20 %s",
                                    dsn_arg),
                     1);
    assert_non_null(strstr(err, "does not exist"));
    assert_non_null(strstr(err, "install --source logical"));
    free(err);
}

static void test_usage_errors(void **state)
{
    (void)state;
    pgtest_cli_expect_usage_error("install --slot s items", "--source logical");
    pgtest_cli_expect_usage_error("install --source logical --slot Bad-Slot items",
                                  "slot name");
    pgtest_cli_expect_usage_error("install --source logical --with-keys items",
                                  "--with-keys");
    pgtest_cli_expect_usage_error("install --source logical", "no table");
    pgtest_cli_expect_usage_error("install --source nosuch items",
                                  "listen, logical or poll");
    pgtest_cli_expect_usage_error("uninstall --publication p", "--source logical");
    pgtest_cli_expect_usage_error("listen --slot s", "--source logical");
    pgtest_cli_expect_usage_error("listen --source logical --format cache-key",
                                  "--format");
    pgtest_cli_expect_usage_error("listen --source logical --slot no-dash", NULL);
    static const char *const has[] = {"--source", "--slot", "--publication", "slot lag",
                                      NULL};
    pgtest_cli_expect_help("listen --help", has, NULL);
    static const char *const ihas[] = {"--source logical", "--slot", "--publication",
                                       "REPLICA IDENTITY", NULL};
    pgtest_cli_expect_help("install --help", ihas, NULL);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_install_listen_uninstall),
        cmocka_unit_test(test_usage_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
