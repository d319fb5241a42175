/* test_status.c - the status list: every code has a distinct name and message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <pgcachewatch/pgcachewatch.h>

static void test_names_and_messages(void **state)
{
    (void)state;
    assert_int_equal(PGCW_OK, 0);
    assert_string_equal(pgcw_status_name(PGCW_ETIMEDOUT), "ETIMEDOUT");
    assert_string_equal(pgcw_strerror(PGCW_ETIMEDOUT), "timed out");
    for (int i = 0; i < PGCW__STATUS_COUNT; i++)
        for (int j = i + 1; j < PGCW__STATUS_COUNT; j++) {
            assert_string_not_equal(pgcw_status_name((pgcw_status)i),
                                    pgcw_status_name((pgcw_status)j));
            assert_string_not_equal(pgcw_strerror((pgcw_status)i),
                                    pgcw_strerror((pgcw_status)j));
        }
    assert_string_equal(pgcw_strerror((pgcw_status)9999), "unknown status");
    assert_string_equal(pgcw_status_name((pgcw_status)-1), "UNKNOWN");
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_names_and_messages)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
