/*
 * cache_hash.c - postgres-cache's advisory-lock key: BLAKE2b with an 8-byte digest
 * of the key's bytes, read big-endian as a signed 64-bit integer. It must stay
 * bit-for-bit Python's `blake2b(key.encode("utf-8"), digest_size=8)`, or C and
 * Python processes stop single-flighting each other.
 */
#include <blake2.h>

#include "cache_internal.h"

int64_t pgcw__cache_hash(const void *data, size_t len)
{
    uint8_t d[8] = {0};
    /* blake2b() fails only on bad lengths (out 8 is valid; no key): never here. */
    (void)blake2b(d, data, NULL, sizeof d, len, 0);
    uint64_t u = 0;
    for (int i = 0; i < 8; i++)
        u = (u << 8) | d[i];
    return (int64_t)u;
}

int64_t pgcw_cache_lock_key(const void *key, size_t key_len)
{
    static const char empty[1] = "";
    return pgcw__cache_hash(key ? key : empty, key ? key_len : 0);
}
