/*
 * l1_hash.c - the L1's key hash: seeded, word-at-a-time, a strong final mix.
 *
 * Short keys are the common case, so it reads 8 bytes per step with memcpy (no
 * alignment assumptions) and finishes with the splitmix64 finalizer; the seed is
 * per cache so keys chosen to collide in one process do not collide in another.
 * Must stay a pure function: no state, no allocation.
 */
#include "l1_internal.h"

static inline uint64_t rotl(uint64_t x, unsigned r)
{
    return (x << r) | (x >> (64 - r));
}

static inline uint64_t fmix(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9u;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebu;
    x ^= x >> 31;
    return x;
}

uint64_t pgcw__l1_hash(uint64_t seed, const void *key, size_t len)
{
    const unsigned char *p = key;
    uint64_t h = seed ^ ((uint64_t)len * 0x9E3779B97F4A7C15u);
    while (len >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = rotl(h ^ (w * 0x87c37b91114253d5u), 31) * 0x4cf5ad432745937fu;
        p += 8;
        len -= 8;
    }
    if (len) {
        uint64_t w = 0;
        memcpy(&w, p, len);
        h = rotl(h ^ (w * 0x87c37b91114253d5u), 31) * 0x4cf5ad432745937fu;
    }
    return fmix(h);
}
