/*
 * l1_table.h - a shard's hash table: groups of eight 8-byte slots, one cache line
 * each, a slot holding an entry pointer with a 15-bit tag of its key's hash in the
 * top 16 bits (user-space pointers use 48 bits on x86-64 and AArch64 Linux).
 *
 * Why not chains: with one bucket per entry a third of the hits walked past another
 * entry first, a third dependent miss (the p99 of bench_l1's latency section), and
 * every insert and removal wrote the entry before it in the chain, a line the other
 * core had often just read (docs/l1.md, "Two threads, one L1"). Here a hit reads
 * its key's group line and its entry only: the tags filter the other slots (a false
 * match is 1 in 32768 per occupied slot), and the probe starts at a slot chosen by
 * the hash, so the first slot read is usually the one. An insert or a removal writes
 * one slot and nothing of any other entry.
 *
 * A group that is full sends inserts on to the next group (linear probing by
 * groups) and counts them in `over`, so a lookup that misses in a group goes on
 * only while that count is above 0 (saturating: at 255 it stays, and lookups just
 * look further). 15 slots per 8 entries keep 99% of entries in their home group at
 * full load (1.3% away, simulated; 0.4% at the 80% load of bench_l1's latency
 * cache). Entries never move once inserted, so a lock-free reader cannot miss an
 * entry that stays in the table while it looks.
 *
 * Writers (insert, remove, clear) hold the shard's mutex; readers only load slots
 * (acquire) and counts. Never allocates.
 */
#ifndef PGCW_L1_TABLE_H
#define PGCW_L1_TABLE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

_Static_assert(sizeof(void *) == 8, "slots pack a 48-bit pointer with a 16-bit tag");

#define PGCW__L1_GROUP 8u /* slots per group: one cache line */
#define PGCW__L1_PTR_MASK (((uint64_t)1 << 48) - 1)

struct pgcw__l1_entry;

/* Whether p fits a slot's 48 pointer bits. Memory that does not (possible only
 * where user space has more than 48 address bits and a mapping was placed above
 * them) is refused, as if out of memory, rather than stored truncated. */
static inline bool pgcw__l1_addr_fits(const void *p)
{
    return ((uint64_t)(uintptr_t)p >> 48) == 0;
}

/* Lemire's fast range reduction: maps a 32-bit hash onto [0, n) without a divide,
 * so tables can be sized exactly (no power-of-two slack in the per-entry overhead). */
static inline uint32_t pgcw__l1_fastrange(uint32_t x, uint32_t n)
{
    return (uint32_t)(((uint64_t)x * n) >> 32);
}

typedef struct pgcw__l1_table {
    _Atomic uint64_t *slots; /* ngroups * 8, 64-byte aligned; 0: empty */
    _Atomic uint8_t *over;   /* per group: entries stored past it (saturating) */
    uint32_t ngroups;
} pgcw__l1_table;

/* Where a key's hash probes: its home group (the low 32 bits, as Lemire's range
 * reduction maps them), its tag (bits 32..47, never 0, so a tag match is never an
 * empty slot; the fill generation also uses these bits, but no table does, and the
 * shard takes the top ones) and the first slot looked at in the group (3 of the
 * tag's bits). Plain shifts: a hit computes this, so it costs few instructions. */
typedef struct pgcw__l1_probe {
    uint32_t group;
    unsigned first;
    uint64_t tag; /* 16 bits */
} pgcw__l1_probe;

static inline pgcw__l1_probe pgcw__l1_probe_of(const pgcw__l1_table *t, uint64_t h)
{
    pgcw__l1_probe p;
    p.group = pgcw__l1_fastrange((uint32_t)h, t->ngroups);
    p.tag = ((h >> 32) & 0xFFFFu) | 1u;
    p.first = (unsigned)(p.tag >> 1) & (PGCW__L1_GROUP - 1);
    return p;
}

/* A slot's tag and entry pointer. */
static inline uint64_t pgcw__l1_slot_tag(uint64_t w)
{
    return w >> 48;
}
static inline struct pgcw__l1_entry *pgcw__l1_slot_entry(uint64_t w)
{
    return (struct pgcw__l1_entry *)(uintptr_t)(w & PGCW__L1_PTR_MASK);
}

static inline uint32_t pgcw__l1_next_group(const pgcw__l1_table *t, uint32_t g)
{
    return g + 1 == t->ngroups ? 0 : g + 1;
}

/* Groups for a shard of cap_n entries (15 slots per 8 entries, at least one), and
 * the bytes of its slots + counts in the tables region (whole cache lines). */
static inline uint32_t pgcw__l1_table_groups(size_t cap_n)
{
    size_t g = (cap_n * 15 + 63) / 64;
    return (uint32_t)(g ? g : 1);
}
static inline size_t pgcw__l1_table_bytes(size_t cap_n)
{
    size_t g = pgcw__l1_table_groups(cap_n);
    return g * 64 + ((g + 63) & ~(size_t)63);
}

/* Sets t up on `mem` (pgcw__l1_table_bytes(cap_n) zeroed bytes, 64-byte aligned). */
void pgcw__l1_table_init(pgcw__l1_table *t, void *mem, size_t cap_n);

/* Under the shard lock: publishes e (complete) for hash h (release). There is
 * always a free slot: a shard holds at most cap_n live entries. */
void pgcw__l1_table_insert(pgcw__l1_table *t, uint64_t h, struct pgcw__l1_entry *e);

/* Under the shard lock: unpublishes e, which is in the table under hash h. */
void pgcw__l1_table_remove(pgcw__l1_table *t, uint64_t h, struct pgcw__l1_entry *e);

/* Under the shard lock: empties the table. */
void pgcw__l1_table_clear(pgcw__l1_table *t);

#endif
