/*
 * test_event_ddl.c - the schema-change payload of `install --ddl` triggers
 * ("operation":"ddl"): decoded into PGCW_EVENT_SCHEMA with and without a table,
 * every malformed shape refused with a reason, the fast path declining it, clones,
 * and its JSON and text forms.
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

#include <pgcachewatch/pgcachewatch.h>

#include "pgcw_testhook.h"

#define RECV_US INT64_C(1714566896123456)

static const char alter[] =
    "{\"operation\":\"ddl\",\"event\":\"ddl_command_end\",\"command_tag\":\"ALTER "
    "TABLE\",\"object_type\":\"table\",\"object_identity\":\"public.items\","
    "\"schema\":\"public\",\"table\":\"items\","
    "\"sent_at\":\"2024-05-01T12:34:56.123456+00:00\"}";

static pgcw_event *decode_ok(pgcw_payload_format f, const char *payload)
{
    char why[256] = "untouched";
    pgcw_event *e = NULL;
    pgcw_status st = pgcw__event_decode(f, "ch", payload, strlen(payload), RECV_US, &e,
                                        why, sizeof why);
    if (st != PGCW_OK)
        fail_msg("[%s]: %s (%s)", payload, pgcw_status_name(st), why);
    assert_int_equal(e->kind, PGCW_EVENT_SCHEMA);
    assert_int_equal(e->operation, PGCW_OP_NONE);
    return e;
}

static void test_alter_table(void **state)
{
    (void)state;
    pgcw_event *fast = NULL;
    assert_false(pgcw__event_parse_fast("ch", alter, strlen(alter), RECV_US, &fast));
    assert_null(fast);
    for (int f = PGCW_FORMAT_AUTO; f <= PGCW_FORMAT_TABLE_CHANGE; f++) {
        pgcw_event *e = decode_ok((pgcw_payload_format)f, alter);
        assert_string_equal(e->command_tag, "ALTER TABLE");
        assert_string_equal(e->object_type, "table");
        assert_string_equal(e->object_identity, "public.items");
        assert_string_equal(e->schema, "public");
        assert_string_equal(e->table, "items");
        assert_string_equal(e->channel, "ch");
        assert_int_equal(e->sent_at_us, INT64_C(1714566896123456));
        assert_int_equal(e->latency_us, 0);
        assert_string_equal(e->payload, alter);
        pgcw_event_free(e);
    }
}

static void test_without_table_and_case(void **state)
{
    (void)state;
    const char *p = "{\"operation\":\"DDL\",\"command_tag\":\"CREATE SCHEMA\","
                    "\"object_type\":\"schema\",\"object_identity\":\"\","
                    "\"sent_at\":\"2024-05-01 12:00:00+00\"}";
    pgcw_event *e = decode_ok(PGCW_FORMAT_TABLE_CHANGE, p);
    assert_null(e->table);
    assert_null(e->schema);
    assert_string_equal(e->object_identity, "");

    const pgcw_event *c = NULL;
    assert_int_equal(pgcw_event_clone(e, &c), PGCW_OK);
    assert_ptr_not_equal(c, e);
    assert_string_equal(c->command_tag, "CREATE SCHEMA");
    assert_string_equal(c->object_type, "schema");
    assert_string_equal(c->object_identity, "");
    assert_null(c->table);
    pgcw_event_free(c);

    char *text = pgcw_event_to_text(e);
    assert_non_null(text);
    assert_non_null(strstr(text, "schema CREATE SCHEMA schema "));
    assert_null(strstr(text, " on "));
    pgcw_free(text);
    pgcw_event_free(e);
}

static void expect_refused(const char *payload, const char *why_part)
{
    char why[256] = "";
    pgcw_event *e = (pgcw_event *)1;
    pgcw_status st = pgcw__event_decode(PGCW_FORMAT_TABLE_CHANGE, "c", payload,
                                        strlen(payload), RECV_US, &e, why, sizeof why);
    if (st != PGCW_EPARSE)
        fail_msg("[%s] gave %s", payload, pgcw_status_name(st));
    assert_null(e);
    if (!strstr(why, why_part))
        fail_msg("[%s]: reason [%s] does not say [%s]", payload, why, why_part);
}

static void test_malformed(void **state)
{
    (void)state;
    const char *ts = "\"sent_at\":\"2024-05-01T00:00:00Z\"";
    char p[512];
    snprintf(p, sizeof p,
             "{\"operation\":\"ddl\",\"object_type\":\"table\","
             "\"object_identity\":\"x\",%s}",
             ts);
    expect_refused(p, "\"command_tag\" is missing");
    snprintf(p, sizeof p,
             "{\"operation\":\"ddl\",\"command_tag\":\"DROP TABLE\","
             "\"object_identity\":\"x\",%s}",
             ts);
    expect_refused(p, "\"object_type\" is missing");
    snprintf(p, sizeof p,
             "{\"operation\":\"ddl\",\"command_tag\":\"DROP TABLE\","
             "\"object_type\":\"table\",%s}",
             ts);
    expect_refused(p, "\"object_identity\" is missing");
    snprintf(p, sizeof p,
             "{\"operation\":\"ddl\",\"command_tag\":1,\"object_type\":\"table\","
             "\"object_identity\":\"x\",%s}",
             ts);
    expect_refused(p, "\"command_tag\" must be a string");
    snprintf(p, sizeof p,
             "{\"operation\":\"ddl\",\"command_tag\":\"\",\"object_type\":\"table\","
             "\"object_identity\":\"x\",%s}",
             ts);
    expect_refused(p, "\"command_tag\" is empty");
    snprintf(p, sizeof p,
             "{\"operation\":\"ddl\",\"command_tag\":\"A\",\"object_type\":\"table\","
             "\"object_identity\":\"x\",\"table\":[],%s}",
             ts);
    expect_refused(p, "\"table\" must be a string");
    expect_refused("{\"operation\":\"ddl\",\"command_tag\":\"A\",\"object_type\":\"t\","
                   "\"object_identity\":\"x\"}",
                   "\"sent_at\" is missing");
    expect_refused("{\"operation\":\"ddl\",\"command_tag\":\"A\",\"object_type\":\"t\","
                   "\"object_identity\":\"x\",\"sent_at\":\"soon\"}",
                   "not a timestamp");
    expect_refused(
        "{\"operation\":\"ddl\",\"command_tag\":\"A\\u0000B\","
        "\"object_type\":\"t\",\"object_identity\":\"x\",\"sent_at\":\"soon\"}",
        "NUL");
    /* Only "ddl" is the schema operation; "ddlx" stays an unknown operation. */
    expect_refused("{\"operation\":\"ddlx\",\"table\":\"t\",\"sent_at\":\"2024-05-01\"}",
                   "unknown operation");
}

static void test_json_form(void **state)
{
    (void)state;
    pgcw_event *e = decode_ok(PGCW_FORMAT_AUTO, alter);
    char *json = pgcw_event_to_json(e);
    assert_non_null(json);
    json_object *o = json_tokener_parse(json);
    assert_non_null(o);
    json_object *v;
    assert_true(json_object_object_get_ex(o, "kind", &v));
    assert_string_equal(json_object_get_string(v), "schema");
    assert_true(json_object_object_get_ex(o, "command_tag", &v));
    assert_string_equal(json_object_get_string(v), "ALTER TABLE");
    assert_true(json_object_object_get_ex(o, "object_type", &v));
    assert_string_equal(json_object_get_string(v), "table");
    assert_true(json_object_object_get_ex(o, "object_identity", &v));
    assert_string_equal(json_object_get_string(v), "public.items");
    assert_true(json_object_object_get_ex(o, "table", &v));
    assert_string_equal(json_object_get_string(v), "items");
    json_object_put(o);
    pgcw_free(json);

    char *text = pgcw_event_to_text(e);
    assert_non_null(text);
    assert_non_null(strstr(text, "schema ALTER TABLE table public.items on public.items "
                                 "sent_at=2024-05-01T12:34:56.123456Z"));
    pgcw_free(text);
    assert_string_equal(pgcw_event_kind_name(PGCW_EVENT_SCHEMA), "schema");
    pgcw_event_free(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alter_table),
        cmocka_unit_test(test_without_table_and_case),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_json_form),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
