/*
 * test_alloc_cache.c - allocation failure, for every N, on the cache's main paths
 * against a real server: set, get (an L1 miss that fills, then a hit), get_or_set
 * (a miss that loads and writes), delete, get_many and set_many. Each call returns
 * PGCW_OK or PGCW_ENOMEM, never anything else, and whatever it returned the cache
 * is coherent afterwards: an unarmed get returns what the table holds (plain SQL),
 * and after a set that returned PGCW_OK, the value set. Nothing leaks (ASan build).
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
#include "failalloc.h"
#include "pgtest.h"

#define MAX_N 5000
#define PREFIX "alloc_"

typedef struct cache_case {
    pgcw_cache *c;
    PGconn *sql;
    int round;
    char key[32], value[64];
    unsigned long failures;
} cache_case;

/* The key's live value by plain SQL (malloc'd), or NULL. */
static char *table_value(cache_case *t, const char *key)
{
    char q[256];
    snprintf(q, sizeof q,
             "SELECT coalesce((SELECT convert_from(value, 'UTF8') FROM " PREFIX
             "cache_entries WHERE cache_key = '%s' AND (expires_at IS NULL OR "
             "expires_at > now())), '<none>')",
             key);
    char *v = pgtest_query_value(t->sql, q);
    if (strcmp(v, "<none>") == 0) {
        free(v);
        return NULL;
    }
    return v;
}

/* An unarmed get agrees with the table. */
static void expect_coherent(cache_case *t, const char *key)
{
    char *got = cachetest_get(t->c, key), *want = table_value(t, key);
    if ((got == NULL) != (want == NULL) || (got && strcmp(got, want) != 0))
        fail_msg("%s: the cache says %s, the table %s", key, got ? got : "(miss)",
                 want ? want : "(none)");
    free(got);
    free(want);
}

/* call makes library calls only (the test's own allocations would be failed too);
 * post, if any, checks its outcome unarmed. */
typedef pgcw_status (*call_fn)(cache_case *t);
typedef void (*post_fn)(cache_case *t, pgcw_status st);

static void sweep(const char *what, call_fn call, post_fn post, cache_case *t)
{
    for (unsigned long n = 1; n < MAX_N; n++) {
        t->round++;
        snprintf(t->key, sizeof t->key, "k%d", t->round % 5);
        snprintf(t->value, sizeof t->value, "v%d", t->round);
        failalloc_arm(n, false);
        pgcw_status st = call(t);
        bool fired = failalloc_fired();
        failalloc_arm(0, false);
        if (st != PGCW_OK && st != PGCW_ENOMEM)
            fail_msg("%s, allocation %lu failed: %s: %s", what, n, pgcw_status_name(st),
                     pgcw_cache_errmsg(t->c));
        if (post)
            post(t, st);
        expect_coherent(t, t->key);
        if (!fired) {
            assert_int_equal(st, PGCW_OK);
            return;
        }
        t->failures += st == PGCW_ENOMEM;
    }
    fail_msg("%s: still allocating after %d runs", what, MAX_N);
}

static pgcw_status set_call(cache_case *t)
{
    return pgcw_cache_set(t->c, t->key, strlen(t->key), t->value, strlen(t->value),
                          60000);
}

/* Read your writes after a set or get_or_set that succeeded. */
static void value_post(cache_case *t, pgcw_status st)
{
    if (st != PGCW_OK)
        return;
    char *got = cachetest_get(t->c, t->key);
    assert_non_null(got);
    assert_string_equal(got, t->value);
    free(got);
}

static pgcw_status get_call(cache_case *t)
{
    pgcw_cache_flush_local(t->c); /* a miss that fills, then a hit */
    for (int i = 0; i < 2; i++) {
        void *v = NULL;
        size_t len = 0;
        pgcw_status st = pgcw_cache_get(t->c, t->key, strlen(t->key), &v, &len);
        pgcw_free(v);
        if (st == PGCW_ENOTFOUND)
            st = PGCW_OK;
        if (st != PGCW_OK)
            return st;
    }
    return PGCW_OK;
}

static pgcw_status loader(void *ctx, const void *key, size_t key_len,
                          pgcw_cache_result *r)
{
    (void)key;
    (void)key_len;
    cache_case *t = ctx;
    return pgcw_cache_result_set(r, t->value, strlen(t->value));
}

static pgcw_status get_or_set_call(cache_case *t)
{
    pgcw_status st = pgcw_cache_delete(t->c, t->key, strlen(t->key));
    if (st != PGCW_OK)
        return st;
    void *v = NULL;
    size_t len = 0;
    st = pgcw_cache_get_or_set(t->c, t->key, strlen(t->key), 60000, loader, t, &v, &len);
    bool same = st != PGCW_OK || (len == strlen(t->value) && !memcmp(v, t->value, len));
    pgcw_free(v);
    return same ? st : PGCW_EPARSE; /* a wrong value fails the sweep */
}

static pgcw_status delete_call(cache_case *t)
{
    return pgcw_cache_delete(t->c, t->key, strlen(t->key));
}

static void delete_post(cache_case *t, pgcw_status st)
{
    if (st == PGCW_OK)
        assert_null(cachetest_get(t->c, t->key));
}

static pgcw_status batch_call(cache_case *t)
{
    pgcw_cache_entry e[2] = {{t->key, strlen(t->key), t->value, strlen(t->value), 60000},
                             {"batch", 5, t->value, strlen(t->value), 60000}};
    pgcw_status st = pgcw_cache_set_many(t->c, e, 2);
    if (st != PGCW_OK)
        return st;
    pgcw_cache_flush_local(t->c);
    pgcw_cache_key keys[3] = {{t->key, strlen(t->key)}, {"batch", 5}, {"absent", 6}};
    pgcw_cache_item items[3];
    st = pgcw_cache_get_many(t->c, keys, 3, items);
    if (st != PGCW_OK)
        return st;
    bool right = items[0].status == PGCW_OK && items[1].status == PGCW_OK &&
                 items[2].status == PGCW_ENOTFOUND;
    pgcw_cache_items_free(items, 3);
    return right ? PGCW_OK : PGCW_EPARSE; /* a wrong answer fails the sweep */
}

static void test_cache_every_n(void **state)
{
    (void)state;
    cachetest_init(PREFIX);
    cache_case t = {.sql = pgtest_connect()};
    pgcw_cache_opts o = {.pool_size = 2};
    t.c = cachetest_new(PREFIX, &o);
    static const struct {
        const char *what;
        call_fn call;
        post_fn post;
    } calls[] = {{"set", set_call, value_post},
                 {"get", get_call, NULL},
                 {"get_or_set", get_or_set_call, value_post},
                 {"delete", delete_call, delete_post},
                 {"set_many + get_many", batch_call, NULL}};
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < sizeof calls / sizeof calls[0]; i++)
            sweep(calls[i].what, calls[i].call, calls[i].post, &t);
    assert_true(t.failures >= 10); /* the paths do allocate, and were failed */
    pgcw_cache_free(t.c);
    PQfinish(t.sql);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cache_every_n),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
