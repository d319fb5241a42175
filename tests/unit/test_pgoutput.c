/*
 * test_pgoutput.c - the pgoutput decoder on hand-built protocol messages: each
 * operation with its keys (integer, composite, escaped text, numeric, null,
 * unknown), updates with and without the old key, truncates of several tables,
 * relations described again, the commit's LSN and time, skipped messages, and
 * every malformed shape refused with a reason: every prefix of every valid
 * message, changes outside a transaction, undescribed relations, wrong counts.
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

#include <pgcachewatch/pgcachewatch.h>

#include "pgcw_testhook.h"

#define RECV_US INT64_C(1714566896123456)
#define COMMIT_PG_US INT64_C(767881696000000) /* 2024-05-01 12:28:16 UTC */
#define COMMIT_LSN UINT64_C(0x16B3748)
#define END_LSN UINT64_C(0x16B3778)

/* A message under construction. */
typedef struct msg {
    unsigned char b[4096];
    size_t n;
} msg;

static void put(msg *m, uint64_t v, size_t bytes)
{
    assert_true(m->n + bytes <= sizeof m->b);
    for (size_t i = 0; i < bytes; i++)
        m->b[m->n++] = (unsigned char)(v >> (8 * (bytes - 1 - i)));
}

static void put_str(msg *m, const char *s)
{
    size_t len = strlen(s) + 1;
    assert_true(m->n + len <= sizeof m->b);
    memcpy(m->b + m->n, s, len);
    m->n += len;
}

static void put_text(msg *m, const char *s, size_t len)
{
    put(m, 't', 1);
    put(m, len, 4);
    assert_true(m->n + len <= sizeof m->b);
    memcpy(m->b + m->n, s, len);
    m->n += len;
}

static msg begin_msg(void)
{
    msg m = {.n = 0};
    put(&m, 'B', 1);
    put(&m, COMMIT_LSN, 8);
    put(&m, (uint64_t)COMMIT_PG_US, 8);
    put(&m, 731, 4);
    return m;
}

static msg commit_msg(uint64_t lsn)
{
    msg m = {.n = 0};
    put(&m, 'C', 1);
    put(&m, 0, 1);
    put(&m, lsn, 8);
    put(&m, END_LSN, 8);
    put(&m, (uint64_t)COMMIT_PG_US, 8);
    return m;
}

typedef struct col {
    const char *name;
    uint32_t type;
    bool key;
} col;

static msg relation_msg(uint32_t relid, const char *nsp, const char *name,
                        const col *cols, size_t n)
{
    msg m = {.n = 0};
    put(&m, 'R', 1);
    put(&m, relid, 4);
    put_str(&m, nsp);
    put_str(&m, name);
    put(&m, 'd', 1);
    put(&m, n, 2);
    for (size_t i = 0; i < n; i++) {
        put(&m, cols[i].key ? 1 : 0, 1);
        put_str(&m, cols[i].name);
        put(&m, cols[i].type, 4);
        put(&m, UINT32_MAX, 4); /* typmod -1 */
    }
    return m;
}

/* A tuple from a spec string per column: "n" null, "u" unchanged, else text. */
static void put_tuple(msg *m, const char *const *vals, size_t n)
{
    put(m, n, 2);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(vals[i], "\1n") == 0)
            put(m, 'n', 1);
        else if (strcmp(vals[i], "\1u") == 0)
            put(m, 'u', 1);
        else
            put_text(m, vals[i], strlen(vals[i]));
    }
}

#define NUL "\1n"
#define UNCHANGED "\1u"

static msg insert_msg(uint32_t relid, const char *const *vals, size_t n)
{
    msg m = {.n = 0};
    put(&m, 'I', 1);
    put(&m, relid, 4);
    put(&m, 'N', 1);
    put_tuple(&m, vals, n);
    return m;
}

static pgcw__pgoutput *decoder(void)
{
    pgcw__pgoutput *d = NULL;
    assert_int_equal(pgcw__pgoutput_new("logical_ch", &d), PGCW_OK);
    return d;
}

static pgcw__pgoutput_info feed_ok(pgcw__pgoutput *d, const msg *m)
{
    pgcw__pgoutput_info info;
    char why[256] = "untouched";
    pgcw_status st = pgcw__pgoutput_feed(d, m->b, m->n, RECV_US, &info, why, sizeof why);
    if (st != PGCW_OK)
        fail_msg("message '%c': %s (%s)", m->b[0], pgcw_status_name(st), why);
    assert_string_equal(why, "");
    return info;
}

static void feed_bad(pgcw__pgoutput *d, const void *b, size_t n, const char *why_part)
{
    char why[256] = "";
    pgcw_status st = pgcw__pgoutput_feed(d, b, n, RECV_US, NULL, why, sizeof why);
    if (st != PGCW_EPARSE)
        fail_msg("%zu bytes: %s, expected EPARSE", n, pgcw_status_name(st));
    if (!why[0] || strchr(why, '\n'))
        fail_msg("no one-line reason: [%s]", why);
    if (why_part && !strstr(why, why_part))
        fail_msg("reason [%s] lacks [%s]", why, why_part);
}

static const col items_cols[] = {{"id", 23, true}, {"name", 25, false}};

static pgcw__pgoutput *with_items(void)
{
    pgcw__pgoutput *d = decoder();
    msg b = begin_msg();
    pgcw__pgoutput_info info = feed_ok(d, &b);
    assert_int_equal(info.kind, PGCW__PGO_BEGIN);
    assert_int_equal(info.commit_lsn, COMMIT_LSN);
    msg r = relation_msg(16384, "public", "items", items_cols, 2);
    info = feed_ok(d, &r);
    assert_int_equal(info.kind, PGCW__PGO_RELATION);
    return d;
}

static pgcw_event *take_one(pgcw__pgoutput *d)
{
    pgcw_event *e[2] = {NULL, NULL};
    assert_int_equal(pgcw__pgoutput_take(d, e, 2), 1);
    return e[0];
}

static void expect_change(const pgcw_event *e, pgcw_op op, const char *schema,
                          const char *table)
{
    assert_int_equal(e->kind, PGCW_EVENT_CHANGE);
    assert_int_equal(e->operation, op);
    assert_string_equal(e->schema, schema);
    assert_string_equal(e->table, table);
    assert_string_equal(e->channel, "logical_ch");
    assert_int_equal(e->source, PGCW_SOURCE_LOGICAL);
    assert_int_equal(e->lsn, COMMIT_LSN);
    assert_int_equal(e->xid, 731); /* begin_msg()'s */
    assert_int_equal(e->sent_at_us, COMMIT_PG_US + PGCW__PG_EPOCH_US);
    assert_int_equal(e->received_at_us, RECV_US);
    assert_int_equal(e->latency_us, RECV_US - (COMMIT_PG_US + PGCW__PG_EPOCH_US));
    assert_null(e->payload);
}

static void test_insert_commit(void **state)
{
    (void)state;
    pgcw__pgoutput *d = with_items();
    assert_true(pgcw__pgoutput_in_transaction(d));
    msg ins = insert_msg(16384, (const char *const[]){"42", "widget"}, 2);
    pgcw__pgoutput_info info = feed_ok(d, &ins);
    assert_int_equal(info.kind, PGCW__PGO_CHANGE);
    assert_int_equal(pgcw__pgoutput_pending(d), 1);

    msg c = commit_msg(COMMIT_LSN);
    info = feed_ok(d, &c);
    assert_int_equal(info.kind, PGCW__PGO_COMMIT);
    assert_int_equal(info.commit_lsn, COMMIT_LSN);
    assert_int_equal(info.end_lsn, END_LSN);
    assert_int_equal(info.commit_time_us, COMMIT_PG_US + PGCW__PG_EPOCH_US);
    assert_false(pgcw__pgoutput_in_transaction(d));

    pgcw_event *e = take_one(d);
    expect_change(e, PGCW_OP_INSERT, "public", "items");
    assert_int_equal(e->n_pk_columns, 1);
    assert_string_equal(e->pk_columns[0], "id");
    assert_int_equal(e->n_keys, 1);
    assert_string_equal(e->keys[0], "[42]");
    assert_int_equal(pgcw__pgoutput_pending(d), 0);
    /* The event is the library's kind: it formats and clones like any other. */
    char *json = pgcw_event_to_json(e);
    assert_non_null(json);
    assert_non_null(strstr(json, "\"keys\":[[42]]"));
    pgcw_free(json);
    pgcw_event_free(e);
    pgcw__pgoutput_free(d);
}

/* Composite keys in column order; every value kind and escape. */
static void test_key_values(void **state)
{
    (void)state;
    static const col cols[] = {{"region", 25, true},
                               {"n", 20, true},
                               {"amount", 1700, true},
                               {"flag", 16, true},
                               {"note", 25, false}};
    static const struct {
        const char *vals[5];
        const char *key; /* NULL: no key */
    } cases[] = {
        {{"eu", "7", "1.50", "t", "x"}, "[\"eu\",7,1.50,\"t\"]"},
        {{"a\"b\\c", "-9223372036854775808", "NaN", "f", NUL},
         "[\"a\\\"b\\\\c\",-9223372036854775808,\"NaN\",\"f\"]"},
        {{"\n\r\t\b\f\x01\x1f", "0", "-Infinity", "t", "y"},
         "[\"\\n\\r\\t\\b\\f\\u0001\\u001f\",0,\"-Infinity\",\"t\"]"},
        {{"caf\xc3\xa9 \xe2\x82\xac", "12", "1e5", NUL, "z"},
         "[\"caf\xc3\xa9 \xe2\x82\xac\",12,1e5,null]"},
        /* An integer type whose text is not a number is still a string. */
        {{"x", "007", "1.", "t", "z"}, "[\"x\",\"007\",\"1.\",\"t\"]"},
        /* Not UTF-8, or not sent: the key is unknown, the change still counts. */
        {{"caf\xe9", "1", "1", "t", "z"}, NULL},
        {{"x", "1", UNCHANGED, "t", "z"}, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        pgcw__pgoutput *d = decoder();
        msg b = begin_msg();
        feed_ok(d, &b);
        msg r = relation_msg(77, "sales", "Order Items", cols, 5);
        feed_ok(d, &r);
        msg ins = insert_msg(77, cases[i].vals, 5);
        feed_ok(d, &ins);
        pgcw_event *e = take_one(d);
        expect_change(e, PGCW_OP_INSERT, "sales", "Order Items");
        assert_int_equal(e->n_pk_columns, 4);
        assert_string_equal(e->pk_columns[0], "region");
        assert_string_equal(e->pk_columns[3], "flag");
        if (cases[i].key) {
            assert_int_equal(e->n_keys, 1);
            if (strcmp(e->keys[0], cases[i].key) != 0)
                fail_msg("case %zu: %s, expected %s", i, e->keys[0], cases[i].key);
            assert_true(pgcw__utf8_valid(e->keys[0], strlen(e->keys[0])));
        } else {
            assert_int_equal(e->n_keys, 0);
        }
        pgcw_event_free(e);
        pgcw__pgoutput_free(d);
    }
}

static void row_change(pgcw__pgoutput *d, char type, char old_tag,
                       const char *const *old_vals, const char *const *new_vals)
{
    msg m = {.n = 0};
    put(&m, (unsigned char)type, 1);
    put(&m, 16384, 4);
    if (old_tag) {
        put(&m, (unsigned char)old_tag, 1);
        put_tuple(&m, old_vals, 2);
    }
    if (new_vals) {
        put(&m, 'N', 1);
        put_tuple(&m, new_vals, 2);
    }
    feed_ok(d, &m);
}

static void expect_keys(pgcw_event *e, pgcw_op op, size_t n, const char *k0,
                        const char *k1)
{
    expect_change(e, op, "public", "items");
    assert_int_equal(e->n_keys, n);
    if (n > 0)
        assert_string_equal(e->keys[0], k0);
    if (n > 1)
        assert_string_equal(e->keys[1], k1);
    pgcw_event_free(e);
}

static void test_update_delete(void **state)
{
    (void)state;
    pgcw__pgoutput *d = with_items();
    /* Key unchanged: no old tuple, the new key. */
    row_change(d, 'U', 0, NULL, (const char *const[]){"42", "renamed"});
    /* Key changed: 'K' carries the old key (non-key columns null), then the new. */
    row_change(d, 'U', 'K', (const char *const[]){"42", NUL},
               (const char *const[]){"43", "renamed"});
    /* REPLICA IDENTITY FULL: 'O' carries the whole old row. */
    row_change(d, 'U', 'O', (const char *const[]){"43", "renamed"},
               (const char *const[]){"43", "again"});
    row_change(d, 'D', 'K', (const char *const[]){"43", NUL}, NULL);
    row_change(d, 'D', 'O', (const char *const[]){"44", "gone"}, NULL);
    pgcw_event *e[8];
    assert_int_equal(pgcw__pgoutput_take(d, e, 8), 5);
    expect_keys(e[0], PGCW_OP_UPDATE, 1, "[42]", NULL);
    expect_keys(e[1], PGCW_OP_UPDATE, 2, "[42]", "[43]");
    expect_keys(e[2], PGCW_OP_UPDATE, 1, "[43]", NULL);
    expect_keys(e[3], PGCW_OP_DELETE, 1, "[43]", NULL);
    expect_keys(e[4], PGCW_OP_DELETE, 1, "[44]", NULL);
    pgcw__pgoutput_free(d);
}

static void test_truncate_and_no_key(void **state)
{
    (void)state;
    pgcw__pgoutput *d = with_items();
    static const col log_cols[] = {{"line", 25, false}};
    msg r = relation_msg(20000, "", "log", log_cols, 1);
    feed_ok(d, &r);
    msg ins = insert_msg(20000, (const char *const[]){"hello"}, 1);
    feed_ok(d, &ins);
    pgcw_event *e = take_one(d);
    /* No replica identity columns: no keys, "something in the table changed". An
     * empty namespace is pg_catalog. */
    assert_string_equal(e->schema, "pg_catalog");
    assert_int_equal(e->n_pk_columns, 0);
    assert_int_equal(e->n_keys, 0);
    pgcw_event_free(e);

    msg t = {.n = 0};
    put(&t, 'T', 1);
    put(&t, 2, 4);
    put(&t, 1, 1); /* CASCADE */
    put(&t, 16384, 4);
    put(&t, 20000, 4);
    feed_ok(d, &t);
    pgcw_event *ev[4];
    assert_int_equal(pgcw__pgoutput_take(d, ev, 4), 2);
    expect_change(ev[0], PGCW_OP_TRUNCATE, "public", "items");
    assert_int_equal(ev[0]->n_keys, 0);
    assert_string_equal(ev[1]->table, "log");
    assert_int_equal(ev[1]->operation, PGCW_OP_TRUNCATE);
    pgcw_event_free(ev[0]);
    pgcw_event_free(ev[1]);

    /* A truncate naming one unknown relation queues nothing at all. */
    msg t2 = {.n = 0};
    put(&t2, 'T', 1);
    put(&t2, 2, 4);
    put(&t2, 0, 1);
    put(&t2, 16384, 4);
    put(&t2, 999, 4);
    feed_bad(d, t2.b, t2.n, "999");
    assert_int_equal(pgcw__pgoutput_pending(d), 0);
    pgcw__pgoutput_free(d);
}

/* A relation described again (ALTER TABLE) replaces the old description. */
static void test_relation_redescribed(void **state)
{
    (void)state;
    pgcw__pgoutput *d = with_items();
    static const col cols[] = {{"tenant", 23, true}, {"id", 23, true}, {"x", 25, false}};
    msg r = relation_msg(16384, "public", "items2", cols, 3);
    feed_ok(d, &r);
    msg ins = insert_msg(16384, (const char *const[]){"3", "42", "x"}, 3);
    feed_ok(d, &ins);
    pgcw_event *e = take_one(d);
    assert_string_equal(e->table, "items2");
    assert_int_equal(e->n_pk_columns, 2);
    assert_string_equal(e->keys[0], "[3,42]");
    pgcw_event_free(e);
    /* The old two-column tuple no longer fits it. */
    msg old = insert_msg(16384, (const char *const[]){"42", "x"}, 2);
    feed_bad(d, old.b, old.n, "columns");
    pgcw__pgoutput_free(d);
}

static void test_skipped_and_reset(void **state)
{
    (void)state;
    pgcw__pgoutput *d = with_items();
    msg y = {.n = 0};
    put(&y, 'Y', 1);
    put(&y, 50000, 4);
    put_str(&y, "public");
    put_str(&y, "mood");
    assert_int_equal(feed_ok(d, &y).kind, PGCW__PGO_SKIPPED);
    msg o = {.n = 0};
    put(&o, 'O', 1);
    put(&o, 0x1000, 8);
    put_str(&o, "node_a");
    assert_int_equal(feed_ok(d, &o).kind, PGCW__PGO_SKIPPED);
    msg m = {.n = 0};
    put(&m, 'M', 1);
    put(&m, 1, 1);
    assert_int_equal(feed_ok(d, &m).kind, PGCW__PGO_SKIPPED);
    assert_int_equal(pgcw__pgoutput_pending(d), 0);

    msg ins = insert_msg(16384, (const char *const[]){"1", "x"}, 2);
    feed_ok(d, &ins);
    /* A new session: relations, the transaction and queued events are gone. */
    pgcw__pgoutput_reset(d);
    assert_int_equal(pgcw__pgoutput_pending(d), 0);
    assert_false(pgcw__pgoutput_in_transaction(d));
    msg b = begin_msg();
    feed_ok(d, &b);
    feed_bad(d, ins.b, ins.n, "never described");
    pgcw__pgoutput_free(d);
}

/* Every proper prefix of each valid message is refused, never over-read (ASan
 * sees the exact-size copies), and so is each message with a byte more. */
static void test_every_prefix(void **state)
{
    (void)state;
    msg ins = insert_msg(16384, (const char *const[]){"42", "widget"}, 2);
    msg upd = {.n = 0};
    put(&upd, 'U', 1);
    put(&upd, 16384, 4);
    put(&upd, 'K', 1);
    put_tuple(&upd, (const char *const[]){"42", NUL}, 2);
    put(&upd, 'N', 1);
    put_tuple(&upd, (const char *const[]){"43", "w"}, 2);
    msg del = {.n = 0};
    put(&del, 'D', 1);
    put(&del, 16384, 4);
    put(&del, 'K', 1);
    put_tuple(&del, (const char *const[]){"42", NUL}, 2);
    msg tr = {.n = 0};
    put(&tr, 'T', 1);
    put(&tr, 1, 4);
    put(&tr, 0, 1);
    put(&tr, 16384, 4);
    msg y = {.n = 0};
    put(&y, 'Y', 1);
    put(&y, 50000, 4);
    put_str(&y, "public");
    put_str(&y, "mood");
    msg rel = relation_msg(16384, "public", "items", items_cols, 2);
    msg b = begin_msg(), c = commit_msg(COMMIT_LSN);
    const msg *all[] = {&b, &rel, &ins, &upd, &del, &tr, &y, &c};
    for (size_t k = 0; k < sizeof all / sizeof all[0]; k++) {
        for (size_t len = 0; len <= all[k]->n; len++) {
            pgcw__pgoutput *d = with_items();
            if (all[k] == &b) { /* a Begin needs no open transaction */
                msg cc = commit_msg(COMMIT_LSN);
                feed_ok(d, &cc);
            }
            unsigned char *copy = malloc(len ? len : 1);
            assert_non_null(copy);
            memcpy(copy, all[k]->b, len);
            if (len < all[k]->n) {
                feed_bad(d, copy, len, NULL);
            } else {
                pgcw__pgoutput_info info;
                assert_int_equal(
                    pgcw__pgoutput_feed(d, copy, len, RECV_US, &info, NULL, 0), PGCW_OK);
                /* One trailing byte is refused by the messages that must end
                 * there. */
                if (all[k] == &rel || all[k] == &ins || all[k] == &upd ||
                    all[k] == &del || all[k] == &tr) {
                    unsigned char *more = malloc(len + 1);
                    assert_non_null(more);
                    memcpy(more, copy, len);
                    more[len] = 'N';
                    pgcw__pgoutput_reset(d);
                    msg bb = begin_msg();
                    feed_ok(d, &bb);
                    if (all[k] != &rel)
                        feed_ok(d, &rel);
                    feed_bad(d, more, len + 1, NULL);
                    free(more);
                }
            }
            free(copy);
            pgcw__pgoutput_free(d);
        }
    }
}

static void test_protocol_errors(void **state)
{
    (void)state;
    pgcw__pgoutput *d = decoder();
    msg rel = relation_msg(16384, "public", "items", items_cols, 2);
    feed_ok(d, &rel); /* relations may be described outside a transaction */
    msg ins = insert_msg(16384, (const char *const[]){"1", "x"}, 2);
    feed_bad(d, ins.b, ins.n, "outside a transaction");
    msg c = commit_msg(COMMIT_LSN);
    feed_bad(d, c.b, c.n, "outside a transaction");
    feed_bad(d, NULL, 0, "empty");
    feed_bad(d, "Z", 1, "unknown message type");
    msg b = begin_msg();
    feed_ok(d, &b);
    feed_bad(d, b.b, b.n, "inside a transaction");
    msg wrong = commit_msg(COMMIT_LSN + 1);
    feed_bad(d, wrong.b, wrong.n, "Begin said");

    /* A column kind we never ask for (binary), an insert's old tuple, a length
     * past the end, too many columns, a name that is not UTF-8. */
    msg bin = {.n = 0};
    put(&bin, 'I', 1);
    put(&bin, 16384, 4);
    put(&bin, 'N', 1);
    put(&bin, 2, 2);
    put(&bin, 'b', 1);
    put(&bin, 1, 4);
    put(&bin, 1, 1);
    put(&bin, 'n', 1);
    feed_bad(d, bin.b, bin.n, "kind");
    msg ik = {.n = 0};
    put(&ik, 'I', 1);
    put(&ik, 16384, 4);
    put(&ik, 'K', 1);
    put_tuple(&ik, (const char *const[]){"1", NUL}, 2);
    feed_bad(d, ik.b, ik.n, "tuple tag");
    msg big = {.n = 0};
    put(&big, 'I', 1);
    put(&big, 16384, 4);
    put(&big, 'N', 1);
    put(&big, 2, 2);
    put(&big, 't', 1);
    put(&big, UINT32_MAX, 4);
    put(&big, '1', 1);
    feed_bad(d, big.b, big.n, "does not fit");
    msg wide = {.n = 0};
    put(&wide, 'R', 1);
    put(&wide, 5, 4);
    put_str(&wide, "public");
    put_str(&wide, "wide");
    put(&wide, 'd', 1);
    put(&wide, PGCW__PGOUTPUT_MAX_COLUMNS + 1, 2);
    feed_bad(d, wide.b, wide.n, "columns");
    msg latin = relation_msg(6, "public", "caf\xe9", items_cols, 2);
    feed_bad(d, latin.b, latin.n, "UTF-8");
    msg noname = relation_msg(6, "public", "", items_cols, 2);
    feed_bad(d, noname.b, noname.n, "empty");
    /* A truncate whose count does not match its bytes. */
    msg tr = {.n = 0};
    put(&tr, 'T', 1);
    put(&tr, UINT32_MAX, 4);
    put(&tr, 0, 1);
    put(&tr, 16384, 4);
    feed_bad(d, tr.b, tr.n, "truncate of");
    assert_int_equal(pgcw__pgoutput_pending(d), 0);
    pgcw__pgoutput_free(d);
}

/* Many relations: each found by its id; the cache refuses more than its bound
 * without growing. */
static void test_many_relations(void **state)
{
    (void)state;
    pgcw__pgoutput *d = decoder();
    for (uint32_t i = 1; i <= 300; i++) {
        char name[32];
        snprintf(name, sizeof name, "t%u", i);
        msg r = relation_msg(i, "public", name, items_cols, 2);
        feed_ok(d, &r);
    }
    msg b = begin_msg();
    feed_ok(d, &b);
    for (uint32_t i = 300; i >= 1; i -= 37) {
        char id[16];
        snprintf(id, sizeof id, "%u", i * 10);
        msg ins = insert_msg(i, (const char *const[]){id, "x"}, 2);
        feed_ok(d, &ins);
        pgcw_event *e = take_one(d);
        char want_table[32], want_key[32];
        snprintf(want_table, sizeof want_table, "t%u", i);
        snprintf(want_key, sizeof want_key, "[%u]", i * 10);
        assert_string_equal(e->table, want_table);
        assert_string_equal(e->keys[0], want_key);
        pgcw_event_free(e);
        if (i < 37)
            break;
    }
    pgcw__pgoutput_free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_insert_commit),
        cmocka_unit_test(test_key_values),
        cmocka_unit_test(test_update_delete),
        cmocka_unit_test(test_truncate_and_no_key),
        cmocka_unit_test(test_relation_redescribed),
        cmocka_unit_test(test_skipped_and_reset),
        cmocka_unit_test(test_every_prefix),
        cmocka_unit_test(test_protocol_errors),
        cmocka_unit_test(test_many_relations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
