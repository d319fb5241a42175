/*
 * cache_inval.h - the invalidation-delay measurement (bench_cache_inval, bench_compare):
 * from a writer's commit in one process to the eviction of the key from another process's
 * L1, beside a bare libpq LISTEN connection in that other process receiving the same
 * notification.
 *
 * Two processes (a fork, before either has a thread or a connection):
 *   A, the writer: a pgcw_cache (disable_l1) that sets one key, --writes times,
 *      each when B says it is ready, after a random pause of --gap-us to 2x that
 *      (so B is idle, as a reader between requests is); it notes CLOCK_MONOTONIC
 *      before the set and after it returned (the commit acknowledged).
 *   B, the reader: a pgcw_cache with its L1, driven by a watcher of B's own (its
 *      own thread, as the cache's own watcher would be), holding the key; a sink
 *      added after the cache's own notes the time the cache's eviction has run;
 *      a bare LISTEN connection on a thread of its own notes when libpq hands it
 *      the same notification. Once both saw it, B's get must return the new value
 *      (never the old: a stale read fails the run), B refills its L1 and tells A.
 * CLOCK_MONOTONIC is one clock for every process of a machine, so A's and B's
 * times subtract. The commit lies between A's two times: "from the set's start" is
 * an upper bound of commit-to-eviction, "from the set's return" can be negative
 * (the notification can overtake the writer's own reply). Percentiles are
 * nearest-rank over the sorted samples. Pinned: both processes' threads on the
 * last CPU, the server on the first (run_cache.sh).
 *
 * Call inval_measure() before the calling process has any thread or connection of
 * its own: it forks. A program that includes it defines _GNU_SOURCE first.
 */
#ifndef PGCW_BENCH_CACHE_INVAL_H
#define PGCW_BENCH_CACHE_INVAL_H

#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include "cache_bench.h"

#define INVAL_KEY "inval:the-key"
/* The LOGGED table of --notify-mode logical (bench_cache_write's too). */
#define INVAL_LOGICAL_PREFIX BENCH_PREFIX "logged_"

typedef struct inval_shm {
    int n;
    int logical; /* PGCW_CACHE_NOTIFY_LOGICAL: both caches read the WAL, no LISTEN */
    int stale;   /* logical: gets right after the eviction that saw the old row */
    int b_failed;
    char b_err[512];
    /* n each, after the struct. t_vis (logical): the second eviction, once the
     * transaction was seen visible: t_sink plus the cache's own measure of the
     * time from the change's arrival to it (visibility_delay_us_total's step). */
    int64_t *t0, *t1, *t_sink, *t_raw, *t_get, *t_vis;
} inval_shm;

static inval_shm *g_inval;
static int g_inval_stale; /* the last measurement's stale count (logical) */

/* How many reads of the last inval_measure() saw the old row right after the
 * eviction (logical decoding only; 0 otherwise). */
static inline int inval_stale_reads(void)
{
    return g_inval_stale;
}

static void inval_value(char *buf, long gen)
{
    bench_value(buf, BENCH_VALUE_LEN, 0, gen);
}

/* --- B, the reader ----------------------------------------------------------------- */

typedef struct inval_reader {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int cur;
    bool stop;
    PGconn *listen;
    char hexkey[2 * sizeof INVAL_KEY];
} inval_reader;

static void inval_fail(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));
static void inval_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_inval->b_err, sizeof g_inval->b_err, fmt, ap);
    va_end(ap);
    g_inval->b_failed = 1;
    _exit(1);
}

static void inval_note(inval_reader *r, int64_t *slot)
{
    int64_t t = mono_ns();
    pthread_mutex_lock(&r->mu);
    if (slot[r->cur] == 0)
        slot[r->cur] = t;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

static void inval_on_sink(void *ctx, const pgcw_event *ev)
{
    inval_reader *r = ctx;
    if (ev->kind == PGCW_EVENT_KEY && ev->key_len == strlen(INVAL_KEY) &&
        memcmp(ev->key, INVAL_KEY, ev->key_len) == 0)
        inval_note(r, g_inval->t_sink);
    /* Logical decoding: the row's change, its key as JSON. */
    if (ev->kind == PGCW_EVENT_CHANGE && ev->n_keys == 1 &&
        strcmp(ev->keys[0], "[\"" INVAL_KEY "\"]") == 0)
        inval_note(r, g_inval->t_sink);
}

static void *inval_listen_main(void *arg)
{
    inval_reader *r = arg;
    struct pollfd pfd = {.fd = PQsocket(r->listen), .events = POLLIN};
    for (;;) {
        pthread_mutex_lock(&r->mu);
        bool stop = r->stop;
        pthread_mutex_unlock(&r->mu);
        if (stop)
            return NULL;
        if (poll(&pfd, 1, 50) < 0 && errno != EINTR)
            inval_fail("poll: %s", strerror(errno));
        if (!PQconsumeInput(r->listen))
            inval_fail("listen: %s", PQerrorMessage(r->listen));
        PGnotify *n;
        while ((n = PQnotifies(r->listen)) != NULL) {
            const char *bar = strchr(n->extra, '|');
            if (bar && strcmp(bar + 1, r->hexkey) == 0)
                inval_note(r, g_inval->t_raw);
            PQfreemem(n);
        }
    }
}

/* Logical: waits for the cache's second eviction of sample i's transaction (one
 * more confirmed since before) and notes when it happened. */
static void inval_wait_confirmed(pgcw_cache *cache, const pgcw_cache_stats *before, int i)
{
    int64_t until = mono_ns() + 5000000000LL;
    pgcw_cache_stats s;
    for (;;) {
        pgcw_cache_stats_get(cache, &s);
        if (s.visibility_confirmed > before->visibility_confirmed)
            break;
        if (mono_ns() > until)
            inval_fail("sample %d: never seen visible", i);
        sleep_ns(20000);
    }
    g_inval->t_vis[i] =
        g_inval->t_sink[i] +
        (int64_t)(s.visibility_delay_us_total - before->visibility_delay_us_total) * 1000;
}

static void inval_reader_main(const bench_cfg *c, int ready_fd)
{
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    g_bench_prog = "invalidation delay (reader process)";
    static inval_reader r = {.mu = PTHREAD_MUTEX_INITIALIZER,
                             .cv = PTHREAD_COND_INITIALIZER};
    for (size_t i = 0; i < strlen(INVAL_KEY); i++)
        snprintf(r.hexkey + 2 * i, 3, "%02x", (unsigned char)INVAL_KEY[i]);
    pgcw_conn_opts co = bench_conn_opts(c);
    const char *channels[1] = {BENCH_CHANNEL};
    pgcw_payload_format formats[1] = {PGCW_FORMAT_CACHE_KEY};
    pgcw_watcher_opts wo = {.channels = channels, .n_channels = 1, .formats = formats};
    if (g_inval->logical) {
        wo.source = PGCW_WATCH_LOGICAL;
        wo.slot_name = "bench_inval_reader";
        wo.publication = INVAL_LOGICAL_PREFIX "cache_entries_pub";
        wo.temporary_slot = true;
    }
    pgcw_watcher *w;
    if (pgcw_watcher_new(&wo, &co, &w) != PGCW_OK)
        inval_fail("pgcw_watcher_new failed");
    pgcw_cache_opts o = {.schema_prefix =
                             g_inval->logical ? INVAL_LOGICAL_PREFIX : BENCH_PREFIX,
                         .notify_channel = BENCH_CHANNEL,
                         .pool_size = 1,
                         .notify_mode = g_inval->logical ? PGCW_CACHE_NOTIFY_LOGICAL
                                                         : PGCW_CACHE_NOTIFY_TRIGGER,
                         .watcher = w};
    pgcw_cache *cache;
    if (pgcw_cache_new(&o, &co, &cache) != PGCW_OK)
        inval_fail("pgcw_cache_new failed");
    pgcw_sink_opts so = {.fn = inval_on_sink, .ctx = &r};
    pgcw_sink *sink; /* after the cache's own: it runs once the eviction is done */
    if (pgcw_sink_new(w, &so, &sink) != PGCW_OK || pgcw_watcher_start(w) != PGCW_OK)
        inval_fail("cannot start the watcher");
    if (pgcw_cache_wait_healthy(cache, 15000) != PGCW_OK)
        inval_fail("watcher: %s", pgcw_cache_errmsg(cache));
    /* Logical decoding: the writes notify no one, so there is no bare LISTEN. */
    pthread_t lt;
    if (!g_inval->logical) {
        r.listen = PQconnectdb(c->dsn);
        if (PQstatus(r.listen) != CONNECTION_OK)
            inval_fail("connect: %s", PQerrorMessage(r.listen));
        PGresult *res = PQexec(r.listen, "LISTEN " BENCH_CHANNEL);
        if (PQresultStatus(res) != PGRES_COMMAND_OK)
            inval_fail("LISTEN: %s", PQerrorMessage(r.listen));
        PQclear(res);
        if (pthread_create(&lt, NULL, inval_listen_main, &r) != 0)
            inval_fail("pthread_create failed");
    }

    char want[BENCH_VALUE_LEN], buf[BENCH_VALUE_LEN];
    for (int i = 0; i < g_inval->n; i++) {
        pthread_mutex_lock(&r.mu);
        r.cur = i;
        pthread_mutex_unlock(&r.mu);
        /* The L1 must hold the value A wrote last (a get refills it after an
         * eviction); the second get is then a hit. */
        inval_value(want, i - 1);
        for (int tries = 0;; tries++) {
            pgcw_cache_stats s0, s1;
            size_t len;
            pgcw_status st = pgcw_cache_get_into(cache, INVAL_KEY, strlen(INVAL_KEY), buf,
                                                 sizeof buf, &len);
            if (st != PGCW_OK || len != sizeof want || memcmp(buf, want, len))
                inval_fail("sample %d: get did not return the last value (%s)", i,
                           pgcw_strerror(st));
            pgcw_cache_stats_get(cache, &s0);
            (void)pgcw_cache_get_into(cache, INVAL_KEY, strlen(INVAL_KEY), buf,
                                      sizeof buf, &len);
            pgcw_cache_stats_get(cache, &s1);
            if (s1.l1_hits > s0.l1_hits)
                break;
            if (tries == 100)
                inval_fail("sample %d: the L1 does not keep the key", i);
            sleep_ns(1000000);
        }
        pgcw_cache_stats before;
        pgcw_cache_stats_get(cache, &before);
        if (write(ready_fd, &i, sizeof i) != (ssize_t)sizeof i)
            inval_fail("write: %s", strerror(errno));
        int64_t deadline = mono_ns() + 5000000000LL;
        pthread_mutex_lock(&r.mu);
        while (!g_inval->t_sink[i] || (!g_inval->logical && !g_inval->t_raw[i])) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 10000000;
            if (ts.tv_nsec >= 1000000000) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000;
            }
            pthread_cond_timedwait(&r.cv, &r.mu, &ts);
            if (mono_ns() > deadline)
                inval_fail("sample %d: no notification within 5 s (cache %s, raw %s)", i,
                           g_inval->t_sink[i] ? "got it" : "did not",
                           g_inval->t_raw[i] ? "got it" : "did not");
        }
        pthread_mutex_unlock(&r.mu);
        size_t len;
        inval_value(want, i);
        pgcw_status st = pgcw_cache_get_into(cache, INVAL_KEY, strlen(INVAL_KEY), buf,
                                             sizeof buf, &len);
        g_inval->t_get[i] = mono_ns();
        /* Logical decoding can hand over a change a moment before it is visible
         * (cache.h): such a read is counted, and the get repeated, with nothing
         * flushed by hand, until the cache serves the new row (its second eviction
         * removes the copy the read left); t_get is then when it did. */
        if (g_inval->logical && st == PGCW_OK &&
            (len != sizeof want || memcmp(buf, want, len))) {
            g_inval->stale++;
            int64_t until = mono_ns() + 5000000000LL;
            while (st == PGCW_OK && (len != sizeof want || memcmp(buf, want, len)) &&
                   mono_ns() < until) {
                sleep_ns(20000); /* the pool's one connection is the confirmer's too */
                st = pgcw_cache_get_into(cache, INVAL_KEY, strlen(INVAL_KEY), buf,
                                         sizeof buf, &len);
                g_inval->t_get[i] = mono_ns();
            }
        }
        if (st != PGCW_OK || len != sizeof want || memcmp(buf, want, len))
            inval_fail(
                "sample %d: STALE: the get after the eviction did not return the new "
                "value (%s)",
                i, pgcw_strerror(st));
        if (g_inval->logical)
            inval_wait_confirmed(cache, &before, i);
    }
    pthread_mutex_lock(&r.mu);
    r.stop = true;
    pthread_mutex_unlock(&r.mu);
    if (!g_inval->logical) {
        pthread_join(lt, NULL);
        PQfinish(r.listen);
    }
    pgcw_watcher_stop(w);
    pgcw_cache_free(cache);
    pgcw_sink_free(sink);
    pgcw_watcher_free(w);
    _exit(0);
}

/* --- A, the writer; the report ------------------------------------------------------ */

static int inval_cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

typedef struct pcts {
    double p50, p99, max;
} pcts;

/* Percentiles (us) of a[i] - b[i] over the measured samples. */
static pcts diff_pcts(const int64_t *a, const int64_t *b, int from, int n)
{
    int64_t *d = malloc((size_t)n * sizeof *d);
    if (!d)
        bench_die("out of memory");
    int m = 0;
    for (int i = from; i < n; i++)
        d[m++] = a[i] - b[i];
    qsort(d, (size_t)m, sizeof *d, inval_cmp_i64);
    pcts p = {0, 0, 0};
    if (m > 0) {
        size_t r50 = (size_t)(0.50 * m + 0.999999), r99 = (size_t)(0.99 * m + 0.999999);
        p.p50 = (double)d[(r50 ? r50 : 1) - 1] / 1e3;
        p.p99 = (double)d[(r99 ? r99 : 1) - 1] / 1e3;
        p.max = (double)d[m - 1] / 1e3;
    }
    free(d);
    return p;
}

/* The rows of a measurement: each a - b over the measured samples. */
enum {
    INV_START_EVICT,
    INV_START_RAW,
    INV_RET_EVICT,
    INV_RET_RAW,
    INV_START_GET,
    INV_EVICT_RAW,
    INV_SET_CALL,
    INV_START_VIS,
    INV_RET_VIS,
    INV_N
};

static const char *const k_inval_rows[INV_N] = {
    "set called -> evicted from B's L1 (library)",
    "set called -> B's bare LISTEN has it (raw)",
    "set returned -> evicted from B's L1 (library)",
    "set returned -> B's bare LISTEN has it (raw)",
    "set called -> B's get returned the new value",
    "evicted - bare LISTEN (B's watcher and sink)",
    "set call (A's write round trip)",
    "set called -> evicted again once visible (logical)",
    "set returned -> evicted again once visible (logical)",
};

/* Runs writes + warmup samples (A is this process, B a fork); A's writes notify
 * by nm. Fills p[INV_N] (us). Dies on any failure, a stale read included. */
static void inval_measure(const bench_cfg *c, long writes, long warmup, long gap_us,
                          pgcw_cache_notify_mode nm, pcts p[INV_N])
{
    int n = (int)(writes + warmup);
    size_t bytes = sizeof(inval_shm) + 6 * (size_t)n * sizeof(int64_t);
    void *mem =
        mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED)
        bench_die("mmap: %s", strerror(errno));
    g_inval = mem;
    g_inval->n = n;
    g_inval->logical = nm == PGCW_CACHE_NOTIFY_LOGICAL;
    int64_t *arr = (int64_t *)(g_inval + 1);
    g_inval->t0 = arr;
    g_inval->t1 = arr + n;
    g_inval->t_sink = arr + 2 * n;
    g_inval->t_raw = arr + 3 * n;
    g_inval->t_get = arr + 4 * n;
    g_inval->t_vis = arr + 5 * n;

    pgcw_cache_opts o = {.schema_prefix = BENCH_PREFIX,
                         .notify_channel = BENCH_CHANNEL,
                         .disable_l1 = true,
                         .pool_size = 1};
    if (g_inval->logical) { /* a LOGGED table and its publication */
        o.schema_prefix = INVAL_LOGICAL_PREFIX;
        o.durability = PGCW_CACHE_LOGGED;
        o.notify_mode = PGCW_CACHE_NOTIFY_LOGICAL;
    }
    bench_init_db(c, &o);
    {
        /* The key's first value (gen -1), before either process connects. */
        pgcw_cache *w0 = bench_cache_new(c, &o);
        char v[BENCH_VALUE_LEN];
        inval_value(v, -1);
        if (pgcw_cache_set(w0, INVAL_KEY, strlen(INVAL_KEY), v, sizeof v,
                           PGCW_CACHE_TTL_NONE) != PGCW_OK)
            bench_die("set: %s", pgcw_cache_errmsg(w0));
        pgcw_cache_free(w0);
    }
    int fds[2];
    pid_t child = bench_fork_pipe(fds);
    if (child == 0) {
        close(fds[0]);
        inval_reader_main(c, fds[1]);
    }
    close(fds[1]);

    o.notify_mode = nm; /* A's writes only; the reader's cache is the default */
    pgcw_cache *cache = bench_cache_new(c, &o);
    uint64_t rng = 424242;
    char v[BENCH_VALUE_LEN];
    for (int i = 0; i < n; i++) {
        struct pollfd pfd = {.fd = fds[0], .events = POLLIN};
        int got = -1;
        if (poll(&pfd, 1, 20000) <= 0 || read(fds[0], &got, sizeof got) != sizeof got ||
            got != i) {
            kill(child, SIGTERM);
            waitpid(child, NULL, 0);
            bench_die("the reader stopped at sample %d: %s", i,
                      g_inval->b_failed ? g_inval->b_err : "no word from it");
        }
        sleep_ns((gap_us + (int64_t)(bench_rand(&rng) % (uint64_t)(gap_us + 1))) * 1000);
        inval_value(v, i);
        int64_t t0 = mono_ns();
        pgcw_status st = pgcw_cache_set(cache, INVAL_KEY, strlen(INVAL_KEY), v, sizeof v,
                                        PGCW_CACHE_TTL_NONE);
        int64_t t1 = mono_ns();
        if (st != PGCW_OK) {
            kill(child, SIGTERM);
            waitpid(child, NULL, 0);
            bench_die("set: %s", pgcw_cache_errmsg(cache));
        }
        g_inval->t0[i] = t0;
        g_inval->t1[i] = t1;
    }
    int status = 0;
    waitpid(child, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        bench_die("the reader failed: %s", g_inval->b_failed ? g_inval->b_err : "killed");
    pgcw_cache_free(cache);

    const int64_t *rows[INV_N][2] = {
        {g_inval->t_sink, g_inval->t0}, {g_inval->t_raw, g_inval->t0},
        {g_inval->t_sink, g_inval->t1}, {g_inval->t_raw, g_inval->t1},
        {g_inval->t_get, g_inval->t0},  {g_inval->t_sink, g_inval->t_raw},
        {g_inval->t1, g_inval->t0},     {g_inval->t_vis, g_inval->t0},
        {g_inval->t_vis, g_inval->t1},
    };
    for (int i = 0; i < INV_N; i++)
        p[i] = diff_pcts(rows[i][0], rows[i][1], (int)warmup, n);
    g_inval_stale = g_inval->stale;
    munmap(mem, bytes);
    g_inval = NULL;
}

#endif
