/*
 * l1_slab.c - the L1's private memory (see l1_slab.h): 2 MiB chunks, runs carved
 * from them for shards, 8-byte size classes with per-shard free lists.
 *
 * Mapping and first touch of memory happen in pgcw__l1_pool_take, never under a
 * shard lock; what runs under a shard lock here is pointer work only. Under ASan,
 * free slots are poisoned, so a use after reclamation is still reported.
 */
#define _GNU_SOURCE /* MADV_HUGEPAGE, MAP_ANONYMOUS */
#include "l1_slab.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "l1_internal.h"

#if defined(__SANITIZE_ADDRESS__)
#define PGCW__ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define PGCW__ASAN 1
#endif
#endif
#ifdef PGCW__ASAN
#include <sanitizer/asan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#define CHUNK ((size_t)2 << 20)
#define HUGE_RUN ((size_t)64 << 10)  /* a shard's share of a huge chunk at a time */
#define SMALL_RUN ((size_t)16 << 10) /* small caches: less memory per idle shard */
#define HUGE_FROM ((size_t)8 << 20)  /* caches that may hold this much get THP */
#define CHUNK_HDR 64                 /* the chunk list's link, a cache line */

/* `bytes` (a multiple of 4 KiB) of zeroed memory; if huge, aligned to 2 MiB and
 * advised MADV_HUGEPAGE, so every whole 2 MiB of it can be one huge page (a tail
 * shorter than that stays on 4 KiB pages). NULL on failure. */
static void *map_aligned(size_t bytes, bool huge)
{
    size_t len = bytes + (huge ? CHUNK : 0);
    unsigned char *m =
        mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        return NULL;
    if (!pgcw__l1_addr_fits(m + len - 1)) { /* the table packs 48-bit pointers */
        munmap(m, len);
        return NULL;
    }
    if (!huge)
        return m;
    unsigned char *a = (unsigned char *)(((uintptr_t)m + CHUNK - 1) & ~(CHUNK - 1));
    if (a > m)
        munmap(m, (size_t)(a - m));
    if (a + bytes < m + len)
        munmap(a + bytes, (size_t)(m + len - (a + bytes)));
#ifdef MADV_HUGEPAGE
    (void)madvise(a, bytes, MADV_HUGEPAGE); /* a hint: without it, 4 KiB pages */
#endif
    return a;
}

int pgcw__l1_pool_init(pgcw__l1_pool *p, size_t expected_bytes)
{
    memset(p, 0, sizeof(*p));
    p->huge = expected_bytes >= HUGE_FROM;
    return pthread_mutex_init(&p->mu, NULL);
}

void pgcw__l1_pool_destroy(pgcw__l1_pool *p)
{
    void *c = p->chunks;
    while (c) {
        void *next;
        UNPOISON(c, CHUNK); /* the shadow outlives the mapping: clear it */
        memcpy(&next, c, sizeof(next));
        munmap(c, CHUNK);
        c = next;
    }
    pthread_mutex_destroy(&p->mu);
}

unsigned char *pgcw__l1_pool_take(pgcw__l1_pool *p)
{
    size_t run = p->huge ? HUGE_RUN : SMALL_RUN;
    unsigned char *r = NULL;
    pthread_mutex_lock(&p->mu);
    if (p->spare) {
        r = p->spare;
        memcpy(&p->spare, r, sizeof(void *));
        memset(r, 0, sizeof(void *));
    } else {
        if ((size_t)(p->end - p->cur) < run) {
            unsigned char *c = map_aligned(CHUNK, p->huge);
            if (!c) {
                pthread_mutex_unlock(&p->mu);
                return NULL;
            }
            memcpy(c, &p->chunks, sizeof(void *));
            p->chunks = c;
            p->mapped += CHUNK;
            p->cur = c + CHUNK_HDR;
            p->end = c + CHUNK;
        }
        r = p->cur;
        p->cur += run;
    }
    pthread_mutex_unlock(&p->mu);
    UNPOISON(r, run); /* a run handed back is poisoned */
    /* First touch here, not under the shard lock that will carve it: a page fault
     * (a whole 2 MiB one with THP) costs microseconds. */
    for (size_t off = 0; off < run; off += 4096)
        ((volatile unsigned char *)r)[off] = 0;
    POISON(r, run);
    return r;
}

void pgcw__l1_pool_give(pgcw__l1_pool *p, unsigned char *run)
{
    pthread_mutex_lock(&p->mu);
    UNPOISON(run, sizeof(void *));
    memcpy(run, &p->spare, sizeof(void *));
    p->spare = run;
    pthread_mutex_unlock(&p->mu);
}

static void push_free(pgcw__l1_slab *s, void *slot, size_t size)
{
    pgcw__l1_entry *e = slot;
    UNPOISON(e, size);
    e->qnext = s->free[size / 8];
    s->free[size / 8] = e;
    POISON(e, size);
}

/* Bytes the entry occupies: its slot, or 0 if malloc'ed. */
static size_t entry_slot(const pgcw__l1_entry *e)
{
    return pgcw__l1_slot_size(pgcw__l1_hdr(e) + e->klen + e->vlen);
}

void *pgcw__l1_slab_alloc(pgcw__l1_slab *s, pgcw__l1_entry **released, size_t size,
                          bool carve)
{
    /* Released entries first: in a workload of one size the first one fits. */
    while (*released) {
        pgcw__l1_entry *e = *released;
        UNPOISON(e, sizeof(*e));
        size_t have = entry_slot(e);
        *released = e->qnext;
        if (e->qnext)
            __builtin_prefetch(e->qnext, 1);
        if (have == size) {
            UNPOISON(e, size);
            return e;
        }
        push_free(s, e, have);
    }
    pgcw__l1_entry *e = s->free[size / 8];
    if (e) {
        UNPOISON(e, size);
        s->free[size / 8] = e->qnext;
        /* Freed slots are cold: fetch the next one now, so the next pop under the
         * lock does not wait for DRAM. */
        if (e->qnext)
            __builtin_prefetch(e->qnext, 1);
        return e;
    }
    if (!carve)
        return NULL;
    if ((size_t)(s->end - s->cur) < size) {
        if (!s->spare)
            return NULL;
        /* The old run's tail (< size <= SLAB_MAX) becomes a free slot if it can
         * hold an entry header. */
        size_t rest = (size_t)(s->end - s->cur);
        if (rest >= sizeof(pgcw__l1_entry))
            push_free(s, s->cur, rest);
        s->cur = s->spare;
        s->end = s->spare + s->run;
        s->spare = NULL;
    }
    void *slot = s->cur;
    UNPOISON(slot, size);
    s->cur += size;
    return slot;
}

bool pgcw__l1_slab_add(pgcw__l1_slab *s, unsigned char *run)
{
    if (s->spare)
        return false;
    s->spare = run;
    return true;
}

size_t pgcw__l1_pool_run(const pgcw__l1_pool *p)
{
    return p->huge ? HUGE_RUN : SMALL_RUN;
}

void pgcw__l1_slab_give(pgcw__l1_entry **released, pgcw__l1_entry *head,
                        pgcw__l1_entry *tail)
{
    if (!head)
        return;
#ifdef PGCW__ASAN
    for (pgcw__l1_entry *e = head, *next; e; e = next) {
        next = e->qnext;
        POISON((unsigned char *)e + sizeof(*e), entry_slot(e) - sizeof(*e));
        if (e != tail)
            POISON(e, sizeof(*e));
    }
#endif
    tail->qnext = *released;
    POISON(tail, sizeof(*tail));
    *released = head;
}

void pgcw__l1_slab_sort(pgcw__l1_entry *list, pgcw__l1_sorted *out)
{
    memset(out, 0, sizeof(*out));
    while (list) {
        pgcw__l1_entry *e = list;
        list = e->qnext;
        size_t size = entry_slot(e);
        if (size == 0) {
            free(e);
            continue;
        }
        size_t k = size / 8;
        e->qnext = out->head[k];
        if (!out->head[k])
            out->tail[k] = e; /* written again by the splice: poisoned there */
        else
            POISON(e, size);
        out->head[k] = e;
        out->any = true;
    }
}

void pgcw__l1_slab_splice(pgcw__l1_slab *s, pgcw__l1_sorted *in)
{
    if (!in->any)
        return;
    for (size_t k = 0; k < PGCW__L1_SLAB_CLASSES; k++) {
        if (!in->head[k])
            continue;
        in->tail[k]->qnext = s->free[k];
        POISON(in->tail[k], k * 8);
        s->free[k] = in->head[k];
    }
}

void pgcw__l1_free_big(pgcw__l1_entry *list)
{
    while (list) {
        pgcw__l1_entry *next = list->qnext;
        if (entry_slot(list) == 0)
            free(list);
        list = next;
    }
}

void *pgcw__l1_table_alloc(size_t bytes)
{
    if (bytes < CHUNK) {
        /* Cache-line aligned: a hash table group must be one line (l1_table.h). */
        size_t n = (bytes + 63) & ~(size_t)63;
        void *p = aligned_alloc(64, n ? n : 64);
        if (p)
            memset(p, 0, n ? n : 64);
        return p;
    }
    return map_aligned((bytes + 4095) & ~(size_t)4095, true);
}

void pgcw__l1_table_free(void *p, size_t bytes)
{
    if (!p)
        return;
    if (bytes < CHUNK)
        free(p);
    else
        munmap(p, (bytes + 4095) & ~(size_t)4095);
}

size_t pgcw__l1_table_mapped(size_t bytes)
{
    return bytes < CHUNK ? 0 : (bytes + 4095) & ~(size_t)4095;
}
