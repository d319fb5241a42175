/*
 * test_install.c - install/uninstall against a real PostgreSQL: the payloads the
 * triggers send (read with a raw libpq LISTEN, not the watcher), quoted and hostile
 * names, errors rolled back, primary keys split under the payload limit, and an
 * uninstall that leaves no trace.
 *
 * "Nothing else arrived" is never checked by sleeping: the writer sends a marker
 * notification after the statement under test, and delivery is in commit order,
 * so everything the statement sent has arrived once the marker has.
 */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>
#include <libpq-fe.h>

#include <pgcachewatch/pgcachewatch.h>

#include "pgtest.h"
#include "pgcw_testhook.h"

/* --- reading notifications ----------------------------------------------------- */

typedef struct note {
    char *channel;
    char *payload;
} note;

typedef struct notes {
    note *items;
    size_t n;
} notes;

static void notes_free(notes *ns)
{
    for (size_t i = 0; i < ns->n; i++) {
        free(ns->items[i].channel);
        free(ns->items[i].payload);
    }
    free(ns->items);
    *ns = (notes){0};
}

static void do_listen(PGconn *listener, const char *channel)
{
    char *q = pgcw_quote_ident(channel);
    char sql[256];
    snprintf(sql, sizeof sql, "LISTEN %s", q);
    pgcw_free(q);
    pgtest_exec(listener, sql);
}

/* Everything listener receives until the marker the writer sends on `channel`
 * after the statements under test. */
static notes collect(PGconn *listener, PGconn *writer, const char *channel)
{
    static int seq;
    char marker[64];
    snprintf(marker, sizeof marker, "pgcw-test-marker-%d", ++seq);
    const char *params[2] = {channel, marker};
    PGresult *r =
        PQexecParams(writer, "SELECT pg_notify($1, $2)", 2, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        fail_msg("marker: %s", PQresultErrorMessage(r));
    PQclear(r);

    notes ns = {0};
    int64_t deadline = pgtest_now_ms() + 30000;
    for (;;) {
        if (!PQconsumeInput(listener))
            fail_msg("listener: %s", PQerrorMessage(listener));
        PGnotify *n;
        while ((n = PQnotifies(listener)) != NULL) {
            bool done = strcmp(n->relname, channel) == 0 && strcmp(n->extra, marker) == 0;
            if (!done) {
                ns.items = realloc(ns.items, (ns.n + 1) * sizeof *ns.items);
                assert_non_null(ns.items);
                ns.items[ns.n].channel = strdup(n->relname);
                ns.items[ns.n].payload = strdup(n->extra);
                ns.n++;
            }
            PQfreemem(n);
            if (done)
                return ns;
        }
        int64_t left = deadline - pgtest_now_ms();
        if (left <= 0)
            fail_msg("marker %s never arrived", marker);
        struct pollfd pfd = {.fd = PQsocket(listener), .events = POLLIN};
        poll(&pfd, 1, (int)left);
    }
}

static json_object *parse(const char *payload)
{
    json_object *o = json_tokener_parse(payload);
    if (!o || !json_object_is_type(o, json_type_object))
        fail_msg("payload is not a JSON object: %.200s", payload);
    return o;
}

static const char *member_str(json_object *o, const char *key)
{
    json_object *v;
    if (!json_object_object_get_ex(o, key, &v) ||
        !json_object_is_type(v, json_type_string))
        fail_msg("payload has no string \"%s\": %.300s", key,
                 json_object_to_json_string(o));
    return json_object_get_string(v);
}

/* Checks the members every payload has (the Python ones plus schema), and that
 * sent_at is a timestamp the server agrees is recent. */
static void check_common(PGconn *conn, json_object *o, const char *op, const char *schema,
                         const char *table)
{
    assert_string_equal(member_str(o, "operation"), op);
    assert_string_equal(member_str(o, "table"), table);
    assert_string_equal(member_str(o, "schema"), schema);
    const char *sent_at = member_str(o, "sent_at");
    const char *params[1] = {sent_at};
    PGresult *r = PQexecParams(conn,
                               "SELECT abs(extract(epoch FROM now() - $1::timestamptz)) "
                               "< 300",
                               1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        fail_msg("sent_at %s: %s", sent_at, PQresultErrorMessage(r));
    assert_string_equal(PQgetvalue(r, 0, 0), "t");
    PQclear(r);
}

static bool has_member(json_object *o, const char *key)
{
    return json_object_object_get_ex(o, key, NULL);
}

/* --- fixtures ------------------------------------------------------------------ */

typedef struct fixture {
    PGconn *writer;
    PGconn *listener;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    f->writer = pgtest_connect();
    f->listener = pgtest_connect();
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    PQfinish(f->writer);
    PQfinish(f->listener);
    free(f);
    return 0;
}

/* A handle with a copy of o (the tests change their options between calls). */
static pgcw_install *handle(const pgcw_install_opts *o)
{
    pgcw_install *in = NULL;
    pgcw_status st = pgcw_install_new(o, &in);
    if (st != PGCW_OK)
        fail_msg("install_new: %s", pgcw_status_name(st));
    return in;
}

static void install_ok(PGconn *conn, const pgcw_install_opts *o,
                       const char *const *tables, size_t n)
{
    pgcw_install *in = handle(o);
    pgcw_status st = pgcw_install_run(in, conn, tables, n, NULL);
    if (st != PGCW_OK)
        fail_msg("install: %s: %s", pgcw_status_name(st), pgcw_install_errmsg(in));
    pgcw_install_free(in);
    assert_int_equal(PQtransactionStatus(conn), PQTRANS_IDLE);
}

static void uninstall_ok(PGconn *conn, const pgcw_install_opts *o)
{
    pgcw_install *in = handle(o);
    pgcw_status st = pgcw_uninstall_run(in, conn, NULL);
    if (st != PGCW_OK)
        fail_msg("uninstall: %s: %s", pgcw_status_name(st), pgcw_install_errmsg(in));
    pgcw_install_free(in);
    assert_int_equal(PQtransactionStatus(conn), PQTRANS_IDLE);
}

/* Every trigger and function in the database, as one comparable string. */
static char *catalog_snapshot(PGconn *conn)
{
    return pgtest_query_value(
        conn, "SELECT coalesce((SELECT string_agg(format('%s %s %s', t.oid, t.tgname, "
              "t.tgrelid::regclass), ', ' ORDER BY t.oid) FROM pg_trigger t), '') "
              "|| ' / ' || coalesce((SELECT string_agg(format('%s %s', p.oid, "
              "p.oid::regprocedure), ', ' ORDER BY p.oid) FROM pg_proc p "
              "WHERE p.pronamespace NOT IN ('pg_catalog'::regnamespace, "
              "'information_schema'::regnamespace)), '')");
}

static long long count_functions_like(PGconn *conn, const char *pattern)
{
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM pg_proc WHERE proname LIKE '%s'",
             pattern);
    return pgtest_query_int(conn, sql);
}

/* --- table-level payloads ------------------------------------------------------ */

static void test_table_level_payloads(void **state)
{
    fixture *f = *state;
    pgtest_exec(f->writer, "CREATE TABLE tl (id int PRIMARY KEY, v text)");
    const char *tables[] = {"tl"};
    install_ok(f->writer, NULL, tables, 1);
    do_listen(f->listener, PGCW_DEFAULT_CHANNEL);

    const char *stmts[] = {"INSERT INTO tl SELECT g, 'a' FROM generate_series(1, 3) g",
                           "UPDATE tl SET v = 'b'", "DELETE FROM tl WHERE id = 1",
                           "TRUNCATE tl"};
    const char *ops[] = {"insert", "update", "delete", "truncate"};
    for (int i = 0; i < 4; i++) {
        pgtest_exec(f->writer, stmts[i]);
        notes ns = collect(f->listener, f->writer, PGCW_DEFAULT_CHANNEL);
        /* Statement-level: one payload for three rows. */
        assert_int_equal(ns.n, 1);
        assert_string_equal(ns.items[0].channel, PGCW_DEFAULT_CHANNEL);
        json_object *o = parse(ns.items[0].payload);
        check_common(f->writer, o, ops[i], "public", "tl");
        assert_false(has_member(o, "keys"));
        assert_false(has_member(o, "pk"));
        json_object_put(o);
        notes_free(&ns);
    }
    pgtest_exec(f->listener, "UNLISTEN *");
    uninstall_ok(f->writer, NULL);
}

/* --- names --------------------------------------------------------------------- */

static void test_quoted_and_qualified_names(void **state)
{
    fixture *f = *state;
    pgtest_exec(f->writer,
                "CREATE SCHEMA sales; CREATE SCHEMA Mixed;"
                "CREATE TABLE sales.orders (id int PRIMARY KEY);"
                "CREATE TABLE \"Order Items\" (id int PRIMARY KEY);"
                "CREATE TABLE Mixed.\"Case\" (id int PRIMARY KEY);"
                "CREATE TABLE \"Upper\" (id int PRIMARY KEY);"
                "CREATE TABLE \"x\"\"; DROP TABLE y; --\" (id int PRIMARY KEY);"
                "CREATE TABLE y (id int)");
    /* Mixed."Case": the unquoted schema folds to mixed, the quoted name does not. */
    const char *tables[] = {"sales.orders", "\"Order Items\"", "Mixed.\"Case\"",
                            "\"x\"\"; DROP TABLE y; --\""};
    const char *schemas[] = {"sales", "public", "mixed", "public"};
    const char *names[] = {"orders", "Order Items", "Case", "x\"; DROP TABLE y; --"};
    const char *inserts[] = {"INSERT INTO sales.orders VALUES (1)",
                             "INSERT INTO \"Order Items\" VALUES (1)",
                             "INSERT INTO mixed.\"Case\" VALUES (1)",
                             "INSERT INTO \"x\"\"; DROP TABLE y; --\" VALUES (1)"};
    for (int keys = 0; keys < 2; keys++) {
        pgcw_install_opts o = {.channel = "names", .with_keys = keys};
        install_ok(f->writer, &o, tables, 4);
        assert_int_equal(pgtest_query_int(f->writer, "SELECT count(*) FROM y"), 0);
        do_listen(f->listener, "names");
        for (int i = 0; i < 4; i++) {
            pgtest_exec(f->writer, inserts[i]);
            notes ns = collect(f->listener, f->writer, "names");
            assert_int_equal(ns.n, 1);
            json_object *o2 = parse(ns.items[0].payload);
            check_common(f->writer, o2, "insert", schemas[i], names[i]);
            assert_int_equal(has_member(o2, "keys"), keys);
            json_object_put(o2);
            notes_free(&ns);
            pgtest_exec(f->writer, "TRUNCATE sales.orders, \"Order Items\", "
                                   "mixed.\"Case\", \"x\"\"; DROP TABLE y; --\"");
            ns = collect(f->listener, f->writer, "names");
            assert_int_equal(ns.n, 4);
            notes_free(&ns);
        }
        /* The hostile table got its trigger under that literal name. */
        assert_int_equal(
            pgtest_query_int(f->writer,
                             "SELECT count(*) FROM pg_trigger WHERE tgname = "
                             "'tg_pgcachewatch_table_change_names' AND tgrelid = "
                             "'\"x\"\"; DROP TABLE y; --\"'::regclass"),
            1);
    }
    pgtest_exec(f->listener, "UNLISTEN *");

    /* Unquoted Upper folds to upper, which does not exist: PostgreSQL says so. */
    pgcw_install_opts o = {.channel = "names_folded"};
    const char *folded[] = {"Upper"};
    pgcw_install *in = handle(&o);
    assert_int_equal(pgcw_install_run(in, f->writer, folded, 1, NULL), PGCW_EQUERY);
    assert_string_equal(pgcw_install_errmsg(in),
                        "relation \"upper\" does not exist (SQLSTATE 42P01)");
    pgcw_install_free(in);

    pgcw_install_opts names_opts = {.channel = "names"};
    uninstall_ok(f->writer, &names_opts);
    assert_int_equal(pgtest_query_int(f->writer, "SELECT count(*) FROM pg_trigger WHERE "
                                                 "tgname LIKE 'tg_pgcachewatch%'"),
                     0);
}

static void test_hostile_unquoted_refused(void **state)
{
    fixture *f = *state;
    pgtest_exec(f->writer, "CREATE TABLE hx (id int); CREATE TABLE x (id int)");
    char *before = catalog_snapshot(f->writer);
    const char *bad[] = {"hx; DROP TABLE x", "hx --", "hx) x", "hx'", "\"hx", ""};
    pgcw_install *in = handle(NULL);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *tables[] = {"hx", bad[i]};
        char *sql = (char *)1;
        assert_int_equal(pgcw_install_run(in, f->writer, tables, 2, &sql), PGCW_EINVAL);
        assert_null(sql);
        assert_true(pgcw_install_errmsg(in)[0] != '\0');
    }
    pgcw_install_free(in);
    char *after = catalog_snapshot(f->writer);
    assert_string_equal(before, after);
    assert_int_equal(pgtest_query_int(f->writer, "SELECT count(*) FROM x"), 0);
    free(before);
    free(after);
}

/* --- errors roll back ----------------------------------------------------------- */

static void test_missing_table_rolls_back(void **state)
{
    fixture *f = *state;
    pgtest_exec(f->writer, "CREATE TABLE mt (id int PRIMARY KEY)");
    char *before = catalog_snapshot(f->writer);
    const char *tables[] = {"mt", "nope"};
    for (int keys = 0; keys < 2; keys++) {
        pgcw_install_opts o = {.channel = "mt", .with_keys = keys};
        pgcw_install *in = handle(&o);
        char *sql = NULL;
        assert_int_equal(pgcw_install_run(in, f->writer, tables, 2, &sql), PGCW_EQUERY);
        assert_string_equal(pgcw_install_errmsg(in),
                            "relation \"nope\" does not exist (SQLSTATE 42P01)");
        pgcw_install_free(in);
        assert_non_null(sql); /* the script that was tried */
        assert_non_null(strstr(sql, "ON \"nope\""));
        pgcw_free(sql);
        assert_int_equal(PQtransactionStatus(f->writer), PQTRANS_IDLE);
        char *after = catalog_snapshot(f->writer);
        assert_string_equal(before, after);
        free(after);
    }
    free(before);
    assert_int_equal(count_functions_like(f->writer, "fn_pgcachewatch_table_change_mt%"),
                     0);
}

static void test_missing_privilege_rolls_back(void **state)
{
    fixture *f = *state;
    char role[64];
    snprintf(role, sizeof role, "pgcw_norights_%ld", (long)getpid());
    char sql[512];
    /* The role may create functions (so the script gets past them) but may not put
     * triggers on a table it does not own: the failure comes late. */
    snprintf(sql, sizeof sql,
             "CREATE TABLE priv (id int PRIMARY KEY); CREATE ROLE %s NOLOGIN;"
             "GRANT CREATE, USAGE ON SCHEMA public TO %s; GRANT SELECT ON priv TO %s",
             role, role, role);
    pgtest_exec(f->writer, sql);
    char *before = catalog_snapshot(f->writer);
    snprintf(sql, sizeof sql, "SET ROLE %s", role);
    pgtest_exec(f->writer, sql);
    const char *tables[] = {"priv"};
    for (int keys = 0; keys < 2; keys++) {
        pgcw_install_opts o = {.channel = "priv", .with_keys = keys};
        pgcw_install *in = handle(&o);
        assert_int_equal(pgcw_install_run(in, f->writer, tables, 1, NULL), PGCW_EQUERY);
        assert_string_equal(pgcw_install_errmsg(in),
                            "permission denied for table priv (SQLSTATE 42501)");
        pgcw_install_free(in);
        assert_int_equal(PQtransactionStatus(f->writer), PQTRANS_IDLE);
    }
    pgtest_exec(f->writer, "RESET ROLE");
    char *after = catalog_snapshot(f->writer);
    assert_string_equal(before, after);
    free(before);
    free(after);
    snprintf(sql, sizeof sql, "DROP OWNED BY %s; DROP ROLE %s", role, role);
    pgtest_exec(f->writer, sql);
}

static void test_needs_idle_connection(void **state)
{
    fixture *f = *state;
    pgtest_exec(f->writer, "CREATE TABLE busy (id int)");
    const char *tables[] = {"busy"};
    pgcw_install *in = handle(NULL);
    pgtest_exec(f->writer, "BEGIN");
    assert_int_equal(pgcw_install_run(in, f->writer, tables, 1, NULL), PGCW_ESTATE);
    char *sql = (char *)1;
    assert_int_equal(pgcw_uninstall_run(in, f->writer, &sql), PGCW_ESTATE);
    assert_null(sql);
    /* The caller's transaction is left alone. */
    assert_int_equal(PQtransactionStatus(f->writer), PQTRANS_INTRANS);
    pgtest_exec(f->writer, "ROLLBACK");
    assert_int_equal(pgcw_install_run(in, NULL, tables, 1, NULL), PGCW_EINVAL);
    pgcw_install_free(in);
}

/* --- primary keys ----------------------------------------------------------------- */

/* Collects the keys of all payloads of one statement: checks each payload's size,
 * members and part numbering, and returns the key texts (owned by the caller). */
typedef struct keyset {
    char **keys;
    size_t n;
    size_t parts;
} keyset;

static void keyset_free(keyset *ks)
{
    for (size_t i = 0; i < ks->n; i++)
        free(ks->keys[i]);
    free(ks->keys);
    *ks = (keyset){0};
}

static keyset keys_of(PGconn *conn, notes *ns, const char *op, const char *table,
                      const char *pk_json)
{
    keyset ks = {0};
    for (size_t i = 0; i < ns->n; i++) {
        const char *p = ns->items[i].payload;
        if (strlen(p) > PGCW_MAX_PAYLOAD)
            fail_msg("payload of %zu bytes", strlen(p));
        json_object *o = parse(p);
        check_common(conn, o, op, "public", table);
        json_object *pk, *keys, *part;
        assert_true(json_object_object_get_ex(o, "pk", &pk));
        assert_string_equal(json_object_to_json_string_ext(pk, JSON_C_TO_STRING_PLAIN),
                            pk_json);
        assert_true(json_object_object_get_ex(o, "keys", &keys));
        assert_true(json_object_object_get_ex(o, "part", &part));
        /* Parts arrive in order, numbered from 1. */
        assert_int_equal(json_object_get_int(part), (int)i + 1);
        size_t n = json_object_array_length(keys);
        assert_true(n > 0);
        ks.keys = realloc(ks.keys, (ks.n + n) * sizeof *ks.keys);
        for (size_t k = 0; k < n; k++)
            ks.keys[ks.n++] = strdup(json_object_to_json_string_ext(
                json_object_array_get_idx(keys, k), JSON_C_TO_STRING_PLAIN));
        json_object_put(o);
    }
    ks.parts = ns->n;
    return ks;
}

/* Checks that ks holds exactly the integer keys [lo..hi], each once. */
static void expect_int_keys(const keyset *ks, long lo, long hi)
{
    size_t want = (size_t)(hi - lo + 1);
    bool *seen = calloc(want, 1);
    for (size_t i = 0; i < ks->n; i++) {
        long v;
        char end;
        if (sscanf(ks->keys[i], "[%ld%c", &v, &end) != 2 || end != ']')
            fail_msg("not an integer key: %s", ks->keys[i]);
        if (v < lo || v > hi)
            fail_msg("unexpected key %ld", v);
        if (seen[v - lo])
            fail_msg("key %ld reported twice", v);
        seen[v - lo] = true;
    }
    assert_int_equal(ks->n, want);
    free(seen);
}

static void test_keys_int_5000(void **state)
{
    fixture *f = *state;
    pgtest_exec(f->writer, "CREATE TABLE k5 (id int PRIMARY KEY, v int)");
    pgcw_install_opts o = {.channel = "keys", .with_keys = true};
    const char *tables[] = {"k5"};
    install_ok(f->writer, &o, tables, 1);
    do_listen(f->listener, "keys");

    pgtest_exec(f->writer, "INSERT INTO k5 SELECT g, 0 FROM generate_series(1, 5000) g");
    notes ns = collect(f->listener, f->writer, "keys");
    keyset ks = keys_of(f->writer, &ns, "insert", "k5", "[\"id\"]");
    expect_int_keys(&ks, 1, 5000);
    assert_true(ks.parts > 1);
    keyset_free(&ks);
    notes_free(&ns);

    pgtest_exec(f->writer, "UPDATE k5 SET v = v + 1");
    ns = collect(f->listener, f->writer, "keys");
    ks = keys_of(f->writer, &ns, "update", "k5", "[\"id\"]");
    expect_int_keys(&ks, 1, 5000);
    keyset_free(&ks);
    notes_free(&ns);

    /* Keys that change: the union of old (1..100) and new (5001..5100). */
    pgtest_exec(f->writer, "UPDATE k5 SET id = id + 5000 WHERE id <= 100");
    ns = collect(f->listener, f->writer, "keys");
    ks = keys_of(f->writer, &ns, "update", "k5", "[\"id\"]");
    assert_int_equal(ks.n, 200);
    keyset_free(&ks);
    notes_free(&ns);
    pgtest_exec(f->writer, "UPDATE k5 SET id = id - 5000 WHERE id > 5000");
    ns = collect(f->listener, f->writer, "keys");
    notes_free(&ns);

    /* Zero rows: no notification at all. */
    pgtest_exec(f->writer, "UPDATE k5 SET v = 0 WHERE false");
    pgtest_exec(f->writer, "DELETE FROM k5 WHERE id < 0");
    pgtest_exec(f->writer, "INSERT INTO k5 SELECT 1, 1 WHERE false");
    ns = collect(f->listener, f->writer, "keys");
    assert_int_equal(ns.n, 0);
    notes_free(&ns);

    pgtest_exec(f->writer, "DELETE FROM k5");
    ns = collect(f->listener, f->writer, "keys");
    ks = keys_of(f->writer, &ns, "delete", "k5", "[\"id\"]");
    expect_int_keys(&ks, 1, 5000);
    keyset_free(&ks);
    notes_free(&ns);

    /* TRUNCATE has no rows: a table-level payload. */
    pgtest_exec(f->writer, "TRUNCATE k5");
    ns = collect(f->listener, f->writer, "keys");
    assert_int_equal(ns.n, 1);
    json_object *t = parse(ns.items[0].payload);
    check_common(f->writer, t, "truncate", "public", "k5");
    assert_false(has_member(t, "keys"));
    json_object_put(t);
    notes_free(&ns);
    pgtest_exec(f->listener, "UNLISTEN *");
    uninstall_ok(f->writer, &o);
}

static void test_keys_composite_in_key_order(void **state)
{
    fixture *f = *state;
    /* Key order (id, region) differs from column order. */
    pgtest_exec(f->writer, "CREATE TABLE kc (region text, v int, id int, "
                           "PRIMARY KEY (id, region))");
    pgcw_install_opts o = {.channel = "keys", .with_keys = true};
    const char *tables[] = {"kc"};
    install_ok(f->writer, &o, tables, 1);
    do_listen(f->listener, "keys");
    pgtest_exec(f->writer, "INSERT INTO kc VALUES ('eu', 0, 2), ('us', 0, 1), "
                           "('eu', 0, 1), ('it''s \"q\"', 0, 3)");
    notes ns = collect(f->listener, f->writer, "keys");
    keyset ks = keys_of(f->writer, &ns, "insert", "kc", "[\"id\",\"region\"]");
    assert_int_equal(ks.n, 4);
    assert_int_equal(ks.parts, 1);
    /* In key order. */
    assert_string_equal(ks.keys[0], "[1,\"eu\"]");
    assert_string_equal(ks.keys[1], "[1,\"us\"]");
    assert_string_equal(ks.keys[2], "[2,\"eu\"]");
    assert_string_equal(ks.keys[3], "[3,\"it's \\\"q\\\"\"]");
    keyset_free(&ks);
    notes_free(&ns);

    /* Key columns with names that need quoting in the function's dynamic SQL. */
    pgtest_exec(f->writer, "CREATE TABLE kq (\"we\"\"ird col\" int, \"Sel%s\" text, "
                           "PRIMARY KEY (\"Sel%s\", \"we\"\"ird col\"))");
    const char *kq[] = {"kq"};
    install_ok(f->writer, &o, kq, 1);
    pgtest_exec(f->writer,
                "INSERT INTO kq VALUES (1, 'a'); UPDATE kq SET \"we\"\"ird col\" = 2");
    ns = collect(f->listener, f->writer, "keys");
    assert_int_equal(ns.n, 2);
    notes first = {.items = ns.items, .n = 1}, second = {.items = ns.items + 1, .n = 1};
    ks = keys_of(f->writer, &first, "insert", "kq", "[\"Sel%s\",\"we\\\"ird col\"]");
    assert_int_equal(ks.n, 1);
    assert_string_equal(ks.keys[0], "[\"a\",1]");
    keyset_free(&ks);
    ks = keys_of(f->writer, &second, "update", "kq", "[\"Sel%s\",\"we\\\"ird col\"]");
    assert_int_equal(ks.n, 2);
    assert_string_equal(ks.keys[0], "[\"a\",1]");
    assert_string_equal(ks.keys[1], "[\"a\",2]");
    keyset_free(&ks);
    notes_free(&ns);
    pgtest_exec(f->listener, "UNLISTEN *");
    uninstall_ok(f->writer, &o);
}

/* Long multibyte text keys: parts are sized in bytes, not characters. */
static void test_keys_long_text(void **state)
{
    fixture *f = *state;
    pgtest_exec(f->writer, "CREATE TABLE kt (k text PRIMARY KEY, v int)");
    pgcw_install_opts o = {.channel = "keys", .with_keys = true};
    const char *tables[] = {"kt"};
    install_ok(f->writer, &o, tables, 1);
    do_listen(f->listener, "keys");
    /* 300 keys of 600 characters, 1200 bytes each in UTF-8. */
    pgtest_exec(f->writer, "INSERT INTO kt SELECT lpad(g::text, 600, '\xc3\xa9'), 0 "
                           "FROM generate_series(1, 300) g");
    notes ns = collect(f->listener, f->writer, "keys");
    keyset ks = keys_of(f->writer, &ns, "insert", "kt", "[\"k\"]");
    assert_int_equal(ks.n, 300);
    /* About six keys of ~1200 bytes fit in a payload. */
    assert_true(ks.parts >= 300 / 6);
    /* Exactly the inserted keys, each once. */
    char *all = pgtest_query_value(
        f->writer,
        "SELECT string_agg(json_build_array(k)::text, '|' ORDER BY k) FROM kt");
    pgcw__buf joined = {0};
    for (size_t i = 0; i < ks.n; i++) {
        json_object *a = json_tokener_parse(ks.keys[i]);
        pgcw__buf_appendf(&joined, "%s[\"%s\"]", i ? "|" : "",
                          json_object_get_string(json_object_array_get_idx(a, 0)));
        json_object_put(a);
    }
    assert_string_equal(joined.data, all);
    pgcw__buf_free(&joined);
    free(all);
    keyset_free(&ks);
    notes_free(&ns);

    /* One key too large for any payload: the statement is reported table-level. */
    pgtest_exec(f->writer, "INSERT INTO kt VALUES (repeat('z', 9000), 0), ('small', 0)");
    ns = collect(f->listener, f->writer, "keys");
    assert_int_equal(ns.n, 1);
    json_object *t = parse(ns.items[0].payload);
    check_common(f->writer, t, "insert", "public", "kt");
    assert_false(has_member(t, "keys"));
    json_object_put(t);
    notes_free(&ns);
    pgtest_exec(f->listener, "UNLISTEN *");
    uninstall_ok(f->writer, &o);
}

/* The payload size bound is exact: keys sized so that parts land right at the limit
 * for every key width never exceed it. */
static void test_keys_payload_bound_exact(void **state)
{
    fixture *f = *state;
    pgtest_exec(f->writer, "CREATE TABLE kb (k text PRIMARY KEY)");
    pgcw_install_opts o = {.channel = "keys", .with_keys = true};
    const char *tables[] = {"kb"};
    install_ok(f->writer, &o, tables, 1);
    do_listen(f->listener, "keys");
    size_t largest = 0, total = 0;
    for (int width = 1; width <= 7900; width += (width < 50 ? 7 : 331)) {
        char sql[256];
        snprintf(sql, sizeof sql,
                 "INSERT INTO kb SELECT g::text || repeat('k', %d) FROM "
                 "generate_series(1, %d) g",
                 width, width < 20 ? 3000 : 30);
        pgtest_exec(f->writer, sql);
        notes ns = collect(f->listener, f->writer, "keys");
        assert_true(ns.n >= 1);
        for (size_t i = 0; i < ns.n; i++) {
            size_t len = strlen(ns.items[i].payload);
            assert_true(len <= PGCW_MAX_PAYLOAD);
            if (len > largest)
                largest = len;
        }
        total += ns.n;
        notes_free(&ns);
        pgtest_exec(f->writer, "TRUNCATE kb");
        ns = collect(f->listener, f->writer, "keys");
        notes_free(&ns);
    }
    /* Not wasteful either: some payload came close to the limit. */
    assert_true(largest > PGCW_MAX_PAYLOAD - 200);
    assert_true(total > 0);
    pgtest_exec(f->listener, "UNLISTEN *");
    uninstall_ok(f->writer, &o);
}

static void test_keys_without_primary_key(void **state)
{
    fixture *f = *state;
    pgtest_exec(f->writer, "CREATE TABLE knp (a int, b text)");
    pgcw_install_opts o = {.channel = "keys", .with_keys = true};
    const char *tables[] = {"knp"};
    install_ok(f->writer, &o, tables, 1);
    do_listen(f->listener, "keys");
    const char *stmts[] = {"INSERT INTO knp SELECT g, 'x' FROM generate_series(1, 10) g",
                           "UPDATE knp SET b = 'y'", "DELETE FROM knp"};
    const char *ops[] = {"insert", "update", "delete"};
    for (int i = 0; i < 3; i++) {
        pgtest_exec(f->writer, stmts[i]);
        notes ns = collect(f->listener, f->writer, "keys");
        assert_int_equal(ns.n, 1);
        json_object *t = parse(ns.items[0].payload);
        check_common(f->writer, t, ops[i], "public", "knp");
        assert_false(has_member(t, "keys"));
        json_object_put(t);
        notes_free(&ns);
    }
    pgtest_exec(f->writer, "DELETE FROM knp");
    notes ns = collect(f->listener, f->writer, "keys");
    assert_int_equal(ns.n, 0);
    notes_free(&ns);
    pgtest_exec(f->listener, "UNLISTEN *");
    uninstall_ok(f->writer, &o);
}

/* --- idempotence, switching, uninstall ------------------------------------------- */

static char *trigger_names(PGconn *conn, const char *table)
{
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT coalesce(string_agg(tgname, ',' ORDER BY tgname), '') FROM "
             "pg_trigger WHERE tgrelid = '%s'::regclass AND NOT tgisinternal",
             table);
    return pgtest_query_value(conn, sql);
}

static void test_install_twice_and_switch(void **state)
{
    fixture *f = *state;
    pgtest_exec(f->writer, "CREATE TABLE sw (id int PRIMARY KEY)");
    pgcw_install_opts o = {.channel = "swc"};
    const char *tables[] = {"sw", "sw"};
    install_ok(f->writer, &o, tables, 2);
    install_ok(f->writer, &o, tables, 1);
    char *names = trigger_names(f->writer, "sw");
    assert_string_equal(names, "tg_pgcachewatch_table_change_swc");
    free(names);
    o.with_keys = true;
    install_ok(f->writer, &o, tables, 1);
    install_ok(f->writer, &o, tables, 1);
    names = trigger_names(f->writer, "sw");
    assert_string_equal(names, "tg_pgcachewatch_table_change_swc,"
                               "tg_pgcachewatch_table_change_swc_del,"
                               "tg_pgcachewatch_table_change_swc_ins,"
                               "tg_pgcachewatch_table_change_swc_upd");
    free(names);
    /* One notification per statement with keys (the table-level trigger is now
     * TRUNCATE only). */
    do_listen(f->listener, "swc");
    pgtest_exec(f->writer, "INSERT INTO sw VALUES (7)");
    notes ns = collect(f->listener, f->writer, "swc");
    assert_int_equal(ns.n, 1);
    assert_non_null(strstr(ns.items[0].payload, "\"keys\" : [[7]]"));
    notes_free(&ns);

    o.with_keys = false;
    install_ok(f->writer, &o, tables, 1);
    names = trigger_names(f->writer, "sw");
    assert_string_equal(names, "tg_pgcachewatch_table_change_swc");
    free(names);
    pgtest_exec(f->writer, "INSERT INTO sw VALUES (8)");
    ns = collect(f->listener, f->writer, "swc");
    assert_int_equal(ns.n, 1);
    assert_null(strstr(ns.items[0].payload, "keys"));
    notes_free(&ns);

    /* Another channel on the same table gets triggers of its own: both notify,
     * and uninstalling one leaves the other's. */
    pgcw_install_opts o2 = {.channel = "swc2"};
    install_ok(f->writer, &o2, tables, 1);
    do_listen(f->listener, "swc2");
    pgtest_exec(f->writer, "INSERT INTO sw VALUES (9)");
    ns = collect(f->listener, f->writer, "swc2");
    assert_int_equal(ns.n, 2);
    assert_string_not_equal(ns.items[0].channel, ns.items[1].channel);
    notes_free(&ns);
    pgtest_exec(f->listener, "UNLISTEN *");
    uninstall_ok(f->writer, &o);
    names = trigger_names(f->writer, "sw");
    assert_string_equal(names, "tg_pgcachewatch_table_change_swc2");
    free(names);
    uninstall_ok(f->writer, &o2);
    names = trigger_names(f->writer, "sw");
    assert_string_equal(names, "");
    free(names);
}

/* Names PostgreSQL would truncate: two long channel names whose derived names share
 * their first 63 bytes get distinct, complete objects (with and without keys), on
 * tables with long names too; each fires, and uninstall finds them all. */
static void test_long_names(void **state)
{
    fixture *f = *state;
    char *before = catalog_snapshot(f->writer);
    const char *a = "orders_with_a_very_long_descriptive_name_that_goes_on_and_on_a";
    const char *b = "orders_with_a_very_long_descriptive_name_that_goes_on_and_on_b";
    const char *ca = "changes_of_orders_with_a_long_channel_name_a";
    const char *cb = "changes_of_orders_with_a_long_channel_name_b";
    char sql[512];
    snprintf(sql, sizeof sql,
             "CREATE TABLE %s (id int PRIMARY KEY); CREATE TABLE %s (id int PRIMARY KEY)",
             a, b);
    pgtest_exec(f->writer, sql);
    pgcw_install_opts oa = {.channel = ca};
    const char *const plain[] = {a};
    install_ok(f->writer, &oa, plain, 1);
    pgcw_install_opts ob = {.channel = cb, .with_keys = true};
    const char *const keyed[] = {b};
    install_ok(f->writer, &ob, keyed, 1);

    char *ta = trigger_names(f->writer, a), *tb = trigger_names(f->writer, b);
    assert_int_equal(strchr(ta, ',') ? 0 : 1, 1); /* one trigger on a */
    assert_int_equal(strlen(ta), 63);
    assert_non_null(strstr(tb, "_ins"));
    assert_memory_not_equal(ta, tb, 63);
    free(ta);
    free(tb);
    assert_int_equal(count_functions_like(f->writer, "fn_pgcachewatch_table_change_%"),
                     3);

    do_listen(f->listener, ca);
    do_listen(f->listener, cb);
    snprintf(sql, sizeof sql, "INSERT INTO %s VALUES (1); INSERT INTO %s VALUES (2)", a,
             b);
    pgtest_exec(f->writer, sql);
    notes ns = collect(f->listener, f->writer, cb);
    assert_int_equal(ns.n, 2);
    assert_string_equal(ns.items[0].channel, ca);
    assert_string_equal(ns.items[1].channel, cb);
    json_object *ja = parse(ns.items[0].payload), *jb = parse(ns.items[1].payload);
    assert_string_equal(member_str(ja, "table"), a);
    assert_string_equal(member_str(jb, "table"), b);
    assert_true(has_member(jb, "keys"));
    json_object_put(ja);
    json_object_put(jb);
    notes_free(&ns);
    pgtest_exec(f->listener, "UNLISTEN *");

    uninstall_ok(f->writer, &oa);
    uninstall_ok(f->writer, &ob);
    snprintf(sql, sizeof sql, "DROP TABLE %s, %s", a, b);
    pgtest_exec(f->writer, sql);
    char *after = catalog_snapshot(f->writer);
    assert_string_equal(before, after);
    free(before);
    free(after);
}

static void test_uninstall_leaves_no_trace(void **state)
{
    fixture *f = *state;
    pgtest_exec(f->writer,
                "CREATE SCHEMA un; CREATE TABLE un.a (id int PRIMARY KEY);"
                "CREATE TABLE \"un b\" (id int PRIMARY KEY);"
                "CREATE FUNCTION user_fn() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RETURN NULL; END $$;"
                "CREATE TRIGGER user_tg AFTER INSERT ON un.a FOR EACH ROW "
                "EXECUTE FUNCTION user_fn()");
    char *s0 = catalog_snapshot(f->writer);
    pgcw_install_opts other = {.channel = "other"};
    pgcw_install_opts mine = {.channel = "mine", .with_keys = true};
    const char *tables[] = {"un.a", "\"un b\""};
    install_ok(f->writer, &other, tables, 1);
    char *s1 = catalog_snapshot(f->writer);

    /* Nothing installed yet for "mine": an empty script. */
    pgcw_install *in_mine = handle(&mine);
    char *sql = NULL;
    assert_int_equal(pgcw_uninstall_sql(in_mine, f->writer, &sql), PGCW_OK);
    assert_string_equal(sql, "");
    pgcw_free(sql);

    /* Dry-run generation changes nothing. */
    assert_int_equal(pgcw_install_sql(in_mine, tables, 2, &sql), PGCW_OK);
    char *s_dry = catalog_snapshot(f->writer);
    assert_string_equal(s_dry, s1);
    free(s_dry);
    pgcw_free(sql);

    install_ok(f->writer, &mine, tables, 2);
    /* The uninstall script names every trigger, schema-qualified, and changes
     * nothing by itself. */
    char *s2 = catalog_snapshot(f->writer);
    assert_int_equal(pgcw_uninstall_sql(in_mine, f->writer, &sql), PGCW_OK);
    assert_non_null(strstr(sql, "DROP TRIGGER \"tg_pgcachewatch_table_change_mine_ins\" "
                                "ON \"un\".\"a\";"));
    assert_non_null(strstr(sql, "DROP TRIGGER \"tg_pgcachewatch_table_change_mine\" ON "
                                "\"public\".\"un b\";"));
    assert_non_null(strstr(
        sql, "DROP FUNCTION \"public\".\"fn_pgcachewatch_table_change_mine_keys\"();"));
    assert_null(strstr(sql, "other"));
    assert_null(strstr(sql, "user_"));
    pgcw_free(sql);
    char *s3 = catalog_snapshot(f->writer);
    assert_string_equal(s2, s3);

    assert_int_equal(pgcw_uninstall_run(in_mine, f->writer, &sql), PGCW_OK);
    assert_non_null(strstr(sql, "DROP TRIGGER"));
    pgcw_free(sql);
    char *s4 = catalog_snapshot(f->writer);
    assert_string_equal(s4, s1);

    /* The other channel still works. */
    do_listen(f->listener, "other");
    pgtest_exec(f->writer, "INSERT INTO un.a VALUES (1)");
    notes ns = collect(f->listener, f->writer, "other");
    assert_int_equal(ns.n, 1);
    notes_free(&ns);
    pgtest_exec(f->listener, "UNLISTEN *");

    /* Uninstalling again is a no-op with an empty script. */
    assert_int_equal(pgcw_uninstall_run(in_mine, f->writer, &sql), PGCW_OK);
    assert_string_equal(sql, "");
    pgcw_free(sql);
    pgcw_install_free(in_mine);
    uninstall_ok(f->writer, &other);
    char *s5 = catalog_snapshot(f->writer);
    assert_string_equal(s5, s0);
    free(s0);
    free(s1);
    free(s2);
    free(s3);
    free(s4);
    free(s5);
}

/* Functions live in the first schema of search_path, and uninstall finds them the
 * same way. */
static void test_search_path(void **state)
{
    fixture *f = *state;
    pgtest_exec(f->writer, "CREATE SCHEMA sp; CREATE TABLE sp.t (id int);"
                           "SET search_path = sp, public");
    pgcw_install_opts o = {.channel = "sp"};
    const char *tables[] = {"t"};
    install_ok(f->writer, &o, tables, 1);
    assert_int_equal(pgtest_query_int(f->writer,
                                      "SELECT count(*) FROM pg_proc WHERE proname = "
                                      "'fn_pgcachewatch_table_change_sp' AND "
                                      "pronamespace = 'sp'::regnamespace"),
                     1);
    uninstall_ok(f->writer, &o);
    assert_int_equal(count_functions_like(f->writer, "fn_pgcachewatch_table_change_sp"),
                     0);
    pgtest_exec(f->writer, "RESET search_path");
}

/* A writer whose search_path puts a schema of look-alike functions before
 * pg_catalog cannot change what the installed functions send: they pin their own
 * search_path (plain and --with-keys). */
static void test_search_path_pinned(void **state)
{
    fixture *f = *state;
    pgtest_exec(f->writer,
                "CREATE SCHEMA shadow;"
                "CREATE FUNCTION shadow.lower(text) RETURNS text LANGUAGE sql"
                "  AS $$ SELECT 'forged'::text $$;"
                "CREATE FUNCTION shadow.format(text, VARIADIC text[]) RETURNS text"
                "  LANGUAGE sql AS $$ SELECT 'SELECT 1'::text $$;"
                "CREATE TABLE pinned (id int PRIMARY KEY, v text);"
                "CREATE TABLE pinned_keys (id int PRIMARY KEY, v text)");
    const char *plain[] = {"pinned"};
    install_ok(f->writer, NULL, plain, 1);
    pgcw_install_opts ko = {.channel = "pinned_keys", .with_keys = true};
    const char *keyed[] = {"pinned_keys"};
    install_ok(f->writer, &ko, keyed, 1);
    do_listen(f->listener, PGCW_DEFAULT_CHANNEL);
    do_listen(f->listener, "pinned_keys");

    pgtest_exec(f->writer, "SET search_path = shadow, pg_catalog, public");
    pgtest_exec(f->writer, "INSERT INTO public.pinned VALUES (1, 'a')");
    notes ns = collect(f->listener, f->writer, PGCW_DEFAULT_CHANNEL);
    assert_int_equal(ns.n, 1);
    json_object *o = parse(ns.items[0].payload);
    check_common(f->writer, o, "insert", "public", "pinned");
    json_object_put(o);
    notes_free(&ns);

    pgtest_exec(f->writer, "INSERT INTO public.pinned_keys VALUES (7, 'b')");
    ns = collect(f->listener, f->writer, "pinned_keys");
    assert_int_equal(ns.n, 1);
    o = parse(ns.items[0].payload);
    check_common(f->writer, o, "insert", "public", "pinned_keys");
    json_object *keys = NULL;
    assert_true(json_object_object_get_ex(o, "keys", &keys));
    assert_string_equal(json_object_to_json_string_ext(keys, JSON_C_TO_STRING_PLAIN),
                        "[[7]]");
    json_object_put(o);
    notes_free(&ns);

    pgtest_exec(f->writer, "RESET search_path");
    pgtest_exec(f->listener, "UNLISTEN *");
    uninstall_ok(f->writer, NULL);
    uninstall_ok(f->writer, &ko);
    pgtest_exec(f->writer, "DROP SCHEMA shadow CASCADE");
}

/* --- the Python tool ------------------------------------------------------------ */

/*
 * What the Python pgcachewatch CLI runs (0.4 and later: cli.py and queries.py), as
 * plain SQL, with its default --function-name and --trigger-name. It pastes every
 * name into its SQL unquoted, so PostgreSQL folds it to lower case, and runs each
 * script with asyncpg's execute() without arguments: one simple-protocol query,
 * hence one implicit transaction, as one PQexec() is here. Each run has a
 * connection of its own, as the Python CLI's pool does.
 */
#define PY_FN "fn_pgcachewatch_table_change"
#define PY_TG "tg_pgcachewatch_table_change"

static void quiet(void *arg, const char *message)
{
    (void)arg;
    (void)message; /* DROP ... IF EXISTS notices */
}

static PGconn *python_connect(void)
{
    PGconn *py = pgtest_connect();
    PQsetNoticeProcessor(py, quiet, NULL);
    return py;
}

static void python_install(const char *channel, const char *const *tables, size_t n)
{
    pgcw__buf sql = {0};
    /* cli.main: pg_fn_name = f"{function_name}_{channel_name}", then
     * queries.create_notify_function(channel_name, pg_fn_name): */
    pgcw__buf_appendf(&sql,
                      "CREATE OR REPLACE FUNCTION " PY_FN "_%s() RETURNS TRIGGER AS $$\n"
                      "  BEGIN PERFORM pg_notify('%s', json_build_object("
                      "'operation', lower(TG_OP), 'table', TG_TABLE_NAME, "
                      "'sent_at', NOW())::text); RETURN NEW; END;\n"
                      "  $$ LANGUAGE plpgsql;\n",
                      channel, channel);
    /* pg_tg_name = f"{trigger_name}_{channel_name}", then for each table
     * queries.create_after_change_trigger(pg_tg_name, table, pg_fn_name): */
    for (size_t i = 0; i < n; i++)
        pgcw__buf_appendf(&sql,
                          "CREATE OR REPLACE TRIGGER " PY_TG "_%s\n"
                          "  AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON %s\n"
                          "  EXECUTE FUNCTION " PY_FN "_%s();\n",
                          channel, tables[i], channel);
    assert_false(sql.failed);
    PGconn *py = python_connect();
    pgtest_exec(py, sql.data); /* pool.execute(install) */
    PQfinish(py);
    pgcw__buf_free(&sql);
}

/* The Python uninstall of channel. Returns "" when it succeeded, else the SQLSTATE
 * of the error that rolled it back (static storage). */
static const char *python_uninstall(const char *channel)
{
    static char sqlstate[6];
    PGconn *py = python_connect();
    char sql[512];
    /* pool.fetch(queries.fetch_trigger_names(pg_tg_name)): */
    snprintf(sql, sizeof sql,
             "SELECT event_object_table AS table, trigger_name "
             "FROM information_schema.triggers "
             "WHERE trigger_name LIKE '" PY_TG "_%s%%'",
             channel);
    PGresult *r = PQexec(py, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        fail_msg("fetch_trigger_names: %s", PQresultErrorMessage(r));
    pgcw__buf drop = {0};
    /* "\n".join(queries.drop_trigger(t["trigger_name"], t["table"]) for each row): */
    for (int i = 0; i < PQntuples(r); i++)
        pgcw__buf_appendf(&drop, "%sDROP TRIGGER IF EXISTS %s ON %s;", i ? "\n" : "",
                          PQgetvalue(r, i, 1), PQgetvalue(r, i, 0));
    PQclear(r);
    /* "\n".join((those, queries.drop_function(pg_fn_name))): */
    pgcw__buf_appendf(&drop, "\nDROP FUNCTION IF EXISTS " PY_FN "_%s();", channel);
    assert_false(drop.failed);
    r = PQexec(py, drop.data); /* pool.execute(combined) */
    pgcw__buf_free(&drop);
    const char *code = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    snprintf(sqlstate, sizeof sqlstate, "%s",
             PQresultStatus(r) == PGRES_COMMAND_OK ? ""
             : code                                ? code
                                                   : "?????");
    PQclear(r);
    PQfinish(py);
    return sqlstate;
}

/* The triggers (table, name, type, function) and the non-system functions, by
 * name: equal for objects that are the same but for their OIDs and bodies. */
static char *names_snapshot(PGconn *conn)
{
    return pgtest_query_value(
        conn, "SELECT coalesce(string_agg(x, ', ' ORDER BY x), '') FROM ("
              " SELECT format('%s.%s %s %s', tgrelid::regclass, tgname, tgtype,"
              "               tgfoid::regprocedure) AS x"
              "  FROM pg_trigger WHERE NOT tgisinternal"
              " UNION ALL"
              " SELECT oid::regprocedure::text FROM pg_proc"
              "  WHERE pronamespace NOT IN ('pg_catalog'::regnamespace,"
              "                             'information_schema'::regnamespace)) s");
}

/* Fails unless the catalogs hold exactly the triggers and functions of want. */
static void expect_snapshot(PGconn *conn, const char *want)
{
    char *now = catalog_snapshot(conn);
    assert_string_equal(now, want);
    free(now);
}

/* The Python uninstall of channel fails on DROP FUNCTION (2BP01: triggers still
 * call it) and, being one transaction, removes nothing. */
static void expect_python_uninstall_fails(PGconn *conn, const char *channel)
{
    char *installed = catalog_snapshot(conn);
    assert_string_equal(python_uninstall(channel), "2BP01");
    expect_snapshot(conn, installed);
    free(installed);
}

static long long triggers_on(PGconn *conn, const char *tables)
{
    char sql[256];
    snprintf(
        sql, sizeof sql,
        "SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal AND tgrelid::regclass"
        "::text IN (%s)",
        tables);
    return pgtest_query_int(conn, sql);
}

/* The plain install is the Python tool's, object for object: its uninstall removes
 * all of it, TRUNCATE included, since the one trigger per table is listed in
 * information_schema.triggers under INSERT, UPDATE and DELETE. */
static void test_python_uninstall_removes_plain_install(void **state)
{
    fixture *f = *state;
    pgtest_exec(f->writer,
                "CREATE TABLE pa (id int PRIMARY KEY); CREATE TABLE pb (id int)");
    char *before = catalog_snapshot(f->writer);
    const char *tables[] = {"pa", "pb"};
    install_ok(f->writer, NULL, tables, 2);
    assert_int_equal(
        pgtest_query_int(
            f->writer,
            "SELECT count(*) FROM information_schema.triggers "
            "WHERE trigger_name = '" PGCW_DEFAULT_TRIGGER_PREFIX PGCW_DEFAULT_CHANNEL
            "'"),
        6);
    assert_string_equal(python_uninstall(PGCW_DEFAULT_CHANNEL), "");
    expect_snapshot(f->writer, before);

    /* Its pattern 'tg_..._pyu%' also matches channel pyu2's triggers, so it drops
     * them, and leaves pyu2's function alone. */
    pgcw_install_opts o = {.channel = "pyu"}, o2 = {.channel = "pyu2"};
    install_ok(f->writer, &o, tables, 2);
    install_ok(f->writer, &o2, tables, 1);
    assert_string_equal(python_uninstall("pyu"), "");
    assert_int_equal(triggers_on(f->writer, "'pa', 'pb'"), 0);
    assert_int_equal(count_functions_like(f->writer, "fn_pgcachewatch_table_change_pyu"),
                     0);
    assert_int_equal(count_functions_like(f->writer, "fn_pgcachewatch_table_change_pyu2"),
                     1);
    uninstall_ok(f->writer, &o2);
    expect_snapshot(f->writer, before);

    /* Installed --with-keys, then plain again: the _keys function stays (nothing
     * calls it), the Python uninstall leaves it, ours removes it. */
    o.with_keys = true;
    install_ok(f->writer, &o, tables, 2);
    o.with_keys = false;
    install_ok(f->writer, &o, tables, 2);
    assert_string_equal(python_uninstall("pyu"), "");
    assert_int_equal(triggers_on(f->writer, "'pa', 'pb'"), 0);
    assert_int_equal(count_functions_like(f->writer, "fn_pgcachewatch_table_change_pyu%"),
                     1);
    assert_int_equal(
        count_functions_like(f->writer, "fn_pgcachewatch_table_change_pyu_keys"), 1);
    uninstall_ok(f->writer, &o);
    expect_snapshot(f->writer, before);
    free(before);
}

/* The Python uninstall drops each trigger ON the table's bare name (unqualified,
 * unquoted): on a table outside search_path, or with capitals, that drop misses, so
 * DROP FUNCTION fails (2BP01) and nothing at all is removed. Its own install on
 * such tables fares the same; ours removes either. */
static void test_python_uninstall_bare_table_names(void **state)
{
    fixture *f = *state;
    pgtest_exec(f->writer,
                "CREATE SCHEMA pyoff; CREATE TABLE pyoff.t (id int);"
                "CREATE TABLE \"PyUpper\" (id int); CREATE TABLE pyok (id int)");
    char *before = catalog_snapshot(f->writer);
    pgcw_install_opts o = {.channel = "pybare"};
    const char *out_of_reach[] = {"pyoff.t", "\"PyUpper\""};
    for (int python = 0; python < 2; python++) {
        for (int i = 0; i < 2; i++) {
            const char *tables[] = {"pyok", out_of_reach[i]};
            if (python)
                python_install("pybare", tables, 2);
            else
                install_ok(f->writer, &o, tables, 2);
            expect_python_uninstall_fails(f->writer, "pybare");
            uninstall_ok(f->writer, &o);
            expect_snapshot(f->writer, before);
        }
    }
    free(before);
}

/* With --with-keys the Python uninstall removes nothing: it finds and drops the
 * _ins/_upd/_del triggers, but information_schema.triggers lists no TRUNCATE-only
 * trigger, so that one still calls the table-level function, DROP FUNCTION fails
 * (2BP01) and the transaction rolls back. The install keeps working; ours removes
 * all of it. */
static void test_python_uninstall_with_keys(void **state)
{
    fixture *f = *state;
    pgtest_exec(f->writer, "CREATE TABLE pk (id int PRIMARY KEY)");
    char *before = catalog_snapshot(f->writer);
    pgcw_install_opts o = {.channel = "pyk", .with_keys = true};
    const char *tables[] = {"pk"};
    install_ok(f->writer, &o, tables, 1);
    assert_int_equal(pgtest_query_int(f->writer,
                                      "SELECT count(*) FROM information_schema.triggers "
                                      "WHERE trigger_name LIKE 'tg_pgcachewatch_table_"
                                      "change_pyk%'"),
                     3);
    expect_python_uninstall_fails(f->writer, "pyk");

    do_listen(f->listener, "pyk");
    pgtest_exec(f->writer, "INSERT INTO pk VALUES (1); TRUNCATE pk");
    notes ns = collect(f->listener, f->writer, "pyk");
    assert_int_equal(ns.n, 2);
    assert_non_null(strstr(ns.items[0].payload, "\"keys\" : [[1]]"));
    assert_non_null(strstr(ns.items[1].payload, "\"truncate\""));
    notes_free(&ns);
    pgtest_exec(f->listener, "UNLISTEN *");

    uninstall_ok(f->writer, &o);
    expect_snapshot(f->writer, before);
    free(before);
}

/* A channel with capitals. The Python tool's names fold to lower case but its LIKE
 * pattern keeps the capitals, so its uninstall given "MyChan" finds no trigger and
 * fails on DROP FUNCTION (2BP01), for its own install as for ours; given "mychan"
 * it removes either. Our objects for "MyChan" are the Python tool's, and notify
 * "MyChan" as its do; our uninstall, given either spelling, removes either. */
static void test_python_capital_channel(void **state)
{
    fixture *f = *state;
    pgtest_exec(f->writer,
                "CREATE TABLE capa (id int PRIMARY KEY); CREATE TABLE capb (id int)");
    char *before = catalog_snapshot(f->writer);
    const char *tables[] = {"capa", "capb"};
    pgcw_install_opts mixed = {.channel = "MyChan"}, lower = {.channel = "mychan"};

    python_install("MyChan", tables, 2);
    char *python_names = names_snapshot(f->writer);
    expect_python_uninstall_fails(f->writer, "MyChan");
    uninstall_ok(f->writer, &mixed);
    expect_snapshot(f->writer, before);

    install_ok(f->writer, &mixed, tables, 2);
    char *our_names = names_snapshot(f->writer);
    assert_string_equal(our_names, python_names);
    assert_non_null(strstr(our_names, "capa.tg_pgcachewatch_table_change_mychan"));
    do_listen(f->listener, "MyChan");
    pgtest_exec(f->writer, "INSERT INTO capa VALUES (1)");
    notes ns = collect(f->listener, f->writer, "MyChan");
    assert_int_equal(ns.n, 1);
    assert_string_equal(ns.items[0].channel, "MyChan");
    notes_free(&ns);
    pgtest_exec(f->listener, "UNLISTEN *");
    expect_python_uninstall_fails(f->writer, "MyChan");
    assert_string_equal(python_uninstall("mychan"), "");
    expect_snapshot(f->writer, before);

    python_install("MyChan", tables, 2);
    assert_string_equal(python_uninstall("mychan"), "");
    expect_snapshot(f->writer, before);
    python_install("MyChan", tables, 2);
    uninstall_ok(f->writer, &lower);
    expect_snapshot(f->writer, before);
    /* Channels that differ only in case share their objects: installing "mychan"
     * on capa replaces the trigger there and the function behind capb's too. */
    install_ok(f->writer, &mixed, tables, 2);
    install_ok(f->writer, &lower, tables, 1);
    assert_int_equal(triggers_on(f->writer, "'capa', 'capb'"), 2);
    do_listen(f->listener, "mychan");
    pgtest_exec(f->writer, "INSERT INTO capb VALUES (1)");
    ns = collect(f->listener, f->writer, "mychan");
    assert_int_equal(ns.n, 1);
    assert_string_equal(ns.items[0].channel, "mychan");
    notes_free(&ns);
    pgtest_exec(f->listener, "UNLISTEN *");
    uninstall_ok(f->writer, &mixed);
    expect_snapshot(f->writer, before);
    free(our_names);
    free(python_names);
    free(before);
}

/* What earlier versions of ours installed for a channel with capitals: function
 * names quoted as given, not folded, and triggers named after the table. Today's
 * uninstall still finds them. */
static void test_uninstall_earlier_names(void **state)
{
    fixture *f = *state;
    pgtest_exec(f->writer, "CREATE TABLE old_t (id int PRIMARY KEY)");
    char *before = catalog_snapshot(f->writer);
    pgtest_exec(
        f->writer,
        "CREATE FUNCTION \"fn_pgcachewatch_table_change_OldCh\"() RETURNS trigger "
        "LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$;"
        "CREATE FUNCTION \"fn_pgcachewatch_table_change_OldCh_keys\"() RETURNS "
        "trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$;"
        "CREATE TRIGGER \"tg_pgcachewatch_table_change_old_t\" AFTER TRUNCATE ON "
        "old_t FOR EACH STATEMENT EXECUTE FUNCTION "
        "\"fn_pgcachewatch_table_change_OldCh\"();"
        "CREATE TRIGGER \"tg_pgcachewatch_table_change_old_t_ins\" AFTER INSERT "
        "ON old_t REFERENCING NEW TABLE AS pgcw_new FOR EACH STATEMENT EXECUTE "
        "FUNCTION \"fn_pgcachewatch_table_change_OldCh_keys\"()");
    /* Installing again adds today's triggers and leaves those; uninstall takes
     * both. */
    pgcw_install_opts o = {.channel = "OldCh"};
    const char *tables[] = {"old_t"};
    install_ok(f->writer, &o, tables, 1);
    char *names = trigger_names(f->writer, "old_t");
    assert_string_equal(names, "tg_pgcachewatch_table_change_old_t,"
                               "tg_pgcachewatch_table_change_old_t_ins,"
                               "tg_pgcachewatch_table_change_oldch");
    free(names);
    uninstall_ok(f->writer, &o);
    expect_snapshot(f->writer, before);
    free(before);
}

/* A channel that is not a plain identifier, on a connection that shows notices:
 * the library's scripts must not make libpq print anything. */
static int notices;
static void count_notice(void *arg, const PGresult *res)
{
    (void)arg;
    (void)res;
    notices++;
}

static void test_odd_channel_and_no_notices(void **state)
{
    fixture *f = *state;
    PGconn *raw = PQconnectdb(pgtest_dsn());
    assert_int_equal(PQstatus(raw), CONNECTION_OK);
    PQsetNoticeReceiver(raw, count_notice, NULL);
    pgtest_exec(raw, "CREATE TABLE oc (id int PRIMARY KEY)");
    const char *channel = "it's \"$pgcw$\" ch";
    pgcw_install_opts o = {.channel = channel, .with_keys = true};
    const char *tables[] = {"oc"};
    install_ok(raw, &o, tables, 1);
    install_ok(raw, &o, tables, 1);
    o.with_keys = false;
    install_ok(raw, &o, tables, 1);
    o.with_keys = true;
    install_ok(raw, &o, tables, 1);
    assert_int_equal(notices, 0);

    do_listen(f->listener, channel);
    pgtest_exec(raw, "INSERT INTO oc VALUES (1), (2)");
    notes ns = collect(f->listener, raw, channel);
    assert_int_equal(ns.n, 1);
    assert_string_equal(ns.items[0].channel, channel);
    keyset ks = keys_of(raw, &ns, "insert", "oc", "[\"id\"]");
    expect_int_keys(&ks, 1, 2);
    keyset_free(&ks);
    notes_free(&ns);
    pgtest_exec(f->listener, "UNLISTEN *");
    uninstall_ok(raw, &o);
    assert_int_equal(notices, 0);
    PQfinish(raw);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_level_payloads),
        cmocka_unit_test(test_quoted_and_qualified_names),
        cmocka_unit_test(test_hostile_unquoted_refused),
        cmocka_unit_test(test_missing_table_rolls_back),
        cmocka_unit_test(test_missing_privilege_rolls_back),
        cmocka_unit_test(test_needs_idle_connection),
        cmocka_unit_test(test_keys_int_5000),
        cmocka_unit_test(test_keys_composite_in_key_order),
        cmocka_unit_test(test_keys_long_text),
        cmocka_unit_test(test_keys_payload_bound_exact),
        cmocka_unit_test(test_keys_without_primary_key),
        cmocka_unit_test(test_install_twice_and_switch),
        cmocka_unit_test(test_long_names),
        cmocka_unit_test(test_uninstall_leaves_no_trace),
        cmocka_unit_test(test_search_path),
        cmocka_unit_test(test_search_path_pinned),
        cmocka_unit_test(test_python_uninstall_removes_plain_install),
        cmocka_unit_test(test_python_uninstall_bare_table_names),
        cmocka_unit_test(test_python_uninstall_with_keys),
        cmocka_unit_test(test_python_capital_channel),
        cmocka_unit_test(test_uninstall_earlier_names),
        cmocka_unit_test(test_odd_channel_and_no_notices),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
