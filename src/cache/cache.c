/*
 * cache.c - the pgcw_cache handle: settings, creation and teardown, the null cache,
 * statistics and per-thread errors. The operations live in cache_ops.c and
 * cache_load.c, the L1 side in cache_local.c.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache_internal.h"
#include "core_abi.h"
#include "core_err.h"
#include "core_util.h"

static void cache_destroy(pgcw_cache *c)
{
    pgcw__cache_local_stop(c);
    pgcw__vis_free(c->vis); /* after the sink that feeds it, before the pool */
    pgcw__pool_free(c->pool);
    pgcw_l1_free(c->l1);
    pgcw__sflight_free(c->flights);
    pgcw__notifier_free(c->notifier);
    pgcw__combiner_free(c->combiner);
    pgcw__cache_names_free(&c->names);
    pgcw__conn_params_free(&c->params);
    pgcw__err_clear(c);
    free(c);
}

pgcw_status pgcw_cache_new_sized(const pgcw_cache_opts *opts, size_t opts_size,
                                 const pgcw_conn_opts *conn, size_t conn_size,
                                 pgcw_cache **out)
{
    if (!out)
        return PGCW_EINVAL;
    *out = NULL;
    pgcw_cache_opts o;
    pgcw_conn_opts co;
    pgcw_status st = pgcw__opts_copy(&o, sizeof o, opts, opts_size);
    if (st == PGCW_OK)
        st = pgcw__opts_copy(&co, sizeof co, conn, conn_size);
    if (st != PGCW_OK)
        return st;
    pgcw_cache *c = calloc(1, sizeof *c);
    if (!c)
        return PGCW_ENOMEM;
    char why[256];
    st = pgcw__cache_cfg_init(&c->cfg, &o, why, sizeof why);
    if (st != PGCW_OK) {
        pgcw__logf(o.log, o.log_ctx, PGCW_LOG_ERROR, "cache: %s", why);
        free(c);
        return st;
    }
    st = pgcw__cache_names_init(&c->names, &c->cfg);
    if (st == PGCW_OK)
        st = pgcw__conn_params_init(&c->params, &co);
    char *setup = NULL;
    if (st == PGCW_OK) {
        setup = pgcw__cache_setup_sql(&c->cfg, &c->names);
        st = setup ? pgcw__pool_new(&c->params, c->cfg.pool_size, setup, &c->pool)
                   : PGCW_ENOMEM;
    }
    free(setup);
    if (st == PGCW_OK)
        st = pgcw__sflight_new(&c->flights);
    if (st == PGCW_OK && (c->cfg.notify_mode == PGCW_CACHE_NOTIFY_AFTER_COMMIT ||
                          c->cfg.notify_mode == PGCW_CACHE_NOTIFY_BACKGROUND))
        st = pgcw__notifier_new(
            &c->params, c->cfg.channel,
            c->cfg.notify_mode == PGCW_CACHE_NOTIFY_BACKGROUND,
            c->cfg.statement_timeout_ms > 0 ? c->cfg.statement_timeout_ms : 10000, o.log,
            o.log_ctx, &c->notifier);
    if (st == PGCW_OK)
        st = pgcw__combiner_new(c->cfg.pool_size < PGCW__COMBINE_RUNNING
                                    ? c->cfg.pool_size
                                    : PGCW__COMBINE_RUNNING,
                                &c->combiner);
    if (st == PGCW_OK && c->cfg.l1) {
        pgcw_l1_opts lo = {.max_entries = c->cfg.l1_max_entries,
                           .max_bytes = c->cfg.l1_max_bytes};
        st = pgcw_l1_new(&lo, &c->l1);
    }
    if (st == PGCW_OK && c->cfg.notify && c->l1 &&
        c->cfg.notify_mode == PGCW_CACHE_NOTIFY_LOGICAL)
        st = pgcw__vis_new(c, &c->vis);
    if (st == PGCW_OK && c->cfg.notify) {
        c->watcher = o.watcher;
        if (!c->watcher) {
            const char *channels[1] = {c->cfg.channel};
            /* AUTO decodes every key notification as CACHE_KEY would (they start
             * with 'u' or 'd') and also the JSON of `install --ddl` triggers put on
             * this channel, whose schema events flush the L1 (cache_local.c). */
            pgcw_payload_format formats[1] = {PGCW_FORMAT_AUTO};
            pgcw_watcher_opts wo = {.channels = channels,
                                    .n_channels = 1,
                                    .formats = formats,
                                    .queue_capacity = c->cfg.queue_size,
                                    .log = o.log,
                                    .log_ctx = o.log_ctx};
            char pub[96], slot[64];
            if (c->cfg.notify_mode == PGCW_CACHE_NOTIFY_LOGICAL) {
                pgcw__cache_publication_name(&c->cfg, pub, sizeof pub);
                pgcw__cache_slot_name(slot, sizeof slot);
                wo.source = PGCW_WATCH_LOGICAL;
                wo.publication = pub;
                wo.slot_name = slot;
                wo.temporary_slot = true;
            }
            st = pgcw_watcher_new(&wo, &co, &c->watcher);
            c->own_watcher = st == PGCW_OK;
        }
    }
    if (st == PGCW_OK)
        st = pgcw__cache_local_start(c);
    if (st != PGCW_OK) {
        cache_destroy(c);
        return st;
    }
    *out = c;
    return PGCW_OK;
}

pgcw_status pgcw_cache_new_null(pgcw_cache **out)
{
    if (!out)
        return PGCW_EINVAL;
    pgcw_cache *c = calloc(1, sizeof *c);
    if (!c)
        return PGCW_ENOMEM;
    c->null = true;
    *out = c;
    return PGCW_OK;
}

void pgcw_cache_free(pgcw_cache *c)
{
    if (c)
        cache_destroy(c);
}

pgcw_status pgcw_cache_wait_healthy(pgcw_cache *c, int64_t timeout_ms)
{
    if (!c)
        return PGCW_EINVAL;
    pgcw__err_clear(c);
    if (!c->watcher)
        return PGCW_OK;
    pgcw_status st = pgcw_watcher_wait_healthy(c->watcher, timeout_ms);
    if (st != PGCW_OK)
        pgcw__err_set(c, "the cache's watcher is not healthy: %s",
                      pgcw_watcher_errmsg(c->watcher)[0] ? pgcw_watcher_errmsg(c->watcher)
                                                         : pgcw_strerror(st));
    return st;
}

const char *pgcw_cache_errmsg(const pgcw_cache *c)
{
    return pgcw__err_get(c);
}

pgcw_status pgcw__cache_fail(pgcw_cache *c, pgcw_status st, const char *fmt, ...)
{
    char msg[PGCW__ERR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    pgcw__scrub_password(msg, sizeof msg, c->params.password);
    pgcw__err_set(c, "%s", msg);
    PGCW__CACHE_COUNT(c, errors);
    return st;
}

void pgcw_cache_flush_local(pgcw_cache *c)
{
    if (!c || !c->l1)
        return;
    pgcw_l1_clear(c->l1);
    PGCW__CACHE_COUNT(c, flushes);
}

#define LOAD(f) atomic_load_explicit(&c->n.f, memory_order_relaxed)

void pgcw_cache_stats_get_sized(pgcw_cache *c, pgcw_cache_stats *out, size_t out_size)
{
    if (!c || !out)
        return;
    pgcw_cache_stats s = {
        .l2_hits = LOAD(l2_hits),
        .l2_misses = LOAD(l2_misses),
        .bypasses = LOAD(bypasses),
        .sets = LOAD(sets),
        .deletes = LOAD(deletes),
        .loads = LOAD(loads),
        .load_errors = LOAD(load_errors),
        .flight_waits = LOAD(flight_waits),
        .lock_waits = LOAD(lock_waits),
        .lock_timeouts = LOAD(lock_timeouts),
        .lease_refusals = LOAD(lease_refusals),
        .invalidations_received = LOAD(inv_received),
        .invalidations_applied = LOAD(inv_applied),
        .refused_fills = LOAD(refused_fills),
        .flushes = LOAD(flushes),
        .retries = LOAD(retries),
        .errors = LOAD(errors),
        .visibility_checks = LOAD(vis_checks),
        .visibility_check_failures = LOAD(vis_check_failures),
        .visibility_rechecks = LOAD(vis_rechecks),
        .visibility_confirmed = LOAD(vis_confirmed),
        .visibility_overflows = LOAD(vis_overflows),
        .visibility_pending = pgcw__vis_pending(c->vis),
        .visibility_delay_us_total = LOAD(vis_delay_us_total),
        .visibility_delay_us_max = LOAD(vis_delay_us_max),
    };
    if (c->l1) {
        pgcw_l1_stats ls;
        pgcw_l1_stats_get(c->l1, &ls);
        s.l1_hits = ls.hits;
        s.l1_misses = ls.misses;
        s.l1_entries = ls.entries;
        s.l1_bytes = ls.bytes;
    }
    if (c->notifier)
        pgcw__notifier_counts(c->notifier, &s.notify_batches, &s.notify_sent,
                              &s.notify_failures);
    if (c->combiner)
        pgcw__combiner_counts(c->combiner, &s.combined_batches, &s.combined_writes, NULL);
    if (c->pool) {
        s.pool_size = pgcw__pool_size(c->pool);
        s.pool_open = pgcw__pool_open(c->pool);
    }
    pgcw__stats_copy(out, out_size, &s, sizeof s);
}
