/*
 * l1_slab.h - the L1's private memory: a per-cache pool of 2 MiB chunks (huge-page
 * advised for big caches) carved into runs, and per-shard slabs that carve entries
 * out of a run in 8-byte size classes, with one free list per class.
 *
 * Why: malloc's per-chunk header and 16-byte rounding cost ~12 B per entry, and
 * entries scattered over 4 KiB pages make every cold get pay a TLB miss. Entries up
 * to PGCW__L1_SLAB_MAX bytes live here; bigger ones stay on malloc. Memory is kept
 * for the cache's lifetime (freed slots are reused) and unmapped by pgcw_l1_free.
 * A shard's slab is only touched under its shard's mutex; the pool has its own and
 * is never locked with a shard mutex held. Nothing here ever prints.
 */
#ifndef PGCW_L1_SLAB_H
#define PGCW_L1_SLAB_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

/* Largest slot; an entry needing more bytes is malloc'ed. */
#define PGCW__L1_SLAB_MAX 512u
#define PGCW__L1_SLAB_CLASSES (PGCW__L1_SLAB_MAX / 8 + 1)

struct pgcw__l1_entry;

typedef struct pgcw__l1_pool {
    pthread_mutex_t mu;
    bool huge;                /* chunks advised MADV_HUGEPAGE */
    unsigned char *cur, *end; /* what is left of the newest chunk */
    void *chunks;             /* every chunk, linked through its first word */
    void *spare;              /* runs handed back, linked through their first word */
    size_t mapped;            /* bytes of chunks mapped */
} pgcw__l1_pool;

typedef struct pgcw__l1_slab {
    unsigned char *cur, *end; /* what is left of the shard's current run */
    unsigned char *spare;     /* a whole run, installed when cur..end runs out */
    size_t run;               /* bytes per run (pgcw__l1_pool_run) */
    struct pgcw__l1_entry *free[PGCW__L1_SLAB_CLASSES];
} pgcw__l1_slab;

/* Bytes an entry of `req` bytes occupies: its slot, or 0 if it is malloc'ed. */
static inline size_t pgcw__l1_slot_size(size_t req)
{
    return req <= PGCW__L1_SLAB_MAX ? (req + 7) & ~(size_t)7 : 0;
}

/* expected_bytes: what the cache may hold; big caches get huge-page chunks. */
int pgcw__l1_pool_init(pgcw__l1_pool *p, size_t expected_bytes);
void pgcw__l1_pool_destroy(pgcw__l1_pool *p);

/* A fresh run for a shard (no shard lock held: it may map memory), or NULL. */
unsigned char *pgcw__l1_pool_take(pgcw__l1_pool *p);
/* Bytes per run this pool hands out. */
size_t pgcw__l1_pool_run(const pgcw__l1_pool *p);
/* Hands back a run that was not needed (no shard lock held). */
void pgcw__l1_pool_give(pgcw__l1_pool *p, unsigned char *run);

/* Under the shard mutex: a slot of `size` bytes (pgcw__l1_slot_size), from
 * *released first (entries of any size, their headers intact, handed back by
 * pgcw__l1_slab_give: sorted onto the free lists only as this pops them, when their
 * lines are about to be written anyway), then the free list of the size, then, if
 * `carve`, the shard's run. NULL when none has one: with carve, the shard needs a
 * run (drop the lock, pgcw__l1_pool_take, pgcw__l1_slab_add). */
void *pgcw__l1_slab_alloc(pgcw__l1_slab *s, struct pgcw__l1_entry **released, size_t size,
                          bool carve);
/* Under the shard mutex: gives the shard a run; false if it already has a spare
 * (the caller hands `run` back to the pool after unlocking). */
bool pgcw__l1_slab_add(pgcw__l1_slab *s, unsigned char *run);

/* Under the shard mutex: hands back the slab entries head..tail (linked through
 * qnext, none malloc'ed, no reader able to reach them) onto *released in constant
 * time (pgcw__l1_slab_alloc sorts them). (Under ASan it walks them to poison them.) */
void pgcw__l1_slab_give(struct pgcw__l1_entry **released, struct pgcw__l1_entry *head,
                        struct pgcw__l1_entry *tail);

/* Freeing a list of entries of unknown kinds (linked through qnext) back to a
 * shard's slab in two steps, so the cold walk over them runs without the lock: sort
 * (no lock; frees the malloc'ed ones), then splice (under the shard mutex, O(size
 * classes)). For clear, which has every kind mixed. */
typedef struct pgcw__l1_sorted {
    struct pgcw__l1_entry *head[PGCW__L1_SLAB_CLASSES], *tail[PGCW__L1_SLAB_CLASSES];
    bool any;
} pgcw__l1_sorted;
void pgcw__l1_slab_sort(struct pgcw__l1_entry *list, pgcw__l1_sorted *out);
void pgcw__l1_slab_splice(pgcw__l1_slab *s, pgcw__l1_sorted *in);

/* Frees the malloc'ed entries of a list (pgcw_l1_free: slab slots go with the pool). */
void pgcw__l1_free_big(struct pgcw__l1_entry *list);

/* Zeroed, 64-byte aligned memory for tables: huge-page advised when it is big,
 * else from aligned_alloc. */
void *pgcw__l1_table_alloc(size_t bytes);
void pgcw__l1_table_free(void *p, size_t bytes);
/* Bytes a table of `bytes` maps outside malloc (0 if calloc'ed). */
size_t pgcw__l1_table_mapped(size_t bytes);

#endif
