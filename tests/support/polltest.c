/*
 * polltest.c - the poll source tests' helpers (polltest.h).
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pgtest.h"
#include "polltest.h"

pgcw_install *polltest_install_items(PGconn *c)
{
    pgtest_exec(c, "DROP TABLE IF EXISTS items; CREATE TABLE items (id int primary key, "
                   "v text)");
    pgcw_install_opts io = {
        .channel = POLLTEST_CHANNEL, .with_keys = true, .source = PGCW_WATCH_POLL};
    pgcw_install *in = NULL;
    assert_int_equal(pgcw_install_new(&io, &in), PGCW_OK);
    /* What a failed test left behind goes first. */
    assert_int_equal(pgcw_uninstall_run(in, c, NULL), PGCW_OK);
    const char *tables[] = {"items"};
    if (pgcw_install_run(in, c, tables, 1, NULL) != PGCW_OK)
        fail_msg("install: %s", pgcw_install_errmsg(in));
    return in;
}

void polltest_uninstall(pgcw_install *in, PGconn *c)
{
    if (pgcw_uninstall_run(in, c, NULL) != PGCW_OK)
        fail_msg("uninstall: %s", pgcw_install_errmsg(in));
    pgcw_install_free(in);
}

/* The last warning of any watcher (their threads write, the test reads). */
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static char last_warning[1024];

static void on_log(void *ctx, pgcw_log_level level, const char *msg)
{
    (void)ctx;
    if (level != PGCW_LOG_WARNING)
        return;
    pthread_mutex_lock(&log_mu);
    snprintf(last_warning, sizeof last_warning, "%s", msg);
    pthread_mutex_unlock(&log_mu);
}

pgcw_watcher *polltest_start(int64_t retention_ms, pgcw_sub **sub)
{
    static const char *const channels[] = {POLLTEST_CHANNEL};
    pgcw_watcher_opts wo = {.channels = channels,
                            .n_channels = 1,
                            .source = PGCW_WATCH_POLL,
                            .poll_interval_ms = 20,
                            .changelog_retention_ms = retention_ms,
                            .max_latency_ms = 1,
                            .log = on_log};
    pgcw_conn_opts co = {
        .conninfo = pgtest_dsn(), .reconnect_min_ms = 10, .reconnect_max_ms = 50};
    pgcw_watcher *w = NULL;
    assert_int_equal(pgcw_watcher_new(&wo, &co, &w), PGCW_OK);
    assert_int_equal(pgcw_sub_new(w, NULL, sub), PGCW_OK);
    assert_int_equal(pgcw_watcher_start(w), PGCW_OK);
    if (pgcw_watcher_wait_healthy(w, POLLTEST_WAIT_MS) != PGCW_OK)
        fail_msg("poll watcher: %s", pgcw_watcher_errmsg(w));
    return w;
}

void polltest_stop(pgcw_watcher *w, pgcw_sub *sub)
{
    assert_int_equal(pgcw_watcher_stop(w), PGCW_OK);
    pgcw_sub_free(sub);
    pgcw_watcher_free(w);
}

const pgcw_event *polltest_next(pgcw_sub *sub, int *disconnects)
{
    for (;;) {
        const pgcw_event *e = NULL;
        if (pgcw_sub_get(sub, POLLTEST_WAIT_MS, &e) != PGCW_OK)
            fail_msg("no event within %d ms", POLLTEST_WAIT_MS);
        if (e->kind == PGCW_EVENT_GAP && e->gap_reason == PGCW_GAP_DISCONNECTED &&
            disconnects) {
            (*disconnects)++;
            pgcw_event_free(e);
            continue;
        }
        return e;
    }
}

void polltest_expect_change(const pgcw_event *e, pgcw_op op, const char *key)
{
    if (e->kind != PGCW_EVENT_CHANGE)
        fail_msg("a %s event (%s), wanted a change", pgcw_event_kind_name(e->kind),
                 pgcw_gap_reason_name(e->gap_reason));
    assert_string_equal(e->channel, POLLTEST_CHANNEL);
    assert_string_equal(e->table, "items");
    assert_int_equal(e->source, PGCW_SOURCE_POLL);
    assert_int_equal(e->backend_pid, 0);
    if (e->operation != op || e->n_keys != 1 || strcmp(e->keys[0], key) != 0)
        fail_msg("%s %s, wanted %s %s", pgcw_op_name(e->operation),
                 e->n_keys ? e->keys[0] : "(no key)", pgcw_op_name(op), key);
}

void polltest_expect_next(pgcw_sub *sub, pgcw_op op, const char *key)
{
    const pgcw_event *e = polltest_next(sub, NULL);
    polltest_expect_change(e, op, key);
    pgcw_event_free(e);
}

bool polltest_warned(const char *needle)
{
    pthread_mutex_lock(&log_mu);
    bool found = strstr(last_warning, needle) != NULL;
    pthread_mutex_unlock(&log_mu);
    return found;
}
