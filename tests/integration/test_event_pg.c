/* test_event_pg.c - the event parser against what a real PostgreSQL 15 sends: its
 * json and text output of timestamptz in many time zones (odd offsets, historical
 * local mean time with seconds, leap days, far years), compared with the server's
 * own epoch arithmetic; and a Python-style trigger payload delivered by NOTIFY. */
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
#include <poll.h>

#include <pgcachewatch/pgcachewatch.h>

#include "pgcw_testhook.h"
#include "pgtest.h"

static const char *const zones[] = {
    "UTC",
    "Asia/Kolkata",        /* +05:30 */
    "Asia/Kathmandu",      /* +05:45 */
    "America/St_Johns",    /* -03:30 / -02:30 */
    "America/Los_Angeles", /* -08 / -07 */
    "Pacific/Kiritimati",  /* +14 */
    "Pacific/Pago_Pago",   /* -11 */
    "Europe/Amsterdam",    /* +00:19:32 before 1937 */
    "America/New_York",    /* -04:56:02 before 1883-11-18 */
};

/* Instants from 1850 to ~2130 in irregular steps, plus fixed edge cases; each row:
 * json text of the value, its text form, and microseconds since the epoch as
 * computed by the server. */
static const char sample_sql[] =
    "SELECT json_build_object('sent_at', t)::text, t::text,"
    "       (extract(epoch FROM t) * 1000000)::bigint"
    "  FROM (SELECT timestamptz '1850-01-01 00:00:00.000001+00'"
    "               + i * interval '1237 hours 13 minutes 7.123457 seconds' AS t"
    "          FROM generate_series(0, 2000) AS i"
    "        UNION ALL VALUES (now()), (clock_timestamp()),"
    "          ('2000-02-29 23:59:59.999999+00'), ('2024-02-29 12:00:00+00'),"
    "          ('0001-01-01 00:00:00+00'), ('9999-12-31 23:59:59.999999+00'),"
    "          ('1969-12-31 23:59:59.5+00'), ('1883-11-18 16:59:59+00'),"
    "          ('1937-06-30 22:40:27+00')) AS s(t)";

static void test_server_timestamps(void **state)
{
    (void)state;
    PGconn *conn = pgtest_connect();
    pgtest_exec(conn, "SET DateStyle = 'ISO, YMD'");
    size_t checked = 0;
    for (size_t z = 0; z < sizeof zones / sizeof zones[0]; z++) {
        char set[128];
        snprintf(set, sizeof set, "SET TimeZone = '%s'", zones[z]);
        pgtest_exec(conn, set);
        PGresult *res = PQexec(conn, sample_sql);
        if (PQresultStatus(res) != PGRES_TUPLES_OK)
            fail_msg("%s", PQresultErrorMessage(res));
        for (int r = 0; r < PQntuples(res); r++) {
            const char *json = PQgetvalue(res, r, 0);
            const char *text = PQgetvalue(res, r, 1);
            int64_t want = strtoll(PQgetvalue(res, r, 2), NULL, 10);
            json_object *o = json_tokener_parse(json), *v;
            assert_true(json_object_object_get_ex(o, "sent_at", &v));
            int64_t got_json = 0, got_text = 0;
            if (pgcw_time_parse(json_object_get_string(v), &got_json) != PGCW_OK ||
                got_json != want)
                fail_msg("%s: json %s -> %lld, server says %lld", zones[z],
                         json_object_get_string(v), (long long)got_json, (long long)want);
            if (pgcw_time_parse(text, &got_text) != PGCW_OK || got_text != want)
                fail_msg("%s: text %s -> %lld, server says %lld", zones[z], text,
                         (long long)got_text, (long long)want);
            json_object_put(o);
            checked++;
        }
        PQclear(res);
    }
    assert_int_equal(checked, (2001 + 9) * (sizeof zones / sizeof zones[0]));
    PQfinish(conn);
}

/* Our formatted timestamps are read back by the server as the same instant. */
static void test_server_reads_our_format(void **state)
{
    (void)state;
    PGconn *conn = pgtest_connect();
    pgtest_exec(conn, "SET TimeZone = 'Asia/Kathmandu'");
    static const int64_t samples[] = {0,
                                      -1,
                                      INT64_C(1714566896123456),
                                      INT64_C(-62135596800000000),
                                      INT64_C(253402300799999999),
                                      INT64_C(951868799999999)};
    for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++) {
        char ts[32], sql[160];
        pgcw_time_format(samples[i], ts, sizeof ts);
        snprintf(sql, sizeof sql,
                 "SELECT (extract(epoch FROM timestamptz '%s') * 1000000)::bigint", ts);
        assert_int_equal(pgtest_query_int(conn, sql), samples[i]);
    }
    PQfinish(conn);
}

static PGnotify *wait_notify(PGconn *conn, int64_t timeout_ms)
{
    int64_t deadline = pgtest_now_ms() + timeout_ms;
    for (;;) {
        if (!PQconsumeInput(conn))
            fail_msg("consume: %s", PQerrorMessage(conn));
        PGnotify *n = PQnotifies(conn);
        if (n)
            return n;
        int64_t left = deadline - pgtest_now_ms();
        if (left <= 0)
            fail_msg("no notification within %lld ms", (long long)timeout_ms);
        struct pollfd p = {.fd = PQsocket(conn), .events = POLLIN};
        poll(&p, 1, (int)left);
    }
}

/* The Python pgcachewatch trigger's payload, built and delivered by the server. */
static void test_python_trigger_notification(void **state)
{
    (void)state;
    PGconn *conn = pgtest_connect();
    pgtest_exec(conn, "SET TimeZone = 'America/St_Johns';"
                      "CREATE TABLE py_orders (id int PRIMARY KEY);"
                      "CREATE FUNCTION py_notify() RETURNS trigger LANGUAGE plpgsql AS $$"
                      " BEGIN PERFORM pg_notify('pgcachewatch', json_build_object("
                      "   'operation', lower(TG_OP), 'table', TG_TABLE_NAME,"
                      "   'sent_at', now())::text); RETURN NULL; END $$;"
                      "CREATE TRIGGER py_orders_notify AFTER INSERT OR UPDATE OR DELETE"
                      "  ON py_orders FOR EACH STATEMENT EXECUTE FUNCTION py_notify();"
                      "LISTEN pgcachewatch;");
    static const struct {
        const char *sql;
        pgcw_op op;
    } steps[] = {{"INSERT INTO py_orders VALUES (1)", PGCW_OP_INSERT},
                 {"UPDATE py_orders SET id = 2", PGCW_OP_UPDATE},
                 {"DELETE FROM py_orders", PGCW_OP_DELETE}};
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        pgtest_exec(conn, "BEGIN");
        pgtest_exec(conn, steps[i].sql);
        long long now_us = pgtest_query_int(
            conn, "SELECT (extract(epoch FROM now()) * 1000000)::bigint");
        pgtest_exec(conn, "COMMIT");
        PGnotify *n = wait_notify(conn, 10000);
        pgcw_event *e = NULL;
        char err[256];
        /* pgcw_event_parse(PGCW_FORMAT_TABLE_CHANGE, ...) with the reason it refuses. */
        pgcw_status st =
            pgcw__event_decode(PGCW_FORMAT_TABLE_CHANGE, n->relname, n->extra,
                               strlen(n->extra), 0, &e, err, sizeof err);
        if (st != PGCW_OK)
            fail_msg("%s: %s", n->extra, err);
        assert_string_equal(e->channel, "pgcachewatch");
        assert_int_equal(e->operation, steps[i].op);
        assert_string_equal(e->table, "py_orders");
        assert_null(e->schema);
        assert_int_equal(e->sent_at_us, now_us);
        assert_string_equal(e->payload, n->extra);
        PQfreemem(n);
        pgcw_event_free(e);
    }
    PQfinish(conn);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_server_timestamps),
        cmocka_unit_test(test_server_reads_our_format),
        cmocka_unit_test(test_python_trigger_notification),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
