/*
 * test_cache_key.c - postgres-cache's advisory-lock key, computed independently by
 * Python's hashlib (python3 -c ...) for a few keys, equals pgcw_cache_lock_key(); and
 * the cache's argument checks that need no server (bad prefixes and channels, keys
 * that are not UTF-8 or hold a NUL).
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

/* Python's value for the key given as hex (so any bytes pass the shell). */
static long long python_lock_key(const char *hex)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "python3 -c \"import hashlib,sys; d=hashlib.blake2b(bytes.fromhex('%s'),"
             " digest_size=8).digest(); print(int.from_bytes(d, 'big', signed=True))\"",
             hex);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    long long v = 0;
    int n = fscanf(p, "%lld", &v);
    assert_int_equal(pclose(p), 0);
    assert_int_equal(n, 1);
    return v;
}

static void test_lock_key_matches_python(void **state)
{
    (void)state;
    const char *keys[] = {"", "profile:123",
                          "a\x1f"
                          "b",
                          "ключ", "user:42:session"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        char hex[256] = "";
        for (size_t j = 0; keys[i][j]; j++)
            snprintf(hex + 2 * j, 3, "%02x", (unsigned char)keys[i][j]);
        long long want = python_lock_key(hex);
        assert_int_equal(pgcw_cache_lock_key(keys[i], strlen(keys[i])), want);
    }
    /* Pinned values, so a broken python3 cannot make both sides agree on garbage. */
    assert_int_equal(pgcw_cache_lock_key("", 0), -1970711489451281740LL);
    assert_int_equal(pgcw_cache_lock_key("profile:123", 11), -4074212320559651839LL);
}

static void test_bad_settings(void **state)
{
    (void)state;
    pgcw_cache *c = NULL;
    /* 34 bytes: "<prefix>cache_broadcast_change_trigger" would be 64, one too many. */
    const char *prefixes[] = {"a-b", "x;y", "é", "p23456789012345678901234567890123456",
                              "p234567890123456789012345678901234"};
    for (size_t i = 0; i < 5; i++) {
        pgcw_cache_opts o = {.schema_prefix = prefixes[i], .disable_l1 = true};
        assert_int_equal(pgcw_cache_new(&o, NULL, &c), PGCW_EINVAL);
        assert_null(c);
    }
    pgcw_cache_opts ok = {.schema_prefix = "p23456789012345678901234567890123",
                          .disable_l1 = true};
    assert_int_equal(pgcw_cache_new(&ok, NULL, &c), PGCW_OK); /* 33 bytes: fits */
    pgcw_cache_free(c);
    char chan[80];
    memset(chan, 'c', 64);
    chan[64] = '\0';
    pgcw_cache_opts o = {.notify_channel = chan, .disable_l1 = true};
    assert_int_equal(pgcw_cache_new(&o, NULL, &c), PGCW_EINVAL);
    o.notify_channel = "";
    assert_int_equal(pgcw_cache_new(&o, NULL, &c), PGCW_EINVAL);
}

static pgcw_status never_load(void *ctx, const void *key, size_t key_len,
                              pgcw_cache_result *r)
{
    (void)key;
    (void)key_len;
    ++*(int *)ctx;
    return pgcw_cache_result_set(r, "x", 1);
}

static void test_bad_keys_need_no_server(void **state)
{
    (void)state;
    /* A cache pointed at nothing: key checks fail before any connection. */
    static const char *keys[] = {"host", "port", NULL};
    static const char *vals[] = {"127.0.0.1", "1", NULL};
    pgcw_conn_opts co = {.keys = keys, .values = vals, .connect_timeout_ms = 200};
    pgcw_cache_opts o = {.disable_l1 = true};
    pgcw_cache *c = NULL;
    assert_int_equal(pgcw_cache_new(&o, &co, &c), PGCW_OK);
    void *v = NULL;
    size_t len = 0;
    assert_int_equal(pgcw_cache_get(c, "\xc3", 1, &v, &len), PGCW_EINVAL);
    assert_non_null(strstr(pgcw_cache_errmsg(c), "UTF-8"));
    assert_int_equal(pgcw_cache_set(c, "a\0b", 3, "v", 1, 0), PGCW_EINVAL);
    assert_non_null(strstr(pgcw_cache_errmsg(c), "NUL"));
    int loads = 0;
    assert_int_equal(pgcw_cache_get_or_set(c, "\xff", 1, 0, never_load, &loads, &v, &len),
                     PGCW_EINVAL);
    assert_int_equal(loads, 0);
    assert_null(v);
    pgcw_cache *null = NULL;
    assert_int_equal(pgcw_cache_new_null(&null), PGCW_OK);
    assert_int_equal(
        pgcw_cache_get_or_set(null, "a\0b", 3, 0, never_load, &loads, &v, &len),
        PGCW_EINVAL);
    assert_int_equal(loads, 0);
    pgcw_cache_free(null);
    pgcw_cache_key k[2] = {{"fine", 4}, {"\xff", 1}};
    assert_int_equal(pgcw_cache_delete_many(c, k, 2), PGCW_EINVAL);
    /* A valid key reaches the (absent) server: a connection error, told clearly. */
    assert_int_equal(pgcw_cache_get(c, "fine", 4, &v, &len), PGCW_ECONNECT);
    assert_non_null(strstr(pgcw_cache_errmsg(c), "could not connect"));
    pgcw_cache_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lock_key_matches_python),
        cmocka_unit_test(test_bad_settings),
        cmocka_unit_test(test_bad_keys_need_no_server),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
