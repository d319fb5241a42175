/*
 * test_conn_pg.c - connections against a real server: the settings reach the
 * socket (keepalives and tcp_user_timeout, read back with getsockopt), a server
 * that accepts and never answers costs one connect timeout (the handle and the
 * watcher), errors that retrying cannot fix are told apart with their SQLSTATE, the
 * watcher's session is immune to idle_session_timeout, a byte that is not UTF-8 in
 * a SQL_ASCII database costs one skipped payload rather than the connection, and
 * timeouts of INT64_MAX milliseconds mean forever instead of overflowing.
 */
#define _GNU_SOURCE
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <pgcachewatch/pgcachewatch.h>

#include "pgtest.h"

#define WAIT_MS 15000

static int sockopt(int fd, int level, int name)
{
    int v = -1;
    socklen_t len = sizeof v;
    assert_int_equal(getsockopt(fd, level, name, &v, &len), 0);
    return v;
}

/* The server's TCP port (the fixture's DSN uses the unix socket). */
static const char *tcp_port(void)
{
    static char port[16];
    const char *p = strstr(pgtest_server_dsn(), "port=");
    assert_non_null(p);
    snprintf(port, sizeof port, "%.*s", (int)strcspn(p + 5, " "), p + 5);
    return port;
}

static pgcw_conn *connect_tcp(int64_t stall_ms)
{
    static const char *keys[] = {"host", "port", NULL};
    const char *vals[] = {"127.0.0.1", tcp_port(), NULL};
    pgcw_conn_opts o = {.conninfo = pgtest_dsn(),
                        .keys = keys,
                        .values = vals,
                        .stall_timeout_ms = stall_ms};
    pgcw_conn *c = NULL;
    assert_int_equal(pgcw_conn_new(&o, &c), PGCW_OK);
    if (pgcw_conn_connect(c) != PGCW_OK)
        fail_msg("connect: %s", pgcw_conn_errmsg(c));
    assert_string_equal(pgcw_conn_errmsg(c), "");
    return c;
}

static void test_socket_options(void **state)
{
    (void)state;
    pgcw_conn *c = connect_tcp(0);
    PGconn *pg = pgcw_conn_pg(c);
    assert_non_null(pg);
    char *v = pgtest_query_value(pg, "SELECT application_name FROM pg_stat_activity"
                                     " WHERE pid = pg_backend_pid()");
    assert_string_equal(v, "pgcachewatch");
    free(v);
    int fd = PQsocket(pg);
    assert_int_equal(sockopt(fd, SOL_SOCKET, SO_KEEPALIVE), 1);
    assert_int_equal(sockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE), 10);
    assert_int_equal(sockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL), 2);
    assert_int_equal(sockopt(fd, IPPROTO_TCP, TCP_KEEPCNT), 4);
    assert_int_equal(sockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT), 20000);
    pgcw_conn_free(c);

    c = connect_tcp(6000);
    fd = PQsocket(pgcw_conn_pg(c));
    assert_int_equal(sockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE), 3);
    assert_int_equal(sockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL), 1);
    assert_int_equal(sockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT), 6000);
    pgcw_conn_free(c);

    /* < 0: libpq's and the kernel's defaults (no user timeout). */
    c = connect_tcp(-1);
    fd = PQsocket(pgcw_conn_pg(c));
    assert_int_equal(sockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT), 0);
    pgcw_conn_free(c);

    /* The watcher's LISTEN connection is built the same way. */
    static const char *keys[] = {"host", "port", NULL};
    const char *vals[] = {"127.0.0.1", tcp_port(), NULL};
    pgcw_conn_opts co = {.conninfo = pgtest_dsn(), .keys = keys, .values = vals};
    pgcw_watcher *w = NULL;
    assert_int_equal(pgcw_watcher_new(NULL, &co, &w), PGCW_OK);
    if (pgcw_watcher_wait_healthy(w, WAIT_MS) != PGCW_OK)
        fail_msg("watcher: %s", pgcw_watcher_errmsg(w));
    fd = pgcw_watcher_fd(w);
    assert_int_equal(sockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE), 10);
    assert_int_equal(sockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT), 20000);
    pgcw_watcher_free(w);
}

/* A server that accepts TCP and never answers: every attempt ends at the connect
 * timeout, for the handle and for the watcher alike. */
static void test_silent_server(void **state)
{
    (void)state;
    int port;
    int hole = pgtest_blackhole_open(&port);
    char dsn[128];
    snprintf(dsn, sizeof dsn, "host=127.0.0.1 port=%d user=x dbname=x", port);

    pgcw_conn_opts o = {.conninfo = dsn, .connect_timeout_ms = 300};
    pgcw_conn *c = NULL;
    assert_int_equal(pgcw_conn_new(&o, &c), PGCW_OK);
    int64_t t0 = pgtest_now_ms();
    assert_int_equal(pgcw_conn_connect(c), PGCW_ETIMEDOUT);
    int64_t took = pgtest_now_ms() - t0;
    assert_true(took >= 290 && took < 5000);
    assert_string_equal(pgcw_conn_errmsg(c),
                        "could not connect: timeout expired after 300 ms");
    pgcw_conn_free(c);

    /* libpq's own spelling of the timeout is honoured too (whole seconds). */
    char dsn1[160];
    snprintf(dsn1, sizeof dsn1, "%s connect_timeout=1", dsn);
    o = (pgcw_conn_opts){.conninfo = dsn1};
    assert_int_equal(pgcw_conn_new(&o, &c), PGCW_OK);
    t0 = pgtest_now_ms();
    assert_int_equal(pgcw_conn_connect(c), PGCW_ETIMEDOUT);
    took = pgtest_now_ms() - t0;
    assert_true(took >= 990 && took < 6000);
    pgcw_conn_free(c);

    pgcw_conn_opts wo = {.conninfo = dsn, .connect_timeout_ms = 200};
    pgcw_watcher *w = NULL;
    assert_int_equal(pgcw_watcher_new(NULL, &wo, &w), PGCW_OK);
    assert_int_equal(pgcw_watcher_wait_healthy(w, 1000), PGCW_ETIMEDOUT);
    assert_non_null(strstr(pgcw_watcher_errmsg(w), "timeout expired after 200 ms"));
    pgcw_watcher_stats st;
    pgcw_watcher_stats_get(w, &st);
    assert_true(st.conn_errors >= 2); /* it kept trying, each attempt bounded */
    pgcw_watcher_free(w);
    close(hole);
}

static void expect_refused(const char *extra, const char *sqlstate, const char *text)
{
    char dsn[1400];
    snprintf(dsn, sizeof dsn, "%s %s", pgtest_server_dsn(), extra);
    pgcw_conn_opts o = {.conninfo = dsn};
    pgcw_conn *c = NULL;
    assert_int_equal(pgcw_conn_new(&o, &c), PGCW_OK);
    assert_int_equal(pgcw_conn_connect(c), PGCW_ECONNECT);
    assert_string_equal(pgcw_conn_sqlstate(c), sqlstate);
    const char *msg = pgcw_conn_errmsg(c);
    if (!strstr(msg, text))
        fail_msg("[%s] does not say [%s]", msg, text);
    char tail[32];
    snprintf(tail, sizeof tail, "(SQLSTATE %s)", sqlstate);
    assert_non_null(strstr(msg, tail));
    assert_null(strstr(msg, "LOCATION"));
    assert_null(strchr(msg, '\n'));
    pgcw_conn_free(c);

    /* The watcher reports it at once instead of retrying for the whole wait. */
    pgcw_watcher *w = NULL;
    assert_int_equal(pgcw_watcher_new(NULL, &o, &w), PGCW_OK);
    int64_t t0 = pgtest_now_ms();
    assert_int_equal(pgcw_watcher_wait_healthy(w, 30000), PGCW_ECONNECT);
    assert_true(pgtest_now_ms() - t0 < 10000);
    assert_non_null(strstr(pgcw_watcher_errmsg(w), text));
    pgcw_watcher_free(w);
}

static void test_permanent_errors(void **state)
{
    (void)state;
    expect_refused("dbname=pgcw_no_such_db", "3D000",
                   "database \"pgcw_no_such_db\" does not exist");
    expect_refused("user=pgcw_no_such_role", "28000",
                   "role \"pgcw_no_such_role\" does not exist");
}

static void drop_database(PGconn *admin, const char *name)
{
    char sql[128];
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", name);
    pgtest_exec(admin, sql);
}

static char *dsn_for(const char *db)
{
    char *dsn = malloc(1400);
    assert_non_null(dsn);
    snprintf(dsn, 1400, "%s dbname=%s", pgtest_server_dsn(), db);
    return dsn;
}

/* Waits until w's sub has an event, driving w from this thread. */
static const pgcw_event *next_event(pgcw_watcher *w, pgcw_sub *s)
{
    const pgcw_event *e = NULL;
    int64_t until = pgtest_now_ms() + WAIT_MS;
    while (pgcw_sub_try_get(s, &e) != PGCW_OK) {
        if (pgtest_now_ms() > until)
            fail_msg("no event: %s", pgcw_watcher_errmsg(w));
        assert_int_equal(pgcw_watcher_run(w, 20), PGCW_OK);
    }
    return e;
}

/* A server-side idle_session_timeout shorter than the ping interval would kill a
 * LISTEN session over and over (it is always idle to the server): the watcher's
 * session is exempt, while an ordinary idle session on the same database dies. */
static void test_idle_session_timeout(void **state)
{
    (void)state;
    PGconn *admin = pgtest_connect();
    drop_database(admin, "pgcw_idle");
    pgtest_exec(admin, "CREATE DATABASE pgcw_idle");
    pgtest_exec(admin, "ALTER DATABASE pgcw_idle SET idle_session_timeout = '300ms'");
    char *dsn = dsn_for("pgcw_idle");

    PGconn *idle = PQconnectdb(dsn);
    assert_int_equal(PQstatus(idle), CONNECTION_OK);
    char *v = pgtest_query_value(idle, "SHOW idle_session_timeout");
    assert_string_equal(v, "300ms");
    free(v);

    pgcw_conn_opts co = {.conninfo = dsn};
    pgcw_watcher *w = NULL;
    assert_int_equal(pgcw_watcher_new(NULL, &co, &w), PGCW_OK);
    pgcw_sub *s = NULL;
    assert_int_equal(pgcw_sub_new(w, NULL, &s), PGCW_OK);
    if (pgcw_watcher_wait_healthy(w, WAIT_MS) != PGCW_OK)
        fail_msg("watcher: %s", pgcw_watcher_errmsg(w));
    assert_int_equal(pgcw_watcher_run(w, 1500), PGCW_OK); /* 5 timeouts' worth */
    pgcw_watcher_stats st;
    pgcw_watcher_stats_get(w, &st);
    assert_int_equal(st.disconnects, 0);
    assert_true(pgcw_watcher_healthy(w));
    assert_int_equal(pgcw_watcher_epoch(w), 1);

    /* The ordinary session was ended by the server meanwhile: the setting is real. */
    PGresult *r = PQexec(idle, "SELECT 1");
    assert_int_not_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    PQclear(r);
    PQfinish(idle);

    /* And notifications still flow (sent from a fresh, busy session). */
    PGconn *sender = PQconnectdb(dsn);
    assert_int_equal(PQstatus(sender), CONNECTION_OK);
    pgtest_exec(sender, "SELECT pg_notify('" PGCW_DEFAULT_CHANNEL "', "
                        "'{\"operation\":\"insert\",\"table\":\"t\","
                        "\"sent_at\":\"2026-01-01T00:00:00Z\"}')");
    PQfinish(sender);
    const pgcw_event *e = next_event(w, s);
    assert_int_equal(e->kind, PGCW_EVENT_CHANGE);
    assert_string_equal(e->table, "t");
    pgcw_event_free(e);

    pgcw_sub_free(s);
    pgcw_watcher_free(w);
    drop_database(admin, "pgcw_idle");
    free(dsn);
    PQfinish(admin);
}

typedef struct logcap {
    int malformed;
} logcap;

static void cap_log(void *ctx, pgcw_log_level level, const char *msg)
{
    logcap *c = ctx;
    if (level == PGCW_LOG_WARNING && strstr(msg, "malformed notification"))
        c->malformed++;
}

/* In a SQL_ASCII database any byte can be NOTIFYed. Converting such a payload to
 * UTF-8 makes the server end the session, so one bad NOTIFY would disconnect every
 * watcher: instead the watcher takes the bytes as they are and skips just that
 * payload (a table change must be UTF-8; a cache key may be any bytes). */
static void test_sql_ascii_database(void **state)
{
    (void)state;
    PGconn *admin = pgtest_connect();
    drop_database(admin, "pgcw_ascii");
    pgtest_exec(admin,
                "CREATE DATABASE pgcw_ascii TEMPLATE template0 ENCODING 'SQL_ASCII'"
                " LC_COLLATE 'C' LC_CTYPE 'C'");
    char *dsn = dsn_for("pgcw_ascii");
    const char *channels[] = {"changes", "cache_events"};
    pgcw_payload_format formats[] = {PGCW_FORMAT_TABLE_CHANGE, PGCW_FORMAT_CACHE_KEY};
    logcap cap = {0};
    pgcw_watcher_opts wo = {.channels = channels,
                            .n_channels = 2,
                            .formats = formats,
                            .log = cap_log,
                            .log_ctx = &cap};
    pgcw_conn_opts co = {.conninfo = dsn};
    pgcw_watcher *w = NULL;
    assert_int_equal(pgcw_watcher_new(&wo, &co, &w), PGCW_OK);
    pgcw_sub *s = NULL;
    assert_int_equal(pgcw_sub_new(w, NULL, &s), PGCW_OK);
    if (pgcw_watcher_wait_healthy(w, WAIT_MS) != PGCW_OK)
        fail_msg("watcher: %s", pgcw_watcher_errmsg(w));

    PGconn *sender = PQconnectdb(dsn);
    assert_int_equal(PQstatus(sender), CONNECTION_OK);
    pgtest_exec(sender, "SELECT pg_notify('changes', E'{\"operation\":\"insert\","
                        "\"table\":\"caf\\xe9\",\"sent_at\":\"2026-01-01T00:00:00Z\"}')");
    pgtest_exec(sender, "SELECT pg_notify('cache_events', E'u7\\x1fk\\xff')");
    pgtest_exec(sender, "SELECT pg_notify('changes', '{\"operation\":\"delete\","
                        "\"table\":\"ok\",\"sent_at\":\"2026-01-01T00:00:00Z\"}')");
    PQfinish(sender);

    const pgcw_event *e = next_event(w, s);
    assert_int_equal(e->kind, PGCW_EVENT_KEY);
    assert_int_equal(e->key_len, 2);
    assert_memory_equal(e->key, "k\xff", 2);
    assert_int_equal(e->version, 7);
    pgcw_event_free(e);
    e = next_event(w, s);
    assert_int_equal(e->kind, PGCW_EVENT_CHANGE);
    assert_string_equal(e->table, "ok");
    pgcw_event_free(e);

    pgcw_watcher_stats st;
    pgcw_watcher_stats_get(w, &st);
    assert_int_equal(st.malformed, 1);
    assert_int_equal(st.disconnects, 0);
    assert_int_equal(cap.malformed, 1);
    assert_true(pgcw_watcher_healthy(w));
    assert_int_equal(pgcw_watcher_epoch(w), 1);

    pgcw_sub_free(s);
    pgcw_watcher_free(w);
    drop_database(admin, "pgcw_ascii");
    free(dsn);
    PQfinish(admin);
}

/* Millisecond options of INT64_MAX mean "forever": connecting works, and a ping
 * that may wait forever never counts as lost (both used to overflow ms * 1000). */
static void test_huge_timeouts(void **state)
{
    (void)state;
    pgcw_watcher_opts wo = {.ping_interval_ms = 50, .ping_timeout_ms = INT64_MAX};
    pgcw_conn_opts co = {.conninfo = pgtest_dsn(),
                         .connect_timeout_ms = INT64_MAX,
                         .reconnect_min_ms = INT64_MAX,
                         .reconnect_max_ms = INT64_MAX,
                         .stall_timeout_ms = INT64_MAX};
    pgcw_watcher *w = NULL;
    assert_int_equal(pgcw_watcher_new(&wo, &co, &w), PGCW_OK);
    if (pgcw_watcher_wait_healthy(w, WAIT_MS) != PGCW_OK)
        fail_msg("watcher: %s", pgcw_watcher_errmsg(w));
    assert_int_equal(pgcw_watcher_run(w, 600), PGCW_OK); /* a dozen pings */
    pgcw_watcher_stats st;
    pgcw_watcher_stats_get(w, &st);
    assert_int_equal(st.disconnects, 0);
    assert_true(pgcw_watcher_healthy(w));
    assert_true(pgcw_watcher_timeout_ms(w) <= 50); /* the next ping is due soon */
    pgcw_watcher_free(w);

    /* An interval of forever: no ping, no deadline at all. */
    wo = (pgcw_watcher_opts){.ping_interval_ms = INT64_MAX};
    assert_int_equal(pgcw_watcher_new(&wo, &co, &w), PGCW_OK);
    if (pgcw_watcher_wait_healthy(w, WAIT_MS) != PGCW_OK)
        fail_msg("watcher: %s", pgcw_watcher_errmsg(w));
    assert_int_equal(pgcw_watcher_timeout_ms(w), -1);
    pgcw_watcher_free(w);

    pgcw_conn *c = NULL;
    assert_int_equal(pgcw_conn_new(&co, &c), PGCW_OK);
    assert_int_equal(pgcw_conn_connect(c), PGCW_OK);
    pgcw_conn_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_socket_options),
        cmocka_unit_test(test_silent_server),
        cmocka_unit_test(test_permanent_errors),
        cmocka_unit_test(test_idle_session_timeout),
        cmocka_unit_test(test_sql_ascii_database),
        cmocka_unit_test(test_huge_timeouts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
