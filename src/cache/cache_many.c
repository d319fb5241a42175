/*
 * cache_many.c - pgcw_cache_get_many(): the L1 answers what it can, every other key
 * is read in one pipeline (one round trip), each result filled into the L1 under
 * the ticket taken before the batch went out.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <string.h>

#include "cache_internal.h"
#include "core_err.h"

void pgcw_cache_items_free(pgcw_cache_item *items, size_t n)
{
    for (size_t i = 0; items && i < n; i++) {
        free(items[i].value);
        items[i].value = NULL;
        items[i].value_len = 0;
    }
}

/* A key the L1 did not answer: where its answer goes, its parameter, its gate and
 * the row the server returned. */
typedef struct miss {
    size_t index; /* into keys and items */
    const char *key;
    int key_len;
    pgcw__cache_gate gate;
    pgcw__cache_row row;
} miss;

static pgcw_status take_row(void *ctx, size_t i, const PGresult *res)
{
    miss *m = ctx;
    return pgcw__cache_row_take(res, &m[i].row, false);
}

pgcw_status pgcw_cache_get_many(pgcw_cache *c, const pgcw_cache_key *keys, size_t n,
                                pgcw_cache_item *items)
{
    if (!c || (n > 0 && (!keys || !items)))
        return PGCW_EINVAL;
    pgcw__err_clear(c);
    for (size_t i = 0; i < n; i++)
        items[i] = (pgcw_cache_item){.status = PGCW_ENOTFOUND};
    if (c->null || n == 0)
        return PGCW_OK;
    for (size_t i = 0; i < n; i++) {
        pgcw_status st = pgcw__cache_check_key(c, keys[i].key, keys[i].key_len);
        if (st != PGCW_OK)
            return st;
        if (keys[i].key_len > INT32_MAX)
            return pgcw__cache_fail(c, PGCW_EINVAL, "get_many: key too long");
    }
    miss *ms = calloc(n, sizeof *ms);
    pgcw__stmt *s = calloc(n, sizeof *s);
    if (!ms || !s) {
        free(ms);
        free(s);
        return pgcw__cache_fail(c, PGCW_ENOMEM, "get_many: out of memory");
    }
    bool open = pgcw__cache_l1_open(c);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        const char *k = keys[i].key ? keys[i].key : "";
        if (pgcw__cache_l1_key_ok(c, keys[i].key_len)) {
            if (open) {
                if (pgcw_l1_get_dup(c->l1, k, keys[i].key_len, &items[i].value,
                                    &items[i].value_len, NULL) == PGCW_OK) {
                    items[i].status = PGCW_OK;
                    continue;
                }
            } else {
                PGCW__CACHE_COUNT(c, bypasses);
            }
        }
        miss *x = &ms[m];
        *x = (miss){.index = i, .key = k, .key_len = (int)keys[i].key_len};
        s[m] = (pgcw__stmt){PGCW__ST_GET, 1, &x->key, &x->key_len};
        pgcw__cache_gate_take(c, k, keys[i].key_len, &x->gate);
        m++;
    }
    pgcw_status st = m > 0 ? pgcw__cache_run(c, "get_many", s, m, take_row, ms) : PGCW_OK;
    for (size_t j = 0; j < m; j++) {
        miss *x = &ms[j];
        pgcw__cache_row *r = &x->row;
        if (st == PGCW_OK && r->found) {
            PGCW__CACHE_COUNT(c, l2_hits);
            pgcw__cache_fill(c, &x->gate, x->key, (size_t)x->key_len, r->value, r->len,
                             r->version, r->remain_ms);
            items[x->index] = (pgcw_cache_item){PGCW_OK, r->value, r->len};
            r->value = NULL;
        } else if (st == PGCW_OK) {
            PGCW__CACHE_COUNT(c, l2_misses);
        }
        free(r->value);
    }
    free(ms);
    free(s);
    if (st != PGCW_OK) {
        pgcw_cache_items_free(items, n);
        for (size_t i = 0; i < n; i++)
            items[i].status = PGCW_ENOTFOUND;
    }
    return st;
}
