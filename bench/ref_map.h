/*
 * ref_map.h - the reference bench_l1 divides the L1's get latency by: a plain
 * single-threaded open-addressing hash map (linear probing, power-of-two table at
 * most half full) over the same keys and values, with no locks, no eviction, no TTL,
 * no versions, no statistics. A get hashes the key, probes, compares and copies the
 * value out, as pgcw_l1_get does; nothing else.
 *
 * Why a reference: the VM shares its L3 and memory with neighbours, so a get's
 * absolute time moves 2x from day to day (docs/l1.md); the ratio to this map,
 * measured in the same run over the same keys, moves far less.
 *
 * It stores what the L1 stores, arbitrary byte keys and values, the way a plain map
 * for those does: a slot holds the key's hash and a pointer to an item (lengths, key,
 * value) carved from an arena, so a cold lookup makes two dependent memory accesses
 * (slot, item), as the L1's does (bucket, entry). Table and arena are huge-page
 * advised like the L1's, so the ratio is not about page size either. Bench-only:
 * aborts on misuse or OOM; never shared between threads.
 */
#ifndef PGCW_BENCH_REF_MAP_H
#define PGCW_BENCH_REF_MAP_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

typedef struct ref_slot {
    uint64_t hash;       /* 0: empty */
    unsigned char *item; /* uint32_t klen, uint32_t vlen, key, value */
} ref_slot;

typedef struct ref_map {
    ref_slot *slots;
    uint64_t mask; /* slots - 1 */
    unsigned char *arena, *cur, *end;
    size_t slots_bytes, arena_bytes;
} ref_map;

static inline void *ref_map_mem(size_t bytes)
{
    size_t huge = (size_t)2 << 20, len = bytes + huge;
    unsigned char *m =
        mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) {
        fprintf(stderr, "ref_map: out of memory\n");
        exit(1);
    }
    unsigned char *a =
        (unsigned char *)(((uintptr_t)m + huge - 1) & ~(uintptr_t)(huge - 1));
#ifdef MADV_HUGEPAGE
    (void)madvise(a, bytes, MADV_HUGEPAGE);
#endif
    return a; /* the unaligned head and tail stay mapped until exit: bench-only */
}

static inline uint64_t ref_hash(const void *key, size_t len)
{
    const unsigned char *p = key;
    uint64_t h = 0x9E3779B97F4A7C15u ^ len;
    for (; len >= 8; p += 8, len -= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = (h ^ w) * 0xbf58476d1ce4e5b9u;
        h ^= h >> 29;
    }
    if (len) {
        uint64_t w = 0;
        memcpy(&w, p, len);
        h = (h ^ w) * 0xbf58476d1ce4e5b9u;
    }
    h ^= h >> 32;
    h *= 0x94d049bb133111ebu;
    h ^= h >> 29;
    return h | 1; /* 0 marks an empty slot */
}

/* A map for up to n entries holding item_bytes of keys and values in all. */
static inline void ref_map_init(ref_map *m, size_t n, size_t item_bytes)
{
    size_t nslots = 16;
    while (nslots < 2 * n)
        nslots *= 2;
    m->mask = nslots - 1;
    m->slots_bytes = nslots * sizeof(ref_slot);
    m->slots = ref_map_mem(m->slots_bytes);
    m->arena_bytes = item_bytes + n * 16;
    m->arena = m->cur = ref_map_mem(m->arena_bytes);
    m->end = m->arena + m->arena_bytes;
}

static inline void ref_map_free(ref_map *m)
{
    munmap(m->slots, m->slots_bytes);
    munmap(m->arena, m->arena_bytes);
}

/* Inserts a key that is not in the map yet (the bench fills each key once). */
static inline void ref_map_put(ref_map *m, const void *key, size_t klen, const void *val,
                               size_t vlen)
{
    size_t need = (8 + klen + vlen + 7) & ~(size_t)7;
    if ((size_t)(m->end - m->cur) < need || klen > UINT32_MAX || vlen > UINT32_MAX) {
        fprintf(stderr, "ref_map: arena full\n");
        exit(1);
    }
    unsigned char *it = m->cur;
    m->cur += need;
    uint32_t k32 = (uint32_t)klen, v32 = (uint32_t)vlen;
    memcpy(it, &k32, 4);
    memcpy(it + 4, &v32, 4);
    memcpy(it + 8, key, klen);
    memcpy(it + 8 + klen, val, vlen);
    uint64_t h = ref_hash(key, klen), i = h;
    while (m->slots[i & m->mask].hash)
        i++;
    m->slots[i & m->mask] = (ref_slot){.hash = h, .item = it};
}

/* Copies the value into buf (if it fits) and returns true if key is present. */
static inline bool ref_map_get(const ref_map *m, const void *key, size_t klen, void *buf,
                               size_t buf_len, size_t *vlen)
{
    uint64_t h = ref_hash(key, klen);
    for (uint64_t i = h;; i++) {
        const ref_slot *s = &m->slots[i & m->mask];
        if (s->hash == 0)
            return false;
        if (s->hash != h)
            continue;
        uint32_t k32, v32;
        memcpy(&k32, s->item, 4);
        if (k32 != klen || memcmp(s->item + 8, key, klen) != 0)
            continue;
        memcpy(&v32, s->item + 4, 4);
        *vlen = v32;
        if (v32 <= buf_len)
            memcpy(buf, s->item + 8 + klen, v32);
        return true;
    }
}

#endif
