/*
 * event_assert.h - comparing two events field by field in cmocka tests (clones,
 * the fast path against json-c). Include after <cmocka.h>.
 */
#ifndef PGCW_EVENT_ASSERT_H
#define PGCW_EVENT_ASSERT_H

#include <stdbool.h>

#include <pgcachewatch/event.h>

/* Fails the test unless a and b carry the same values in every field. With
 * distinct_storage, every non-NULL string must also live at a different address
 * (a deep copy). */
void pgtest_assert_same_event(const pgcw_event *a, const pgcw_event *b,
                              bool distinct_storage);

#endif
