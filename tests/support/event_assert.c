/* event_assert.c - see event_assert.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "event_assert.h"

static void same_string(const char *a, const char *b, bool distinct)
{
    if (a == NULL || b == NULL) {
        assert_ptr_equal(a, b);
        return;
    }
    if (distinct)
        assert_ptr_not_equal(a, b);
    assert_string_equal(a, b);
}

void pgtest_assert_same_event(const pgcw_event *a, const pgcw_event *b,
                              bool distinct_storage)
{
    bool d = distinct_storage;
    assert_int_equal(a->kind, b->kind);
    assert_int_equal(a->operation, b->operation);
    same_string(a->channel, b->channel, d);
    same_string(a->schema, b->schema, d);
    same_string(a->table, b->table, d);
    assert_int_equal(a->sent_at_us, b->sent_at_us);
    assert_int_equal(a->received_at_us, b->received_at_us);
    assert_int_equal(a->latency_us, b->latency_us);
    assert_int_equal(a->epoch, b->epoch);
    assert_int_equal(a->backend_pid, b->backend_pid);
    same_string(a->payload, b->payload, d);
    assert_int_equal(a->n_pk_columns, b->n_pk_columns);
    for (size_t i = 0; i < a->n_pk_columns; i++)
        same_string(a->pk_columns[i], b->pk_columns[i], d);
    assert_int_equal(a->n_keys, b->n_keys);
    for (size_t i = 0; i < a->n_keys; i++)
        same_string(a->keys[i], b->keys[i], d);
    assert_int_equal(a->part, b->part);
    assert_int_equal(a->gap_reason, b->gap_reason);
    assert_int_equal(a->gap_lost, b->gap_lost);
    assert_int_equal(a->source, b->source);
    assert_int_equal(a->key_len, b->key_len);
    same_string(a->key, b->key, d); /* NUL-terminated, never holds a NUL */
    assert_int_equal(a->version, b->version);
    assert_int_equal(a->lsn, b->lsn);
}
