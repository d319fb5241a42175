/*
 * harness_hist.c - see harness_hist.h. Values below 128 get a bucket each; above,
 * a value whose highest set bit is b falls in group b - 6, and within it in one of
 * 128 sub-buckets of width 2^(b - 7).
 *
 * Must never allocate: histograms live in shared memory and on client stacks.
 */
#include <string.h>

#include "harness_hist.h"

#define SUB (1u << HX_HIST_SUB_BITS)

void hx_hist_reset(hx_hist *h)
{
    memset(h, 0, sizeof *h);
}

unsigned hx_hist_index(uint64_t v)
{
    if (v < SUB)
        return (unsigned)v;
    unsigned msb = 63u - (unsigned)__builtin_clzll(v);
    if (msb > HX_HIST_MAX_BITS)
        return HX_HIST_BUCKETS - 1;
    unsigned shift = msb - HX_HIST_SUB_BITS;
    unsigned group = shift + 1;
    return group * SUB + (unsigned)((v >> shift) - SUB);
}

uint64_t hx_hist_bucket_high(unsigned index)
{
    if (index < SUB)
        return index;
    unsigned group = index / SUB, sub = index % SUB;
    unsigned shift = group - 1;
    return (((uint64_t)(SUB + sub) + 1) << shift) - 1;
}

void hx_hist_record(hx_hist *h, int64_t value)
{
    uint64_t v = value < 0 ? 0 : (uint64_t)value;
    h->buckets[hx_hist_index(v)]++;
    if (h->count == 0 || v < h->min)
        h->min = v;
    if (v > h->max)
        h->max = v;
    h->count++;
    h->sum += v;
}

void hx_hist_merge(hx_hist *into, const hx_hist *from)
{
    if (from->count == 0)
        return;
    for (unsigned i = 0; i < HX_HIST_BUCKETS; i++)
        into->buckets[i] += from->buckets[i];
    if (into->count == 0 || from->min < into->min)
        into->min = from->min;
    if (from->max > into->max)
        into->max = from->max;
    into->count += from->count;
    into->sum += from->sum;
}

uint64_t hx_hist_quantile(const hx_hist *h, double q)
{
    if (h->count == 0)
        return 0;
    if (q <= 0)
        return h->min;
    uint64_t rank = (uint64_t)(q * (double)h->count);
    if ((double)rank < q * (double)h->count)
        rank++; /* ceil */
    if (rank < 1)
        rank = 1;
    if (rank >= h->count)
        return h->max;
    uint64_t seen = 0;
    for (unsigned i = 0; i < HX_HIST_BUCKETS; i++) {
        seen += h->buckets[i];
        if (seen >= rank) {
            uint64_t high = hx_hist_bucket_high(i);
            return high < h->max ? high : h->max;
        }
    }
    return h->max;
}
