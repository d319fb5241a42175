/*
 * test_watcher.c - the watcher against a real PostgreSQL: events with every field
 * on several (quoted) channels to several subscribers, driven from our own poll
 * loop and from its thread; reconnect after pg_terminate_backend with gaps and a
 * new epoch; ping timeout on a frozen backend; malformed payloads; latency
 * warnings; bad DSNs; freeing while reconnecting.
 *
 * Payloads are sent with pg_notify() directly (not via installed triggers) so this
 * test depends on the watcher and the event parser only.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include <pgcachewatch/adapters/poll.h>
#include <pgcachewatch/pgcachewatch.h>

#include "pgtest.h"

#define WAIT_MS 15000 /* generous: the machine is shared and noisy */

/* ---- log capture -------------------------------------------------------------- */

typedef struct logcap {
    pthread_mutex_t mu;
    char lines[128][600];
    int n;
    pgcw_watcher *w;       /* set before the watcher is driven */
    int unhealthy_at_loss; /* "connection lost" logged while healthy() was false */
} logcap;

static void cap_log(void *ctx, pgcw_log_level level, const char *msg)
{
    logcap *c = ctx;
    pthread_mutex_lock(&c->mu);
    if (c->n < 128)
        snprintf(c->lines[c->n++], sizeof c->lines[0], "%s: %s",
                 pgcw_log_level_name(level), msg);
    /* The callback runs on the driving thread, right after the loss was handled and
     * before any reconnect: health must already read false here. */
    if (strstr(msg, "connection lost") && c->w && !pgcw_watcher_healthy(c->w))
        c->unhealthy_at_loss++;
    pthread_mutex_unlock(&c->mu);
}

static int cap_count(logcap *c, const char *needle)
{
    pthread_mutex_lock(&c->mu);
    int k = 0;
    for (int i = 0; i < c->n; i++)
        if (strstr(c->lines[i], needle))
            k++;
    pthread_mutex_unlock(&c->mu);
    return k;
}

static logcap *cap_new(void)
{
    logcap *c = calloc(1, sizeof *c);
    assert_non_null(c);
    pthread_mutex_init(&c->mu, NULL);
    return c;
}

static void cap_free(logcap *c)
{
    pthread_mutex_destroy(&c->mu);
    free(c);
}

/* ---- helpers ------------------------------------------------------------------ */

static void notify(PGconn *c, const char *channel, const char *payload)
{
    const char *params[2] = {channel, payload};
    PGresult *r =
        PQexecParams(c, "SELECT pg_notify($1, $2)", 2, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        fail_msg("pg_notify: %s", PQresultErrorMessage(r));
    PQclear(r);
}

/* Our payload with sent_at = the server's now() minus `age`. */
static void notify_now(PGconn *c, const char *channel, const char *table, int part,
                       const char *age)
{
    char part_s[16];
    snprintf(part_s, sizeof part_s, "%d", part);
    const char *params[4] = {channel, table, part_s, age};
    PGresult *r = PQexecParams(
        c,
        "SELECT pg_notify($1, json_build_object('operation', 'insert', 'table', "
        "$2::text, "
        "'schema', 'public', 'sent_at', now() - $4::interval, 'part', $3::int)::text)",
        4, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        fail_msg("pg_notify: %s", PQresultErrorMessage(r));
    PQclear(r);
}

/* co NULL: the defaults, on this test's database. */
static pgcw_watcher *new_watcher(pgcw_watcher_opts *o, pgcw_conn_opts *co, logcap *cap)
{
    pgcw_conn_opts dflt = {0};
    if (!co)
        co = &dflt;
    if (!co->conninfo)
        co->conninfo = pgtest_dsn();
    if (cap) {
        o->log = cap_log;
        o->log_ctx = cap;
    }
    pgcw_watcher *w = NULL;
    assert_int_equal(pgcw_watcher_new(o, co, &w), PGCW_OK);
    if (cap)
        cap->w = w;
    return w;
}

static pgcw_sub *new_sub(pgcw_watcher *w)
{
    pgcw_sub *s = NULL;
    assert_int_equal(pgcw_sub_new(w, NULL, &s), PGCW_OK);
    return s;
}

/* One turn of an application's own event loop, the way examples/poll_loop.c does
 * it: wait for the fd or the watcher's timeout (capped), then process. */
static void loop_turn(pgcw_watcher *w, int cap_ms)
{
    int fd = pgcw_watcher_fd(w);
    int want = pgcw_watcher_events(w);
    int64_t t = pgcw_watcher_timeout_ms(w);
    if (t < 0 || t > cap_ms)
        t = cap_ms;
    struct pollfd p = {.fd = fd, .events = pgcw_poll_events(want)};
    if (poll(&p, fd >= 0 ? 1 : 0, (int)t) < 0 && errno != EINTR)
        fail_msg("poll: %s", strerror(errno));
    assert_int_equal(pgcw_watcher_process(w), PGCW_OK);
}

/* The same with the poll adapter. */
static void loop_until_healthy(pgcw_watcher *w)
{
    int64_t until = pgtest_now_ms() + WAIT_MS;
    while (!pgcw_watcher_healthy(w)) {
        if (pgtest_now_ms() > until)
            fail_msg("not healthy: %s", pgcw_watcher_errmsg(w));
        assert_int_equal(pgcw_poll_once(w, 100), PGCW_OK);
    }
}

/* Next event of s, driving w from this thread (w == NULL: w has its own thread). */
static const pgcw_event *next_event(pgcw_watcher *w, pgcw_sub *s)
{
    const pgcw_event *ev = NULL;
    if (!w) {
        pgcw_status st = pgcw_sub_get(s, WAIT_MS, &ev);
        if (st != PGCW_OK)
            fail_msg("no event: %s", pgcw_status_name(st));
        return ev;
    }
    int64_t until = pgtest_now_ms() + WAIT_MS;
    while (pgcw_sub_try_get(s, &ev) != PGCW_OK) {
        if (pgtest_now_ms() > until)
            fail_msg("no event (healthy=%d): %s", pgcw_watcher_healthy(w),
                     pgcw_watcher_errmsg(w));
        loop_turn(w, 100);
    }
    return ev;
}

static int part_of(const pgcw_event *ev)
{
    if (ev->kind != PGCW_EVENT_CHANGE)
        fail_msg("expected a change event, got %s gap",
                 pgcw_gap_reason_name(ev->gap_reason));
    return ev->part;
}

static void terminate(PGconn *c, int pid)
{
    char sql[96];
    snprintf(sql, sizeof sql, "SELECT pg_terminate_backend(%d)", pid);
    char *v = pgtest_query_value(c, sql);
    assert_string_equal(v, "t");
    free(v);
}

/* ---- tests -------------------------------------------------------------------- */

static const char *const two_channels[] = {"pgcw_a", "Pgcw B-2"}; /* needs quoting */

static void check_full_event(const pgcw_event *ev, const char *channel, int sender_pid,
                             uint64_t epoch, int64_t t0, int64_t t1)
{
    assert_int_equal(ev->kind, PGCW_EVENT_CHANGE);
    assert_string_equal(ev->channel, channel);
    assert_int_equal(ev->operation, PGCW_OP_UPDATE);
    assert_string_equal(ev->schema, "shop");
    assert_string_equal(ev->table, "orders");
    assert_int_equal(ev->sent_at_us, INT64_C(1714564800500000));
    assert_true(ev->received_at_us >= t0 && ev->received_at_us <= t1);
    assert_int_equal(ev->latency_us, ev->received_at_us - ev->sent_at_us);
    assert_int_equal(ev->epoch, epoch);
    assert_int_equal(ev->backend_pid, sender_pid);
    assert_int_equal(ev->n_pk_columns, 1);
    assert_string_equal(ev->pk_columns[0], "id");
    assert_int_equal(ev->n_keys, 2);
    assert_string_equal(ev->keys[0], "[7]");
    assert_string_equal(ev->keys[1], "[8]");
    assert_non_null(strstr(ev->payload, "\"orders\""));
}

static const char full_payload[] =
    "{\"operation\":\"update\",\"table\":\"orders\",\"schema\":\"shop\","
    "\"sent_at\":\"2024-05-01T12:00:00.5+00:00\",\"pk\":[\"id\"],\"keys\":[[7],[8]]}";

/* Driven by our own poll loop: fields, channels, subscribers, then a reconnect. */
static void test_poll_loop_mode(void **state)
{
    (void)state;
    logcap *cap = cap_new();
    pgcw_watcher_opts o = {
        .channels = two_channels, .n_channels = 2, .max_latency_ms = -1};
    pgcw_conn_opts co = {.reconnect_min_ms = 20, .reconnect_max_ms = 200};
    pgcw_watcher *w = new_watcher(&o, &co, cap);
    pgcw_sub *a = new_sub(w), *b = new_sub(w);
    loop_until_healthy(w);
    assert_int_equal(pgcw_watcher_epoch(w), 1);
    assert_string_equal(pgcw_watcher_errmsg(w), "");

    PGconn *c = pgtest_connect();
    int pid = pgcw_watcher_backend_pid(w);
    assert_true(pid > 0);
    struct timespec rt;
    clock_gettime(CLOCK_REALTIME, &rt);
    int64_t before = (int64_t)rt.tv_sec * 1000000 + rt.tv_nsec / 1000;
    notify(c, "pgcw_a", full_payload);
    notify(c, "Pgcw B-2", full_payload);
    notify(c, "pgcw_other", full_payload); /* not listened to */
    const pgcw_event *ev[4];
    ev[0] = next_event(w, a);
    ev[1] = next_event(w, a);
    ev[2] = next_event(w, b);
    ev[3] = next_event(w, b);
    clock_gettime(CLOCK_REALTIME, &rt);
    int64_t after = (int64_t)rt.tv_sec * 1000000 + rt.tv_nsec / 1000;
    int sender = PQbackendPID(c);
    check_full_event(ev[0], "pgcw_a", sender, 1, before, after);
    check_full_event(ev[1], "Pgcw B-2", sender, 1, before, after);
    check_full_event(ev[2], "pgcw_a", sender, 1, before, after);
    check_full_event(ev[3], "Pgcw B-2", sender, 1, before, after);
    assert_string_equal(ev[0]->payload, full_payload);
    for (int i = 0; i < 4; i++)
        pgcw_event_free(ev[i]);

    /* The unlistened channel's notification never shows up. */
    notify_now(c, "pgcw_a", "fence", 1, "0");
    const pgcw_event *fence = next_event(w, a);
    assert_string_equal(fence->table, "fence");
    pgcw_event_free(fence);
    pgcw_watcher_stats st;
    pgcw_watcher_stats_get(w, &st);
    assert_int_equal(st.notifications, 3);
    assert_int_equal(st.events, 3);
    assert_int_equal(st.connects, 1);

    /* Lose the connection: gap in each subscriber, unhealthy, then back with a new
     * epoch and a new backend. */
    terminate(c, pid);
    const pgcw_event *g = next_event(w, a);
    assert_int_equal(g->kind, PGCW_EVENT_GAP);
    assert_int_equal(g->gap_reason, PGCW_GAP_DISCONNECTED);
    assert_int_equal(g->epoch, 1);
    pgcw_event_free(g);
    assert_int_equal(cap->unhealthy_at_loss, 1);
    assert_non_null(strstr(pgcw_watcher_errmsg(w), "connection lost"));
    assert_non_null(strstr(pgcw_watcher_errmsg(w), "terminating connection"));
    loop_until_healthy(w);
    assert_int_equal(pgcw_watcher_epoch(w), 2);
    assert_true(pgcw_watcher_backend_pid(w) != pid);
    notify_now(c, "Pgcw B-2", "after", 2, "0");
    ev[0] = next_event(w, a);
    assert_string_equal(ev[0]->table, "after");
    assert_int_equal(ev[0]->epoch, 2);
    pgcw_event_free(ev[0]);
    g = next_event(w, b); /* b: fence, gap, after */
    assert_string_equal(g->table, "fence");
    pgcw_event_free(g);
    g = next_event(w, b);
    assert_int_equal(g->kind, PGCW_EVENT_GAP);
    pgcw_event_free(g);
    g = next_event(w, b);
    assert_string_equal(g->table, "after");
    pgcw_event_free(g);
    assert_int_equal(pgcw_sub_gap_count(a), 1);
    assert_int_equal(pgcw_sub_gap_count(b), 1);
    pgcw_watcher_stats_get(w, &st);
    assert_int_equal(st.connects, 2);
    assert_int_equal(st.disconnects, 1);
    assert_int_equal(st.gaps, 2);

    PQfinish(c);
    pgcw_sub_free(a);
    pgcw_sub_free(b);
    pgcw_watcher_free(w);
    cap_free(cap);
}

/* Its own thread: many events in commit order, reconnect, stop. */
static void test_thread_mode(void **state)
{
    (void)state;
    logcap *cap = cap_new();
    pgcw_watcher_opts o = {.max_latency_ms = -1};
    pgcw_conn_opts co = {.reconnect_min_ms = 20};
    pgcw_watcher *w = new_watcher(&o, &co, cap);
    pgcw_sub *a = new_sub(w), *b = new_sub(w);
    assert_int_equal(pgcw_watcher_start(w), PGCW_OK);
    assert_int_equal(pgcw_watcher_start(w), PGCW_ESTATE);
    assert_int_equal(pgcw_watcher_process(w), PGCW_ESTATE);
    assert_int_equal(pgcw_watcher_run(w, 10), PGCW_ESTATE);
    assert_int_equal(pgcw_watcher_wait_healthy(w, WAIT_MS), PGCW_OK);
    assert_int_equal(pgcw_watcher_epoch(w), 1);

    PGconn *c = pgtest_connect();
    /* Several per transaction, several transactions: delivery is in commit order. */
    pgtest_exec(c, "BEGIN");
    for (int i = 0; i < 100; i++) {
        notify_now(c, PGCW_DEFAULT_CHANNEL, "t", i, "0");
        if (i % 10 == 9) {
            pgtest_exec(c, "COMMIT");
            pgtest_exec(c, "BEGIN");
        }
    }
    pgtest_exec(c, "COMMIT");
    for (int i = 0; i < 100; i++) {
        const pgcw_event *ea = next_event(NULL, a), *eb = next_event(NULL, b);
        assert_int_equal(part_of(ea), i);
        assert_int_equal(part_of(eb), i);
        assert_string_equal(ea->channel, PGCW_DEFAULT_CHANNEL);
        pgcw_event_free(ea);
        pgcw_event_free(eb);
    }

    int pid = pgcw_watcher_backend_pid(w);
    terminate(c, pid);
    const pgcw_event *g = next_event(NULL, a);
    assert_int_equal(g->kind, PGCW_EVENT_GAP);
    assert_int_equal(g->gap_reason, PGCW_GAP_DISCONNECTED);
    pgcw_event_free(g);
    assert_int_equal(pgcw_watcher_wait_healthy(w, WAIT_MS), PGCW_OK);
    assert_int_equal(cap->unhealthy_at_loss, 1);
    assert_int_equal(pgcw_watcher_epoch(w), 2);
    assert_true(pgcw_watcher_backend_pid(w) != pid);
    notify_now(c, PGCW_DEFAULT_CHANNEL, "t", 500, "0");
    g = next_event(NULL, a);
    assert_int_equal(part_of(g), 500);
    assert_int_equal(g->epoch, 2);
    pgcw_event_free(g);

    /* Stopping closes the connection: unhealthy, and a gap, since notifications
     * sent now are lost. */
    assert_int_equal(pgcw_watcher_stop(w), PGCW_OK);
    assert_int_equal(pgcw_watcher_stop(w), PGCW_OK);
    assert_false(pgcw_watcher_healthy(w));
    assert_int_equal(pgcw_watcher_backend_pid(w), 0);
    uint64_t b_gaps = pgcw_sub_gap_count(b);
    assert_int_equal(b_gaps, 2);
    for (int want = 0; want < 3; want++) { /* b: gap, 500, gap */
        const pgcw_event *e = NULL;
        assert_int_equal(pgcw_sub_try_get(b, &e), PGCW_OK);
        assert_int_equal(e->kind, want == 1 ? PGCW_EVENT_CHANGE : PGCW_EVENT_GAP);
        pgcw_event_free(e);
    }
    /* And it can be driven again afterwards, from this thread. */
    assert_int_equal(pgcw_watcher_wait_healthy(w, WAIT_MS), PGCW_OK);
    assert_int_equal(pgcw_watcher_epoch(w), 3);

    PQfinish(c);
    pgcw_sub_free(a);
    pgcw_sub_free(b);
    pgcw_watcher_free(w);
    cap_free(cap);
}

static void test_malformed_and_late(void **state)
{
    (void)state;
    logcap *cap = cap_new();
    pgcw_watcher_opts o = {.max_latency_ms = 10000, .ping_interval_ms = -1};
    pgcw_watcher *w = new_watcher(&o, NULL, cap);
    pgcw_sub *s = new_sub(w);
    loop_until_healthy(w);
    assert_int_equal(pgcw_watcher_timeout_ms(w), -1); /* no pings: no deadline */
    assert_int_equal(pgcw_watcher_events(w), PGCW_IO_READ);
    PGconn *c = pgtest_connect();
    notify(c, PGCW_DEFAULT_CHANNEL, "not json at all");
    notify(c, PGCW_DEFAULT_CHANNEL, "{}");
    notify(c, PGCW_DEFAULT_CHANNEL,
           "{\"operation\":\"explode\",\"table\":\"t\",\"sent_at\":\"2024-05-01T12:00:"
           "00Z\"}");
    notify_now(c, PGCW_DEFAULT_CHANNEL, "valid", 1, "0");
    notify_now(c, PGCW_DEFAULT_CHANNEL, "old", 2, "60 seconds");
    const pgcw_event *ev = next_event(w, s);
    assert_string_equal(ev->table, "valid");
    pgcw_event_free(ev);
    ev = next_event(w, s);
    assert_string_equal(ev->table, "old");
    assert_true(ev->latency_us >= INT64_C(59000000));
    pgcw_event_free(ev);
    assert_int_equal(pgcw_sub_pending(s), 0);

    pgcw_watcher_stats st;
    pgcw_watcher_stats_get(w, &st);
    assert_int_equal(st.notifications, 5);
    assert_int_equal(st.events, 2);
    assert_int_equal(st.malformed, 3);
    assert_int_equal(st.late, 1);
    assert_int_equal(cap_count(cap, "warning: malformed notification"), 3);
    assert_int_equal(cap_count(cap, "not json at all"), 1);
    assert_int_equal(cap_count(cap, "warning: latency"), 1);
    assert_int_equal(cap_count(cap, "public.old"), 1);
    assert_true(pgcw_watcher_healthy(w));

    PQfinish(c);
    pgcw_sub_free(s);
    pgcw_watcher_free(w);
    cap_free(cap);
}

/* Pings keep an idle healthy connection alive, and catch a backend that stopped
 * answering (SIGSTOP: the socket stays open, nothing comes back). */
static void test_ping(void **state)
{
    (void)state;
    logcap *cap = cap_new();
    pgcw_watcher_opts o = {
        .ping_interval_ms = 100, .ping_timeout_ms = 1000, .max_latency_ms = -1};
    pgcw_conn_opts co = {.reconnect_min_ms = 20};
    pgcw_watcher *w = new_watcher(&o, &co, cap);
    pgcw_sub *s = new_sub(w);
    assert_int_equal(pgcw_watcher_start(w), PGCW_OK);
    assert_int_equal(pgcw_watcher_wait_healthy(w, WAIT_MS), PGCW_OK);
    int pid = pgcw_watcher_backend_pid(w);

    /* Idle well past several ping intervals: answered pings are not losses. The
     * backend's last statement shows the ping really went out. */
    PGconn *c = pgtest_connect();
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT query FROM pg_stat_activity WHERE pid = %d", pid);
    int64_t until = pgtest_now_ms() + WAIT_MS;
    for (;;) {
        char *q = pgtest_query_value(c, sql);
        bool pinged = q && strstr(q, "pg_notification_queue_usage");
        free(q);
        if (pinged)
            break;
        if (pgtest_now_ms() > until)
            fail_msg("no ping seen");
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL); /* polling a condition with a deadline */
    }
    assert_int_equal(pgcw_sub_pending(s), 0);
    assert_int_equal(pgcw_watcher_epoch(w), 1);
    assert_true(pgcw_watcher_healthy(w));

    if (kill(pid, SIGSTOP) != 0) {
        PQfinish(c);
        pgcw_sub_free(s);
        pgcw_watcher_free(w);
        cap_free(cap);
        skip(); /* a server on another host or user: cannot freeze its backend */
    }
    const pgcw_event *g = NULL;
    pgcw_status gst = pgcw_sub_get(s, WAIT_MS, &g);
    kill(pid, SIGCONT);
    assert_int_equal(gst, PGCW_OK);
    assert_int_equal(g->kind, PGCW_EVENT_GAP);
    assert_int_equal(g->gap_reason, PGCW_GAP_DISCONNECTED);
    pgcw_event_free(g);
    assert_int_equal(pgcw_watcher_wait_healthy(w, WAIT_MS), PGCW_OK);
    /* Logged on the watcher's thread after the gap went out but before the
     * reconnect, so only now is it certainly there. */
    assert_int_equal(cap_count(cap, "no answer to a ping"), 1);
    assert_true(pgcw_watcher_backend_pid(w) != pid);
    assert_int_equal(pgcw_watcher_epoch(w), 2);

    PQfinish(c);
    pgcw_sub_free(s);
    pgcw_watcher_free(w);
    cap_free(cap);
}

static void test_bad_dsn(void **state)
{
    (void)state;
    char dsn[1200];
    snprintf(dsn, sizeof dsn, "%s dbname=pgcw_no_such_db", pgtest_server_dsn());
    for (int threaded = 0; threaded < 2; threaded++) {
        logcap *cap = cap_new();
        pgcw_watcher_opts o = {0};
        pgcw_conn_opts co = {.conninfo = dsn, .reconnect_min_ms = 20};
        pgcw_watcher *w = new_watcher(&o, &co, cap);
        pgcw_sub *s = new_sub(w);
        if (threaded)
            assert_int_equal(pgcw_watcher_start(w), PGCW_OK);
        /* A database that does not exist will not appear by retrying: the wait says
         * so at once (it used to sit out its whole timeout), with the SQLSTATE. */
        int64_t t0 = pgtest_now_ms();
        assert_int_equal(pgcw_watcher_wait_healthy(w, 20000), PGCW_ECONNECT);
        assert_true(pgtest_now_ms() - t0 < 10000);
        const char *msg = pgcw_watcher_errmsg(w);
        assert_non_null(strstr(msg, "database \"pgcw_no_such_db\" does not exist"));
        assert_non_null(strstr(msg, "(SQLSTATE 3D000)"));
        /* ... and keeps retrying in the background (it may be created later). */
        pgcw_watcher_stats st0, st1;
        pgcw_watcher_stats_get(w, &st0);
        int64_t until = pgtest_now_ms() + 15000; /* a loaded machine: attempts are slow */
        do {
            if (threaded)
                pgtest_sleep_ms(50);
            else
                assert_int_equal(pgcw_watcher_run(w, 50), PGCW_OK);
            pgcw_watcher_stats_get(w, &st1);
        } while (st1.conn_errors == st0.conn_errors && pgtest_now_ms() < until);
        assert_true(st1.conn_errors > st0.conn_errors);
        assert_int_equal(pgcw_watcher_stop(w), PGCW_OK); /* joins: every log is in */
        assert_true(cap_count(cap, "does not exist") >= 2);
        assert_false(pgcw_watcher_healthy(w));
        assert_int_equal(pgcw_sub_pending(s), 0); /* never healthy: no gap */
        pgcw_sub_free(s);
        pgcw_watcher_free(w);
        cap_free(cap);
    }

    /* A URI works too (expand_dbname), and a refused port is an error, not a hang. */
    pgcw_watcher_opts o = {0};
    pgcw_conn_opts co = {.conninfo = "postgresql://127.0.0.1:1/x?connect_timeout=2"};
    pgcw_watcher *w = new_watcher(&o, &co, NULL);
    assert_int_equal(pgcw_watcher_wait_healthy(w, 2000), PGCW_ETIMEDOUT);
    assert_non_null(strstr(pgcw_watcher_errmsg(w), "127.0.0.1"));
    pgcw_watcher_free(w);
}

/* A channel name that cannot be quoted in the connection's encoding: never healthy,
 * and the reason is in errmsg. */
static void test_unquotable_channel(void **state)
{
    (void)state;
    const char *bad[] = {"ok", "\xff\xfe"};
    pgcw_watcher_opts o = {.channels = bad, .n_channels = 2};
    pgcw_conn_opts co = {.reconnect_min_ms = 20};
    pgcw_watcher *w = new_watcher(&o, &co, NULL);
    assert_int_equal(pgcw_watcher_wait_healthy(w, 1000), PGCW_ETIMEDOUT);
    assert_non_null(strstr(pgcw_watcher_errmsg(w), "bad channel name"));
    assert_int_equal(pgcw_watcher_backend_pid(w), 0);
    pgcw_watcher_free(w);
}

static void test_free_while_reconnecting(void **state)
{
    (void)state;
    PGconn *c = pgtest_connect();
    for (int round = 0; round < 3; round++) {
        pgcw_watcher_opts o = {0};
        pgcw_conn_opts co = {.reconnect_min_ms = 1000};
        pgcw_watcher *w = new_watcher(&o, &co, NULL);
        pgcw_sub *s = new_sub(w);
        if (round < 2)
            assert_int_equal(pgcw_watcher_start(w), PGCW_OK);
        assert_int_equal(pgcw_watcher_wait_healthy(w, WAIT_MS), PGCW_OK);
        terminate(c, pgcw_watcher_backend_pid(w));
        if (round == 2) /* own loop: run until the loss is seen */
            while (pgcw_watcher_healthy(w))
                assert_int_equal(pgcw_watcher_run(w, 50), PGCW_OK);
        const pgcw_event *g = NULL;
        assert_int_equal(pgcw_sub_get(s, WAIT_MS, &g), PGCW_OK);
        assert_int_equal(g->kind, PGCW_EVENT_GAP);
        pgcw_event_free(g);
        /* Now backing off for about a second: free must not wait for it. */
        int64_t t0 = pgtest_now_ms();
        pgcw_sub_free(s);
        pgcw_watcher_free(w);
        assert_true(pgtest_now_ms() - t0 < 500);
    }
    PQfinish(c);
}

/* A LATIN1 database: the watcher asks for UTF-8 whatever the database's encoding,
 * so a non-ASCII table name arrives intact instead of as a malformed payload. */
static void test_non_utf8_database(void **state)
{
    (void)state;
    PGconn *admin = pgtest_connect();
    pgtest_exec(admin, "DROP DATABASE IF EXISTS pgcw_latin1");
    pgtest_exec(admin, "CREATE DATABASE pgcw_latin1 TEMPLATE template0 ENCODING 'LATIN1' "
                       "LC_COLLATE 'C' LC_CTYPE 'C'");
    char dsn[1400];
    snprintf(dsn, sizeof dsn, "%s dbname=pgcw_latin1 client_encoding=LATIN1",
             pgtest_server_dsn());
    pgcw_watcher_opts o = {0};
    pgcw_conn_opts co = {.conninfo = dsn};
    pgcw_watcher *w = new_watcher(&o, &co, NULL);
    pgcw_sub *s = new_sub(w);
    loop_until_healthy(w);

    char sender_dsn[1400];
    snprintf(sender_dsn, sizeof sender_dsn, "%s dbname=pgcw_latin1 client_encoding=UTF8",
             pgtest_server_dsn());
    PGconn *sender = PQconnectdb(sender_dsn);
    assert_int_equal(PQstatus(sender), CONNECTION_OK);
    notify(sender, PGCW_DEFAULT_CHANNEL,
           "{\"operation\":\"update\",\"table\":\"caf\xc3\xa9\",\"sent_at\":"
           "\"2026-01-01T00:00:00Z\"}");
    const pgcw_event *ev = next_event(w, s);
    assert_int_equal(ev->kind, PGCW_EVENT_CHANGE);
    assert_string_equal(ev->table, "caf\xc3\xa9");
    pgcw_event_free(ev);
    PQfinish(sender);

    pgcw_sub_free(s);
    pgcw_watcher_free(w);
    pgtest_exec(admin, "DROP DATABASE pgcw_latin1");
    PQfinish(admin);
}

static void *interrupt_when_healthy(void *arg)
{
    pgcw_watcher *w = arg;
    /* Healthy can only happen inside run(): so run() is in progress here. */
    int64_t until = pgtest_now_ms() + WAIT_MS;
    while (!pgcw_watcher_healthy(w) && pgtest_now_ms() < until) {
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    pgcw_watcher_interrupt(w);
    return NULL;
}

static void test_run_and_interrupt(void **state)
{
    (void)state;
    pgcw_watcher_opts o = {0};
    pgcw_watcher *w = new_watcher(&o, NULL, NULL);
    int64_t t0 = pgtest_now_ms();
    assert_int_equal(pgcw_watcher_run(w, 300), PGCW_OK);
    assert_true(pgtest_now_ms() - t0 >= 300);

    /* From another thread while run(-1) blocks. */
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, interrupt_when_healthy, w), 0);
    assert_int_equal(pgcw_watcher_run(w, -1), PGCW_OK);
    pthread_join(t, NULL);
    assert_true(pgcw_watcher_healthy(w));

    /* An interrupt made before run() is not lost: run returns at once. */
    pgcw_watcher_interrupt(w);
    t0 = pgtest_now_ms();
    assert_int_equal(pgcw_watcher_run(w, -1), PGCW_OK);
    assert_true(pgtest_now_ms() - t0 < 1000);
    pgcw_watcher_free(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_poll_loop_mode),
        cmocka_unit_test(test_thread_mode),
        cmocka_unit_test(test_malformed_and_late),
        cmocka_unit_test(test_ping),
        cmocka_unit_test(test_bad_dsn),
        cmocka_unit_test(test_unquotable_channel),
        cmocka_unit_test(test_free_while_reconnecting),
        cmocka_unit_test(test_run_and_interrupt),
        cmocka_unit_test(test_non_utf8_database),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
