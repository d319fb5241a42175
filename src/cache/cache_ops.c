/*
 * cache_ops.c - get, set, delete and their batches: the L1 first, then one round
 * trip on a pool connection.
 *
 * A statement that finds its connection lost is retried once on a fresh one when
 * the connection was not new (a backend terminated or a server restarted while it
 * sat idle): every statement here is safe to repeat (a set writes the same value
 * again, a delete the same tombstone). Must never return a value it did not read
 * in this call, nor leave an L1 copy older than this process's own write.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <string.h>

#include "cache_internal.h"
#include "core_err.h"
#include "core_time.h"
#include "core_util.h"

pgcw_status pgcw__cache_check_key(pgcw_cache *c, const void *key, size_t key_len)
{
    if (!key && key_len > 0)
        return pgcw__cache_fail(c, PGCW_EINVAL, "key is NULL");
    if (key_len > 0 && memchr(key, '\0', key_len))
        return pgcw__cache_fail(c, PGCW_EINVAL,
                                "key holds a NUL byte (a text key cannot)");
    if (!pgcw__utf8_valid(key, key_len))
        return pgcw__cache_fail(c, PGCW_EINVAL, "key is not valid UTF-8");
    return PGCW_OK;
}

int64_t pgcw__cache_deadline(const pgcw_cache *c)
{
    if (c->cfg.statement_timeout_ms < 0)
        return PGCW__NEVER;
    return pgcw__deadline_in_ms(c->cfg.statement_timeout_ms + c->cfg.lock_timeout_ms +
                                1000);
}

int64_t pgcw__cache_ttl(const pgcw_cache *c, int64_t ttl_ms)
{
    if (ttl_ms == PGCW_CACHE_TTL_DEFAULT)
        ttl_ms = c->cfg.default_ttl_ms;
    return ttl_ms > 0 ? ttl_ms : 0;
}

pgcw_status pgcw__cache_row_take(const PGresult *res, pgcw__cache_row *row, bool peek)
{
    free(row->value);
    memset(row, 0, sizeof *row);
    if (PQntuples(res) == 0)
        return PGCW_OK;
    size_t len = (size_t)PQgetlength(res, 0, 0);
    row->value = malloc(len + 1);
    if (!row->value)
        return PGCW_ENOMEM;
    memcpy(row->value, PQgetvalue(res, 0, 0), len);
    row->value[len] = '\0';
    row->len = len;
    row->version = pgcw__res_int64(res, 0, 1);
    row->remain_ms = pgcw__res_int64(res, 0, 2);
    row->found = true;
    row->live = peek ? pgcw__res_bool(res, 0, 3) : true;
    return PGCW_OK;
}

pgcw_status pgcw__cache_exec(pgcw_cache *c, const pgcw__stmt *stmts, size_t n,
                             int64_t deadline, pgcw__result_fn fn, void *ctx, char *err,
                             size_t errlen)
{
    for (int attempt = 0;; attempt++) {
        pgcw__pooled *pc;
        err[0] = '\0';
        pgcw_status st = pgcw__pool_checkout(c->pool, deadline, &pc, err, errlen);
        if (st != PGCW_OK)
            return st;
        bool broken = false;
        st = pgcw__exec(pc->conn.pg, stmts, n, deadline, fn, ctx, err, errlen, &broken);
        bool fresh = pc->fresh;
        pgcw__pool_checkin(c->pool, pc, broken);
        if (st == PGCW_ECONNLOST && !fresh && attempt == 0) {
            PGCW__CACHE_COUNT(c, retries);
            continue;
        }
        if (st != PGCW_OK && !err[0])
            pgcw__errf(err, errlen, "%s", pgcw_strerror(st));
        return st;
    }
}

pgcw_status pgcw__cache_run(pgcw_cache *c, const char *what, const pgcw__stmt *stmts,
                            size_t n, pgcw__result_fn fn, void *ctx)
{
    char err[1024];
    pgcw_status st =
        pgcw__cache_exec(c, stmts, n, pgcw__cache_deadline(c), fn, ctx, err, sizeof err);
    if (st != PGCW_OK)
        return pgcw__cache_fail(c, st, "%s: %s", what, err);
    return PGCW_OK;
}

/* --- get ------------------------------------------------------------------------ */

static pgcw_status take_row(void *ctx, size_t i, const PGresult *res)
{
    (void)i;
    return pgcw__cache_row_take(res, ctx, false);
}

/* The L1 and then the table. Copies into buf (dup NULL) or allocates (*dup). */
static pgcw_status get(pgcw_cache *c, const void *key, size_t key_len, void *buf,
                       size_t buf_len, void **dup, size_t *value_len, int64_t *version)
{
    if (!c || !value_len || (dup == NULL && !buf && buf_len > 0))
        return PGCW_EINVAL;
    if (version)
        *version = 0;
    pgcw__err_clear(c);
    if (c->null)
        return PGCW_ENOTFOUND;
    pgcw_status st = pgcw__cache_check_key(c, key, key_len);
    if (st != PGCW_OK)
        return st;
    if (!key)
        key = "";
    if (pgcw__cache_l1_key_ok(c, key_len)) {
        if (pgcw__cache_l1_open(c)) {
            st = dup ? pgcw_l1_get_dup(c->l1, key, key_len, dup, value_len, version)
                     : pgcw_l1_get(c->l1, key, key_len, buf, buf_len, value_len, version);
            if (st == PGCW_OK || st == PGCW_ETOOBIG) {
                return st;
            }
            if (st == PGCW_ENOMEM)
                return pgcw__cache_fail(c, st, "get: out of memory");
        } else {
            PGCW__CACHE_COUNT(c, bypasses);
        }
    }
    pgcw__cache_gate g;
    pgcw__cache_gate_take(c, key, key_len, &g);
    const char *values[1] = {key};
    int lengths[1] = {(int)key_len};
    pgcw__stmt s = {PGCW__ST_GET, 1, values, lengths};
    pgcw__cache_row row = {0};
    st = pgcw__cache_run(c, "get", &s, 1, take_row, &row);
    if (st != PGCW_OK) {
        free(row.value);
        return st;
    }
    if (!row.found) {
        PGCW__CACHE_COUNT(c, l2_misses);
        return PGCW_ENOTFOUND;
    }
    PGCW__CACHE_COUNT(c, l2_hits);
    pgcw__cache_fill(c, &g, key, key_len, row.value, row.len, row.version, row.remain_ms);
    *value_len = row.len;
    if (version)
        *version = row.version;
    if (dup) {
        *dup = row.value;
        return PGCW_OK;
    }
    if (row.len > buf_len) {
        free(row.value);
        return PGCW_ETOOBIG;
    }
    if (row.len && buf) /* buf is NULL only with buf_len 0, refused above */
        memcpy(buf, row.value, row.len);
    free(row.value);
    return PGCW_OK;
}

pgcw_status pgcw_cache_get(pgcw_cache *c, const void *key, size_t key_len, void **value,
                           size_t *value_len)
{
    if (!value)
        return PGCW_EINVAL;
    *value = NULL;
    return get(c, key, key_len, NULL, 0, value, value_len, NULL);
}

pgcw_status pgcw_cache_get_versioned(pgcw_cache *c, const void *key, size_t key_len,
                                     void **value, size_t *value_len, int64_t *version)
{
    if (!value || !version)
        return PGCW_EINVAL;
    *value = NULL;
    *version = 0;
    return get(c, key, key_len, NULL, 0, value, value_len, version);
}

pgcw_status pgcw_cache_get_into(pgcw_cache *c, const void *key, size_t key_len, void *buf,
                                size_t buf_len, size_t *value_len)
{
    return get(c, key, key_len, buf, buf_len, NULL, value_len, NULL);
}

/* --- set and delete ------------------------------------------------------------- */

/* One set or delete: its parameters (key, value, TTL as 8 bytes), its gate and
 * what the server returned. */
typedef struct write_item {
    const char *values[3];
    int lengths[3];
    char ttl_be[8];
    int64_t ttl_ms;  /* as sent: > 0, or 0 for none */
    int64_t version; /* RETURNING version */
    pgcw__cache_gate gate;
} write_item;

static pgcw_status take_version(void *ctx, size_t i, const PGresult *res)
{
    write_item *w = ctx;
    w[i].version = PQntuples(res) > 0 ? pgcw__res_int64(res, 0, 0) : 0;
    return PGCW_OK;
}

/* Sends the notices of a committed batch (notify modes other than TRIGGER). */
static pgcw_status announce_batch(pgcw_cache *c, const char *what, const write_item *w,
                                  size_t n)
{
    pgcw__notice one, *nt = n == 1 ? &one : calloc(n, sizeof *nt);
    if (!nt)
        return pgcw__cache_fail(c, PGCW_ENOMEM, "%s: out of memory", what);
    for (size_t i = 0; i < n; i++)
        nt[i] = (pgcw__notice){w[i].values[0], (size_t)w[i].lengths[0], w[i].version};
    pgcw_status st = pgcw__cache_announce(c, what, nt, n);
    if (nt != &one)
        free(nt);
    return st;
}

/* Writes n entries (deletes when del) in one transaction, then updates the L1. A
 * single write (set, delete) allocates nothing. */
static pgcw_status write_batch(pgcw_cache *c, const char *what, const pgcw_cache_entry *e,
                               size_t n, bool del, int64_t *version)
{
    pgcw__err_clear(c);
    for (size_t i = 0; i < n; i++) {
        pgcw_status st = pgcw__cache_check_key(c, e[i].key, e[i].key_len);
        if (st != PGCW_OK)
            return st;
        if ((!e[i].value && e[i].value_len > 0) || e[i].value_len > INT32_MAX ||
            e[i].key_len > INT32_MAX)
            return pgcw__cache_fail(c, PGCW_EINVAL, "%s: bad value or key length", what);
    }
    if (n == 0)
        return PGCW_OK;
    write_item one_w;
    pgcw__stmt one_s;
    write_item *w = n == 1 ? &one_w : calloc(n, sizeof *w);
    pgcw__stmt *s = n == 1 ? &one_s : calloc(n, sizeof *s);
    pgcw_status st = PGCW_OK;
    if (!w || !s) {
        st = pgcw__cache_fail(c, PGCW_ENOMEM, "%s: out of memory", what);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        write_item *x = &w[i];
        x->ttl_ms = del ? 0 : pgcw__cache_ttl(c, e[i].ttl_ms);
        x->values[0] = e[i].key ? e[i].key : "";
        x->lengths[0] = (int)e[i].key_len;
        x->values[1] = e[i].value ? e[i].value : "";
        x->lengths[1] = (int)e[i].value_len;
        pgcw__put_int64(x->ttl_be, x->ttl_ms);
        x->values[2] = x->ttl_be;
        x->lengths[2] = 8;
        x->version = 0;
        s[i] = (pgcw__stmt){del ? PGCW__ST_DEL : PGCW__ST_SET, del ? 1 : 3, x->values,
                            x->lengths};
        pgcw__cache_gate_take(c, x->values[0], e[i].key_len, &x->gate);
    }
    if (n == 1 && c->combiner) {
        char err[PGCW__ERR_MAX];
        st = pgcw__cache_combine(c, &s[0], w[0].values[0], e[0].key_len, &w[0].version,
                                 err, sizeof err);
        if (st != PGCW_OK)
            st = pgcw__cache_fail(c, st, "%s: %s", what, err);
    } else {
        st = pgcw__cache_run(c, what, s, n, take_version, w);
    }
    for (size_t i = 0; i < n && c->l1; i++) {
        if (st == PGCW_OK && !del)
            pgcw__cache_own_write(c, &w[i].gate, w[i].values[0], e[i].key_len, e[i].value,
                                  e[i].value_len, w[i].version,
                                  w[i].ttl_ms > 0 ? w[i].ttl_ms : -1);
        else
            (void)pgcw_l1_delete(c->l1, w[i].values[0], e[i].key_len);
    }
    if (st == PGCW_OK && c->notifier)
        st = announce_batch(c, what, w, n);
    if (st == PGCW_OK)
        atomic_fetch_add_explicit(del ? &c->n.deletes : &c->n.sets, n,
                                  memory_order_relaxed);
    if (st == PGCW_OK && version && n == 1)
        *version = w[0].version;
out:
    if (w != &one_w)
        free(w);
    if (s != &one_s)
        free(s);
    return st;
}

pgcw_status pgcw_cache_set_versioned(pgcw_cache *c, const void *key, size_t key_len,
                                     const void *value, size_t value_len, int64_t ttl_ms,
                                     int64_t *version)
{
    if (version)
        *version = 0;
    if (!c)
        return PGCW_EINVAL;
    if (c->null) {
        pgcw__err_clear(c);
        return PGCW_OK;
    }
    pgcw_cache_entry e = {key, key_len, value, value_len, ttl_ms};
    return write_batch(c, "set", &e, 1, false, version);
}

pgcw_status pgcw_cache_set(pgcw_cache *c, const void *key, size_t key_len,
                           const void *value, size_t value_len, int64_t ttl_ms)
{
    return pgcw_cache_set_versioned(c, key, key_len, value, value_len, ttl_ms, NULL);
}

pgcw_status pgcw_cache_set_many(pgcw_cache *c, const pgcw_cache_entry *entries, size_t n)
{
    if (!c || (!entries && n > 0))
        return PGCW_EINVAL;
    if (c->null)
        return PGCW_OK;
    return write_batch(c, "set_many", entries, n, false, NULL);
}

static pgcw_status delete_keys(pgcw_cache *c, const char *what,
                               const pgcw_cache_key *keys, size_t n)
{
    if (!c || (!keys && n > 0))
        return PGCW_EINVAL;
    if (c->null)
        return PGCW_OK;
    pgcw_cache_entry one, *e = n == 1 ? &one : calloc(n ? n : 1, sizeof *e);
    if (!e)
        return pgcw__cache_fail(c, PGCW_ENOMEM, "%s: out of memory", what);
    for (size_t i = 0; i < n; i++)
        e[i] = (pgcw_cache_entry){.key = keys[i].key, .key_len = keys[i].key_len};
    pgcw_status st = write_batch(c, what, e, n, true, NULL);
    if (e != &one)
        free(e);
    return st;
}

pgcw_status pgcw_cache_delete(pgcw_cache *c, const void *key, size_t key_len)
{
    pgcw_cache_key k = {key, key_len};
    return delete_keys(c, "delete", &k, 1);
}

pgcw_status pgcw_cache_invalidate(pgcw_cache *c, const void *key, size_t key_len)
{
    pgcw_cache_key k = {key, key_len};
    return delete_keys(c, "invalidate", &k, 1);
}

pgcw_status pgcw_cache_delete_many(pgcw_cache *c, const pgcw_cache_key *keys, size_t n)
{
    return delete_keys(c, "delete_many", keys, n);
}

/* --- cleanup -------------------------------------------------------------------- */

static pgcw_status take_int4(void *ctx, size_t i, const PGresult *res)
{
    (void)i;
    int *out = ctx;
    if (PQntuples(res) > 0 && PQgetlength(res, 0, 0) == 4) {
        const unsigned char *p = (const unsigned char *)PQgetvalue(res, 0, 0);
        *out = (int)(((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
                     ((uint32_t)p[2] << 8) | p[3]);
    }
    return PGCW_OK;
}

pgcw_status pgcw_cache_cleanup_expired(pgcw_cache *c, int *removed)
{
    if (!c)
        return PGCW_EINVAL;
    pgcw__err_clear(c);
    int n = 0;
    if (removed)
        *removed = 0;
    if (c->null)
        return PGCW_OK;
    uint32_t b = (uint32_t)c->cfg.cleanup_batch;
    char limit[4] = {(char)(b >> 24), (char)(b >> 16), (char)(b >> 8), (char)b};
    const char *values[1] = {limit};
    int lengths[1] = {4};
    pgcw__stmt s = {PGCW__ST_CLEANUP, 1, values, lengths};
    pgcw_status st = pgcw__cache_run(c, "cleanup_expired", &s, 1, take_int4, &n);
    if (st == PGCW_OK && removed)
        *removed = n;
    return st;
}
