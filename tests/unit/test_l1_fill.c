/*
 * test_l1_fill.c - fill generations and versions (the "no stale fills" rule).
 *
 * The race tests run the reader on its own thread and order the two sides with
 * semaphores (never sleeps): A takes a ticket and stalls, B invalidates / deletes /
 * sets / clears, A's fill must be refused; in the reverse order A's fill is kept.
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <semaphore.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <pgcachewatch/l1.h>

typedef enum writer_op { OP_INVALIDATE, OP_DELETE, OP_SET, OP_CLEAR } writer_op;

typedef struct race {
    pgcw_l1 *c;
    sem_t ticket_taken, writer_done;
    bool stored;
    pgcw_status st;
} race;

/* Thread A: miss, ticket, (stall until B is done), "load" version 1, fill. */
static void *reader(void *arg)
{
    race *r = arg;
    pgcw_l1_ticket t;
    pgcw_l1_ticket_take(r->c, "k", 1, &t);
    sem_post(&r->ticket_taken);
    sem_wait(&r->writer_done);
    r->st = pgcw_l1_fill(r->c, &t, "k", 1, "loaded", 6, 1, PGCW_L1_TTL_NONE, &r->stored);
    return NULL;
}

static void writer(pgcw_l1 *c, writer_op op)
{
    switch (op) {
    case OP_INVALIDATE:
        (void)pgcw_l1_invalidate(c, "k", 1, 2);
        break;
    case OP_DELETE:
        (void)pgcw_l1_delete(c, "k", 1);
        break;
    case OP_SET:
        assert_int_equal(pgcw_l1_set(c, "k", 1, "written", 7, 2, PGCW_L1_TTL_NONE),
                         PGCW_OK);
        break;
    case OP_CLEAR:
        pgcw_l1_clear(c);
        break;
    }
}

/* writer_first: B runs before A takes its ticket (A's fill is kept); otherwise B
 * runs while A is stalled between ticket and fill (A's fill is refused). */
static void run_race(writer_op op, bool writer_first)
{
    race r = {0};
    assert_int_equal(pgcw_l1_new(NULL, &r.c), PGCW_OK);
    sem_init(&r.ticket_taken, 0, 0);
    sem_init(&r.writer_done, 0, 0);
    pthread_t a;
    if (writer_first) {
        writer(r.c, op);
        if (op == OP_SET) /* the reader would not miss: model it missing anyway */
            assert_int_equal(pgcw_l1_delete(r.c, "k", 1), PGCW_OK);
        assert_int_equal(pthread_create(&a, NULL, reader, &r), 0);
        sem_wait(&r.ticket_taken);
        sem_post(&r.writer_done);
    } else {
        assert_int_equal(pthread_create(&a, NULL, reader, &r), 0);
        sem_wait(&r.ticket_taken);
        writer(r.c, op);
        sem_post(&r.writer_done);
    }
    pthread_join(a, NULL);
    assert_int_equal(r.st, PGCW_OK);

    char buf[16];
    size_t len = 0;
    pgcw_status got = pgcw_l1_get(r.c, "k", 1, buf, sizeof(buf), &len, NULL);
    pgcw_l1_stats s;
    pgcw_l1_stats_get(r.c, &s);
    if (writer_first) {
        assert_true(r.stored);
        assert_int_equal(got, PGCW_OK);
        assert_memory_equal(buf, "loaded", 6);
        assert_int_equal(s.refused_fills, 0);
    } else {
        assert_false(r.stored);
        assert_int_equal(s.refused_fills, 1);
        if (op == OP_SET) { /* read-your-writes: the stale fill did not replace it */
            assert_int_equal(got, PGCW_OK);
            assert_int_equal(len, 7);
            assert_memory_equal(buf, "written", 7);
        } else {
            assert_int_equal(got, PGCW_ENOTFOUND);
        }
    }
    sem_destroy(&r.ticket_taken);
    sem_destroy(&r.writer_done);
    pgcw_l1_free(r.c);
}

static void test_invalidate_during_fill(void **state)
{
    (void)state;
    run_race(OP_INVALIDATE, false);
    run_race(OP_INVALIDATE, true);
}

static void test_delete_during_fill(void **state)
{
    (void)state;
    run_race(OP_DELETE, false);
    run_race(OP_DELETE, true);
}

static void test_set_during_fill(void **state)
{
    (void)state;
    run_race(OP_SET, false);
    run_race(OP_SET, true);
}

static void test_clear_during_fill(void **state)
{
    (void)state;
    run_race(OP_CLEAR, false);
    run_race(OP_CLEAR, true);
}

/* Invalidating a key that is not cached still outdates a pending fill: the
 * notification may be for the very row the reader is loading. */
static void test_invalidate_absent_key_refuses(void **state)
{
    (void)state;
    pgcw_l1 *c;
    assert_int_equal(pgcw_l1_new(NULL, &c), PGCW_OK);
    pgcw_l1_ticket t;
    pgcw_l1_ticket_take(c, "k", 1, &t);
    assert_int_equal(pgcw_l1_invalidate(c, "k", 1, 5), PGCW_ENOTFOUND);
    bool stored = true;
    assert_int_equal(pgcw_l1_fill(c, &t, "k", 1, "v", 1, 1, 0, &stored), PGCW_OK);
    assert_false(stored);
    pgcw_l1_free(c);
}

/* An invalidation of version v outdates fills of older versions only: a writer's
 * own notification (v), arriving before its fill of v, does not refuse it; a newer
 * one still does, and so does any higher version seen on the slot before. */
static void test_invalidate_refuses_older_fills_only(void **state)
{
    (void)state;
    pgcw_l1 *c;
    assert_int_equal(pgcw_l1_new(NULL, &c), PGCW_OK);
    pgcw_l1_ticket t;
    bool stored = false;
    pgcw_l1_ticket_take(c, "k", 1, &t);
    assert_int_equal(pgcw_l1_invalidate(c, "k", 1, 5), PGCW_ENOTFOUND);
    assert_int_equal(pgcw_l1_fill(c, &t, "k", 1, "v5", 2, 5, 0, &stored), PGCW_OK);
    assert_true(stored); /* the same version: current */
    pgcw_l1_ticket_take(c, "k", 1, &t);
    assert_int_equal(pgcw_l1_invalidate(c, "k", 1, 7), PGCW_OK); /* evicts v5 */
    assert_int_equal(pgcw_l1_fill(c, &t, "k", 1, "v6", 2, 6, 0, &stored), PGCW_OK);
    assert_false(stored); /* older than what was announced */
    pgcw_l1_ticket_take(c, "k", 1, &t);
    assert_int_equal(pgcw_l1_invalidate(c, "k", 1, 2), PGCW_ENOTFOUND);
    assert_int_equal(pgcw_l1_fill(c, &t, "k", 1, "v6", 2, 6, 0, &stored), PGCW_OK);
    assert_false(stored); /* the slot's highest invalidated version (7) is above 6 */
    assert_int_equal(pgcw_l1_fill(c, &t, "k", 1, "v7", 2, 7, 0, &stored), PGCW_OK);
    assert_true(stored);
    /* A delete since the ticket refuses whatever the version. */
    pgcw_l1_ticket_take(c, "k", 1, &t);
    assert_int_equal(pgcw_l1_delete(c, "k", 1), PGCW_OK);
    assert_int_equal(pgcw_l1_fill(c, &t, "k", 1, "v9", 2, 9, 0, &stored), PGCW_OK);
    assert_false(stored);
    pgcw_l1_free(c);
}

static void test_versions(void **state)
{
    (void)state;
    pgcw_l1 *c;
    assert_int_equal(pgcw_l1_new(NULL, &c), PGCW_OK);
    assert_int_equal(pgcw_l1_set(c, "k", 1, "v5", 2, 5, PGCW_L1_TTL_NONE), PGCW_OK);
    /* Not older than 5 or 4: kept. */
    assert_int_equal(pgcw_l1_invalidate(c, "k", 1, 5), PGCW_ENOTFOUND);
    assert_int_equal(pgcw_l1_invalidate(c, "k", 1, 4), PGCW_ENOTFOUND);
    char buf[8];
    size_t len;
    int64_t v = 0;
    assert_int_equal(pgcw_l1_get(c, "k", 1, buf, sizeof(buf), &len, &v), PGCW_OK);
    assert_int_equal(v, 5);
    /* Two concurrent fills: both tickets are valid, the newer version stays. */
    pgcw_l1_ticket t1, t2;
    assert_int_equal(pgcw_l1_invalidate(c, "k", 1, 6), PGCW_OK);
    pgcw_l1_ticket_take(c, "k", 1, &t1);
    pgcw_l1_ticket_take(c, "k", 1, &t2);
    bool stored = false;
    assert_int_equal(pgcw_l1_fill(c, &t2, "k", 1, "v8", 2, 8, 0, &stored), PGCW_OK);
    assert_true(stored);
    assert_int_equal(pgcw_l1_fill(c, &t1, "k", 1, "v7", 2, 7, 0, &stored), PGCW_OK);
    assert_false(stored); /* older than what is there */
    assert_int_equal(pgcw_l1_get(c, "k", 1, buf, sizeof(buf), &len, &v), PGCW_OK);
    assert_int_equal(v, 8);
    assert_memory_equal(buf, "v8", 2);
    /* delete always removes. */
    assert_int_equal(pgcw_l1_delete(c, "k", 1), PGCW_OK);
    assert_int_equal(pgcw_l1_delete(c, "k", 1), PGCW_ENOTFOUND);
    pgcw_l1_stats s;
    pgcw_l1_stats_get(c, &s);
    assert_int_equal(s.invalidations, 1);
    assert_int_equal(s.deletes, 1);
    assert_int_equal(s.refused_fills, 1);
    assert_int_equal(s.inserts, 2);
    pgcw_l1_free(c);
}

/* A ticket taken for one key cannot fill another. */
static void test_ticket_is_per_key(void **state)
{
    (void)state;
    pgcw_l1 *c;
    assert_int_equal(pgcw_l1_new(NULL, &c), PGCW_OK);
    pgcw_l1_ticket t;
    pgcw_l1_ticket_take(c, "a", 1, &t);
    bool stored = true;
    assert_int_equal(pgcw_l1_fill(c, &t, "b", 1, "v", 1, 1, 0, &stored), PGCW_EINVAL);
    assert_false(stored);
    assert_int_equal(pgcw_l1_fill(c, &t, "a", 1, "v", 1, 1, 0, &stored), PGCW_OK);
    assert_true(stored);
    pgcw_l1_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_invalidate_during_fill),
        cmocka_unit_test(test_delete_during_fill),
        cmocka_unit_test(test_set_during_fill),
        cmocka_unit_test(test_clear_during_fill),
        cmocka_unit_test(test_invalidate_absent_key_refuses),
        cmocka_unit_test(test_invalidate_refuses_older_fills_only),
        cmocka_unit_test(test_versions),
        cmocka_unit_test(test_ticket_is_per_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
