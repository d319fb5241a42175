/*
 * harness_client.c - one client process of `pgcachewatch harness`: its clients,
 * each a full cache client (a pgcw_cache with its own pool, its own watcher
 * driven by its own thread, its own L1) run by a thread of its own, and a monitor
 * thread that measures recoveries and invalidation delays.
 *
 * Every read is checked as it returns (harness_check.c keeps the memory):
 *   backwards  a version older than one this client read or wrote before;
 *   committed  older than a version whose write had returned more than the bound
 *              before the read began (the bound plus the L1 TTL with
 *              --disable-notify);
 *   notified   older than a version this client's watcher had delivered more than
 *              the bound before the read began;
 *   value      bytes that are not what the writer of that version wrote.
 * Failed calls are errors, never violations. Must never measure the checker's own
 * work as the cache's latency: the clock is read right around each cache call.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sys/resource.h>

#include "harness_client.h"

#define SETUP_WAIT_MS 60000

typedef struct hx_proc hx_proc;

typedef struct hx_client {
    int id;
    bool writer;
    const hx_cfg *cfg;
    hx_shm *shm;
    hx_client_slot *slot;
    hx_proc *proc;
    const cli_conn_opts *conn;
    pgcw_watcher *watcher; /* NULL with --disable-notify */
    pgcw_cache *cache;
    pgcw_sink *sink;
    hx_checker chk;
    char app_pool[64], app_watch[64];
    uint64_t rng;
    uint32_t seq;
    int64_t *seen; /* [keys]: the highest version read or written here */
    char *value;   /* value_size bytes, built for each write */
    hx_hist lat[HX_N_OPS];
    hx_hist rec_pool;
    uint64_t errors[HX_N_OPS];
    uint64_t gets_checked, gos_values, loads, violations, done_ops;
    char first_error[512];
    /* Test builds: a deliberately stale read (--inject-stale is hidden). */
    long long reads;
    int stale_key;
    int64_t stale_version;
    char *stale_value;
    bool stale_done;
    pthread_t thread;
    bool started;
} hx_client;

struct hx_proc {
    const hx_cfg *cfg;
    hx_shm *shm;
    hx_result *res;
    pthread_mutex_t mu; /* res->samples, res->first_error */
    double *cdf;        /* Zipf: cumulative weights of the keys; NULL: uniform */
    hx_client *clients;
    int n;
    hx_hist rec_watch; /* the monitor's */
    _Atomic bool stop_monitor;
};

/* --- small helpers ------------------------------------------------------------------ */

static uint64_t rnd(hx_client *c)
{
    return hx_rand(&c->rng);
}

static double rnd01(hx_client *c)
{
    return (double)(rnd(c) >> 11) / 9007199254740992.0;
}

static int pick_key(hx_client *c)
{
    int n = c->cfg->keys;
    if (!c->proc->cdf)
        return (int)(rnd(c) % (uint64_t)n);
    double u = rnd01(c);
    int lo = 0, hi = n - 1;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (c->proc->cdf[mid] < u)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static double *zipf_cdf(int n, double s)
{
    double *cdf = malloc((size_t)n * sizeof *cdf);
    if (!cdf)
        return NULL;
    double sum = 0;
    for (int i = 0; i < n; i++)
        sum += 1.0 / pow((double)(i + 1), s);
    double acc = 0;
    for (int i = 0; i < n; i++) {
        acc += 1.0 / pow((double)(i + 1), s) / sum;
        cdf[i] = acc;
    }
    cdf[n - 1] = 1.0;
    return cdf;
}

/* "c<client>:s<seq>:" (a write) or "L<client>:s<seq>:" (a load), then 'x' up to
 * value_size. */
static void make_value(char *buf, size_t size, char tag, int client, uint32_t seq)
{
    int n = snprintf(buf, size, "%c%d:s%" PRIu32 ":", tag, client, seq);
    memset(buf + n, 'x', size - (size_t)n);
}

/* Parses a value; false when it is not one the harness writes. */
static bool parse_value(const char *v, size_t len, size_t want_len, char *tag,
                        int *client, uint32_t *seq)
{
    if (len != want_len || len < 8 || (v[0] != 'c' && v[0] != 'L'))
        return false;
    char head[40];
    size_t h = len < sizeof head - 1 ? len : sizeof head - 1;
    memcpy(head, v, h);
    head[h] = '\0';
    int used = 0;
    unsigned long s = 0;
    if (sscanf(head + 1, "%d:s%lu:%n", client, &s, &used) != 2 || used == 0)
        return false;
    for (size_t i = 1 + (size_t)used; i < len; i++)
        if (v[i] != 'x')
            return false;
    *tag = v[0];
    *seq = (uint32_t)s;
    return true;
}

static void note_error(hx_client *c, int op, const char *what)
{
    c->errors[op]++;
    atomic_fetch_add_explicit(&c->slot->errors, 1, memory_order_relaxed);
    if (!c->first_error[0]) {
        const char *msg = pgcw_cache_errmsg(c->cache);
        snprintf(c->first_error, sizeof c->first_error, "client %d %s: %s", c->id, what,
                 msg[0] ? msg : "failed");
    }
}

static double since_ms(const hx_client *c, int64_t t)
{
    int64_t t0 = atomic_load_explicit(&c->shm->t0, memory_order_relaxed);
    return t ? (double)(t - t0) / 1e6 : 0.0;
}

static void violation(hx_client *c, const char *kind, int key, int64_t got, int64_t want,
                      int64_t t_read, int64_t t_done, int64_t t_want)
{
    c->violations++;
    atomic_fetch_add_explicit(&c->slot->violations, 1, memory_order_relaxed);
    hx_proc *p = c->proc;
    int64_t t0 = atomic_load_explicit(&c->shm->t0, memory_order_relaxed);
    /* What this client's watcher had delivered by now tells a late notification
     * (delivery) from an eviction that did not happen (the cache). */
    char watch[160] = "no watcher";
    if (c->watcher) {
        int64_t tn = 0;
        int64_t vn = hx_checker_notified_by(&c->chk, key, hx_now_ns(), &tn);
        snprintf(watch, sizeof watch,
                 "its watcher %s, the newest version of k%d it delivered: %" PRId64
                 " at %.3f ms",
                 pgcw_watcher_healthy(c->watcher) ? "healthy" : "unhealthy", key, vn,
                 since_ms(c, tn));
    }
    fprintf(stderr,
            CLI_PROG " harness: VIOLATION (%s): client %d read key k%d: version %" PRId64
                     " (read began %.3f ms, returned %.3f ms into the run); expected at "
                     "least version %" PRId64 " (%s %.3f ms); %s\n",
            kind, c->id, key, got, since_ms(c, t_read), since_ms(c, t_done), want,
            strcmp(kind, "notified") == 0 ? "delivered here at" : "seen or committed by",
            since_ms(c, t_want), watch);
    pthread_mutex_lock(&p->mu);
    if (p->res->n_samples < HX_SAMPLES) {
        hx_violation *v = &p->res->samples[p->res->n_samples++];
        v->client = c->id;
        v->key = key;
        snprintf(v->kind, sizeof v->kind, "%s", kind);
        v->got = got;
        v->want = want;
        v->t_read = t_read - t0;
        v->t_got_done = t_done - t0;
        v->t_want = t_want ? t_want - t0 : 0;
    }
    pthread_mutex_unlock(&p->mu);
}

/* Lists one recovery in the process's result (the histograms have them all). */
static void note_recovery(hx_proc *p, int client, bool watcher, int64_t kill_t,
                          int64_t took)
{
    int64_t t0 = atomic_load_explicit(&p->shm->t0, memory_order_relaxed);
    pthread_mutex_lock(&p->mu);
    if (p->res->n_recoveries < HX_RECOVERIES)
        p->res->recoveries[p->res->n_recoveries++] =
            (hx_recovery){client, watcher, kill_t - t0, took};
    pthread_mutex_unlock(&p->mu);
}

/* The pool's recovery after a kill of this client's pool backend: the first call
 * that began after the kill and ran SQL successfully. */
static uint64_t sql_calls(hx_client *c)
{
    pgcw_cache_stats s;
    pgcw_cache_stats_get(c->cache, &s);
    return s.l2_hits + s.l2_misses + s.sets + s.deletes + s.loads;
}

/* --- set-up and tear-down ------------------------------------------------------------
 */

static void on_log(void *ctx, pgcw_log_level level, const char *message)
{
    (void)ctx;
    (void)level;
    (void)message; /* reconnects are expected (--chaos); failures reach the calls */
}

static bool client_setup(hx_client *c, char *why, size_t whylen)
{
    const hx_cfg *cfg = c->cfg;
    c->seen = calloc((size_t)cfg->keys, sizeof *c->seen);
    c->value = malloc(cfg->value_size + 1);
    if (!c->seen || !c->value || !hx_checker_init(&c->chk, cfg, c->shm, c->id)) {
        snprintf(why, whylen, "out of memory");
        return false;
    }
    snprintf(c->app_pool, sizeof c->app_pool, "%s-c%d-pool", cfg->app_tag, c->id);
    snprintf(c->app_watch, sizeof c->app_watch, "%s-c%d-watch", cfg->app_tag, c->id);
    cli_conn_settings pool, watch;
    cli_conn_settings_init(&pool, c->conn);
    cli_conn_settings_init(&watch, c->conn);
    if (!cli_conn_settings_set(&pool, "application_name", c->app_pool) ||
        !cli_conn_settings_set(&watch, "application_name", c->app_watch)) {
        snprintf(why, whylen, "too many connection settings");
        return false;
    }
    pool.opts.reconnect_min_ms = watch.opts.reconnect_min_ms = 20;
    pool.opts.reconnect_max_ms = watch.opts.reconnect_max_ms = 500;
    pgcw_status st = PGCW_OK;
    if (!cfg->disable_notify) {
        const char *channels[1] = {cfg->channel};
        pgcw_payload_format formats[1] = {PGCW_FORMAT_CACHE_KEY};
        pgcw_watcher_opts wo = {0};
        wo.channels = channels;
        wo.formats = formats;
        wo.n_channels = 1;
        wo.max_latency_ms = -1;
        wo.log = on_log;
        /* Logical decoding: a temporary slot of this client's own on the table's
         * publication (init_db made it); names [a-z0-9_]. */
        char slot[64], pub[96];
        if (cfg->notify_mode == PGCW_CACHE_NOTIFY_LOGICAL) {
            snprintf(slot, sizeof slot, "pgcwh_%d_c%d", (int)getpid(), c->id);
            int n = 0;
            for (const char *p = cfg->prefix; *p && n < 60; p++)
                pub[n++] = (char)tolower((unsigned char)*p);
            snprintf(pub + n, sizeof pub - (size_t)n, "cache_entries_pub");
            wo.source = PGCW_WATCH_LOGICAL;
            wo.slot_name = slot;
            wo.publication = pub;
            wo.temporary_slot = true;
        }
        st = pgcw_watcher_new(&wo, &watch.opts, &c->watcher);
        if (st != PGCW_OK) {
            snprintf(why, whylen, "watcher: %s", pgcw_strerror(st));
            return false;
        }
    }
    pgcw_cache_opts co = {0};
    co.schema_prefix = cfg->prefix;
    co.notify_channel = cfg->channel;
    co.disable_notify = cfg->disable_notify;
    co.notify_mode = cfg->notify_mode;
    co.pool_size = cfg->pool_size;
    co.l1_ttl_ms = cfg->disable_notify ? cfg->l1_ttl_ms : 0;
    co.default_ttl_ms = cfg->ttl_ms;
    co.watcher = c->watcher;
    co.log = on_log;
    st = pgcw_cache_new(&co, &pool.opts, &c->cache);
    if (st != PGCW_OK) {
        snprintf(why, whylen, "cache: %s", pgcw_strerror(st));
        return false;
    }
    if (c->watcher) {
        /* After the cache's own sink (sinks run in the order they were added):
         * when this one records a notification, the L1 copy is already gone. */
        pgcw_sink_opts so = {.fn = hx_checker_sink, .ctx = &c->chk};
        st = pgcw_sink_new(c->watcher, &so, &c->sink);
        if (st == PGCW_OK)
            st = pgcw_watcher_start(c->watcher);
        if (st != PGCW_OK) {
            snprintf(why, whylen, "watcher: %s", pgcw_strerror(st));
            return false;
        }
        st = pgcw_cache_wait_healthy(c->cache, SETUP_WAIT_MS);
        if (st != PGCW_OK) {
            snprintf(why, whylen, "the watcher did not become healthy: %s",
                     pgcw_watcher_errmsg(c->watcher));
            return false;
        }
    }
    /* Opens the pool's connection before the clock starts. */
    void *v = NULL;
    size_t len = 0;
    st = pgcw_cache_get(c->cache, "k0", 2, &v, &len);
    pgcw_free(v);
    if (st != PGCW_OK && st != PGCW_ENOTFOUND) {
        snprintf(why, whylen, "first read: %s", pgcw_cache_errmsg(c->cache));
        return false;
    }
    return true;
}

static void client_teardown(hx_client *c)
{
    if (c->watcher)
        pgcw_watcher_stop(c->watcher);
    pgcw_sink_free(c->sink);
    pgcw_cache_free(c->cache);
    pgcw_watcher_free(c->watcher);
    c->sink = NULL;
    c->cache = NULL;
    c->watcher = NULL;
    free(c->seen);
    free(c->value);
    pgcw_free(c->stale_value);
    c->seen = NULL;
    c->value = c->stale_value = NULL;
}

/* --- operations --------------------------------------------------------------------- */

static pgcw_status load(void *ctx, const void *key, size_t key_len, pgcw_cache_result *r)
{
    (void)key;
    (void)key_len;
    hx_client *c = ctx;
    c->loads++;
    make_value(c->value, c->cfg->value_size, 'L', c->id, ++c->seq);
    return pgcw_cache_result_set(r, c->value, c->cfg->value_size);
}

static void do_write(hx_client *c, int key, const char *name)
{
    bool del = rnd01(c) < c->cfg->delete_ratio;
    int64_t version = 0;
    int64_t t0 = hx_now_ns();
    pgcw_status st;
    uint32_t seq = 0;
    if (del) {
        st = pgcw_cache_delete(c->cache, name, strlen(name));
    } else {
        seq = ++c->seq;
        make_value(c->value, c->cfg->value_size, 'c', c->id, seq);
        st = pgcw_cache_set_versioned(c->cache, name, strlen(name), c->value,
                                      c->cfg->value_size, c->cfg->ttl_ms, &version);
    }
    int64_t t1 = hx_now_ns();
    int op = del ? HX_DELETE : HX_SET;
    if (st != PGCW_OK) {
        note_error(c, op, del ? "delete" : "set");
        return;
    }
    hx_hist_record(&c->lat[op], t1 - t0);
    if (!del) {
        hx_commit cm = {version, t0, t1, c->id, seq};
        hx_shm_commit(c->shm, key, &cm, hx_commit_bound_ns(c->cfg) / 4);
        if (version > c->seen[key])
            c->seen[key] = version;
    }
}

/* The value a test build serves instead of reading (hidden --inject-stale): an
 * old copy of a key, once a newer version of it was committed more than the bound
 * ago. True when it replaced the read. */
static bool stale_read(hx_client *c, int key, int64_t committed, void **value,
                       size_t *len, int64_t *version)
{
    if (c->stale_done || !c->stale_value || key != c->stale_key ||
        committed <= c->stale_version)
        return false;
    *value = c->stale_value;
    *len = c->cfg->value_size;
    *version = c->stale_version;
    c->stale_value = NULL;
    c->stale_done = true;
    fprintf(stderr,
            CLI_PROG " harness: test build: client %d serves key k%d at version %" PRId64
                     " on purpose (version %" PRId64 " was committed)\n",
            c->id, key, c->stale_version, committed);
    return true;
}

static void do_get(hx_client *c, int key, const char *name)
{
    const hx_cfg *cfg = c->cfg;
    /* The verdict is about this instant: what was committed or notified a bound
     * before it must be seen by the read that begins right after. */
    int64_t t_check = hx_now_ns();
    int64_t t_committed = 0, t_notified = 0;
    int64_t committed =
        hx_shm_committed_by(c->shm, key, t_check - hx_commit_bound_ns(cfg), &t_committed);
    int64_t notified =
        c->watcher ? hx_checker_notified_by(&c->chk, key,
                                            t_check - cfg->notify_bound_ms * 1000000,
                                            &t_notified)
                   : 0;
    void *v = NULL;
    size_t len = 0;
    int64_t version = 0;
    bool injected = false;
    int64_t t0 = hx_now_ns();
    pgcw_status st = PGCW_OK;
    if (stale_read(c, key, committed, &v, &len, &version)) {
        injected = true;
    } else {
        st = pgcw_cache_get_versioned(c->cache, name, strlen(name), &v, &len, &version);
    }
    int64_t t1 = hx_now_ns();
    if (st == PGCW_ENOTFOUND) {
        hx_hist_record(&c->lat[HX_GET_MISS], t1 - t0);
        return;
    }
    if (st != PGCW_OK) {
        note_error(c, HX_GET_HIT, "get");
        return;
    }
    hx_hist_record(&c->lat[HX_GET_HIT], t1 - t0);
    c->gets_checked++;
    if (version < c->seen[key])
        violation(c, "backwards", key, version, c->seen[key], t_check, t1, 0);
    else if (version < committed)
        violation(c, "committed", key, version, committed, t_check, t1, t_committed);
    else if (version < notified)
        violation(c, "notified", key, version, notified, t_check, t1, t_notified);
    char tag;
    int writer;
    uint32_t seq;
    hx_commit cm;
    if (!parse_value(v, len, cfg->value_size, &tag, &writer, &seq))
        violation(c, "value", key, version, version, t_check, t1, 0);
    else if (tag == 'c' && hx_shm_find(c->shm, key, version, &cm) &&
             (cm.client != writer || cm.seq != seq))
        violation(c, "value", key, version, version, t_check, t1, cm.t_ret);
    if (version > c->seen[key])
        c->seen[key] = version;
#ifdef PGCW_HARNESS_INJECT
    if (cfg->inject_stale > 0 && !c->writer && c->id == cfg->writers && !injected &&
        !c->stale_value && !c->stale_done && ++c->reads >= cfg->inject_stale) {
        c->stale_key = key;
        c->stale_version = version;
        c->stale_value = v;
        v = NULL;
    }
#endif
    (void)injected;
    pgcw_free(v);
}

static void do_get_or_set(hx_client *c, const char *name)
{
    void *v = NULL;
    size_t len = 0;
    int64_t t0 = hx_now_ns();
    pgcw_status st = pgcw_cache_get_or_set(c->cache, name, strlen(name), c->cfg->ttl_ms,
                                           load, c, &v, &len);
    int64_t t1 = hx_now_ns();
    if (st != PGCW_OK) {
        note_error(c, HX_GOS, "get_or_set");
        return;
    }
    hx_hist_record(&c->lat[HX_GOS], t1 - t0);
    /* No version comes back: only the bytes are checked. */
    char tag;
    int writer;
    uint32_t seq;
    c->gos_values++;
    if (!parse_value(v, len, c->cfg->value_size, &tag, &writer, &seq))
        violation(c, "value", hx_key_index(name, strlen(name), c->cfg->keys), 0, 0, t0,
                  t1, 0);
    pgcw_free(v);
}

static void *client_main(void *arg)
{
    hx_client *c = arg;
    const hx_cfg *cfg = c->cfg;
    /* Linux niceness is per thread: only this load-generating thread is lowered,
     * not the watcher's thread nor the server's backends, so a reader spinning on
     * L1 hits cannot keep them waiting for a CPU (the delays measured are then
     * the pipeline's, not the scheduler's). Raising niceness needs no privilege. */
    if (cfg->client_nice > 0)
        (void)setpriority(PRIO_PROCESS, (id_t)gettid(), cfg->client_nice);
    while (atomic_load(&c->shm->phase) == HX_PHASE_SETUP)
        hx_sleep_ms(1);
    char name[16];
    while (atomic_load_explicit(&c->shm->phase, memory_order_relaxed) == HX_PHASE_RUN) {
        if (cfg->ops > 0 && (long long)c->done_ops >= cfg->ops)
            break;
        int key = pick_key(c);
        snprintf(name, sizeof name, "k%d", key);
        int64_t pool_kill = atomic_load(&c->slot->pool_kill_t);
        uint64_t before = pool_kill ? sql_calls(c) : 0;
        int64_t t_begin = hx_now_ns();
        uint64_t errors =
            c->errors[0] + c->errors[1] + c->errors[2] + c->errors[3] + c->errors[4];
        if (c->writer && rnd01(c) >= cfg->read_ratio)
            do_write(c, key, name);
        else if (rnd01(c) < cfg->gos_ratio)
            do_get_or_set(c, name);
        else
            do_get(c, key, name);
        c->done_ops++;
        atomic_fetch_add_explicit(&c->slot->ops, 1, memory_order_relaxed);
        uint64_t errors_after =
            c->errors[0] + c->errors[1] + c->errors[2] + c->errors[3] + c->errors[4];
        if (pool_kill && t_begin > pool_kill && errors_after == errors &&
            sql_calls(c) > before) {
            int64_t expect = pool_kill;
            if (atomic_compare_exchange_strong(&c->slot->pool_kill_t, &expect, 0)) {
                int64_t took = hx_now_ns() - pool_kill;
                hx_hist_record(&c->rec_pool, took);
                note_recovery(c->proc, c->id, false, pool_kill, took);
            }
        }
    }
    if (cfg->ops > 0)
        atomic_fetch_add(&c->shm->finished, 1);
    return NULL;
}

/* --- the monitor: recoveries of killed watchers, delays ------------------------------
 */

static void *monitor_main(void *arg)
{
    hx_proc *p = arg;
    for (unsigned tick = 0; !atomic_load(&p->stop_monitor); tick++) {
        int64_t now = hx_now_ns();
        for (int i = 0; i < p->n; i++) {
            hx_client *c = &p->clients[i];
            int64_t kt = atomic_load(&c->slot->watch_kill_t);
            if (kt && c->watcher) {
                int pid = atomic_load(&c->slot->watch_kill_pid);
                int bp = pgcw_watcher_backend_pid(c->watcher);
                if (pgcw_watcher_healthy(c->watcher) && bp != 0 && bp != pid &&
                    atomic_compare_exchange_strong(&c->slot->watch_kill_t, &kt, 0)) {
                    hx_hist_record(&p->rec_watch, now - kt);
                    note_recovery(p, c->id, true, kt, now - kt);
                }
            }
            if (tick % 5 == 0)
                hx_checker_resolve(&c->chk, now, false);
        }
        hx_sleep_ms(2);
    }
    return NULL;
}

/* --- the process ----------------------------------------------------------------------
 */

static void merge_client(hx_proc *p, hx_client *c)
{
    hx_result *r = p->res;
    for (int op = 0; op < HX_N_OPS; op++) {
        hx_hist_merge(&r->lat[op], &c->lat[op]);
        r->errors[op] += c->errors[op];
    }
    hx_hist_merge(&r->rec_pool, &c->rec_pool);
    hx_hist_merge(&r->delay, &c->chk.delay);
    r->delay_unmatched += c->chk.unmatched + c->chk.lost;
    r->gets_checked += c->gets_checked;
    r->gos_values += c->gos_values;
    r->loads += c->loads;
    r->violations += c->violations;
    /* A client can be waiting for both kinds of recovery: each counts. */
    r->unrecovered += (atomic_load(&c->slot->watch_kill_t) != 0) +
                      (atomic_load(&c->slot->pool_kill_t) != 0);
    if (!r->first_error[0] && c->first_error[0])
        snprintf(r->first_error, sizeof r->first_error, "%s", c->first_error);
    if (c->cache) {
        pgcw_cache_stats s;
        pgcw_cache_stats_get(c->cache, &s);
        uint64_t *to = &r->cache.l1_hits;
        const uint64_t *from = &s.l1_hits;
        for (size_t i = 0; i < offsetof(pgcw_cache_stats, l1_entries) / sizeof(uint64_t);
             i++)
            to[i] += from[i];
    }
}

typedef struct setup_arg {
    hx_client *c;
    char why[512];
    bool ok;
} setup_arg;

static void *setup_main(void *arg)
{
    setup_arg *a = arg;
    a->ok = client_setup(a->c, a->why, sizeof a->why);
    atomic_store(&a->c->slot->ready, a->ok ? 1 : -1);
    return NULL;
}

int hx_process_main(const hx_cfg *cfg, const cli_conn_opts *conn, hx_shm *shm, int proc)
{
    pid_t parent = getppid(); /* called right after fork */
    hx_proc p;
    memset(&p, 0, sizeof p);
    p.cfg = cfg;
    p.shm = shm;
    p.res = &shm->result[proc];
    pthread_mutex_init(&p.mu, NULL);
    int total = cfg->writers + cfg->readers;
    p.clients = calloc((size_t)total, sizeof *p.clients);
    setup_arg *args = calloc((size_t)total, sizeof *args);
    if (cfg->zipf > 0)
        p.cdf = zipf_cdf(cfg->keys, cfg->zipf);
    int rc = 1;
    if (!p.clients || !args || (cfg->zipf > 0 && !p.cdf)) {
        snprintf(p.res->fatal, sizeof p.res->fatal, "out of memory");
        goto out;
    }
    for (int id = 0; id < total; id++) {
        if (hx_process_of(cfg, id) != proc)
            continue;
        hx_client *c = &p.clients[p.n++];
        c->id = id;
        c->writer = hx_is_writer(cfg, id);
        c->cfg = cfg;
        c->shm = shm;
        c->slot = &shm->slot[id];
        c->proc = &p;
        c->conn = conn;
        c->rng = (cfg->seed ^ (0x9E3779B97F4A7C15ULL * (uint64_t)(id + 1))) | 1;
    }
    /* Set up in parallel: each client connects its pool and its watcher. */
    pthread_t *th = calloc((size_t)p.n, sizeof *th);
    bool ok = th != NULL;
    for (int i = 0; ok && i < p.n; i++) {
        args[i].c = &p.clients[i];
        if (pthread_create(&th[i], NULL, setup_main, &args[i]) != 0) {
            args[i].ok = false;
            snprintf(args[i].why, sizeof args[i].why, "cannot start a thread");
            atomic_store(&p.clients[i].slot->ready, -1);
            for (int j = 0; j < i; j++)
                pthread_join(th[j], NULL);
            ok = false;
            p.n = i; /* only these were set up (or tried) */
            break;
        }
    }
    for (int i = 0; ok && i < p.n; i++)
        pthread_join(th[i], NULL);
    free(th);
    for (int i = 0; i < p.n; i++)
        if (!args[i].ok) {
            ok = false;
            if (!p.res->fatal[0])
                snprintf(p.res->fatal, sizeof p.res->fatal, "client %d: %.440s",
                         p.clients[i].id, args[i].why);
        }
    pthread_t monitor;
    bool monitor_started = false;
    if (ok && pthread_create(&monitor, NULL, monitor_main, &p) == 0)
        monitor_started = true;
    for (int i = 0; ok && i < p.n; i++)
        if (pthread_create(&p.clients[i].thread, NULL, client_main, &p.clients[i]) == 0)
            p.clients[i].started = true;
        else {
            snprintf(p.res->fatal, sizeof p.res->fatal, "cannot start a thread");
            atomic_store(&p.clients[i].slot->ready, -1);
        }
    if (!ok) {
        /* The parent sees a ready of -1 and stops the run. */
        while (atomic_load(&shm->phase) != HX_PHASE_STOP)
            hx_sleep_ms(5);
    }
    for (int i = 0; i < p.n; i++)
        if (p.clients[i].started)
            pthread_join(p.clients[i].thread, NULL);
    /* With --ops this process may be done before the others: it stays (its watchers
     * matching their writes) until the parent ends the run, since a child that ends
     * during the run is a failed one. Not past the parent's own end. */
    while (ok && cfg->ops > 0 && atomic_load(&shm->phase) != HX_PHASE_STOP &&
           getppid() == parent)
        hx_sleep_ms(5);
    /* A short grace for recoveries and the last notifications to be matched. */
    if (monitor_started) {
        hx_sleep_ms(50);
        atomic_store(&p.stop_monitor, true);
        pthread_join(monitor, NULL);
    }
    hx_hist_merge(&p.res->rec_watch, &p.rec_watch);
    for (int i = 0; i < p.n; i++) {
        hx_client *c = &p.clients[i];
        if (c->chk.notified) {
            if (c->watcher)
                pgcw_watcher_stop(c->watcher); /* no sink runs from here on */
            hx_checker_resolve(&c->chk, hx_now_ns(), true);
        }
        merge_client(&p, c);
        client_teardown(c);
        hx_checker_free(&c->chk);
    }
    rc = ok ? 0 : 1;
out:
    p.res->done = 1;
    free(p.cdf);
    free(args);
    free(p.clients);
    pthread_mutex_destroy(&p.mu);
    return rc;
}
