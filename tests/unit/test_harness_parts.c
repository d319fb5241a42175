/*
 * test_harness_parts.c - the two pieces of `pgcachewatch harness` whose figures
 * and verdicts everything else rests on, against trivial references:
 *   - the histogram: every quantile of random samples (1 ns to 60 s, log-uniform)
 *     is the exact quantile's bucket, within 1/128 above it; merging equals
 *     recording everything into one; bucket edges are consistent;
 *   - the checkpoints: against the full log of what was recorded when, a query
 *     never claims a version recorded after its time (so the checker never flags
 *     a read it should not) and always finds every version recorded at least one
 *     spacing before it, within the window the ring covers.
 * No server.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"
#include "harness_hist.h"

static uint64_t rng = 0x853c49e6748fea9bULL;

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Log-uniform from 1 ns to 2^36 ns. */
static uint64_t sample(void)
{
    unsigned bits = (unsigned)(hx_rand(&rng) % 36);
    return 1 + (hx_rand(&rng) & ((1ULL << (bits + 1)) - 1));
}

static void test_hist_quantiles(void **state)
{
    (void)state;
    enum { N = 200000 };
    uint64_t *v = malloc(N * sizeof *v);
    hx_hist *h = calloc(1, sizeof *h), *a = calloc(1, sizeof *a),
            *b = calloc(1, sizeof *b);
    assert_non_null(v);
    assert_non_null(h);
    for (int i = 0; i < N; i++) {
        v[i] = sample();
        hx_hist_record(h, (int64_t)v[i]);
        hx_hist_record(i % 2 ? a : b, (int64_t)v[i]);
    }
    qsort(v, N, sizeof *v, cmp_u64);
    static const double qs[] = {0.001, 0.1, 0.5, 0.9, 0.95, 0.99, 0.999, 0.9999};
    for (size_t i = 0; i < sizeof qs / sizeof qs[0]; i++) {
        uint64_t rank = (uint64_t)(qs[i] * N + 0.999999); /* ceil */
        uint64_t exact = v[rank - 1], got = hx_hist_quantile(h, qs[i]);
        if (got < exact || got > exact + exact / 128 + 1)
            fail_msg("q %.4f: histogram %llu, exact %llu", qs[i], (unsigned long long)got,
                     (unsigned long long)exact);
    }
    assert_int_equal(hx_hist_quantile(h, 1.0), v[N - 1]);
    assert_int_equal(h->max, v[N - 1]);
    assert_int_equal(h->min, v[0]);
    assert_int_equal(h->count, N);
    /* Merging two halves is recording everything in one. */
    hx_hist_merge(a, b);
    assert_memory_equal(a, h, sizeof *h);
    /* An empty histogram says 0; negative values count as 0. */
    hx_hist_reset(b);
    assert_int_equal(hx_hist_quantile(b, 0.5), 0);
    hx_hist_record(b, -5);
    assert_int_equal(b->max, 0);
    free(v);
    free(h);
    free(a);
    free(b);
}

static void test_hist_buckets(void **state)
{
    (void)state;
    for (unsigned i = 0; i + 1 < HX_HIST_BUCKETS; i++) {
        uint64_t hi = hx_hist_bucket_high(i);
        assert_int_equal(hx_hist_index(hi), i);
        assert_int_equal(hx_hist_index(hi + 1), i + 1);
        /* Every bucket is narrower than 1/128 of its values. */
        if (i >= 128) {
            uint64_t lo = hx_hist_bucket_high(i - 1) + 1;
            assert_true((hi - lo + 1) * 128 <= lo);
        }
    }
    /* Beyond the range: the last bucket. */
    assert_int_equal(hx_hist_index(UINT64_MAX), HX_HIST_BUCKETS - 1);
}

/* --- checkpoints ------------------------------------------------------------------ */

typedef struct rec {
    int64_t v, t;
} rec;

/* The truth: the largest version recorded at or before t. */
static int64_t truth(const rec *log, size_t n, int64_t t)
{
    int64_t best = 0;
    for (size_t i = 0; i < n; i++)
        if (log[i].t <= t && log[i].v > best)
            best = log[i].v;
    return best;
}

static void run_ckpt_model(int64_t spacing, bool jitter)
{
    hx_ckpts *k = calloc(1, sizeof *k);
    enum { N = 3000 };
    rec *log = calloc(N, sizeof *log);
    assert_non_null(k);
    int64_t now = 1000, version = 0;
    for (size_t n = 0; n < N; n++) {
        /* Times move on by 0..spacing/2 (many records per checkpoint) or by more;
         * versions mostly grow, sometimes an older one is recorded late. */
        now += (int64_t)(hx_rand(&rng) % (uint64_t)(hx_rand(&rng) % 4 ? spacing / 2 + 1
                                                                      : 3 * spacing + 1));
        int64_t v =
            hx_rand(&rng) % 5 ? ++version : version - (int64_t)(hx_rand(&rng) % 3);
        int64_t t = now;
        if (jitter && hx_rand(&rng) % 3 == 0)
            t -=
                (int64_t)(hx_rand(&rng) % (uint64_t)(spacing + 1)); /* returned earlier */
        log[n] = (rec){v, t};
        hx_ckpt_record(k, v, t, spacing);
        for (int q = 0; q < 8; q++) {
            int64_t T = now - (int64_t)(hx_rand(&rng) % (uint64_t)(4 * spacing + 1));
            int64_t when = 0;
            int64_t got = hx_ckpt_query(k, T, &when);
            int64_t sound = truth(log, n + 1, T);
            if (got > sound)
                fail_msg("query(%lld) = %lld, but only %lld was recorded by then",
                         (long long)T, (long long)got, (long long)sound);
            if (got > 0 && when > T)
                fail_msg("query(%lld) dated %lld", (long long)T, (long long)when);
            if (!jitter && spacing > 0) {
                int64_t need = truth(log, n + 1, T - spacing);
                if (got < need)
                    fail_msg("query(%lld) = %lld, but %lld was recorded by %lld",
                             (long long)T, (long long)got, (long long)need,
                             (long long)(T - spacing));
            }
        }
    }
    free(log);
    free(k);
}

static void test_ckpt_model(void **state)
{
    (void)state;
    run_ckpt_model(250, false);
    run_ckpt_model(250, true);
    run_ckpt_model(1, false);
    run_ckpt_model(0, true); /* --notify-bound 0: soundness only */
}

/* The seqlock: a read across a write is retried; a quiet one is not. */
static void test_seqlock(void **state)
{
    (void)state;
    _Atomic uint32_t seq = 0;
    uint32_t b = hx_seq_read_begin(&seq);
    assert_false(hx_seq_read_retry(&seq, b));
    hx_seq_write_begin(&seq);
    assert_true(atomic_load(&seq) & 1);
    hx_seq_write_end(&seq);
    assert_true(hx_seq_read_retry(&seq, b));
    assert_false(hx_seq_read_retry(&seq, hx_seq_read_begin(&seq)));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hist_quantiles),
        cmocka_unit_test(test_hist_buckets),
        cmocka_unit_test(test_ckpt_model),
        cmocka_unit_test(test_seqlock),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
