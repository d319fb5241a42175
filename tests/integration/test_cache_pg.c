/*
 * test_cache_pg.c - the cache against a real server, one process: init_db makes
 * exactly the postgres-cache layout (and is a no-op the second time, and safe to
 * run from several processes at once), a hostile prefix creates nothing, two
 * prefixes stay apart; get/set/delete and the batches; read-your-writes through the
 * L1; TTLs judged by the server's clock in a non-UTC session; cleanup; the keys at
 * the edges of the text domain; the null cache.
 */
#define _GNU_SOURCE
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
#include "pgtest.h"

static void test_layout(void **state)
{
    (void)state;
    assert_int_equal(cachetest_init("lay_"), PGCW_CACHE_SCHEMA_VERSION);
    PGconn *pg = pgtest_connect();
    /* The table's columns, types, nullability, in postgres-cache's order. */
    char *cols = pgtest_query_value(
        pg,
        "SELECT string_agg(column_name || ' ' || data_type || ' ' || is_nullable, ', '"
        " ORDER BY ordinal_position) FROM information_schema.columns"
        " WHERE table_name = 'lay_cache_entries'");
    assert_string_equal(cols, "cache_key text NO, value bytea NO, version bigint NO, "
                              "expires_at timestamp with time zone YES, "
                              "created_at timestamp with time zone NO, "
                              "updated_at timestamp with time zone NO");
    free(cols);
    char *pk = pgtest_query_value(
        pg, "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid ="
            " i.indrelid AND a.attnum = ANY(i.indkey) WHERE i.indrelid ="
            " 'lay_cache_entries'::regclass AND i.indisprimary");
    assert_string_equal(pk, "cache_key");
    free(pk);
    assert_int_equal(pgtest_query_int(pg,
                                      "SELECT count(*) FROM pg_indexes WHERE indexname"
                                      " = 'lay_cache_entries_expires_idx'"),
                     1);
    /* UNLOGGED by default. */
    char *persist = pgtest_query_value(
        pg, "SELECT relpersistence FROM pg_class WHERE relname = 'lay_cache_entries'");
    assert_string_equal(persist, "u");
    free(persist);
    char *trg = pgtest_query_value(
        pg,
        "SELECT string_agg(tgname || ':' || tgtype::text || ':' || tgfoid::regproc::text,"
        " ',' ORDER BY tgname) FROM pg_trigger WHERE tgrelid ="
        " 'lay_cache_entries'::regclass AND NOT tgisinternal");
    /* tgtype: 29 = ROW | AFTER INSERT | DELETE | UPDATE; 19 = ROW | BEFORE | UPDATE. */
    assert_string_equal(
        trg, "lay_cache_broadcast_change_trigger:29:lay_cache_broadcast_change,"
             "lay_cache_set_updated_at_trigger:19:lay_cache_set_updated_at");
    free(trg);
    char *arg = pgtest_query_value(
        pg, "SELECT encode(tgargs, 'escape') FROM pg_trigger WHERE tgname ="
            " 'lay_cache_broadcast_change_trigger'");
    assert_string_equal(arg, "cache_events\\000");
    free(arg);
    char *fn = pgtest_query_value(
        pg, "SELECT pg_get_function_arguments('lay_cache_cleanup_expired'::regproc)");
    assert_string_equal(fn, "limit_rows integer DEFAULT 500");
    free(fn);
    char *schema = pgtest_query_value(
        pg, "SELECT string_agg(column_name || ' ' || data_type, ', ' ORDER BY"
            " ordinal_position) FROM information_schema.columns WHERE table_name ="
            " 'lay_cache_schema'");
    assert_string_equal(schema, "id integer, version integer");
    free(schema);
    assert_int_equal(
        pgtest_query_int(pg, "SELECT version FROM lay_cache_schema WHERE id = 1"),
        PGCW_CACHE_SCHEMA_VERSION);
    /* A second run changes nothing: same objects, same version, no error. */
    long long before = pgtest_query_int(pg, "SELECT count(*) FROM pg_proc WHERE proname"
                                            " LIKE 'lay\\_%'");
    assert_int_equal(cachetest_init("lay_"), PGCW_CACHE_SCHEMA_VERSION);
    assert_int_equal(pgtest_query_int(pg, "SELECT count(*) FROM pg_proc WHERE proname"
                                          " LIKE 'lay\\_%'"),
                     before);
    PQfinish(pg);
}

static void test_logged(void **state)
{
    (void)state;
    pgcw_cache_opts o = {.schema_prefix = "durable_", .durability = PGCW_CACHE_LOGGED};
    pgcw_conn_opts co = {.conninfo = pgtest_dsn()};
    assert_int_equal(pgcw_cache_init_db(&o, &co, NULL, NULL), PGCW_OK);
    PGconn *pg = pgtest_connect();
    char *persist = pgtest_query_value(
        pg,
        "SELECT relpersistence FROM pg_class WHERE relname = 'durable_cache_entries'");
    assert_string_equal(persist, "p");
    free(persist);
    PQfinish(pg);
}

/* Four processes run init_db on a fresh prefix at the same moment: all succeed,
 * and every migration was applied once. */
static void test_concurrent_init(void **state)
{
    (void)state;
    enum { N = 4 };
    int go[2];
    assert_int_equal(pipe(go), 0);
    pid_t kids[N];
    for (int i = 0; i < N; i++) {
        kids[i] = fork();
        assert_true(kids[i] >= 0);
        if (kids[i] == 0) {
            char b;
            close(go[1]);
            if (read(go[0], &b, 1) < 0)
                _exit(3);
            pgcw_cache_opts o = {.schema_prefix = "race_"};
            pgcw_conn_opts co = {.conninfo = pgtest_dsn()};
            char *err = NULL;
            int v = 0;
            pgcw_status st = pgcw_cache_init_db(&o, &co, &v, &err);
            if (st != PGCW_OK)
                fprintf(stderr, "init_db in child: %s\n", err ? err : "");
            _exit(st == PGCW_OK && v == PGCW_CACHE_SCHEMA_VERSION ? 0 : 1);
        }
    }
    close(go[0]);
    close(go[1]); /* every child's read returns at once */
    for (int i = 0; i < N; i++)
        assert_int_equal(pgtest_wait_pid(kids[i], 60000), 0);
    PGconn *pg = pgtest_connect();
    assert_int_equal(pgtest_query_int(pg, "SELECT version FROM race_cache_schema"),
                     PGCW_CACHE_SCHEMA_VERSION);
    PQfinish(pg);
}

static void test_hostile_prefix(void **state)
{
    (void)state;
    PGconn *pg = pgtest_connect();
    long long before = pgtest_query_int(pg, "SELECT count(*) FROM pg_class");
    const char *bad[] = {"x; DROP TABLE y; --",
                         "a-b",
                         "quote\"",
                         "sp ace",
                         "ünï",
                         "p23456789012345678901234567890123456"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        pgcw_cache_opts o = {.schema_prefix = bad[i]};
        pgcw_conn_opts co = {.conninfo = pgtest_dsn()};
        char *err = NULL;
        assert_int_equal(pgcw_cache_init_db(&o, &co, NULL, &err), PGCW_EINVAL);
        assert_non_null(err);
        assert_non_null(strstr(err, "schema_prefix"));
        pgcw_free(err);
        pgcw_cache *c = NULL;
        assert_int_equal(pgcw_cache_new(&o, &co, &c), PGCW_EINVAL);
        assert_null(c);
    }
    assert_int_equal(pgtest_query_int(pg, "SELECT count(*) FROM pg_class"), before);
    PQfinish(pg);
}

static void test_prefixes_isolated(void **state)
{
    (void)state;
    cachetest_init("iso_a_");
    cachetest_init("ISO_B_"); /* folded to iso_b_, as postgres-cache's unquoted names */
    pgcw_cache *a = cachetest_new("iso_a_", NULL);
    pgcw_cache *b = cachetest_new("ISO_B_", NULL);
    cachetest_set(a, "k", "from a", PGCW_CACHE_TTL_DEFAULT);
    cachetest_set(b, "k", "from b", PGCW_CACHE_TTL_DEFAULT);
    PGconn *pg = pgtest_connect();
    char *va = pgtest_query_value(pg, "SELECT convert_from(value, 'UTF8') FROM"
                                      " iso_a_cache_entries WHERE cache_key = 'k'");
    char *vb = pgtest_query_value(pg, "SELECT convert_from(value, 'UTF8') FROM"
                                      " iso_b_cache_entries WHERE cache_key = 'k'");
    assert_string_equal(va, "from a");
    assert_string_equal(vb, "from b");
    free(va);
    free(vb);
    PQfinish(pg);
    pgcw_cache_free(a);
    pgcw_cache_free(b);
}

static void test_get_set_delete(void **state)
{
    (void)state;
    cachetest_init("ops_");
    pgcw_cache *c = cachetest_new("ops_", NULL);
    assert_null(cachetest_get(c, "profile:1"));
    cachetest_set(c, "profile:1", "{\"name\":\"Ava\"}", 60000);
    char *v = cachetest_get(c, "profile:1");
    assert_string_equal(v, "{\"name\":\"Ava\"}");
    free(v);
    pgcw_cache_stats s = cachetest_stats(c);
    assert_int_equal(s.sets, 1);
    /* Read your write from the L1 at once, even when the write's own notification
     * reached the sink before the write's fill (it is not newer than the fill). */
    assert_int_equal(s.l1_hits, 1);
    /* Overwrite: version 2, and the L1 holds the new value at once. */
    cachetest_set(c, "profile:1", "{\"name\":\"Nova\"}", 60000);
    uint64_t hits = cachetest_stats(c).l1_hits;
    v = cachetest_get(c, "profile:1");
    assert_string_equal(v, "{\"name\":\"Nova\"}");
    free(v);
    assert_int_equal(cachetest_stats(c).l1_hits, hits + 1);
    PGconn *pg = pgtest_connect();
    assert_int_equal(pgtest_query_int(pg, "SELECT version FROM ops_cache_entries WHERE"
                                          " cache_key = 'profile:1'"),
                     2);
    /* Delete: a miss here and in plain SQL with postgres-cache's own filter. */
    assert_int_equal(pgcw_cache_delete(c, "profile:1", 9), PGCW_OK);
    assert_null(cachetest_get(c, "profile:1"));
    assert_int_equal(pgtest_query_int(pg,
                                      "SELECT count(*) FROM ops_cache_entries WHERE"
                                      " cache_key = 'profile:1' AND (expires_at IS NULL"
                                      " OR expires_at > timezone('UTC', now()))"),
                     0);
    assert_int_equal(pgtest_query_int(pg, "SELECT version FROM ops_cache_entries WHERE"
                                          " cache_key = 'profile:1'"),
                     3);
    /* Deleting an absent key succeeds; invalidate is delete. */
    assert_int_equal(pgcw_cache_delete(c, "never", 5), PGCW_OK);
    cachetest_set(c, "inv", "x", 0);
    assert_int_equal(pgcw_cache_invalidate(c, "inv", 3), PGCW_OK);
    assert_null(cachetest_get(c, "inv"));
    /* get_into: ETOOBIG with the length needed, then the value. */
    cachetest_set(c, "big", "0123456789", 0);
    char buf[16];
    size_t len = 0;
    assert_int_equal(pgcw_cache_get_into(c, "big", 3, buf, 4, &len), PGCW_ETOOBIG);
    assert_int_equal(len, 10);
    assert_int_equal(pgcw_cache_get_into(c, "big", 3, buf, sizeof buf, &len), PGCW_OK);
    assert_memory_equal(buf, "0123456789", 10);
    /* Empty value, and binary bytes. */
    assert_int_equal(pgcw_cache_set(c, "empty", 5, NULL, 0, 0), PGCW_OK);
    void *out = NULL;
    assert_int_equal(pgcw_cache_get(c, "empty", 5, &out, &len), PGCW_OK);
    assert_int_equal(len, 0);
    pgcw_free(out);
    const char bin[] = {0, 1, 2, (char)0xff, 0};
    assert_int_equal(pgcw_cache_set(c, "bin", 3, bin, sizeof bin, 0), PGCW_OK);
    pgcw_cache_flush_local(c);
    assert_int_equal(pgcw_cache_get(c, "bin", 3, &out, &len), PGCW_OK);
    assert_int_equal(len, sizeof bin);
    assert_memory_equal(out, bin, sizeof bin);
    pgcw_free(out);
    PQfinish(pg);
    pgcw_cache_free(c);
}

static void test_batches(void **state)
{
    (void)state;
    cachetest_init("many_");
    pgcw_cache *c = cachetest_new("many_", NULL);
    enum { N = 200 };
    char keys[N][16], vals[N][16];
    pgcw_cache_entry e[N];
    pgcw_cache_key k[N];
    for (int i = 0; i < N; i++) {
        snprintf(keys[i], sizeof keys[i], "m:%d", i);
        snprintf(vals[i], sizeof vals[i], "v%d", i);
        e[i] =
            (pgcw_cache_entry){keys[i], strlen(keys[i]), vals[i], strlen(vals[i]), 60000};
        k[i] = (pgcw_cache_key){keys[i], strlen(keys[i])};
    }
    assert_int_equal(pgcw_cache_set_many(c, e, N), PGCW_OK);
    pgcw_cache_flush_local(c);
    /* Half in the L1, half from the table; one missing key. */
    char *v = cachetest_get(c, "m:0");
    free(v);
    pgcw_cache_key ask[N + 1];
    memcpy(ask, k, sizeof k);
    ask[N] = (pgcw_cache_key){"absent", 6};
    pgcw_cache_item items[N + 1];
    assert_int_equal(pgcw_cache_get_many(c, ask, N + 1, items), PGCW_OK);
    for (int i = 0; i < N; i++) {
        assert_int_equal(items[i].status, PGCW_OK);
        assert_int_equal(items[i].value_len, strlen(vals[i]));
        assert_memory_equal(items[i].value, vals[i], strlen(vals[i]));
    }
    assert_int_equal(items[N].status, PGCW_ENOTFOUND);
    assert_null(items[N].value);
    pgcw_cache_items_free(items, N + 1);
    /* All or nothing: a set_many with one bad key sends nothing. */
    pgcw_cache_entry bad[2] = {{"fine", 4, "x", 1, 0}, {"bad\xff", 4, "y", 1, 0}};
    assert_int_equal(pgcw_cache_set_many(c, bad, 2), PGCW_EINVAL);
    assert_null(cachetest_get(c, "fine"));
    assert_int_equal(pgcw_cache_delete_many(c, k, N), PGCW_OK);
    assert_int_equal(pgcw_cache_get_many(c, k, N, items), PGCW_OK);
    for (int i = 0; i < N; i++)
        assert_int_equal(items[i].status, PGCW_ENOTFOUND);
    pgcw_cache_free(c);
}

/* The server's clock and a non-UTC session: expiry in SQL, whatever TimeZone says. */
static void test_ttl_server_clock(void **state)
{
    (void)state;
    cachetest_init("ttl_");
    static const char *keys[] = {"options", NULL};
    static const char *vals[] = {"-c TimeZone=Pacific/Kiritimati", NULL};
    pgcw_cache_opts o = {.schema_prefix = "ttl_"};
    pgcw_conn_opts co = {.conninfo = pgtest_dsn(), .keys = keys, .values = vals};
    pgcw_cache *c = NULL;
    assert_int_equal(pgcw_cache_new(&o, &co, &c), PGCW_OK);
    assert_int_equal(pgcw_cache_wait_healthy(c, CACHETEST_WAIT_MS), PGCW_OK);
    cachetest_set(c, "t", "v", 60000);
    PGconn *pg = pgtest_connect();
    pgtest_exec(pg, "SET TimeZone = 'America/Los_Angeles'");
    /* 60 s from the server's now, not shifted by any zone. */
    long long left =
        pgtest_query_int(pg, "SELECT extract(epoch FROM expires_at - now())::int"
                             " FROM ttl_cache_entries WHERE cache_key = 't'");
    assert_true(left >= 58 && left <= 60);
    /* created_at and updated_at are the server's now too (migration 3). */
    assert_int_equal(
        pgtest_query_int(pg, "SELECT count(*) FROM ttl_cache_entries WHERE"
                             " abs(extract(epoch FROM updated_at - now())) < 30"
                             " AND abs(extract(epoch FROM created_at - now())) < 30"),
        1);
    /* Plain SQL moves expires_at into the past: a miss for a reader without a copy. */
    pgtest_exec(pg,
                "UPDATE ttl_cache_entries SET expires_at = now() - interval '1 second'"
                " WHERE cache_key = 't'");
    pgcw_cache_opts o2 = {.disable_l1 = true};
    pgcw_cache *fresh = cachetest_new("ttl_", &o2);
    assert_null(cachetest_get(fresh, "t"));
    /* A TTL shorter than the test: the L1 copy dies with the row. */
    cachetest_set(c, "short", "v", 300);
    char *v = cachetest_get(c, "short");
    assert_non_null(v);
    free(v);
    pgtest_sleep_ms(400);
    assert_null(cachetest_get(c, "short"));
    assert_null(cachetest_get(fresh, "short"));
    /* Cleanup removes the expired rows (and tombstones), up to the batch size. */
    assert_int_equal(pgcw_cache_delete(c, "tomb", 4), PGCW_OK);
    int removed = -1;
    assert_int_equal(pgcw_cache_cleanup_expired(c, &removed), PGCW_OK);
    assert_int_equal(removed, 3); /* t, short, tomb */
    assert_int_equal(pgtest_query_int(pg, "SELECT count(*) FROM ttl_cache_entries"), 0);
    PQfinish(pg);
    pgcw_cache_free(fresh);
    pgcw_cache_free(c);
}

static void test_keys(void **state)
{
    (void)state;
    cachetest_init("keys_");
    pgcw_cache *c = cachetest_new("keys_", NULL);
    /* The empty key and 0x1F are keys like any other. */
    assert_int_equal(pgcw_cache_set(c, "", 0, "empty", 5, 0), PGCW_OK);
    assert_int_equal(pgcw_cache_set(c,
                                    "a\x1f"
                                    "b",
                                    3, "sep", 3, 0),
                     PGCW_OK);
    pgcw_cache_flush_local(c);
    void *v = NULL;
    size_t len = 0;
    assert_int_equal(pgcw_cache_get(c, "", 0, &v, &len), PGCW_OK);
    assert_memory_equal(v, "empty", 5);
    pgcw_free(v);
    assert_int_equal(pgcw_cache_get(c,
                                    "a\x1f"
                                    "b",
                                    3, &v, &len),
                     PGCW_OK);
    assert_memory_equal(v, "sep", 3);
    pgcw_free(v);
    /* Not UTF-8, or a NUL: refused before anything is sent. */
    const char *bad[] = {"\xff", "\xc0\xaf", "\xed\xa0\x80", "a\0b"};
    size_t badlen[] = {1, 2, 3, 3};
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(pgcw_cache_set(c, bad[i], badlen[i], "x", 1, 0), PGCW_EINVAL);
        assert_int_equal(pgcw_cache_get(c, bad[i], badlen[i], &v, &len), PGCW_EINVAL);
        assert_int_equal(pgcw_cache_delete(c, bad[i], badlen[i]), PGCW_EINVAL);
        assert_true(strlen(pgcw_cache_errmsg(c)) > 0);
    }
    /* A 10 KB key (compressible, so the btree takes it) and one too long to be
     * notified: written, read back, never kept in the L1. */
    size_t n = 10 * 1024;
    char *big = malloc(n);
    memset(big, 'k', n);
    pgcw_cache_stats before = cachetest_stats(c);
    assert_int_equal(pgcw_cache_set(c, big, n, "big", 3, 0), PGCW_OK);
    assert_int_equal(pgcw_cache_get(c, big, n, &v, &len), PGCW_OK);
    assert_memory_equal(v, "big", 3);
    pgcw_free(v);
    pgcw_cache_stats after = cachetest_stats(c);
    assert_int_equal(after.l1_entries, before.l1_entries);
    assert_int_equal(after.l2_hits, before.l2_hits + 1);
    /* A key of exactly PGCW_CACHE_MAX_NOTIFY_KEY bytes is notified (and kept). */
    PGconn *pg = pgtest_connect();
    pgtest_exec(pg, "LISTEN cache_events");
    assert_int_equal(pgcw_cache_set(c, big, PGCW_CACHE_MAX_NOTIFY_KEY, "edge", 4, 0),
                     PGCW_OK);
    int64_t until = pgtest_now_ms() + CACHETEST_WAIT_MS;
    size_t payload_len = 0;
    while (!payload_len && pgtest_now_ms() < until) {
        PQconsumeInput(pg);
        PGnotify *nt;
        while ((nt = PQnotifies(pg))) {
            if (strlen(nt->extra) > 7000)
                payload_len = strlen(nt->extra);
            PQfreemem(nt);
        }
        pgtest_sleep_ms(5);
    }
    assert_true(payload_len > 7000 && payload_len <= 7999);
    PQfinish(pg);
    free(big);
    pgcw_cache_free(c);
}

/* A batch is one transaction: a statement the server refuses (an index entry too
 * big for the btree) writes nothing of the batch. */
static void test_batch_all_or_nothing(void **state)
{
    (void)state;
    cachetest_init("atom_");
    pgcw_cache *c = cachetest_new("atom_", NULL);
    size_t n = 10 * 1024;
    char *big = malloc(n + 1);
    cachetest_incompressible(big, n);
    pgcw_cache_entry e[2] = {{"good", 4, "v", 1, 0}, {big, n, "w", 1, 0}};
    assert_int_equal(pgcw_cache_set_many(c, e, 2), PGCW_EQUERY);
    assert_non_null(strstr(pgcw_cache_errmsg(c), "54000"));
    assert_null(cachetest_get(c, "good"));
    free(big);
    pgcw_cache_free(c);
}

static pgcw_status loader_abc(void *ctx, const void *key, size_t key_len,
                              pgcw_cache_result *r)
{
    (void)key;
    (void)key_len;
    ++*(int *)ctx;
    return pgcw_cache_result_set(r, "abc", 3);
}

/* Rows whose expires_at is infinite: a tombstone ('-infinity', what delete leaves)
 * is a miss that get_or_set loads over (as over an expired row), and 'infinity' (plain
 * SQL may write it) is a live row that never expires. PostgreSQL 15 refuses to subtract
 * an infinite timestamp, and the remaining lifetime used to be computed for every row
 * read. */
static void test_infinite_expiry(void **state)
{
    (void)state;
    cachetest_init("inf_");
    pgcw_cache *c = cachetest_new("inf_", NULL);
    cachetest_set(c, "gone", "old", 60000);
    assert_int_equal(pgcw_cache_delete(c, "gone", 4), PGCW_OK);
    int calls = 0;
    void *v = NULL;
    size_t len = 0;
    for (int i = 0; i < 2; i++) { /* loads over the tombstone, then hits */
        pgcw_status st =
            pgcw_cache_get_or_set(c, "gone", 4, 60000, loader_abc, &calls, &v, &len);
        if (st != PGCW_OK)
            fail_msg("get_or_set over a tombstone: %s: %s", pgcw_status_name(st),
                     pgcw_cache_errmsg(c));
        assert_memory_equal(v, "abc", 3);
        pgcw_free(v);
    }
    assert_int_equal(calls, 1);
    char *got = cachetest_get(c, "gone"); /* what the load wrote, read back */
    assert_string_equal(got, "abc");
    free(got);
    PGconn *pg = pgtest_connect();
    /* An expired row is a miss that get_or_set loads over too. */
    pgtest_exec(pg, "UPDATE inf_cache_entries SET expires_at = now() - interval '1 s'"
                    " WHERE cache_key = 'gone'");
    pgcw_cache_flush_local(c);
    assert_int_equal(
        pgcw_cache_get_or_set(c, "gone", 4, 60000, loader_abc, &calls, &v, &len),
        PGCW_OK);
    pgcw_free(v);
    assert_int_equal(calls, 2);
    pgtest_exec(pg, "INSERT INTO inf_cache_entries (cache_key, value, expires_at)"
                    " VALUES ('forever', 'v', 'infinity'), ('never', 'w', '-infinity')");
    pgcw_cache_opts o2 = {.disable_l1 = true};
    pgcw_cache *fresh = cachetest_new("inf_", &o2);
    got = cachetest_get(fresh, "forever");
    assert_non_null(got);
    assert_string_equal(got, "v");
    free(got);
    assert_null(cachetest_get(fresh, "never"));
    assert_int_equal(
        pgcw_cache_get_or_set(fresh, "never", 5, 60000, loader_abc, &calls, &v, &len),
        PGCW_OK);
    pgcw_free(v);
    assert_int_equal(calls, 3);
    PQfinish(pg);
    pgcw_cache_free(fresh);
    pgcw_cache_free(c);
}

/* The cache's trigger functions name everything they use in pg_catalog (migration
 * 5; migration 4 pinned their search_path): a plain-SQL writer whose search_path
 * puts look-alike functions and operators before pg_catalog, or leaves
 * out the table's schema, still makes the trigger send the true notification, so
 * another client's L1 copy is evicted. */
static void test_search_path_pinned(void **state)
{
    (void)state;
    cachetest_init("pin_");
    pgcw_cache *reader = cachetest_new("pin_", NULL);
    cachetest_set(reader, "k", "v1", 60000);
    cachetest_wait_value(reader, "k", "v1"); /* an L1 copy */
    PGconn *pg = pgtest_connect();
    pgtest_exec(pg, "CREATE SCHEMA pin_shadow;"
                    "CREATE FUNCTION pin_shadow.encode(bytea, text) RETURNS text"
                    "  LANGUAGE sql AS $$ SELECT 'forged'::text $$;"
                    "CREATE FUNCTION pin_shadow.forge(text, text) RETURNS text"
                    "  LANGUAGE sql AS $$ SELECT 'forged'::text $$;"
                    "CREATE OPERATOR pin_shadow.|| (leftarg = text, rightarg = text,"
                    "  function = pin_shadow.forge);"
                    "CREATE FUNCTION pin_shadow.now() RETURNS timestamptz"
                    "  LANGUAGE sql AS $$ SELECT timestamptz '2000-01-01 00:00Z' $$;"
                    "SET search_path = pin_shadow, pg_catalog");
    pgtest_exec(pg, "UPDATE public.pin_cache_entries SET value = 'v2', version = version"
                    " + 1 WHERE cache_key = 'k'");
    cachetest_wait_value(reader, "k", "v2");
    char *year =
        pgtest_query_value(pg, "SELECT extract(year FROM updated_at) > 2000 FROM"
                               " public.pin_cache_entries WHERE cache_key = 'k'");
    assert_string_equal(year, "t"); /* pg_catalog.now(), not the look-alike */
    free(year);
    pgtest_exec(pg, "RESET search_path; DROP SCHEMA pin_shadow CASCADE");
    PQfinish(pg);
    pgcw_cache_free(reader);
}

static void test_null_cache(void **state)
{
    (void)state;
    pgcw_cache *c = NULL;
    assert_int_equal(pgcw_cache_new_null(&c), PGCW_OK);
    assert_int_equal(pgcw_cache_set(c, "k", 1, "v", 1, 0), PGCW_OK);
    void *v = NULL;
    size_t len = 0;
    assert_int_equal(pgcw_cache_get(c, "k", 1, &v, &len), PGCW_ENOTFOUND);
    int calls = 0;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(
            pgcw_cache_get_or_set(c, "k", 1, 0, loader_abc, &calls, &v, &len), PGCW_OK);
        assert_memory_equal(v, "abc", 3);
        pgcw_free(v);
    }
    assert_int_equal(calls, 3);
    assert_int_equal(pgcw_cache_delete(c, "k", 1), PGCW_OK);
    assert_int_equal(pgcw_cache_wait_healthy(c, 0), PGCW_OK);
    pgcw_cache_free(c);
}

/* get_versioned and set_versioned give the row's version column: from the L1 and
 * from the table alike, growing with every write by any client, 0 on a miss. */
static void test_versioned(void **state)
{
    (void)state;
    cachetest_init("ver_");
    pgcw_cache *a = cachetest_new("ver_", NULL);
    pgcw_cache_opts no_l1 = {.disable_l1 = true};
    pgcw_cache *b = cachetest_new("ver_", &no_l1);
    PGconn *pg = pgtest_connect();
    void *v = NULL;
    size_t len = 0;
    int64_t ver = -1, v1 = 0, v2 = 0;
    assert_int_equal(pgcw_cache_get_versioned(a, "k", 1, &v, &len, &ver), PGCW_ENOTFOUND);
    assert_int_equal(ver, 0);
    assert_null(v);
    assert_int_equal(pgcw_cache_get_versioned(a, "k", 1, &v, &len, NULL), PGCW_EINVAL);
    assert_int_equal(pgcw_cache_set_versioned(a, "k", 1, "one", 3, 60000, &v1), PGCW_OK);
    assert_int_equal(v1, pgtest_query_int(pg, "SELECT version FROM ver_cache_entries"
                                              " WHERE cache_key = 'k'"));
    /* a's L1 hit and b's table read both say v1. */
    uint64_t hits = cachetest_stats(a).l1_hits;
    assert_int_equal(pgcw_cache_get_versioned(a, "k", 1, &v, &len, &ver), PGCW_OK);
    assert_int_equal(cachetest_stats(a).l1_hits, hits + 1);
    assert_int_equal(ver, v1);
    assert_memory_equal(v, "one", 3);
    pgcw_free(v);
    assert_int_equal(pgcw_cache_get_versioned(b, "k", 1, &v, &len, &ver), PGCW_OK);
    assert_int_equal(ver, v1);
    pgcw_free(v);
    /* Another client's write: a larger version, seen by a once its copy is gone. */
    assert_int_equal(pgcw_cache_set_versioned(b, "k", 1, "two", 3, 60000, &v2), PGCW_OK);
    assert_true(v2 > v1);
    cachetest_wait_value(a, "k", "two");
    assert_int_equal(pgcw_cache_get_versioned(a, "k", 1, &v, &len, &ver), PGCW_OK);
    assert_int_equal(ver, v2);
    pgcw_free(v);
    /* Versions come from the table: a row written by plain SQL reads with its own. */
    pgtest_exec(pg, "UPDATE ver_cache_entries SET value = 'three', version = 77"
                    " WHERE cache_key = 'k'");
    assert_int_equal(pgcw_cache_get_versioned(b, "k", 1, &v, &len, &ver), PGCW_OK);
    assert_int_equal(ver, 77);
    assert_memory_equal(v, "three", 5);
    pgcw_free(v);
    /* set_versioned with NULL version is set; a failed call gives 0. */
    assert_int_equal(pgcw_cache_set_versioned(a, "k", 1, "four", 4, 60000, NULL),
                     PGCW_OK);
    int64_t bad = -1;
    assert_int_equal(pgcw_cache_set_versioned(a, "\xff", 1, "x", 1, 0, &bad),
                     PGCW_EINVAL);
    assert_int_equal(bad, 0);
    /* The null cache: no versions. */
    pgcw_cache *n = NULL;
    assert_int_equal(pgcw_cache_new_null(&n), PGCW_OK);
    bad = -1;
    assert_int_equal(pgcw_cache_set_versioned(n, "k", 1, "x", 1, 0, &bad), PGCW_OK);
    assert_int_equal(bad, 0);
    assert_int_equal(pgcw_cache_get_versioned(n, "k", 1, &v, &len, &bad), PGCW_ENOTFOUND);
    pgcw_cache_free(n);
    PQfinish(pg);
    pgcw_cache_free(b);
    pgcw_cache_free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layout),
        cmocka_unit_test(test_logged),
        cmocka_unit_test(test_concurrent_init),
        cmocka_unit_test(test_hostile_prefix),
        cmocka_unit_test(test_prefixes_isolated),
        cmocka_unit_test(test_get_set_delete),
        cmocka_unit_test(test_batches),
        cmocka_unit_test(test_ttl_server_clock),
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_batch_all_or_nothing),
        cmocka_unit_test(test_infinite_expiry),
        cmocka_unit_test(test_search_path_pinned),
        cmocka_unit_test(test_null_cache),
        cmocka_unit_test(test_versioned),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
