/*
 * test_conn.c - the conn module without a server: how settings are resolved (a
 * connection string or $PGDSN, keyword/value pairs that override it, derived
 * keepalives, the connect timeout), hostile values (a password never reaches a
 * message, whatever libpq chokes on), the SQLSTATE in connection errors, what counts
 * as permanent, the backoff's bounds, saturating time, and the public handle
 * failing fast and clearly.
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

static const char *get(const pgcw__conn_params *p, const char *key)
{
    return pgcw__conn_params_get(p, key);
}

static void init(pgcw__conn_params *p, const pgcw_conn_opts *o)
{
    assert_int_equal(pgcw__conn_params_init(p, o), PGCW_OK);
}

static void test_conninfo_then_pairs(void **state)
{
    (void)state;
    unsetenv("PGDSN");
    static const char *const keys[] = {"host", "port", "password", "dbname", NULL};
    static const char *const vals[] = {"/tmp/o'dd dir\\x", "", "p w'\\", "plain=name",
                                       NULL};
    pgcw_conn_opts o = {
        .conninfo = "host=h1 port=5433 dbname=d1 user=u1", .keys = keys, .values = vals};
    pgcw__conn_params p;
    init(&p, &o);
    assert_null(p.error);
    /* Later entries override earlier ones; values are passed as they are, quotes,
     * spaces and backslashes included (no hand-quoting anywhere). */
    assert_string_equal(get(&p, "host"), "/tmp/o'dd dir\\x");
    assert_string_equal(get(&p, "port"), "5433"); /* "" is skipped */
    assert_string_equal(get(&p, "user"), "u1");
    assert_string_equal(get(&p, "dbname"), "plain=name"); /* never expanded */
    assert_string_equal(get(&p, "password"), "p w'\\");
    assert_string_equal(p.password, "p w'\\");
    assert_string_equal(get(&p, "fallback_application_name"), "pgcachewatch");
    assert_null(p.keys[p.n]);
    assert_null(p.values[p.n]);
    pgcw__conn_params_free(&p);

    /* A URI works, and a string that is neither is a database name. */
    o = (pgcw_conn_opts){.conninfo = "postgresql://u2@h2:6000/d2?application_name=x",
                         .application_name = "mine"};
    init(&p, &o);
    assert_string_equal(get(&p, "host"), "h2");
    assert_string_equal(get(&p, "port"), "6000");
    assert_string_equal(get(&p, "dbname"), "d2");
    assert_string_equal(get(&p, "fallback_application_name"), "mine");
    pgcw__conn_params_free(&p);
    o = (pgcw_conn_opts){.conninfo = "orders_db"};
    init(&p, &o);
    assert_string_equal(get(&p, "dbname"), "orders_db");
    pgcw__conn_params_free(&p);
}

static void test_pgdsn_fallback(void **state)
{
    (void)state;
    setenv("PGDSN", "host=from_env dbname=envdb", 1);
    pgcw__conn_params p;
    init(&p, NULL);
    assert_string_equal(get(&p, "host"), "from_env");
    assert_string_equal(get(&p, "dbname"), "envdb");
    pgcw__conn_params_free(&p);
    /* An explicit conninfo wins; an empty $PGDSN is no DSN. */
    pgcw_conn_opts o = {.conninfo = "host=explicit"};
    init(&p, &o);
    assert_string_equal(get(&p, "host"), "explicit");
    assert_null(get(&p, "dbname"));
    pgcw__conn_params_free(&p);
    setenv("PGDSN", "", 1);
    init(&p, NULL);
    assert_null(get(&p, "host"));
    assert_null(p.error);
    pgcw__conn_params_free(&p);
    unsetenv("PGDSN");
}

/* The values of the issue's examples, and the shapes around them: every part of a
 * connection string libpq cannot parse stays out of the message. */
static void test_parse_errors_hide_every_value(void **state)
{
    (void)state;
    static const struct {
        const char *conninfo;
        const char *secrets[3];
    } cases[] = {
        {"host=h user=u password=Zq9 Leak7", {"Zq9", "Leak7", NULL}},
        {"postgresql://u:sekr1t%zz@h/db", {"sekr1t", NULL, NULL}},
        {"postgresql://u:s3cr%00et@h/db", {"s3cr", "et@h", NULL}},
        {"host=h password='unfinished s3cret", {"s3cret", "unfinished", NULL}},
        {"password=a bkey=cval", {"bkey", "cval", NULL}},
        {"postgresql://u:pw@h/db?sslm0de=Tops3cret", {"Tops3cret", "sslm0de", NULL}},
        {"postgresql://u:pw@[::1/db", {"pw@", NULL, NULL}},
        /* The quoted text may hold quotes, even ones that look like libpq's own
         * literals (found by fuzz/fuzz_conn_params.c). */
        {"postgresql://u:b`/db?s`\"Hid3den@", {"Hid3den", NULL, NULL}},
        {"]\"Hid3den password=x", {"Hid3den", "password", NULL}},
        {"\"=\" Hid3den", {"Hid3den", NULL, NULL}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        pgcw_conn_opts o = {.conninfo = cases[i].conninfo};
        pgcw__conn_params p;
        init(&p, &o);
        if (!p.error)
            fail_msg("[%s] was accepted", cases[i].conninfo);
        assert_non_null(strstr(p.error, "invalid connection string"));
        for (int k = 0; k < 3 && cases[i].secrets[k]; k++)
            if (strstr(p.error, cases[i].secrets[k]))
                fail_msg("[%s]: message [%s] shows [%s]", cases[i].conninfo, p.error,
                         cases[i].secrets[k]);
        assert_null(strchr(p.error, '\n'));

        /* The same through the public handle: connect refuses at once. */
        pgcw_conn *c = NULL;
        assert_int_equal(pgcw_conn_new(&o, &c), PGCW_OK);
        assert_int_equal(pgcw_conn_connect(c), PGCW_EINVAL);
        const char *msg = pgcw_conn_errmsg(c);
        assert_non_null(strstr(msg, "invalid connection string"));
        for (int k = 0; k < 3 && cases[i].secrets[k]; k++)
            assert_null(strstr(msg, cases[i].secrets[k]));
        assert_null(pgcw_conn_pg(c));
        pgcw_conn_free(c);
        pgcw__conn_params_free(&p);
    }
    /* An unknown keyword among the pairs is named, its value is not. */
    static const char *const keys[] = {"hostt", NULL};
    static const char *const vals[] = {"Val1e", NULL};
    pgcw_conn_opts o = {.keys = keys, .values = vals};
    pgcw__conn_params p;
    init(&p, &o);
    assert_non_null(p.error);
    assert_non_null(strstr(p.error, "\"hostt\""));
    assert_null(strstr(p.error, "Val1e"));
    pgcw__conn_params_free(&p);
}

static void test_scrub_password(void **state)
{
    (void)state;
    char msg[64] = "auth for pw1 failed; pw1 again; pw";
    pgcw__scrub_password(msg, sizeof msg, "pw1");
    assert_string_equal(msg, "auth for ******** failed; ******** again; pw");
    pgcw__scrub_password(msg, sizeof msg, NULL);
    pgcw__scrub_password(msg, sizeof msg, "");
    assert_string_equal(msg, "auth for ******** failed; ******** again; pw");
    /* A message that would not fit once masked is withheld, never cut mid-password. */
    char small[12] = "xx secret!";
    pgcw__scrub_password(small, sizeof small, "secret");
    assert_null(strstr(small, "secret"));
}

static void test_stall_defaults(void **state)
{
    (void)state;
    pgcw__conn_params p;
    init(&p, NULL);
    /* 20 s: idle 10 s, then 4 probes 2 s apart; unacknowledged data 20 s. */
    assert_string_equal(get(&p, "keepalives"), "1");
    assert_string_equal(get(&p, "keepalives_idle"), "10");
    assert_string_equal(get(&p, "keepalives_interval"), "2");
    assert_string_equal(get(&p, "keepalives_count"), "4");
    assert_string_equal(get(&p, "tcp_user_timeout"), "20000");
    pgcw__conn_params_free(&p);

    pgcw_conn_opts o = {.stall_timeout_ms = 3000};
    init(&p, &o);
    assert_string_equal(get(&p, "keepalives_idle"), "1");
    assert_string_equal(get(&p, "keepalives_interval"), "1");
    assert_string_equal(get(&p, "tcp_user_timeout"), "3000");
    pgcw__conn_params_free(&p);

    /* What the caller set wins; < 0 leaves them all to libpq. */
    o = (pgcw_conn_opts){.conninfo = "keepalives_idle=77 tcp_user_timeout=5"};
    init(&p, &o);
    assert_string_equal(get(&p, "keepalives_idle"), "77");
    assert_string_equal(get(&p, "tcp_user_timeout"), "5");
    assert_string_equal(get(&p, "keepalives_count"), "4");
    pgcw__conn_params_free(&p);
    o = (pgcw_conn_opts){.stall_timeout_ms = -1};
    init(&p, &o);
    assert_null(get(&p, "keepalives"));
    assert_null(get(&p, "tcp_user_timeout"));
    pgcw__conn_params_free(&p);
    /* Huge values saturate instead of overflowing an int in the kernel. */
    o = (pgcw_conn_opts){.stall_timeout_ms = INT64_MAX};
    init(&p, &o);
    assert_string_equal(get(&p, "tcp_user_timeout"), "2147483647");
    assert_string_equal(get(&p, "keepalives_idle"), "86400");
    pgcw__conn_params_free(&p);
}

static void test_connect_timeout(void **state)
{
    (void)state;
    unsetenv("PGCONNECT_TIMEOUT");
    pgcw__conn_params p;
    init(&p, NULL);
    assert_int_equal(p.connect_timeout_us, 10000000);
    pgcw__conn_params_free(&p);
    pgcw_conn_opts o = {.conninfo = "connect_timeout=3"};
    init(&p, &o);
    assert_int_equal(p.connect_timeout_us, 3000000);
    pgcw__conn_params_free(&p);
    setenv("PGCONNECT_TIMEOUT", "4", 1);
    init(&p, NULL);
    assert_int_equal(p.connect_timeout_us, 4000000);
    pgcw__conn_params_free(&p);
    o.connect_timeout_ms = 250; /* the option wins over both */
    init(&p, &o);
    assert_int_equal(p.connect_timeout_us, 250000);
    pgcw__conn_params_free(&p);
    unsetenv("PGCONNECT_TIMEOUT");
    /* libpq's rule: 0 or less is forever; and huge option values are forever, not
     * an overflow (they used to wrap: UBSan's signed overflow). */
    o = (pgcw_conn_opts){.conninfo = "connect_timeout=0"};
    init(&p, &o);
    assert_int_equal(p.connect_timeout_us, PGCW__NEVER);
    pgcw__conn_params_free(&p);
    o = (pgcw_conn_opts){.connect_timeout_ms = INT64_MAX,
                         .reconnect_min_ms = INT64_MAX,
                         .reconnect_max_ms = INT64_MAX};
    init(&p, &o);
    assert_int_equal(p.connect_timeout_us, INT64_MAX);
    assert_int_equal(p.reconnect_min_us, INT64_MAX);
    assert_int_equal(p.reconnect_max_us, INT64_MAX);
    pgcw__conn_params_free(&p);
    o = (pgcw_conn_opts){.reconnect_min_ms = 500, .reconnect_max_ms = 10};
    init(&p, &o);
    assert_int_equal(p.reconnect_min_us, 500000);
    assert_int_equal(p.reconnect_max_us, 500000); /* the cap is at least the start */
    pgcw__conn_params_free(&p);
}

static void test_connect_message(void **state)
{
    (void)state;
    char buf[512], state5[6];
    pgcw__connect_message("connection to server on socket \"/tmp/s/.s.PGSQL.5432\" "
                          "failed: FATAL:  3D000: database \"nope\" does not exist\n"
                          "LOCATION:  InitPostgres, postinit.c:885\n",
                          buf, sizeof buf, state5);
    assert_string_equal(buf, "connection to server on socket \"/tmp/s/.s.PGSQL.5432\" "
                             "failed: FATAL:  database \"nope\" does not exist "
                             "(SQLSTATE 3D000)");
    assert_string_equal(state5, "3D000");
    pgcw__connect_message("connection to server at \"127.0.0.1\", port 1 failed: "
                          "Connection refused\n\tIs the server running on that host?\n",
                          buf, sizeof buf, state5);
    assert_string_equal(state5, "");
    assert_null(strstr(buf, "SQLSTATE"));
    assert_null(strchr(buf, '\n'));
    assert_non_null(strstr(buf, "Connection refused"));
    pgcw__connect_message(NULL, buf, sizeof buf, state5);
    assert_string_equal(state5, "");

    assert_true(pgcw__sqlstate_permanent("28000"));
    assert_true(pgcw__sqlstate_permanent("28P01"));
    assert_true(pgcw__sqlstate_permanent("3D000"));
    assert_true(pgcw__sqlstate_permanent("42501"));  /* no REPLICATION, no CONNECT */
    assert_false(pgcw__sqlstate_permanent("57P03")); /* starting up: retry */
    assert_false(pgcw__sqlstate_permanent("53300")); /* too many connections */
    assert_false(pgcw__sqlstate_permanent(""));
    assert_false(pgcw__sqlstate_permanent(NULL));
    assert_false(pgcw__sqlstate_permanent("28"));
}

static void test_backoff(void **state)
{
    (void)state;
    pgcw__backoff b;
    pgcw__backoff_init(&b, 100, 1000, 42);
    int64_t base = 100;
    for (int i = 0; i < 40; i++) {
        int64_t d = pgcw__backoff_next(&b);
        assert_true(d >= base / 2 && d <= base);
        base = base * 2 > 1000 ? 1000 : base * 2;
    }
    pgcw__backoff_reset(&b);
    int64_t d = pgcw__backoff_next(&b);
    assert_true(d >= 50 && d <= 100);
    /* Two seeds do not come back in lockstep. */
    pgcw__backoff x, y;
    pgcw__backoff_init(&x, 1000000, 1000000, 1);
    pgcw__backoff_init(&y, 1000000, 1000000, 2);
    int same = 0;
    for (int i = 0; i < 20; i++)
        same += pgcw__backoff_next(&x) == pgcw__backoff_next(&y);
    assert_true(same < 5);
    /* A cap of forever never overflows. */
    pgcw__backoff_init(&b, INT64_MAX / 4, INT64_MAX, 7);
    for (int i = 0; i < 10; i++)
        assert_true(pgcw__backoff_next(&b) > 0);
}

static void test_saturating_time(void **state)
{
    (void)state;
    assert_int_equal(pgcw__ms_to_us(INT64_MAX), INT64_MAX);
    assert_int_equal(pgcw__ms_to_us(INT64_MIN), INT64_MIN);
    assert_int_equal(pgcw__ms_to_us(9223372036854776), INT64_MAX); /* just past */
    assert_int_equal(pgcw__ms_to_us(9223372036854775), 9223372036854775000);
    assert_int_equal(pgcw__deadline_in_ms(INT64_MAX), PGCW__NEVER);
    assert_int_equal(pgcw__deadline_in_ms(-1), PGCW__NEVER);
    assert_int_equal(pgcw__deadline_in_us(INT64_MAX - 1), PGCW__NEVER);
    assert_int_equal(pgcw__deadline_left_ms(PGCW__NEVER), -1);
    assert_int_equal(pgcw__deadline_left_ms(0), 0);
    int64_t d = pgcw__deadline_in_ms(1000);
    int64_t left = pgcw__deadline_left_ms(d);
    assert_true(left > 900 && left <= 1000);
    assert_int_equal(pgcw__ms_or(0, 7), 7000);
    assert_int_equal(pgcw__ms_or(INT64_MAX, 7), INT64_MAX);
}

/* No server: a socket that is not there fails at once, with the path and no
 * SQLSTATE (it is not the server speaking), and is not permanent. */
static void test_handle_without_server(void **state)
{
    (void)state;
    pgcw_conn_opts o = {.conninfo = "host=/nonexistent/pgcw port=1 user=x password=HIDE"};
    pgcw_conn *c = NULL;
    assert_int_equal(pgcw_conn_new(&o, &c), PGCW_OK);
    assert_string_equal(pgcw_conn_errmsg(c), "");
    assert_null(pgcw_conn_pg(c));
    assert_int_equal(pgcw_conn_connect(c), PGCW_ECONNECT);
    assert_non_null(strstr(pgcw_conn_errmsg(c), "could not connect"));
    assert_non_null(strstr(pgcw_conn_errmsg(c), "/nonexistent/pgcw"));
    assert_null(strstr(pgcw_conn_errmsg(c), "HIDE"));
    assert_string_equal(pgcw_conn_sqlstate(c), "");
    assert_null(pgcw_conn_pg(c));
    pgcw_conn_close(c);
    pgcw_conn_free(c);
    pgcw_conn_free(NULL);
    assert_int_equal(pgcw_conn_new(NULL, NULL), PGCW_EINVAL);
    assert_int_equal(pgcw_conn_connect(NULL), PGCW_EINVAL);
    assert_string_equal(pgcw_conn_errmsg(NULL), "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conninfo_then_pairs),
        cmocka_unit_test(test_pgdsn_fallback),
        cmocka_unit_test(test_parse_errors_hide_every_value),
        cmocka_unit_test(test_scrub_password),
        cmocka_unit_test(test_stall_defaults),
        cmocka_unit_test(test_connect_timeout),
        cmocka_unit_test(test_connect_message),
        cmocka_unit_test(test_backoff),
        cmocka_unit_test(test_saturating_time),
        cmocka_unit_test(test_handle_without_server),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
