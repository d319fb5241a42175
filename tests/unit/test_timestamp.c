/* test_timestamp.c - pgcw_time_parse/_format: every accepted shape, calendar edges
 * (leap days, month ends, offsets, fractions, BC, six-digit years), rejects, and
 * round trips. Expected values were computed independently with Python's datetime
 * and, for years Python cannot represent, by PostgreSQL 15 itself. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <pgcachewatch/pgcachewatch.h>

typedef struct good_case {
    const char *text;
    int64_t us;
} good_case;

static const good_case good[] = {
    /* PostgreSQL's json output of timestamptz (the Python trigger's sent_at). */
    {"2024-05-01T12:34:56.123456+00:00", INT64_C(1714566896123456)},
    /* pydantic's output (Python emit_event). */
    {"2024-05-01T12:34:56.123456Z", INT64_C(1714566896123456)},
    {"2024-05-01t12:34:56.123456z", INT64_C(1714566896123456)},
    {"2024-05-01 12:34:56.123456", INT64_C(1714566896123456)}, /* no zone = UTC */
    {"2024-05-01 12:00:00.123456+02", INT64_C(1714557600123456)},
    {"2024-05-01T12:00:00.123456+0200", INT64_C(1714557600123456)},
    {"2024-05-01T12:00:00+05:30", INT64_C(1714545000000000)},
    {"2024-05-01T12:00:00+0530", INT64_C(1714545000000000)},
    {"2024-05-01T12:00:00-08", INT64_C(1714593600000000)},
    {"2024-05-01T12:00:00-0800", INT64_C(1714593600000000)},
    {"2024-05-01T12:00:00-08:00", INT64_C(1714593600000000)},
    /* Local mean time offsets with seconds, as PostgreSQL prints them. */
    {"1883-11-18 12:00:00-04:56:02", INT64_C(-2717651038000000)},
    {"1970-01-01T00:00:00Z", 0},
    {"1970-01-01T00:00:00.000001Z", 1},
    {"1969-12-31T23:59:59.999999Z", -1},
    {"2000-02-29T00:00:00Z", INT64_C(951782400000000)}, /* divisible by 400 */
    {"2024-02-29T23:59:59Z", INT64_C(1709251199000000)},
    {"1600-03-01T00:00:00Z", INT64_C(-11670912000000000)},
    {"0001-01-01T00:00:00Z", INT64_C(-62135596800000000)},
    {"9999-12-31T23:59:59.999999Z", INT64_C(253402300799999999)},
    /* Fractions: one digit, and beyond microseconds (truncated). */
    {"2024-12-31T23:59:59.5Z", INT64_C(1735689599500000)},
    {"2024-12-31T23:59:59.500000999Z", INT64_C(1735689599500000)},
    {"1969-12-31T23:59:59.9999999Z", -1},
    /* End of day and a leap second both roll into the next instant. */
    {"2024-05-01T24:00:00Z", INT64_C(1714608000000000)},
    {"2024-05-01T23:59:60Z", INT64_C(1714608000000000)},
    /* PostgreSQL's output beyond four-digit years and before 1 AD. */
    {"10000-01-01T05:30:00+05:30", INT64_C(253402300800000000)},
    {"294247-01-10T04:00:54.775807Z", INT64_MAX},
    {"0044-03-15 12:00:00+00 BC", INT64_C(-63517780800000000)},
    {"0044-03-15T17:53:28+05:53:28 BC", INT64_C(-63517780800000000)},
    {"0001-12-31 23:59:59.999999+00 BC", INT64_C(-62135596800000001)},
    {"0001-01-01 00:00:00+01", INT64_C(-62135600400000000)},
    {"0005-02-29 00:00:00+00 BC", INT64_C(-62288352000000000)}, /* year -4: leap */
    {"4714-11-24 00:00:00+00 BC", INT64_C(-210866803200000000)},
};

static void test_parse_good(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        int64_t us = 42;
        pgcw_status st = pgcw_time_parse(good[i].text, &us);
        if (st != PGCW_OK || us != good[i].us)
            fail_msg("%s: status %d, got %lld, want %lld", good[i].text, (int)st,
                     (long long)us, (long long)good[i].us);
    }
}

static const char *const bad[] = {
    "",
    "2024",
    "2024-05-01",                      /* a date alone */
    "2024-05-01T12:00",                /* no seconds */
    "2024-05-01T12:00:00.",            /* a dot without digits */
    "2024-05-01T12:00:00.1234567890Z", /* ten fraction digits */
    "2024-5-01T12:00:00Z",
    "2024-05-1T12:00:00Z",
    "24-05-01T12:00:00Z",
    "2024-05-01X12:00:00Z",
    "2024-05-01T12:00:00ZZ",
    "2024-05-01T12:00:00Z ",
    " 2024-05-01T12:00:00Z",
    "2024-05-01T12:00:00 +00",
    "2024-05-01T12:00:00+5",
    "2024-05-01T12:00:00+05:3",
    "2024-05-01T12:00:00+05:",
    "2024-05-01T12:00:00+05:30:",
    "2024-05-01T12:00:00+05:3000", /* separator style changes half way */
    "2024-05-01T12:00:00+16:00",
    "2024-05-01T12:00:00+05:60",
    "2024-05-01T12:00:00+05:30:60",
    "2024-05-01T12:00:00UTC",
    "0000-01-01T00:00:00Z",
    "2024-00-01T00:00:00Z",
    "2024-13-01T00:00:00Z",
    "2024-01-00T00:00:00Z",
    "2024-01-32T00:00:00Z",
    "2024-04-31T00:00:00Z",
    "2023-02-29T00:00:00Z", /* not a leap year */
    "1900-02-29T00:00:00Z", /* divisible by 100, not by 400 */
    "2100-02-29T00:00:00Z",
    "2024-02-30T00:00:00Z",
    "2024-05-01T25:00:00Z",
    "2024-05-01T24:00:01Z",
    "2024-05-01T24:00:00.1Z",
    "2024-05-01T24:01:00Z",
    "2024-05-01T12:60:00Z",
    "2024-05-01T12:00:61Z",
    "2024-05-01T-1:00:00Z",
    "2024-05-01T12:00:00.-1Z",
    "infinity",
    "-infinity",
    "294247-01-10T04:00:54.775808Z", /* one past INT64_MAX microseconds */
    "999999-12-31T23:59:59Z",
    "1000000-01-01T00:00:00Z",
    "024-05-01T12:00:00Z",
    "+2024-05-01T12:00:00Z",
    "-2024-05-01T12:00:00Z",
    "0004-02-29 00:00:00+00 BC", /* year -3: not leap */
    "0000-01-01 00:00:00 BC",
    "10000-01-01 00:00:00 BC",
    "0044-03-15 12:00:00 bc",
    "0044-03-15 12:00:00 BC ",
    "0044-03-15 12:00:00BC",
    "0044-03-15 12:00:00 AD",
};

static void test_parse_bad(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t us = 42;
        if (pgcw_time_parse(bad[i], &us) != PGCW_EPARSE)
            fail_msg("accepted \"%s\" as %lld", bad[i], (long long)us);
        assert_int_equal(us, 42); /* untouched on failure */
    }
    int64_t us;
    assert_int_equal(pgcw_time_parse(NULL, &us), PGCW_EPARSE);
    assert_int_equal(pgcw_time_parse("2024-05-01T12:00:00Z", NULL), PGCW_EPARSE);
}

static void test_format(void **state)
{
    (void)state;
    char buf[32];
    assert_string_equal(pgcw_time_format(0, buf, sizeof buf),
                        "1970-01-01T00:00:00.000000Z");
    assert_string_equal(pgcw_time_format(-1, buf, sizeof buf),
                        "1969-12-31T23:59:59.999999Z");
    assert_string_equal(pgcw_time_format(INT64_C(1714566896123456), buf, sizeof buf),
                        "2024-05-01T12:34:56.123456Z");
    assert_string_equal(pgcw_time_format(INT64_C(951782400000000), buf, sizeof buf),
                        "2000-02-29T00:00:00.000000Z");
    assert_string_equal(pgcw_time_format(INT64_C(-62135596800000000), buf, sizeof buf),
                        "0001-01-01T00:00:00.000000Z");
    assert_string_equal(pgcw_time_format(INT64_C(253402300799999999), buf, sizeof buf),
                        "9999-12-31T23:59:59.999999Z");
    assert_string_equal(pgcw_time_format(INT64_C(-62135596800000001), buf, sizeof buf),
                        "0001-12-31T23:59:59.999999Z BC");
    assert_string_equal(pgcw_time_format(INT64_C(-63517780800000000), buf, sizeof buf),
                        "0044-03-15T12:00:00.000000Z BC");
    assert_string_equal(pgcw_time_format(INT64_MAX, buf, sizeof buf),
                        "294247-01-10T04:00:54.775807Z");
    /* Extremes must not crash or overflow 32 bytes. */
    pgcw_time_format(INT64_MIN, buf, sizeof buf);
    assert_true(strlen(buf) < sizeof buf);
    pgcw_time_format(INT64_MAX, buf, sizeof buf);
    assert_true(strlen(buf) < sizeof buf);
    /* A short buffer is truncated and terminated; an empty one left alone. */
    char small[8] = "xxxxxxx";
    assert_string_equal(pgcw_time_format(0, small, sizeof small), "1970-01");
    assert_ptr_equal(pgcw_time_format(0, small, 0), small);
    assert_null(pgcw_time_format(0, NULL, 32));
}

/* Every accepted value formats to text that parses back to itself, across
 * every day from 1599 to 2401 (four leap-year cycles) at varying times of day. */
static void test_round_trip(void **state)
{
    (void)state;
    const int64_t day = INT64_C(86400000000);
    int64_t start = INT64_C(-11676096000000000); /* 1599-12-31 */
    char buf[32];
    for (int64_t i = 0; i < 4 * 146097 / 2 + 10; i++) {
        int64_t us = start + i * day + (i * INT64_C(7919000123)) % day;
        int64_t back;
        pgcw_time_format(us, buf, sizeof buf);
        if (pgcw_time_parse(buf, &back) != PGCW_OK || back != us)
            fail_msg("%lld -> %s -> %lld", (long long)us, buf, (long long)back);
    }
    /* Sparse over everything parseable: 9999 BC to the end of int64. */
    int64_t lo;
    assert_int_equal(pgcw_time_parse("9999-01-01 00:00:00 BC", &lo), PGCW_OK);
    const uint64_t span = (uint64_t)INT64_MAX - (uint64_t)lo;
    for (uint64_t i = 0; i <= 100000; i++) {
        int64_t us = (int64_t)((uint64_t)lo + span / 100001 * i + i % 1000003);
        int64_t back;
        pgcw_time_format(us, buf, sizeof buf);
        if (pgcw_time_parse(buf, &back) != PGCW_OK || back != us)
            fail_msg("%lld -> %s -> %lld", (long long)us, buf, (long long)back);
    }
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        int64_t back;
        pgcw_time_format(good[i].us, buf, sizeof buf);
        assert_int_equal(pgcw_time_parse(buf, &back), PGCW_OK);
        assert_int_equal(back, good[i].us);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_good),
        cmocka_unit_test(test_parse_bad),
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
