/*
 * test_l1_table.c - the shard hash table (src/l1/l1_table.h) on hashes chosen to
 * collide: a full group sends entries on to the next one (wrapping at the end) and
 * counts them, lookups find every entry wherever it went, a removal uncounts it,
 * equal tags are told apart by the key, and a saturated count stays. The random
 * workloads (test_l1_model, test_l1_concurrency) reach a full group only rarely.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pgcw_testhook.h"

#define CAP 8 /* entries: 2 groups of 8 slots */
#define N 14

typedef struct fixture {
    pgcw__l1_shard s;
    void *mem;
    pgcw__l1_entry *e[N];
    uint64_t h[N];
    char key[N][12];
} fixture;

/* An entry for key "key<i>" (no TTL, no value): what find compares. */
static pgcw__l1_entry *make_entry(fixture *f, int i)
{
    int n = snprintf(f->key[i], sizeof f->key[i], "key%02d", i);
    pgcw__l1_entry *e = calloc(1, sizeof(*e) + (size_t)n);
    assert_non_null(e);
    e->klen = (uint16_t)n;
    memcpy((unsigned char *)e + sizeof(*e), f->key[i], (size_t)n);
    return e;
}

static void setup(fixture *f)
{
    memset(f, 0, sizeof(*f));
    size_t bytes = pgcw__l1_table_bytes(CAP);
    f->mem = aligned_alloc(64, bytes);
    assert_non_null(f->mem);
    memset(f->mem, 0, bytes);
    pgcw__l1_table_init(&f->s.table, f->mem, CAP);
    assert_int_equal(f->s.table.ngroups, 2);
    for (int i = 0; i < N; i++)
        f->e[i] = make_entry(f, i);
}

static void teardown(fixture *f)
{
    for (int i = 0; i < N; i++)
        free(f->e[i]);
    free(f->mem);
}

static pgcw__l1_entry *find(fixture *f, int i)
{
    return pgcw__l1_find(&f->s, f->h[i], f->key[i], strlen(f->key[i]));
}

static unsigned over(fixture *f, uint32_t g)
{
    return atomic_load(&f->s.table.over[g]);
}

/* Low 32 bits pick the group (below 2^31: group 0 of 2), the rest vary the tag. */
static uint64_t hash_in(uint32_t group, int i)
{
    return ((uint64_t)(i + 1) * 0x9E3779B97F4A7C15u & ~(uint64_t)0xFFFFFFFFu) |
           (group ? 0x80000000u : 0) | (uint32_t)i;
}

static void put(fixture *f, int i, uint64_t h)
{
    f->h[i] = h;
    pgcw__l1_table_insert(&f->s.table, h, f->e[i]);
}

static void drop(fixture *f, int i)
{
    pgcw__l1_table_remove(&f->s.table, f->h[i], f->e[i]);
}

static void test_overflow_and_back(void **state)
{
    (void)state;
    fixture f;
    setup(&f);
    for (int i = 0; i < 12; i++)
        put(&f, i, hash_in(0, i));
    assert_int_equal(over(&f, 0), 4); /* 8 fit at home, 4 went on */
    assert_int_equal(over(&f, 1), 0);
    for (int i = 0; i < 12; i++)
        assert_ptr_equal(find(&f, i), f.e[i]);
    f.h[12] = hash_in(0, 12); /* absent, same home: looks in both groups */
    assert_null(find(&f, 12));

    /* Removing entries at home leaves the count; removing those sent on lowers it. */
    for (int i = 0; i < 12; i += 2)
        drop(&f, i);
    for (int i = 0; i < 12; i++)
        assert_ptr_equal(find(&f, i), i % 2 ? f.e[i] : NULL);
    for (int i = 1; i < 12; i += 2)
        drop(&f, i);
    assert_int_equal(over(&f, 0), 0);
    for (int i = 0; i < 12; i++)
        assert_null(find(&f, i));
    teardown(&f);
}

static void test_wraps_past_last_group(void **state)
{
    (void)state;
    fixture f;
    setup(&f);
    for (int i = 0; i < 11; i++)
        put(&f, i, hash_in(1, i));
    assert_int_equal(over(&f, 1), 3);
    assert_int_equal(over(&f, 0), 0);
    for (int i = 0; i < 11; i++)
        assert_ptr_equal(find(&f, i), f.e[i]);
    /* A key at home in group 0 is found among the ones that wrapped there. */
    put(&f, 11, hash_in(0, 11));
    assert_ptr_equal(find(&f, 11), f.e[11]);
    for (int i = 0; i < 12; i++)
        drop(&f, i);
    assert_int_equal(over(&f, 1), 0);
    for (int i = 0; i < 12; i++)
        assert_null(find(&f, i));
    teardown(&f);
}

static void test_equal_tags(void **state)
{
    (void)state;
    fixture f;
    setup(&f);
    /* The same hash, so the same group, first slot and tag: only the key differs. */
    for (int i = 0; i < 3; i++)
        put(&f, i, hash_in(0, 7));
    for (int i = 0; i < 3; i++)
        assert_ptr_equal(find(&f, i), f.e[i]);
    drop(&f, 1);
    assert_ptr_equal(find(&f, 0), f.e[0]);
    assert_null(find(&f, 1));
    assert_ptr_equal(find(&f, 2), f.e[2]);
    teardown(&f);
}

static void test_saturated_count_stays(void **state)
{
    (void)state;
    fixture f;
    setup(&f);
    for (int i = 0; i < 9; i++)
        put(&f, i, hash_in(0, i));
    atomic_store(&f.s.table.over[0], UINT8_MAX); /* as after 255 inserts went on */
    drop(&f, 8);
    assert_int_equal(over(&f, 0), UINT8_MAX);
    for (int i = 0; i < 8; i++)
        assert_ptr_equal(find(&f, i), f.e[i]);
    pgcw__l1_table_clear(&f.s.table);
    assert_int_equal(over(&f, 0), 0);
    for (int i = 0; i < 8; i++)
        assert_null(find(&f, i));
    teardown(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_overflow_and_back),
        cmocka_unit_test(test_wraps_past_last_group),
        cmocka_unit_test(test_equal_tags),
        cmocka_unit_test(test_saturated_count_stays),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
