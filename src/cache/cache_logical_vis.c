/*
 * cache_logical_vis.c - notify_mode LOGICAL's second invalidation: once the
 * transaction of a decoded change is visible to other sessions.
 *
 * Why: PostgreSQL flushes a commit record (which the walsender then decodes and
 * sends) before ProcArrayEndTransaction takes the transaction out of the running
 * set, so a change can reach the sink while every other session still reads the
 * old row. The sink evicts at once (cache_logical.c); a read made in that window
 * takes its fill ticket after the eviction, reads the old row and fills the L1
 * with it, and nothing would evict that copy again. So the sink also hands the
 * transaction's id and keys to this file's thread, which asks the server (one
 * query for everything pending, on a pool connection, under the cache's deadline)
 * which of them are visible now, and deletes their keys from the L1 again: that
 * removes any copy filled from the old row meanwhile and outdates every ticket
 * taken before, so a fill can only come from a read whose snapshot sees the
 * change. A transaction still invisible is asked about again after 1 ms, doubling
 * to 50 ms; a new arrival is asked about at once. A TRUNCATE (no keys) flushes
 * again once visible.
 *
 * The pending list is bounded (VIS_MAX_ITEMS, VIS_MAX_BYTES). On overflow the
 * list is dropped, the L1 flushed (a gap, as a lost queue is), and the range of
 * the dropped ids kept: once every id in it is visible, the L1 is flushed again.
 *
 * Must never block the watcher's thread (the sink only appends under a mutex that
 * is never held across I/O), call into the L1 with that mutex held, or treat an id
 * as visible that the snapshot does not show visible.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cache_internal.h"
#include "core_time.h"

/* Bounds of what waits for visibility: keys + transactions (a test may lower
 * it: pgcw__cache_test.vis_max_items), and key bytes. */
#define VIS_MAX_ITEMS                                                                    \
    (pgcw__cache_test.vis_max_items ? pgcw__cache_test.vis_max_items : (size_t)65536)
#define VIS_MAX_BYTES (8u << 20)
/* Re-checks of transactions still invisible, and after a failed check. */
#define VIS_BACKOFF_MIN_US 1000
#define VIS_BACKOFF_MAX_US 50000
#define VIS_FAIL_BACKOFF_MAX_US 1000000

/* One transaction seen in the stream, not yet seen visible. keys holds n_keys
 * keys, each a size_t length then its bytes. */
typedef struct vis_txn {
    struct vis_txn *next;
    uint32_t xid;
    bool flush;       /* a change without keys: flush once visible */
    int64_t noted_us; /* when its first change arrived (monotonic) */
    size_t n_keys, used, cap;
    char *keys;
} vis_txn;

struct pgcw__vis {
    pgcw_cache *c;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    vis_txn *head, *tail; /* in arrival order */
    size_t items, bytes;  /* against the bounds */
    bool fresh;           /* something arrived since the last check */
    bool overflow;        /* dropped ids in [ovf_lo, ovf_hi]: flush once visible */
    uint32_t ovf_lo, ovf_hi;
    bool applying; /* taken off the list, second eviction not yet done */
    bool stop;
    pthread_t thread;
};

/* --- the snapshot ---------------------------------------------------------------- */

static bool parse_xid(const char **p, char end, uint32_t *out)
{
    const char *s = *p;
    if (*s < '0' || *s > '9')
        return false;
    char *stop;
    errno = 0;
    unsigned long long v = strtoull(s, &stop, 10);
    if (errno || *stop != end)
        return false;
    *out = (uint32_t)v; /* the low half of an xid8 is the 32-bit id */
    *p = stop + (end != '\0');
    return true;
}

pgcw_status pgcw__vis_snapshot_parse(const char *text, pgcw__vis_snapshot *out)
{
    memset(out, 0, sizeof *out);
    const char *p = text;
    if (!parse_xid(&p, ':', &out->xmin) || !parse_xid(&p, ':', &out->xmax))
        return PGCW_EPARSE;
    size_t n = 0;
    for (const char *q = p; *q; q++)
        n += *q == ',';
    if (*p) {
        if (!(out->xip = malloc((n + 1) * sizeof *out->xip)))
            return PGCW_ENOMEM;
        for (size_t i = 0; i <= n; i++)
            if (!parse_xid(&p, i < n ? ',' : '\0', &out->xip[out->n_xip++])) {
                pgcw__vis_snapshot_free(out);
                return PGCW_EPARSE;
            }
    }
    return PGCW_OK;
}

void pgcw__vis_snapshot_free(pgcw__vis_snapshot *s)
{
    free(s->xip);
    memset(s, 0, sizeof *s);
}

/* a precedes b, modulo 2^32 (as PostgreSQL's TransactionIdPrecedes). */
static bool precedes(uint32_t a, uint32_t b)
{
    return (int32_t)(a - b) < 0;
}

bool pgcw__vis_all_visible(const pgcw__vis_snapshot *s, uint32_t lo, uint32_t hi)
{
    /* Everything from xmax on had not finished when the snapshot was taken (it can
     * be the newest transaction, whose id is >= xmax); below it, the ids in xip. */
    if (!precedes(hi, s->xmax))
        return false;
    for (size_t i = 0; i < s->n_xip; i++)
        if (!precedes(s->xip[i], lo) && !precedes(hi, s->xip[i]))
            return false;
    return true;
}

/* --- the pending list (any thread, under mu) ----------------------------------- */

static void txn_free_all(vis_txn *t)
{
    while (t) {
        vis_txn *next = t->next;
        free(t->keys);
        free(t);
        t = next;
    }
}

/* Widens the overflow range by xid. */
static void overflow_add(pgcw__vis *v, uint32_t xid)
{
    if (!v->overflow) {
        v->overflow = true;
        v->ovf_lo = v->ovf_hi = xid;
    } else if (precedes(xid, v->ovf_lo)) {
        v->ovf_lo = xid;
    } else if (precedes(v->ovf_hi, xid)) {
        v->ovf_hi = xid;
    }
}

/* Drops the list into the overflow range. The caller flushes the L1. */
static void overflow(pgcw__vis *v, uint32_t xid)
{
    for (vis_txn *t = v->head; t; t = t->next)
        overflow_add(v, t->xid);
    overflow_add(v, xid);
    txn_free_all(v->head);
    v->head = v->tail = NULL;
    v->items = v->bytes = 0;
}

/* The list's transaction for xid (the newest: a transaction's events come
 * together), or a new one; NULL when there is no room or memory. */
static vis_txn *txn_for(pgcw__vis *v, uint32_t xid)
{
    if (v->tail && v->tail->xid == xid)
        return v->tail;
    if (v->items >= VIS_MAX_ITEMS)
        return NULL;
    vis_txn *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->xid = xid;
    t->noted_us = pgcw__mono_us();
    if (v->tail)
        v->tail->next = t;
    else
        v->head = t;
    v->tail = t;
    v->items++;
    return t;
}

static bool txn_add_key(pgcw__vis *v, vis_txn *t, const void *key, size_t len)
{
    size_t need = sizeof(size_t) + len;
    if (v->items >= VIS_MAX_ITEMS || VIS_MAX_BYTES - v->bytes < need)
        return false;
    if (t->cap - t->used < need) {
        size_t cap = t->cap ? 2 * t->cap : 64;
        while (cap - t->used < need)
            cap *= 2;
        char *grown = realloc(t->keys, cap);
        if (!grown)
            return false;
        t->keys = grown;
        t->cap = cap;
    }
    memcpy(t->keys + t->used, &len, sizeof len);
    memcpy(t->keys + t->used + sizeof len, key, len);
    t->used += need;
    t->n_keys++;
    v->items++;
    v->bytes += need;
    return true;
}

void pgcw__vis_note(pgcw__vis *v, uint32_t xid, const void *key, size_t len, bool flush)
{
    if (!v || xid == 0) /* no id: nothing to ask the server about */
        return;
    pthread_mutex_lock(&v->mu);
    vis_txn *t = txn_for(v, xid);
    bool ok = t && (flush || txn_add_key(v, t, key, len));
    if (ok && flush)
        t->flush = true;
    if (!ok)
        overflow(v, xid);
    v->fresh = true;
    pthread_cond_signal(&v->cv);
    pthread_mutex_unlock(&v->mu);
    if (!ok) {
        pgcw_l1_clear(v->c->l1);
        PGCW__CACHE_COUNT(v->c, flushes);
        PGCW__CACHE_COUNT(v->c, vis_overflows);
    }
}

/* --- the thread ------------------------------------------------------------------ */

static pgcw_status take_snapshot(void *ctx, size_t i, const PGresult *res)
{
    (void)i;
    if (PQntuples(res) != 1 || PQnfields(res) != 1 || PQgetisnull(res, 0, 0))
        return PGCW_EPARSE;
    return pgcw__vis_snapshot_parse(PQgetvalue(res, 0, 0), ctx);
}

/* One check: the server's snapshot now. */
static pgcw_status check(pgcw__vis *v, pgcw__vis_snapshot *s)
{
    pgcw_cache *c = v->c;
    int64_t deadline = pgcw__cache_deadline(c);
    char err[256];
    pgcw__pooled *pc;
    pgcw_status st = pgcw__pool_checkout(c->pool, deadline, &pc, err, sizeof err);
    if (st != PGCW_OK)
        return st;
    pgcw__stmt stmt = {PGCW__ST_SNAPSHOT, 0, NULL, NULL};
    bool broken = false;
    st = pgcw__exec(pc->conn.pg, &stmt, 1, deadline, take_snapshot, s, err, sizeof err,
                    &broken);
    pgcw__pool_checkin(c->pool, pc, broken);
    if (st != PGCW_OK)
        pgcw__vis_snapshot_free(s);
    return st;
}

/* Under mu: moves the transactions s shows visible to *done (and says whether the
 * overflow range is); true if something is left waiting. */
static bool take_visible(pgcw__vis *v, const pgcw__vis_snapshot *s, vis_txn **done,
                         bool *flush_overflow)
{
    vis_txn **link = &v->head, *last = NULL, **out = done;
    while (*link) {
        vis_txn *t = *link;
        if (pgcw__vis_all_visible(s, t->xid, t->xid)) {
            *link = t->next;
            v->items -= 1 + t->n_keys;
            v->bytes -= t->used;
            t->next = NULL;
            *out = t;
            out = &t->next;
        } else {
            last = t;
            link = &t->next;
        }
    }
    v->tail = last;
    *flush_overflow = v->overflow && pgcw__vis_all_visible(s, v->ovf_lo, v->ovf_hi);
    if (*flush_overflow)
        v->overflow = false;
    v->applying = *done || *flush_overflow;
    return v->head || v->overflow;
}

/* With no lock held: the second invalidation of what became visible. */
static void invalidate_again(pgcw_cache *c, vis_txn *done, bool flush_overflow)
{
    bool flush = flush_overflow;
    int64_t now = pgcw__mono_us();
    for (vis_txn *t = done; t; t = t->next) {
        /* This thread is the only writer of the delay counters. */
        uint64_t delay = (uint64_t)(now - t->noted_us);
        atomic_fetch_add_explicit(&c->n.vis_delay_us_total, delay, memory_order_relaxed);
        if (delay > atomic_load_explicit(&c->n.vis_delay_us_max, memory_order_relaxed))
            atomic_store_explicit(&c->n.vis_delay_us_max, delay, memory_order_relaxed);
        flush |= t->flush;
        for (size_t at = 0, i = 0; i < t->n_keys; i++) {
            size_t len;
            memcpy(&len, t->keys + at, sizeof len);
            (void)pgcw_l1_delete(c->l1, t->keys + at + sizeof len, len);
            at += sizeof len + len;
        }
        PGCW__CACHE_COUNT(c, vis_confirmed);
    }
    if (flush) {
        pgcw_l1_clear(c->l1);
        PGCW__CACHE_COUNT(c, flushes);
    }
    txn_free_all(done);
}

static void *vis_main(void *arg)
{
    pgcw__vis *v = arg;
    pgcw_cache *c = v->c;
    int64_t backoff = VIS_BACKOFF_MIN_US;
    pthread_mutex_lock(&v->mu);
    while (!v->stop) {
        if (!v->head && !v->overflow) {
            backoff = VIS_BACKOFF_MIN_US;
            pthread_cond_wait(&v->cv, &v->mu);
            continue;
        }
        v->fresh = false;
        pthread_mutex_unlock(&v->mu);
        pgcw__vis_snapshot s;
        pgcw_status st = check(v, &s);
        if (st == PGCW_OK)
            PGCW__CACHE_COUNT(c, vis_checks);
        else
            PGCW__CACHE_COUNT(c, vis_check_failures);
        vis_txn *done = NULL;
        bool flush_overflow = false, waiting = true;
        pthread_mutex_lock(&v->mu);
        if (st == PGCW_OK)
            waiting = take_visible(v, &s, &done, &flush_overflow);
        pthread_mutex_unlock(&v->mu);
        if (st == PGCW_OK)
            pgcw__vis_snapshot_free(&s);
        invalidate_again(c, done, flush_overflow);
        /* A failed check backs off to 1 s; the next one that works, to 50 ms. */
        int64_t cap = st == PGCW_OK ? VIS_BACKOFF_MAX_US : VIS_FAIL_BACKOFF_MAX_US;
        if (backoff > cap)
            backoff = cap;
        if (st == PGCW_OK && !waiting)
            backoff = VIS_BACKOFF_MIN_US;
        else if (st == PGCW_OK)
            PGCW__CACHE_COUNT(c, vis_rechecks);
        int64_t until = waiting ? pgcw__deadline_in_us(backoff) : 0;
        if (waiting)
            backoff = backoff < cap / 2 ? 2 * backoff : cap;
        pthread_mutex_lock(&v->mu);
        v->applying = false;
        /* A new arrival is checked at once; what waits, after the backoff. */
        while (waiting && !v->stop && !v->fresh &&
               pgcw__cond_wait_until(&v->cv, &v->mu, until))
            ;
    }
    pthread_mutex_unlock(&v->mu);
    return NULL;
}

pgcw_status pgcw__vis_new(pgcw_cache *c, pgcw__vis **out)
{
    pgcw__vis *v = calloc(1, sizeof *v);
    if (!v)
        return PGCW_ENOMEM;
    v->c = c;
    if (pthread_mutex_init(&v->mu, NULL) != 0) {
        free(v);
        return PGCW_ENOMEM;
    }
    if (pgcw__cond_init(&v->cv) != 0) {
        pthread_mutex_destroy(&v->mu);
        free(v);
        return PGCW_ENOMEM;
    }
    if (pthread_create(&v->thread, NULL, vis_main, v) != 0) {
        pthread_cond_destroy(&v->cv);
        pthread_mutex_destroy(&v->mu);
        free(v);
        return PGCW_ESYS;
    }
    *out = v;
    return PGCW_OK;
}

void pgcw__vis_free(pgcw__vis *v)
{
    if (!v)
        return;
    pthread_mutex_lock(&v->mu);
    v->stop = true;
    pthread_cond_signal(&v->cv);
    pthread_mutex_unlock(&v->mu);
    pthread_join(v->thread, NULL);
    txn_free_all(v->head);
    pthread_cond_destroy(&v->cv);
    pthread_mutex_destroy(&v->mu);
    free(v);
}

size_t pgcw__vis_pending(pgcw__vis *v)
{
    if (!v)
        return 0;
    size_t n = 0;
    pthread_mutex_lock(&v->mu);
    for (vis_txn *t = v->head; t; t = t->next)
        n++;
    n += v->overflow + v->applying; /* waiting until their second eviction is done */
    pthread_mutex_unlock(&v->mu);
    return n;
}
