/*
 * harness_report.c - what `pgcachewatch harness` prints: a live progress line on a
 * terminal, and at the end the report as text or as one JSON object (json-c).
 * Latency percentiles come from the merged histograms of every client, never from
 * averaging per-client figures.
 *
 * Must never print the progress line when stdout is not a terminal, nor anything
 * but the JSON object on stdout with --json.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "harness.h"

static const double quantiles[] = {0.50, 0.95, 0.99, 0.999};
static const char *const quantile_names[] = {"p50", "p95", "p99", "p99_9"};
#define N_Q (sizeof quantiles / sizeof quantiles[0])

static int by_kill_time(const void *x, const void *y)
{
    const hx_recovery *a = x, *b = y;
    return a->killed_at < b->killed_at ? -1 : a->killed_at > b->killed_at;
}

void hx_summary_merge(hx_summary *sum, const hx_shm *shm)
{
    hx_result *a = &sum->all;
    for (int p = 0; p < shm->processes; p++) {
        const hx_result *r = &shm->result[p];
        for (int op = 0; op < HX_N_OPS; op++) {
            hx_hist_merge(&a->lat[op], &r->lat[op]);
            a->errors[op] += r->errors[op];
        }
        hx_hist_merge(&a->delay, &r->delay);
        hx_hist_merge(&a->rec_watch, &r->rec_watch);
        hx_hist_merge(&a->rec_pool, &r->rec_pool);
        a->gets_checked += r->gets_checked;
        a->gos_values += r->gos_values;
        a->loads += r->loads;
        a->violations += r->violations;
        a->delay_unmatched += r->delay_unmatched;
        a->unrecovered += r->unrecovered;
        uint64_t *to = &a->cache.l1_hits;
        const uint64_t *from = &r->cache.l1_hits;
        for (size_t i = 0; i < offsetof(pgcw_cache_stats, l1_entries) / sizeof(uint64_t);
             i++)
            to[i] += from[i];
        for (int i = 0; i < r->n_samples && a->n_samples < HX_SAMPLES; i++)
            a->samples[a->n_samples++] = r->samples[i];
        for (int i = 0; i < r->n_recoveries && a->n_recoveries < HX_RECOVERIES; i++)
            a->recoveries[a->n_recoveries++] = r->recoveries[i];
        if (!a->first_error[0] && r->first_error[0])
            snprintf(a->first_error, sizeof a->first_error, "%s", r->first_error);
    }
    qsort(a->recoveries, (size_t)a->n_recoveries, sizeof *a->recoveries, by_kill_time);
    for (int op = 0; op < HX_N_OPS; op++)
        sum->ops += a->lat[op].count + a->errors[op];
}

static uint64_t total_errors(const hx_result *a)
{
    uint64_t n = 0;
    for (int op = 0; op < HX_N_OPS; op++)
        n += a->errors[op];
    return n;
}

static double hit_rate(const hx_result *a)
{
    uint64_t hits = a->lat[HX_GET_HIT].count, misses = a->lat[HX_GET_MISS].count;
    return hits + misses ? (double)hits / (double)(hits + misses) : 0.0;
}

static double l1_hit_rate(const hx_result *a)
{
    uint64_t h = a->cache.l1_hits, m = a->cache.l1_misses + a->cache.bypasses;
    return h + m ? (double)h / (double)(h + m) : 0.0;
}

static json_object *jhist(const hx_hist *h, double scale)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "count", json_object_new_int64((int64_t)h->count));
    for (size_t i = 0; i < N_Q; i++)
        json_object_object_add(
            o, quantile_names[i],
            json_object_new_double((double)hx_hist_quantile(h, quantiles[i]) / scale));
    json_object_object_add(o, "max", json_object_new_double((double)h->max / scale));
    json_object_object_add(
        o, "mean",
        json_object_new_double(h->count ? (double)h->sum / (double)h->count / scale : 0));
    return o;
}

static const char *mode_name(pgcw_cache_notify_mode m)
{
    return m == PGCW_CACHE_NOTIFY_AFTER_COMMIT ? "after-commit"
           : m == PGCW_CACHE_NOTIFY_BACKGROUND ? "background"
           : m == PGCW_CACHE_NOTIFY_LOGICAL    ? "logical"
                                               : "trigger";
}

static void print_json(const hx_cfg *cfg, const hx_summary *s)
{
    const hx_result *a = &s->all;
    json_object *o = json_object_new_object();
    json_object *c = json_object_new_object();
    json_object_object_add(c, "writers", json_object_new_int(cfg->writers));
    json_object_object_add(c, "readers", json_object_new_int(cfg->readers));
    json_object_object_add(c, "processes", json_object_new_int(cfg->processes));
    json_object_object_add(c, "keys", json_object_new_int(cfg->keys));
    json_object_object_add(c, "value_size",
                           json_object_new_int64((int64_t)cfg->value_size));
    json_object_object_add(c, "ttl_ms", json_object_new_int64(cfg->ttl_ms));
    json_object_object_add(c, "read_ratio", json_object_new_double(cfg->read_ratio));
    json_object_object_add(c, "get_or_set_ratio", json_object_new_double(cfg->gos_ratio));
    json_object_object_add(c, "delete_ratio", json_object_new_double(cfg->delete_ratio));
    json_object_object_add(c, "zipf", json_object_new_double(cfg->zipf));
    json_object_object_add(c, "duration_ms", json_object_new_int64(cfg->duration_ms));
    json_object_object_add(c, "ops_per_client", json_object_new_int64(cfg->ops));
    json_object_object_add(c, "bound_ms", json_object_new_int64(cfg->bound_ms));
    json_object_object_add(c, "notify_bound_ms",
                           json_object_new_int64(cfg->notify_bound_ms));
    json_object_object_add(c, "disable_notify",
                           json_object_new_boolean(cfg->disable_notify));
    json_object_object_add(c, "l1_ttl_ms", json_object_new_int64(cfg->l1_ttl_ms));
    json_object_object_add(c, "notify_mode",
                           json_object_new_string(mode_name(cfg->notify_mode)));
    json_object_object_add(c, "pool_size",
                           json_object_new_int64((int64_t)cfg->pool_size));
    json_object_object_add(c, "client_nice", json_object_new_int(cfg->client_nice));
    json_object_object_add(c, "chaos", json_object_new_boolean(cfg->chaos));
    json_object_object_add(c, "chaos_interval_ms",
                           json_object_new_int64(cfg->chaos_interval_ms));
    json_object_object_add(c, "seed", json_object_new_int64((int64_t)cfg->seed));
    json_object_object_add(c, "schema_prefix", json_object_new_string(cfg->prefix));
    json_object_object_add(c, "server", json_object_new_string(s->server));
    json_object_object_add(o, "config", c);

    double secs = (double)s->run_ns / 1e9;
    json_object_object_add(o, "seconds", json_object_new_double(secs));
    json_object_object_add(o, "ops", json_object_new_int64((int64_t)s->ops));
    json_object_object_add(o, "ops_per_second",
                           json_object_new_double(secs > 0 ? (double)s->ops / secs : 0));
    json_object *lat = json_object_new_object();
    json_object *err = json_object_new_object();
    for (int op = 0; op < HX_N_OPS; op++) {
        json_object_object_add(lat, hx_op_names[op], jhist(&a->lat[op], 1000.0));
        if (op != HX_GET_MISS) /* a failed get is counted under get_hit's name: "get" */
            json_object_object_add(err, op == HX_GET_HIT ? "get" : hx_op_names[op],
                                   json_object_new_int64((int64_t)a->errors[op]));
    }
    json_object_object_add(err, "total", json_object_new_int64((int64_t)total_errors(a)));
    json_object_object_add(o, "latency_us", lat);
    json_object_object_add(o, "errors", err);
    json_object_object_add(o, "hit_rate", json_object_new_double(hit_rate(a)));
    json_object_object_add(o, "l1_hit_rate", json_object_new_double(l1_hit_rate(a)));
    json_object_object_add(o, "loader_executions",
                           json_object_new_int64((int64_t)a->loads));
    json_object *d = jhist(&a->delay, 1000.0);
    json_object_object_add(d, "from",
                           json_object_new_string("the writer's set call start"));
    json_object_object_add(
        d, "to",
        json_object_new_string("another client's watcher delivering it, after "
                               "that client's L1 eviction"));
    json_object_object_add(d, "unmatched",
                           json_object_new_int64((int64_t)a->delay_unmatched));
    json_object_object_add(o, "invalidation_delay_us", d);
    json_object_object_add(o, "reads_checked",
                           json_object_new_int64((int64_t)a->gets_checked));
    json_object_object_add(o, "get_or_set_values_checked",
                           json_object_new_int64((int64_t)a->gos_values));
    json_object_object_add(o, "violations",
                           json_object_new_int64((int64_t)a->violations));
    json_object *vs = json_object_new_array();
    for (int i = 0; i < a->n_samples; i++) {
        const hx_violation *v = &a->samples[i];
        json_object *x = json_object_new_object();
        char key[24];
        snprintf(key, sizeof key, "k%d", v->key);
        json_object_object_add(x, "kind", json_object_new_string(v->kind));
        json_object_object_add(x, "client", json_object_new_int(v->client));
        json_object_object_add(x, "key", json_object_new_string(key));
        json_object_object_add(x, "version_read", json_object_new_int64(v->got));
        json_object_object_add(x, "version_expected", json_object_new_int64(v->want));
        json_object_object_add(x, "read_start_ms",
                               json_object_new_double(v->t_read / 1e6));
        json_object_object_add(x, "read_end_ms",
                               json_object_new_double(v->t_got_done / 1e6));
        json_object_object_add(x, "expected_since_ms",
                               json_object_new_double(v->t_want / 1e6));
        json_object_array_add(vs, x);
    }
    json_object_object_add(o, "violation_samples", vs);
    json_object *ch = json_object_new_object();
    json_object_object_add(ch, "watcher_kills",
                           json_object_new_int64((int64_t)s->kills_watch));
    json_object_object_add(ch, "pool_kills",
                           json_object_new_int64((int64_t)s->kills_pool));
    json_object_object_add(ch, "kill_errors",
                           json_object_new_int64((int64_t)s->kill_errors));
    json_object_object_add(ch, "watcher_recovery_ms", jhist(&a->rec_watch, 1e6));
    json_object_object_add(ch, "pool_recovery_ms", jhist(&a->rec_pool, 1e6));
    json_object_object_add(ch, "unrecovered",
                           json_object_new_int64((int64_t)a->unrecovered));
    json_object *rs = json_object_new_array();
    for (int i = 0; i < a->n_recoveries; i++) {
        const hx_recovery *r = &a->recoveries[i];
        json_object *x = json_object_new_object();
        json_object_object_add(x, "client", json_object_new_int(r->client));
        json_object_object_add(x, "kind",
                               json_object_new_string(r->watcher ? "watcher" : "pool"));
        json_object_object_add(x, "killed_at_ms",
                               json_object_new_double(r->killed_at / 1e6));
        json_object_object_add(x, "ms", json_object_new_double(r->took / 1e6));
        json_object_array_add(rs, x);
    }
    json_object_object_add(ch, "recoveries", rs);
    json_object_object_add(o, "chaos", ch);
    json_object *cs = json_object_new_object();
    const pgcw_cache_stats *st = &a->cache;
    const struct {
        const char *name;
        uint64_t v;
    } counters[] = {{"l1_hits", st->l1_hits},
                    {"l1_misses", st->l1_misses},
                    {"l2_hits", st->l2_hits},
                    {"l2_misses", st->l2_misses},
                    {"bypasses", st->bypasses},
                    {"flushes", st->flushes},
                    {"retries", st->retries},
                    {"lease_refusals", st->lease_refusals},
                    {"refused_fills", st->refused_fills},
                    {"invalidations_received", st->invalidations_received},
                    {"invalidations_applied", st->invalidations_applied},
                    {"lock_waits", st->lock_waits},
                    {"notify_failures", st->notify_failures}};
    for (size_t i = 0; i < sizeof counters / sizeof counters[0]; i++)
        json_object_object_add(cs, counters[i].name,
                               json_object_new_int64((int64_t)counters[i].v));
    json_object_object_add(o, "cache", cs);
    if (a->first_error[0])
        json_object_object_add(o, "first_error", json_object_new_string(a->first_error));
    puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
    json_object_put(o);
}

static void print_hist_row(const char *name, const hx_hist *h, double scale,
                           const char *unit)
{
    printf("  %-12s %9" PRIu64, name, h->count);
    for (size_t i = 0; i < N_Q; i++)
        printf(" %9.1f", (double)hx_hist_quantile(h, quantiles[i]) / scale);
    printf(" %9.1f  %s\n", (double)h->max / scale, unit);
}

static void print_text(const hx_cfg *cfg, const hx_summary *s)
{
    const hx_result *a = &s->all;
    double secs = (double)s->run_ns / 1e9;
    printf("pgcachewatch harness: %d writers, %d readers in %d processes, %d keys "
           "(%s), %zu-byte values, %s server\n",
           cfg->writers, cfg->readers, cfg->processes, cfg->keys,
           cfg->zipf > 0 ? "zipf" : "uniform", cfg->value_size, s->server);
    printf("  notifications %s (%s), bounds %lld ms from commit, %lld ms from "
           "notification%s, seed %llu\n",
           cfg->disable_notify ? "off" : "on", mode_name(cfg->notify_mode),
           (long long)cfg->bound_ms, (long long)cfg->notify_bound_ms,
           cfg->chaos ? ", chaos" : "", cfg->seed);
    printf("ran %.2f s: %" PRIu64 " ops, %.0f ops/s, %" PRIu64 " errors\n", secs, s->ops,
           secs > 0 ? (double)s->ops / secs : 0, total_errors(a));
    printf("latency        count       p50       p95       p99     p99.9       max\n");
    for (int op = 0; op < HX_N_OPS; op++)
        print_hist_row(hx_op_names[op], &a->lat[op], 1000.0, "us");
    printf("hit rate %.4f (L1 %.4f), loader executions %" PRIu64 "\n", hit_rate(a),
           l1_hit_rate(a), a->loads);
    printf("invalidation delay, the writer's set call start -> delivered to another "
           "client:\n");
    print_hist_row("delay", &a->delay, 1000.0, "us");
    if (cfg->chaos) {
        printf("chaos: %" PRIu64 " watcher kills, %" PRIu64 " pool kills, %" PRIu64
               " unrecovered at the end\n",
               s->kills_watch, s->kills_pool, a->unrecovered);
        printf(
            "recovery       count       p50       p95       p99     p99.9       max\n");
        print_hist_row("watcher", &a->rec_watch, 1e6, "ms");
        print_hist_row("pool", &a->rec_pool, 1e6, "ms");
        for (int i = 0; i < a->n_recoveries; i++)
            printf("  %-8s client %-4d killed at %9.1f ms, recovered in %7.1f ms\n",
                   a->recoveries[i].watcher ? "watcher" : "pool", a->recoveries[i].client,
                   a->recoveries[i].killed_at / 1e6, a->recoveries[i].took / 1e6);
    }
    if (a->first_error[0])
        printf("first error: %s\n", a->first_error);
    printf("checked %" PRIu64 " reads (and %" PRIu64 " get_or_set values): %" PRIu64
           " violations\n",
           a->gets_checked, a->gos_values, a->violations);
    for (int i = 0; i < a->n_samples; i++) {
        const hx_violation *v = &a->samples[i];
        printf("  %s: client %d key k%d read version %" PRId64
               " at %.3f-%.3f ms, expected"
               " >= %" PRId64 " (since %.3f ms)\n",
               v->kind, v->client, v->key, v->got, v->t_read / 1e6, v->t_got_done / 1e6,
               v->want, v->t_want / 1e6);
    }
}

void hx_report_print(const hx_cfg *cfg, const hx_summary *sum)
{
    if (cfg->json)
        print_json(cfg, sum);
    else
        print_text(cfg, sum);
    fflush(stdout);
}

void hx_report_progress(const hx_cfg *cfg, const hx_shm *shm, int64_t elapsed_ns,
                        bool final)
{
    if (!cfg->progress)
        return;
    uint64_t ops = 0, errors = 0, violations = 0;
    for (int i = 0; i < shm->clients; i++) {
        ops += atomic_load_explicit(&shm->slot[i].ops, memory_order_relaxed);
        errors += atomic_load_explicit(&shm->slot[i].errors, memory_order_relaxed);
        violations +=
            atomic_load_explicit(&shm->slot[i].violations, memory_order_relaxed);
    }
    double secs = (double)elapsed_ns / 1e9;
    printf("\r\033[K%6.1f s  %" PRIu64 " ops (%.0f/s)  errors %" PRIu64
           "  violations %" PRIu64,
           secs, ops, secs > 0 ? (double)ops / secs : 0.0, errors, violations);
    if (cfg->chaos)
        printf("  kills %" PRIu64, (uint64_t)(atomic_load(&((hx_shm *)shm)->kills_watch) +
                                              atomic_load(&((hx_shm *)shm)->kills_pool)));
    if (final)
        putchar('\n');
    fflush(stdout);
}
