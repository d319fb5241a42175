/*
 * test_l1_model.c - the L1 against a trivial reference model (an array indexed by
 * key number with the same rules) for millions of random operations: get, set,
 * delete, invalidate, ticket + fill, clear, clock advances (TTL via an injectable
 * clock), and statistics. Every answer is compared.
 *
 * Exact mode: the cache is large enough never to evict, so every answer and every
 * counter must match the model exactly (and evictions must stay 0). Eviction mode:
 * a small cache; a miss where the model has a live value is accepted as an
 * eviction (the model forgets it), but a returned value must be the model's, and
 * both bounds are checked after every operation.
 *
 * PGCW_L1_SEED and PGCW_L1_MODEL_OPS override the seed and the operation count.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <pgcachewatch/l1.h>

#include "pgcw_testhook.h"

#define NKEYS 300
#define MAXV 64
#define MAXT 64

typedef struct mentry {
    bool present;
    bool ttl;
    int64_t expiry;
    int64_t version;
    size_t len;
    unsigned char val[MAXV];
} mentry;

typedef struct mticket {
    int key;
    pgcw_l1_ticket t;
    uint64_t epoch;
    uint64_t hard, soft;
} mticket;

typedef struct model {
    mentry e[NKEYS];
    uint64_t *gens;   /* per global gen slot: sets and deletes */
    uint64_t *softs;  /* invalidations */
    int64_t *inv_max; /* the highest version invalidated (starts at 0, as the L1) */
    size_t ngens;
    uint64_t epoch;
    pgcw_l1_stats st; /* expected counters */
    mticket tickets[MAXT];
    int nt;
} model;

static int64_t g_now;
static uint64_t g_rng;

static int64_t test_clock(void *ctx)
{
    (void)ctx;
    return g_now;
}

static uint64_t rnd(void)
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return g_rng;
}

static unsigned rn(unsigned n)
{
    return (unsigned)(rnd() % n);
}

static size_t keystr(int k, char *buf)
{
    /* Lengths vary (and one key is empty) so layouts differ across keys. */
    if (k == 0)
        return 0;
    return (size_t)snprintf(buf, 32, "key-%d%.*s", k, k % 7, "xxxxxxx");
}

static uint64_t env_u64(const char *name, uint64_t dflt)
{
    const char *v = getenv(name);
    return v && *v ? strtoull(v, NULL, 0) : dflt;
}

static uint64_t slot_of(pgcw_l1 *c, model *m, int k)
{
    char kb[32];
    size_t kl = keystr(k, kb);
    uint64_t s = pgcw__l1_gen_slot(c, kb, kl);
    assert_true(s < m->ngens);
    return s;
}

/* Model lookup with the cache's rule: an expired entry found by an operation is
 * removed and counted. */
static mentry *mfind(model *m, int k)
{
    mentry *e = &m->e[k];
    if (!e->present)
        return NULL;
    if (e->ttl && e->expiry <= g_now) {
        e->present = false;
        m->st.expirations++;
        return NULL;
    }
    return e;
}

static void check_stats(pgcw_l1 *c, model *m, bool exact, const char **kb, size_t *kl)
{
    pgcw_l1_stats s;
    pgcw_l1_stats_get(c, &s);
    assert_true(s.held_entries <= s.max_entries);
    assert_true(s.held_bytes <= s.max_bytes);
    assert_true(s.entries <= s.held_entries);
    assert_true(s.bytes <= s.held_bytes);
    if (!exact)
        return;
    assert_int_equal(s.hits, m->st.hits);
    assert_int_equal(s.misses, m->st.misses);
    assert_int_equal(s.inserts, m->st.inserts);
    assert_int_equal(s.refused_fills, m->st.refused_fills);
    assert_int_equal(s.evictions, 0);
    assert_int_equal(s.expirations, m->st.expirations);
    assert_int_equal(s.invalidations, m->st.invalidations);
    assert_int_equal(s.deletes, m->st.deletes);
    assert_int_equal(s.clears, m->epoch);
    size_t n = 0, bytes = 0;
    for (int k = 0; k < NKEYS; k++)
        if (m->e[k].present) {
            n++;
            bytes += pgcw_l1_entry_cost(kl[k], m->e[k].len, m->e[k].ttl);
        }
    (void)kb;
    assert_int_equal(s.entries, n);
    assert_int_equal(s.bytes, bytes);
}

static void run_model(bool exact, uint64_t ops)
{
    uint64_t seed = env_u64("PGCW_L1_SEED", 0x5eed1234abcdULL) + (exact ? 0 : 1);
    g_rng = seed ? seed : 1;
    g_now = 1000;
    pgcw_l1_opts o = {.clock = test_clock, .default_ttl_us = 100};
    if (exact) {
        o.max_entries = 2048; /* 16 shards x 128: 300 keys never fill a shard */
        o.max_bytes = 64u << 20;
    } else {
        o.max_entries = 48;
        o.max_bytes = 48 * 80;
    }
    pgcw_l1 *c = NULL;
    assert_int_equal(pgcw_l1_new(&o, &c), PGCW_OK);
    model *m = calloc(1, sizeof(*m));
    assert_non_null(m);
    pgcw_l1_stats s0;
    pgcw_l1_stats_get(c, &s0);
    m->ngens = (size_t)s0.shards * 65536;
    m->gens = calloc(m->ngens, sizeof(*m->gens));
    m->softs = calloc(m->ngens, sizeof(*m->softs));
    m->inv_max = calloc(m->ngens, sizeof(*m->inv_max));
    assert_non_null(m->gens);
    assert_non_null(m->softs);
    assert_non_null(m->inv_max);

    char keys[NKEYS][32];
    const char *kb[NKEYS];
    size_t kl[NKEYS];
    uint64_t slots[NKEYS];
    for (int k = 0; k < NKEYS; k++) {
        kl[k] = keystr(k, keys[k]);
        kb[k] = keys[k];
        slots[k] = slot_of(c, m, k);
    }
    int64_t vcounter = 1;
    uint64_t evicted_seen = 0;
    unsigned char buf[MAXV], val[MAXV];

    for (uint64_t i = 0; i < ops; i++) {
        int k = (int)rn(NKEYS);
        unsigned op = rn(1000);
        if (op < 400) { /* get */
            size_t len = 0;
            int64_t ver = 0;
            bool tiny = rn(20) == 0;
            pgcw_status st =
                pgcw_l1_get(c, kb[k], kl[k], buf, tiny ? 0 : sizeof(buf), &len, &ver);
            mentry *e = mfind(m, k);
            if (st == PGCW_ETOOBIG) {
                assert_true(tiny);
                assert_non_null(e);
                assert_true(e->len > 0);
                assert_int_equal(len, e->len);
                continue;
            }
            if (st == PGCW_OK) {
                assert_non_null(e);
                assert_int_equal(len, e->len);
                assert_int_equal(ver, e->version);
                assert_memory_equal(buf, e->val, len);
                m->st.hits++;
            } else {
                assert_int_equal(st, PGCW_ENOTFOUND);
                if (e) {
                    assert_false(exact);
                    e->present = false;
                    evicted_seen++;
                }
                m->st.misses++;
            }
        } else if (op < 550) { /* set */
            size_t len = rn(MAXV + 1);
            for (size_t j = 0; j < len; j++)
                val[j] = (unsigned char)rnd();
            int64_t ver = exact ? (int64_t)rn(50) : vcounter++;
            unsigned t = rn(3);
            int64_t ttl = t == 0 ? PGCW_L1_TTL_NONE : t == 1 ? 0 : (int64_t)(1 + rn(300));
            assert_int_equal(pgcw_l1_set(c, kb[k], kl[k], val, len, ver, ttl), PGCW_OK);
            mentry *e = &m->e[k];
            e->present = true;
            e->ttl = t != 0;
            e->expiry = g_now + (t == 1 ? 100 : ttl);
            e->version = ver;
            e->len = len;
            memcpy(e->val, val, len);
            m->gens[slots[k]]++;
            m->st.inserts++;
        } else if (op < 600 || op < 680) { /* delete / invalidate */
            bool del = op < 600;
            int64_t v = exact ? (int64_t)rn(50) : vcounter - 5 + (int64_t)rn(10);
            pgcw_status st = del ? pgcw_l1_delete(c, kb[k], kl[k])
                                 : pgcw_l1_invalidate(c, kb[k], kl[k], v);
            mentry *e = mfind(m, k);
            bool eligible = e && (del || e->version < v);
            if (del) {
                m->gens[slots[k]]++;
            } else {
                m->softs[slots[k]]++;
                if (m->inv_max[slots[k]] < v)
                    m->inv_max[slots[k]] = v;
            }
            if (st == PGCW_OK) {
                assert_true(eligible);
                e->present = false;
                if (del)
                    m->st.deletes++;
                else
                    m->st.invalidations++;
            } else {
                assert_int_equal(st, PGCW_ENOTFOUND);
                if (eligible) {
                    assert_false(exact);
                    e->present = false;
                    evicted_seen++;
                }
            }
        } else if (op < 760) { /* take a ticket */
            if (m->nt == MAXT)
                continue;
            mticket *t = &m->tickets[m->nt++];
            t->key = k;
            pgcw_l1_ticket_take(c, kb[k], kl[k], &t->t);
            t->epoch = m->epoch;
            t->hard = m->gens[slots[k]];
            t->soft = m->softs[slots[k]];
        } else if (op < 860) { /* fill with a pending ticket */
            if (m->nt == 0)
                continue;
            int ti = (int)rn((unsigned)m->nt);
            mticket t = m->tickets[ti];
            m->tickets[ti] = m->tickets[--m->nt];
            k = t.key;
            size_t len = rn(MAXV + 1);
            for (size_t j = 0; j < len; j++)
                val[j] = (unsigned char)rnd();
            int64_t ver = exact ? (int64_t)rn(50) : vcounter++;
            bool ttl = rn(2);
            bool stored = true;
            if (rn(50) == 0) { /* a ticket for another key is refused outright */
                int other = (k + 1) % NKEYS;
                assert_int_equal(pgcw_l1_fill(c, &t.t, kb[other], kl[other], val, len,
                                              ver, PGCW_L1_TTL_NONE, &stored),
                                 PGCW_EINVAL);
                assert_false(stored);
            }
            assert_int_equal(pgcw_l1_fill(c, &t.t, kb[k], kl[k], val, len, ver,
                                          ttl ? 50 : PGCW_L1_TTL_NONE, &stored),
                             PGCW_OK);
            /* An invalidation since the ticket refuses only a fill older than the
             * slot's highest invalidated version. */
            bool fresh = t.epoch == m->epoch && t.hard == m->gens[slots[k]] &&
                         (t.soft == m->softs[slots[k]] || m->inv_max[slots[k]] <= ver);
            mentry *e = mfind(m, k);
            bool expect = fresh && !(e && e->version > ver);
            assert_int_equal(stored, expect);
            if (expect) {
                e = &m->e[k];
                e->present = true;
                e->ttl = ttl;
                e->expiry = g_now + 50;
                e->version = ver;
                e->len = len;
                memcpy(e->val, val, len);
                m->st.inserts++;
            } else {
                m->st.refused_fills++;
            }
        } else if (op < 863) { /* clear */
            pgcw_l1_clear(c);
            for (int j = 0; j < NKEYS; j++)
                m->e[j].present = false;
            m->epoch++;
            assert_int_equal(pgcw_l1_epoch(c), m->epoch);
        } else if (op < 990) { /* time passes */
            g_now += rn(40);
        } else {
            check_stats(c, m, exact, kb, kl);
        }
        if (!exact && rn(8) == 0)
            check_stats(c, m, exact, kb, kl);
    }
    check_stats(c, m, exact, kb, kl);
    pgcw_l1_stats s;
    pgcw_l1_stats_get(c, &s);
    if (!exact) {
        /* The small cache really evicted, and every counted removal that the model
         * did not predict was an eviction or an expiry the cache found first. */
        assert_true(s.evictions > 1000);
        assert_true(evicted_seen <= s.evictions + s.expirations);
        assert_int_equal(s.inserts, m->st.inserts);
        assert_int_equal(s.refused_fills, m->st.refused_fills);
        assert_int_equal(s.hits, m->st.hits);
        assert_int_equal(s.misses, m->st.misses);
    }
    free(m->gens);
    free(m->softs);
    free(m->inv_max);
    free(m);
    pgcw_l1_free(c);
}

static void test_exact(void **state)
{
    (void)state;
    run_model(true, env_u64("PGCW_L1_MODEL_OPS", 2000000));
}

static void test_evicting(void **state)
{
    (void)state;
    run_model(false, env_u64("PGCW_L1_MODEL_OPS", 2000000));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exact),
        cmocka_unit_test(test_evicting),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
