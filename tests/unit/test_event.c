/* test_event.c - payload parsing (both payload styles, our superset, every class of
 * malformed input), the single-allocation layout, clones, gap events, the shared
 * reference count (also across threads) and the JSON/text formats. */
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
#include <json-c/json.h>
#include <pthread.h>

#include <pgcachewatch/pgcachewatch.h>

#include "pgcw_testhook.h"

#define SENT_TEXT "2024-05-01T12:34:56.123456+00:00"
#define SENT_US INT64_C(1714566896123456)
#define RECV_US (SENT_US + 1234)

static const pgcw_event *parse_ok(const char *channel, const char *payload)
{
    char err[256] = "untouched";
    pgcw_event *e = (pgcw_event *)1;
    pgcw_status st = pgcw__event_decode(PGCW_FORMAT_TABLE_CHANGE, channel, payload,
                                        strlen(payload), RECV_US, &e, err, sizeof err);
    if (st != PGCW_OK)
        fail_msg("%s: %s (%s)", payload, pgcw_status_name(st), err);
    assert_non_null(e);
    assert_string_equal(err, "");
    return e;
}

static void expect_parse_error(const char *payload, size_t len)
{
    char err[256] = "";
    pgcw_event *e = (pgcw_event *)1;
    pgcw_status st = pgcw__event_decode(PGCW_FORMAT_TABLE_CHANGE, "ch", payload, len,
                                        RECV_US, &e, err, sizeof err);
    if (st != PGCW_EPARSE)
        fail_msg("%.*s: got %s, want EPARSE", (int)len, payload, pgcw_status_name(st));
    assert_null(e);
    assert_true(strlen(err) > 0);
    assert_null(strchr(err, '\n'));
}

static void test_python_trigger_payload(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        pgcw_op op;
    } ops[] = {{"insert", PGCW_OP_INSERT}, {"update", PGCW_OP_UPDATE},
               {"delete", PGCW_OP_DELETE}, {"truncate", PGCW_OP_TRUNCATE},
               {"INSERT", PGCW_OP_INSERT}, {"Update", PGCW_OP_UPDATE},
               {"DeLeTe", PGCW_OP_DELETE}, {"TRUNCATE", PGCW_OP_TRUNCATE}};
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        char payload[256];
        snprintf(payload, sizeof payload,
                 "{\"operation\":\"%s\",\"table\":\"orders\",\"sent_at\":\"" SENT_TEXT
                 "\"}",
                 ops[i].text);
        const pgcw_event *e = parse_ok("pgcachewatch", payload);
        assert_int_equal(e->kind, PGCW_EVENT_CHANGE);
        assert_int_equal(e->operation, ops[i].op);
        assert_string_equal(e->channel, "pgcachewatch");
        assert_null(e->schema);
        assert_string_equal(e->table, "orders");
        assert_int_equal(e->sent_at_us, SENT_US);
        assert_int_equal(e->received_at_us, RECV_US);
        assert_int_equal(e->latency_us, 1234);
        assert_string_equal(e->payload, payload);
        assert_int_equal(e->n_pk_columns, 0);
        assert_null(e->pk_columns);
        assert_int_equal(e->n_keys, 0);
        assert_null(e->keys);
        assert_int_equal(e->part, 0);
        assert_int_equal(e->gap_reason, PGCW_GAP_NONE);
        pgcw_event_free(e);
    }
}

/* What Python's emit_event() sends through pydantic: extra members, 'Z' zone, and
 * whitespace between tokens. */
static void test_python_emit_event_payload(void **state)
{
    (void)state;
    const pgcw_event *e =
        parse_ok(NULL, "{\"channel\": \"ch\", \"operation\": \"delete\", "
                       "\"sent_at\": \"2024-05-01T12:34:56.123456Z\", "
                       "\"table\": \"users\", "
                       "\"received_at\": \"2024-05-01T12:34:57Z\"}\n");
    assert_int_equal(e->operation, PGCW_OP_DELETE);
    assert_string_equal(e->channel, ""); /* the argument, not the member */
    assert_string_equal(e->table, "users");
    assert_int_equal(e->sent_at_us, SENT_US);
    assert_int_equal(e->received_at_us, RECV_US); /* the member is ignored */
    pgcw_event_free(e);
}

static void test_superset_payload(void **state)
{
    (void)state;
    const pgcw_event *e = parse_ok(
        "c", "{\"operation\":\"update\",\"schema\":\"sales\",\"table\":\"line\\\"items\","
             "\"sent_at\":\"" SENT_TEXT "\",\"pk\":[\"order_id\",\"region\"],"
             "\"keys\":[[1, \"eu\"],[ 2 ,\"a/b\\u00e9\\n\"],[9223372036854775807,null]],"
             "\"part\":2,\"future\":{\"x\":[1,2]}}");
    assert_int_equal(e->operation, PGCW_OP_UPDATE);
    assert_string_equal(e->schema, "sales");
    assert_string_equal(e->table, "line\"items");
    assert_int_equal(e->n_pk_columns, 2);
    assert_string_equal(e->pk_columns[0], "order_id");
    assert_string_equal(e->pk_columns[1], "region");
    assert_int_equal(e->n_keys, 3);
    assert_string_equal(e->keys[0], "[1,\"eu\"]");
    assert_string_equal(e->keys[1], "[2,\"a/b\xc3\xa9\\n\"]");
    assert_string_equal(e->keys[2], "[9223372036854775807,null]");
    assert_int_equal(e->part, 2);
    pgcw_event_free(e);

    /* schema null, bare key values (stored as one-element arrays), no pk. */
    e = parse_ok("c", "{\"operation\":\"insert\",\"schema\":null,\"table\":\"t\","
                      "\"sent_at\":\"" SENT_TEXT "\",\"pk\":null,\"keys\":[42,\"x\",[3]],"
                      "\"part\":null}");
    assert_null(e->schema);
    assert_int_equal(e->n_pk_columns, 0);
    assert_int_equal(e->n_keys, 3);
    assert_string_equal(e->keys[0], "[42]");
    assert_string_equal(e->keys[1], "[\"x\"]");
    assert_string_equal(e->keys[2], "[3]");
    assert_int_equal(e->part, 0);
    pgcw_event_free(e);

    /* Empty arrays mean "no keys". */
    e = parse_ok("c", "{\"operation\":\"insert\",\"table\":\"t\",\"sent_at\":\"" SENT_TEXT
                      "\",\"pk\":[],\"keys\":[]}");
    assert_int_equal(e->n_pk_columns, 0);
    assert_int_equal(e->n_keys, 0);
    pgcw_event_free(e);
}

/* json-c silently saturates integers beyond 64 bits; such keys would name other rows,
 * so the event must degrade to a table-wide change instead. */
static void test_wide_integer_keys_degrade(void **state)
{
    (void)state;
    const pgcw_event *e =
        parse_ok("c", "{\"operation\":\"delete\",\"table\":\"t\",\"sent_at\":\"" SENT_TEXT
                      "\",\"pk\":[\"id\"],\"keys\":[[1],[123456789012345678901234]]}");
    assert_int_equal(e->n_keys, 0);
    assert_int_equal(e->n_pk_columns, 0);
    assert_string_equal(e->table, "t");
    pgcw_event_free(e);
    /* The limits themselves are exact and kept. */
    e = parse_ok("c",
                 "{\"operation\":\"delete\",\"table\":\"t\",\"sent_at\":\"" SENT_TEXT
                 "\",\"keys\":[[18446744073709551615],[-9223372036854775808],[1e400]]}");
    assert_int_equal(e->n_keys, 3);
    assert_string_equal(e->keys[0], "[18446744073709551615]");
    assert_string_equal(e->keys[1], "[-9223372036854775808]");
    assert_string_equal(e->keys[2], "[1e400]");
    pgcw_event_free(e);
    /* A wide number inside a string is just text. */
    e = parse_ok("c", "{\"operation\":\"delete\",\"table\":\"t\",\"sent_at\":\"" SENT_TEXT
                      "\",\"keys\":[[\"123456789012345678901234\"]]}");
    assert_int_equal(e->n_keys, 1);
    pgcw_event_free(e);
}

#define OK_TAIL "\"sent_at\":\"" SENT_TEXT "\""

static void test_malformed(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "not json",
        "{",
        "{\"operation\":\"insert\",\"table\":\"t\"," OK_TAIL, /* truncated */
        "[\"operation\",\"insert\"]",
        "\"insert\"",
        "42",
        "null",
        "{}",
        /* missing members */
        "{\"table\":\"t\"," OK_TAIL "}",
        "{\"operation\":\"insert\"," OK_TAIL "}",
        "{\"operation\":\"insert\",\"table\":\"t\"}",
        /* wrong types */
        "{\"operation\":1,\"table\":\"t\"," OK_TAIL "}",
        "{\"operation\":null,\"table\":\"t\"," OK_TAIL "}",
        "{\"operation\":\"insert\",\"table\":[\"t\"]," OK_TAIL "}",
        "{\"operation\":\"insert\",\"table\":null," OK_TAIL "}",
        "{\"operation\":\"insert\",\"table\":\"t\",\"sent_at\":1714566896}",
        "{\"operation\":\"insert\",\"table\":\"t\",\"schema\":5," OK_TAIL "}",
        "{\"operation\":\"insert\",\"table\":\"t\",\"schema\":\"\"," OK_TAIL "}",
        "{\"operation\":\"insert\",\"table\":\"t\",\"pk\":\"id\"," OK_TAIL "}",
        "{\"operation\":\"insert\",\"table\":\"t\",\"pk\":[1]," OK_TAIL "}",
        "{\"operation\":\"insert\",\"table\":\"t\",\"pk\":[\"\"]," OK_TAIL "}",
        "{\"operation\":\"insert\",\"table\":\"t\",\"keys\":{\"id\":1}," OK_TAIL "}",
        "{\"operation\":\"insert\",\"table\":\"t\",\"keys\":\"[1]\"," OK_TAIL "}",
        "{\"operation\":\"insert\",\"table\":\"t\",\"part\":\"1\"," OK_TAIL "}",
        "{\"operation\":\"insert\",\"table\":\"t\",\"part\":1.5," OK_TAIL "}",
        "{\"operation\":\"insert\",\"table\":\"t\",\"part\":-1," OK_TAIL "}",
        "{\"operation\":\"insert\",\"table\":\"t\",\"part\":4294967296," OK_TAIL "}",
        /* key arity differs from pk */
        "{\"operation\":\"insert\",\"table\":\"t\",\"pk\":[\"a\",\"b\"],\"keys\":[[1,2],["
        "3]]," OK_TAIL "}",
        /* unknown operations */
        "{\"operation\":\"upsert\",\"table\":\"t\"," OK_TAIL "}",
        "{\"operation\":\"\",\"table\":\"t\"," OK_TAIL "}",
        "{\"operation\":\"insert \",\"table\":\"t\"," OK_TAIL "}",
        "{\"operation\":\"insert\\u0000x\",\"table\":\"t\"," OK_TAIL "}",
        /* values echoed in the reason must not break it over lines */
        "{\"operation\":\"in\\nsert\",\"table\":\"t\"," OK_TAIL "}",
        "{\"operation\":\"insert\",\"table\":\"t\",\"sent_at\":\"2024\\r\\n\"}",
        /* empty table, NUL inside names */
        "{\"operation\":\"insert\",\"table\":\"\"," OK_TAIL "}",
        "{\"operation\":\"insert\",\"table\":\"a\\u0000b\"," OK_TAIL "}",
        /* bad timestamps */
        "{\"operation\":\"insert\",\"table\":\"t\",\"sent_at\":\"\"}",
        "{\"operation\":\"insert\",\"table\":\"t\",\"sent_at\":\"yesterday\"}",
        "{\"operation\":\"insert\",\"table\":\"t\",\"sent_at\":\"2023-02-29T00:00:00Z\"}",
        "{\"operation\":\"insert\",\"table\":\"t\",\"sent_at\":\"2024-05-01T12:34:56+25:"
        "00\"}",
        /* trailing garbage, two documents, invalid UTF-8, trailing comma */
        "{\"operation\":\"insert\",\"table\":\"t\"," OK_TAIL "}x",
        "{\"operation\":\"insert\",\"table\":\"t\"," OK_TAIL "}{}",
        "{\"operation\":\"insert\",\"table\":\"t\xff\"," OK_TAIL "}",
        "{\"operation\":\"insert\",\"table\":\"t\"," OK_TAIL ",}",
        /* not UTF-8 although json-c's own check passes them: an overlong '/', an
         * encoded surrogate, in a name and in a key */
        "{\"operation\":\"insert\",\"table\":\"t\xc0\xaf\"," OK_TAIL "}",
        "{\"operation\":\"insert\",\"table\":\"t\xed\xa0\x80\"," OK_TAIL "}",
        "{\"operation\":\"insert\",\"table\":\"t\",\"keys\":[[\"\xed\xbf\xbf\"]]," OK_TAIL
        "}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect_parse_error(bad[i], strlen(bad[i]));
}

/* A lone surrogate written as an escape is not refused, but what the event holds
 * (and pgcw_event_to_json() writes) is still UTF-8: json-c substitutes U+FFFD. */
static void test_lone_surrogate_escapes(void **state)
{
    (void)state;
    static const char p[] = "{\"operation\":\"insert\",\"table\":\"t\\ud800\","
                            "\"pk\":[\"\\udfff\"],\"keys\":[[\"\\ud83d\"]]," OK_TAIL "}";
    pgcw_event *e = NULL;
    char err[256] = "";
    pgcw_status st = pgcw__event_decode(PGCW_FORMAT_TABLE_CHANGE, "ch", p, strlen(p),
                                        RECV_US, &e, err, sizeof err);
    if (st != PGCW_OK)
        fail_msg("%s: %s", pgcw_status_name(st), err);
    assert_true(pgcw__utf8_valid(e->table, strlen(e->table)));
    assert_true(pgcw__utf8_valid(e->pk_columns[0], strlen(e->pk_columns[0])));
    assert_true(pgcw__utf8_valid(e->keys[0], strlen(e->keys[0])));
    char *json = pgcw_event_to_json(e);
    assert_non_null(json);
    assert_true(pgcw__utf8_valid(json, strlen(json)));
    pgcw_free(json);
    pgcw_event_free(e);
}

static const char valid[] = "{\"operation\":\"update\",\"schema\":\"s\",\"table\":\"t\","
                            "\"sent_at\":\"" SENT_TEXT "\",\"pk\":[\"id\"],"
                            "\"keys\":[[1],[2]],\"part\":1}";

/* Every strict prefix of a valid payload is rejected; so is a NUL anywhere. */
static void test_truncated_and_nul(void **state)
{
    (void)state;
    size_t n = strlen(valid);
    for (size_t len = 0; len < n; len++)
        expect_parse_error(valid, len);
    char *copy = malloc(n);
    assert_non_null(copy);
    for (size_t at = 0; at < n; at++) {
        memcpy(copy, valid, n);
        copy[at] = '\0';
        expect_parse_error(copy, n);
    }
    /* payload_len is honoured: bytes after it are never read (ASan checks the
     * exact-size copy), and a valid prefix of a longer buffer parses. */
    memcpy(copy, valid, n);
    const pgcw_event *e = NULL;
    assert_int_equal(
        pgcw_event_parse(PGCW_FORMAT_TABLE_CHANGE, "c", copy, n, RECV_US, &e), PGCW_OK);
    assert_string_equal(e->payload, valid);
    pgcw_event_free(e);
    free(copy);
    const char *longer = "{\"operation\":\"insert\",\"table\":\"t\"," OK_TAIL "}GARBAGE";
    assert_int_equal(pgcw_event_parse(PGCW_FORMAT_TABLE_CHANGE, "c", longer,
                                      strlen(longer) - 7, RECV_US, &e),
                     PGCW_OK);
    assert_int_equal(strlen(e->payload), strlen(longer) - 7);
    pgcw_event_free(e);
}

static void test_limits_and_arguments(void **state)
{
    (void)state;
    /* Over the size limit, even if otherwise valid. */
    size_t big = PGCW__EVENT_MAX_PAYLOAD + 1;
    char *p = malloc(big);
    assert_non_null(p);
    const char *head = "{\"operation\":\"insert\",\"table\":\"t\"," OK_TAIL ",\"pad\":\"";
    memset(p, 'a', big);
    memcpy(p, head, strlen(head));
    memcpy(p + big - 2, "\"}", 2);
    expect_parse_error(p, big);
    /* Just under it is fine. */
    memcpy(p + big - 3, "\"}", 2);
    const pgcw_event *e = NULL;
    assert_int_equal(
        pgcw_event_parse(PGCW_FORMAT_TABLE_CHANGE, "c", p, big - 1, RECV_US, &e),
        PGCW_OK);
    pgcw_event_free(e);
    free(p);

    /* Nesting deeper than the limit. */
    char deep[512];
    int n = snprintf(deep, sizeof deep,
                     "{\"operation\":\"insert\",\"table\":\"t\"," OK_TAIL ",\"x\":");
    for (int i = 0; i < PGCW__EVENT_MAX_DEPTH; i++)
        deep[n++] = '[';
    for (int i = 0; i < PGCW__EVENT_MAX_DEPTH; i++)
        deep[n++] = ']';
    deep[n++] = '}';
    expect_parse_error(deep, (size_t)n);

    /* A NULL or empty payload, a NULL out, a tiny or NULL errbuf. */
    char err[8];
    pgcw_event *me = NULL;
    assert_int_equal(pgcw__event_decode(PGCW_FORMAT_TABLE_CHANGE, "c", NULL, 0, 0, &me,
                                        err, sizeof err),
                     PGCW_EPARSE);
    assert_null(me);
    assert_int_equal(strlen(err), sizeof err - 1);
    assert_int_equal(
        pgcw__event_decode(PGCW_FORMAT_TABLE_CHANGE, "c", "", 0, 0, &me, NULL, 0),
        PGCW_EPARSE);
    assert_int_equal(pgcw__event_decode(PGCW_FORMAT_TABLE_CHANGE, "c", valid,
                                        strlen(valid), 0, NULL, err, sizeof err),
                     PGCW_EINVAL);
    /* The public parse: no reason, same statuses. */
    assert_int_equal(pgcw_event_parse(PGCW_FORMAT_TABLE_CHANGE, "c", NULL, 0, 0, &e),
                     PGCW_EPARSE);
    assert_null(e);
    assert_int_equal(
        pgcw_event_parse(PGCW_FORMAT_TABLE_CHANGE, "c", valid, strlen(valid), 0, NULL),
        PGCW_EINVAL);
}

static void test_received_now_and_latency(void **state)
{
    (void)state;
    int64_t before = pgcw__real_us();
    const pgcw_event *e = NULL;
    assert_int_equal(
        pgcw_event_parse(PGCW_FORMAT_TABLE_CHANGE, "c", valid, strlen(valid), 0, &e),
        PGCW_OK);
    int64_t after = pgcw__real_us();
    assert_true(e->received_at_us >= before && e->received_at_us <= after);
    assert_int_equal(e->latency_us, e->received_at_us - SENT_US);
    pgcw_event_free(e);
    /* Skew: received before sent gives a negative latency. */
    assert_int_equal(pgcw_event_parse(PGCW_FORMAT_TABLE_CHANGE, "c", valid, strlen(valid),
                                      SENT_US - 5, &e),
                     PGCW_OK);
    assert_int_equal(e->latency_us, -5);
    pgcw_event_free(e);
    /* Absurd clocks saturate instead of overflowing. */
    assert_int_equal(pgcw_event_parse(PGCW_FORMAT_TABLE_CHANGE, "c", valid, strlen(valid),
                                      INT64_MIN, &e),
                     PGCW_OK);
    assert_int_equal(e->latency_us, INT64_MIN);
    pgcw_event_free(e);
}

static void test_clone(void **state)
{
    (void)state;
    const pgcw_event *e = parse_ok("chan", valid);
    const pgcw_event *c = NULL;
    assert_int_equal(pgcw_event_clone(e, &c), PGCW_OK);
    pgtest_assert_same_event(e, c, true);
    pgcw_event_free(e); /* the clone owns its own memory */
    assert_string_equal(c->keys[1], "[2]");
    const pgcw_event *g = NULL, *gc = NULL;
    assert_int_equal(pgcw_event_new_gap(NULL, PGCW_GAP_OVERFLOW, 5, 9, &g), PGCW_OK);
    assert_int_equal(pgcw_event_clone(g, &gc), PGCW_OK);
    pgtest_assert_same_event(g, gc, true);
    pgcw_event_free(gc);
    assert_int_equal(pgcw_event_clone(NULL, &gc), PGCW_EINVAL);
    assert_null(gc);
    assert_int_equal(pgcw_event_clone(g, NULL), PGCW_EINVAL);
    pgcw_event_free(g);
    pgcw_event_free(c);
    pgcw_event_free(NULL);
}

static void test_gap(void **state)
{
    (void)state;
    int64_t before = pgcw__real_us();
    const pgcw_event *g = NULL;
    assert_int_equal(pgcw_event_new_gap("ch", PGCW_GAP_DISCONNECTED, 0, 3, &g), PGCW_OK);
    assert_int_equal(g->kind, PGCW_EVENT_GAP);
    assert_int_equal(g->operation, PGCW_OP_NONE);
    assert_string_equal(g->channel, "ch");
    assert_null(g->table);
    assert_null(g->schema);
    assert_null(g->payload);
    assert_int_equal(g->gap_reason, PGCW_GAP_DISCONNECTED);
    assert_int_equal(g->gap_lost, 0);
    assert_int_equal(g->epoch, 3);
    assert_true(g->received_at_us >= before);
    assert_int_equal(g->latency_us, 0);
    char *text = pgcw_event_to_text(g);
    assert_string_equal(text, "gap (disconnected) lost=0 epoch=3");
    pgcw_free(text);
    pgcw_event_free(g);
    assert_int_equal(pgcw_event_new_gap(NULL, PGCW_GAP_OVERFLOW, 17, 4, &g), PGCW_OK);
    assert_string_equal(g->channel, "");
    text = pgcw_event_to_text(g);
    assert_string_equal(text, "gap (overflow) lost=17 epoch=4");
    pgcw_free(text);
    pgcw_event_free(g);
    assert_int_equal(pgcw_event_new_gap(NULL, PGCW_GAP_OVERFLOW, 0, 0, NULL),
                     PGCW_EINVAL);
}

static void test_refcount(void **state)
{
    (void)state;
    const pgcw_event *e = parse_ok("c", valid);
    assert_int_equal(pgcw__event_refcount(e), 1);
    assert_ptr_equal(pgcw__event_ref(e), e);
    assert_ptr_equal(pgcw__event_ref(e), e);
    assert_int_equal(pgcw__event_refcount(e), 3);
    pgcw_event_free(e);
    pgcw_event_free(e);
    assert_int_equal(pgcw__event_refcount(e), 1);
    assert_string_equal(e->table, "t"); /* still alive (ASan would object) */
    pgcw_event_free(e);                 /* the last one frees (LSan would object) */
    assert_null(pgcw__event_ref(NULL));
    assert_int_equal(pgcw__event_refcount(NULL), 0);
}

#define THREADS 8
#define ROUNDS 2000

static void *reader(void *arg)
{
    const pgcw_event *e = arg;
    size_t sum = strlen(e->table) + strlen(e->keys[0]);
    pgcw_event_free(e);
    return (void *)(uintptr_t)sum;
}

/* One parse handed to many threads, each dropping its reference: exactly one of
 * them frees, none reads freed memory (run under TSan/ASan). */
static void test_refcount_threads(void **state)
{
    (void)state;
    for (int r = 0; r < ROUNDS / THREADS; r++) {
        const pgcw_event *e = parse_ok("c", valid);
        pthread_t th[THREADS];
        for (int i = 1; i < THREADS; i++)
            pgcw__event_ref(e);
        for (int i = 0; i < THREADS; i++)
            assert_int_equal(pthread_create(&th[i], NULL, reader, (void *)(uintptr_t)e),
                             0);
        for (int i = 0; i < THREADS; i++) {
            void *ret;
            pthread_join(th[i], &ret);
            assert_int_equal((uintptr_t)ret, 4);
        }
    }
}

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(pgcw_op_name(PGCW_OP_NONE), "none");
    assert_string_equal(pgcw_op_name(PGCW_OP_TRUNCATE), "truncate");
    assert_string_equal(pgcw_op_name((pgcw_op)99), "none");
    assert_string_equal(pgcw_gap_reason_name(PGCW_GAP_NONE), "none");
    assert_string_equal(pgcw_gap_reason_name(PGCW_GAP_OVERFLOW), "overflow");
    assert_string_equal(pgcw_gap_reason_name(PGCW_GAP_PRUNED), "pruned");
    assert_string_equal(pgcw_gap_reason_name((pgcw_gap_reason)-1), "none");
    pgcw_op op = PGCW_OP_NONE;
    assert_int_equal(pgcw_op_parse("tRuNcAtE", &op), PGCW_OK);
    assert_int_equal(op, PGCW_OP_TRUNCATE);
    assert_int_equal(pgcw_op_parse("none", &op), PGCW_EPARSE);
    assert_int_equal(pgcw_op_parse("inser", &op), PGCW_EPARSE);
    assert_int_equal(pgcw_op_parse("inserts", &op), PGCW_EPARSE);
    assert_int_equal(pgcw_op_parse(NULL, &op), PGCW_EPARSE);
    assert_int_equal(op, PGCW_OP_TRUNCATE);
}

static const char *member_string(json_object *o, const char *name)
{
    json_object *v;
    if (!json_object_object_get_ex(o, name, &v) ||
        !json_object_is_type(v, json_type_string))
        fail_msg("member %s missing or not a string", name);
    return json_object_get_string(v);
}

static json_object *member(json_object *o, const char *name)
{
    json_object *v = NULL;
    if (!json_object_object_get_ex(o, name, &v))
        fail_msg("member %s missing", name);
    return v;
}

static json_object *parse_back(const char *text)
{
    assert_non_null(text);
    assert_null(strchr(text, '\n'));
    json_tokener *tok = json_tokener_new();
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    json_object *o = json_tokener_parse_ex(tok, text, (int)strlen(text));
    assert_int_equal(json_tokener_get_error(tok), json_tokener_success);
    assert_int_equal(json_tokener_get_parse_end(tok), strlen(text));
    json_tokener_free(tok);
    assert_true(json_object_is_type(o, json_type_object));
    return o;
}

static void test_to_json_change(void **state)
{
    (void)state;
    const pgcw_event *e = parse_ok(
        "ch\"1", "{\"operation\":\"update\",\"schema\":\"public\",\"table\":"
                 "\"we\\\"ird\\n\\u00e9\","
                 "\"sent_at\":\"" SENT_TEXT "\",\"pk\":[\"id\",\"r\"],"
                 "\"keys\":[[1,\"a\\\"b\"],[18446744073709551615,\"\"]],\"part\":3}");
    char *text = pgcw_event_to_json(e);
    json_object *o = parse_back(text);
    assert_string_equal(member_string(o, "kind"), "change");
    assert_string_equal(member_string(o, "channel"), "ch\"1");
    assert_string_equal(member_string(o, "operation"), "update");
    assert_string_equal(member_string(o, "schema"), "public");
    assert_string_equal(member_string(o, "table"), "we\"ird\n\xc3\xa9");
    int64_t us;
    assert_int_equal(pgcw_time_parse(member_string(o, "sent_at"), &us), PGCW_OK);
    assert_int_equal(us, SENT_US);
    assert_int_equal(pgcw_time_parse(member_string(o, "received_at"), &us), PGCW_OK);
    assert_int_equal(us, RECV_US);
    assert_true(json_object_is_type(member(o, "latency_ms"), json_type_double));
    assert_true(strstr(text, "\"latency_ms\":1.234") != NULL);
    json_object *pk = member(o, "pk");
    assert_int_equal(json_object_array_length(pk), 2);
    assert_string_equal(json_object_get_string(json_object_array_get_idx(pk, 1)), "r");
    json_object *keys = member(o, "keys");
    assert_int_equal(json_object_array_length(keys), 2);
    for (size_t i = 0; i < 2; i++) {
        json_object *k = json_object_array_get_idx(keys, i);
        assert_true(json_object_is_type(k, json_type_array));
        assert_int_equal(json_object_array_length(k), 2);
    }
    /* Keys are embedded verbatim: the 64-bit value survives. */
    assert_true(strstr(text, "[18446744073709551615,\"\"]") != NULL);
    assert_int_equal(json_object_get_int(member(o, "part")), 3);
    assert_int_equal(json_object_get_int64(member(o, "epoch")), 0);
    json_object_object_get_ex(o, "gap_reason", NULL);
    assert_false(json_object_object_get_ex(o, "gap_reason", NULL));
    json_object_put(o);
    pgcw_free(text);

    text = pgcw_event_to_text(e);
    assert_string_equal(text,
                        "update public.we\"ird\\x0a\xc3\xa9 sent_at=2024-05-01T12:34:56."
                        "123456Z latency=1.234ms keys=[1,\"a\\\"b\"],"
                        "[18446744073709551615,\"\"] part=3");
    pgcw_free(text);
    pgcw_event_free(e);

    /* Python payload: schema null, no keys, pk or part members; negative latency. */
    const char *py =
        "{\"operation\":\"insert\",\"table\":\"orders\",\"sent_at\":\"" SENT_TEXT "\"}";
    assert_int_equal(pgcw_event_parse(PGCW_FORMAT_TABLE_CHANGE, NULL, py, strlen(py),
                                      SENT_US - 1500, &e),
                     PGCW_OK);
    text = pgcw_event_to_json(e);
    o = parse_back(text);
    assert_true(json_object_object_get_ex(o, "schema", NULL));
    assert_null(member(o, "schema"));
    assert_false(json_object_object_get_ex(o, "keys", NULL));
    assert_false(json_object_object_get_ex(o, "pk", NULL));
    assert_false(json_object_object_get_ex(o, "part", NULL));
    assert_true(strstr(text, "\"latency_ms\":-1.500") != NULL);
    json_object_put(o);
    pgcw_free(text);
    text = pgcw_event_to_text(e);
    assert_string_equal(
        text, "insert orders sent_at=2024-05-01T12:34:56.123456Z latency=-1.500ms");
    pgcw_free(text);
    pgcw_event_free(e);
}

static void test_to_json_gap(void **state)
{
    (void)state;
    const pgcw_event *g = NULL;
    assert_int_equal(pgcw_event_new_gap("c", PGCW_GAP_OVERFLOW, UINT64_MAX, 7, &g),
                     PGCW_OK);
    char *text = pgcw_event_to_json(g);
    json_object *o = parse_back(text);
    assert_string_equal(member_string(o, "kind"), "gap");
    assert_string_equal(member_string(o, "operation"), "none");
    assert_null(member(o, "table"));
    assert_string_equal(member_string(o, "gap_reason"), "overflow");
    assert_true(strstr(text, "\"gap_lost\":18446744073709551615") != NULL);
    assert_int_equal(json_object_get_int64(member(o, "epoch")), 7);
    json_object_put(o);
    pgcw_free(text);
    pgcw_event_free(g);
    assert_null(pgcw_event_to_json(NULL));
    assert_null(pgcw_event_to_text(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_python_trigger_payload),
        cmocka_unit_test(test_python_emit_event_payload),
        cmocka_unit_test(test_superset_payload),
        cmocka_unit_test(test_wide_integer_keys_degrade),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_lone_surrogate_escapes),
        cmocka_unit_test(test_truncated_and_nul),
        cmocka_unit_test(test_limits_and_arguments),
        cmocka_unit_test(test_received_now_and_latency),
        cmocka_unit_test(test_clone),
        cmocka_unit_test(test_gap),
        cmocka_unit_test(test_refcount),
        cmocka_unit_test(test_refcount_threads),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_to_json_change),
        cmocka_unit_test(test_to_json_gap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
