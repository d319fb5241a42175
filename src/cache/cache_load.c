/*
 * cache_load.c - pgcw_cache_get_or_set(): load a missing value once across threads
 * (core single flight) and processes (postgres-cache's advisory lock), and never
 * write back a value whose load raced a write of its key (the lease).
 *
 * The leader holds one pool connection from the lock to the unlock, so the lock
 * (a session lock) is released on every path: explicitly after the write, the
 * loader's failure or a refused write, and by the server when the connection is
 * lost. Must never call the loader with an internal lock held, nor hand a waiter
 * anything but the leader's own outcome.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <string.h>

#include "cache_internal.h"
#include "core_err.h"
#include "core_time.h"
#include "core_util.h"

struct pgcw_cache_result {
    char *value;
    size_t len;
    bool has_value;
    bool has_ttl;
    int64_t ttl_ms;
    char *error;
};

pgcw_status pgcw_cache_result_set(pgcw_cache_result *r, const void *value, size_t len)
{
    if (!r || (!value && len > 0))
        return PGCW_EINVAL;
    char *copy = pgcw__strndup(len ? value : "", len); /* binary-safe */
    if (!copy)
        return PGCW_ENOMEM;
    free(r->value);
    r->value = copy;
    r->len = len;
    r->has_value = true;
    return PGCW_OK;
}

void pgcw_cache_result_ttl(pgcw_cache_result *r, int64_t ttl_ms)
{
    if (r) {
        r->ttl_ms = ttl_ms;
        r->has_ttl = true;
    }
}

void pgcw_cache_result_error(pgcw_cache_result *r, const char *message)
{
    if (!r || !message)
        return;
    free(r->error);
    r->error = pgcw__strdup(message);
}

/* Calls the loader; on PGCW_OK r holds a value. */
static pgcw_status call_loader(pgcw_cache *c, const void *key, size_t key_len,
                               pgcw_cache_load_fn load, void *ctx, pgcw_cache_result *r)
{
    PGCW__CACHE_COUNT(c, loads);
    pgcw_status st = load(ctx, key, key_len, r);
    if (st == PGCW_OK && !r->has_value)
        st = PGCW_ELOADER;
    if (st != PGCW_OK) {
        PGCW__CACHE_COUNT(c, load_errors);
        if (!r->error)
            r->error = pgcw__strdup(r->has_value || st != PGCW_ELOADER
                                        ? pgcw_strerror(st)
                                        : "the loader returned no value");
    }
    return st;
}

/* The key for a message: up to 48 bytes, control bytes shown as '?'. */
static void key_label(const void *key, size_t len, char *out, size_t outlen)
{
    size_t n = len < 48 ? len : 48, o = 0;
    const unsigned char *k = key;
    for (size_t i = 0; i < n && o + 1 < outlen; i++)
        out[o++] = k[i] < 0x20 || k[i] == 0x7f ? '?' : (char)k[i];
    out[o] = '\0';
    if (len > n && o + 4 < outlen)
        memcpy(out + o, "...", 4);
}

typedef struct leader {
    pgcw_cache *c;
    const void *key;
    size_t key_len;
    pgcw__pooled *pc;
    int64_t deadline;
    char err[1024];
    bool broken;
    char lock[8];
    pgcw__cache_row row;
    int64_t version; /* RETURNING of the write, 0: refused */
    bool flag;
} leader;

static pgcw_status take_bool(void *ctx, size_t i, const PGresult *res)
{
    (void)i;
    leader *l = ctx;
    l->flag = PQntuples(res) > 0 && pgcw__res_bool(res, 0, 0);
    return PGCW_OK;
}

static pgcw_status take_peek(void *ctx, size_t i, const PGresult *res)
{
    (void)i;
    leader *l = ctx;
    return pgcw__cache_row_take(res, &l->row, true);
}

static pgcw_status take_version(void *ctx, size_t i, const PGresult *res)
{
    (void)i;
    leader *l = ctx;
    l->version = PQntuples(res) > 0 ? pgcw__res_int64(res, 0, 0) : 0;
    return PGCW_OK;
}

static pgcw_status one(leader *l, const char *name, int n_params,
                       const char *const *values, const int *lengths, pgcw__result_fn fn)
{
    pgcw__stmt s = {name, n_params, values, lengths};
    bool broken = false;
    pgcw_status st = pgcw__exec(l->pc->conn.pg, &s, 1, l->deadline, fn, l, l->err,
                                sizeof l->err, &broken);
    l->broken |= broken;
    return st;
}

/* Takes the advisory lock, waiting on the server (woken when it is released). */
static pgcw_status lock(leader *l)
{
    const char *values[1] = {l->lock};
    int lengths[1] = {8};
    pgcw_status st = one(l, PGCW__ST_TRYLOCK, 1, values, lengths, take_bool);
    if (st != PGCW_OK || l->flag)
        return st;
    PGCW__CACHE_COUNT(l->c, lock_waits);
    st = one(l, PGCW__ST_LOCK, 1, values, lengths, NULL);
    if (st == PGCW_ETIMEDOUT && !l->broken) {
        PGCW__CACHE_COUNT(l->c, lock_timeouts);
        char label[64];
        key_label(l->key, l->key_len, label, sizeof label);
        pgcw__errf(l->err, sizeof l->err,
                   "the lock on key \"%s\" (advisory lock %lld) was not granted within "
                   "%lld ms: another client is loading it",
                   label, (long long)pgcw__cache_hash(l->key, l->key_len),
                   (long long)l->c->cfg.lock_timeout_ms);
    }
    return st;
}

static void unlock(leader *l)
{
    if (l->broken)
        return; /* the session, and with it the lock, is gone */
    const char *values[1] = {l->lock};
    int lengths[1] = {8};
    char keep[sizeof l->err];
    memcpy(keep, l->err, sizeof keep);
    (void)one(l, PGCW__ST_UNLOCK, 1, values, lengths, NULL);
    memcpy(l->err, keep, sizeof keep);
}

/* Writes the loaded value unless the key was written since the re-check. */
static pgcw_status write_lease(leader *l, const pgcw_cache_result *r, int64_t ttl)
{
    char t[8], v[8];
    pgcw__put_int64(t, ttl);
    pgcw__put_int64(v, l->row.version);
    const char *values[4] = {l->key, r->value, t, v};
    int lengths[4] = {(int)l->key_len, (int)r->len, 8, 8};
    return l->row.found ? one(l, PGCW__ST_FILL_OLD, 4, values, lengths, take_version)
                        : one(l, PGCW__ST_FILL_NEW, 3, values, lengths, take_version);
}

/* The leader's work; on PGCW_OK *value and *len are owned; *msg: the failure's detail. */
static pgcw_status lead(pgcw_cache *c, const void *key, size_t key_len, int64_t ttl_ms,
                        pgcw_cache_load_fn load, void *ctx, void **value, size_t *len,
                        char **msg)
{
    leader l = {
        .c = c, .key = key, .key_len = key_len, .deadline = pgcw__cache_deadline(c)};
    pgcw__put_int64(l.lock, pgcw__cache_hash(key, key_len));
    pgcw_status st = pgcw__pool_checkout(c->pool, l.deadline, &l.pc, l.err, sizeof l.err);
    if (st != PGCW_OK) {
        *msg = pgcw__strdup(l.err);
        return st;
    }
    pgcw__cache_gate g;
    pgcw__cache_gate_take(c, key, key_len, &g);
    st = lock(&l);
    if (st == PGCW_OK) {
        const char *values[1] = {key};
        int lengths[1] = {(int)key_len};
        st = one(&l, PGCW__ST_PEEK, 1, values, lengths, take_peek);
        if (st == PGCW_OK && l.row.found && l.row.live) {
            /* Another client loaded it while we waited for the lock. */
            PGCW__CACHE_COUNT(c, l2_hits);
            pgcw__cache_fill(c, &g, key, key_len, l.row.value, l.row.len, l.row.version,
                             l.row.remain_ms);
            *value = l.row.value;
            *len = l.row.len;
            l.row.value = NULL;
        } else if (st == PGCW_OK) {
            PGCW__CACHE_COUNT(c, l2_misses);
            pgcw_cache_result r = {0};
            st = call_loader(c, key, key_len, load, ctx, &r);
            if (st == PGCW_OK) {
                int64_t ttl = pgcw__cache_ttl(c, r.has_ttl ? r.ttl_ms : ttl_ms);
                pgcw_status wst = write_lease(&l, &r, ttl);
                if (wst == PGCW_OK && l.version > 0) {
                    pgcw__cache_own_write(c, &g, key, key_len, r.value, r.len, l.version,
                                          ttl > 0 ? ttl : -1);
                    pgcw__notice nt = {key, key_len, l.version};
                    wst = pgcw__cache_announce(c, "loaded value", &nt, 1);
                    if (wst != PGCW_OK) /* the detail is set; keep it */
                        pgcw__errf(l.err, sizeof l.err, "%s", pgcw_cache_errmsg(c));
                } else if (wst == PGCW_OK)
                    PGCW__CACHE_COUNT(c, lease_refusals);
                if (wst != PGCW_OK)
                    st = wst;
                *value = r.value;
                *len = r.len;
                r.value = NULL;
            } else {
                *msg = r.error;
                r.error = NULL;
            }
            free(r.value);
            free(r.error);
        }
        unlock(&l);
    }
    free(l.row.value);
    pgcw__pool_checkin(c->pool, l.pc, l.broken);
    if (st != PGCW_OK) {
        if (*value) {
            free(*value);
            *value = NULL;
        }
        if (!*msg)
            *msg = pgcw__strdup(l.err[0] ? l.err : pgcw_strerror(st));
    }
    return st;
}

typedef struct recheck_ctx {
    pgcw_cache *c;
    const void *key;
    size_t key_len;
} recheck_ctx;

/* Under the flight group's lock, lock-free: is the key in the L1 by now? */
static bool in_l1(void *ctx)
{
    recheck_ctx *r = ctx;
    size_t need;
    if (!pgcw__cache_l1_key_ok(r->c, r->key_len) || !pgcw__cache_l1_open(r->c))
        return false;
    pgcw_status st = pgcw_l1_get(r->c->l1, r->key, r->key_len, NULL, 0, &need, NULL);
    return st == PGCW_OK || st == PGCW_ETOOBIG;
}

static pgcw_status null_load(pgcw_cache *c, const void *key, size_t key_len,
                             pgcw_cache_load_fn load, void *ctx, void **value,
                             size_t *len)
{
    pgcw_cache_result r = {0};
    pgcw_status st = call_loader(c, key, key_len, load, ctx, &r);
    if (st == PGCW_OK) {
        *value = r.value;
        *len = r.len;
    } else {
        pgcw__err_set(c, "%s", r.error ? r.error : pgcw_strerror(st));
        free(r.value);
    }
    free(r.error);
    return st;
}

pgcw_status pgcw_cache_get_or_set(pgcw_cache *c, const void *key, size_t key_len,
                                  int64_t ttl_ms, pgcw_cache_load_fn load, void *load_ctx,
                                  void **value, size_t *value_len)
{
    if (!c || !load || !value || !value_len)
        return PGCW_EINVAL;
    *value = NULL;
    *value_len = 0;
    pgcw__err_clear(c);
    pgcw_status st;
    if (c->null) {
        st = pgcw__cache_check_key(c, key, key_len);
        return st != PGCW_OK ? st
                             : null_load(c, key ? key : "", key_len, load, load_ctx,
                                         value, value_len);
    }
    for (;;) {
        /* The key is checked here (PGCW_EINVAL), before anything else uses it. */
        st = pgcw_cache_get(c, key, key_len, value, value_len);
        if (st != PGCW_ENOTFOUND)
            return st;
        if (!key)
            key = ""; /* NULL with length 0, as get accepted */
        recheck_ctx rc = {c, key, key_len};
        pgcw__flight *f;
        pgcw__flight_role role;
        st = pgcw__sflight_join(c->flights, key, key_len, in_l1, &rc, &f, &role);
        if (st != PGCW_OK)
            return pgcw__cache_fail(c, st, "get_or_set: out of memory");
        if (role == PGCW__FLIGHT_FOUND)
            continue;
        char *msg = NULL;
        if (role == PGCW__FLIGHT_WAIT) {
            PGCW__CACHE_COUNT(c, flight_waits);
            st = pgcw__flight_wait(f, PGCW__NEVER, value, value_len, &msg);
        } else {
            st = lead(c, key, key_len, ttl_ms, load, load_ctx, value, value_len, &msg);
            pgcw__flight_finish(f, st, *value, *value_len, msg);
        }
        if (st != PGCW_OK) {
            pgcw__cache_fail(c, st, "get_or_set: %s", msg ? msg : pgcw_strerror(st));
            *value = NULL;
            *value_len = 0;
        }
        free(msg);
        return st;
    }
}
