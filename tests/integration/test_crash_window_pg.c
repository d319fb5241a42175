/*
 * test_crash_window_pg.c - what a writer that dies between its commit and its
 * notification costs, in the notify modes that send after commit
 * (PGCW_CACHE_NOTIFY_AFTER_COMMIT, _BACKGROUND): the other clients keep their old
 * copy, for at most the documented bound (the row's remaining TTL when they read
 * it, capped by l1_ttl_ms), and then read the committed value. The default mode
 * (the trigger notifies inside the write's transaction) has no such window: the
 * same death costs nothing. A test hook ends the writing process exactly there.
 */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <pgcachewatch/pgcachewatch.h>

#include "cachetest.h"
#include "pgcw_testhook.h"
#include "pgtest.h"

#define L1_TTL_MS 4000

static void die_now(void)
{
    _exit(42); /* after the commit, before the notification */
}

/* The writer: a process of its own (this program run again with --writer-dies,
 * exec'd at once after fork: the parent has threads, and a forked copy of them
 * must not start more) that sets k = v2 in `mode` and dies right after its commit. */
static int writer_main(const char *dsn, const char *prefix, const char *mode_text)
{
    pgcw_cache_notify_mode mode = (pgcw_cache_notify_mode)atoi(mode_text);
    pgcw_cache_opts o = {.schema_prefix = prefix, .notify_mode = mode};
    pgcw_conn_opts co = {.conninfo = dsn};
    pgcw_cache *c = NULL;
    if (pgcw_cache_new(&o, &co, &c) != PGCW_OK)
        return 1;
    pgcw__cache_test.before_announce = die_now;
    if (pgcw_cache_set(c, "k", 1, "v2", 2, 60000) != PGCW_OK)
        return 3;
    /* The trigger mode has no such moment: the same death after the call. */
    return mode == PGCW_CACHE_NOTIFY_TRIGGER ? 42 : 2;
}

static char self[4096];

static void writer_dies(const char *prefix, pgcw_cache_notify_mode mode)
{
    char mode_text[16];
    snprintf(mode_text, sizeof mode_text, "%d", (int)mode);
    const char *dsn = pgtest_dsn();
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        execl(self, self, "--writer-dies", dsn, prefix, mode_text, (char *)NULL);
        _exit(127);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 42);
}

/* What the reader saw after the writer died: how long it kept serving v1 (ms), and
 * how many invalidations reached it by 1 s after it read v2 (the trigger's
 * notification, or none when the writer died before sending its own). */
typedef struct outcome {
    int64_t stale_ms;
    uint64_t notified;
} outcome;

static outcome after_death(const char *prefix, pgcw_cache_notify_mode mode)
{
    cachetest_init(prefix);
    pgcw_cache_opts ro = {.l1_ttl_ms = L1_TTL_MS};
    pgcw_cache *reader = cachetest_new(prefix, &ro);
    pgcw_cache *setup = cachetest_new(prefix, NULL);
    cachetest_set(setup, "k", "v1", 60000);
    cachetest_wait_value(reader, "k", "v1");
    /* The reader's copy is fresh now: its L1 lifetime starts here. */
    pgcw_cache_flush_local(reader);
    char *v = cachetest_get(reader, "k");
    assert_string_equal(v, "v1");
    free(v);
    uint64_t before = cachetest_stats(reader).invalidations_received;
    int64_t t0 = pgtest_now_ms();
    writer_dies(prefix, mode);
    PGconn *pg = pgtest_connect();
    char q[256];
    snprintf(
        q, sizeof q,
        "SELECT convert_from(value, 'UTF8') FROM %scache_entries WHERE cache_key = 'k'",
        prefix);
    char *row = pgtest_query_value(pg, q);
    assert_string_equal(row, "v2"); /* it committed */
    free(row);
    cachetest_wait_value(reader, "k", "v2");
    outcome o = {.stale_ms = pgtest_now_ms() - t0};
    pgtest_sleep_ms(1000); /* a late notification would count too */
    o.notified = cachetest_stats(reader).invalidations_received - before;
    PQfinish(pg);
    pgcw_cache_free(setup);
    pgcw_cache_free(reader);
    return o;
}

static void test_crash_between_commit_and_notify(void **state)
{
    (void)state;
    outcome after = after_death("crash_a_", PGCW_CACHE_NOTIFY_AFTER_COMMIT);
    outcome background = after_death("crash_b_", PGCW_CACHE_NOTIFY_BACKGROUND);
    outcome trigger = after_death("crash_t_", PGCW_CACHE_NOTIFY_TRIGGER);
    print_message("a writer killed between commit and notification left the other "
                  "client stale for %lld ms (after-commit), %lld ms (background), "
                  "%lld ms (trigger, %llu notification); l1_ttl_ms %d\n",
                  (long long)after.stale_ms, (long long)background.stale_ms,
                  (long long)trigger.stale_ms, (unsigned long long)trigger.notified,
                  L1_TTL_MS);
    /* After commit: the notification is lost, and l1_ttl_ms bounds the staleness
     * (with the polling's and a loaded machine's slack). */
    assert_int_equal(after.notified, 0);
    assert_int_equal(background.notified, 0);
    assert_true(after.stale_ms >= L1_TTL_MS / 2 && after.stale_ms <= L1_TTL_MS + 3000);
    assert_true(background.stale_ms >= L1_TTL_MS / 2 &&
                background.stale_ms <= L1_TTL_MS + 3000);
    /* The trigger's notification committed with the row: nothing is lost (how
     * fast it arrives is the machine's; on a quiet one, tens of ms). */
    assert_int_equal(trigger.notified, 1);
}

int main(int argc, char **argv)
{
    if (argc == 5 && strcmp(argv[1], "--writer-dies") == 0)
        return writer_main(argv[2], argv[3], argv[4]);
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0)
        return 1;
    self[n] = '\0';
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crash_between_commit_and_notify),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
