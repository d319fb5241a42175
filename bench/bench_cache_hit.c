/*
 * bench_cache_hit.c - pgcw_cache get on an L1 hit (no server round trip), ns per
 * op over a thread-count sweep, beside the raw L1 (pgcw_l1_get on an L1 holding
 * the same keys and values with the same TTL) in the same run.
 *
 * Two pairs: pgcw_cache_get_into vs pgcw_l1_get (copy into the caller's buffer,
 * no allocation) and pgcw_cache_get vs pgcw_l1_get_dup + free (an allocated copy).
 * Each run: T threads start together and make --ops gets each on uniformly random
 * keys, timed per batch of --batch gets; ns/op is the median batch over all
 * threads, divided by the batch (a batch that was preempted lands in the tail, not
 * in a mean). Within a round every pair runs library and raw back to back, the
 * order alternating, and the ratio is taken within the round; the figure is the
 * median over rounds. Pinned: thread i on CPU i mod n (the server is idle here).
 *
 * Must never count a get the L1 did not answer: the cache's statistics must show
 * one L1 hit per get and no miss or bypass, or the run fails.
 */
#define _GNU_SOURCE

#include "cache_bench.h"

#define MAX_THREADS 16

enum { RAW_INTO, LIB_INTO, RAW_DUP, LIB_DUP, N_KINDS };
static const char *const kind_names[N_KINDS] = {"pgcw_l1_get", "pgcw_cache_get_into",
                                                "pgcw_l1_get_dup", "pgcw_cache_get"};

typedef struct bkey {
    char s[BENCH_KEY_MAX];
    size_t len;
} bkey;

typedef struct shared {
    pgcw_cache *cache;
    pgcw_l1 *l1;
    const bkey *keys;
    long n_keys, ops, batch;
    pthread_barrier_t start;
} shared;

typedef struct worker {
    shared *sh;
    int kind, cpu;
    uint64_t seed;
    hist *h; /* batch durations, ns */
    long fails;
    int64_t t_start, t_end;
    pthread_t thread;
} worker;

static void *worker_main(void *arg)
{
    worker *w = arg;
    shared *sh = w->sh;
    bench_pin_self(w->cpu);
    char buf[BENCH_VALUE_LEN];
    uint64_t x = w->seed;
    long nb = sh->ops / sh->batch;
    pthread_barrier_wait(&sh->start);
    w->t_start = mono_ns();
    for (long b = 0; b < nb; b++) {
        int64_t t0 = mono_ns();
        for (long i = 0; i < sh->batch; i++) {
            const bkey *k = &sh->keys[bench_rand(&x) % (uint64_t)sh->n_keys];
            size_t len;
            void *dup = NULL;
            pgcw_status st;
            switch (w->kind) {
            case RAW_INTO:
                st = pgcw_l1_get(sh->l1, k->s, k->len, buf, sizeof buf, &len, NULL);
                break;
            case LIB_INTO:
                st = pgcw_cache_get_into(sh->cache, k->s, k->len, buf, sizeof buf, &len);
                break;
            case RAW_DUP:
                st = pgcw_l1_get_dup(sh->l1, k->s, k->len, &dup, &len, NULL);
                break;
            default:
                st = pgcw_cache_get(sh->cache, k->s, k->len, &dup, &len);
                break;
            }
            pgcw_free(dup);
            if (st != PGCW_OK || len != BENCH_VALUE_LEN)
                w->fails++;
        }
        hist_add(w->h, mono_ns() - t0);
    }
    w->t_end = mono_ns();
    return NULL;
}

typedef struct run_result {
    double ns_op, p99_ns_op, mops;
} run_result;

/* T threads of one kind at once. */
static run_result run(const bench_cfg *c, shared *sh, worker *ws, int kind, int t,
                      uint64_t seed)
{
    pgcw_cache_stats s0, s1;
    pgcw_cache_stats_get(sh->cache, &s0);
    if (pthread_barrier_init(&sh->start, NULL, (unsigned)t + 1) != 0)
        bench_die("pthread_barrier_init failed");
    for (int i = 0; i < t; i++) {
        ws[i].sh = sh;
        ws[i].kind = kind;
        ws[i].cpu = c->pin ? bench_cpu(i) : -1;
        ws[i].seed = seed * 7919 + (uint64_t)i * 104729 + 1;
        ws[i].fails = 0;
        hist_reset(ws[i].h);
        if (pthread_create(&ws[i].thread, NULL, worker_main, &ws[i]) != 0)
            bench_die("pthread_create failed");
    }
    pthread_barrier_wait(&sh->start);
    hist *all = hist_new();
    long fails = 0;
    int64_t first = INT64_MAX, last = 0;
    for (int i = 0; i < t; i++) {
        pthread_join(ws[i].thread, NULL);
        hist_merge(all, ws[i].h);
        fails += ws[i].fails;
        first = ws[i].t_start < first ? ws[i].t_start : first;
        last = ws[i].t_end > last ? ws[i].t_end : last;
    }
    int64_t wall = last - first; /* first start to last end, as the threads saw it */
    pthread_barrier_destroy(&sh->start);
    if (fails)
        bench_die("%s: %ld gets did not return the value", kind_names[kind], fails);
    long done = (sh->ops / sh->batch) * sh->batch * t;
    if (kind == LIB_INTO || kind == LIB_DUP) {
        pgcw_cache_stats_get(sh->cache, &s1);
        if (s1.l1_hits - s0.l1_hits != (uint64_t)done || s1.l1_misses != s0.l1_misses ||
            s1.bypasses != s0.bypasses)
            bench_die("the L1 did not answer every get (hits %" PRIu64 " of %ld, misses "
                      "%" PRIu64 ", bypasses %" PRIu64 ")",
                      s1.l1_hits - s0.l1_hits, done, s1.l1_misses - s0.l1_misses,
                      s1.bypasses - s0.bypasses);
    }
    run_result r = {hist_pct(all, 0.50) / (double)sh->batch,
                    hist_pct(all, 0.99) / (double)sh->batch,
                    (double)done / ((double)wall / 1e3)};
    free(all);
    return r;
}

/* "1,2,4" into threads; returns how many. */
static int parse_threads(const char *list, int *threads, int max)
{
    int n = 0;
    for (const char *p = list; *p && n < max;) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 1 || v > MAX_THREADS || (*end && *end != ','))
            bench_die("--threads: a comma-separated list of 1 to %d", MAX_THREADS);
        threads[n++] = (int)v;
        p = *end == ',' ? end + 1 : end;
    }
    return n;
}

int main(int argc, char **argv)
{
    g_bench_prog = "bench_cache_hit";
    bench_cfg c = {.rounds = 5};
    long ops = 1000000, n_keys = 1000, batch = 1000;
    const char *thread_list = "1,2,4";
    const bench_opt opts[] = {
        {"threads", "LIST", "thread counts (default 1,2,4)", .str = &thread_list},
        {"ops", "N", "gets per thread per run (default 1000000)", .l = &ops, .min = 1,
         .max = 1e9},
        {"keys", "N", "distinct keys (default 1000)", .l = &n_keys, .min = 1,
         .max = 4000},
    };
    bench_parse(argc, argv, &c, opts, 3);
    int threads[8];
    int n_threads = parse_threads(thread_list, threads, 8);
    if (c.quick) {
        ops = 20000;
        batch = 100;
        n_keys = 100;
    }
    if (ops < batch)
        batch = ops;
    bench_cpus_init();

    pgcw_cache_opts o = {
        .schema_prefix = BENCH_PREFIX, .notify_channel = BENCH_CHANNEL, .pool_size = 1};
    bench_init_db(&c, &o);
    pgcw_cache *cache = bench_cache_new(&c, &o);
    bench_fill(cache, "hit", n_keys);
    /* A set's own notification can reach the watcher before the set has filled the
     * L1, which refuses the fill (the invalidation bumps the slot's generation
     * whatever its version): read every key until the L1 holds them all. */
    for (int pass = 0;; pass++) {
        pgcw_cache_stats s0, s1;
        pgcw_cache_stats_get(cache, &s0);
        for (long i = 0; i < n_keys; i++) {
            char k[BENCH_KEY_MAX], v[BENCH_VALUE_LEN];
            size_t kl = bench_key(k, "hit", i), len;
            if (pgcw_cache_get_into(cache, k, kl, v, sizeof v, &len) != PGCW_OK)
                bench_die("get: %s", pgcw_cache_errmsg(cache));
        }
        pgcw_cache_stats_get(cache, &s1);
        if (s1.l1_hits - s0.l1_hits == (uint64_t)n_keys)
            break;
        if (pass == 5)
            bench_die("the L1 does not keep the %ld keys", n_keys);
    }

    /* The raw reference: an L1 as the cache makes its own (same bounds, default
     * shards), the same keys and values, a TTL as the cache's copies have. */
    pgcw_l1_opts lo = {.max_entries = 4096, .max_bytes = (size_t)64 << 20};
    pgcw_l1 *l1;
    if (pgcw_l1_new(&lo, &l1) != PGCW_OK)
        bench_die("pgcw_l1_new failed");
    bkey *keys = calloc((size_t)n_keys, sizeof *keys);
    if (!keys)
        bench_die("out of memory");
    for (long i = 0; i < n_keys; i++) {
        char v[BENCH_VALUE_LEN];
        keys[i].len = bench_key(keys[i].s, "hit", i);
        bench_value(v, sizeof v, i, 0);
        if (pgcw_l1_set(l1, keys[i].s, keys[i].len, v, sizeof v, 1, 300 * 1000000LL) !=
            PGCW_OK)
            bench_die("pgcw_l1_set failed");
    }
    shared sh = {.cache = cache,
                 .l1 = l1,
                 .keys = keys,
                 .n_keys = n_keys,
                 .ops = ops,
                 .batch = batch};
    worker ws[MAX_THREADS];
    for (int i = 0; i < MAX_THREADS; i++)
        ws[i].h = hist_new();

    bench_banner(&c, "get, L1 hit: library vs raw pgcw_l1_get on the same keys");
    printf("%ld keys, %d-byte values; %ld gets per thread per run, timed per batch of "
           "%ld\n",
           n_keys, BENCH_VALUE_LEN, ops, batch);
    /* [thread count][kind][round] */
    static run_result res[8][N_KINDS][1000];
    for (int r = 0; r < c.rounds; r++) {
        for (int ti = 0; ti < n_threads; ti++) {
            for (int pair = 0; pair < 2; pair++) {
                int raw = pair * 2, lib = raw + 1;
                int first = (r + pair) % 2 ? lib : raw, second = first == raw ? lib : raw;
                uint64_t seed = (uint64_t)(r * 31 + ti * 7 + pair + 1);
                res[ti][first][r] = run(&c, &sh, ws, first, threads[ti], seed);
                res[ti][second][r] = run(&c, &sh, ws, second, threads[ti], seed);
            }
        }
        fprintf(stderr, "bench_cache_hit: round %d of %d done\n", r + 1, c.rounds);
    }

    printf("%-20s %3s %9s %9s %6s %9s %9s %10s %10s %6s\n", "library call", "thr",
           "lib ns/op", "raw ns/op", "x raw", "lib p99", "raw p99", "lib Mops/s",
           "raw Mops/s", "x raw");
    double *v = malloc((size_t)c.rounds * sizeof *v);
    if (!v)
        bench_die("out of memory");
    for (int pair = 0; pair < 2; pair++) {
        int raw = pair * 2, lib = raw + 1;
        for (int ti = 0; ti < n_threads; ti++) {
            double m[N_KINDS][3];
            for (int k = raw; k <= lib; k++) {
                for (int r = 0; r < c.rounds; r++)
                    v[r] = res[ti][k][r].ns_op;
                m[k][0] = median(v, c.rounds);
                for (int r = 0; r < c.rounds; r++)
                    v[r] = res[ti][k][r].p99_ns_op;
                m[k][1] = median(v, c.rounds);
                for (int r = 0; r < c.rounds; r++)
                    v[r] = res[ti][k][r].mops;
                m[k][2] = median(v, c.rounds);
            }
            for (int r = 0; r < c.rounds; r++)
                v[r] = ratio(res[ti][lib][r].ns_op, res[ti][raw][r].ns_op);
            double x_ns = median(v, c.rounds);
            for (int r = 0; r < c.rounds; r++)
                v[r] = ratio(res[ti][lib][r].mops, res[ti][raw][r].mops);
            double x_tp = median(v, c.rounds);
            printf("%-20s %3d %9.1f %9.1f %6.2f %9.1f %9.1f %10.2f %10.2f %6.2f\n",
                   kind_names[lib], threads[ti], m[lib][0], m[raw][0], x_ns, m[lib][1],
                   m[raw][1], m[lib][2], m[raw][2], x_tp);
        }
    }
    printf("raw: %s beside pgcw_cache_get_into, %s + free beside pgcw_cache_get. "
           "ns/op: median batch per thread (p99: the 99th percentile batch); x raw: "
           "median over rounds of library/raw within the round.\n\n",
           kind_names[RAW_INTO], kind_names[RAW_DUP]);
    free(v);
    for (int i = 0; i < MAX_THREADS; i++)
        free(ws[i].h);
    free(keys);
    pgcw_l1_free(l1);
    pgcw_cache_free(cache);
    return 0;
}
