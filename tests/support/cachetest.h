/*
 * cachetest.h - what the cache's integration tests share: a schema made by
 * pgcw_cache_init_db() for a prefix, a cache client on the test database, reading
 * a key's row by plain SQL, and waiting for a condition with a deadline.
 */
#ifndef PGCW_CACHETEST_H
#define PGCW_CACHETEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <pgcachewatch/pgcachewatch.h>

#define CACHETEST_WAIT_MS 15000

/* Runs init_db for prefix (and the default channel "cache_events"); fails the test
 * on error. Returns the schema version. */
int cachetest_init(const char *prefix);

/* A cache on the test database: opts (may be NULL) with schema_prefix forced to
 * prefix; waits until it is healthy when it has a watcher. Fails the test on
 * error. */
pgcw_cache *cachetest_new(const char *prefix, const pgcw_cache_opts *opts);

/* The value of key as a malloc'd string, or NULL on PGCW_ENOTFOUND; any other
 * status fails the test with the cache's message. */
char *cachetest_get(pgcw_cache *c, const char *key);

/* Sets key = value (strings) with ttl_ms; fails the test on error. */
void cachetest_set(pgcw_cache *c, const char *key, const char *value, int64_t ttl_ms);

/* Polls get(key) until it returns want (NULL: a miss) or CACHETEST_WAIT_MS pass;
 * fails the test then. Returns the milliseconds it took. */
int64_t cachetest_wait_value(pgcw_cache *c, const char *key, const char *want);

/* Fills out[0..n) with letters that do not compress (xorshift) and out[n] with
 * NUL: at 10 KB, a key PostgreSQL's btree refuses (SQLSTATE 54000). */
void cachetest_incompressible(char *out, size_t n);

/* The statistics of c. */
pgcw_cache_stats cachetest_stats(pgcw_cache *c);

/* Polls the uint64_t counter at offset in c's statistics (offsetof(pgcw_cache_stats,
 * field)) until it is at least at_least; fails the test, naming it what, after
 * CACHETEST_WAIT_MS. */
void cachetest_wait_stat(pgcw_cache *c, size_t offset, uint64_t at_least,
                         const char *what);
#define CACHETEST_WAIT_STAT(c, field, n)                                                 \
    cachetest_wait_stat((c), offsetof(pgcw_cache_stats, field), (n), #field)

/* notify_mode LOGICAL: waits until every change c's sink has seen was seen
 * visible and its keys evicted a second time (visibility_pending 0), so a read
 * now fills a copy that stays; fails the test after CACHETEST_WAIT_MS. */
void cachetest_wait_visible(pgcw_cache *c);

#endif
