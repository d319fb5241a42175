/*
 * test_event_key.c - the postgres-cache key notification decoder and the choice of
 * decoder per format: both key forms (0x1F with doubling, '|' with hex), versions at
 * int64's edges, every malformed shape refused with a reason, AUTO telling JSON
 * from key payloads, key events made by hand, and their JSON and text forms.
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

static pgcw_event *decode_ok(pgcw_payload_format f, const char *payload, size_t len)
{
    char why[256] = "untouched";
    pgcw_event *e = (pgcw_event *)1;
    pgcw_status st =
        pgcw__event_decode(f, "cache_events", payload, len, RECV_US, &e, why, sizeof why);
    if (st != PGCW_OK)
        fail_msg("[%.*s]: %s (%s)", (int)len, payload, pgcw_status_name(st), why);
    assert_string_equal(why, "");
    return e;
}

static void expect_key(const pgcw_event *e, pgcw_op op, const char *key, size_t key_len,
                       int64_t version)
{
    assert_int_equal(e->kind, PGCW_EVENT_KEY);
    assert_int_equal(e->operation, op);
    assert_int_equal(e->key_len, key_len);
    assert_memory_equal(e->key, key, key_len);
    assert_int_equal(e->key[key_len], '\0');
    assert_int_equal(e->version, version);
    assert_string_equal(e->channel, "cache_events");
    assert_null(e->table);
    assert_null(e->schema);
    assert_int_equal(e->n_keys, 0);
    assert_int_equal(e->received_at_us, RECV_US);
    assert_int_equal(e->sent_at_us, RECV_US);
    assert_int_equal(e->latency_us, 0);
    assert_int_equal(e->source, PGCW_SOURCE_LOCAL);
}

static void test_plain_form(void **state)
{
    (void)state;
    static const struct {
        const char *payload;
        size_t len;
        pgcw_op op;
        const char *key;
        size_t key_len;
        int64_t version;
    } ok[] = {
        {"u42\x1f"
         "profile:7",
         13, PGCW_OP_UPDATE, "profile:7", 9, 42},
        {"d7\x1f"
         "a\x1f\x1f"
         "b",
         7, PGCW_OP_DELETE,
         "a\x1f"
         "b",
         3, 7},
        {"u1\x1f", 3, PGCW_OP_UPDATE, "", 0, 1},             /* empty key */
        {"u0\x1f\x1f\x1f", 5, PGCW_OP_UPDATE, "\x1f", 1, 0}, /* only 0x1F */
        {"u5\x1f"
         "caf\xc3\xa9 \xe9\x8d\xb5",
         12, PGCW_OP_UPDATE, "caf\xc3\xa9 \xe9\x8d\xb5", 9, 5},
        {"u9223372036854775807\x1fk", 22, PGCW_OP_UPDATE, "k", 1, INT64_MAX},
        {"d-9223372036854775808\x1fk", 23, PGCW_OP_DELETE, "k", 1, INT64_MIN},
        {"u3\x1f"
         "|pipe|",
         9, PGCW_OP_UPDATE, "|pipe|", 6, 3},
        {"u3\x1f\xff\xfe", 5, PGCW_OP_UPDATE, "\xff\xfe", 2, 3}, /* bytes, as sent */
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        for (int f = 0; f < 2; f++) {
            pgcw_event *e = decode_ok(f ? PGCW_FORMAT_AUTO : PGCW_FORMAT_CACHE_KEY,
                                      ok[i].payload, ok[i].len);
            expect_key(e, ok[i].op, ok[i].key, ok[i].key_len, ok[i].version);
            assert_memory_equal(e->payload, ok[i].payload, ok[i].len);
            pgcw_event_free(e);
        }
    }
}

static void test_hex_form(void **state)
{
    (void)state;
    pgcw_event *e = decode_ok(PGCW_FORMAT_CACHE_KEY, "u42|70726f66696c653a37", 22);
    expect_key(e, PGCW_OP_UPDATE, "profile:7", 9, 42);
    pgcw_event_free(e);
    e = decode_ok(PGCW_FORMAT_AUTO, "d1|611F62C3A9", 13); /* upper case too */
    expect_key(e, PGCW_OP_DELETE,
               "a\x1f"
               "b\xc3\xa9",
               5, 1);
    pgcw_event_free(e);
    e = decode_ok(PGCW_FORMAT_CACHE_KEY, "u8|", 3);
    expect_key(e, PGCW_OP_UPDATE, "", 0, 8);
    pgcw_event_free(e);
}

static void expect_refused(pgcw_payload_format f, const char *payload, size_t len,
                           const char *why_part)
{
    char why[256] = "";
    pgcw_event *e = (pgcw_event *)1;
    pgcw_status st =
        pgcw__event_decode(f, "c", payload, len, RECV_US, &e, why, sizeof why);
    if (st != PGCW_EPARSE)
        fail_msg("[%.*s] gave %s", (int)len, payload, pgcw_status_name(st));
    assert_null(e);
    if (!strstr(why, why_part))
        fail_msg("[%.*s]: reason [%s] does not say [%s]", (int)len, payload, why,
                 why_part);
    assert_null(strchr(why, '\n'));
    const pgcw_event *pub = (const pgcw_event *)1;
    assert_int_equal(pgcw_event_parse(f, "c", payload, len, RECV_US, &pub), PGCW_EPARSE);
    assert_null(pub);
}

static void test_malformed(void **state)
{
    (void)state;
    const pgcw_payload_format K = PGCW_FORMAT_CACHE_KEY;
    expect_refused(K, "x42\x1fk", 5, "must start with 'u' or 'd'");
    expect_refused(K, "u\x1fk", 3, "without a valid version");
    expect_refused(K, "u-\x1fk", 4, "without a valid version");
    expect_refused(K, "u9223372036854775808\x1fk", 22, "within int64");
    expect_refused(K, "d-9223372036854775809\x1fk", 23, "within int64");
    expect_refused(K, "u99999999999999999999999\x1fk", 26, "within int64");
    expect_refused(K, "u42", 3, "expected 0x1F or '|'");
    expect_refused(K, "u42x\x1fk", 6, "expected 0x1F or '|'");
    expect_refused(K, "u42 |61", 7, "expected 0x1F or '|'");
    expect_refused(K,
                   "u4\x1f"
                   "a\x1f"
                   "b",
                   6, "not doubled");
    expect_refused(K,
                   "u4\x1f"
                   "ab\x1f",
                   6, "not doubled");
    expect_refused(K, "u4\x1f\x1f\x1f\x1f\x1f\x1f", 8, "not doubled");
    expect_refused(K, "u4|616", 6, "odd number of digits");
    expect_refused(K, "u4|61zz", 7, "non-hex digit at offset 2");
    expect_refused(K, "u4|6100", 7, "NUL byte at offset 1");
    expect_refused(K, "", 0, "empty payload");
    expect_refused(K,
                   "u1\x1f"
                   "a\0b",
                   6, "NUL byte");
    /* AUTO sends anything but 'u'/'d' to JSON, whose reason says what is wrong. */
    expect_refused(PGCW_FORMAT_AUTO, "hello", 5, "not JSON");
    expect_refused(PGCW_FORMAT_AUTO, "u", 1, "without a valid version");
    /* A key payload on a table-change channel is not JSON. */
    expect_refused(PGCW_FORMAT_TABLE_CHANGE, "u42\x1fk", 5, "not JSON");
    /* A JSON payload on a cache-key channel is not a key notification. */
    expect_refused(K, "{\"operation\":\"insert\"}", 22, "must start with 'u' or 'd'");
}

static void test_auto_and_formats(void **state)
{
    (void)state;
    const char *json = " \n{\"operation\":\"insert\",\"table\":\"t\","
                       "\"sent_at\":\"2024-05-01T12:00:00Z\"}";
    pgcw_event *e = decode_ok(PGCW_FORMAT_AUTO, json, strlen(json));
    assert_int_equal(e->kind, PGCW_EVENT_CHANGE);
    assert_string_equal(e->table, "t");
    pgcw_event_free(e);

    char why[64];
    pgcw_event *none = (pgcw_event *)1;
    assert_int_equal(pgcw__event_decode((pgcw_payload_format)99, "c", "u1\x1fk", 4, 0,
                                        &none, why, sizeof why),
                     PGCW_EINVAL);
    assert_null(none);
    assert_non_null(strstr(why, "unknown payload format"));

    static const struct {
        pgcw_payload_format f;
        const char *name;
    } names[] = {{PGCW_FORMAT_AUTO, "auto"},
                 {PGCW_FORMAT_TABLE_CHANGE, "table-change"},
                 {PGCW_FORMAT_CACHE_KEY, "cache-key"}};
    for (size_t i = 0; i < 3; i++) {
        assert_string_equal(pgcw_payload_format_name(names[i].f), names[i].name);
        pgcw_payload_format back = (pgcw_payload_format)77;
        assert_int_equal(pgcw_payload_format_parse(names[i].name, &back), PGCW_OK);
        assert_int_equal(back, names[i].f);
        assert_true(pgcw__payload_format_valid(names[i].f));
    }
    assert_string_equal(pgcw_payload_format_name((pgcw_payload_format)99), "unknown");
    assert_false(pgcw__payload_format_valid((pgcw_payload_format)99));
    assert_int_equal(pgcw_payload_format_parse("json", NULL), PGCW_EPARSE);
    assert_int_equal(pgcw_payload_format_parse(NULL, NULL), PGCW_EPARSE);
    assert_string_equal(pgcw_event_kind_name(PGCW_EVENT_KEY), "key");
    assert_string_equal(pgcw_event_kind_name((pgcw_event_kind)9), "unknown");
    assert_string_equal(pgcw_event_source_name(PGCW_SOURCE_LISTEN), "listen");
    assert_string_equal(pgcw_event_source_name(PGCW_SOURCE_LOGICAL), "logical");
    assert_string_equal(pgcw_event_source_name(PGCW_SOURCE_POLL), "poll");
    assert_string_equal(pgcw_event_source_name((pgcw_event_source)9), "unknown");
}

static void test_new_key_clone_and_format(void **state)
{
    (void)state;
    const pgcw_event *e = NULL;
    assert_int_equal(pgcw_event_new_key("ch", PGCW_OP_DELETE, "a\x1f\"b", 4, -3, &e),
                     PGCW_OK);
    assert_int_equal(e->kind, PGCW_EVENT_KEY);
    assert_int_equal(e->key_len, 4);
    assert_memory_equal(e->key, "a\x1f\"b", 5);
    assert_null(e->payload);
    const pgcw_event *c = NULL;
    assert_int_equal(pgcw_event_clone(e, &c), PGCW_OK);
    assert_ptr_not_equal(c->key, e->key);
    assert_int_equal(c->key_len, 4);
    assert_memory_equal(c->key, e->key, 5);
    assert_int_equal(c->version, -3);

    char *json = pgcw_event_to_json(c);
    json_object *o = json_tokener_parse(json);
    assert_non_null(o);
    json_object *v;
    assert_true(json_object_object_get_ex(o, "kind", &v));
    assert_string_equal(json_object_get_string(v), "key");
    assert_true(json_object_object_get_ex(o, "key", &v));
    assert_int_equal(json_object_get_string_len(v), 4);
    assert_memory_equal(json_object_get_string(v), "a\x1f\"b", 4);
    assert_true(json_object_object_get_ex(o, "version", &v));
    assert_int_equal(json_object_get_int64(v), -3);
    assert_true(json_object_object_get_ex(o, "operation", &v));
    assert_string_equal(json_object_get_string(v), "delete");
    assert_false(json_object_object_get_ex(o, "table", NULL));
    assert_null(strchr(json, '\n'));
    json_object_put(o);
    pgcw_free(json);
    char *text = pgcw_event_to_text(c);
    assert_string_equal(text, "delete key \"a\\x1f\"b\" version=-3");
    pgcw_free(text);
    pgcw_event_free(c);
    pgcw_event_free(e);

    /* A key that is not UTF-8 goes out in hex rather than as broken JSON. */
    assert_int_equal(pgcw_event_new_key(NULL, PGCW_OP_UPDATE, "\xff\x01", 2, 5, &e),
                     PGCW_OK);
    json = pgcw_event_to_json(e);
    o = json_tokener_parse(json);
    assert_non_null(o);
    assert_false(json_object_object_get_ex(o, "key", NULL));
    assert_true(json_object_object_get_ex(o, "key_hex", &v));
    assert_string_equal(json_object_get_string(v), "ff01");
    json_object_put(o);
    pgcw_free(json);
    text = pgcw_event_to_text(e);
    assert_string_equal(text, "update key hex:ff01 version=5");
    pgcw_free(text);
    pgcw_event_free(e);

    assert_int_equal(pgcw_event_new_key("c", PGCW_OP_INSERT, "k", 1, 1, &e), PGCW_EINVAL);
    assert_int_equal(pgcw_event_new_key("c", PGCW_OP_UPDATE, "a\0b", 3, 1, &e),
                     PGCW_EINVAL);
    assert_int_equal(pgcw_event_new_key("c", PGCW_OP_UPDATE, NULL, 1, 1, &e),
                     PGCW_EINVAL);
    assert_int_equal(pgcw_event_new_key("c", PGCW_OP_UPDATE, "k", 1, 1, NULL),
                     PGCW_EINVAL);
    assert_int_equal(pgcw_event_new_key("c", PGCW_OP_UPDATE, NULL, 0, 1, &e), PGCW_OK);
    assert_int_equal(e->key_len, 0);
    assert_string_equal(e->key, "");
    pgcw_event_free(e);
}

static void test_utf8_check(void **state)
{
    (void)state;
    assert_true(pgcw__utf8_valid("", 0));
    assert_true(pgcw__utf8_valid("caf\xc3\xa9 \xf0\x9f\x98\x80", 10));
    assert_false(pgcw__utf8_valid("\xc0\x80", 2));         /* overlong NUL */
    assert_false(pgcw__utf8_valid("\xed\xa0\x80", 3));     /* surrogate */
    assert_false(pgcw__utf8_valid("\xf4\x90\x80\x80", 4)); /* above U+10FFFF */
    assert_false(pgcw__utf8_valid("\xe2\x82", 2));         /* cut short */
    assert_false(pgcw__utf8_valid("\x80", 1));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_form),
        cmocka_unit_test(test_hex_form),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_auto_and_formats),
        cmocka_unit_test(test_new_key_clone_and_format),
        cmocka_unit_test(test_utf8_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
