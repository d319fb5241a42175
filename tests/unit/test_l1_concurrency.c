/*
 * test_l1_concurrency.c - many threads on one small, evicting cache: gets, sets,
 * fills, invalidates, deletes and clears all at once. Every value encodes its key
 * and version, so a torn or misplaced copy is caught on read; the counters must add
 * up and both bounds must hold at the end (and TSan must stay quiet throughout).
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <pgcachewatch/l1.h>

#define THREADS 4
#define OPS 200000
#define KEYS 2000

typedef struct worker {
    pgcw_l1 *c;
    unsigned id;
    uint64_t gets, bad;
} worker;

/* Value for (key, version): length and every byte derived from both. */
static size_t make_value(unsigned key, int64_t version, unsigned char *out)
{
    size_t len = 1 + (size_t)((key * 31u + (uint64_t)version) % 200);
    for (size_t i = 0; i < len; i++)
        out[i] = (unsigned char)(key ^ (unsigned)version ^ (unsigned)i);
    return len;
}

static void *work(void *arg)
{
    worker *w = arg;
    uint64_t x = 0x9E3779B97F4A7C15u * (w->id + 1);
    unsigned char val[256], got[256];
    char key[16];
    for (int i = 0; i < OPS; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        unsigned k = (unsigned)(x % KEYS);
        int kl = snprintf(key, sizeof(key), "k%u", k);
        unsigned op = (unsigned)((x >> 32) % 100);
        int64_t ver = (int64_t)((x >> 40) % 1000);
        if (op < 70) {
            size_t len = 0;
            int64_t v = -1;
            w->gets++;
            pgcw_status st =
                pgcw_l1_get(w->c, key, (size_t)kl, got, sizeof(got), &len, &v);
            if (st == PGCW_OK) {
                size_t elen = make_value(k, v, val);
                if (len != elen || memcmp(got, val, len) != 0)
                    w->bad++;
            } else if (st != PGCW_ENOTFOUND) {
                w->bad++;
            }
            if (st == PGCW_ENOTFOUND) {
                pgcw_l1_ticket t;
                pgcw_l1_ticket_take(w->c, key, (size_t)kl, &t);
                size_t len2 = make_value(k, ver, val);
                if (pgcw_l1_fill(w->c, &t, key, (size_t)kl, val, len2, ver,
                                 op % 2 ? 1000000 : PGCW_L1_TTL_NONE, NULL) != PGCW_OK)
                    w->bad++;
            }
        } else if (op < 90) {
            size_t len = make_value(k, ver, val);
            if (pgcw_l1_set(w->c, key, (size_t)kl, val, len, ver, PGCW_L1_TTL_NONE) !=
                PGCW_OK)
                w->bad++;
        } else if (op < 95) {
            (void)pgcw_l1_invalidate(w->c, key, (size_t)kl, ver);
        } else if (op < 99 || i % 1000 != 0) {
            (void)pgcw_l1_delete(w->c, key, (size_t)kl);
        } else {
            pgcw_l1_clear(w->c);
        }
    }
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    pgcw_l1_opts o = {.max_entries = 512, .max_bytes = 96 * 1024, .shards = 4};
    pgcw_l1 *c;
    assert_int_equal(pgcw_l1_new(&o, &c), PGCW_OK);
    pthread_t th[THREADS];
    worker w[THREADS];
    for (unsigned i = 0; i < THREADS; i++) {
        w[i] = (worker){.c = c, .id = i};
        assert_int_equal(pthread_create(&th[i], NULL, work, &w[i]), 0);
    }
    uint64_t gets = 0;
    for (unsigned i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(w[i].bad, 0);
        gets += w[i].gets;
    }
    pgcw_l1_stats s;
    pgcw_l1_stats_get(c, &s);
    assert_int_equal(s.hits + s.misses, gets);
    assert_true(s.hits > 0 && s.evictions > 0 && s.refused_fills > 0);
    assert_true(s.held_entries <= 512 && s.held_bytes <= 96 * 1024);
    pgcw_l1_free(c);
}

/* Lock-free readers on a few hot keys while writers replace them all the time:
 * every replaced entry is freed while readers may be copying it, so a reclamation
 * bug shows up as a torn value here or a use-after-free under ASan. */
typedef struct hot {
    pgcw_l1 *c;
    _Atomic bool stop;
    unsigned id;
    uint64_t reads, bad;
} hot;

static void *hot_reader(void *arg)
{
    hot *h = arg;
    unsigned char got[256], want[256];
    char key[8];
    for (uint64_t i = 0; !atomic_load(&h->stop) || i < 100000; i++) {
        unsigned k = (unsigned)(i % 8);
        int kl = snprintf(key, sizeof(key), "h%u", k);
        size_t len;
        int64_t v;
        if (pgcw_l1_get(h->c, key, (size_t)kl, got, sizeof(got), &len, &v) == PGCW_OK) {
            size_t elen = make_value(k, v, want);
            h->bad += len != elen || memcmp(got, want, len) != 0;
        }
        h->reads++;
    }
    return NULL;
}

static void test_readers_during_replacement(void **state)
{
    (void)state;
    pgcw_l1_opts o = {.max_entries = 64, .shards = 1};
    hot h[2];
    pgcw_l1 *c;
    assert_int_equal(pgcw_l1_new(&o, &c), PGCW_OK);
    pthread_t th[2];
    for (unsigned i = 0; i < 2; i++) {
        h[i] = (hot){.c = c, .id = i};
        atomic_init(&h[i].stop, false);
        assert_int_equal(pthread_create(&th[i], NULL, hot_reader, &h[i]), 0);
    }
    unsigned char val[256];
    char key[8];
    for (int64_t v = 1; v <= 200000; v++) {
        unsigned k = (unsigned)(v % 8);
        int kl = snprintf(key, sizeof(key), "h%u", k);
        size_t len = make_value(k, v, val);
        assert_int_equal(pgcw_l1_set(c, key, (size_t)kl, val, len, v, PGCW_L1_TTL_NONE),
                         PGCW_OK);
        if (v % 50000 == 0)
            pgcw_l1_clear(c);
    }
    for (unsigned i = 0; i < 2; i++) {
        atomic_store(&h[i].stop, true);
        pthread_join(th[i], NULL);
        assert_int_equal(h[i].bad, 0);
        assert_true(h[i].reads >= 100000);
    }
    pgcw_l1_stats s;
    pgcw_l1_stats_get(c, &s);
    assert_true(s.hits > 0);
    assert_true(s.held_entries <= 64);
    pgcw_l1_free(c);
}

/* More threads than reader slots, all alive at once: the ones without a slot read
 * under the shard lock, and every answer is still right. */
#define MANY 80

typedef struct many {
    pgcw_l1 *c;
    pthread_barrier_t *all_in;
    unsigned id;
    uint64_t bad;
} many;

static void *many_main(void *arg)
{
    many *m = arg;
    unsigned char val[256], got[256];
    char key[16];
    pthread_barrier_wait(m->all_in); /* nobody exits (and frees a slot) early */
    for (unsigned i = 0; i < 2000; i++) {
        unsigned k = (i * 7u + m->id) % 50;
        int kl = snprintf(key, sizeof(key), "m%u", k);
        size_t len;
        int64_t v;
        if (i % 10 == 0) {
            size_t n = make_value(k, (int64_t)i, val);
            if (pgcw_l1_set(m->c, key, (size_t)kl, val, n, (int64_t)i, 0) != PGCW_OK)
                m->bad++;
        } else if (pgcw_l1_get(m->c, key, (size_t)kl, got, sizeof(got), &len, &v) ==
                   PGCW_OK) {
            size_t n = make_value(k, v, val);
            m->bad += len != n || memcmp(got, val, n) != 0;
        }
    }
    pthread_barrier_wait(m->all_in);
    return NULL;
}

static void test_more_threads_than_slots(void **state)
{
    (void)state;
    pgcw_l1 *c;
    assert_int_equal(pgcw_l1_new(NULL, &c), PGCW_OK);
    pthread_barrier_t all_in;
    pthread_barrier_init(&all_in, NULL, MANY);
    static many m[MANY];
    pthread_t th[MANY];
    for (unsigned i = 0; i < MANY; i++) {
        m[i] = (many){.c = c, .all_in = &all_in, .id = i};
        assert_int_equal(pthread_create(&th[i], NULL, many_main, &m[i]), 0);
    }
    for (unsigned i = 0; i < MANY; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(m[i].bad, 0);
    }
    pthread_barrier_destroy(&all_in);
    pgcw_l1_stats s;
    pgcw_l1_stats_get(c, &s);
    assert_int_equal(s.hits + s.misses, (uint64_t)MANY * 1800);
    pgcw_l1_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_threads),
                                       cmocka_unit_test(test_readers_during_replacement),
                                       cmocka_unit_test(test_more_threads_than_slots)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
