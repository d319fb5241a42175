/*
 * bench_memo.c - what a memoized get costs: a hit (strategy drain of an empty
 * queue + store lookup + copy out), a miss with a trivial loader, a bare
 * pgcw_strategy_clear() on an empty queue, and hit throughput with 1 and 2 threads.
 * No server: the watcher is marked healthy with its internal test hook.
 *
 * Usage: bench_memo [seconds per figure, default 1]. Prints one line per figure.
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pgcachewatch/pgcachewatch.h>

#include "pgcw_testhook.h"

#define KEYS 1000

static double seconds = 1.0;

static pgcw_status load(void *ctx, const void *key, size_t key_len, pgcw_memo_result *r)
{
    (void)ctx;
    char v[128];
    int n = snprintf(v, sizeof v, "value-of-%.*s-with-some-padding-to-64-bytes......",
                     (int)key_len, (const char *)key);
    return pgcw_memo_result_set(r, v, (size_t)n);
}

static void key_of(unsigned i, char *buf, size_t len)
{
    snprintf(buf, len, "user:%u", i);
}

typedef struct run {
    pgcw_memo *m;
    unsigned seed;
    unsigned long ops;
} run;

static void *hit_loop(void *arg)
{
    run *r = arg;
    char key[32];
    int64_t end = pgcw__mono_us() + (int64_t)(seconds * 1e6);
    unsigned i = r->seed;
    while (pgcw__mono_us() < end) {
        for (int b = 0; b < 256; b++) {
            key_of(i++ % KEYS, key, sizeof key);
            void *v;
            size_t len;
            if (pgcw_memo_get(r->m, key, strlen(key), &v, &len) != PGCW_OK)
                abort();
            pgcw_free(v);
        }
        r->ops += 256;
    }
    return NULL;
}

static double hits_per_sec(pgcw_memo *m, int threads)
{
    run r[2] = {{.m = m, .seed = 0}, {.m = m, .seed = KEYS / 2}};
    pthread_t t[2];
    for (int i = 0; i < threads; i++)
        pthread_create(&t[i], NULL, hit_loop, &r[i]);
    unsigned long ops = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(t[i], NULL);
        ops += r[i].ops;
    }
    return (double)ops / seconds;
}

int main(int argc, char **argv)
{
    if (argc > 1)
        seconds = atof(argv[1]);
    if (seconds <= 0)
        seconds = 1.0;
    pgcw_watcher *w;
    pgcw_strategy *s;
    pgcw_memo *m;
    if (pgcw_watcher_new(NULL, NULL, &w) != PGCW_OK ||
        pgcw_strategy_new(w, NULL, &s) != PGCW_OK)
        return 1;
    pgcw__watcher_set_healthy(w, true);
    pgcw_memo_opts mo = {.strategy = s, .load = load};
    if (pgcw_memo_new(&mo, &m) != PGCW_OK)
        return 1;

    /* An empty-queue drain: the floor under every get. */
    unsigned long n = 0;
    int64_t t0 = pgcw__mono_us(), end = t0 + (int64_t)(seconds * 1e6);
    while (pgcw__mono_us() < end) {
        for (int i = 0; i < 1024; i++)
            if (pgcw_strategy_clear(s))
                abort();
        n += 1024;
    }
    printf("strategy_clear (empty queue)   %8.1f ns/call\n",
           (double)(pgcw__mono_us() - t0) * 1e3 / (double)n);

    /* Misses: every key new, trivial loader; the store evicts past 10000. */
    n = 0;
    t0 = pgcw__mono_us();
    end = t0 + (int64_t)(seconds * 1e6);
    char key[32];
    while (pgcw__mono_us() < end) {
        for (int i = 0; i < 256; i++) {
            key_of((unsigned)(KEYS + n++), key, sizeof key);
            void *v;
            size_t len;
            if (pgcw_memo_get(m, key, strlen(key), &v, &len) != PGCW_OK)
                abort();
            pgcw_free(v);
        }
    }
    printf("get, miss (trivial loader)     %8.1f ns/get\n",
           (double)(pgcw__mono_us() - t0) * 1e3 / (double)n);

    pgcw_memo_clear(m);
    for (unsigned i = 0; i < KEYS; i++) {
        key_of(i, key, sizeof key);
        void *v;
        size_t len;
        if (pgcw_memo_get(m, key, strlen(key), &v, &len) != PGCW_OK)
            abort();
        pgcw_free(v);
    }
    double one = hits_per_sec(m, 1);
    printf("get, hit, 1 thread             %8.1f ns/get (%.2f M/s)\n", 1e9 / one,
           one / 1e6);
    double two = hits_per_sec(m, 2);
    printf("get, hit, 2 threads            %8.2f M/s total (%.2fx one thread)\n",
           two / 1e6, two / one);

    pgcw_memo_stats st;
    pgcw_memo_stats_get(m, &st);
    printf("stats: hits=%llu misses=%llu entries=%zu bytes=%zu\n",
           (unsigned long long)st.hits, (unsigned long long)st.misses, st.entries,
           st.bytes);
    pgcw_memo_free(m);
    pgcw_strategy_free(s);
    pgcw_watcher_free(w);
    return 0;
}
