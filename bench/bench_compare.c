/*
 * bench_compare.c - one workload, four systems, one run: this library with its L1
 * (lib-l1), without (lib-no-l1), raw libpq running the library's own SQL
 * (raw-libpq: the floor for anything PostgreSQL-backed), and Redis (GET, SET k v
 * PX ttl); for writes also the library with notify_mode BACKGROUND (lib-l1-bg).
 * compare_systems.h says how each is used. bench/run_compare.sh starts
 * the throwaway PostgreSQL and Redis, runs this unpinned and pinned, writes the
 * data file and draws the chart.
 *
 * Workloads (same keyspace, 64-byte values and TTL for every system):
 *   reads   --keys keys written beforehand; each get asks for one of them, or
 *           with --miss-pct (1) percent probability for a key nobody wrote (a
 *           99% hit workload); a sweep over --threads client threads;
 *   writes  set of a random key of --keys, a new value each time, TTL --ttl-ms;
 *           invalidation on: the library in its default notify mode (the table's
 *           trigger), raw libpq with the same trigger, and a listener process
 *           (a pgcw_cache with its L1 and watcher, holding the keys) hears every
 *           write; Redis notifies nobody;
 *   mixed   the Python postgres-cache harness's defaults: --writers (16) writing
 *           and --readers (32) reading --mixed-keys (64) keys, TTL 5 s, as fast
 *           as they can; then again with its pauses (a writer sleeps 0-5 ms
 *           after each write, a reader 0-2 ms), which cap what any system can do;
 *   inval   cache_inval.h (bench_cache_inval's measurement): a writer process's
 *           commit to the eviction in another process's L1, beside a bare LISTEN.
 * Each (workload, client count) runs every system back to back, --seconds each
 * after a warmup of at least 0.3 s that lasts until every thread has made 5 calls
 * (the library's pool opens its connections on first use), the order rotating by
 * round, with a fresh instance and fresh connections each time; a ratio to Redis
 * is taken within the round and the figure is the median over --rounds. 1 op in 8
 * is timed into a log-bucketed histogram (an L1 hit costs about as much as two
 * clock reads). Pinned: every client thread (and the library's threads) on the last
 * CPU, the servers on the first (run_compare.sh).
 *
 * Must never count an operation that failed or read the wrong thing: a get of a
 * written key that misses, or of an unwritten key that hits, ends the run.
 */
#define _GNU_SOURCE

#include <stdatomic.h>

#include "cache_inval.h"
#include "compare_systems.h"

#define MAX_THREAD_COUNTS 8
#define MAX_CLIENTS 64
#define MISS_KEYS 1000

enum { W_READ, W_WRITE, W_MIXED, W_MIXED_PAUSED, N_WORKLOADS };

typedef struct bkey {
    char s[BENCH_KEY_MAX];
    size_t len;
} bkey;

typedef struct workload {
    const char *name;  /* in the data file */
    const char *label; /* in the table */
    int kind;
    const bkey *keys;
    long n_keys;
    int64_t ttl_ms;
    int miss_pct;
    int writers; /* the first this many threads write (W_WRITE: all) */
    bool pauses;
} workload;

enum { PH_WARMUP, PH_MEASURE, PH_STOP };

typedef struct cell {
    const workload *w;
    const bkey *miss;
    int cpu;
    atomic_int phase;
} cell;

typedef struct worker {
    cell *cl;
    client c;
    bool writer;
    uint64_t rng;
    long gen;
    uint64_t ops, hits;
    atomic_uint_fast64_t warm; /* operations done while warming up */
    hist *h;
    pthread_t thread;
} worker;

/* One system's figures in one round: writes (or reads) per second, p50 and p99
 * in ns; mixed: the readers' too, and their hit ratio. */
typedef struct result {
    double rate, p50, p99;
    double rrate, rp50, rp99, hit;
    double l1hit; /* lib-l1 reads: the L1's hit ratio */
} result;

static void *worker_main(void *arg)
{
    worker *wk = arg;
    cell *cl = wk->cl;
    const workload *w = cl->w;
    bench_pin_self(cl->cpu);
    char val[BENCH_VALUE_LEN], buf[BENCH_VALUE_LEN];
    for (uint64_t i = 0;; i++) {
        int ph = atomic_load_explicit(&cl->phase, memory_order_relaxed);
        if (ph == PH_STOP)
            break;
        bool measure = ph == PH_MEASURE, timed = measure && (i & 7) == 0;
        uint64_t rnd = bench_rand(&wk->rng);
        long k = (long)(rnd % (uint64_t)w->n_keys);
        int64_t t0;
        if (wk->writer) {
            bench_value(val, sizeof val, k, ++wk->gen);
            t0 = timed ? mono_ns() : 0;
            client_set(&wk->c, w->keys[k].s, w->keys[k].len, val, sizeof val, w->ttl_ms);
        } else {
            bool miss = w->miss_pct > 0 && (int)((rnd >> 32) % 100) < w->miss_pct;
            const bkey *key = miss ? &cl->miss[(rnd >> 40) % MISS_KEYS] : &w->keys[k];
            t0 = timed ? mono_ns() : 0;
            long len = client_get(&wk->c, key->s, key->len, buf);
            if ((len >= 0 && len != BENCH_VALUE_LEN) ||
                (w->kind == W_READ && (len < 0) != miss))
                bench_die("%s: get %s returned %ld bytes", k_sys_names[wk->c.s->sys],
                          key->s, len);
            if (measure && len >= 0)
                wk->hits++;
        }
        if (timed)
            hist_add(wk->h, mono_ns() - t0);
        if (measure)
            wk->ops++;
        else
            atomic_fetch_add_explicit(&wk->warm, 1, memory_order_relaxed);
        if (w->pauses)
            sleep_ns(
                (int64_t)(bench_rand(&wk->rng) % (wk->writer ? 5000001u : 2000001u)));
    }
    return NULL;
}

/* One system on one workload with n threads: a fresh instance and fresh clients. */
static result run_cell(const sys_env *e, int sys, const workload *w, int n,
                       const bkey *miss, double seconds, uint64_t seed)
{
    sys_inst s;
    sys_open(&s, e, sys, (size_t)n);
    cell cl = {.w = w, .miss = miss, .cpu = e->c->pin ? bench_client_cpu() : -1};
    atomic_init(&cl.phase, PH_WARMUP);
    worker wk[MAX_CLIENTS];
    if (sys == SYS_L1 && w->kind == W_READ) { /* the L1 holds every key */
        client_open(&wk[0].c, &s);
        char buf[BENCH_VALUE_LEN];
        for (long i = 0; i < w->n_keys; i++)
            (void)client_get(&wk[0].c, w->keys[i].s, w->keys[i].len, buf);
        client_close(&wk[0].c);
    }
    pgcw_cache_stats s0 = {0}, s1 = {0};
    for (int i = 0; i < n; i++) {
        wk[i] = (worker){.cl = &cl,
                         .writer = w->kind == W_WRITE || i < w->writers,
                         .rng = seed + 0x9e3779b97f4a7c15ull * (uint64_t)(i + 1),
                         .h = hist_new()};
        atomic_init(&wk[i].warm, 0);
        client_open(&wk[i].c, &s);
    }
    for (int i = 0; i < n; i++)
        if (pthread_create(&wk[i].thread, NULL, worker_main, &wk[i]) != 0)
            bench_die("pthread_create failed");
    /* Warm up for 0.3 s, and until every thread has done 5 operations (the
     * library's pool opens its connections on first use: they must all be open). */
    int64_t warm_end = mono_ns() + 300 * 1000000LL, give_up = warm_end + 30000000000LL;
    for (int i = 0; i < n; i++)
        while (atomic_load(&wk[i].warm) < 5 || mono_ns() < warm_end) {
            if (mono_ns() > give_up)
                bench_die("%s: thread %d made no progress in 30 s", k_sys_names[sys], i);
            sleep_ns(1000000);
        }
    if (s.cache)
        pgcw_cache_stats_get(s.cache, &s0);
    atomic_store(&cl.phase, PH_MEASURE);
    int64_t t0 = mono_ns();
    sleep_ns((int64_t)(seconds * 1e9));
    atomic_store(&cl.phase, PH_STOP);
    int64_t t1 = mono_ns();
    hist *hw = hist_new(), *hr = hist_new();
    uint64_t wops = 0, rops = 0, hits = 0;
    for (int i = 0; i < n; i++) {
        pthread_join(wk[i].thread, NULL);
        hist_merge(wk[i].writer ? hw : hr, wk[i].h);
        *(wk[i].writer ? &wops : &rops) += wk[i].ops;
        hits += wk[i].hits;
        client_close(&wk[i].c);
        free(wk[i].h);
    }
    if (s.cache)
        pgcw_cache_stats_get(s.cache, &s1);
    sys_close(&s);
    double dt = (double)(t1 - t0) / 1e9;
    result r = {.rate = (double)wops / dt,
                .p50 = hist_pct(hw, 0.5),
                .p99 = hist_pct(hw, 0.99),
                .rrate = (double)rops / dt,
                .rp50 = hist_pct(hr, 0.5),
                .rp99 = hist_pct(hr, 0.99),
                .hit = rops ? (double)hits / (double)rops : 0.0};
    if (w->kind == W_READ) { /* only readers: their figures are the row's */
        r.rate = r.rrate;
        r.p50 = r.rp50;
        r.p99 = r.rp99;
    }
    if (sys == SYS_L1 && w->kind == W_READ) {
        uint64_t h = s1.l1_hits - s0.l1_hits, m = s1.l1_misses - s0.l1_misses;
        r.l1hit = h + m ? (double)h / (double)(h + m) : 0.0;
        if (s1.bypasses != s0.bypasses)
            bench_die("lib-l1: %" PRIu64 " gets bypassed the L1 (watcher unhealthy)",
                      s1.bypasses - s0.bypasses);
    }
    free(hw);
    free(hr);
    return r;
}

/* --- the listener process ---------------------------------------------------------- */

typedef struct listener_stats {
    uint64_t received, applied;
    int failed;
    atomic_int ready; /* it holds every key */
} listener_stats;

/* Forks a process that holds a pgcw_cache with its L1 and watcher, reads every key
 * of ws once, and listens until fd's other end closes; returns once it holds the
 * keys. Before any thread. */
static pid_t listener_start(const bench_cfg *c, const workload *ws, int n, int *fd,
                            listener_stats *out)
{
    int fds[2];
    pid_t pid = bench_fork_pipe(fds);
    if (pid > 0) {
        close(fds[0]);
        *fd = fds[1];
        for (int64_t end = mono_ns() + 60000000000LL; !atomic_load(&out->ready);) {
            if (mono_ns() > end || waitpid(pid, NULL, WNOHANG) == pid)
                bench_die("the listener process did not start");
            sleep_ns(1000000);
        }
        return pid;
    }
    close(fds[1]);
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    g_bench_prog = "bench_compare (listener process)";
    out->failed = 1;
    pgcw_cache_opts o = compare_cache_opts(SYS_L1, 1);
    pgcw_cache *cache = bench_cache_new(c, &o);
    char buf[BENCH_VALUE_LEN];
    size_t len;
    for (int i = 0; i < n; i++)
        for (long k = 0; k < ws[i].n_keys; k++)
            (void)pgcw_cache_get_into(cache, ws[i].keys[k].s, ws[i].keys[k].len, buf,
                                      sizeof buf, &len);
    atomic_store(&out->ready, 1);
    char b;
    while (read(fds[0], &b, 1) < 0 && errno == EINTR) {
    }
    pgcw_cache_stats s;
    pgcw_cache_stats_get(cache, &s);
    out->received = s.invalidations_received;
    out->applied = s.invalidations_applied;
    out->failed = 0;
    pgcw_cache_free(cache);
    _exit(0);
}

/* --- the report --------------------------------------------------------------------- */

typedef struct cfgs {
    bench_cfg c;
    int counts[MAX_THREAD_COUNTS], n_counts;
    double seconds;
    FILE *data;
} cfgs;

static int parse_counts(const char *s, int *out)
{
    int n = 0;
    char *copy = strdup(s), *save = NULL;
    if (!copy)
        bench_die("out of memory");
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (n == MAX_THREAD_COUNTS)
            bench_die("--threads: at most %d counts", MAX_THREAD_COUNTS);
        out[n++] = (int)bench_parse_long(t, 1, MAX_CLIENTS, "--threads");
    }
    free(copy);
    return n;
}

/* Medians over rounds of r[0..R) field f, and of its per-round ratio to ref. */
#define MED_OF(r, R, f, out)                                                             \
    do {                                                                                 \
        double v_[1000];                                                                 \
        for (int i_ = 0; i_ < (R); i_++)                                                 \
            v_[i_] = (r)[i_].f;                                                          \
        (out) = median(v_, (R));                                                         \
    } while (0)

static double med_ratio(const result *r, const result *ref, int R, bool reads)
{
    double v[1000];
    for (int i = 0; i < R; i++)
        v[i] = reads ? ratio(r[i].rrate, ref[i].rrate) : ratio(r[i].rate, ref[i].rate);
    return median(v, R);
}

/* One row of the table and of the data file; returns the ratio to Redis. */
static double report_row(const cfgs *g, const char *what, const char *name, int clients,
                         int sys, const result *r, const result *redis, const result *raw,
                         bool reads)
{
    int R = g->c.rounds;
    double rate, p50, p99;
    if (reads) {
        MED_OF(r, R, rrate, rate);
        MED_OF(r, R, rp50, p50);
        MED_OF(r, R, rp99, p99);
    } else {
        MED_OF(r, R, rate, rate);
        MED_OF(r, R, p50, p50);
        MED_OF(r, R, p99, p99);
    }
    double x = med_ratio(r, redis, R, reads), xraw = med_ratio(r, raw, R, reads), hit,
           l1hit;
    MED_OF(r, R, hit, hit);
    MED_OF(r, R, l1hit, l1hit);
    char hits[64] = "";
    if (reads || r[0].rrate > 0)
        snprintf(hits, sizeof hits, "%.1f%%", 100 * hit);
    if (l1hit > 0)
        snprintf(hits + strlen(hits), sizeof hits - strlen(hits), " (L1 %.1f%%)",
                 100 * l1hit);
    printf("%-29s %7d  %-10s %11.0f %9.1f %9.1f %9.2f %7.2f  %s\n", what, clients,
           k_sys_names[sys], rate, p50 / 1e3, p99 / 1e3, x, xraw, hits);
    if (g->data)
        fprintf(g->data, "%s\t%s\t%d\t%s\t%.0f\t%.2f\t%.2f\t%.4f\t%.4f\n",
                g->c.pin ? "pinned" : "unpinned", name, clients, k_sys_names[sys], rate,
                p50 / 1e3, p99 / 1e3, x, xraw);
    return x;
}

int main(int argc, char **argv)
{
    g_bench_prog = "bench_compare";
    static cfgs g = {.c = {.rounds = 3}, .seconds = 1.0};
    long n_keys = 1000, miss_pct = 1, ttl_ms = 300000, writers = 16, readers = 32,
         mixed_keys = 64, mixed_ttl_ms = 5000, inval_writes = 1000, redis_port = 0;
    const char *threads = "1,2,4,8,16", *redis_host = "127.0.0.1", *data = NULL,
               *only = "reads,writes,mixed,inval";
    const bench_opt opts[] = {
        {"redis-port", "N", "Redis on --redis-host (required; run_compare.sh starts one)",
         .l = &redis_port, .min = 1, .max = 65535},
        {"redis-host", "HOST", "default 127.0.0.1", .str = &redis_host},
        {"threads", "LIST", "client threads of the sweeps (default 1,2,4,8,16)",
         .str = &threads},
        {"seconds", "S", "measured per system and cell (default 1)", .d = &g.seconds,
         .min = 0.05, .max = 600},
        {"keys", "N", "keyspace of reads and writes (default 1000)", .l = &n_keys,
         .min = 1, .max = 1e6},
        {"miss-pct", "N", "reads: percent of gets for unwritten keys (default 1)",
         .l = &miss_pct, .min = 0, .max = 100},
        {"ttl-ms", "N", "TTL of reads' and writes' keys (default 300000)", .l = &ttl_ms,
         .min = 1, .max = 1e9},
        {"writers", "N", "mixed: writer threads (default 16)", .l = &writers, .min = 1,
         .max = MAX_CLIENTS},
        {"readers", "N", "mixed: reader threads (default 32)", .l = &readers, .min = 0,
         .max = MAX_CLIENTS},
        {"mixed-keys", "N", "mixed: keyspace (default 64)", .l = &mixed_keys, .min = 1,
         .max = 1e6},
        {"inval-writes", "N", "inval: measured writes (default 1000)", .l = &inval_writes,
         .min = 1, .max = 1e6},
        {"data", "FILE", "append the figures to FILE (tab-separated)", .str = &data},
        {"only", "LIST", "of reads, writes, mixed, inval (default all)", .str = &only},
    };
    bench_parse(argc, argv, &g.c, opts, 13);
    if (!redis_port)
        bench_die("--redis-port is required (bench/run_compare.sh starts a Redis)");
    if (writers + readers > MAX_CLIENTS)
        bench_die("--writers + --readers: at most %d", MAX_CLIENTS);
    g.n_counts = parse_counts(threads, g.counts);
    bool want[N_WORKLOADS + 1] = {false};
    want[W_READ] = strstr(only, "reads") != NULL;
    want[W_WRITE] = strstr(only, "writes") != NULL;
    want[W_MIXED] = want[W_MIXED_PAUSED] = strstr(only, "mixed") != NULL;
    want[N_WORKLOADS] = strstr(only, "inval") != NULL;
    if (g.c.quick) {
        g.seconds = 0.1;
        n_keys = 100;
        inval_writes = 30;
    }
    if (data && !(g.data = fopen(data, "a")))
        bench_die("%s: %s", data, strerror(errno));
    bench_cpus_init();
    /* Before any cache exists: the library's threads inherit the mask. */
    bench_pin_self(g.c.pin ? bench_client_cpu() : -1);

    pgcw_cache_opts o = compare_cache_opts(SYS_L1, 1);
    bench_init_db(&g.c, &o);
    bench_sql sql;
    bench_sql_init(&sql, &o);
    pcts inval[INV_N];
    if (want[N_WORKLOADS]) /* first: it forks */
        inval_measure(&g.c, inval_writes, 50, 300, PGCW_CACHE_NOTIFY_TRIGGER, inval);

    sys_env env = {.c = &g.c,
                   .setup = sql.setup,
                   .redis_host = redis_host,
                   .redis_port = (int)redis_port};
    {
        redisContext *rc = redis_connect(&env);
        freeReplyObject(redis_check(rc, redisCommand(rc, "FLUSHALL"), REDIS_REPLY_STATUS,
                                    "FLUSHALL"));
        redisFree(rc);
    }
    bkey *keys = calloc((size_t)(2 * n_keys + mixed_keys + MISS_KEYS), sizeof *keys);
    if (!keys)
        bench_die("out of memory");
    bkey *rd = keys, *wr = rd + n_keys, *mx = wr + n_keys, *miss = mx + mixed_keys;
    for (long i = 0; i < n_keys; i++) {
        rd[i].len = bench_key(rd[i].s, "rd", i);
        wr[i].len = bench_key(wr[i].s, "wr", i);
    }
    for (long i = 0; i < mixed_keys; i++)
        mx[i].len = bench_key(mx[i].s, "mx", i);
    for (long i = 0; i < MISS_KEYS; i++)
        miss[i].len = bench_key(miss[i].s, "no", i);
    const workload ws[N_WORKLOADS] = {
        [W_READ] = {"reads", "reads, 99% hit", W_READ, rd, n_keys, ttl_ms, (int)miss_pct},
        [W_WRITE] = {"writes", "writes, inval on", W_WRITE, wr, n_keys, ttl_ms},
        [W_MIXED] = {"mixed", "mixed", W_MIXED, mx, mixed_keys, mixed_ttl_ms, 0,
                     (int)writers},
        [W_MIXED_PAUSED] = {"mixed-paused", "mixed, harness pauses", W_MIXED_PAUSED, mx,
                            mixed_keys, mixed_ttl_ms, 0, (int)writers, true},
    };
    compare_populate(&env, "rd", n_keys, ttl_ms);
    compare_populate(&env, "wr", n_keys, ttl_ms);
    compare_populate(&env, "mx", mixed_keys, mixed_ttl_ms);
    static listener_stats *ls;
    ls =
        mmap(NULL, sizeof *ls, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (ls == MAP_FAILED)
        bench_die("mmap: %s", strerror(errno));
    int lfd = -1;
    pid_t lpid = listener_start(&g.c, &ws[W_WRITE], 2, &lfd, ls);

    /* Every (workload, client count) pair, in order. */
    typedef struct {
        int w, n;
    } cell_of;
    cell_of m[2 * MAX_THREAD_COUNTS + 2];
    int n_m = 0;
    for (int w = W_READ; w <= W_WRITE; w++)
        for (int i = 0; want[w] && i < g.n_counts; i++)
            m[n_m++] = (cell_of){w, g.counts[i]};
    for (int w = W_MIXED; want[w] && w <= W_MIXED_PAUSED; w++)
        m[n_m++] = (cell_of){w, (int)(writers + readers)};
    int R = g.c.rounds;
    result *res = calloc((size_t)n_m * N_SYS * (size_t)R, sizeof *res);
    if (!res)
        bench_die("out of memory");
#define RES(mi, s) (res + ((size_t)(mi)*N_SYS + (size_t)(s)) * (size_t)R)
    for (int r = 0; r < R; r++) {
        if (r > 0) { /* the rows' TTLs keep running: every round starts alike */
            compare_populate(&env, "rd", n_keys, ttl_ms);
            compare_populate(&env, "wr", n_keys, ttl_ms);
        }
        for (int mi = 0; mi < n_m; mi++) {
            const workload *w = &ws[m[mi].w];
            if (w->kind >= W_MIXED)
                compare_populate(&env, "mx", mixed_keys, mixed_ttl_ms);
            for (int j = 0; j < N_SYS; j++) {
                int s = (j + r + mi) % N_SYS;
                if (s == SYS_BG && w->kind == W_READ)
                    continue; /* reads: the same as lib-l1 */
                RES(mi, s)
                [r] = run_cell(&env, s, w, m[mi].n, miss, g.seconds,
                               (uint64_t)(r * 1000 + mi * 10 + s + 1));
            }
            fprintf(stderr,
                    "bench_compare: round %d/%d: %s, %d clients: %.0f %.0f %.0f %.0f\n",
                    r + 1, R, w->label, m[mi].n, RES(mi, 0)[r].rate, RES(mi, 1)[r].rate,
                    RES(mi, 2)[r].rate, RES(mi, 3)[r].rate);
        }
    }
    close(lfd);
    int lst = 0;
    waitpid(lpid, &lst, 0);

    bench_banner(&g.c, "pgcachewatch vs raw libpq vs Redis, same workload");
    printf("library: one pgcw_cache per process shared by all its threads (pool_size = "
           "threads); raw libpq: one PGconn per thread; Redis: one hiredis context per "
           "thread. TCP to 127.0.0.1 for both servers. %d-byte values; reads/writes: %ld "
           "keys, TTL %ld ms; mixed: %ld writers + %ld readers, %ld keys, TTL %ld ms. "
           "%.2f s per system and cell; medians of %d rounds; x redis: the median "
           "of per-round ratios to Redis at the same client count.\n",
           BENCH_VALUE_LEN, n_keys, ttl_ms, writers, readers, mixed_keys, mixed_ttl_ms,
           g.seconds, R);
    printf("%-29s %7s  %-10s %11s %9s %9s %9s %7s  %s\n", "workload", "clients", "system",
           "ops/s", "p50 us", "p99 us", "x redis", "x raw", "hits");
    double xl1_min = 1e300, xl1_max = 0, xno_min = 1e300, xno_max = 0, xw_min = 1e300,
           xw_max = 0, mixed_w = 0, write_w = -1;
    for (int mi = 0; mi < n_m; mi++) {
        const workload *w = &ws[m[mi].w];
        bool mixed = w->kind >= W_MIXED;
        for (int pass = 0; pass < (mixed ? 2 : 1); pass++) {
            char what[64], name[64];
            snprintf(what, sizeof what, "%s%s", w->label,
                     mixed ? (pass ? ": reads" : ": writes") : "");
            snprintf(name, sizeof name, "%s%s", w->name,
                     mixed ? (pass ? "-reads" : "-writes") : "");
            for (int s = 0; s < N_SYS; s++) {
                if (s == SYS_BG && w->kind == W_READ)
                    continue;
                double x = report_row(&g, what, name, m[mi].n, s, RES(mi, s),
                                      RES(mi, SYS_REDIS), RES(mi, SYS_RAW), pass == 1);
                double *lo = NULL, *hi = NULL;
                if (w->kind == W_READ && s == SYS_L1)
                    lo = &xl1_min, hi = &xl1_max;
                if (w->kind == W_READ && s == SYS_NOL1)
                    lo = &xno_min, hi = &xno_max;
                if (w->kind == W_WRITE && s == SYS_L1)
                    lo = &xw_min, hi = &xw_max;
                if (lo) {
                    *lo = x < *lo ? x : *lo;
                    *hi = x > *hi ? x : *hi;
                }
                if (w->kind == W_MIXED && s == SYS_L1 && pass == 0)
                    MED_OF(RES(mi, s), R, rate, mixed_w);
                if (w->kind == W_WRITE && s == SYS_L1 && m[mi].n == (int)writers)
                    MED_OF(RES(mi, s), R, rate, write_w);
            }
        }
    }
    if (want[N_WORKLOADS]) {
        for (int i = 0; i < 2; i++) {
            const pcts *p = &inval[i ? INV_RET_RAW : INV_RET_EVICT];
            printf("%-29s %7d  %-10s %11s %9.1f %9.1f %9s %7s  (%s)\n",
                   "invalidation delay", 1, i ? "bare-listen" : "lib-l1", "-", p->p50,
                   p->p99, "-", "-", k_inval_rows[i ? INV_RET_RAW : INV_RET_EVICT]);
            if (g.data)
                fprintf(g.data, "%s\tinval\t1\t%s\t0\t%.2f\t%.2f\t0\t0\n",
                        g.c.pin ? "pinned" : "unpinned", i ? "bare-listen" : "lib-l1",
                        p->p50, p->p99);
        }
    }
    if (!WIFEXITED(lst) || WEXITSTATUS(lst) != 0 || ls->failed)
        bench_die("the listener process failed");
    printf("listener process (a pgcw_cache with its L1 and watcher): %" PRIu64
           " invalidations received, %" PRIu64 " applied\n",
           ls->received, ls->applied);
    printf("targets (x redis at the same client count):\n");
    if (want[W_READ]) {
        printf("  reads, L1 on >= 20x Redis GET: %.1f-%.1fx, %s\n", xl1_min, xl1_max,
               xl1_min >= 20 ? "met" : "MISSED");
        printf("  reads, L1 off within 1.5x of Redis GET (>= 0.67x): %.2f-%.2fx, %s\n",
               xno_min, xno_max, xno_min >= 1 / 1.5 ? "met" : "MISSED");
    }
    if (want[N_WORKLOADS])
        printf("  invalidation delay p99 < 2 ms: %.2f ms, %s\n",
               inval[INV_RET_EVICT].p99 / 1e3,
               inval[INV_RET_EVICT].p99 < 2000 ? "met" : "MISSED");
    if (want[W_WRITE])
        printf("  writes, invalidation on, within 3x of Redis SET (>= 0.33x): "
               "%.2f-%.2fx, %s\n",
               xw_min, xw_max, xw_min >= 1 / 3.0 ? "met" : "MISSED");
    /* The Python postgres-cache's 933-1,082 writes/s: the figure. */
    for (int i = 0; i < 2; i++) {
        double v = i ? mixed_w : write_w;
        if (v < 0 || !want[i ? W_MIXED : W_WRITE])
            continue;
        printf("  %s, lib-l1 writes/s >= 10x the Python postgres-cache's 933-1,082 (the "
               "issue's figure): %.0f = %.1f-%.1fx, %s\n",
               i ? "mixed (no pauses)" : "writes at the mixed run's writer count", v,
               v / 1082, v / 933,
               v >= 10 * 1082  ? "met"
               : v >= 10 * 933 ? "met against 933 only"
                               : "MISSED");
    }
    printf("\n");
    if (g.data)
        fclose(g.data);
    munmap(ls, sizeof *ls);
    free(res);
    free(keys);
    bench_sql_free(&sql);
    return 0;
}
