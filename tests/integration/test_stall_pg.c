/*
 * test_stall_pg.c - a network that stops carrying anything without closing: the
 * cache's connections go through a loopback proxy (tests/support/tcpproxy.h) that
 * stalls. The watcher must report unhealthy within its ping bound, the L1 must
 * stop serving at once, pool calls must fail within their deadline with a clear
 * error, and everything must recover without help once the network is back.
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

#include "cachetest.h"
#include "pgtest.h"
#include "tcpproxy.h"

#define PING_MS 300
#define PING_TIMEOUT_MS 700
#define STATEMENT_MS 800
#define LOCK_MS 400

static int server_port(void)
{
    const char *p = strstr(pgtest_dsn(), "port=");
    assert_non_null(p);
    return atoi(p + 5);
}

static void test_stalled_network(void **state)
{
    (void)state;
    cachetest_init("stall_");
    int port = 0;
    tcpproxy *proxy = tcpproxy_start(server_port(), &port);
    char conninfo[1024];
    /* Later keywords win: the test database, reached through the proxy. */
    snprintf(conninfo, sizeof conninfo, "%s host=127.0.0.1 port=%d", pgtest_dsn(), port);
    pgcw_conn_opts co = {.conninfo = conninfo,
                         .connect_timeout_ms = 1000,
                         .reconnect_min_ms = 50,
                         .reconnect_max_ms = 200};
    static const char *const channels[] = {"cache_events"};
    pgcw_watcher_opts wo = {.channels = channels,
                            .n_channels = 1,
                            .ping_interval_ms = PING_MS,
                            .ping_timeout_ms = PING_TIMEOUT_MS};
    pgcw_watcher *w = NULL;
    assert_int_equal(pgcw_watcher_new(&wo, &co, &w), PGCW_OK);
    assert_int_equal(pgcw_watcher_start(w), PGCW_OK);
    pgcw_cache_opts o = {.schema_prefix = "stall_",
                         .watcher = w,
                         .pool_size = 1,
                         .statement_timeout_ms = STATEMENT_MS,
                         .lock_timeout_ms = LOCK_MS};
    pgcw_cache *c = NULL;
    assert_int_equal(pgcw_cache_new(&o, &co, &c), PGCW_OK);
    assert_int_equal(pgcw_cache_wait_healthy(c, CACHETEST_WAIT_MS), PGCW_OK);
    cachetest_set(c, "k", "v1", 60000);
    char *v = cachetest_get(c, "k");
    assert_string_equal(v, "v1");
    free(v);
    pgcw_cache_stats before = cachetest_stats(c);

    /* The network stalls; meanwhile the value changes on the server. */
    tcpproxy_stall(proxy, true);
    int64_t t0 = pgtest_now_ms();
    PGconn *direct = pgtest_connect();
    pgtest_exec(direct,
                "UPDATE stall_cache_entries SET value = 'v2', version = version + 1"
                " WHERE cache_key = 'k'");
    while (pgcw_watcher_healthy(w)) {
        if (pgtest_now_ms() - t0 > 10000)
            fail_msg("the watcher still says healthy 10 s into a stall");
        pgtest_sleep_ms(10);
    }
    int64_t noticed_ms = pgtest_now_ms() - t0;
    /* A ping goes out after PING_MS of silence and is given PING_TIMEOUT_MS. */
    if (noticed_ms > PING_MS + PING_TIMEOUT_MS + 1000)
        fail_msg("the stall was noticed after %lld ms", (long long)noticed_ms);

    /* The L1 no longer serves v1: the get goes to the pool, which is stalled too,
     * and fails within its deadline (statement + lock timeout + 1 s of grace). */
    int64_t t1 = pgtest_now_ms();
    void *got = NULL;
    size_t len = 0;
    pgcw_status st = pgcw_cache_get(c, "k", 1, &got, &len);
    int64_t call_ms = pgtest_now_ms() - t1;
    if (st == PGCW_OK)
        fail_msg("a stalled network served \"%.*s\"", (int)len, (char *)got);
    assert_true(st == PGCW_ETIMEDOUT || st == PGCW_ECONNLOST);
    if (call_ms > STATEMENT_MS + LOCK_MS + 1000 + 500)
        fail_msg("the call took %lld ms", (long long)call_ms);
    assert_true(strlen(pgcw_cache_errmsg(c)) > 0);
    pgcw_cache_stats during = cachetest_stats(c);
    assert_true(during.bypasses > before.bypasses);
    assert_true(during.l1_hits == before.l1_hits);

    /* The network is back: recovery without help, and the fresh value. */
    tcpproxy_stall(proxy, false);
    int64_t t2 = pgtest_now_ms();
    assert_int_equal(pgcw_cache_wait_healthy(c, CACHETEST_WAIT_MS), PGCW_OK);
    int64_t recovered_ms = cachetest_wait_value(c, "k", "v2");
    print_message("stall noticed after %lld ms, get failed after %lld ms (%s), recovered "
                  "%lld ms after the network came back\n",
                  (long long)noticed_ms, (long long)call_ms, pgcw_status_name(st),
                  (long long)(pgtest_now_ms() - t2 + recovered_ms * 0));
    PQfinish(direct);
    pgcw_cache_free(c);
    pgcw_watcher_free(w);
    tcpproxy_stop(proxy);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stalled_network),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
