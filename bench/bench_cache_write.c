/*
 * bench_cache_write.c - writes, beside raw libpq doing the same SQL in the same run:
 *   1. set: pgcw_cache_set vs PQexecPrepared of the library's own upsert (INSERT ..
 *      ON CONFLICT .. RETURNING version, the same trigger in place, binary in and
 *      out) on one connection, p50 and p99 per op, alternating op by op; target: at
 *      most 1.2x;
 *   2. --writers (16) concurrent writers, writes/s, for every write path in
 *      cache_writers.h: the library with invalidation on (the table's NOTIFY
 *      trigger) and off (trigger disabled; target: on >= 0.6x off), and raw
 *      libpq's alternatives: trigger NOTIFY in the write's transaction, LOGGED vs
 *      UNLOGGED, synchronous_commit off, no-op writes skipped with IS DISTINCT
 *      FROM, and invalidations sent after commit by one notifier thread, batched
 *      across writes and threads. Every variant runs --seconds per round, the order
 *      rotating by round; a ratio is the median over rounds of the ratio within
 *      the round.
 * The header names the server's fsync and full_page_writes: the throwaway server
 * runs with both off, which hides what a WAL flush costs a LOGGED commit, so
 * run_cache.sh also runs the writers on a second one started with them on. Pinned: every
 * client thread (the writers, the notifier, the cache's watcher) on the last CPU, the
 * server on the first (run_cache.sh).
 *
 * Must never count a write that failed (a failure ends the run).
 */
#define _GNU_SOURCE

#include "cache_bench.h"
#include "cache_writers.h"

#define SET_KEYS 1000

typedef struct bench {
    bench_cfg c;
    int n_writers;
    double seconds;
    bench_sql sql[N_TABLES];
    PGconn *admin, *nt_conn;
    PGconn *conns[N_TABLES][MAX_WRITERS];
    pgcw_cache *cache;
    pgcw_cache *cache_after;      /* PGCW_CACHE_NOTIFY_AFTER_COMMIT */
    pgcw_cache *cache_background; /* PGCW_CACHE_NOTIFY_BACKGROUND */
    pgcw_cache *cache_logged;     /* the LOGGED table, TRIGGER */
    pgcw_cache_opts logical_opts; /* PGCW_CACHE_NOTIFY_LOGICAL: made for its runs */
    PGconn *sample_conn;          /* --waits: the sampler's, else NULL */
    char waits[N_VARIANTS][160];  /* the last round's top waits, per variant */
    int trigger_on[N_TABLES];     /* -1 unknown */
    int async_on[N_TABLES];
} bench;

/* The library's upsert with one change: DO UPDATE only when the value differs. */
static char *distinct_sql(const char *setup)
{
    const char *p = strstr(setup, "PREPARE " PGCW__ST_SET " ");
    const char *ret = p ? strstr(p, " RETURNING version;") : NULL;
    if (!ret)
        bench_die("the library's setup SQL has no " PGCW__ST_SET);
    const char *head = p + strlen("PREPARE " PGCW__ST_SET);
    size_t len = (size_t)(ret - head);
    char *out = malloc(len + 200);
    if (!out)
        bench_die("out of memory");
    snprintf(out, len + 200,
             "PREPARE " ST_DISTINCT "%.*s WHERE e.value IS DISTINCT FROM EXCLUDED.value"
             " RETURNING version",
             (int)len, head);
    return out;
}

static void set_trigger(bench *b, int t, bool on)
{
    if (b->trigger_on[t] == (int)on)
        return;
    char sql[512];
    snprintf(sql, sizeof sql, "ALTER TABLE %s %s TRIGGER %s",
             b->sql[t].names.entries_table, on ? "ENABLE" : "DISABLE",
             b->sql[t].names.broadcast_trigger);
    bench_exec(b->admin, sql);
    b->trigger_on[t] = on;
}

static void set_async(bench *b, int t, bool on)
{
    if (b->async_on[t] == (int)on)
        return;
    for (int i = 0; i < b->n_writers; i++)
        bench_exec(b->conns[t][i],
                   on ? "SET synchronous_commit = off" : "SET synchronous_commit = on");
    b->async_on[t] = on;
}

/* Makes every writer key's value the "repeat" value. */
static void reset_repeat(bench *b, int t)
{
    char sql[512];
    snprintf(sql, sizeof sql,
             "UPDATE %s SET value = convert_to(repeat('%c', %d), 'UTF8') WHERE cache_key "
             "LIKE 'w%%'",
             b->sql[t].names.entries_table, REPEAT_BYTE, BENCH_VALUE_LEN);
    bench_exec(b->admin, sql);
}

/* One variant with every writer: writes/s while measuring. */
static double run_variant(bench *b, int vi, notifier *nt)
{
    const variant *v = &k_variants[vi];
    set_trigger(b, v->table, v->trigger);
    set_async(b, v->table, v->async);
    if (v->repeat)
        reset_repeat(b, v->table);
    /* The logical cache exists only while its variant runs: its slot decodes every
     * write to the server's WAL, which would tax the other variants. */
    pgcw_cache *logical = v->logical ? bench_cache_new(&b->c, &b->logical_opts) : NULL;
    writers ws = {.v = v,
                  .cache = v->logical             ? logical
                           : v->background        ? b->cache_background
                           : v->after             ? b->cache_after
                           : v->table == T_LOGGED ? b->cache_logged
                                                  : b->cache,
                  .conns = b->conns[v->table],
                  .cpu = b->c.pin ? bench_client_cpu() : -1,
                  .ttl_ms = 300000};
    atomic_init(&ws.phase, PH_WARMUP);
    if (v->batched) {
        nt->stop = false;
        if (pthread_create(&nt->thread, NULL, notifier_main, nt) != 0)
            bench_die("pthread_create failed");
        ws.nt = nt;
    }
    writer w[MAX_WRITERS];
    for (int i = 0; i < b->n_writers; i++) {
        w[i] = (writer){.ws = &ws, .id = i};
        if (pthread_create(&w[i].thread, NULL, writer_main, &w[i]) != 0)
            bench_die("pthread_create failed");
    }
    sleep_ns(200 * 1000000LL);
    static sampler sm;
    if (b->sample_conn) {
        memset(&sm, 0, sizeof sm);
        sm.pg = b->sample_conn;
        if (pthread_create(&sm.thread, NULL, sampler_main, &sm) != 0)
            bench_die("pthread_create failed");
    }
    atomic_store(&ws.phase, PH_MEASURE);
    int64_t t0 = mono_ns();
    sleep_ns((int64_t)(b->seconds * 1e9));
    atomic_store(&ws.phase, PH_STOP);
    int64_t t1 = mono_ns();
    if (b->sample_conn) {
        atomic_store(&sm.stop, 1);
        pthread_join(sm.thread, NULL);
        sampler_top(&sm, b->waits[vi], sizeof b->waits[vi]);
    }
    uint64_t done = 0;
    for (int i = 0; i < b->n_writers; i++) {
        pthread_join(w[i].thread, NULL);
        done += w[i].done;
    }
    if (v->batched) {
        pthread_mutex_lock(&nt->mu);
        nt->stop = true;
        pthread_cond_signal(&nt->cv);
        pthread_mutex_unlock(&nt->mu);
        pthread_join(nt->thread, NULL);
    }
    pgcw_cache_free(logical);
    return (double)done * 1e9 / (double)(t1 - t0);
}

static void writers_phase(bench *b, const char *fsync_label)
{
    int R = b->c.rounds;
    double *res = calloc((size_t)N_VARIANTS * (size_t)R, sizeof *res), v[1000];
    if (!res)
        bench_die("out of memory");
    notifier nt = {.pg = b->nt_conn, .channel = BENCH_CHANNEL, .lag = hist_new()};
    pthread_mutex_init(&nt.mu, NULL);
    pthread_cond_init(&nt.cv, NULL);
    for (int r = 0; r < R; r++) {
        for (int j = 0; j < N_VARIANTS; j++) {
            int vi = (j + r) % N_VARIANTS;
            res[vi * R + r] = run_variant(b, vi, &nt);
        }
        fprintf(stderr,
                "bench_cache_write: writers, fsync %s, round %d of %d: lib %.0f/%.0f, "
                "raw %.0f/%.0f writes/s (trigger/none)\n",
                fsync_label, r + 1, R, res[V_LIB_ON * R + r], res[V_LIB_OFF * R + r],
                res[V_RAW_ON * R + r], res[V_RAW_OFF * R + r]);
    }
    printf("%d writers, %d keys each, %.1f s per variant and round; fsync %s\n",
           b->n_writers, KEYS_PER_WRITER, b->seconds, fsync_label);
    printf("%-21s %9s %6s %-21s %6s  %s\n", "variant", "writes/s", "x ref", "ref",
           "x none", "what");
    for (int vi = 0; vi < N_VARIANTS; vi++) {
        const variant *x = &k_variants[vi];
        for (int r = 0; r < R; r++)
            v[r] = res[vi * R + r];
        double rate = median(v, R);
        for (int r = 0; r < R; r++)
            v[r] = ratio(res[vi * R + r], res[x->ref * R + r]);
        double xref = median(v, R);
        for (int r = 0; r < R; r++)
            v[r] = ratio(res[vi * R + r], res[V_RAW_OFF * R + r]);
        double xnone = median(v, R);
        printf("%-21s %9.0f %6.2f %-21s %6.2f  %s\n", x->name, rate, xref,
               k_variants[x->ref].name, xnone, x->what);
    }
    for (int r = 0; r < R; r++)
        v[r] = ratio(res[V_LIB_ON * R + r], res[V_LIB_OFF * R + r]);
    double x = median(v, R);
    for (int r = 0; r < R; r++)
        v[r] = ratio(res[V_LIB_AFTER * R + r], res[V_LIB_OFF * R + r]);
    double xa = median(v, R);
    for (int r = 0; r < R; r++)
        v[r] = ratio(res[V_LIB_BACKGROUND * R + r], res[V_LIB_OFF * R + r]);
    double xb = median(v, R);
    for (int r = 0; r < R; r++)
        v[r] = ratio(res[V_LIB_LOGICAL * R + r], res[V_LIB_LOGGED_OFF * R + r]);
    double xl = median(v, R);
    for (int r = 0; r < R; r++)
        v[r] = ratio(res[V_LIB_LOGICAL * R + r], res[V_LIB_OFF * R + r]);
    double xlu = median(v, R);
    printf("target: invalidation on >= 0.6x lib-no-trigger: lib-trigger %.2f, %s; "
           "lib-after-commit %.2f, %s; lib-background %.2f, %s; lib-logical %.2f of "
           "lib-logged-no-trigger, %s (%.2f of the UNLOGGED lib-no-trigger). x none: vs "
           "raw-no-trigger in the same round.\n",
           x, x >= 0.6 ? "met" : "MISSED", xa, xa >= 0.6 ? "met" : "MISSED", xb,
           xb >= 0.6 ? "met" : "MISSED", xl, xl >= 0.6 ? "met" : "MISSED", xlu);
    for (int vi = 0; b->sample_conn && vi < N_VARIANTS; vi++)
        printf("%s%-21s %s\n",
               vi ? ""
                  : "active writers' backends, sampled every 5 ms "
                    "(last round):\n",
               k_variants[vi].name, b->waits[vi]);
    printf(
        "raw-batched notifier: %" PRIu64 " notifications in %" PRIu64
        " transactions (%.1f per batch); the oldest write of a batch waited p50 %.0f us, "
        "p99 %.0f us from its commit to its pg_notify's return\n\n",
        nt.sent, nt.batches, nt.batches ? (double)nt.sent / (double)nt.batches : 0.0,
        hist_pct(nt.lag, 0.5) / 1e3, hist_pct(nt.lag, 0.99) / 1e3);
    free(nt.lag);
    free(nt.pending);
    pthread_mutex_destroy(&nt.mu);
    pthread_cond_destroy(&nt.cv);
    free(res);
}

/* One set on each side, the order given; wall ns into the histograms and totals. */
typedef struct set_side {
    hist *h;
    int64_t wall, cpu;
} set_side;

static void one_set(pgcw_cache *cache, PGconn *pg, bool lib, long k, long gen,
                    set_side *side)
{
    char key[BENCH_KEY_MAX], val[BENCH_VALUE_LEN], ttl[8];
    pgcw__put_int64(ttl, 300000);
    size_t kl = bench_key(key, lib ? "sl" : "sr", k);
    bench_value(val, sizeof val, k, gen);
    int64_t c0 = thread_cpu_ns(), t0 = mono_ns();
    if (lib) {
        if (pgcw_cache_set(cache, key, kl, val, sizeof val, PGCW_CACHE_TTL_DEFAULT) !=
            PGCW_OK)
            bench_die("set: %s", pgcw_cache_errmsg(cache));
    } else {
        const char *values[3] = {key, val, ttl};
        int lengths[3] = {(int)kl, (int)sizeof val, 8};
        PGresult *res =
            PQexecPrepared(pg, PGCW__ST_SET, 3, values, lengths, k_bench_binary, 1);
        if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
            bench_die("raw set: %s", PQerrorMessage(pg));
        (void)pgcw__res_int64(res, 0, 0);
        PQclear(res);
    }
    int64_t t = mono_ns() - t0;
    side->cpu += thread_cpu_ns() - c0;
    hist_add(side->h, t);
    side->wall += t;
}

/* set vs the raw upsert, op by op, over n_conns connections per side used in turn
 * and opened anew every round (see bench_cache_read.c); the library's caches
 * share one watcher on a thread of its own, so one listener sees every write, as
 * with a single cache. */
static void set_phase(bench *b, long ops, int n_conns)
{
    int R = b->c.rounds;
    fig *lf = calloc((size_t)R * 2, sizeof *lf);
    if (!lf)
        bench_die("out of memory");
    fig *rf = lf + R;
    set_side sl = {hist_new(), 0, 0}, sr = {hist_new(), 0, 0};
    set_trigger(b, T_UNLOGGED, true);
    pgcw_conn_opts co = bench_conn_opts(&b->c);
    const char *channels[1] = {BENCH_CHANNEL};
    pgcw_payload_format formats[1] = {PGCW_FORMAT_CACHE_KEY};
    pgcw_watcher_opts wo = {.channels = channels, .n_channels = 1, .formats = formats};
    uint64_t rng = 12345, sets = 0, refused = 0;
    long gen = 1;
    pgcw_cache *caches[MAX_WRITERS];
    PGconn *raws[MAX_WRITERS];
    for (int r = 0; r < R; r++) {
        pgcw_watcher *w;
        if (pgcw_watcher_new(&wo, &co, &w) != PGCW_OK || pgcw_watcher_start(w) != PGCW_OK)
            bench_die("cannot start a watcher");
        pgcw_cache_opts o = {.schema_prefix = BENCH_PREFIX,
                             .notify_channel = BENCH_CHANNEL,
                             .pool_size = 1,
                             .watcher = w};
        for (int j = 0; j < n_conns; j++) {
            caches[j] = bench_cache_new(&b->c, &o);
            raws[j] = bench_raw_connect(&b->c, b->sql[T_UNLOGGED].setup);
            for (long i = 0; i < 50; i++) {
                one_set(caches[j], raws[j], true, i, ++gen, &sl);
                one_set(caches[j], raws[j], false, i, ++gen, &sr);
            }
        }
        hist_reset(sl.h);
        hist_reset(sr.h);
        sl.wall = sl.cpu = sr.wall = sr.cpu = 0;
        pgcw_cache_stats s0[MAX_WRITERS], s1;
        for (int j = 0; j < n_conns; j++)
            pgcw_cache_stats_get(caches[j], &s0[j]);
        for (long i = 0; i < ops; i++) {
            long k = (long)(bench_rand(&rng) % SET_KEYS);
            bool lib_first = i % 2 == 0;
            int j = (int)(i % n_conns);
            one_set(caches[j], raws[j], lib_first, k, ++gen, lib_first ? &sl : &sr);
            one_set(caches[j], raws[j], !lib_first, k, ++gen, lib_first ? &sr : &sl);
        }
        for (int j = 0; j < n_conns; j++) {
            pgcw_cache_stats_get(caches[j], &s1);
            sets += s1.sets - s0[j].sets;
            refused += s1.refused_fills - s0[j].refused_fills;
            PQfinish(raws[j]);
            pgcw_cache_free(caches[j]);
        }
        pgcw_watcher_stop(w);
        pgcw_watcher_free(w);
        lf[r] = fig_of(sl.h, sl.wall, sl.cpu, ops, ops);
        rf[r] = fig_of(sr.h, sr.wall, sr.cpu, ops, ops);
        fprintf(stderr,
                "bench_cache_write: set round %d: p50 %.1f/%.1f us (library/raw)\n",
                r + 1, lf[r].p50 / 1e3, rf[r].p50 / 1e3);
    }
    printf("set: %ld per side per round over %d connections per side\n", ops, n_conns);
    print_pair_header();
    print_pair("set, trigger on (us per op)", lf, rf, R, "rate: sets/s", 1e3);
    printf(
        "target: set p50 and p99 <= 1.2x raw; cpu: the calling thread's CPU time per "
        "call, us. The library's own write was refused by its L1 (its own notification "
        "came first) in %" PRIu64 " of %" PRIu64 " sets (%.0f%%): the next get of that "
        "key reads PostgreSQL.\n\n",
        refused, sets, sets ? 100.0 * (double)refused / (double)sets : 0.0);
    free(sl.h);
    free(sr.h);
    free(lf);
}

static void prefill(bench *b, int t)
{
    PGconn *pg = b->conns[t][0];
    char ns[16], key[BENCH_KEY_MAX], val[BENCH_VALUE_LEN], ttl[8];
    pgcw__put_int64(ttl, 300000);
    bench_exec(pg, "BEGIN");
    for (int w = 0; w < b->n_writers + 2; w++) {
        long n = w < b->n_writers ? KEYS_PER_WRITER : SET_KEYS;
        if (w < b->n_writers)
            snprintf(ns, sizeof ns, "w%02d", w);
        else
            snprintf(ns, sizeof ns, "%s", w == b->n_writers ? "sl" : "sr");
        for (long k = 0; k < n; k++) {
            size_t kl = bench_key(key, ns, k);
            bench_value(val, sizeof val, k, 0);
            const char *values[3] = {key, val, ttl};
            int lengths[3] = {(int)kl, (int)sizeof val, 8};
            PGresult *r =
                PQexecPrepared(pg, PGCW__ST_SET, 3, values, lengths, k_bench_binary, 1);
            if (PQresultStatus(r) != PGRES_TUPLES_OK)
                bench_die("prefill: %s", PQerrorMessage(pg));
            PQclear(r);
        }
    }
    bench_exec(pg, "COMMIT");
}

int main(int argc, char **argv)
{
    g_bench_prog = "bench_cache_write";
    static bench b = {.c = {.rounds = 5}, .seconds = 1.0};
    long ops = 3000, n_writers = 16, conns = 4;
    bool skip_set = false, skip_writers = false, waits = false;
    const bench_opt opts[] = {
        {"ops", "N", "sets per side per round (default 3000)", .l = &ops, .min = 1,
         .max = 1e8},
        {"writers", "N", "concurrent writers (default 16)", .l = &n_writers, .min = 1,
         .max = MAX_WRITERS},
        {"seconds", "S", "per variant and round (default 1)", .d = &b.seconds,
         .min = 0.05, .max = 600},
        {"conns", "N", "set phase: connections per side, used in turn (default 4)",
         .l = &conns, .min = 1, .max = MAX_WRITERS},
        {"skip-set", NULL, "no set phase", .flag = &skip_set},
        {"skip-writers", NULL, "no writers phase", .flag = &skip_writers},
        {"waits", NULL,
         "sample the writers' wait events (a diagnostic; it perturbs the "
         "figures)",
         .flag = &waits},
    };
    bench_parse(argc, argv, &b.c, opts, 7);
    b.n_writers = (int)n_writers;
    if (b.c.quick) {
        ops = 100;
        b.seconds = 0.1;
    }
    bench_cpus_init();
    /* Before the cache exists: its watcher's thread inherits the mask. */
    bench_pin_self(b.c.pin ? bench_client_cpu() : -1);

    pgcw_cache_opts o[N_TABLES] = {
        {.schema_prefix = BENCH_PREFIX,
         .notify_channel = BENCH_CHANNEL,
         .pool_size = (size_t)b.n_writers},
        {.schema_prefix = BENCH_PREFIX "logged_",
         .notify_channel = BENCH_CHANNEL,
         .pool_size = (size_t)b.n_writers,
         .durability = PGCW_CACHE_LOGGED},
    };
    b.admin = bench_raw_connect(&b.c, NULL);
    b.nt_conn = bench_raw_connect(&b.c, NULL);
    b.sample_conn = waits ? bench_raw_connect(&b.c, NULL) : NULL;
    for (int t = 0; t < N_TABLES; t++) {
        /* LOGICAL's init_db also makes the LOGGED table's publication; the raw
         * connections take the default mode's setup (the trigger notifies them). */
        pgcw_cache_opts init = o[t];
        if (t == T_LOGGED)
            init.notify_mode = PGCW_CACHE_NOTIFY_LOGICAL;
        bench_init_db(&b.c, &init);
        bench_sql_init(&b.sql[t], &o[t]);
        b.trigger_on[t] = b.async_on[t] = -1;
        set_trigger(&b, t, true);
        char *dsql = distinct_sql(b.sql[t].setup);
        for (int i = 0; i < b.n_writers; i++) {
            b.conns[t][i] = bench_raw_connect(&b.c, b.sql[t].setup);
            bench_exec(b.conns[t][i], dsql);
        }
        free(dsql);
        set_async(&b, t, false);
        prefill(&b, t);
    }
    b.cache = bench_cache_new(&b.c, &o[T_UNLOGGED]);
    pgcw_cache_opts after = o[T_UNLOGGED];
    after.notify_mode = PGCW_CACHE_NOTIFY_AFTER_COMMIT;
    b.cache_after = bench_cache_new(&b.c, &after);
    after.notify_mode = PGCW_CACHE_NOTIFY_BACKGROUND;
    b.cache_background = bench_cache_new(&b.c, &after);
    b.logical_opts = o[T_LOGGED];
    b.logical_opts.notify_mode = PGCW_CACHE_NOTIFY_LOGICAL;
    b.cache_logged = bench_cache_new(&b.c, &o[T_LOGGED]);

    bench_banner(&b.c, "writes: library vs raw libpq, same SQL, same trigger");
    if (!skip_set)
        set_phase(&b, ops, (int)conns);
    if (!skip_writers) {
        PGresult *r = PQexec(b.admin, "SELECT current_setting('fsync'), "
                                      "current_setting('full_page_writes')");
        char label[64];
        bool ok = PQresultStatus(r) == PGRES_TUPLES_OK;
        snprintf(label, sizeof label, "%s, full_page_writes %s",
                 ok ? PQgetvalue(r, 0, 0) : "?", ok ? PQgetvalue(r, 0, 1) : "?");
        PQclear(r);
        writers_phase(&b, label);
    }
    set_trigger(&b, T_UNLOGGED, true);
    set_trigger(&b, T_LOGGED, true);
    pgcw_cache_free(b.cache);
    pgcw_cache_free(b.cache_after);
    pgcw_cache_free(b.cache_background);
    pgcw_cache_free(b.cache_logged);
    for (int t = 0; t < N_TABLES; t++) {
        for (int i = 0; i < b.n_writers; i++)
            PQfinish(b.conns[t][i]);
        bench_sql_free(&b.sql[t]);
    }
    PQfinish(b.nt_conn);
    if (b.sample_conn)
        PQfinish(b.sample_conn);
    PQfinish(b.admin);
    return 0;
}
