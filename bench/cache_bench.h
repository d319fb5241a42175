/*
 * cache_bench.h - what every bench_cache_* program shares: the command line
 * (--dsn, --pin, --rounds, --quick), clocks, a log-bucketed latency histogram,
 * CPU pinning, the schema and the raw libpq peer that runs the library's own
 * setup SQL (the same PREPAREd statements, taken from src/cache through the test
 * hook, so "the same SQL" cannot drift), keys and values. Bench-only; never part
 * of the library and never used to decide anything the library does.
 *
 * A program that includes it defines _GNU_SOURCE first (affinity). Benchmarks
 * may exit on a failure (bench_die): they are measurements, and an error is never
 * reported as a figure.
 */
#ifndef PGCW_BENCH_CACHE_BENCH_H
#define PGCW_BENCH_CACHE_BENCH_H

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <pgcachewatch/cache.h>
#include <pgcachewatch/l1.h>

#include "harness_hist.h"
#include "pgcw_testhook.h"

#define BENCH_PREFIX "bench_"
#define BENCH_CHANNEL "bench_cache"
#define BENCH_VALUE_LEN 64
#define BENCH_KEY_MAX 32

typedef struct bench_cfg {
    const char *prog;
    const char *dsn;
    bool pin;
    int rounds;
    bool quick;
} bench_cfg;

static inline void bench_die(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));

static const char *g_bench_prog = "bench_cache";

static inline void bench_die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", g_bench_prog);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

/* --- command line ---------------------------------------------------------------- */

static inline long bench_parse_long(const char *arg, long min, long max, const char *what)
{
    char *end;
    errno = 0;
    long v = strtol(arg, &end, 10);
    if (errno || end == arg || *end || v < min || v > max) {
        fprintf(stderr, "%s: %s must be a whole number from %ld to %ld\n", g_bench_prog,
                what, min, max);
        exit(2);
    }
    return v;
}

static inline double bench_parse_double(const char *arg, double min, double max,
                                        const char *what)
{
    char *end;
    errno = 0;
    double v = strtod(arg, &end);
    if (errno || end == arg || *end || v < min || v > max) {
        fprintf(stderr, "%s: %s must be a number from %g to %g\n", g_bench_prog, what,
                min, max);
        exit(2);
    }
    return v;
}

/* One program-specific option: exactly one of l, d, flag, str is set. */
typedef struct bench_opt {
    const char *name; /* --name */
    const char *arg;  /* what it takes ("N", "LIST"), NULL for a flag */
    const char *help;
    long *l;
    double *d;
    bool *flag;
    const char **str;
    double min, max; /* for l and d */
} bench_opt;

#define BENCH_MAX_OPTS 16

static inline void bench_usage(FILE *f, const bench_opt *opts, int n)
{
    fprintf(
        f,
        "usage: %s [options]\n"
        "  --dsn DSN          server to use (required; bench/run_cache.sh starts one)\n"
        "  --pin on|off       on: client threads pinned (see the program's banner)\n"
        "  --rounds N         rounds; figures are medians over rounds\n"
        "  --quick            tiny sizes, for a smoke test of the harness\n",
        g_bench_prog);
    for (int i = 0; i < n; i++) {
        char left[40];
        snprintf(left, sizeof left, "--%s%s%s", opts[i].name, opts[i].arg ? " " : "",
                 opts[i].arg ? opts[i].arg : "");
        fprintf(f, "  %-18s %s\n", left, opts[i].help);
    }
}

/* Parses the common options into c and opts' into their variables; exits 0 after
 * --help and 2 on bad usage. */
static inline void bench_parse(int argc, char **argv, bench_cfg *c, const bench_opt *opts,
                               int n)
{
    struct option lo[BENCH_MAX_OPTS + 6] = {{"dsn", required_argument, NULL, 'd'},
                                            {"pin", required_argument, NULL, 'p'},
                                            {"rounds", required_argument, NULL, 'r'},
                                            {"quick", no_argument, NULL, 'q'},
                                            {"help", no_argument, NULL, 'h'}};
    for (int i = 0; i < n && i < BENCH_MAX_OPTS; i++)
        lo[5 + i] = (struct option){
            opts[i].name, opts[i].arg ? required_argument : no_argument, NULL, 1000 + i};
    int opt;
    while ((opt = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        if (opt == 'd') {
            c->dsn = optarg;
        } else if (opt == 'p' && (!strcmp(optarg, "on") || !strcmp(optarg, "off"))) {
            c->pin = !strcmp(optarg, "on");
        } else if (opt == 'r') {
            c->rounds = (int)bench_parse_long(optarg, 1, 1000, "--rounds");
        } else if (opt == 'q') {
            c->quick = true;
        } else if (opt >= 1000 && opt < 1000 + n) {
            const bench_opt *o = &opts[opt - 1000];
            char what[48];
            snprintf(what, sizeof what, "--%s", o->name);
            if (o->l)
                *o->l = bench_parse_long(optarg, (long)o->min, (long)o->max, what);
            else if (o->d)
                *o->d = bench_parse_double(optarg, o->min, o->max, what);
            else if (o->flag)
                *o->flag = true;
            else
                *o->str = optarg;
        } else {
            bench_usage(opt == 'h' ? stdout : stderr, opts, n);
            exit(opt == 'h' ? 0 : 2);
        }
    }
    if (!c->dsn) {
        fprintf(stderr, "%s: --dsn is required (bench/run_cache.sh passes one)\n",
                g_bench_prog);
        exit(2);
    }
}

/* --- clocks ---------------------------------------------------------------------- */

/* CLOCK_MONOTONIC: comparable across the processes of one machine. */
static inline int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* This thread's CPU time (a system call: keep it outside timed regions). */
static inline int64_t thread_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline void sleep_ns(int64_t ns)
{
    struct timespec ts = {.tv_sec = ns / 1000000000, .tv_nsec = ns % 1000000000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static inline uint64_t bench_rand(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

/* --- latency histograms: the harness's (src/cli/harness/harness_hist.h) --------- */

/* Nanoseconds, to within 0.8% of each value; merging two is adding counts. */
typedef hx_hist hist;

static inline hist *hist_new(void)
{
    hist *h = calloc(1, sizeof *h);
    if (!h)
        bench_die("out of memory");
    return h;
}

static inline void hist_reset(hist *h)
{
    hx_hist_reset(h);
}

static inline void hist_add(hist *h, int64_t v)
{
    hx_hist_record(h, v);
}

static inline void hist_merge(hist *into, const hist *h)
{
    hx_hist_merge(into, h);
}

/* The value at fraction p of the samples (nearest rank, bucket's upper edge). */
static inline double hist_pct(const hist *h, double p)
{
    return (double)hx_hist_quantile(h, p);
}

/* pipe(fds), then fork() with stdio flushed first (so nothing buffered is written
 * twice); returns fork()'s pid. Dies on a failure. */
static inline pid_t bench_fork_pipe(int fds[2])
{
    if (pipe(fds) != 0)
        bench_die("pipe: %s", strerror(errno));
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        bench_die("fork: %s", strerror(errno));
    return pid;
}

/* --- medians over rounds ---------------------------------------------------------- */

static inline int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median of v[0..n) (sorts a copy). */
static inline double median(const double *v, int n)
{
    if (n <= 0)
        return 0.0;
    double *c = malloc((size_t)n * sizeof *c);
    if (!c)
        bench_die("out of memory");
    memcpy(c, v, (size_t)n * sizeof *c);
    qsort(c, (size_t)n, sizeof *c, bench_cmp_double);
    double m = n % 2 ? c[n / 2] : (c[n / 2 - 1] + c[n / 2]) / 2.0;
    free(c);
    return m;
}

static inline double ratio(double a, double b)
{
    return b > 0 ? a / b : 0.0;
}

/* --- CPU pinning ------------------------------------------------------------------ */

/* bench/run_cache.sh pins the server (postmaster and every backend) to the first
 * CPU when it runs a program with --pin on; the program's threads go to the others. */
static int g_cpus[CPU_SETSIZE];
static int g_n_cpus;

static inline void bench_cpus_init(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) != 0)
        bench_die("sched_getaffinity: %s", strerror(errno));
    for (int c = 0; c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, &set))
            g_cpus[g_n_cpus++] = c;
}

/* The CPU of a client thread that talks to the server: the last one. */
static inline int bench_client_cpu(void)
{
    return g_cpus[g_n_cpus - 1];
}

/* The i-th CPU, round robin (threads that never talk to the server). */
static inline int bench_cpu(int i)
{
    return g_cpus[i % g_n_cpus];
}

/* Pins the calling thread (threads it creates inherit the mask); cpu < 0: no-op. */
static inline void bench_pin_self(int cpu)
{
    if (cpu < 0)
        return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    int rc = pthread_setaffinity_np(pthread_self(), sizeof set, &set);
    if (rc != 0)
        bench_die("cannot pin to CPU %d: %s", cpu, strerror(rc));
}

/* --- the schema, the library's SQL and the raw peer ------------------------------- */

static inline pgcw_conn_opts bench_conn_opts(const bench_cfg *c)
{
    pgcw_conn_opts co = {.conninfo = c->dsn, .application_name = "bench_cache"};
    return co;
}

/* Creates (or upgrades) the cache schema for opts with the library, and empties
 * the table so every run starts alike. */
static inline void bench_init_db(const bench_cfg *c, const pgcw_cache_opts *o)
{
    pgcw_conn_opts co = bench_conn_opts(c);
    char *err = NULL;
    int version = 0;
    pgcw_status st = pgcw_cache_init_db(o, &co, &version, &err);
    if (st != PGCW_OK)
        bench_die("pgcw_cache_init_db: %s: %s", pgcw_strerror(st), err ? err : "");
    pgcw_free(err);
}

/* What the library's pool runs on each new connection (SET timeouts, PREPARE every
 * statement), and the schema's quoted names, for opts. */
typedef struct bench_sql {
    pgcw__cache_cfg cfg;
    pgcw__cache_names names;
    char *setup;
} bench_sql;

static inline void bench_sql_init(bench_sql *s, const pgcw_cache_opts *o)
{
    char why[256];
    if (pgcw__cache_cfg_init(&s->cfg, o, why, sizeof why) != PGCW_OK)
        bench_die("cache options: %s", why);
    if (pgcw__cache_names_init(&s->names, &s->cfg) != PGCW_OK)
        bench_die("out of memory");
    s->setup = pgcw__cache_setup_sql(&s->cfg, &s->names);
    if (!s->setup)
        bench_die("out of memory");
}

static inline void bench_sql_free(bench_sql *s)
{
    pgcw__cache_names_free(&s->names);
    free(s->setup);
    s->setup = NULL;
}

static inline void bench_exec(PGconn *pg, const char *sql)
{
    PGresult *r = PQexec(pg, sql);
    ExecStatusType rs = PQresultStatus(r);
    if (rs != PGRES_COMMAND_OK && rs != PGRES_TUPLES_OK)
        bench_die("%s: %s", sql, PQerrorMessage(pg));
    PQclear(r);
}

/* A plain blocking libpq connection, as an application would hold one. setup:
 * SQL run once (the library's setup SQL, to prepare the same statements), or NULL. */
static inline PGconn *bench_raw_connect(const bench_cfg *c, const char *setup)
{
    PGconn *pg = PQconnectdb(c->dsn);
    if (PQstatus(pg) != CONNECTION_OK)
        bench_die("connect: %s", PQerrorMessage(pg));
    if (setup)
        bench_exec(pg, setup);
    return pg;
}

static inline pgcw_cache *bench_cache_new(const bench_cfg *c, const pgcw_cache_opts *o)
{
    pgcw_conn_opts co = bench_conn_opts(c);
    pgcw_cache *cache;
    pgcw_status st = pgcw_cache_new(o, &co, &cache);
    if (st != PGCW_OK)
        bench_die("pgcw_cache_new: %s", pgcw_strerror(st));
    st = pgcw_cache_wait_healthy(cache, 15000);
    if (st != PGCW_OK)
        bench_die("pgcw_cache_wait_healthy: %s", pgcw_cache_errmsg(cache));
    return cache;
}

/* The parameters of the library's get statement (text key, binary). */
typedef struct raw_get_params {
    const char *values[1];
    int lengths[1];
} raw_get_params;

static const int k_bench_binary[3] = {1, 1, 1};

/* Sends PGCW__ST_GET for key as the library does (binary in and out); in pipeline
 * mode it only queues it. */
static inline int raw_send_get(PGconn *pg, const char *key, size_t key_len)
{
    const char *values[1] = {key};
    int lengths[1] = {(int)key_len};
    return PQsendQueryPrepared(pg, PGCW__ST_GET, 1, values, lengths, k_bench_binary, 1);
}

/* Takes the value out of a get's result, as an application keeps it: a malloc'd
 * copy (the library's get hands out one too). Returns the length, or -1 when the
 * row is absent; dies on an error. */
static inline long raw_take_value(PGconn *pg, PGresult *r, void **copy)
{
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        bench_die("raw get: %s", PQerrorMessage(pg));
    if (PQntuples(r) != 1)
        return -1;
    size_t len = (size_t)PQgetlength(r, 0, 0);
    *copy = malloc(len + 1);
    if (!*copy)
        bench_die("out of memory");
    memcpy(*copy, PQgetvalue(r, 0, 0), len);
    ((char *)*copy)[len] = '\0';
    return (long)len;
}

/* --- keys and values -------------------------------------------------------------- */

static inline size_t bench_key(char *buf, const char *ns, long i)
{
    return (size_t)snprintf(buf, BENCH_KEY_MAX, "%s:%08ld", ns, i);
}

/* A value of len bytes that names its key and a generation. */
static inline void bench_value(char *buf, size_t len, long key, long gen)
{
    char head[48];
    int n = snprintf(head, sizeof head, "k%ld g%ld ", key, gen);
    for (size_t i = 0; i < len; i++)
        buf[i] = i < (size_t)n ? head[i] : (char)('a' + i % 26);
}

/* Writes n keys of namespace ns with the library (one set_many per 100). */
static inline void bench_fill(pgcw_cache *cache, const char *ns, long n)
{
    enum { CHUNK = 100 };
    char keys[CHUNK][BENCH_KEY_MAX], vals[CHUNK][BENCH_VALUE_LEN];
    pgcw_cache_entry e[CHUNK];
    for (long base = 0; base < n; base += CHUNK) {
        size_t m = 0;
        for (long i = base; i < n && i < base + CHUNK; i++, m++) {
            size_t kl = bench_key(keys[m], ns, i);
            bench_value(vals[m], BENCH_VALUE_LEN, i, 0);
            e[m] = (pgcw_cache_entry){keys[m], kl, vals[m], BENCH_VALUE_LEN,
                                      PGCW_CACHE_TTL_DEFAULT};
        }
        pgcw_status st = pgcw_cache_set_many(cache, e, m);
        if (st != PGCW_OK)
            bench_die("set_many: %s", pgcw_cache_errmsg(cache));
    }
}

/* --- library/raw pairs -------------------------------------------------------- */

/* One side's figures from one round. */
typedef struct fig {
    double p50, p99, rate; /* ns, ns, ops (or keys) per second */
    double cpu;            /* the calling thread's CPU time per op, ns */
} fig;

/* ops done in total_ns of summed op time (the rate: items per second) using
 * cpu_ns of the calling thread's CPU. */
static inline fig fig_of(const hist *h, int64_t total_ns, int64_t cpu_ns, long ops,
                         long items)
{
    fig f = {hist_pct(h, 0.50), hist_pct(h, 0.99),
             total_ns > 0 ? (double)items * 1e9 / (double)total_ns : 0.0,
             ops > 0 ? (double)cpu_ns / (double)ops : 0.0};
    return f;
}

/* One row: medians over rounds of each side's p50, p99 and rate (p50 and p99
 * divided by div), and the medians of the per-round library/raw ratios. */
static inline void print_pair(const char *what, const fig *lib, const fig *raw,
                              int rounds, const char *unit, double div)
{
    double v[4][1000];
    double m[2][4];
    const fig *f[2] = {lib, raw};
    for (int s = 0; s < 2; s++) {
        for (int r = 0; r < rounds; r++) {
            v[0][r] = f[s][r].p50;
            v[1][r] = f[s][r].p99;
            v[2][r] = f[s][r].rate;
            v[3][r] = f[s][r].cpu;
        }
        for (int k = 0; k < 4; k++)
            m[s][k] = median(v[k], rounds);
    }
    double x[3];
    for (int r = 0; r < rounds; r++) {
        v[0][r] = ratio(lib[r].p50, raw[r].p50);
        v[1][r] = ratio(lib[r].p99, raw[r].p99);
        v[2][r] = ratio(lib[r].rate, raw[r].rate);
    }
    for (int k = 0; k < 3; k++)
        x[k] = median(v[k], rounds);
    printf(
        "%-28s %8.1f %8.1f %6.2f %8.1f %8.1f %6.2f %10.0f %10.0f %6.2f %7.1f %7.1f  %s\n",
        what, m[0][0] / div, m[1][0] / div, x[0], m[0][1] / div, m[1][1] / div, x[1],
        m[0][2], m[1][2], x[2], m[0][3] / div, m[1][3] / div, unit);
}

static inline void print_pair_header(void)
{
    printf("%-28s %8s %8s %6s %8s %8s %6s %10s %10s %6s %7s %7s\n", "measurement",
           "lib p50", "raw p50", "x raw", "lib p99", "raw p99", "x raw", "lib rate",
           "raw rate", "x raw", "lib cpu", "raw cpu");
}

static inline void bench_banner(const bench_cfg *c, const char *what)
{
    printf("== %s (%s; %d rounds%s; CPUs:", what,
           c->pin ? "pinned: client threads as below, server on the first CPU"
                  : "unpinned",
           c->rounds, c->quick ? "; QUICK sizes" : "");
    for (int i = 0; i < g_n_cpus; i++)
        printf(" %d", g_cpus[i]);
    printf(")\n");
}

#endif
