/*
 * harness_hist.h - a log-bucketed latency histogram in the manner of HdrHistogram:
 * 128 linear sub-buckets per power of two, so any recorded value is known to within
 * 1/128 (0.8%) of itself, from 1 ns to 2^36 ns (69 s; larger values land in the
 * last bucket, the maximum is kept exactly). Fixed size, no allocation: it can live
 * in memory shared between processes, and histograms merge by adding counts, so a
 * merged percentile is the percentile of every sample, never a mean of means.
 *
 * Not thread-safe: one writer at a time (each client thread keeps its own and
 * merges them at the end).
 */
#ifndef PGCW_HARNESS_HIST_H
#define PGCW_HARNESS_HIST_H

#include <stdint.h>

#define HX_HIST_SUB_BITS 7
#define HX_HIST_MAX_BITS 36
#define HX_HIST_BUCKETS ((HX_HIST_MAX_BITS - HX_HIST_SUB_BITS + 2) << HX_HIST_SUB_BITS)

typedef struct hx_hist {
    uint64_t count;
    uint64_t sum; /* of the values as recorded (ns), for the mean */
    uint64_t min, max;
    uint64_t buckets[HX_HIST_BUCKETS];
} hx_hist;

/* Empties h. A zeroed hx_hist is empty too. */
void hx_hist_reset(hx_hist *h);

/* Records one value (negative values are recorded as 0). */
void hx_hist_record(hx_hist *h, int64_t value);

/* Adds every sample of from to into. */
void hx_hist_merge(hx_hist *into, const hx_hist *from);

/* The value at quantile q (0..1): the highest value of the bucket that holds the
 * sample of rank ceil(q * count), capped by the exact maximum; 0 when empty. */
uint64_t hx_hist_quantile(const hx_hist *h, double q);

/* The bucket of a value and the highest value that bucket holds (for tests). */
unsigned hx_hist_index(uint64_t value);
uint64_t hx_hist_bucket_high(unsigned index);

#endif
