/*
 * test_abi.c - options and statistics across header versions (docs/abi.md): a
 * caller compiled against an older, smaller struct gets the defaults for what it
 * could not know; one compiled against a newer, larger struct is accepted when the
 * fields it added are zero and refused with PGCW_EINVAL when one is set; statistics
 * are written up to the caller's size and no further, zero beyond the library's.
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

#include "pgcw_testhook.h"

/* A struct from a "newer header": ours plus fields this library does not know. */
typedef struct newer_l1_opts {
    pgcw_l1_opts known;
    uint64_t future_field;
} newer_l1_opts;

static void test_opts_copy(void **state)
{
    (void)state;
    unsigned char dst[16], src[24];
    memset(src, 7, sizeof src);
    memset(dst, 0xAA, sizeof dst);
    /* Older (smaller): the rest is zero, i.e. defaults. */
    assert_int_equal(pgcw__opts_copy(dst, sizeof dst, src, 10), PGCW_OK);
    for (size_t i = 0; i < sizeof dst; i++)
        assert_int_equal(dst[i], i < 10 ? 7 : 0);
    /* Newer (larger) with a zero tail: fine; with anything set there: refused. */
    memset(src + 16, 0, 8);
    assert_int_equal(pgcw__opts_copy(dst, sizeof dst, src, sizeof src), PGCW_OK);
    src[23] = 1;
    assert_int_equal(pgcw__opts_copy(dst, sizeof dst, src, sizeof src), PGCW_EINVAL);
    /* NULL: all defaults; a struct of size 0 is a mistake. */
    assert_int_equal(pgcw__opts_copy(dst, sizeof dst, NULL, 0), PGCW_OK);
    for (size_t i = 0; i < sizeof dst; i++)
        assert_int_equal(dst[i], 0);
    assert_int_equal(pgcw__opts_copy(dst, sizeof dst, src, 0), PGCW_EINVAL);
}

static void test_stats_copy(void **state)
{
    (void)state;
    unsigned char src[8] = {1, 2, 3, 4, 5, 6, 7, 8}, dst[12];
    memset(dst, 0xAA, sizeof dst);
    pgcw__stats_copy(dst, 4, src, sizeof src); /* older caller: just its prefix */
    assert_memory_equal(dst, src, 4);
    assert_int_equal(dst[4], 0xAA);
    pgcw__stats_copy(dst, sizeof dst, src, sizeof src); /* newer: zero beyond ours */
    assert_memory_equal(dst, src, 8);
    for (size_t i = 8; i < sizeof dst; i++)
        assert_int_equal(dst[i], 0);
    pgcw__stats_copy(NULL, 4, src, sizeof src);
}

/* Through the public entry points the macros call. */
static void test_public_entry_points(void **state)
{
    (void)state;
    /* An L1 built by code that predates charge_payload_only gets full costs. */
    pgcw_l1_opts o = {
        .max_entries = 100, .max_bytes = 1 << 20, .charge_payload_only = true};
    pgcw_l1 *c = NULL;
    assert_int_equal(
        pgcw_l1_new_sized(&o, offsetof(pgcw_l1_opts, charge_payload_only), &c), PGCW_OK);
    assert_int_equal(pgcw_l1_set(c, "k", 1, "v", 1, 0, PGCW_L1_TTL_NONE), PGCW_OK);
    pgcw_l1_stats st;
    pgcw_l1_stats_get(c, &st);
    assert_int_equal(st.bytes, pgcw_l1_entry_cost(1, 1, false));
    pgcw_l1_free(c);
    assert_int_equal(pgcw_l1_new(&o, &c), PGCW_OK);
    assert_int_equal(pgcw_l1_set(c, "k", 1, "v", 1, 0, PGCW_L1_TTL_NONE), PGCW_OK);
    pgcw_l1_stats_get(c, &st);
    assert_int_equal(st.bytes, 2);

    /* Statistics into an older caller's smaller struct stop at its size. */
    unsigned char old_stats[offsetof(pgcw_l1_stats, entries) + 8];
    memset(old_stats, 0xAA, sizeof old_stats);
    pgcw_l1_stats_get_sized(c, (pgcw_l1_stats *)(void *)old_stats,
                            offsetof(pgcw_l1_stats, entries));
    for (size_t i = offsetof(pgcw_l1_stats, entries); i < sizeof old_stats; i++)
        assert_int_equal(old_stats[i], 0xAA);
    pgcw_l1_free(c);

    /* A newer caller's struct: accepted while its extra field is zero. */
    newer_l1_opts n = {.known = {.max_entries = 100}};
    assert_int_equal(pgcw_l1_new_sized(&n.known, sizeof n, &c), PGCW_OK);
    pgcw_l1_free(c);
    n.future_field = 1;
    c = (pgcw_l1 *)1;
    assert_int_equal(pgcw_l1_new_sized(&n.known, sizeof n, &c), PGCW_EINVAL);
    assert_null(c);

    /* The same rule for every constructor that takes options. */
    struct {
        pgcw_conn_opts known;
        uint64_t future;
    } nc = {.future = 9};
    pgcw_conn *conn = (pgcw_conn *)1;
    assert_int_equal(pgcw_conn_new_sized(&nc.known, sizeof nc, &conn), PGCW_EINVAL);
    assert_null(conn);
    pgcw_watcher *w = (pgcw_watcher *)1;
    assert_int_equal(pgcw_watcher_new_sized(NULL, 0, &nc.known, sizeof nc, &w),
                     PGCW_EINVAL);
    assert_null(w);
    struct {
        pgcw_watcher_opts known;
        uint64_t future;
    } nw = {.future = 1};
    assert_int_equal(pgcw_watcher_new_sized(&nw.known, sizeof nw, NULL, 0, &w),
                     PGCW_EINVAL);
    nw.future = 0;
    assert_int_equal(pgcw_watcher_new_sized(&nw.known, sizeof nw, NULL, 0, &w), PGCW_OK);
    struct {
        pgcw_sub_opts known;
        uint64_t future;
    } ns = {.future = 1};
    pgcw_sub *s = (pgcw_sub *)1;
    assert_int_equal(pgcw_sub_new_sized(w, &ns.known, sizeof ns, &s), PGCW_EINVAL);
    assert_null(s);
    struct {
        pgcw_strategy_opts known;
        uint64_t future;
    } nst = {.future = 1};
    pgcw_strategy *g = (pgcw_strategy *)1;
    assert_int_equal(pgcw_strategy_new_sized(w, &nst.known, sizeof nst, &g), PGCW_EINVAL);
    assert_null(g);

    /* Watcher statistics: an older caller's struct (before the 0.2 fields). */
    unsigned char ws[sizeof(pgcw_watcher_stats)];
    memset(ws, 0xAA, sizeof ws);
    pgcw_watcher_stats_get_sized(w, (pgcw_watcher_stats *)(void *)ws,
                                 offsetof(pgcw_watcher_stats, key_events));
    for (size_t i = 0; i < offsetof(pgcw_watcher_stats, key_events); i++)
        assert_int_equal(ws[i], 0);
    for (size_t i = offsetof(pgcw_watcher_stats, key_events); i < sizeof ws; i++)
        assert_int_equal(ws[i], 0xAA);
    pgcw_watcher_free(w);

    struct {
        pgcw_install_opts known;
        uint64_t future;
    } ni = {.future = 1};
    pgcw_install *in = (pgcw_install *)1;
    assert_int_equal(pgcw_install_new_sized(&ni.known, sizeof ni, &in), PGCW_EINVAL);
    assert_null(in);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_opts_copy),
        cmocka_unit_test(test_stats_copy),
        cmocka_unit_test(test_public_entry_points),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
