/*
 * test_hub_pg.c - one watcher, two channels, a real server: a table change (from
 * installed triggers) reaches a subscriber's queue, and postgres-cache key
 * notifications, written by plain SQL pg_notify in both forms, reach a sink as key
 * events with the right key bytes (0x1F and non-ASCII included), version and
 * operation, and the queue gets them too; a malformed one is logged and skipped
 * without costing the connection.
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
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

#define WAIT_MS 15000
#define MAX_SEEN 16

typedef struct seen {
    pthread_mutex_t mu;
    size_t n;
    const pgcw_event *events[MAX_SEEN]; /* clones, in arrival order */
    int warnings;
    char last_warning[512];
} seen;

static void sink(void *ctx, const pgcw_event *e)
{
    seen *s = ctx;
    if (e->kind != PGCW_EVENT_KEY)
        return;
    const pgcw_event *copy = NULL;
    assert_int_equal(pgcw_event_clone(e, &copy), PGCW_OK);
    pthread_mutex_lock(&s->mu);
    if (s->n < MAX_SEEN)
        s->events[s->n++] = copy;
    else
        pgcw_event_free(copy);
    pthread_mutex_unlock(&s->mu);
}

static void on_log(void *ctx, pgcw_log_level level, const char *msg)
{
    seen *s = ctx;
    if (level == PGCW_LOG_WARNING) {
        pthread_mutex_lock(&s->mu);
        s->warnings++;
        snprintf(s->last_warning, sizeof s->last_warning, "%s", msg);
        pthread_mutex_unlock(&s->mu);
    }
}

static size_t seen_count(seen *s)
{
    pthread_mutex_lock(&s->mu);
    size_t n = s->n;
    pthread_mutex_unlock(&s->mu);
    return n;
}

static void wait_seen(seen *s, size_t n)
{
    int64_t until = pgtest_now_ms() + WAIT_MS;
    while (seen_count(s) < n) {
        if (pgtest_now_ms() > until)
            fail_msg("the sink saw %zu key events, not %zu", seen_count(s), n);
        pgtest_sleep_ms(5);
    }
}

static void expect_key(const pgcw_event *e, pgcw_op op, const char *key, size_t len,
                       int64_t version)
{
    assert_int_equal(e->kind, PGCW_EVENT_KEY);
    assert_string_equal(e->channel, "cache_events");
    assert_int_equal(e->operation, op);
    if (e->key_len != len || memcmp(e->key, key, len) != 0)
        fail_msg("key of %zu bytes, wanted %zu", e->key_len, len);
    assert_int_equal(e->version, version);
    assert_int_equal(e->source, PGCW_SOURCE_LISTEN);
    assert_true(e->backend_pid > 0);
    assert_int_equal(e->epoch, 1);
}

static void test_two_channels_queue_and_sink(void **state)
{
    (void)state;
    PGconn *c = pgtest_connect();
    pgtest_exec(c,
                "DROP TABLE IF EXISTS orders; CREATE TABLE orders (id int primary key)");
    pgcw_install_opts io = {.channel = "table_changes", .with_keys = true};
    pgcw_install *in = NULL;
    assert_int_equal(pgcw_install_new(&io, &in), PGCW_OK);
    const char *tables[] = {"orders"};
    if (pgcw_install_run(in, c, tables, 1, NULL) != PGCW_OK)
        fail_msg("install: %s", pgcw_install_errmsg(in));

    static seen s = {.mu = PTHREAD_MUTEX_INITIALIZER};
    const char *channels[] = {"table_changes", "cache_events"};
    /* The table channel decodes whatever comes (AUTO); the cache channel insists on
     * the key notification. */
    pgcw_payload_format formats[] = {PGCW_FORMAT_AUTO, PGCW_FORMAT_CACHE_KEY};
    pgcw_watcher_opts wo = {.channels = channels,
                            .n_channels = 2,
                            .formats = formats,
                            .log = on_log,
                            .log_ctx = &s};
    pgcw_conn_opts co = {.conninfo = pgtest_dsn()};
    pgcw_watcher *w = NULL;
    assert_int_equal(pgcw_watcher_new(&wo, &co, &w), PGCW_OK);
    pgcw_sub *q = NULL;
    assert_int_equal(pgcw_sub_new(w, NULL, &q), PGCW_OK);
    pgcw_sink_opts so = {.fn = sink, .ctx = &s};
    pgcw_sink *k = NULL;
    assert_int_equal(pgcw_sink_new(w, &so, &k), PGCW_OK);
    assert_int_equal(pgcw_watcher_start(w), PGCW_OK);
    if (pgcw_watcher_wait_healthy(w, WAIT_MS) != PGCW_OK)
        fail_msg("watcher: %s", pgcw_watcher_errmsg(w));

    /* A table change reaches the queue. */
    pgtest_exec(c, "INSERT INTO orders VALUES (42)");
    const pgcw_event *e = NULL;
    assert_int_equal(pgcw_sub_get(q, WAIT_MS, &e), PGCW_OK);
    assert_int_equal(e->kind, PGCW_EVENT_CHANGE);
    assert_string_equal(e->channel, "table_changes");
    assert_string_equal(e->table, "orders");
    assert_int_equal(e->operation, PGCW_OP_INSERT);
    assert_int_equal(e->n_keys, 1);
    assert_string_equal(e->keys[0], "[42]");
    assert_int_equal(e->source, PGCW_SOURCE_LISTEN);
    pgcw_event_free(e);

    /* Key notifications as the Python postgres-cache writes them, by plain SQL:
     * 0x1F doubled inside the key, and the hex form. */
    pgtest_exec(c, "SELECT pg_notify('cache_events', 'u42' || chr(31) || 'profile:7');"
                   "SELECT pg_notify('cache_events', 'd7' || chr(31) ||"
                   "  replace('a' || chr(31) || 'b', chr(31), chr(31) || chr(31)));"
                   "SELECT pg_notify('cache_events', 'u3' || chr(31) || 'ключ é');"
                   "SELECT pg_notify('cache_events', 'u9|' ||"
                   "  encode(convert_to('hex ' || chr(31) || ' ключ', 'UTF8'), 'hex'))");
    /* A malformed one (no version) in between: logged and skipped. */
    pgtest_exec(c, "SELECT pg_notify('cache_events', 'u' || chr(31) || 'lost');"
                   "SELECT pg_notify('cache_events', 'd1' || chr(31) || 'after')");
    wait_seen(&s, 5);
    expect_key(s.events[0], PGCW_OP_UPDATE, "profile:7", 9, 42);
    expect_key(s.events[1], PGCW_OP_DELETE,
               "a\x1f"
               "b",
               3, 7);
    expect_key(s.events[2], PGCW_OP_UPDATE, "ключ é", strlen("ключ é"), 3);
    expect_key(s.events[3], PGCW_OP_UPDATE, "hex \x1f ключ", strlen("hex \x1f ключ"), 9);
    expect_key(s.events[4], PGCW_OP_DELETE, "after", 5, 1);

    /* The queue got the same key events too. */
    for (int i = 0; i < 5; i++) {
        assert_int_equal(pgcw_sub_get(q, WAIT_MS, &e), PGCW_OK);
        assert_int_equal(e->kind, PGCW_EVENT_KEY);
        assert_int_equal(e->version, s.events[i]->version);
        pgcw_event_free(e);
    }
    assert_int_equal(pgcw_sub_pending(q), 0);

    pgcw_watcher_stats st;
    pgcw_watcher_stats_get(w, &st);
    assert_int_equal(st.malformed, 1);
    assert_int_equal(st.key_events, 5);
    assert_int_equal(st.disconnects, 0);
    assert_true(pgcw_watcher_healthy(w));
    pthread_mutex_lock(&s.mu);
    assert_int_equal(s.warnings, 1);
    assert_non_null(strstr(s.last_warning, "malformed notification on channel "
                                           "\"cache_events\""));
    assert_non_null(strstr(s.last_warning, "without a valid version"));
    pthread_mutex_unlock(&s.mu);

    assert_int_equal(pgcw_watcher_stop(w), PGCW_OK);
    pgcw_sink_free(k);
    pgcw_sub_free(q);
    pgcw_watcher_free(w);
    for (size_t i = 0; i < s.n; i++)
        pgcw_event_free(s.events[i]);
    assert_int_equal(pgcw_uninstall_run(in, c, NULL), PGCW_OK);
    pgcw_install_free(in);
    PQfinish(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_two_channels_queue_and_sink),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
