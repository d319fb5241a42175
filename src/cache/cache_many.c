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

typedef struct many_ctx {
    pgcw__cache_row *rows;
} many_ctx;

static pgcw_status take_row(void *ctx, size_t i, const PGresult *res)
{
    many_ctx *m = ctx;
    return pgcw__cache_row_take(res, &m->rows[i], false);
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
    size_t *todo = calloc(n, sizeof *todo);
    if (!todo)
        return pgcw__cache_fail(c, PGCW_ENOMEM, "get_many: out of memory");
    bool open = pgcw__cache_l1_open(c);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        const void *k = keys[i].key ? keys[i].key : "";
        if (pgcw__cache_l1_key_ok(c, keys[i].key_len)) {
            if (open) {
                pgcw_status st =
                    pgcw_l1_get_dup(c->l1, k, keys[i].key_len, &items[i].value,
                                    &items[i].value_len, NULL);
                if (st == PGCW_OK) {
                    items[i].status = PGCW_OK;
                    continue;
                }
            } else {
                PGCW__CACHE_COUNT(c, bypasses);
            }
        }
        todo[m++] = i;
    }
    pgcw_status st = PGCW_OK;
    if (m > 0) {
        pgcw__stmt *s = calloc(m, sizeof *s);
        int *lengths = calloc(m, sizeof *lengths);
        const char **values = calloc(m, sizeof *values);
        pgcw__cache_gate *g = calloc(m, sizeof *g);
        pgcw__cache_row *rows = calloc(m, sizeof *rows);
        if (s && lengths && values && g && rows) {
            for (size_t j = 0; j < m; j++) {
                const pgcw_cache_key *k = &keys[todo[j]];
                values[j] = k->key ? k->key : "";
                lengths[j] = (int)k->key_len;
                s[j] = (pgcw__stmt){PGCW__ST_GET, 1, &values[j], &lengths[j]};
                pgcw__cache_gate_take(c, values[j], k->key_len, &g[j]);
            }
            many_ctx ctx = {rows};
            st = pgcw__cache_run(c, "get_many", s, m, take_row, &ctx);
            for (size_t j = 0; j < m; j++) {
                pgcw__cache_row *r = &rows[j];
                if (st == PGCW_OK && r->found) {
                    PGCW__CACHE_COUNT(c, l2_hits);
                    pgcw__cache_fill(c, &g[j], values[j], (size_t)lengths[j], r->value,
                                     r->len, r->version, r->remain_ms);
                    pgcw_cache_item *it = &items[todo[j]];
                    *it = (pgcw_cache_item){PGCW_OK, r->value, r->len};
                    r->value = NULL;
                } else if (st == PGCW_OK) {
                    PGCW__CACHE_COUNT(c, l2_misses);
                }
                free(r->value);
            }
        } else {
            st = pgcw__cache_fail(c, PGCW_ENOMEM, "get_many: out of memory");
        }
        free(s);
        free(lengths);
        free(values);
        free(g);
        free(rows);
    }
    free(todo);
    if (st != PGCW_OK) {
        pgcw_cache_items_free(items, n);
        for (size_t i = 0; i < n; i++)
            items[i].status = PGCW_ENOTFOUND;
    }
    return st;
}
