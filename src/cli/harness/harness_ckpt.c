/*
 * harness_ckpt.c - the checker's memory of "version v by time t" (checkpoints, see
 * harness.h) and the seqlock that lets readers consult it without a lock.
 *
 * Must never make a writer wait for a reader: readers only retry.
 */
#include <sched.h>

#include "harness.h"

void hx_seq_write_begin(_Atomic uint32_t *seq)
{
    uint32_t s = atomic_load_explicit(seq, memory_order_relaxed);
    atomic_store_explicit(seq, s + 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
}

void hx_seq_write_end(_Atomic uint32_t *seq)
{
    uint32_t s = atomic_load_explicit(seq, memory_order_relaxed);
    atomic_store_explicit(seq, s + 1, memory_order_release);
}

uint32_t hx_seq_read_begin(const _Atomic uint32_t *seq)
{
    for (;;) {
        uint32_t s = atomic_load_explicit(seq, memory_order_acquire);
        if (!(s & 1))
            return s;
        sched_yield(); /* a writer is in the middle: let it finish */
    }
}

bool hx_seq_read_retry(const _Atomic uint32_t *seq, uint32_t begin)
{
    atomic_thread_fence(memory_order_acquire);
    return atomic_load_explicit(seq, memory_order_relaxed) != begin;
}

#define ST(field, v) atomic_store_explicit(&(field), (v), memory_order_relaxed)
#define LD(field) atomic_load_explicit(&(field), memory_order_relaxed)

static void ckpt_begin(hx_ckpts *k, uint32_t i, int64_t version, int64_t now)
{
    ST(k->c[i].version, version);
    ST(k->c[i].created, now);
    ST(k->c[i].t, now);
}

void hx_ckpt_record(hx_ckpts *k, int64_t version, int64_t now, int64_t spacing)
{
    uint32_t head = LD(k->head), used = LD(k->used);
    if (used == 0) {
        ST(k->head, 0);
        ckpt_begin(k, 0, version, now);
        ST(k->used, 1);
        return;
    }
    /* Versions only grow from one checkpoint to the next: the newest holds the
     * largest. One not larger is already covered, as early or earlier. */
    if (version <= LD(k->c[head].version))
        return;
    if (now - LD(k->c[head].created) < spacing) {
        ST(k->c[head].version, version);
        ST(k->c[head].t, now);
        return;
    }
    head = (head + 1) % HX_CKPTS;
    ckpt_begin(k, head, version, now);
    ST(k->head, head);
    if (used < HX_CKPTS)
        ST(k->used, used + 1);
}

int64_t hx_ckpt_query(const hx_ckpts *k, int64_t t, int64_t *when)
{
    uint32_t head = LD(k->head), used = LD(k->used);
    for (uint32_t i = 0; i < used && i < HX_CKPTS; i++) {
        uint32_t j = (head + HX_CKPTS - i) % HX_CKPTS;
        if (LD(k->c[j].t) <= t) {
            if (when)
                *when = LD(k->c[j].t);
            return LD(k->c[j].version);
        }
    }
    if (when)
        *when = 0;
    return 0;
}

int64_t hx_ckpt_read(const _Atomic uint32_t *seq, const hx_ckpts *k, int64_t t,
                     int64_t *when)
{
    int64_t v;
    uint32_t b;
    do {
        b = hx_seq_read_begin(seq);
        v = hx_ckpt_query(k, t, when);
    } while (hx_seq_read_retry(seq, b));
    return v;
}
