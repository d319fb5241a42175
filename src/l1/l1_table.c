/*
 * l1_table.c - the writers' side of a shard's hash table (l1_table.h): insert,
 * remove, clear, all under the shard's mutex. Pointer work only.
 */
#include "l1_table.h"

#include <string.h>

void pgcw__l1_table_init(pgcw__l1_table *t, void *mem, size_t cap_n)
{
    t->ngroups = pgcw__l1_table_groups(cap_n);
    t->slots = mem;
    t->over = (_Atomic uint8_t *)((unsigned char *)mem + (size_t)t->ngroups * 64);
}

/* Readers load the counts without the lock: a relaxed store of the new value. */
static void over_add(pgcw__l1_table *t, uint32_t g, int d)
{
    uint8_t n = atomic_load_explicit(&t->over[g], memory_order_relaxed);
    if (n == UINT8_MAX)
        return; /* saturated: stays, lookups keep looking past g */
    atomic_store_explicit(&t->over[g], (uint8_t)(n + d), memory_order_relaxed);
}

static uint64_t word_of(const pgcw__l1_probe *p, const struct pgcw__l1_entry *e)
{
    return p->tag << 48 | ((uint64_t)(uintptr_t)e & PGCW__L1_PTR_MASK);
}

/* The first slot holding `want` from p's home on, and its group in *group. An
 * insert (want 0) counts each full group it passes in its `over` before the entry
 * is published further on, so a reader that finds it there was sent there (one that
 * loaded the count before may miss it: the insert was not complete when it looked). */
static _Atomic uint64_t *seek(pgcw__l1_table *t, const pgcw__l1_probe *p, uint64_t want,
                              uint32_t *group)
{
    for (uint32_t g = p->group;; g = pgcw__l1_next_group(t, g)) {
        _Atomic uint64_t *grp = &t->slots[(size_t)g * PGCW__L1_GROUP];
        for (unsigned i = 0; i < PGCW__L1_GROUP; i++) {
            _Atomic uint64_t *sl = &grp[(p->first + i) & (PGCW__L1_GROUP - 1)];
            if (atomic_load_explicit(sl, memory_order_relaxed) == want) {
                *group = g;
                return sl;
            }
        }
        if (want == 0)
            over_add(t, g, 1);
    }
}

void pgcw__l1_table_insert(pgcw__l1_table *t, uint64_t h, struct pgcw__l1_entry *e)
{
    pgcw__l1_probe p = pgcw__l1_probe_of(t, h);
    uint32_t g;
    /* Publishes the entry: its key, value and header are complete. */
    atomic_store_explicit(seek(t, &p, 0, &g), word_of(&p, e), memory_order_release);
}

void pgcw__l1_table_remove(pgcw__l1_table *t, uint64_t h, struct pgcw__l1_entry *e)
{
    pgcw__l1_probe p = pgcw__l1_probe_of(t, h);
    uint32_t g;
    atomic_store_explicit(seek(t, &p, word_of(&p, e), &g), 0, memory_order_release);
    /* Uncount it from every full group it was sent past, after it is gone from
     * where a reader sent past them would look. */
    for (uint32_t k = p.group; k != g; k = pgcw__l1_next_group(t, k))
        over_add(t, k, -1);
}

void pgcw__l1_table_clear(pgcw__l1_table *t)
{
    size_t n = (size_t)t->ngroups * PGCW__L1_GROUP;
    for (size_t i = 0; i < n; i++)
        atomic_store_explicit(&t->slots[i], 0, memory_order_release);
    for (uint32_t g = 0; g < t->ngroups; g++)
        atomic_store_explicit(&t->over[g], 0, memory_order_relaxed);
}
