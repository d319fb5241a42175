/* test_event_fastpath.c - the payload parser's fast path: the flat shapes it must
 * accept (Python's payloads, ours, any whitespace, member order, unknown scalar
 * members, null schema), every rule that makes it decline, and, over a table of
 * payloads, that whatever it accepts json-c's path accepts as the same event and
 * that the table-change decoder (pgcw_event_parse()) always answers as json-c's
 * path does. */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "event_assert.h"

#include <pgcachewatch/pgcachewatch.h>

#include "pgcw_testhook.h"

#define SENT_TEXT "2024-05-01T12:34:56.123456+00:00"
#define SENT_US INT64_C(1714566896123456)
#define RECV_US (SENT_US + 1234)
#define OK_TAIL "\"sent_at\":\"" SENT_TEXT "\""

/* The fast path on an exact-size heap copy (ASan then sees any overread). */
static pgcw_event *fast(const char *payload, size_t len)
{
    char *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    memcpy(copy, payload, len);
    pgcw_event *e = (pgcw_event *)1;
    bool ok = pgcw__event_parse_fast("ch", copy, len, RECV_US, &e);
    assert_true(ok == (e != NULL));
    free(copy);
    return e;
}

/* The fast path accepts payload, and json-c's path builds the same event. */
static pgcw_event *accepted(const char *payload)
{
    pgcw_event *e = fast(payload, strlen(payload));
    if (!e)
        fail_msg("fast path declined: %s", payload);
    pgcw_event *j = NULL;
    char err[256];
    pgcw_status st = pgcw__event_parse_json("ch", payload, strlen(payload), RECV_US, &j,
                                            err, sizeof err);
    if (st != PGCW_OK)
        fail_msg("json-c rejected what the fast path took: %s (%s)", payload, err);
    pgtest_assert_same_event(e, j, false);
    pgcw_event_free(j);
    return e;
}

static void declined(const char *payload, size_t len)
{
    pgcw_event *e = fast(payload, len);
    if (e)
        fail_msg("fast path accepted: %.*s", (int)len, payload);
}

static void test_python_payloads(void **state)
{
    (void)state;
    pgcw_event *e =
        accepted("{\"operation\":\"INSERT\",\"table\":\"orders\"," OK_TAIL "}");
    assert_int_equal(e->kind, PGCW_EVENT_CHANGE);
    assert_int_equal(e->operation, PGCW_OP_INSERT);
    assert_string_equal(e->channel, "ch");
    assert_null(e->schema);
    assert_string_equal(e->table, "orders");
    assert_int_equal(e->sent_at_us, SENT_US);
    assert_int_equal(e->received_at_us, RECV_US);
    assert_int_equal(e->latency_us, 1234);
    assert_int_equal(e->n_keys, 0);
    assert_null(e->keys);
    assert_null(e->pk_columns);
    assert_int_equal(e->part, 0);
    pgcw_event_free(e);

    /* emit_event(): extra members, spaces after separators, a trailing newline. */
    e = accepted("{\"channel\": \"pgcachewatch\", \"operation\": \"delete\", "
                 "\"sent_at\": \"2024-05-01T12:34:56.123456Z\", \"table\": \"users\", "
                 "\"received_at\": \"2024-05-01T12:34:57Z\"}\n");
    assert_int_equal(e->operation, PGCW_OP_DELETE);
    assert_string_equal(e->channel, "ch"); /* the argument, not the member */
    assert_string_equal(e->table, "users");
    assert_int_equal(e->sent_at_us, SENT_US);
    assert_int_equal(e->received_at_us, RECV_US);
    pgcw_event_free(e);
}

static void test_our_payloads(void **state)
{
    (void)state;
    /* What json_build_object(...)::text looks like in PostgreSQL 15. */
    pgcw_event *e = accepted("{\"operation\" : \"update\", \"table\" : \"line_items\", "
                             "\"schema\" : \"sales\", "
                             "\"sent_at\" : \"2024-05-01T14:34:56.123456+02:00\"}");
    assert_int_equal(e->operation, PGCW_OP_UPDATE);
    assert_string_equal(e->schema, "sales");
    assert_string_equal(e->table, "line_items");
    assert_int_equal(e->sent_at_us, SENT_US);
    pgcw_event_free(e);

    /* Null schema, part, null pk and keys (a statement with no keys to send). */
    e = accepted("{\"operation\":\"truncate\",\"table\":\"t\",\"schema\":null,"
                 "\"part\":3,\"pk\":null,\"keys\":null," OK_TAIL "}");
    assert_int_equal(e->operation, PGCW_OP_TRUNCATE);
    assert_null(e->schema);
    assert_int_equal(e->part, 3);
    assert_int_equal(e->n_pk_columns, 0);
    assert_int_equal(e->n_keys, 0);
    pgcw_event_free(e);

    e = accepted("{\"operation\":\"insert\",\"table\":\"t\",\"part\":null,"
                 "\"schema\":\"s\"," OK_TAIL "}");
    assert_int_equal(e->part, 0);
    pgcw_event_free(e);
    e = accepted("{\"operation\":\"insert\",\"table\":\"t\",\"part\":2147483647," OK_TAIL
                 "}");
    assert_int_equal(e->part, 2147483647);
    pgcw_event_free(e);
}

static void test_whitespace_order_unknown(void **state)
{
    (void)state;
    /* Every place JSON allows whitespace, with all four whitespace characters. */
    pgcw_event *e =
        accepted(" \t\r\n{ \t\r\n\"table\" \n:\t\"t\" , \"sent_at\"\r:"
                 "\"" SENT_TEXT "\"\n,\n\"operation\"  :  \"delete\"\t}\r\n ");
    assert_int_equal(e->operation, PGCW_OP_DELETE);
    assert_string_equal(e->table, "t");
    pgcw_event_free(e);

    /* Every order of the three required members gives the same event. */
    static const char *const orders[] = {
        "{\"operation\":\"delete\",\"table\":\"t\"," OK_TAIL "}",
        "{\"operation\":\"delete\"," OK_TAIL ",\"table\":\"t\"}",
        "{\"table\":\"t\",\"operation\":\"delete\"," OK_TAIL "}",
        "{\"table\":\"t\"," OK_TAIL ",\"operation\":\"delete\"}",
        "{" OK_TAIL ",\"operation\":\"delete\",\"table\":\"t\"}",
        "{" OK_TAIL ",\"table\":\"t\",\"operation\":\"delete\"}",
    };
    pgcw_event *first = accepted(orders[0]);
    for (size_t i = 1; i < sizeof orders / sizeof orders[0]; i++) {
        e = accepted(orders[i]);
        assert_int_equal(e->operation, first->operation);
        assert_string_equal(e->table, first->table);
        assert_int_equal(e->sent_at_us, first->sent_at_us);
        pgcw_event_free(e);
    }
    pgcw_event_free(first);

    /* Unknown members of every scalar kind, including the benchmark's counters. */
    e = accepted("{\"operation\":\"update\",\"table\":\"bench\",\"schema\":\"public\","
                 "" OK_TAIL ",\"run\":123456,\"seq\":0,\"mono_us\":-987654321012345678,"
                 "\"flag\":true,\"other\":false,\"nothing\":null,\"note\":\"x y/z\","
                 "\"\":\"empty name\",\"Operation\":\"not ours\"}");
    assert_int_equal(e->operation, PGCW_OP_UPDATE);
    assert_string_equal(e->schema, "public");
    assert_string_equal(e->table, "bench");
    pgcw_event_free(e);

    /* Printable ASCII, DEL included, is taken as is. */
    e = accepted("{\"operation\":\"insert\",\"table\":\"a b'c/d{e}[f]:g,\x7f\"," OK_TAIL
                 "}");
    assert_string_equal(e->table, "a b'c/d{e}[f]:g,\x7f");
    pgcw_event_free(e);
}

#define HEAD "{\"operation\":\"insert\",\"table\":\"t\"," OK_TAIL

static void test_declined(void **state)
{
    (void)state;
    static const char *const no[] = {
        /* escapes anywhere: values, names, unknown members */
        "{\"operation\":\"insert\",\"table\":\"a\\\"b\"," OK_TAIL "}",
        "{\"operation\":\"insert\",\"table\":\"a\\/b\"," OK_TAIL "}",
        "{\"operation\":\"insert\",\"table\":\"\\u0074\"," OK_TAIL "}",
        "{\"operat\\u0069on\":\"insert\",\"table\":\"t\"," OK_TAIL "}",
        HEAD ",\"x\":\"\\n\"}",
        /* bytes >= 0x80, valid UTF-8 or not; control characters */
        "{\"operation\":\"insert\",\"table\":\"caf\xc3\xa9\"," OK_TAIL "}",
        "{\"operation\":\"insert\",\"table\":\"t\xff\"," OK_TAIL "}",
        HEAD ",\"n\xc3\xa9\":1}",
        "{\"operation\":\"insert\",\"table\":\"a\tb\"," OK_TAIL "}",
        HEAD ",\"x\":\"\x1f\"}",
        /* nesting: pk/keys present, unknown arrays or objects, empty ones too */
        HEAD ",\"pk\":[\"id\"],\"keys\":[[1]]}",
        HEAD ",\"pk\":[],\"keys\":[]}",
        HEAD ",\"keys\":[1]}",
        HEAD ",\"future\":{}}",
        HEAD ",\"future\":[1,2]}",
        "[" HEAD "}]",
        /* pk/keys of a non-null scalar type (json-c reports them) */
        HEAD ",\"pk\":\"id\"}",
        HEAD ",\"keys\":1}",
        /* duplicate member names, known or not */
        HEAD ",\"table\":\"u\"}",
        "{\"operation\":\"insert\",\"operation\":\"delete\",\"table\":\"t\"," OK_TAIL "}",
        HEAD ",\"x\":1,\"x\":1}",
        HEAD ",\"schema\":null,\"schema\":\"s\"}",
        /* numbers that are not plain 18-digit integers */
        HEAD ",\"x\":1.5}",
        HEAD ",\"x\":1e3}",
        HEAD ",\"x\":1E3}",
        HEAD ",\"x\":1.}",
        HEAD ",\"x\":01}",
        HEAD ",\"x\":-0}",
        HEAD ",\"x\":-}",
        HEAD ",\"x\":+1}",
        HEAD ",\"x\":.5}",
        HEAD ",\"x\":1234567890123456789}",
        HEAD ",\"x\":-1234567890123456789}",
        HEAD ",\"x\":NaN}",
        HEAD ",\"x\":Infinity}",
        /* literals: case, prefixes, run-ons */
        HEAD ",\"x\":True}",
        HEAD ",\"x\":NULL}",
        HEAD ",\"x\":nul}",
        HEAD ",\"x\":truex}",
        HEAD ",\"x\":nullnull}",
        /* structure: trailing garbage, two documents, trailing comma, missing or
         * doubled separators, single quotes, bare names, other whitespace */
        HEAD "}x",
        HEAD "}{}",
        HEAD "}}",
        HEAD ",}",
        HEAD ",,\"x\":1}",
        HEAD ",\"x\" 1}",
        HEAD ",\"x\"::1}",
        HEAD " \"x\":1}",
        HEAD ",'x':1}",
        HEAD ",x:1}",
        HEAD ",\"x\":'1'}",
        "\f" HEAD "}",
        HEAD "}\v",
        HEAD ",\"x\":\f1}",
        /* not an object */
        "\"insert\"",
        "42",
        "null",
        "{}",
        "{ }",
        /* required members missing, of the wrong type, or empty */
        "{\"table\":\"t\"," OK_TAIL "}",
        "{\"operation\":\"insert\"," OK_TAIL "}",
        "{\"operation\":\"insert\",\"table\":\"t\"}",
        "{\"operation\":null,\"table\":\"t\"," OK_TAIL "}",
        "{\"operation\":1,\"table\":\"t\"," OK_TAIL "}",
        "{\"operation\":\"insert\",\"table\":null," OK_TAIL "}",
        "{\"operation\":\"insert\",\"table\":true," OK_TAIL "}",
        "{\"operation\":\"insert\",\"table\":\"t\",\"sent_at\":1714566896}",
        "{\"operation\":\"insert\",\"table\":\"t\",\"sent_at\":null}",
        "{\"operation\":\"insert\",\"table\":\"\"," OK_TAIL "}",
        HEAD ",\"schema\":\"\"}",
        HEAD ",\"schema\":5}",
        HEAD ",\"schema\":false}",
        /* values the event cannot hold */
        "{\"operation\":\"upsert\",\"table\":\"t\"," OK_TAIL "}",
        "{\"operation\":\"\",\"table\":\"t\"," OK_TAIL "}",
        "{\"operation\":\"insert \",\"table\":\"t\"," OK_TAIL "}",
        "{\"operation\":\"insert\",\"table\":\"t\",\"sent_at\":\"yesterday\"}",
        "{\"operation\":\"insert\",\"table\":\"t\",\"sent_at\":\"2023-02-29T00:00:00Z\"}",
        "{\"operation\":\"insert\",\"table\":\"t\",\"sent_at\":\"\"}",
        HEAD ",\"part\":-1}",
        HEAD ",\"part\":2147483648}",
        HEAD ",\"part\":\"1\"}",
        HEAD ",\"part\":true}",
        HEAD ",\"part\":1.0}",
    };
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
        declined(no[i], strlen(no[i]));
}

/* Limits of the fast path itself: member count, names too long for its scratch
 * space, every truncation, a NUL anywhere, no payload at all. */
static void test_declined_limits(void **state)
{
    (void)state;
    char buf[1024];
    int n = snprintf(buf, sizeof buf, "%s", HEAD);
    for (int i = 0; i < 13; i++) /* 3 + 13 = 16 members: still fine */
        n += snprintf(buf + n, sizeof buf - (size_t)n, ",\"m%d\":%d", i, i);
    snprintf(buf + n, sizeof buf - (size_t)n, "}");
    pgcw_event *e = accepted(buf);
    pgcw_event_free(e);
    n += snprintf(buf + n, sizeof buf - (size_t)n, ",\"m%d\":%d", 99, 99);
    snprintf(buf + n, sizeof buf - (size_t)n, "}");
    declined(buf, strlen(buf));

    /* A 63-byte table and schema (PostgreSQL's limit) fit; a 300-byte table does
     * not, and json-c takes it. */
    char name[301];
    memset(name, 'n', 63);
    name[63] = '\0';
    snprintf(buf, sizeof buf,
             "{\"operation\":\"insert\",\"table\":\"%s\",\"schema\":\"%s\"," OK_TAIL "}",
             name, name);
    e = accepted(buf);
    assert_string_equal(e->table, name);
    pgcw_event_free(e);
    memset(name, 'n', 300);
    name[300] = '\0';
    snprintf(buf, sizeof buf, "{\"operation\":\"insert\",\"table\":\"%s\"," OK_TAIL "}",
             name);
    declined(buf, strlen(buf));

    const char *valid = HEAD ",\"schema\":\"s\",\"part\":12}";
    size_t len = strlen(valid);
    e = accepted(valid);
    pgcw_event_free(e);
    for (size_t cut = 0; cut < len; cut++)
        declined(valid, cut);
    memcpy(buf, valid, len);
    for (size_t at = 0; at < len; at++) {
        char saved = buf[at];
        buf[at] = '\0';
        declined(buf, len);
        buf[at] = saved;
    }
    pgcw_event *out = (pgcw_event *)1;
    assert_false(pgcw__event_parse_fast("ch", NULL, 0, RECV_US, &out));
    assert_null(out);
}

/* For every payload: when the fast path accepts, json-c's path accepts the same
 * event; the table-change decoder always answers exactly as json-c's path does, status,
 * event and error message. */
static void test_paths_agree(void **state)
{
    (void)state;
    static const char *const table[] = {
        "{\"operation\":\"insert\",\"table\":\"t\"," OK_TAIL "}",
        "{\"operation\" : \"update\", \"table\" : \"t\", \"schema\" : \"public\", "
        "\"sent_at\" : \"2024-05-01 12:34:56.5-08\"}",
        "{\"operation\":\"DELETE\",\"table\":\"t\",\"schema\":null,\"part\":0," OK_TAIL
        "}",
        HEAD ",\"x\":-123456789012345678,\"y\":true,\"z\":null}",
        "{\"operation\":\"truncate\",\"table\":\"t\",\"sent_at\":\"2024-02-29 "
        "23:59:60Z\"}\n",
        /* declined by the fast path, taken by json-c */
        "{\"operation\":\"insert\",\"table\":\"a\\\"b\"," OK_TAIL "}",
        HEAD ",\"pk\":[\"id\"],\"keys\":[[1],[2]],\"part\":1}",
        HEAD ",\"x\":1.5e3}",
        HEAD ",\"table\":\"u\"}",
        HEAD ",\"x\":12345678901234567890123}",
        "{\"operation\":\"insert\",\"table\":\"caf\xc3\xa9\"," OK_TAIL "}",
        /* declined by both */
        HEAD ",\"part\":-1}",
        "{\"operation\":\"insert\",\"table\":\"t\",\"sent_at\":\"yesterday\"}",
        HEAD "}x",
        HEAD ",\"schema\":\"\"}",
        "{\"operation\":\"upsert\",\"table\":\"t\"," OK_TAIL "}",
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        const char *p = table[i];
        size_t len = strlen(p);
        pgcw_event *f = fast(p, len), *j = NULL, *pub = NULL;
        char jerr[256], perr[256];
        pgcw_status jst =
            pgcw__event_parse_json("ch", p, len, RECV_US, &j, jerr, sizeof jerr);
        pgcw_status pst = pgcw__event_decode(PGCW_FORMAT_TABLE_CHANGE, "ch", p, len,
                                             RECV_US, &pub, perr, sizeof perr);
        if (f) {
            if (jst != PGCW_OK)
                fail_msg("only the fast path accepted %s (%s)", p, jerr);
            pgtest_assert_same_event(f, j, false);
        }
        if (pst != jst)
            fail_msg("%s: the table-change decoder gave %s, json-c's path %s", p,
                     pgcw_status_name(pst), pgcw_status_name(jst));
        assert_string_equal(perr, jst == PGCW_OK ? "" : jerr);
        if (j)
            pgtest_assert_same_event(pub, j, false);
        pgcw_event_free(f);
        pgcw_event_free(j);
        pgcw_event_free(pub);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_python_payloads),
        cmocka_unit_test(test_our_payloads),
        cmocka_unit_test(test_whitespace_order_unknown),
        cmocka_unit_test(test_declined),
        cmocka_unit_test(test_declined_limits),
        cmocka_unit_test(test_paths_agree),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
