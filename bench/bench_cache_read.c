/*
 * bench_cache_read.c - reads that go to PostgreSQL, beside raw libpq doing the same
 * SQL in the same run:
 *   1. get on an L1 miss (a disable_l1 cache: every get is one round trip) vs
 *      PQexecPrepared of the library's own prepared SELECT (binary in and out),
 *      p50 and p99 per op; target: at most 1.2x;
 *   2. get_many of --batch keys (one pipeline) vs a raw libpq pipeline of the same
 *      prepared SELECTs, one Sync; target: at least 0.9x the throughput.
 * The raw side is a plain blocking connection that ran the library's setup SQL
 * (cache_bench.h) and copies each value out (malloc), as the library hands out a
 * copy. Library and raw alternate op by op (batch by batch), the order flipping
 * each time, on the same random keys, so that the machine's load hits both alike;
 * every op's time goes into a log-bucketed histogram per round; figures are
 * medians over rounds of per-round percentiles and ratios. Pinned: the client on
 * the last CPU (run_cache.sh puts the server on the first).
 *
 * Must never time a read that did not return the row it asked for.
 */
#define _GNU_SOURCE

#include "cache_bench.h"

#define MAX_BATCH 1000

typedef struct bkey {
    char s[BENCH_KEY_MAX];
    size_t len;
} bkey;

#define MAX_CONNS 16

typedef struct ctx {
    pgcw_cache *cache; /* the pair in use: caches[i % n_conns], raws[i % n_conns] */
    PGconn *raw;
    pgcw_cache *caches[MAX_CONNS];
    PGconn *raws[MAX_CONNS];
    int n_conns;
    bkey *keys;
    long n_keys;
    uint64_t rng;
    int64_t cpu[4]; /* this round's CPU time: get lib, raw, many lib, raw */
} ctx;

enum { GET_LIB, GET_RAW, MANY_LIB, MANY_RAW };

static int64_t lib_get(ctx *x, const bkey *k)
{
    char buf[BENCH_VALUE_LEN];
    size_t len = 0;
    int64_t c0 = thread_cpu_ns(), t0 = mono_ns();
    pgcw_status st = pgcw_cache_get_into(x->cache, k->s, k->len, buf, sizeof buf, &len);
    int64_t t = mono_ns() - t0;
    x->cpu[GET_LIB] += thread_cpu_ns() - c0;
    if (st != PGCW_OK || len != BENCH_VALUE_LEN)
        bench_die("get %s: %s %s", k->s, pgcw_strerror(st), pgcw_cache_errmsg(x->cache));
    return t;
}

static int64_t raw_get(ctx *x, const bkey *k)
{
    const char *values[1] = {k->s};
    int lengths[1] = {(int)k->len};
    int64_t c0 = thread_cpu_ns(), t0 = mono_ns();
    PGresult *r =
        PQexecPrepared(x->raw, PGCW__ST_GET, 1, values, lengths, k_bench_binary, 1);
    void *v = NULL;
    long len = raw_take_value(x->raw, r, &v);
    PQclear(r);
    free(v);
    int64_t t = mono_ns() - t0;
    x->cpu[GET_RAW] += thread_cpu_ns() - c0;
    if (len != BENCH_VALUE_LEN)
        bench_die("raw get %s: no row", k->s);
    return t;
}

static int64_t lib_many(ctx *x, const bkey *const *ks, int n)
{
    pgcw_cache_key keys[MAX_BATCH];
    pgcw_cache_item items[MAX_BATCH];
    for (int i = 0; i < n; i++)
        keys[i] = (pgcw_cache_key){ks[i]->s, ks[i]->len};
    int64_t c0 = thread_cpu_ns(), t0 = mono_ns();
    pgcw_status st = pgcw_cache_get_many(x->cache, keys, (size_t)n, items);
    long bad = 0;
    for (int i = 0; i < n; i++)
        bad += items[i].status != PGCW_OK || items[i].value_len != BENCH_VALUE_LEN;
    pgcw_cache_items_free(items, (size_t)n);
    int64_t t = mono_ns() - t0;
    x->cpu[MANY_LIB] += thread_cpu_ns() - c0;
    if (st != PGCW_OK || bad)
        bench_die("get_many: %s %s (%ld keys missing)", pgcw_strerror(st),
                  pgcw_cache_errmsg(x->cache), bad);
    return t;
}

static int64_t raw_many(ctx *x, const bkey *const *ks, int n)
{
    PGconn *pg = x->raw;
    int64_t c0 = thread_cpu_ns(), t0 = mono_ns();
    if (!PQenterPipelineMode(pg))
        bench_die("pipeline: %s", PQerrorMessage(pg));
    for (int i = 0; i < n; i++)
        if (!raw_send_get(pg, ks[i]->s, ks[i]->len))
            bench_die("send: %s", PQerrorMessage(pg));
    if (!PQpipelineSync(pg))
        bench_die("sync: %s", PQerrorMessage(pg));
    long bad = 0;
    for (int i = 0; i < n; i++) {
        PGresult *r = PQgetResult(pg);
        void *v = NULL;
        bad += raw_take_value(pg, r, &v) != BENCH_VALUE_LEN;
        free(v);
        PQclear(r);
        if ((r = PQgetResult(pg)) != NULL)
            bench_die("pipeline: a second result for one query");
    }
    PGresult *r = PQgetResult(pg);
    if (PQresultStatus(r) != PGRES_PIPELINE_SYNC)
        bench_die("pipeline: no sync: %s", PQerrorMessage(pg));
    PQclear(r);
    if (!PQexitPipelineMode(pg))
        bench_die("pipeline: %s", PQerrorMessage(pg));
    int64_t t = mono_ns() - t0;
    x->cpu[MANY_RAW] += thread_cpu_ns() - c0;
    if (bad)
        bench_die("raw pipeline: %ld keys missing", bad);
    return t;
}

int main(int argc, char **argv)
{
    g_bench_prog = "bench_cache_read";
    bench_cfg c = {.rounds = 5};
    long ops = 5000, n_keys = 1000, batches = 300, batch_l = 100, conns = 4;
    const bench_opt opts[] = {
        {"ops", "N", "gets per side per round (default 5000)", .l = &ops, .min = 1,
         .max = 1e8},
        {"batch", "N", "keys per get_many (default 100)", .l = &batch_l, .min = 1,
         .max = MAX_BATCH},
        {"batches", "N", "get_many calls per side per round (default 300)", .l = &batches,
         .min = 1, .max = 1e7},
        {"keys", "N", "distinct keys (default 1000)", .l = &n_keys, .min = 1, .max = 1e7},
        {"conns", "N", "connections per side, used in turn (default 4)", .l = &conns,
         .min = 1, .max = MAX_CONNS},
    };
    bench_parse(argc, argv, &c, opts, 5);
    int batch = (int)batch_l;
    if (c.quick) {
        ops = 200;
        batches = 10;
        n_keys = 200;
    }
    bench_cpus_init();
    /* Before any connection: nothing else runs in this process. */
    bench_pin_self(c.pin ? bench_client_cpu() : -1);

    pgcw_cache_opts o = {.schema_prefix = BENCH_PREFIX,
                         .notify_channel = BENCH_CHANNEL,
                         .disable_l1 = true,
                         .pool_size = 1};
    bench_init_db(&c, &o);
    bench_sql sql;
    bench_sql_init(&sql, &o);
    ctx x = {.n_keys = n_keys, .rng = 0x9e3779b97f4a7c15ull, .n_conns = (int)conns};
    x.cache = bench_cache_new(&c, &o);
    bench_fill(x.cache, "rd", n_keys);
    pgcw_cache_free(x.cache);
    x.keys = calloc((size_t)n_keys, sizeof *x.keys);
    if (!x.keys)
        bench_die("out of memory");
    for (long i = 0; i < n_keys; i++)
        x.keys[i].len = bench_key(x.keys[i].s, "rd", i);

    bench_banner(&c, "reads that go to PostgreSQL: library vs raw libpq, same SQL");
    printf("%ld keys, %d-byte values; %ld gets and %ld get_many of %d keys per side "
           "per round over %d connections per side; client on CPU %s\n",
           n_keys, BENCH_VALUE_LEN, ops, batches, batch, x.n_conns,
           c.pin ? "last" : "any");
    fig *lg = calloc((size_t)c.rounds * 4, sizeof *lg);
    if (!lg)
        bench_die("out of memory");
    fig *rg = lg + c.rounds, *lm = rg + c.rounds, *rm = lm + c.rounds;
    hist *h[4];
    for (int i = 0; i < 4; i++)
        h[i] = hist_new();
    const bkey *many[MAX_BATCH];
    for (int r = 0; r < c.rounds; r++) {
        /* New connections every round, several per side used in turn: unpinned,
         * where the scheduler puts a backend relative to the client decides a
         * round trip's cost (20 or 90 us here), and one side must not keep one
         * connection's luck for a whole round. */
        for (int j = 0; j < x.n_conns; j++) {
            x.caches[j] = x.cache = bench_cache_new(&c, &o);
            x.raws[j] = x.raw = bench_raw_connect(&c, sql.setup);
            for (int i = 0; i < 100; i++) { /* the connection, its plans, the caches */
                lib_get(&x, &x.keys[i % n_keys]);
                raw_get(&x, &x.keys[i % n_keys]);
            }
        }
        memset(x.cpu, 0, sizeof x.cpu);
        int64_t tot[4] = {0};
        for (int i = 0; i < 4; i++)
            hist_reset(h[i]);
        for (long i = 0; i < ops; i++) {
            x.cache = x.caches[i % x.n_conns];
            x.raw = x.raws[i % x.n_conns];
            const bkey *k = &x.keys[bench_rand(&x.rng) % (uint64_t)n_keys];
            int64_t a, b;
            if (i % 2) {
                a = lib_get(&x, k);
                b = raw_get(&x, k);
            } else {
                b = raw_get(&x, k);
                a = lib_get(&x, k);
            }
            hist_add(h[0], a);
            hist_add(h[1], b);
            tot[0] += a;
            tot[1] += b;
        }
        for (long i = 0; i < batches; i++) {
            x.cache = x.caches[i % x.n_conns];
            x.raw = x.raws[i % x.n_conns];
            for (int j = 0; j < batch; j++)
                many[j] = &x.keys[bench_rand(&x.rng) % (uint64_t)n_keys];
            int64_t a, b;
            if (i % 2) {
                a = lib_many(&x, many, batch);
                b = raw_many(&x, many, batch);
            } else {
                b = raw_many(&x, many, batch);
                a = lib_many(&x, many, batch);
            }
            hist_add(h[2], a);
            hist_add(h[3], b);
            tot[2] += a;
            tot[3] += b;
        }
        lg[r] = fig_of(h[0], tot[0], x.cpu[GET_LIB], ops, ops);
        rg[r] = fig_of(h[1], tot[1], x.cpu[GET_RAW], ops, ops);
        lm[r] = fig_of(h[2], tot[2], x.cpu[MANY_LIB], batches, batches * batch);
        rm[r] = fig_of(h[3], tot[3], x.cpu[MANY_RAW], batches, batches * batch);
        for (int j = 0; j < x.n_conns; j++) {
            PQfinish(x.raws[j]);
            pgcw_cache_free(x.caches[j]);
        }
        fprintf(stderr,
                "bench_cache_read: round %d: get p50 %.1f/%.1f us, get_many "
                "%.0f/%.0f keys/s (library/raw)\n",
                r + 1, lg[r].p50 / 1e3, rg[r].p50 / 1e3, lm[r].rate, rm[r].rate);
    }
    print_pair_header();
    print_pair("get, L1 miss (us per op)", lg, rg, c.rounds, "rate: gets/s", 1e3);
    char what[64];
    snprintf(what, sizeof what, "get_many %d (us per call)", batch);
    print_pair(what, lm, rm, c.rounds, "rate: keys/s", 1e3);
    printf("targets: get p50 and p99 <= 1.2x raw; get_many keys/s >= 0.9x raw. "
           "x raw: median over rounds of library/raw within the round; cpu: the calling "
           "thread's CPU time per call, us.\n\n");
    for (int i = 0; i < 4; i++)
        free(h[i]);
    free(lg);
    free(x.keys);
    bench_sql_free(&sql);
    return 0;
}
