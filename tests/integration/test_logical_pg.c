/*
 * test_logical_pg.c - the logical decoding source against a real server
 * (wal_level=logical): install creates the publication and the slot, a reinstall
 * keeps the slot, uninstall drops both and refuses while the slot is in use;
 * inserts, updates (a key that changes: old and new key), deletes and truncates
 * arrive with their keys, commit LSN and time; a rolled-back transaction yields
 * nothing; a table without replica identity refuses UPDATE until it has one; the
 * confirmed position reaches the server only for delivered commits; a killed
 * walsender resumes with no committed row lost; a missing slot is a clear,
 * permanent error.
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdatomic.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pgcachewatch/pgcachewatch.h>

#include "pgtest.h"
#include "tcpproxy.h"

#define WAIT_MS 20000

static pgcw_watcher *current; /* the watcher the failure messages describe */

static pgcw_install *install_logical(PGconn *c, const char *channel,
                                     const char *const *tables, size_t n)
{
    pgcw_install_opts io = {.channel = channel, .source = PGCW_WATCH_LOGICAL};
    pgcw_install *in = NULL;
    assert_int_equal(pgcw_install_new(&io, &in), PGCW_OK);
    if (pgcw_install_run(in, c, tables, n, NULL) != PGCW_OK)
        fail_msg("install: %s", pgcw_install_errmsg(in));
    return in;
}

static pgcw_watcher *start_watcher(const char *channel, const char *slot)
{
    const char *channels[] = {channel};
    pgcw_watcher_opts wo = {.channels = channels,
                            .n_channels = 1,
                            .source = PGCW_WATCH_LOGICAL,
                            .slot_name = slot,
                            .ping_interval_ms = 500,
                            .queue_capacity = 16384}; /* a 5000-row transaction */
    pgcw_conn_opts co = {
        .conninfo = pgtest_dsn(), .reconnect_min_ms = 20, .reconnect_max_ms = 200};
    pgcw_watcher *w = NULL;
    assert_int_equal(pgcw_watcher_new(&wo, &co, &w), PGCW_OK);
    current = w;
    return w;
}

/* Uninstalls, frees in and closes c. The walsender of a watcher just freed may
 * take a moment to release the slot. */
static void uninstall_when_released(pgcw_install *in, PGconn *c)
{
    int64_t until = pgtest_now_ms() + WAIT_MS;
    while (pgcw_uninstall_run(in, c, NULL) != PGCW_OK) {
        if (pgtest_now_ms() > until)
            fail_msg("uninstall: %s", pgcw_install_errmsg(in));
        pgtest_sleep_ms(20);
    }
    pgcw_install_free(in);
    PQfinish(c);
}

static long long count_rows(PGconn *c, const char *sql)
{
    return pgtest_query_int(c, sql);
}

static void test_install_and_uninstall(void **state)
{
    (void)state;
    PGconn *c = pgtest_connect();
    pgtest_exec(c, "DROP TABLE IF EXISTS li_a, li_b;"
                   "CREATE TABLE li_a (id int primary key); CREATE TABLE li_b (k text)");
    pgcw_install_opts io = {.channel = "Li_Chan", .source = PGCW_WATCH_LOGICAL};
    pgcw_install *in = NULL;
    assert_int_equal(pgcw_install_new(&io, &in), PGCW_OK);
    const char *one[] = {"li_a"};
    char *sql = NULL;
    assert_int_equal(pgcw_install_sql(in, one, 1, &sql), PGCW_OK);
    assert_non_null(strstr(sql, "CREATE PUBLICATION \"pgcachewatch_li_chan_pub\" FOR "
                                "TABLE \"li_a\""));
    assert_non_null(strstr(sql, "pg_create_logical_replication_slot('pgcachewatch_li_"
                                "chan', 'pgoutput')"));
    pgcw_free(sql);
    /* No tables: refused before anything is sent. */
    assert_int_equal(pgcw_install_sql(in, NULL, 0, &sql), PGCW_EINVAL);
    assert_non_null(strstr(pgcw_install_errmsg(in), "at least one table"));

    assert_int_equal(pgcw_install_run(in, c, one, 1, NULL), PGCW_OK);
    assert_int_equal(count_rows(c, "SELECT count(*) FROM pg_replication_slots WHERE "
                                   "slot_name = 'pgcachewatch_li_chan' AND plugin = "
                                   "'pgoutput' AND database = current_database()"),
                     1);
    assert_int_equal(count_rows(c, "SELECT count(*) FROM pg_publication_tables WHERE "
                                   "pubname = 'pgcachewatch_li_chan_pub'"),
                     1);
    /* Again, with another table set: the same slot, the publication's tables set
     * to exactly these. */
    char *slot_before = pgtest_query_value(
        c, "SELECT restart_lsn::text FROM pg_replication_slots WHERE slot_name = "
           "'pgcachewatch_li_chan'");
    const char *two[] = {"li_a", "li_b"};
    assert_int_equal(pgcw_install_run(in, c, two, 2, NULL), PGCW_OK);
    char *slot_after = pgtest_query_value(
        c, "SELECT restart_lsn::text FROM pg_replication_slots WHERE slot_name = "
           "'pgcachewatch_li_chan'");
    assert_string_equal(slot_before, slot_after);
    free(slot_before);
    free(slot_after);
    assert_int_equal(count_rows(c, "SELECT count(*) FROM pg_publication_tables WHERE "
                                   "pubname = 'pgcachewatch_li_chan_pub'"),
                     2);

    /* UNLOGGED tables are not decoded: PostgreSQL refuses them in a publication,
     * and the install changes nothing. */
    pgtest_exec(c, "DROP TABLE IF EXISTS li_u; CREATE UNLOGGED TABLE li_u (id int)");
    const char *unlogged[] = {"li_a", "li_u"};
    assert_int_equal(pgcw_install_run(in, c, unlogged, 2, NULL), PGCW_EQUERY);
    assert_non_null(strstr(pgcw_install_errmsg(in), "unlogged"));
    assert_int_equal(count_rows(c, "SELECT count(*) FROM pg_publication_tables WHERE "
                                   "pubname = 'pgcachewatch_li_chan_pub'"),
                     2);

    /* A slot of that name that is not ours is refused, and the publication the
     * failed run would have created is not left behind. */
    pgtest_exec(c, "SELECT pg_create_physical_replication_slot('pgcachewatch_other')");
    pgcw_install_opts oo = {.channel = "other", .source = PGCW_WATCH_LOGICAL};
    pgcw_install *other = NULL;
    assert_int_equal(pgcw_install_new(&oo, &other), PGCW_OK);
    assert_int_equal(pgcw_install_run(other, c, one, 1, NULL), PGCW_EQUERY);
    assert_non_null(strstr(pgcw_install_errmsg(other), "is not a pgoutput slot"));
    assert_int_equal(count_rows(c, "SELECT count(*) FROM pg_publication WHERE pubname "
                                   "= 'pgcachewatch_other_pub'"),
                     0);
    pgtest_exec(c, "SELECT pg_drop_replication_slot('pgcachewatch_other')");
    pgcw_install_free(other);

    /* Uninstall: the dry run names both and changes nothing; the run drops both;
     * a second run finds nothing. */
    assert_int_equal(pgcw_uninstall_sql(in, c, &sql), PGCW_OK);
    assert_non_null(strstr(sql, "pg_drop_replication_slot('pgcachewatch_li_chan')"));
    assert_non_null(strstr(sql, "DROP PUBLICATION \"pgcachewatch_li_chan_pub\""));
    pgcw_free(sql);
    assert_int_equal(count_rows(c, "SELECT count(*) FROM pg_replication_slots WHERE "
                                   "slot_name = 'pgcachewatch_li_chan'"),
                     1);
    assert_int_equal(pgcw_uninstall_run(in, c, NULL), PGCW_OK);
    assert_int_equal(count_rows(c, "SELECT count(*) FROM pg_replication_slots WHERE "
                                   "slot_name = 'pgcachewatch_li_chan'"),
                     0);
    assert_int_equal(count_rows(c, "SELECT count(*) FROM pg_publication WHERE pubname "
                                   "= 'pgcachewatch_li_chan_pub'"),
                     0);
    assert_int_equal(pgcw_uninstall_sql(in, c, &sql), PGCW_OK);
    assert_string_equal(sql, "");
    pgcw_free(sql);
    pgcw_install_free(in);
    PQfinish(c);
}

static const pgcw_event *next_change(pgcw_sub *q)
{
    for (;;) {
        const pgcw_event *e = NULL;
        if (pgcw_sub_get(q, WAIT_MS, &e) != PGCW_OK) {
            pgcw_watcher_stats st;
            pgcw_watcher_stats_get(current, &st);
            fail_msg("no event within %d ms (%llu so far, %llu disconnects, %s): %s",
                     WAIT_MS, (unsigned long long)st.events,
                     (unsigned long long)st.disconnects,
                     pgcw_watcher_healthy(current) ? "healthy" : "unhealthy",
                     pgcw_watcher_errmsg(current));
        }
        if (e->kind == PGCW_EVENT_CHANGE)
            return e;
        pgcw_event_free(e);
    }
}

static void expect(const pgcw_event *e, pgcw_op op, const char *table, size_t n_keys,
                   const char *k0, const char *k1)
{
    assert_int_equal(e->operation, op);
    assert_string_equal(e->table, table);
    assert_string_equal(e->schema, "public");
    assert_string_equal(e->channel, "lg_chan");
    assert_int_equal(e->source, PGCW_SOURCE_LOGICAL);
    assert_true(e->lsn > 0);
    assert_true(e->xid != 0);
    assert_true(e->backend_pid > 0);
    if (e->n_keys != n_keys)
        fail_msg("%s on %s: %zu keys, expected %zu", pgcw_op_name(op), table, e->n_keys,
                 n_keys);
    if (n_keys > 0)
        assert_string_equal(e->keys[0], k0);
    if (n_keys > 1)
        assert_string_equal(e->keys[1], k1);
}

static void test_changes_and_rollback(void **state)
{
    (void)state;
    PGconn *c = pgtest_connect();
    pgtest_exec(c, "DROP TABLE IF EXISTS lg_items, lg_regions;"
                   "CREATE TABLE lg_items (id int primary key, name text);"
                   "CREATE TABLE lg_regions (region text, n bigint, note text,"
                   "  PRIMARY KEY (region, n))");
    const char *tables[] = {"lg_items", "lg_regions"};
    pgcw_install *in = install_logical(c, "lg_chan", tables, 2);
    pgcw_watcher *w = start_watcher("lg_chan", NULL);
    pgcw_sub *q = NULL;
    assert_int_equal(pgcw_sub_new(w, NULL, &q), PGCW_OK);
    assert_int_equal(pgcw_watcher_start(w), PGCW_OK);
    if (pgcw_watcher_wait_healthy(w, WAIT_MS) != PGCW_OK)
        fail_msg("watcher: %s", pgcw_watcher_errmsg(w));

    long long before_us = pgtest_query_int(
        c, "SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint");
    pgtest_exec(c, "INSERT INTO lg_items VALUES (1, 'a')");
    const pgcw_event *e = next_change(q);
    expect(e, PGCW_OP_INSERT, "lg_items", 1, "[1]", NULL);
    assert_int_equal(e->n_pk_columns, 1);
    assert_string_equal(e->pk_columns[0], "id");
    assert_true(e->sent_at_us >= before_us);
    uint64_t first_lsn = e->lsn;
    pgcw_event_free(e);

    /* One transaction: its events share the commit's LSN and the transaction's
     * id (the low 32 bits of txid_current()). A key that changes brings the old and
     * the new key; text keys are JSON strings. */
    pgtest_exec(c, "BEGIN;"
                   "UPDATE lg_items SET name = 'b' WHERE id = 1;"
                   "UPDATE lg_items SET id = 2 WHERE id = 1;"
                   "INSERT INTO lg_regions VALUES ('eu \"west\"', 7, 'x')");
    long long xid = pgtest_query_int(c, "SELECT txid_current() % 4294967296");
    pgtest_exec(c, "COMMIT");
    const pgcw_event *t[3];
    for (int i = 0; i < 3; i++)
        t[i] = next_change(q);
    expect(t[0], PGCW_OP_UPDATE, "lg_items", 1, "[1]", NULL);
    expect(t[1], PGCW_OP_UPDATE, "lg_items", 2, "[1]", "[2]");
    expect(t[2], PGCW_OP_INSERT, "lg_regions", 1, "[\"eu \\\"west\\\"\",7]", NULL);
    assert_int_equal(t[2]->n_pk_columns, 2);
    assert_true(t[0]->lsn > first_lsn);
    assert_int_equal(t[0]->lsn, t[1]->lsn);
    assert_int_equal(t[1]->lsn, t[2]->lsn);
    for (int i = 0; i < 3; i++)
        assert_int_equal(t[i]->xid, xid);
    for (int i = 0; i < 3; i++)
        pgcw_event_free(t[i]);

    /* Rolled back: nothing. The next event is the committed insert after it. */
    pgtest_exec(c, "BEGIN; INSERT INTO lg_items VALUES (99, 'no'); ROLLBACK;"
                   "INSERT INTO lg_items VALUES (3, 'c')");
    e = next_change(q);
    expect(e, PGCW_OP_INSERT, "lg_items", 1, "[3]", NULL);
    pgcw_event_free(e);

    pgtest_exec(c, "DELETE FROM lg_items WHERE id = 2");
    e = next_change(q);
    expect(e, PGCW_OP_DELETE, "lg_items", 1, "[2]", NULL);
    pgcw_event_free(e);

    /* One TRUNCATE of two tables: an event for each, no keys. */
    pgtest_exec(c, "TRUNCATE lg_items, lg_regions");
    const pgcw_event *a = next_change(q), *b = next_change(q);
    assert_int_equal(a->operation, PGCW_OP_TRUNCATE);
    assert_int_equal(b->operation, PGCW_OP_TRUNCATE);
    assert_string_not_equal(a->table, b->table);
    assert_int_equal(a->n_keys + b->n_keys, 0);
    assert_int_equal(a->lsn, b->lsn);
    uint64_t last_lsn = a->lsn;
    pgcw_event_free(a);
    pgcw_event_free(b);

    /* A transaction larger than what the source holds before delivering: every
     * row, all with its commit's LSN. */
    pgtest_exec(c,
                "INSERT INTO lg_items SELECT g, 'big' FROM generate_series(10, 5009) g");
    e = next_change(q);
    uint64_t big_lsn = e->lsn;
    assert_true(big_lsn > last_lsn);
    for (int i = 10; i <= 5009; i++) {
        char key[16];
        snprintf(key, sizeof key, "[%d]", i);
        if (i > 10)
            e = next_change(q);
        expect(e, PGCW_OP_INSERT, "lg_items", 1, key, NULL);
        assert_int_equal(e->lsn, big_lsn);
        pgcw_event_free(e);
    }
    last_lsn = big_lsn;

    /* The confirmed position passes the last delivered commit, in the statistics
     * and in the slot on the server. */
    int64_t until = pgtest_now_ms() + WAIT_MS;
    pgcw_watcher_stats st;
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM pg_replication_slots WHERE slot_name = "
             "'pgcachewatch_lg_chan' AND confirmed_flush_lsn > '%X/%X'::pg_lsn",
             (unsigned)(last_lsn >> 32), (unsigned)last_lsn);
    for (;;) {
        pgcw_watcher_stats_get(w, &st);
        if (st.confirmed_lsn > last_lsn && count_rows(c, sql) == 1)
            break;
        if (pgtest_now_ms() > until)
            fail_msg("confirmed %llx, last commit %llx",
                     (unsigned long long)st.confirmed_lsn, (unsigned long long)last_lsn);
        pgtest_sleep_ms(20);
    }
    assert_int_equal(st.events, 8 + 5000);
    assert_int_equal(st.disconnects, 0);

    /* Writes to a table outside the publication send nothing, yet the slot's
     * position moves past them (the server's keepalives say it has sent all up to
     * there), so the slot does not keep their WAL. */
    pgtest_exec(c, "CREATE TABLE lg_other (x int);"
                   "INSERT INTO lg_other SELECT generate_series(1, 20000)");
    char *wal = pgtest_query_value(c, "SELECT pg_current_wal_lsn()::text");
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM pg_replication_slots WHERE slot_name = "
             "'pgcachewatch_lg_chan' AND confirmed_flush_lsn >= '%s'::pg_lsn",
             wal);
    free(wal);
    until = pgtest_now_ms() + WAIT_MS;
    while (count_rows(c, sql) != 1) {
        if (pgtest_now_ms() > until)
            fail_msg("the slot stayed behind writes it has nothing to send for");
        pgtest_sleep_ms(20);
    }
    pgcw_watcher_stats_get(w, &st);
    assert_int_equal(st.events, 8 + 5000);

    /* One consumer per slot: a second watcher on it is refused by the server
     * (and keeps retrying), the first goes on. */
    pgcw_watcher *second = start_watcher("lg_chan", NULL);
    assert_int_equal(pgcw_watcher_wait_healthy(second, 1000), PGCW_ETIMEDOUT);
    assert_non_null(strstr(pgcw_watcher_errmsg(second), "is active for PID"));
    pgcw_watcher_free(second);
    current = w;
    assert_true(pgcw_watcher_healthy(w));

    /* In use: uninstall refuses, naming the process, and drops nothing. */
    assert_int_equal(pgcw_uninstall_run(in, c, NULL), PGCW_EQUERY);
    assert_non_null(strstr(pgcw_install_errmsg(in), "is active for PID"));
    assert_int_equal(count_rows(c, "SELECT count(*) FROM pg_publication WHERE pubname "
                                   "= 'pgcachewatch_lg_chan_pub'"),
                     1);

    assert_int_equal(pgcw_watcher_stop(w), PGCW_OK);
    pgcw_sub_free(q);
    pgcw_watcher_free(w);
    uninstall_when_released(in, c);
}

/* PostgreSQL refuses UPDATE and DELETE on a published table without a replica
 * identity; with REPLICA IDENTITY FULL every column is the key. */
static void test_replica_identity(void **state)
{
    (void)state;
    PGconn *c = pgtest_connect();
    pgtest_exec(c, "DROP TABLE IF EXISTS lr_nokey; CREATE TABLE lr_nokey (a int, b text);"
                   "INSERT INTO lr_nokey VALUES (1, 'x')");
    const char *tables[] = {"lr_nokey"};
    pgcw_install *in = install_logical(c, "lr_chan", tables, 1);
    char err[512] = "";
    assert_false(pgtest_try_exec(c, "UPDATE lr_nokey SET b = 'y'", err, sizeof err));
    assert_non_null(
        strstr(err, "does not have a replica identity and publishes updates"));
    assert_false(pgtest_try_exec(c, "DELETE FROM lr_nokey", err, sizeof err));
    assert_non_null(
        strstr(err, "does not have a replica identity and publishes deletes"));
    pgtest_exec(c, "INSERT INTO lr_nokey VALUES (2, 'z')"); /* inserts still work */

    pgtest_exec(c, "ALTER TABLE lr_nokey REPLICA IDENTITY FULL");
    pgcw_watcher *w = start_watcher("lr_chan", NULL);
    pgcw_sub *q = NULL;
    assert_int_equal(pgcw_sub_new(w, NULL, &q), PGCW_OK);
    assert_int_equal(pgcw_watcher_start(w), PGCW_OK);
    if (pgcw_watcher_wait_healthy(w, WAIT_MS) != PGCW_OK)
        fail_msg("watcher: %s", pgcw_watcher_errmsg(w));
    /* The insert made before the watcher started is in the slot: it comes first. */
    const pgcw_event *e = next_change(q);
    assert_int_equal(e->operation, PGCW_OP_INSERT);
    assert_int_equal(e->n_keys, 0); /* no identity columns when it was decoded */
    pgcw_event_free(e);
    pgtest_exec(c, "UPDATE lr_nokey SET b = 'y' WHERE a = 1");
    e = next_change(q);
    assert_int_equal(e->operation, PGCW_OP_UPDATE);
    assert_int_equal(e->n_pk_columns, 2);
    assert_int_equal(e->n_keys, 2);
    assert_string_equal(e->keys[0], "[1,\"x\"]");
    assert_string_equal(e->keys[1], "[1,\"y\"]");
    pgcw_event_free(e);
    assert_int_equal(pgcw_watcher_stop(w), PGCW_OK);
    pgcw_sub_free(q);
    pgcw_watcher_free(w);
    uninstall_when_released(in, c);
}

/* Nobody reading: the slot keeps the WAL of every change since its position, as
 * the server shows, until it is read or dropped. */
static void test_abandoned_slot(void **state)
{
    (void)state;
    PGconn *c = pgtest_connect();
    pgtest_exec(c, "DROP TABLE IF EXISTS la_t; CREATE TABLE la_t (id int primary key)");
    const char *tables[] = {"la_t"};
    pgcw_install *in = install_logical(c, "la_chan", tables, 1);
    const char *lag_sql =
        "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint "
        "FROM pg_replication_slots WHERE slot_name = 'pgcachewatch_la_chan'";
    long long before = pgtest_query_int(c, lag_sql);
    char *confirmed = pgtest_query_value(
        c, "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE "
           "slot_name = 'pgcachewatch_la_chan'");
    pgtest_exec(c, "INSERT INTO la_t SELECT generate_series(1, 20000)");
    long long after = pgtest_query_int(c, lag_sql);
    assert_true(after > before + 500000); /* 20000 rows of WAL, at least 25 B each */
    char *still = pgtest_query_value(
        c, "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE "
           "slot_name = 'pgcachewatch_la_chan'");
    assert_string_equal(confirmed, still);
    free(still);
    unsigned hi, lo;
    assert_int_equal(sscanf(confirmed, "%X/%X", &hi, &lo), 2);
    free(confirmed);
    assert_int_equal(count_rows(c, "SELECT count(*) FROM pg_replication_slots WHERE "
                                   "slot_name = 'pgcachewatch_la_chan' AND "
                                   "wal_status = 'reserved' AND NOT active"),
                     1);
    /* A watcher that comes back starts its statistics where the slot stands. */
    pgcw_watcher *w = start_watcher("la_chan", NULL);
    if (pgcw_watcher_wait_healthy(w, WAIT_MS) != PGCW_OK)
        fail_msg("watcher: %s", pgcw_watcher_errmsg(w));
    pgcw_watcher_stats st;
    pgcw_watcher_stats_get(w, &st);
    assert_true(st.confirmed_lsn >= ((uint64_t)hi << 32 | lo));
    pgcw_watcher_free(w);

    /* The documented way out for an abandoned slot (once that watcher's
     * walsender has let go of it). */
    char err[512];
    int64_t until = pgtest_now_ms() + WAIT_MS;
    while (!pgtest_try_exec(c, "SELECT pg_drop_replication_slot('pgcachewatch_la_chan')",
                            err, sizeof err)) {
        if (pgtest_now_ms() > until)
            fail_msg("drop: %s", err);
        pgtest_sleep_ms(20);
    }
    assert_int_equal(count_rows(c, "SELECT count(*) FROM pg_replication_slots WHERE "
                                   "slot_name = 'pgcachewatch_la_chan'"),
                     0);
    uninstall_when_released(in, c); /* the publication */
}

/* A network that stops carrying packets resets nothing: the status updates that
 * ask for an answer notice it, the source reconnects once it carries again, and
 * what was committed meanwhile arrives. */
static void test_stalled_network(void **state)
{
    (void)state;
    PGconn *c = pgtest_connect();
    pgtest_exec(c, "DROP TABLE IF EXISTS ls_t; CREATE TABLE ls_t (id int primary key)");
    const char *tables[] = {"ls_t"};
    pgcw_install *in = install_logical(c, "ls_chan", tables, 1);
    const char *p = strstr(pgtest_dsn(), "port=");
    assert_non_null(p);
    int port = 0;
    tcpproxy *proxy = tcpproxy_start(atoi(p + 5), &port);
    char conninfo[2048];
    snprintf(conninfo, sizeof conninfo, "%s host=127.0.0.1 port=%d", pgtest_dsn(), port);
    const char *channels[] = {"ls_chan"};
    pgcw_watcher_opts wo = {.channels = channels,
                            .n_channels = 1,
                            .source = PGCW_WATCH_LOGICAL,
                            .ping_interval_ms = 200,
                            .ping_timeout_ms = 300};
    pgcw_conn_opts co = {.conninfo = conninfo,
                         .connect_timeout_ms = 1000,
                         .reconnect_min_ms = 20,
                         .reconnect_max_ms = 200};
    pgcw_watcher *w = NULL;
    assert_int_equal(pgcw_watcher_new(&wo, &co, &w), PGCW_OK);
    current = w;
    pgcw_sub *q = NULL;
    assert_int_equal(pgcw_sub_new(w, NULL, &q), PGCW_OK);
    assert_int_equal(pgcw_watcher_start(w), PGCW_OK);
    if (pgcw_watcher_wait_healthy(w, WAIT_MS) != PGCW_OK)
        fail_msg("watcher: %s", pgcw_watcher_errmsg(w));
    pgtest_exec(c, "INSERT INTO ls_t VALUES (1)");
    const pgcw_event *e = next_change(q);
    assert_string_equal(e->keys[0], "[1]");
    pgcw_event_free(e);

    tcpproxy_stall(proxy, true);
    pgtest_exec(c, "INSERT INTO ls_t VALUES (2)"); /* committed while nothing flows */
    int64_t until = pgtest_now_ms() + WAIT_MS;
    while (pgcw_watcher_healthy(w)) {
        if (pgtest_now_ms() > until)
            fail_msg("a stalled network went unnoticed");
        pgtest_sleep_ms(10);
    }
    assert_non_null(strstr(pgcw_watcher_errmsg(w), "no answer to a status update"));
    tcpproxy_stall(proxy, false);
    if (pgcw_watcher_wait_healthy(w, WAIT_MS) != PGCW_OK)
        fail_msg("watcher after the stall: %s", pgcw_watcher_errmsg(w));
    /* The gap, then the row committed during the stall, perhaps after the first
     * again (its confirmation may have been held up by the stall: a repeat). */
    for (;;) {
        e = next_change(q);
        bool first = strcmp(e->keys[0], "[1]") == 0;
        if (!first)
            assert_string_equal(e->keys[0], "[2]");
        pgcw_event_free(e);
        if (!first)
            break;
    }
    assert_true(pgcw_sub_gap_count(q) >= 1);

    assert_int_equal(pgcw_watcher_stop(w), PGCW_OK);
    pgcw_sub_free(q);
    pgcw_watcher_free(w);
    tcpproxy_stop(proxy);
    uninstall_when_released(in, c);
}

/* The server asks for an answer (a keepalive with the reply flag) when it has
 * heard nothing for half its wal_sender_timeout, and drops the connection after
 * all of it: answered, an idle stream with no pings of ours lasts. */
static void test_keepalives_answered(void **state)
{
    (void)state;
    PGconn *c = pgtest_connect();
    pgtest_exec(c, "DROP TABLE IF EXISTS lka_t; CREATE TABLE lka_t (id int primary key)");
    const char *tables[] = {"lka_t"};
    pgcw_install *in = install_logical(c, "lka_chan", tables, 1);
    char conninfo[2048];
    snprintf(conninfo, sizeof conninfo, "%s options='-c wal_sender_timeout=400ms'",
             pgtest_dsn());
    const char *channels[] = {"lka_chan"};
    pgcw_watcher_opts wo = {.channels = channels,
                            .n_channels = 1,
                            .source = PGCW_WATCH_LOGICAL,
                            .ping_interval_ms = -1};
    pgcw_conn_opts co = {.conninfo = conninfo};
    pgcw_watcher *w = NULL;
    assert_int_equal(pgcw_watcher_new(&wo, &co, &w), PGCW_OK);
    current = w;
    assert_int_equal(pgcw_watcher_start(w), PGCW_OK);
    if (pgcw_watcher_wait_healthy(w, WAIT_MS) != PGCW_OK)
        fail_msg("watcher: %s", pgcw_watcher_errmsg(w));
    pgtest_sleep_ms(3000); /* seven timeouts' worth */
    pgcw_watcher_stats st;
    pgcw_watcher_stats_get(w, &st);
    assert_int_equal(st.disconnects, 0);
    assert_true(pgcw_watcher_healthy(w));
    assert_int_equal(pgcw_watcher_stop(w), PGCW_OK);
    pgcw_watcher_free(w);
    uninstall_when_released(in, c);
}

static void test_missing_slot(void **state)
{
    (void)state;
    pgcw_watcher *w = start_watcher("lm_chan", "pgcw_no_such_slot");
    assert_int_equal(pgcw_watcher_wait_healthy(w, WAIT_MS), PGCW_ECONNECT);
    const char *msg = pgcw_watcher_errmsg(w);
    assert_non_null(strstr(msg, "replication slot \"pgcw_no_such_slot\" does not exist"));
    assert_non_null(strstr(msg, "pgcachewatch install --source logical"));
    pgcw_watcher_free(w);

    /* A role without REPLICATION cannot open a replication connection: refused at
     * once too, saying so. */
    PGconn *c = pgtest_connect();
    pgtest_exec(c, "DROP ROLE IF EXISTS lm_norepl; CREATE ROLE lm_norepl LOGIN");
    char conninfo[2048];
    snprintf(conninfo, sizeof conninfo, "%s user=lm_norepl", pgtest_dsn());
    const char *chans[] = {"lm_chan"};
    pgcw_watcher_opts ro = {
        .channels = chans, .n_channels = 1, .source = PGCW_WATCH_LOGICAL};
    pgcw_conn_opts rco = {.conninfo = conninfo};
    assert_int_equal(pgcw_watcher_new(&ro, &rco, &w), PGCW_OK);
    assert_int_equal(pgcw_watcher_wait_healthy(w, WAIT_MS), PGCW_ECONNECT);
    assert_non_null(strstr(pgcw_watcher_errmsg(w), "replication role"));
    assert_non_null(strstr(pgcw_watcher_errmsg(w), "42501"));
    pgcw_watcher_free(w);
    pgtest_exec(c, "DROP ROLE lm_norepl");
    PQfinish(c);

    /* A slot name PostgreSQL would refuse is refused at once. */
    const char *channels[] = {"lm_chan"};
    pgcw_watcher_opts wo = {.channels = channels,
                            .n_channels = 1,
                            .source = PGCW_WATCH_LOGICAL,
                            .slot_name = "no-dashes"};
    pgcw_conn_opts co = {.conninfo = pgtest_dsn()};
    assert_int_equal(pgcw_watcher_new(&wo, &co, &w), PGCW_EINVAL);
    assert_null(w);
}

/* --- a killed walsender ---------------------------------------------------- */

#define WRITERS 4
#define MAX_ROWS 200000 /* a bound the writers never reach in practice */

typedef struct delivered {
    pthread_mutex_t mu;
    unsigned char seen[MAX_ROWS + 1];
    size_t distinct, total, gaps;
} delivered;

static atomic_bool stop_writers;

static void on_event(void *ctx, const pgcw_event *e)
{
    delivered *d = ctx;
    pthread_mutex_lock(&d->mu);
    if (e->kind == PGCW_EVENT_GAP) {
        d->gaps++;
    } else if (e->kind == PGCW_EVENT_CHANGE && e->n_keys == 1) {
        long v = strtol(e->keys[0] + 1, NULL, 10);
        if (v >= 1 && v <= MAX_ROWS) {
            d->total++;
            if (!d->seen[v]++)
                d->distinct++;
        }
    }
    pthread_mutex_unlock(&d->mu);
}

/* Writer i commits i+1, i+1+WRITERS, ... one row per transaction until told to
 * stop. */
static void *writer(void *arg)
{
    int id = (int)(intptr_t)arg;
    PGconn *c = pgtest_connect();
    for (int n = id + 1; n <= MAX_ROWS && !atomic_load(&stop_writers); n += WRITERS) {
        char sql[96];
        snprintf(sql, sizeof sql, "INSERT INTO lk_seq VALUES (%d)", n);
        pgtest_exec(c, sql);
    }
    PQfinish(c);
    return NULL;
}

static size_t distinct_seen(delivered *d)
{
    pthread_mutex_lock(&d->mu);
    size_t n = d->distinct;
    pthread_mutex_unlock(&d->mu);
    return n;
}

static void test_resume_after_kill(void **state)
{
    (void)state;
    PGconn *c = pgtest_connect();
    pgtest_exec(c,
                "DROP TABLE IF EXISTS lk_seq; CREATE TABLE lk_seq (n int primary key)");
    const char *tables[] = {"lk_seq"};
    pgcw_install *in = install_logical(c, "lk_chan", tables, 1);
    pgcw_watcher *w = start_watcher("lk_chan", NULL);
    static delivered d = {.mu = PTHREAD_MUTEX_INITIALIZER};
    pgcw_sink_opts so = {.fn = on_event, .ctx = &d};
    pgcw_sink *k = NULL;
    assert_int_equal(pgcw_sink_new(w, &so, &k), PGCW_OK);
    assert_int_equal(pgcw_watcher_start(w), PGCW_OK);
    if (pgcw_watcher_wait_healthy(w, WAIT_MS) != PGCW_OK)
        fail_msg("watcher: %s", pgcw_watcher_errmsg(w));

    pthread_t th[WRITERS];
    for (int i = 0; i < WRITERS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, writer, (void *)(intptr_t)i), 0);
    /* Kill the walsender three times while the writers run (they stop only after
     * the last kill), each time once it has delivered more. */
    int kills = 0, killed_pid = 0;
    for (size_t want = 200; kills < 3; want += 250) {
        int64_t until = pgtest_now_ms() + WAIT_MS;
        int pid;
        /* Delivered more, and healthy on a new walsender since the last kill. */
        while (distinct_seen(&d) < want || !pgcw_watcher_healthy(w) ||
               (pid = pgcw_watcher_backend_pid(w)) <= 0 || pid == killed_pid) {
            if (pgtest_now_ms() > until)
                fail_msg("stuck at %zu delivered: %s", distinct_seen(&d),
                         pgcw_watcher_errmsg(w));
            pgtest_sleep_ms(2);
        }
        char sql[96];
        snprintf(sql, sizeof sql, "SELECT pg_terminate_backend(%d)::int", pid);
        if (pgtest_query_int(c, sql) == 1)
            kills++;
        killed_pid = pid;
    }
    /* More rows after the last kill, so the resumed stream is checked too. */
    size_t after = distinct_seen(&d) + 200;
    int64_t until = pgtest_now_ms() + WAIT_MS;
    while (distinct_seen(&d) < after && pgtest_now_ms() < until)
        pgtest_sleep_ms(2);
    atomic_store(&stop_writers, true);
    for (int i = 0; i < WRITERS; i++)
        pthread_join(th[i], NULL);

    /* Every committed row arrives: compare the committed set with the delivered
     * one. */
    long long committed = count_rows(c, "SELECT count(*) FROM lk_seq");
    assert_true(committed > (long long)after - 200);
    until = pgtest_now_ms() + WAIT_MS;
    while (distinct_seen(&d) < (size_t)committed && pgtest_now_ms() < until)
        pgtest_sleep_ms(10);
    PGresult *rows = PQexec(c, "SELECT n FROM lk_seq ORDER BY n");
    assert_int_equal(PQresultStatus(rows), PGRES_TUPLES_OK);
    pthread_mutex_lock(&d.mu);
    for (int r = 0; r < PQntuples(rows); r++) {
        long v = strtol(PQgetvalue(rows, r, 0), NULL, 10);
        if (!d.seen[v])
            fail_msg("row %ld committed, never delivered (%zu of %lld)", v, d.distinct,
                     committed);
    }
    /* ... and nothing was delivered that did not commit. */
    assert_int_equal(d.distinct, (size_t)committed);
    pthread_mutex_unlock(&d.mu);
    PQclear(rows);
    pgcw_watcher_stats st;
    pgcw_watcher_stats_get(w, &st);
    assert_true(st.disconnects >= 3);
    pthread_mutex_lock(&d.mu);
    assert_true(d.gaps >= 3); /* the watcher still says a reconnect is a gap */
    assert_true(d.total >= d.distinct);
    print_message("%zu rows committed and delivered; %zu deliveries (repeats come "
                  "after a resume); %llu disconnects\n",
                  d.distinct, d.total, (unsigned long long)st.disconnects);
    pthread_mutex_unlock(&d.mu);

    assert_int_equal(pgcw_watcher_stop(w), PGCW_OK);
    pgcw_sink_free(k);
    pgcw_watcher_free(w);
    uninstall_when_released(in, c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_install_and_uninstall),
        cmocka_unit_test(test_changes_and_rollback),
        cmocka_unit_test(test_replica_identity),
        cmocka_unit_test(test_abandoned_slot),
        cmocka_unit_test(test_stalled_network),
        cmocka_unit_test(test_keepalives_answered),
        cmocka_unit_test(test_missing_slot),
        cmocka_unit_test(test_resume_after_kill),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
