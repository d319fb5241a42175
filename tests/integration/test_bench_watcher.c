/*
 * test_bench_watcher.c - the watcher benchmark (bench/bench_watcher) measures what
 * it claims: a tiny run against the test server must deliver every event to every
 * mode, pinned and unpinned, and report sane figures in its JSON. This checks the
 * harness, never the speed: it must not assert performance targets (the machine is
 * shared and noisy; the figures live in docs/bench.md).
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "pgtest.h"

#define EVENTS 60
#define ROUNDS 2

static char bench_path[1024];

static int setup(void **state)
{
    (void)state;
    const char *dir = getenv("PGCW_BUILD_DIR");
    if (dir == NULL || *dir == '\0') {
        fprintf(stderr, "PGCW_BUILD_DIR is not set (run under ctest)\n");
        return -1;
    }
    snprintf(bench_path, sizeof bench_path, "%s/bench/bench_watcher", dir);
    return 0;
}

static json_object *member(json_object *o, const char *key)
{
    json_object *v = NULL;
    if (!json_object_object_get_ex(o, key, &v))
        fail_msg("JSON member %s missing in %s", key, json_object_to_json_string(o));
    return v;
}

static void test_every_mode_gets_every_event(void **state)
{
    (void)state;
    if (access(bench_path, X_OK) != 0)
        skip(); /* built with -DPGCW_BUILD_BENCH=OFF */
    char cmd[2048], *out = NULL, *err = NULL;
    /* 1001 flood events in bursts of 300 and batches of 20: the short last burst and
     * batch must be counted. */
    snprintf(cmd, sizeof cmd,
             "'%s' --dsn '%s' --rounds %d --events %d --warmup 7 --interval-us 200 "
             "--flood 1001 --burst 300 --batch 20 --pin both --json",
             bench_path, pgtest_dsn(), ROUNDS, EVENTS);
    int rc = pgtest_run(cmd, &out, &err);
    if (rc != 0)
        fail_msg("bench_watcher exited %d: %s", rc, err ? err : "");
    json_object *root = json_tokener_parse(out);
    assert_non_null(root);
    json_object *results = member(root, "results");
    /* 4 modes x 2 pin settings */
    assert_int_equal(json_object_array_length(results), 8);
    for (size_t i = 0; i < json_object_array_length(results); i++) {
        json_object *r = json_object_array_get_idx(results, i);
        const char *mode = json_object_get_string(member(r, "mode"));
        double tx = json_object_get_double(member(r, "sender_events_per_s"));
        assert_true(tx > 0);
        assert_int_equal(json_object_get_int64(member(r, "lost")), 0);
        json_object *rounds = member(r, "rounds");
        assert_int_equal(json_object_array_length(rounds), ROUNDS);
        if (strcmp(mode, "sender-alone") == 0)
            continue;
        for (size_t k = 0; k < ROUNDS; k++) {
            json_object *x = json_object_array_get_idx(rounds, k);
            assert_int_equal(json_object_get_int64(member(x, "latency_samples")), EVENTS);
            int64_t p50 = json_object_get_int64(member(x, "p50_us"));
            int64_t p99 = json_object_get_int64(member(x, "p99_us"));
            int64_t max = json_object_get_int64(member(x, "max_us"));
            /* A commit-to-delivery time is positive and, on loopback, far below 10 s:
             * anything else means the clocks or the payload were misread. */
            assert_true(p50 > 0);
            assert_true(p50 <= p99);
            assert_true(p99 <= max);
            assert_true(max < 10 * 1000 * 1000);
            assert_true(json_object_get_double(member(x, "events_per_s")) > 0);
        }
        if (strcmp(mode, "bare") != 0) {
            /* The watcher's share is a part of each event's latency, so its median
             * cannot exceed the whole's. */
            double lib = json_object_get_double(member(r, "in_library_p50_us"));
            assert_true(lib >= 0);
            assert_true(lib <= json_object_get_double(member(r, "p50_us")));
            assert_true(json_object_get_double(member(r, "p50_ratio")) > 0);
            assert_true(json_object_get_double(member(r, "throughput_ratio")) > 0);
            member(r, "pass");
        }
    }
    json_object_put(root);
    free(out);
    free(err);
}

static void test_errors_are_not_figures(void **state)
{
    (void)state;
    if (access(bench_path, X_OK) != 0)
        skip();
    char cmd[2048], *err = NULL;
    snprintf(cmd, sizeof cmd, "'%s' --rounds 0", bench_path);
    assert_int_equal(pgtest_run(cmd, NULL, NULL), 2);
    snprintf(cmd, sizeof cmd, "'%s' --modes bare,nonsense", bench_path);
    assert_int_equal(pgtest_run(cmd, NULL, NULL), 2);
    /* A server that is not there: an error and no table. */
    snprintf(cmd, sizeof cmd,
             "'%s' --dsn 'host=/nonexistent port=1 connect_timeout=2' --rounds 1",
             bench_path);
    char *out = NULL;
    assert_int_equal(pgtest_run(cmd, &out, &err), 1);
    assert_non_null(strstr(err, "cannot connect"));
    assert_null(strstr(out, "p50"));
    free(out);
    free(err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_mode_gets_every_event),
        cmocka_unit_test(test_errors_are_not_figures),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
