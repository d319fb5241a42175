/*
 * test_text.c - text that leaves the library (core_text.c): the one-line escaping
 * every log and error message goes through, UTF-8 decoding, the log rate limiter.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "pgcw_testhook.h"

static void expect_escaped(const char *in, size_t n, const char *want)
{
    char out[256];
    size_t len = pgcw__escape_line(out, sizeof out, in, n);
    assert_string_equal(out, want);
    assert_int_equal(len, strlen(want));
}

static void test_escapes(void **state)
{
    (void)state;
    expect_escaped("plain text, 'quotes' \"too\"", 26, "plain text, 'quotes' \"too\"");
    expect_escaped("a\nb\rc\td\\e", 9, "a\\nb\\rc\\td\\e");
    expect_escaped("\x1b[31mred\x7f", 9, "\\x1b[31mred\\x7f");
    expect_escaped("nul\0inside", 10, "nul\\x00inside");
    /* UTF-8 is kept; what is not UTF-8 is escaped byte by byte. */
    expect_escaped("caf\xc3\xa9 \xe2\x82\xac", 9, "caf\xc3\xa9 \xe2\x82\xac");
    expect_escaped("\xc0\xaf overlong", 11, "\\xc0\\xaf overlong");
    expect_escaped("\xed\xa0\x80 surrogate", 13, "\\xed\\xa0\\x80 surrogate");
    expect_escaped("cut \xe2\x82", 6, "cut \\xe2\\x82");
    /* What a terminal acts on: C1 CSI, bidirectional override, line separator. */
    expect_escaped("\xc2\x9b"
                   "2J",
                   4, "\\u009b2J");
    expect_escaped("\xe2\x80\xae"
                   "evil",
                   7, "\\u202eevil");
    expect_escaped("\xe2\x80\xa8", 3, "\\u2028");
}

static void test_truncates_whole(void **state)
{
    (void)state;
    char out[8];
    /* "ab\n" + "cd": "ab\\ncd" is 6 bytes + NUL: fits; one more escape does not. */
    assert_int_equal(pgcw__escape_line(out, sizeof out, "ab\ncd\n", 6), 6);
    assert_string_equal(out, "ab\\ncd");
    /* Never half a character: the euro sign (3 bytes) does not fit after 5. */
    assert_int_equal(pgcw__escape_line(out, sizeof out, "12345\xe2\x82\xac", 8), 5);
    assert_string_equal(out, "12345");
    assert_int_equal(pgcw__escape_line(out, 1, "x", 1), 0);
    assert_string_equal(out, "");
}

static void test_one_line(void **state)
{
    (void)state;
    char msg[] = "could not connect: failed\n\tIs the server running?\n\n";
    assert_string_equal(pgcw__one_line(msg),
                        "could not connect: failed Is the server running?");
}

static void test_utf8_next(void **state)
{
    (void)state;
    uint32_t cp = 0;
    assert_int_equal(pgcw__utf8_next((const unsigned char *)"\xf0\x9f\x98\x80", 4, &cp),
                     4);
    assert_int_equal(cp, 0x1F600);
    assert_int_equal(pgcw__utf8_next((const unsigned char *)"\xf4\x90\x80\x80", 4, &cp),
                     0);
    assert_int_equal(pgcw__utf8_next((const unsigned char *)"\xe0\x80\xaf", 3, &cp), 0);
    assert_int_equal(pgcw__utf8_next((const unsigned char *)"\x80", 1, &cp), 0);
    assert_false(pgcw__utf8_valid("\xed\xbf\xbf", 3));
    assert_true(pgcw__utf8_valid("\xee\x80\x80", 3));
}

static void test_ratelimit(void **state)
{
    (void)state;
    pgcw__ratelimit r = {.window_us = 1000000, .burst = 2};
    uint64_t held = 99;
    int64_t t = 5000000;
    assert_true(pgcw__ratelimit_take(&r, t, &held));
    assert_int_equal(held, 0);
    assert_true(pgcw__ratelimit_take(&r, t + 1, &held));
    assert_false(pgcw__ratelimit_take(&r, t + 2, &held));
    assert_false(pgcw__ratelimit_take(&r, t + 999999, &held));
    /* A new window: the first message out says two were held back. */
    assert_true(pgcw__ratelimit_take(&r, t + 1000000, &held));
    assert_int_equal(held, 2);
    assert_true(pgcw__ratelimit_take(&r, t + 1000001, &held));
    assert_int_equal(held, 0);
}

/* The library's log and error paths escape: a logged text with a newline and an
 * escape sequence arrives as one line, and so does a handle's error detail. */
static char logged[1024];
static void on_log(void *ctx, pgcw_log_level level, const char *msg)
{
    (void)ctx;
    (void)level;
    snprintf(logged, sizeof logged, "%s", msg);
}

static void test_log_and_errors_are_one_line(void **state)
{
    (void)state;
    pgcw__logf(on_log, NULL, PGCW_LOG_WARNING, "payload: %s", "x\n\x1b]0;title\x07");
    assert_string_equal(logged, "payload: x\\n\\x1b]0;title\\x07");
    int owner;
    pgcw__err_set(&owner, "server said: %s\n", "line one\nline two");
    assert_string_equal(pgcw__err_get(&owner), "server said: line one\\nline two");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escapes),
        cmocka_unit_test(test_truncates_whole),
        cmocka_unit_test(test_one_line),
        cmocka_unit_test(test_utf8_next),
        cmocka_unit_test(test_ratelimit),
        cmocka_unit_test(test_log_and_errors_are_one_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
