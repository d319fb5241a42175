/*
 * cachetest.c - helpers for the cache's integration tests (cachetest.h).
 */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cachetest.h"
#include "pgtest.h"

int cachetest_init(const char *prefix)
{
    pgcw_cache_opts o = {.schema_prefix = prefix};
    pgcw_conn_opts co = {.conninfo = pgtest_dsn()};
    int version = 0;
    char *err = NULL;
    pgcw_status st = pgcw_cache_init_db(&o, &co, &version, &err);
    if (st != PGCW_OK)
        fail_msg("init_db(%s): %s: %s", prefix, pgcw_status_name(st), err ? err : "");
    pgcw_free(err);
    return version;
}

pgcw_cache *cachetest_new(const char *prefix, const pgcw_cache_opts *opts)
{
    pgcw_cache_opts o = opts ? *opts : (pgcw_cache_opts){0};
    o.schema_prefix = prefix;
    pgcw_conn_opts co = {.conninfo = pgtest_dsn()};
    pgcw_cache *c = NULL;
    pgcw_status st = pgcw_cache_new(&o, &co, &c);
    if (st != PGCW_OK)
        fail_msg("pgcw_cache_new: %s", pgcw_status_name(st));
    st = pgcw_cache_wait_healthy(c, CACHETEST_WAIT_MS);
    if (st != PGCW_OK)
        fail_msg("wait_healthy: %s: %s", pgcw_status_name(st), pgcw_cache_errmsg(c));
    return c;
}

char *cachetest_get(pgcw_cache *c, const char *key)
{
    void *v = NULL;
    size_t len = 0;
    pgcw_status st = pgcw_cache_get(c, key, strlen(key), &v, &len);
    if (st == PGCW_ENOTFOUND)
        return NULL;
    if (st != PGCW_OK)
        fail_msg("get(%s): %s: %s", key, pgcw_status_name(st), pgcw_cache_errmsg(c));
    char *s = malloc(len + 1);
    assert_non_null(s);
    memcpy(s, v, len);
    s[len] = '\0';
    pgcw_free(v);
    return s;
}

void cachetest_set(pgcw_cache *c, const char *key, const char *value, int64_t ttl_ms)
{
    pgcw_status st = pgcw_cache_set(c, key, strlen(key), value, strlen(value), ttl_ms);
    if (st != PGCW_OK)
        fail_msg("set(%s): %s: %s", key, pgcw_status_name(st), pgcw_cache_errmsg(c));
}

int64_t cachetest_wait_value(pgcw_cache *c, const char *key, const char *want)
{
    int64_t start = pgtest_now_ms();
    for (;;) {
        char *got = cachetest_get(c, key);
        bool same = (!got && !want) || (got && want && strcmp(got, want) == 0);
        if (same) {
            free(got);
            return pgtest_now_ms() - start;
        }
        if (pgtest_now_ms() - start > CACHETEST_WAIT_MS)
            fail_msg("get(%s) is still \"%s\", not \"%s\"", key, got ? got : "(miss)",
                     want ? want : "(miss)");
        free(got);
        pgtest_sleep_ms(2);
    }
}

pgcw_cache_stats cachetest_stats(pgcw_cache *c)
{
    pgcw_cache_stats s;
    pgcw_cache_stats_get(c, &s);
    return s;
}

void cachetest_incompressible(char *out, size_t n)
{
    uint64_t x = 88172645463325252ULL;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out[i] = (char)('A' + (x % 58) % 26 + ((x >> 8) & 1) * 32);
    }
    out[n] = '\0';
}

void cachetest_wait_visible(pgcw_cache *c)
{
    int64_t until = pgtest_now_ms() + CACHETEST_WAIT_MS;
    while (cachetest_stats(c).visibility_pending != 0) {
        if (pgtest_now_ms() > until)
            fail_msg("a decoded change was never seen visible");
        pgtest_sleep_ms(1);
    }
}

void cachetest_wait_stat(pgcw_cache *c, size_t offset, uint64_t at_least,
                         const char *what)
{
    int64_t until = pgtest_now_ms() + CACHETEST_WAIT_MS;
    for (;;) {
        pgcw_cache_stats s = cachetest_stats(c);
        uint64_t v;
        memcpy(&v, (const char *)&s + offset, sizeof v);
        if (v >= at_least)
            return;
        if (pgtest_now_ms() > until)
            fail_msg("%s stayed at %llu (want %llu); received %llu applied %llu flushes "
                     "%llu bypasses %llu refused_fills %llu l1_entries %zu visibility "
                     "checks %llu confirmed %llu pending %llu",
                     what, (unsigned long long)v, (unsigned long long)at_least,
                     (unsigned long long)s.invalidations_received,
                     (unsigned long long)s.invalidations_applied,
                     (unsigned long long)s.flushes, (unsigned long long)s.bypasses,
                     (unsigned long long)s.refused_fills, s.l1_entries,
                     (unsigned long long)s.visibility_checks,
                     (unsigned long long)s.visibility_confirmed,
                     (unsigned long long)s.visibility_pending);
        pgtest_sleep_ms(2);
    }
}
