/*
 * l1_reclaim.c - lock-free reads: reader slots and epoch-based reclamation.
 *
 * A hit takes no lock and writes only to its own thread's reader slot, so two
 * cores reading the same hot keys never bounce a cache line between them. The
 * price is paid by writers: an entry they unlink is parked in a limbo of its shard
 * (one per lane, l1_internal.h) and
 * freed only once no reader that could have seen it is still reading. This file
 * must never block under a shard lock; only clear (no lock held) waits for readers.
 */
#define _POSIX_C_SOURCE 200809L
#include "l1_internal.h"

#include <sched.h>
#include <stdint.h>

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static pthread_key_t g_key;
static bool g_key_ok;
static _Atomic bool g_used[PGCW__L1_READERS];
static _Atomic int g_hwm;               /* 1 + the highest slot ever claimed */
_Thread_local int pgcw__l1_t_slot = -2; /* -2: not claimed yet; -1: none free */

static void release_slot(void *v)
{
    int i = (int)(intptr_t)v - 1;
    atomic_store_explicit(&g_used[i], false, memory_order_release);
}

static void make_key(void)
{
    g_key_ok = pthread_key_create(&g_key, release_slot) == 0;
}

int pgcw__l1_reader_claim(void)
{
    pthread_once(&g_once, make_key);
    int s = -1;
    for (int i = 0; g_key_ok && i < PGCW__L1_READERS; i++) {
        bool f = false;
        if (!atomic_compare_exchange_strong_explicit(
                &g_used[i], &f, true, memory_order_acq_rel, memory_order_relaxed))
            continue;
        if (pthread_setspecific(g_key, (void *)(intptr_t)(i + 1)) != 0) {
            atomic_store_explicit(&g_used[i], false, memory_order_release);
            break;
        }
        int hwm = atomic_load_explicit(&g_hwm, memory_order_relaxed);
        while (hwm < i + 1 &&
               !atomic_compare_exchange_weak_explicit(
                   &g_hwm, &hwm, i + 1, memory_order_acq_rel, memory_order_relaxed))
            ;
        s = i;
        break;
    }
    pgcw__l1_t_slot = s;
    return s;
}

/* True if no reader is inside a read it entered at an epoch <= tag. */
static bool readers_past(pgcw_l1 *c, uint64_t tag)
{
    atomic_thread_fence(memory_order_seq_cst);
    int n = atomic_load_explicit(&g_hwm, memory_order_acquire);
    for (int i = 0; i < n; i++) {
        uint64_t e = atomic_load_explicit(&c->readers[i].epoch, memory_order_acquire);
        if (e != 0 && e <= tag)
            return false;
    }
    return true;
}

void pgcw__l1_retire(pgcw_l1 *c, pgcw__l1_shard *s, unsigned lane, pgcw__l1_entry *dead,
                     pgcw__l1_entry **to_free)
{
    pgcw__l1_limbo *fresh = &s->lanes[lane].fresh, *aged = &s->aged[lane];
    *to_free = NULL;
    if (dead) {
        while (dead) {
            pgcw__l1_entry *next = dead->qnext;
            /* The header is in this core's cache now (its remover just read it);
             * by the time the batch is freed it may be in the other core's. */
            if (pgcw__l1_slot_size(pgcw__l1_hdr(dead) + dead->klen + dead->vlen)) {
                dead->qnext = fresh->head;
                fresh->head = dead;
                if (!fresh->tail)
                    fresh->tail = dead;
            } else {
                dead->qnext = fresh->big;
                fresh->big = dead;
            }
            fresh->n++;
            dead = next;
        }
        /* Read after the unlinks: a reader that enters at a later epoch cannot
         * reach any of them. */
        fresh->tag = atomic_load_explicit(&c->gepoch, memory_order_seq_cst);
    }
    /* Handed to the reclaimer in batches of s->retire_batch (a sixteenth of the
     * shard's entries, 8..64: l1_shard.c) per shard and lane, so scanning the
     * reader slots is amortized over many frees. */
    if (fresh->n < s->retire_batch)
        return;
    if (aged->n && readers_past(c, aged->tag)) {
        /* O(1): the entries are cold, and walking them would miss on each one.
         * They go to the lane that retired them: its next allocations reuse them,
         * on the core that last wrote them, more often than not. */
        pgcw__l1_slab_give(&s->lanes[lane].released, aged->head, aged->tail);
        *to_free = aged->big;
        *aged = (pgcw__l1_limbo){0};
    }
    if (aged->n == 0) {
        *aged = *fresh;
        *fresh = (pgcw__l1_limbo){0};
        /* Readers entering from now on are past the aged batch. */
        atomic_fetch_add_explicit(&c->gepoch, 1, memory_order_seq_cst);
    }
}

void pgcw__l1_synchronize(pgcw_l1 *c)
{
    uint64_t tag = atomic_fetch_add_explicit(&c->gepoch, 1, memory_order_seq_cst);
    while (!readers_past(c, tag))
        sched_yield();
}
