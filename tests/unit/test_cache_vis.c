/*
 * test_cache_vis.c - notify_mode LOGICAL's visibility question, without a server:
 * pg_current_snapshot()'s text parsed into 32-bit ids (an xid8's low half), and
 * which ids a snapshot shows finished: below xmax and not in xip, modulo 2^32
 * (an id at or past xmax, the newest transaction's, is not), and a range of ids
 * only when every one of them is.
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

#include "pgcw_testhook.h"

static pgcw__vis_snapshot parse_ok(const char *text)
{
    pgcw__vis_snapshot s;
    assert_int_equal(pgcw__vis_snapshot_parse(text, &s), PGCW_OK);
    return s;
}

static bool visible(const pgcw__vis_snapshot *s, uint32_t xid)
{
    return pgcw__vis_all_visible(s, xid, xid);
}

static void test_parse(void **state)
{
    (void)state;
    pgcw__vis_snapshot s = parse_ok("100:104:100,102");
    assert_int_equal(s.xmin, 100);
    assert_int_equal(s.xmax, 104);
    assert_int_equal(s.n_xip, 2);
    assert_int_equal(s.xip[0], 100);
    assert_int_equal(s.xip[1], 102);
    pgcw__vis_snapshot_free(&s);
    s = parse_ok("731:731:");
    assert_int_equal(s.n_xip, 0);
    assert_null(s.xip);
    pgcw__vis_snapshot_free(&s);
    /* Epoch 1: the low halves. */
    s = parse_ok("4294967396:4294967400:4294967398");
    assert_int_equal(s.xmin, 100);
    assert_int_equal(s.xmax, 104);
    assert_int_equal(s.xip[0], 102);
    pgcw__vis_snapshot_free(&s);
    const char *bad[] = {
        "",       "1",      "1:2",    "a:2:",  "1:2:x",
        "1:2:3,", "1:2:,3", "1:2:3 ", "-1:2:", "1:99999999999999999999999:"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(pgcw__vis_snapshot_parse(bad[i], &s), PGCW_EPARSE);
        assert_int_equal(s.n_xip, 0);
        assert_null(s.xip);
    }
}

static void test_visible(void **state)
{
    (void)state;
    pgcw__vis_snapshot s = parse_ok("100:104:100,102");
    assert_true(visible(&s, 99));
    assert_false(visible(&s, 100));
    assert_true(visible(&s, 101));
    assert_false(visible(&s, 102));
    assert_true(visible(&s, 103));
    assert_false(visible(&s, 104)); /* the newest may be past xmax */
    assert_false(visible(&s, 105));
    assert_true(pgcw__vis_all_visible(&s, 90, 99));
    assert_true(pgcw__vis_all_visible(&s, 103, 103));
    assert_false(pgcw__vis_all_visible(&s, 101, 103));
    assert_false(pgcw__vis_all_visible(&s, 90, 104));
    pgcw__vis_snapshot_free(&s);

    /* Around the wrap: xmax 3 comes after 4294967290. */
    s = parse_ok("4294967290:3:4294967295,1");
    assert_true(visible(&s, 4294967289u));
    assert_true(visible(&s, 4294967294u));
    assert_false(visible(&s, 4294967295u));
    assert_true(visible(&s, 0));
    assert_false(visible(&s, 1));
    assert_true(visible(&s, 2));
    assert_false(visible(&s, 3));
    assert_true(pgcw__vis_all_visible(&s, 4294967280u, 4294967294u));
    assert_false(pgcw__vis_all_visible(&s, 4294967280u, 2));
    pgcw__vis_snapshot_free(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_visible),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
