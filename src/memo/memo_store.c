/*
 * memo_store.c - the memo's value table, on the L1 cache (pgcachewatch/l1.h):
 * sharded, lock-free hits, S3-FIFO eviction, both bounds held at every instant.
 *
 * A thin adapter: it only maps the memo's "keys + values" byte bound onto the L1's
 * payload-only accounting. It must never call out (the L1 has no callbacks here:
 * the default clock is used and no TTL is set) and never hand out pointers into
 * the cache's memory (values are copied out).
 */
#include "memo_store.h"

#include <stdlib.h>

#include "l1_internal.h"

struct pgcw__memo_store {
    pgcw_l1 *l1;
};

pgcw_status pgcw__memo_store_new(size_t max_entries, size_t max_bytes,
                                 pgcw__memo_store **out)
{
    if (!out)
        return PGCW_EINVAL;
    *out = NULL;
    if (max_entries == 0 || max_bytes == 0)
        return PGCW_EINVAL;
    pgcw__memo_store *s = calloc(1, sizeof(*s));
    if (!s)
        return PGCW_ENOMEM;
    pgcw_l1_opts o = {.max_entries = max_entries, .max_bytes = max_bytes};
    pgcw_status st = pgcw_l1_new(&o, &s->l1);
    if (st != PGCW_OK) {
        free(s);
        return st;
    }
    /* The memo's public bound is keys + values (memo.h), not the L1's cost. */
    pgcw__l1_count_payload_only(s->l1);
    *out = s;
    return PGCW_OK;
}

void pgcw__memo_store_free(pgcw__memo_store *s)
{
    if (!s)
        return;
    pgcw_l1_free(s->l1);
    free(s);
}

pgcw_status pgcw__memo_store_get(pgcw__memo_store *s, const void *key, size_t key_len,
                                 void **value, size_t *value_len)
{
    return pgcw_l1_get_dup(s->l1, key, key_len, value, value_len, NULL);
}

pgcw_status pgcw__memo_store_put(pgcw__memo_store *s, const void *key, size_t key_len,
                                 const void *value, size_t value_len)
{
    return pgcw_l1_set(s->l1, key, key_len, value, value_len, 0, PGCW_L1_TTL_NONE);
}

void pgcw__memo_store_clear(pgcw__memo_store *s)
{
    pgcw_l1_clear(s->l1);
}

void pgcw__memo_store_stats(pgcw__memo_store *s, size_t *entries, size_t *bytes)
{
    pgcw_l1_stats st;
    pgcw_l1_stats_get(s->l1, &st);
    if (entries)
        *entries = st.entries;
    if (bytes)
        *bytes = st.bytes;
}
