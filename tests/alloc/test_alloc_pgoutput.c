/*
 * test_alloc_pgoutput.c - the pgoutput decoder with its nth allocation failed,
 * for every n, over streams of the fuzz target's seed corpus (two transactions,
 * truncates, composite and escaped keys, a relation described again). Creating
 * the decoder fails cleanly or works; a message whose allocation fails is
 * PGCW_ENOMEM saying "out of memory", the events queued before it are whole, and
 * after a reset the stream decodes again from its start into exactly the events
 * of a run without failures; nothing leaks (ASan build).
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

#include "failalloc.h"
#include "pgcw_testhook.h"

#define MAX_N 10000

/* Feeds every message of a seed (2-byte length, bytes) to d; returns the first
 * status that is not PGCW_OK, and the events taken in *n_events (freed). */
static pgcw_status feed_all(pgcw__pgoutput *d, const unsigned char *s, size_t len,
                            size_t *n_events)
{
    *n_events = 0;
    pgcw_status st = PGCW_OK;
    for (size_t at = 0; at + 2 <= len && st == PGCW_OK;) {
        size_t n = (size_t)s[at] << 8 | s[at + 1];
        at += 2;
        assert_true(n <= len - at);
        char why[256] = "";
        st = pgcw__pgoutput_feed(d, s + at, n, 1, NULL, why, sizeof why);
        at += n;
        if (st == PGCW_ENOMEM)
            assert_string_equal(why, "out of memory");
        pgcw_event *ev[8];
        size_t k;
        while ((k = pgcw__pgoutput_take(d, ev, 8)) > 0)
            for (size_t i = 0; i < k; i++) {
                assert_int_equal(ev[i]->kind, PGCW_EVENT_CHANGE);
                assert_non_null(ev[i]->table);
                pgcw_event_free(ev[i]);
                (*n_events)++;
            }
    }
    return st;
}

static void sweep_seed(const char *name)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/fuzz/corpus/fuzz_pgoutput/%s",
             getenv("PGCW_SOURCE_DIR"), name);
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot read %s", path);
    unsigned char buf[8192];
    size_t len = fread(buf, 1, sizeof buf, f);
    fclose(f);

    pgcw__pgoutput *d = NULL;
    assert_int_equal(pgcw__pgoutput_new("ch", &d), PGCW_OK);
    size_t want = 0;
    assert_int_equal(feed_all(d, buf, len, &want), PGCW_OK);
    pgcw__pgoutput_free(d);
    assert_true(want > 0);

    unsigned long n = 1;
    for (; n < MAX_N; n++) {
        failalloc_arm(n, false);
        d = NULL;
        pgcw_status st = pgcw__pgoutput_new("ch", &d);
        size_t got = 0;
        if (st == PGCW_OK)
            st = feed_all(d, buf, len, &got);
        bool fired = failalloc_fired();
        failalloc_arm(0, false);
        if (st != PGCW_OK && st != PGCW_ENOMEM)
            fail_msg("%s, allocation %lu failed: %s", name, n, pgcw_status_name(st));
        if (!fired) {
            assert_int_equal(st, PGCW_OK);
            assert_int_equal(got, want);
            pgcw__pgoutput_free(d);
            break;
        }
        if (d) {
            /* A new session: the whole stream again, with no failure. */
            pgcw__pgoutput_reset(d);
            assert_int_equal(feed_all(d, buf, len, &got), PGCW_OK);
            assert_int_equal(got, want);
        }
        pgcw__pgoutput_free(d);
    }
    assert_true(n > 1 && n < MAX_N);
}

static void test_seeds(void **state)
{
    (void)state;
    static const char *const seeds[] = {"two_transactions", "truncate_two",
                                        "composite_escapes", "update_key_change",
                                        "redescribe"};
    for (size_t i = 0; i < sizeof seeds / sizeof seeds[0]; i++)
        sweep_seed(seeds[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seeds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
