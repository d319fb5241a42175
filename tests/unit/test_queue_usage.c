/*
 * test_queue_usage.c - what the LISTEN source does with the NOTIFY queue usage its
 * pings read: kept for the statistics, and one warning when the queue passes half,
 * again only after it fell below a quarter. (A real queue fills only after 8 GB of
 * notifications; test_queue_pg shows the usage read from a real server.)
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "pgcw_testhook.h"

static int warnings;
static char last[512];

static void on_log(void *ctx, pgcw_log_level level, const char *msg)
{
    (void)ctx;
    if (level == PGCW_LOG_WARNING) {
        warnings++;
        snprintf(last, sizeof last, "%s", msg);
    }
}

static void test_usage_and_warnings(void **state)
{
    (void)state;
    static const char *const channels[] = {"ch"};
    pgcw_conn_opts co = {.conninfo = "host=/nonexistent/pgcw"};
    pgcw__listen_cfg cfg = {
        .conn = &co, .channels = channels, .n_channels = 1, .log = on_log};
    pgcw__source *s = NULL;
    assert_int_equal(pgcw__source_listen_new(&cfg, &pgcw__watcher_hub_ops, NULL, &s),
                     PGCW_OK);
    static const struct {
        double usage;
        int warnings;
    } steps[] = {{0.001, 0}, {0.49, 0}, {0.5, 1},  {0.9, 1}, {0.3, 1},
                 {0.6, 1},   {0.24, 1}, {0.75, 2}, {1.5, 2}, {-1, 2}};
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        pgcw__source_listen_queue_usage(s, steps[i].usage);
        if (warnings != steps[i].warnings)
            fail_msg("after %g: %d warnings, not %d", steps[i].usage, warnings,
                     steps[i].warnings);
    }
    assert_non_null(strstr(last, "NOTIFY queue is 75.0% full"));
    /* Nonsense (1.5, -1) is ignored: the last good reading stays. */
    assert_int_equal(atomic_load(&s->st_queue_usage_ppb), 750000000);
    s->vt->free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_usage_and_warnings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
