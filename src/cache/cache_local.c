/*
 * cache_local.c - the cache's L1: the watcher sink that evicts it, the health gate
 * that decides when it may be read and filled, and fills.
 *
 * The rules (cache.h's contract, lines 3-5): the sink runs synchronously on the
 * watcher's thread for every notification and gap, so the L1 never misses one
 * that the watcher received; a gap (a lost connection) flushes it. A reader takes a
 * fill ticket and notes the watcher's epoch before it reads PostgreSQL, and fills
 * only if the watcher is still healthy in the same epoch and the ticket is not
 * outdated: a value read before an invalidation, or while notifications could be
 * lost, is never stored.
 */
#define _POSIX_C_SOURCE 200809L
#include <string.h>

#include "cache_internal.h"
#include "core_time.h"

/* A DDL event (install --ddl, on any channel the watcher listens to) on the
 * cache's own table, in whatever schema search_path put it: its rows may have
 * been rewritten or dropped behind the triggers' back, so no L1 copy is safe. */
static bool is_own_schema_change(const pgcw_cache *c, const pgcw_event *ev)
{
    if (ev->kind != PGCW_EVENT_SCHEMA || !ev->table)
        return false;
    size_t np = strlen(c->cfg.prefix);
    return strncmp(ev->table, c->cfg.prefix, np) == 0 &&
           strcmp(ev->table + np, "cache_entries") == 0;
}

static void on_event(void *ctx, const pgcw_event *ev)
{
    pgcw_cache *c = ctx;
    if (ev->kind == PGCW_EVENT_GAP || is_own_schema_change(c, ev)) {
        pgcw_l1_clear(c->l1);
        PGCW__CACHE_COUNT(c, flushes);
        return;
    }
    if (pgcw__cache_logical_event(c, ev))
        return;
    if (ev->kind != PGCW_EVENT_KEY || strcmp(ev->channel, c->cfg.channel) != 0)
        return;
    PGCW__CACHE_COUNT(c, inv_received);
    pgcw_status st = ev->operation == PGCW_OP_DELETE
                         ? pgcw_l1_delete(c->l1, ev->key, ev->key_len)
                         : pgcw_l1_invalidate(c->l1, ev->key, ev->key_len, ev->version);
    if (st == PGCW_OK)
        PGCW__CACHE_COUNT(c, inv_applied);
}

pgcw_status pgcw__cache_local_start(pgcw_cache *c)
{
    if (!c->watcher)
        return PGCW_OK;
    pgcw_sink_opts so = {.fn = on_event, .ctx = c};
    pgcw_status st = pgcw_sink_new(c->watcher, &so, &c->sink);
    if (st == PGCW_OK && c->own_watcher)
        st = pgcw_watcher_start(c->watcher);
    return st;
}

void pgcw__cache_local_stop(pgcw_cache *c)
{
    if (c->own_watcher)
        pgcw_watcher_stop(c->watcher);
    pgcw_sink_free(c->sink);
    c->sink = NULL;
    if (c->own_watcher)
        pgcw_watcher_free(c->watcher);
    c->watcher = NULL;
    c->own_watcher = false;
}

bool pgcw__cache_l1_key_ok(const pgcw_cache *c, size_t key_len)
{
    return c->l1 && key_len <= PGCW_CACHE_MAX_NOTIFY_KEY;
}

bool pgcw__cache_l1_open(const pgcw_cache *c)
{
    return c->l1 && (!c->watcher || pgcw_watcher_healthy(c->watcher));
}

void pgcw__cache_gate_take(pgcw_cache *c, const void *key, size_t key_len,
                           pgcw__cache_gate *g)
{
    memset(g, 0, sizeof *g);
    g->t0_us = pgcw__mono_us();
    if (!pgcw__cache_l1_key_ok(c, key_len))
        return;
    if (c->watcher) {
        /* Healthy first, then the epoch: if a recovery lands in between, the
         * fill sees a newer epoch and is refused (a lost fill, never a stale one). */
        if (!pgcw_watcher_healthy(c->watcher))
            return;
        g->epoch = pgcw_watcher_epoch(c->watcher);
    }
    pgcw_l1_ticket_take(c->l1, key, key_len, &g->ticket);
    g->usable = true;
}

/* The L1 lifetime of a copy whose row had remain_ms left when the gate was taken:
 * counted from before the read, so the copy never outlives the row; capped by
 * l1_ttl_ms. 0: already expired, do not store. */
static int64_t copy_ttl_us(const pgcw_cache *c, const pgcw__cache_gate *g,
                           int64_t remain_ms)
{
    int64_t cap = c->cfg.l1_ttl_us;
    if (remain_ms < 0)
        return cap > 0 ? cap : PGCW_L1_TTL_NONE;
    int64_t left = pgcw__ms_to_us(remain_ms) - (pgcw__mono_us() - g->t0_us);
    if (left <= 0)
        return 0;
    return cap > 0 && cap < left ? cap : left;
}

bool pgcw__cache_fill(pgcw_cache *c, const pgcw__cache_gate *g, const void *key,
                      size_t key_len, const void *value, size_t len, int64_t version,
                      int64_t remain_ms)
{
    if (!g->usable)
        return false;
    if (c->watcher && (!pgcw_watcher_healthy(c->watcher) ||
                       pgcw_watcher_epoch(c->watcher) != g->epoch)) {
        PGCW__CACHE_COUNT(c, refused_fills);
        return false;
    }
    int64_t ttl = copy_ttl_us(c, g, remain_ms);
    if (ttl == 0)
        return false;
    bool stored = false;
    if (pgcw_l1_fill(c->l1, &g->ticket, key, key_len, value, len, version, ttl,
                     &stored) == PGCW_OK &&
        !stored)
        PGCW__CACHE_COUNT(c, refused_fills);
    return stored;
}

void pgcw__cache_own_write(pgcw_cache *c, const pgcw__cache_gate *g, const void *key,
                           size_t key_len, const void *value, size_t len, int64_t version,
                           int64_t remain_ms)
{
    if (!c->l1)
        return;
    /* Read your writes: if the copy cannot be stored (an invalidation raced it, the
     * watcher is unhealthy), no older copy may stay either. */
    if (!pgcw__cache_fill(c, g, key, key_len, value, len, version, remain_ms))
        (void)pgcw_l1_delete(c->l1, key, key_len);
}
