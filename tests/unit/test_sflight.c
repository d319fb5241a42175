/*
 * test_sflight.c - single flight (core_sflight.h) with many threads: one leader per
 * key, every waiter gets the leader's outcome (its own copy), failures and their
 * messages reach every waiter, detaching starts a new flight without disturbing
 * those already joined, a waiter's deadline, the re-check that prevents a second
 * load, and never two loads of one key at once under a random mix of loads and
 * evictions (run under TSan and ASan too).
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <pgcachewatch/pgcachewatch.h>

#include "pgcw_testhook.h"

static pgcw__sflight *new_group(void)
{
    pgcw__sflight *g = NULL;
    assert_int_equal(pgcw__sflight_new(&g), PGCW_OK);
    return g;
}

static pgcw__flight *join(pgcw__sflight *g, const char *key, pgcw__flight_role want)
{
    pgcw__flight *f = (pgcw__flight *)1;
    pgcw__flight_role role;
    assert_int_equal(pgcw__sflight_join(g, key, strlen(key), NULL, NULL, &f, &role),
                     PGCW_OK);
    assert_int_equal(role, want);
    assert_non_null(f);
    return f;
}

static void expect_outcome(pgcw__flight *f, const char *want)
{
    void *v = NULL;
    size_t len = 0;
    char *msg = (char *)"junk";
    assert_int_equal(pgcw__flight_wait(f, PGCW__NEVER, &v, &len, &msg), PGCW_OK);
    assert_null(msg);
    assert_int_equal(len, strlen(want));
    assert_memory_equal(v, want, len);
    assert_int_equal(((char *)v)[len], '\0');
    free(v);
}

static void test_lead_wait_finish(void **state)
{
    (void)state;
    pgcw__sflight *g = new_group();
    pgcw__flight *lead = join(g, "k", PGCW__FLIGHT_LEAD);
    pgcw__flight *w1 = join(g, "k", PGCW__FLIGHT_WAIT);
    pgcw__flight *w2 = join(g, "k", PGCW__FLIGHT_WAIT);
    pgcw__flight *other = join(g, "other", PGCW__FLIGHT_LEAD);
    assert_int_equal(pgcw__sflight_attached(g), 2);
    /* Keys are bytes: an embedded NUL makes another key. */
    pgcw__flight *nul = NULL;
    pgcw__flight_role role;
    assert_int_equal(pgcw__sflight_join(g, "k\0x", 3, NULL, NULL, &nul, &role), PGCW_OK);
    assert_int_equal(role, PGCW__FLIGHT_LEAD);
    assert_int_equal(pgcw__flight_finish(nul, PGCW_OK, "n", 1, NULL), 0);

    assert_int_equal(pgcw__flight_finish(lead, PGCW_OK, "value", 5, NULL), 2);
    assert_int_equal(pgcw__sflight_attached(g), 1);
    expect_outcome(w1, "value");
    expect_outcome(w2, "value");
    /* Finished: the next caller of the key leads a new flight. */
    pgcw__flight *again = join(g, "k", PGCW__FLIGHT_LEAD);
    assert_int_equal(pgcw__flight_finish(again, PGCW_OK, "", 0, NULL), 0);
    assert_int_equal(pgcw__flight_finish(other, PGCW_OK, "o", 1, NULL), 0);
    assert_int_equal(pgcw__sflight_attached(g), 0);
    pgcw__sflight_free(g);
    pgcw__sflight_free(NULL);
}

static void test_failure_reaches_every_waiter(void **state)
{
    (void)state;
    pgcw__sflight *g = new_group();
    pgcw__flight *lead = join(g, "k", PGCW__FLIGHT_LEAD);
    pgcw__flight *w[3];
    for (int i = 0; i < 3; i++)
        w[i] = join(g, "k", PGCW__FLIGHT_WAIT);
    pgcw__flight_finish(lead, PGCW_EQUERY, NULL, 0, "relation \"t\" does not exist");
    char *msgs[3];
    for (int i = 0; i < 3; i++) {
        void *v = (void *)1;
        size_t len = 9;
        assert_int_equal(pgcw__flight_wait(w[i], PGCW__NEVER, &v, &len, &msgs[i]),
                         PGCW_EQUERY);
        assert_null(v);
        assert_int_equal(len, 0);
        assert_string_equal(msgs[i], "relation \"t\" does not exist");
        for (int j = 0; j < i; j++)
            assert_ptr_not_equal(msgs[i], msgs[j]); /* each its own copy */
    }
    for (int i = 0; i < 3; i++)
        free(msgs[i]);
    /* Without a message; and a waiter may not want one. */
    lead = join(g, "k", PGCW__FLIGHT_LEAD);
    pgcw__flight *a = join(g, "k", PGCW__FLIGHT_WAIT),
                 *b = join(g, "k", PGCW__FLIGHT_WAIT);
    pgcw__flight_finish(lead, PGCW_ELOADER, NULL, 0, NULL);
    void *v;
    size_t len;
    char *msg = (char *)"junk";
    assert_int_equal(pgcw__flight_wait(a, PGCW__NEVER, &v, &len, &msg), PGCW_ELOADER);
    assert_null(msg);
    assert_int_equal(pgcw__flight_wait(b, PGCW__NEVER, &v, &len, NULL), PGCW_ELOADER);
    pgcw__sflight_free(g);
}

static void test_detach(void **state)
{
    (void)state;
    pgcw__sflight *g = new_group();
    pgcw__flight *old = join(g, "k", PGCW__FLIGHT_LEAD);
    pgcw__flight *old_waiter = join(g, "k", PGCW__FLIGHT_WAIT);
    pgcw__sflight_detach(g, "k", 1);
    pgcw__sflight_detach(g, "absent", 6); /* nothing to do */
    assert_int_equal(pgcw__sflight_attached(g), 0);
    /* After the detach a caller starts afresh ... */
    pgcw__flight *fresh = join(g, "k", PGCW__FLIGHT_LEAD);
    pgcw__flight *fresh_waiter = join(g, "k", PGCW__FLIGHT_WAIT);
    /* ... while those who joined before still get the old outcome. */
    assert_int_equal(pgcw__flight_finish(old, PGCW_OK, "old", 3, NULL), 1);
    expect_outcome(old_waiter, "old");
    assert_int_equal(pgcw__sflight_attached(g), 1); /* the old leader did not touch it */
    assert_int_equal(pgcw__flight_finish(fresh, PGCW_OK, "new", 3, NULL), 1);
    expect_outcome(fresh_waiter, "new");

    pgcw__flight *x = join(g, "x", PGCW__FLIGHT_LEAD),
                 *y = join(g, "y", PGCW__FLIGHT_LEAD);
    pgcw__sflight_detach_all(g);
    assert_int_equal(pgcw__sflight_attached(g), 0);
    pgcw__flight *x2 = join(g, "x", PGCW__FLIGHT_LEAD);
    pgcw__flight_finish(x, PGCW_OK, "", 0, NULL);
    pgcw__flight_finish(y, PGCW_OK, "", 0, NULL);
    pgcw__flight_finish(x2, PGCW_OK, "", 0, NULL);
    pgcw__sflight_free(g);
}

static bool says_found(void *ctx)
{
    atomic_int *calls = ctx;
    atomic_fetch_add(calls, 1);
    return true;
}

static void test_recheck(void **state)
{
    (void)state;
    pgcw__sflight *g = new_group();
    atomic_int calls = 0;
    pgcw__flight *f = (pgcw__flight *)1;
    pgcw__flight_role role;
    assert_int_equal(pgcw__sflight_join(g, "k", 1, says_found, &calls, &f, &role),
                     PGCW_OK);
    assert_int_equal(role, PGCW__FLIGHT_FOUND);
    assert_null(f);
    assert_int_equal(pgcw__sflight_attached(g), 0);
    /* A flight in progress is joined without asking. */
    pgcw__flight *lead = join(g, "k", PGCW__FLIGHT_LEAD);
    assert_int_equal(pgcw__sflight_join(g, "k", 1, says_found, &calls, &f, &role),
                     PGCW_OK);
    assert_int_equal(role, PGCW__FLIGHT_WAIT);
    assert_int_equal(atomic_load(&calls), 1);
    pgcw__flight_finish(lead, PGCW_OK, "v", 1, NULL);
    expect_outcome(f, "v");
    pgcw__sflight_free(g);
}

static void test_wait_deadline(void **state)
{
    (void)state;
    pgcw__sflight *g = new_group();
    pgcw__flight *lead = join(g, "k", PGCW__FLIGHT_LEAD);
    pgcw__flight *w = join(g, "k", PGCW__FLIGHT_WAIT);
    int64_t t0 = pgcw__mono_us();
    void *v;
    size_t len;
    assert_int_equal(pgcw__flight_wait(w, pgcw__deadline_in_ms(50), &v, &len, NULL),
                     PGCW_ETIMEDOUT);
    int64_t took = pgcw__mono_us() - t0;
    assert_true(took >= 50000 && took < 5000000);
    /* The flight goes on without it (and nothing leaks: ASan/LSan). */
    pgcw__flight *late = join(g, "k", PGCW__FLIGHT_WAIT);
    pgcw__flight_finish(lead, PGCW_OK, "v", 1, NULL);
    expect_outcome(late, "v");
    pgcw__sflight_free(g);
}

/* --- many threads on one key ------------------------------------------------------ */

#define THREADS 24

typedef struct crowd {
    pgcw__sflight *g;
    atomic_int joined;
    atomic_int leaders;
    atomic_int got_value;
} crowd;

static void *crowd_member(void *arg)
{
    crowd *c = arg;
    pgcw__flight *f = NULL;
    pgcw__flight_role role;
    assert_int_equal(pgcw__sflight_join(c->g, "hot", 3, NULL, NULL, &f, &role), PGCW_OK);
    atomic_fetch_add(&c->joined, 1);
    if (role == PGCW__FLIGHT_LEAD) {
        atomic_fetch_add(&c->leaders, 1);
        /* Load only once everyone is in, so all of them must wait for it. */
        while (atomic_load(&c->joined) < THREADS)
            pgcw__sleep_us(100);
        pgcw__flight_finish(f, PGCW_OK, "loaded once", 11, NULL);
        atomic_fetch_add(&c->got_value, 1);
        return NULL;
    }
    void *v = NULL;
    size_t len = 0;
    if (pgcw__flight_wait(f, PGCW__NEVER, &v, &len, NULL) == PGCW_OK && len == 11 &&
        memcmp(v, "loaded once", 11) == 0)
        atomic_fetch_add(&c->got_value, 1);
    free(v);
    return NULL;
}

static void test_one_leader_many_waiters(void **state)
{
    (void)state;
    for (int round = 0; round < 20; round++) {
        crowd c = {.g = new_group()};
        pthread_t t[THREADS];
        for (int i = 0; i < THREADS; i++)
            assert_int_equal(pthread_create(&t[i], NULL, crowd_member, &c), 0);
        for (int i = 0; i < THREADS; i++)
            pthread_join(t[i], NULL);
        assert_int_equal(atomic_load(&c.leaders), 1);
        assert_int_equal(atomic_load(&c.got_value), THREADS);
        assert_int_equal(pgcw__sflight_attached(c.g), 0);
        pgcw__sflight_free(c.g);
    }
}

/* --- a random mix: never two loads of one key at once ---------------------------- */

#define KEYS 16
#define MIX_THREADS 8
#define MIX_OPS 3000

typedef struct mix {
    pgcw__sflight *g;
    pthread_mutex_t store_mu;
    int store[KEYS];          /* the "cache": generation of the value, 0 = absent */
    atomic_int loading[KEYS]; /* loads in progress per key: must stay <= 1 */
    atomic_int overlaps, loads, waits, found;
} mix;

typedef struct probe {
    mix *m;
    int k;
} probe;

static bool in_store(void *arg)
{
    probe *p = arg;
    pthread_mutex_lock(&p->m->store_mu);
    bool there = p->m->store[p->k] != 0;
    pthread_mutex_unlock(&p->m->store_mu);
    return there;
}

static void *mix_thread(void *arg)
{
    mix *m = arg;
    unsigned seed = (unsigned)(uintptr_t)&seed;
    for (int i = 0; i < MIX_OPS; i++) {
        int k = (int)(rand_r(&seed) % KEYS);
        char key[8];
        snprintf(key, sizeof key, "k%d", k);
        int dice = (int)(rand_r(&seed) % 10);
        if (dice < 3) { /* the value goes (an eviction): the next caller loads */
            pthread_mutex_lock(&m->store_mu);
            m->store[k] = 0;
            pthread_mutex_unlock(&m->store_mu);
            continue;
        }
        probe p = {m, k};
        if (in_store(&p))
            continue;
        pgcw__flight *f = NULL;
        pgcw__flight_role role;
        assert_int_equal(
            pgcw__sflight_join(m->g, key, strlen(key), in_store, &p, &f, &role), PGCW_OK);
        if (role == PGCW__FLIGHT_FOUND) {
            atomic_fetch_add(&m->found, 1);
        } else if (role == PGCW__FLIGHT_WAIT) {
            atomic_fetch_add(&m->waits, 1);
            void *v;
            size_t len;
            assert_int_equal(pgcw__flight_wait(f, PGCW__NEVER, &v, &len, NULL), PGCW_OK);
            free(v);
        } else {
            atomic_fetch_add(&m->loads, 1);
            /* Nothing detaches here, so a leader is alone on its key until it
             * finishes (test_detach covers the other case). */
            if (atomic_fetch_add(&m->loading[k], 1) != 0)
                atomic_fetch_add(&m->overlaps, 1);
            pgcw__sleep_us(rand_r(&seed) % 50);
            pthread_mutex_lock(&m->store_mu);
            m->store[k] = i + 1;
            pthread_mutex_unlock(&m->store_mu);
            atomic_fetch_sub(&m->loading[k], 1);
            pgcw__flight_finish(f, PGCW_OK, key, strlen(key), NULL);
        }
    }
    return NULL;
}

static void test_random_mix(void **state)
{
    (void)state;
    static mix m; /* large: keep it off the stack */
    memset(&m, 0, sizeof m);
    m.g = new_group();
    pthread_mutex_init(&m.store_mu, NULL);
    pthread_t t[MIX_THREADS];
    for (int i = 0; i < MIX_THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, mix_thread, &m), 0);
    for (int i = 0; i < MIX_THREADS; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(pgcw__sflight_attached(m.g), 0);
    assert_true(atomic_load(&m.loads) > 0);
    assert_true(atomic_load(&m.waits) > 0); /* the mix did contend */
    assert_int_equal(atomic_load(&m.overlaps), 0);
    print_message("loads %d, waits %d, found by re-check %d\n", atomic_load(&m.loads),
                  atomic_load(&m.waits), atomic_load(&m.found));
    pthread_mutex_destroy(&m.store_mu);
    pgcw__sflight_free(m.g);
}

/* Many flights at once: the table grows and every one still completes. */
static void test_many_keys_grow(void **state)
{
    (void)state;
    pgcw__sflight *g = new_group();
    enum { N = 500 };
    pgcw__flight *lead[N], *wait[N];
    char key[16];
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof key, "key-%d", i);
        lead[i] = join(g, key, PGCW__FLIGHT_LEAD);
    }
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof key, "key-%d", i);
        wait[i] = join(g, key, PGCW__FLIGHT_WAIT);
    }
    assert_int_equal(pgcw__sflight_attached(g), N);
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof key, "key-%d", i);
        assert_int_equal(pgcw__flight_finish(lead[i], PGCW_OK, key, strlen(key), NULL),
                         1);
        expect_outcome(wait[i], key);
    }
    assert_int_equal(pgcw__sflight_attached(g), 0);
    pgcw__sflight_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lead_wait_finish),
        cmocka_unit_test(test_failure_reaches_every_waiter),
        cmocka_unit_test(test_detach),
        cmocka_unit_test(test_recheck),
        cmocka_unit_test(test_wait_deadline),
        cmocka_unit_test(test_one_leader_many_waiters),
        cmocka_unit_test(test_random_mix),
        cmocka_unit_test(test_many_keys_grow),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
