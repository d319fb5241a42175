/*
 * memo_store.c - the memo's value table: chained hash buckets for lookup plus one
 * insertion-ordered list for oldest-first eviction, all under one mutex.
 *
 * Simple on purpose: it is a stand-in until the concurrent L1 replaces it behind
 * memo_store.h. It must never exceed its bounds after a call returns, never call
 * out while locked, and never hand out pointers into its own memory.
 */
#define _POSIX_C_SOURCE 200809L
#include "memo_store.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* One allocation per entry: the struct, then the key, then the value. */
typedef struct entry {
    struct entry *chain;         /* next in the same bucket */
    struct entry *older, *newer; /* insertion order */
    uint64_t hash;
    size_t key_len, value_len;
    unsigned char data[];
} entry;

struct pgcw__memo_store {
    pthread_mutex_t mu;
    entry **buckets;
    size_t n_buckets; /* power of two */
    entry *oldest, *newest;
    size_t entries, bytes;
    size_t max_entries, max_bytes;
};

#define MIN_BUCKETS 16

/* FNV-1a: keys are short and this is a temporary store; good enough spread. */
static uint64_t hash_bytes(const void *key, size_t len)
{
    const unsigned char *p = key;
    uint64_t h = 14695981039346656037ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 1099511628211ULL;
    }
    return h;
}

pgcw_status pgcw__memo_store_new(size_t max_entries, size_t max_bytes,
                                 pgcw__memo_store **out)
{
    if (!out)
        return PGCW_EINVAL;
    *out = NULL;
    if (max_entries == 0 || max_bytes == 0)
        return PGCW_EINVAL;
    pgcw__memo_store *s = calloc(1, sizeof *s);
    if (!s)
        return PGCW_ENOMEM;
    s->buckets = calloc(MIN_BUCKETS, sizeof *s->buckets);
    if (!s->buckets) {
        free(s);
        return PGCW_ENOMEM;
    }
    if (pthread_mutex_init(&s->mu, NULL) != 0) {
        free(s->buckets);
        free(s);
        return PGCW_ENOMEM;
    }
    s->n_buckets = MIN_BUCKETS;
    s->max_entries = max_entries;
    s->max_bytes = max_bytes;
    *out = s;
    return PGCW_OK;
}

static void free_all(pgcw__memo_store *s)
{
    entry *e = s->oldest;
    while (e) {
        entry *next = e->newer;
        free(e);
        e = next;
    }
    memset(s->buckets, 0, s->n_buckets * sizeof *s->buckets);
    s->oldest = s->newest = NULL;
    s->entries = s->bytes = 0;
}

void pgcw__memo_store_free(pgcw__memo_store *s)
{
    if (!s)
        return;
    free_all(s);
    free(s->buckets);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

/* Returns the link that points at the entry for key (or at the NULL ending its
 * chain), so callers can both find and unlink. */
static entry **find_link(pgcw__memo_store *s, uint64_t h, const void *key, size_t len)
{
    entry **link = &s->buckets[h & (s->n_buckets - 1)];
    while (*link) {
        entry *e = *link;
        if (e->hash == h && e->key_len == len && memcmp(e->data, key, len) == 0)
            break;
        link = &e->chain;
    }
    return link;
}

static void unlink_entry(pgcw__memo_store *s, entry **link)
{
    entry *e = *link;
    *link = e->chain;
    if (e->older)
        e->older->newer = e->newer;
    else
        s->oldest = e->newer;
    if (e->newer)
        e->newer->older = e->older;
    else
        s->newest = e->older;
    s->entries--;
    s->bytes -= e->key_len + e->value_len;
    free(e);
}

static void evict_oldest(pgcw__memo_store *s)
{
    entry *e = s->oldest;
    unlink_entry(s, find_link(s, e->hash, e->data, e->key_len));
}

/* Doubles the bucket array when the load factor passes 1. A failed grow is not an
 * error: chains just get longer. */
static void maybe_grow(pgcw__memo_store *s)
{
    if (s->entries < s->n_buckets)
        return;
    size_t n = s->n_buckets * 2;
    entry **b = calloc(n, sizeof *b);
    if (!b)
        return;
    for (entry *e = s->oldest; e; e = e->newer) {
        entry **slot = &b[e->hash & (n - 1)];
        e->chain = *slot;
        *slot = e;
    }
    free(s->buckets);
    s->buckets = b;
    s->n_buckets = n;
}

pgcw_status pgcw__memo_store_get(pgcw__memo_store *s, const void *key, size_t key_len,
                                 void **value, size_t *value_len)
{
    *value = NULL;
    *value_len = 0;
    uint64_t h = hash_bytes(key, key_len);
    pgcw_status st = PGCW_ENOTFOUND;
    pthread_mutex_lock(&s->mu);
    entry *e = *find_link(s, h, key, key_len);
    if (e) {
        char *copy = malloc(e->value_len + 1);
        if (copy) {
            memcpy(copy, e->data + e->key_len, e->value_len);
            copy[e->value_len] = '\0';
            *value = copy;
            *value_len = e->value_len;
            st = PGCW_OK;
        } else {
            st = PGCW_ENOMEM;
        }
    }
    pthread_mutex_unlock(&s->mu);
    return st;
}

pgcw_status pgcw__memo_store_put(pgcw__memo_store *s, const void *key, size_t key_len,
                                 const void *value, size_t value_len)
{
    uint64_t h = hash_bytes(key, key_len);
    bool too_big = key_len > s->max_bytes || value_len > s->max_bytes - key_len;
    /* Allocate before locking: the copy can be large. */
    entry *n = NULL;
    if (!too_big) {
        n = malloc(sizeof *n + key_len + value_len);
        if (!n)
            return PGCW_ENOMEM;
        n->hash = h;
        n->key_len = key_len;
        n->value_len = value_len;
        if (key_len)
            memcpy(n->data, key, key_len);
        if (value_len)
            memcpy(n->data + key_len, value, value_len);
    }
    pthread_mutex_lock(&s->mu);
    entry **link = find_link(s, h, key, key_len);
    if (*link)
        unlink_entry(s, link); /* the old value must not survive a failed replace */
    if (!n) {
        pthread_mutex_unlock(&s->mu);
        return PGCW_ETOOBIG;
    }
    while (s->oldest && (s->entries + 1 > s->max_entries ||
                         s->bytes + key_len + value_len > s->max_bytes))
        evict_oldest(s);
    maybe_grow(s);
    entry **slot = &s->buckets[h & (s->n_buckets - 1)];
    n->chain = *slot;
    *slot = n;
    n->newer = NULL;
    n->older = s->newest;
    if (s->newest)
        s->newest->newer = n;
    else
        s->oldest = n;
    s->newest = n;
    s->entries++;
    s->bytes += key_len + value_len;
    pthread_mutex_unlock(&s->mu);
    return PGCW_OK;
}

void pgcw__memo_store_clear(pgcw__memo_store *s)
{
    /* Detach under the lock, free outside it: readers should not wait for free(). */
    pthread_mutex_lock(&s->mu);
    entry *e = s->oldest;
    memset(s->buckets, 0, s->n_buckets * sizeof *s->buckets);
    s->oldest = s->newest = NULL;
    s->entries = s->bytes = 0;
    pthread_mutex_unlock(&s->mu);
    while (e) {
        entry *next = e->newer;
        free(e);
        e = next;
    }
}

void pgcw__memo_store_stats(pgcw__memo_store *s, size_t *entries, size_t *bytes)
{
    pthread_mutex_lock(&s->mu);
    if (entries)
        *entries = s->entries;
    if (bytes)
        *bytes = s->bytes;
    pthread_mutex_unlock(&s->mu);
}
