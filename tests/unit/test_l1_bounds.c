/*
 * test_l1_bounds.c - both bounds hold after every operation, oversized entries are
 * refused, a one-pass scan does not wipe the hot set, TTLs on an injected clock,
 * statistics per operation, get_dup and argument checks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <pgcachewatch/l1.h>

#include "pgcw_testhook.h"

static void assert_bounds(pgcw_l1 *c)
{
    pgcw_l1_stats s;
    pgcw_l1_stats_get(c, &s);
    assert_true(s.held_entries <= s.max_entries);
    assert_true(s.held_bytes <= s.max_bytes);
    assert_true(s.entries <= s.held_entries);
}

/* A working set far below the bound: 64 keys in a 4096-entry cache, each read back,
 * invalidated and filled again, over and over. The removed entries are reclaimed
 * once they outnumber the live ones and make an eighth of a shard's bound, so what
 * the cache holds follows its working set; before, it held up to its whole bound
 * in dead entries. Per shard: live + max(live, bound / 8) + the one being added. */
static void test_small_working_set(void **state)
{
    (void)state;
    pgcw_l1_opts o = {.max_entries = 4096, .max_bytes = 1u << 30, .shards = 16};
    pgcw_l1 *c;
    assert_int_equal(pgcw_l1_new(&o, &c), PGCW_OK);
    char key[16];
    size_t most = 0;
    for (int64_t v = 1; v <= 200000; v++) {
        int n = snprintf(key, sizeof(key), "k%d", (int)(v % 64));
        pgcw_l1_ticket t;
        pgcw_l1_ticket_take(c, key, (size_t)n, &t);
        bool stored = false;
        assert_int_equal(
            pgcw_l1_fill(c, &t, key, (size_t)n, "value", 5, v, PGCW_L1_TTL_NONE, &stored),
            PGCW_OK);
        assert_true(stored);
        assert_int_equal(pgcw_l1_invalidate(c, key, (size_t)n, v + 1), PGCW_OK);
        pgcw_l1_stats s;
        pgcw_l1_stats_get(c, &s);
        if (s.held_entries > most)
            most = s.held_entries;
    }
    pgcw_l1_stats s;
    pgcw_l1_stats_get(c, &s);
    assert_int_equal(s.shards, 16);
    assert_true(most <= 2 * 64 + 4096 / 8 + 16);
    assert_true(s.invalidations == 200000);
    pgcw_l1_free(c);
}

static void test_entry_bound(void **state)
{
    (void)state;
    pgcw_l1_opts o = {.max_entries = 1000, .max_bytes = 1u << 30};
    pgcw_l1 *c;
    assert_int_equal(pgcw_l1_new(&o, &c), PGCW_OK);
    char key[32];
    for (int i = 0; i < 50000; i++) {
        int n = snprintf(key, sizeof(key), "key%d", i);
        assert_int_equal(pgcw_l1_set(c, key, (size_t)n, "v", 1, 0, PGCW_L1_TTL_NONE),
                         PGCW_OK);
        if (i % 7 == 0)
            (void)pgcw_l1_delete(c, key, (size_t)n);
        assert_bounds(c);
    }
    pgcw_l1_stats s;
    pgcw_l1_stats_get(c, &s);
    assert_true(s.evictions > 40000);
    assert_true(s.entries > 500); /* evicting did not empty it */
    pgcw_l1_free(c);
}

static void test_byte_bound(void **state)
{
    (void)state;
    pgcw_l1_opts o = {.max_entries = 100000, .max_bytes = 256 * 1024, .shards = 4};
    pgcw_l1 *c;
    assert_int_equal(pgcw_l1_new(&o, &c), PGCW_OK);
    static unsigned char val[8192];
    memset(val, 'x', sizeof(val));
    srand(7);
    char key[32];
    for (int i = 0; i < 20000; i++) {
        int n = snprintf(key, sizeof(key), "k%d", rand() % 3000);
        size_t len = (size_t)(rand() % (int)sizeof(val));
        assert_int_equal(pgcw_l1_set(c, key, (size_t)n, val, len, i, PGCW_L1_TTL_NONE),
                         PGCW_OK);
        assert_bounds(c);
    }
    /* One shard holds 64 KiB: a 70 KiB value can never fit; the old value goes. */
    assert_int_equal(pgcw_l1_set(c, "big", 3, "small", 5, 0, 0), PGCW_OK);
    unsigned char *huge = calloc(1, 70 * 1024);
    assert_non_null(huge);
    assert_int_equal(pgcw_l1_set(c, "big", 3, huge, 70 * 1024, 0, 0), PGCW_ETOOBIG);
    char buf[8];
    size_t len;
    assert_int_equal(pgcw_l1_get(c, "big", 3, buf, sizeof(buf), &len, NULL),
                     PGCW_ENOTFOUND);
    free(huge);
    /* Keys longer than PGCW_L1_MAX_KEY are refused too. */
    char *longkey = calloc(1, PGCW_L1_MAX_KEY + 1);
    assert_non_null(longkey);
    assert_int_equal(pgcw_l1_set(c, longkey, PGCW_L1_MAX_KEY + 1, "v", 1, 0, 0),
                     PGCW_ETOOBIG);
    free(longkey);
    assert_bounds(c);
    pgcw_l1_free(c);
}

/* A value's length and bytes follow from its version, so a slot handed to two
 * entries at once, or reused before its reader was done, shows as a mismatch. */
static size_t churn_len(int64_t version)
{
    return (size_t)(version * 37 % 700); /* 0..699: slab classes and malloc'ed */
}

/* Reclaimed entries of every size go back to their shard's slab (the unsorted
 * list, sorted as allocation meets them) and are reused: after a warm-up, churn
 * maps no more memory, and every hit still reads what was set. */
static void test_slot_reuse(void **state)
{
    (void)state;
    pgcw_l1_opts o = {.max_entries = 2000, .max_bytes = 1u << 20, .shards = 2};
    pgcw_l1 *c;
    assert_int_equal(pgcw_l1_new(&o, &c), PGCW_OK);
    static unsigned char val[700], buf[700];
    char key[32];
    size_t warm = 0;
    for (int64_t i = 1; i <= 300000; i++) {
        int n = snprintf(key, sizeof(key), "k%d", (int)(i * 7919 % 5000));
        size_t len = churn_len(i);
        memset(val, 'a' + (int)(i % 26), len);
        assert_int_equal(pgcw_l1_set(c, key, (size_t)n, val, len, i, PGCW_L1_TTL_NONE),
                         PGCW_OK);
        n = snprintf(key, sizeof(key), "k%d", (int)(i * 104729 % 5000));
        size_t got;
        int64_t ver;
        if (pgcw_l1_get(c, key, (size_t)n, buf, sizeof(buf), &got, &ver) == PGCW_OK) {
            assert_int_equal(got, churn_len(ver));
            for (size_t k = 0; k < got; k++)
                assert_int_equal(buf[k], 'a' + (int)(ver % 26));
        }
        if (i % 1000 == 0)
            assert_bounds(c);
        if (i == 100000)
            warm = pgcw__l1_mapped_bytes(c);
    }
    assert_true(warm > 0);
    assert_int_equal(pgcw__l1_mapped_bytes(c), warm);
    pgcw_l1_free(c);
}

/* The hot set (touched a few times) must survive a one-pass scan of 100x the
 * cache size done the cache-aside way (miss, ticket, fill). */
static void test_scan_resistance(void **state)
{
    (void)state;
    pgcw_l1_opts o = {.max_entries = 1000, .max_bytes = 1u << 30};
    pgcw_l1 *c;
    assert_int_equal(pgcw_l1_new(&o, &c), PGCW_OK);
    char key[32], buf[16];
    size_t len;
    for (int round = 0; round < 3; round++)
        for (int i = 0; i < 200; i++) {
            int n = snprintf(key, sizeof(key), "hot%d", i);
            if (pgcw_l1_get(c, key, (size_t)n, buf, sizeof(buf), &len, NULL) != PGCW_OK)
                assert_int_equal(pgcw_l1_set(c, key, (size_t)n, "h", 1, 0, 0), PGCW_OK);
        }
    for (int i = 0; i < 100000; i++) {
        int n = snprintf(key, sizeof(key), "scan%d", i);
        assert_int_equal(pgcw_l1_get(c, key, (size_t)n, buf, sizeof(buf), &len, NULL),
                         PGCW_ENOTFOUND);
        pgcw_l1_ticket t;
        pgcw_l1_ticket_take(c, key, (size_t)n, &t);
        assert_int_equal(pgcw_l1_fill(c, &t, key, (size_t)n, "s", 1, 0, 0, NULL),
                         PGCW_OK);
    }
    int survived = 0;
    for (int i = 0; i < 200; i++) {
        int n = snprintf(key, sizeof(key), "hot%d", i);
        survived +=
            pgcw_l1_get(c, key, (size_t)n, buf, sizeof(buf), &len, NULL) == PGCW_OK;
    }
    assert_int_equal(survived, 200);
    pgcw_l1_free(c);
}

static int64_t g_now = 100;

static int64_t test_clock(void *ctx)
{
    (void)ctx;
    return g_now;
}

static void test_ttl(void **state)
{
    (void)state;
    pgcw_l1_opts o = {.default_ttl_us = 50, .clock = test_clock};
    pgcw_l1 *c;
    assert_int_equal(pgcw_l1_new(&o, &c), PGCW_OK);
    char buf[8];
    size_t len;
    assert_int_equal(pgcw_l1_set(c, "d", 1, "v", 1, 0, PGCW_L1_TTL_DEFAULT), PGCW_OK);
    assert_int_equal(pgcw_l1_set(c, "e", 1, "v", 1, 0, 10), PGCW_OK);
    assert_int_equal(pgcw_l1_set(c, "n", 1, "v", 1, 0, PGCW_L1_TTL_NONE), PGCW_OK);
    g_now += 9;
    assert_int_equal(pgcw_l1_get(c, "e", 1, buf, sizeof(buf), &len, NULL), PGCW_OK);
    g_now += 1; /* expiry == now: expired */
    assert_int_equal(pgcw_l1_get(c, "e", 1, buf, sizeof(buf), &len, NULL),
                     PGCW_ENOTFOUND);
    g_now += 39;
    assert_int_equal(pgcw_l1_get(c, "d", 1, buf, sizeof(buf), &len, NULL), PGCW_OK);
    g_now += 1;
    assert_int_equal(pgcw_l1_get(c, "d", 1, buf, sizeof(buf), &len, NULL),
                     PGCW_ENOTFOUND);
    g_now += 1000000;
    assert_int_equal(pgcw_l1_get(c, "n", 1, buf, sizeof(buf), &len, NULL), PGCW_OK);
    pgcw_l1_stats s;
    pgcw_l1_stats_get(c, &s);
    assert_int_equal(s.expirations, 2);
    assert_int_equal(s.hits, 3);
    assert_int_equal(s.misses, 2);
    assert_int_equal(s.entries, 1);
    assert_int_equal(s.bytes, pgcw_l1_entry_cost(1, 1, false));
    assert_int_equal(pgcw_l1_set(c, "x", 1, "v", 1, 0, -2), PGCW_EINVAL);
    pgcw_l1_free(c);
}

static void test_get_dup_and_sizes(void **state)
{
    (void)state;
    pgcw_l1 *c;
    assert_int_equal(pgcw_l1_new(NULL, &c), PGCW_OK);
    unsigned char big[5000];
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (unsigned char)i;
    assert_int_equal(pgcw_l1_set(c, "big", 3, big, sizeof(big), 3, 0), PGCW_OK);
    assert_int_equal(pgcw_l1_set(c, "", 0, NULL, 0, 4, 0), PGCW_OK);
    void *v = NULL;
    size_t len = 0;
    int64_t ver = 0;
    assert_int_equal(pgcw_l1_get_dup(c, "big", 3, &v, &len, &ver), PGCW_OK);
    assert_int_equal(len, sizeof(big));
    assert_int_equal(ver, 3);
    assert_memory_equal(v, big, sizeof(big));
    assert_int_equal(((unsigned char *)v)[len], 0);
    pgcw_free(v);
    assert_int_equal(pgcw_l1_get_dup(c, "", 0, &v, &len, NULL), PGCW_OK);
    assert_int_equal(len, 0);
    pgcw_free(v);
    assert_int_equal(pgcw_l1_get_dup(c, "none", 4, &v, &len, NULL), PGCW_ENOTFOUND);
    assert_null(v);
    /* A too-small buffer reports the size needed and copies nothing. */
    unsigned char small[10] = {0};
    assert_int_equal(pgcw_l1_get(c, "big", 3, small, sizeof(small), &len, NULL),
                     PGCW_ETOOBIG);
    assert_int_equal(len, sizeof(big));
    assert_int_equal(small[1], 0);
    assert_int_equal(pgcw_l1_get(c, "big", 3, NULL, 0, &len, NULL), PGCW_ETOOBIG);
    pgcw_l1_stats s;
    pgcw_l1_stats_get(c, &s);
    assert_int_equal(s.hits, 2);
    assert_int_equal(s.misses, 1);
    assert_int_equal(s.inserts, 2);
    pgcw_l1_free(c);
}

static void test_args(void **state)
{
    (void)state;
    pgcw_l1_free(NULL);
    assert_int_equal(pgcw_l1_new(NULL, NULL), PGCW_EINVAL);
    pgcw_l1 *c;
    assert_int_equal(pgcw_l1_new(NULL, &c), PGCW_OK);
    size_t len;
    char buf[4];
    assert_int_equal(pgcw_l1_get(NULL, "k", 1, buf, 4, &len, NULL), PGCW_EINVAL);
    assert_int_equal(pgcw_l1_get(c, NULL, 1, buf, 4, &len, NULL), PGCW_EINVAL);
    assert_int_equal(pgcw_l1_get(c, "k", 1, NULL, 4, &len, NULL), PGCW_EINVAL);
    assert_int_equal(pgcw_l1_get(c, "k", 1, buf, 4, NULL, NULL), PGCW_EINVAL);
    assert_int_equal(pgcw_l1_set(c, "k", 1, NULL, 1, 0, 0), PGCW_EINVAL);
    assert_int_equal(pgcw_l1_delete(c, NULL, 1), PGCW_EINVAL);
    assert_int_equal(pgcw_l1_invalidate(NULL, "k", 1, 1), PGCW_EINVAL);
    pgcw_l1_stats s;
    pgcw_l1_stats_get(c, &s);
    assert_int_equal(s.shards, 16);
    assert_int_equal(s.max_entries, 10000);
    assert_int_equal(s.max_bytes, 64u << 20);
    assert_int_equal(s.hits + s.misses + s.inserts, 0);
    pgcw_l1_clear(NULL);
    pgcw_l1_free(c);
    /* Tiny caches get one shard, and still hold what they promise. */
    pgcw_l1_opts o = {.max_entries = 3};
    assert_int_equal(pgcw_l1_new(&o, &c), PGCW_OK);
    pgcw_l1_stats_get(c, &s);
    assert_int_equal(s.shards, 1);
    for (int i = 0; i < 3; i++)
        assert_int_equal(pgcw_l1_set(c, &"abc"[i], 1, "v", 1, 0, 0), PGCW_OK);
    pgcw_l1_stats_get(c, &s);
    assert_int_equal(s.entries, 3);
    assert_int_equal(s.evictions, 0);
    pgcw_l1_free(c);
}

/* charge_payload_only, the memo's mode: only keys + values count against
 * max_bytes. */
/* A key longer than PGCW_L1_MAX_KEY is judged by its length alone: the calls are
 * given a 16-byte buffer with a 4 GiB length, so reading (hashing) it would run far
 * past the buffer (ASan) and take seconds. And the entry cost never wraps. */
static void test_huge_keys(void **state)
{
    (void)state;
    pgcw_l1 *c = NULL;
    assert_int_equal(pgcw_l1_new(NULL, &c), PGCW_OK);
    char key[16] = "fifteen bytes..";
    size_t huge = (size_t)4 << 30;
    char buf[8];
    size_t len = 0;
    int64_t t0 = pgcw__mono_us();
    assert_int_equal(pgcw_l1_get(c, key, huge, buf, sizeof buf, &len, NULL),
                     PGCW_ENOTFOUND);
    void *dup = NULL;
    assert_int_equal(pgcw_l1_get_dup(c, key, huge, &dup, &len, NULL), PGCW_ENOTFOUND);
    assert_int_equal(pgcw_l1_set(c, key, huge, "v", 1, 1, PGCW_L1_TTL_NONE),
                     PGCW_ETOOBIG);
    pgcw_l1_ticket t;
    pgcw_l1_ticket_take(c, key, huge, &t);
    bool stored = true;
    assert_int_equal(pgcw_l1_fill(c, &t, key, huge, "v", 1, 1, PGCW_L1_TTL_NONE, &stored),
                     PGCW_ETOOBIG);
    assert_false(stored);
    assert_int_equal(pgcw_l1_delete(c, key, huge), PGCW_ENOTFOUND);
    assert_int_equal(pgcw_l1_invalidate(c, key, huge, 5), PGCW_ENOTFOUND);
    assert_int_equal(
        pgcw_l1_set(c, key, PGCW_L1_MAX_KEY + 1, "v", 1, 1, PGCW_L1_TTL_NONE),
        PGCW_ETOOBIG);
    assert_true(pgcw__mono_us() - t0 < 1000000); /* nothing was hashed */
    pgcw_l1_stats st;
    pgcw_l1_stats_get(c, &st);
    assert_int_equal(st.entries, 0);

    assert_int_equal(pgcw_l1_entry_cost(SIZE_MAX, SIZE_MAX, true), SIZE_MAX);
    assert_int_equal(pgcw_l1_entry_cost(SIZE_MAX, 0, false), SIZE_MAX);
    assert_int_equal(pgcw_l1_entry_cost(0, SIZE_MAX - 10, true), SIZE_MAX);
    assert_true(pgcw_l1_entry_cost(10, 100, false) <
                pgcw_l1_entry_cost(10, 100000, false));
    pgcw_l1_free(c);
}

static void test_payload_only(void **state)
{
    (void)state;
    pgcw_l1_opts o = {.max_bytes = 40, .charge_payload_only = true};
    pgcw_l1 *c;
    assert_int_equal(pgcw_l1_new(&o, &c), PGCW_OK);
    assert_int_equal(pgcw_l1_set(c, "k1", 2, "0123456789", 10, 0, 0), PGCW_OK);
    assert_int_equal(pgcw_l1_set(c, "k2", 2, "0123456789", 10, 0, 0), PGCW_OK);
    assert_int_equal(pgcw_l1_set(c, "k3", 2, "0123456789", 10, 0, 0), PGCW_OK);
    pgcw_l1_stats s;
    pgcw_l1_stats_get(c, &s);
    assert_int_equal(s.entries, 3);
    assert_int_equal(s.bytes, 36);
    assert_int_equal(pgcw_l1_set(c, "k4", 2, "0123456789", 10, 0, 0), PGCW_OK);
    pgcw_l1_stats_get(c, &s);
    assert_int_equal(s.entries, 3);
    assert_int_equal(s.evictions, 1);
    assert_true(s.held_bytes <= 40);
    char big[40] = {0};
    assert_int_equal(pgcw_l1_set(c, "k5", 2, big, sizeof(big), 0, 0), PGCW_ETOOBIG);
    pgcw_l1_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_entry_bound),
        cmocka_unit_test(test_byte_bound),
        cmocka_unit_test(test_scan_resistance),
        cmocka_unit_test(test_ttl),
        cmocka_unit_test(test_get_dup_and_sizes),
        cmocka_unit_test(test_args),
        cmocka_unit_test(test_payload_only),
        cmocka_unit_test(test_slot_reuse),
        cmocka_unit_test(test_huge_keys),
        cmocka_unit_test(test_small_working_set),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
