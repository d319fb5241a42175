/*
 * test_l1_lanes.c - writer lanes (src/l1/l1_internal.h): slots a thread's writes
 * retired go back to its lane and are reused by it first, but not only by it: once
 * that thread stops writing, another lane's writers take them before carving new
 * memory, so no lane strands what it released.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <pgcachewatch/l1.h>

#include "pgcw_testhook.h"

typedef struct churn {
    pgcw_l1 *c;
    int from, n;
    bool leave_released; /* go on until the lane holds released slots */
    unsigned lane;
} churn;

/* Shards where the lane has released slots (only the list heads are read: free
 * slots are poisoned under ASan). */
static size_t released_on(pgcw_l1 *c, unsigned lane)
{
    size_t n = 0;
    for (unsigned i = 0; i < c->nshards; i++)
        n += c->shards[i].lanes[lane].released != NULL;
    return n;
}

/* Replaces keys k0..k999 over and over: every set retires the entry it replaced
 * (or one it evicted), so released slots flow back to this thread's lane. */
static void *run_churn(void *arg)
{
    churn *ch = arg;
    char key[32], val[40];
    memset(val, 'v', sizeof val);
    size_t len;
    (void)pgcw_l1_get(ch->c, "x", 1, val, sizeof val, &len, NULL); /* a reader slot */
    ch->lane = pgcw__l1_lane_of_thread();
    for (int i = ch->from; i < ch->from + ch->n ||
                           (ch->leave_released && released_on(ch->c, ch->lane) == 0);
         i++) {
        int n = snprintf(key, sizeof key, "k%d", i % 1000);
        assert_int_equal(pgcw_l1_set(ch->c, key, (size_t)n, val, 1 + (size_t)(i % 40), i,
                                     PGCW_L1_TTL_NONE),
                         PGCW_OK);
    }
    return NULL;
}

static void test_released_slots_reused_across_lanes(void **state)
{
    (void)state;
    pgcw_l1_opts o = {.max_entries = 600, .max_bytes = 1u << 20, .shards = 2};
    pgcw_l1 *c;
    assert_int_equal(pgcw_l1_new(&o, &c), PGCW_OK);
    /* This thread takes a reader slot (and so a lane) before the other starts, so
     * the two are on different lanes. */
    size_t len;
    char buf[64];
    (void)pgcw_l1_get(c, "x", 1, buf, sizeof buf, &len, NULL);
    churn other = {.c = c, .from = 0, .n = 50000, .leave_released = true};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, run_churn, &other), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    unsigned mine = pgcw__l1_lane_of_thread();
    assert_int_not_equal(other.lane, mine);
    assert_true(released_on(c, other.lane) > 0); /* it left slots behind */

    churn me = {.c = c, .from = 50000, .n = 50000};
    (void)run_churn(&me);
    assert_int_equal(released_on(c, other.lane), 0); /* all taken by this lane */
    /* And every key still reads back whole. */
    for (int i = 99000; i < 100000; i++) {
        char key[32];
        int n = snprintf(key, sizeof key, "k%d", i % 1000);
        if (pgcw_l1_get(c, key, (size_t)n, buf, sizeof buf, &len, NULL) == PGCW_OK)
            assert_int_equal(len, 1 + (size_t)(i % 40));
    }
    pgcw_l1_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_released_slots_reused_across_lanes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
