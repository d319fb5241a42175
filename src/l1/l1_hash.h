/*
 * l1_hash.h - the L1's key hash: seeded, word-at-a-time, a strong final mix.
 *
 * Short keys are the common case, so it reads 8 bytes per step with memcpy (no
 * alignment assumptions) and finishes with the splitmix64 finalizer; the seed is
 * per cache so keys chosen to collide in one process do not collide in another.
 * Inline because every operation hashes once: as a call it was 49 of the ~260
 * instructions of a hit (cachegrind, docs/l1.md). Must stay a pure function: no
 * state, no allocation.
 */
#ifndef PGCW_L1_HASH_H
#define PGCW_L1_HASH_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline uint64_t pgcw__l1_rotl(uint64_t x, unsigned r)
{
    return (x << r) | (x >> (64 - r));
}

static inline uint64_t pgcw__l1_hash(uint64_t seed, const void *key, size_t len)
{
    const unsigned char *p = key;
    uint64_t h = seed ^ ((uint64_t)len * 0x9E3779B97F4A7C15u);
    while (len >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = pgcw__l1_rotl(h ^ (w * 0x87c37b91114253d5u), 31) * 0x4cf5ad432745937fu;
        p += 8;
        len -= 8;
    }
    if (len) {
        uint64_t w = 0;
        memcpy(&w, p, len);
        h = pgcw__l1_rotl(h ^ (w * 0x87c37b91114253d5u), 31) * 0x4cf5ad432745937fu;
    }
    /* splitmix64's finalizer */
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9u;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebu;
    h ^= h >> 31;
    return h;
}

#endif
