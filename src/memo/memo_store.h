/*
 * memo_store.h - where the memo keeps its values: a byte-keyed table bounded by
 * entries and by key + value bytes, evicting with S3-FIFO (memo_store.c puts it on
 * the L1 cache, pgcachewatch/l1.h).
 *
 * A deliberately small interface (get/put/clear/stats) so memo.c does not depend
 * on the L1's API. It knows nothing about loading, strategies or single flight,
 * and never calls back into anything.
 *
 * Threads: every function is thread-safe; get takes no lock (L1 hits are
 * lock-free), put/clear lock one L1 shard at a time.
 */
#ifndef PGCW_MEMO_STORE_H
#define PGCW_MEMO_STORE_H

#include <stddef.h>

#include "pgcachewatch/common.h"

typedef struct pgcw__memo_store pgcw__memo_store;

/* max_entries and max_bytes must be > 0 (the memo applies its defaults).
 * *out is owned: free with pgcw__memo_store_free(). Returns PGCW_OK, PGCW_EINVAL or
 * PGCW_ENOMEM. */
pgcw_status pgcw__memo_store_new(size_t max_entries, size_t max_bytes,
                                 pgcw__memo_store **out);

/* Frees every entry and the store. NULL is fine. */
void pgcw__memo_store_free(pgcw__memo_store *s);

/* Copies the value for key out: *value is owned (free with free()), NUL-terminated
 * past *value_len. Returns PGCW_OK, PGCW_ENOTFOUND or PGCW_ENOMEM. */
pgcw_status pgcw__memo_store_get(pgcw__memo_store *s, const void *key, size_t key_len,
                                 void **value, size_t *value_len);

/* Stores a copy of value under key, replacing any previous value. Evicts until
 * both bounds hold. Returns PGCW_OK, PGCW_ETOOBIG (key + value alone exceed one L1
 * shard's share of max_bytes, or the key is longer than PGCW_L1_MAX_KEY; nothing
 * stored, any previous value for key removed) or PGCW_ENOMEM. */
pgcw_status pgcw__memo_store_put(pgcw__memo_store *s, const void *key, size_t key_len,
                                 const void *value, size_t value_len);

/* Removes every entry. */
void pgcw__memo_store_clear(pgcw__memo_store *s);

/* Current number of entries and their key + value bytes. Either pointer may be
 * NULL. */
void pgcw__memo_store_stats(pgcw__memo_store *s, size_t *entries, size_t *bytes);

#endif
