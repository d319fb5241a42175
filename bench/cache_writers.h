/*
 * cache_writers.h - bench_cache_write's write paths: the variants of the
 * concurrent-writers phase (what each one changes: table, trigger, session
 * settings, statement), the writer threads, and the client-side notifier that
 * sends invalidations after commit, batched across writes and threads. Bench-only;
 * included once by bench_cache_write.c. Must never count a write that failed.
 */
#ifndef PGCW_BENCH_CACHE_WRITERS_H
#define PGCW_BENCH_CACHE_WRITERS_H

#include <stdatomic.h>

#include "cache_bench.h"

#define MAX_WRITERS 64
#define KEYS_PER_WRITER 100
#define ST_DISTINCT "bench_set_distinct" /* PGCW__ST_SET + WHERE .. IS DISTINCT FROM */

enum { T_UNLOGGED, T_LOGGED, N_TABLES };

typedef struct variant {
    const char *name;
    const char *what;
    int ref;      /* the variant it is compared to */
    bool lib;     /* pgcw_cache_set, else raw PQexecPrepared */
    int table;    /* T_UNLOGGED or T_LOGGED */
    bool trigger; /* the broadcast trigger enabled */
    bool async;   /* SET synchronous_commit = off */
    bool distinct;
    bool repeat;     /* every write repeats the row's value */
    bool batched;    /* invalidations sent after commit by one notifier thread */
    bool after;      /* the library with PGCW_CACHE_NOTIFY_AFTER_COMMIT */
    bool background; /* ... with PGCW_CACHE_NOTIFY_BACKGROUND */
    bool logical;    /* ... with PGCW_CACHE_NOTIFY_LOGICAL (LOGGED table) */
} variant;

enum {
    V_LIB_ON,
    V_LIB_OFF,
    V_LIB_AFTER,
    V_LIB_BACKGROUND,
    V_LIB_LOGGED_ON,
    V_LIB_LOGGED_OFF,
    V_LIB_LOGICAL,
    V_RAW_ON,
    V_RAW_OFF,
    V_RAW_BATCHED,
    V_LOGGED_ON,
    V_LOGGED_OFF,
    V_LOGGED_ASYNC_ON,
    V_LOGGED_ASYNC_OFF,
    V_REPEAT_ON,
    V_DISTINCT_REPEAT,
    V_DISTINCT_CHANGE,
    N_VARIANTS
};

/* Every variant writes the UNLOGGED table with the trigger unless it says
 * otherwise. */
static const variant k_variants[N_VARIANTS] = {
    [V_LIB_ON] = {"lib-trigger",
                  "pgcw_cache_set, trigger NOTIFY in the write's transaction", V_LIB_OFF,
                  .lib = true, .trigger = true},
    [V_LIB_OFF] = {"lib-no-trigger", "pgcw_cache_set, broadcast trigger disabled",
                   V_RAW_OFF, .lib = true},
    [V_LIB_AFTER] = {"lib-after-commit",
                     "pgcw_cache_set, NOTIFY_AFTER_COMMIT: the trigger skips its "
                     "sessions, invalidations batched after commit, set waits for them",
                     V_LIB_OFF, .lib = true, .trigger = true, .after = true},
    [V_LIB_BACKGROUND] = {"lib-background",
                          "pgcw_cache_set, NOTIFY_BACKGROUND: as after-commit, sent by "
                          "the cache's thread, set returns at commit",
                          V_LIB_OFF, .lib = true, .trigger = true, .background = true},
    [V_LIB_LOGGED_ON] = {"lib-logged-trigger",
                         "pgcw_cache_set on the LOGGED table, trigger NOTIFY",
                         V_LIB_LOGGED_OFF, .lib = true, .table = T_LOGGED,
                         .trigger = true},
    [V_LIB_LOGGED_OFF] = {"lib-logged-no-trigger",
                          "pgcw_cache_set on the LOGGED table, trigger disabled",
                          V_LOGGED_OFF, .lib = true, .table = T_LOGGED},
    [V_LIB_LOGICAL] = {"lib-logical",
                       "pgcw_cache_set, NOTIFY_LOGICAL: LOGGED table, the trigger skips "
                       "its sessions, every cache reads the WAL (its slot decodes here)",
                       V_LIB_LOGGED_OFF, .lib = true, .table = T_LOGGED, .trigger = true,
                       .logical = true},
    [V_RAW_ON] = {"raw-trigger", "raw upsert, trigger NOTIFY in the write's transaction",
                  V_RAW_OFF, .trigger = true},
    [V_RAW_OFF] = {"raw-no-trigger", "raw upsert, broadcast trigger disabled", V_RAW_OFF},
    [V_RAW_BATCHED] = {"raw-batched",
                       "no trigger; a notifier thread sends pg_notify for every key "
                       "written since its last batch, after commit",
                       V_RAW_OFF, .batched = true},
    [V_LOGGED_ON] = {"logged-trigger", "LOGGED table, trigger", V_LOGGED_OFF,
                     .table = T_LOGGED, .trigger = true},
    [V_LOGGED_OFF] = {"logged-no-trigger", "LOGGED table, no trigger", V_RAW_OFF,
                      .table = T_LOGGED},
    [V_LOGGED_ASYNC_ON] = {"logged-async-trigger",
                           "LOGGED, synchronous_commit off, trigger", V_LOGGED_ASYNC_OFF,
                           .table = T_LOGGED, .trigger = true, .async = true},
    [V_LOGGED_ASYNC_OFF] = {"logged-async-no-trig",
                            "LOGGED, synchronous_commit off, no trigger", V_LOGGED_OFF,
                            .table = T_LOGGED, .async = true},
    [V_REPEAT_ON] = {"repeat-trigger", "trigger; every write repeats the stored value",
                     V_RAW_ON, .trigger = true, .repeat = true},
    [V_DISTINCT_REPEAT] = {"distinct-repeat",
                           "trigger; DO UPDATE .. WHERE value IS DISTINCT FROM; every "
                           "write repeats the value (skipped)",
                           V_REPEAT_ON, .trigger = true, .distinct = true,
                           .repeat = true},
    [V_DISTINCT_CHANGE] = {"distinct-change",
                           "trigger; the same statement; every write changes the value",
                           V_RAW_ON, .trigger = true, .distinct = true},
};

/* The value every write of a "repeat" variant stores. */
#define REPEAT_BYTE 'r'

/* --- the notifier ---------------------------------------------------------------- */

/* Writers append "u<version>|<hex key>," to pending; the notifier takes the whole
 * buffer and sends SELECT pg_notify(ch, x) FROM unnest($2::text[]) x, one
 * statement (one transaction) per batch. */
typedef struct notifier {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    char *pending;
    size_t len, cap;
    size_t n_pending;
    int64_t oldest_ns; /* enqueue time of the oldest pending write */
    bool stop;
    PGconn *pg;
    const char *channel;
    /* results, read after the join */
    uint64_t batches, sent;
    hist *lag; /* per batch: its oldest write's enqueue to pg_notify's return, ns */
    pthread_t thread;
} notifier;

static void notifier_push(notifier *n, const char *key, size_t key_len, int64_t version)
{
    char item[32 + 2 * BENCH_KEY_MAX];
    int l = snprintf(item, sizeof item, "u%" PRId64 "|", version);
    for (size_t i = 0; i < key_len && (size_t)l + 3 < sizeof item; i++)
        l += snprintf(item + l, sizeof item - (size_t)l, "%02x", (unsigned char)key[i]);
    item[l++] = ',';
    pthread_mutex_lock(&n->mu);
    if (n->len + (size_t)l + 2 > n->cap) {
        size_t cap = n->cap ? n->cap * 2 : 65536;
        while (cap < n->len + (size_t)l + 2)
            cap *= 2;
        char *p = realloc(n->pending, cap);
        if (!p)
            bench_die("out of memory");
        n->pending = p;
        n->cap = cap;
    }
    if (n->n_pending++ == 0) {
        n->oldest_ns = mono_ns();
        pthread_cond_signal(&n->cv);
    }
    memcpy(n->pending + n->len, item, (size_t)l);
    n->len += (size_t)l;
    pthread_mutex_unlock(&n->mu);
}

static void *notifier_main(void *arg)
{
    notifier *n = arg;
    char *mine = NULL;
    size_t mine_cap = 0;
    pthread_mutex_lock(&n->mu);
    for (;;) {
        while (n->n_pending == 0 && !n->stop)
            pthread_cond_wait(&n->cv, &n->mu);
        if (n->n_pending == 0)
            break;
        /* Swap buffers: writers go on appending while this batch is sent. */
        char *tmp = n->pending;
        size_t len = n->len, cnt = n->n_pending, cap = n->cap;
        int64_t oldest = n->oldest_ns;
        n->pending = mine;
        n->cap = mine_cap;
        n->len = n->n_pending = 0;
        mine = tmp;
        mine_cap = cap;
        pthread_mutex_unlock(&n->mu);
        memmove(mine + 1, mine, len);
        mine[0] = '{';
        mine[len] = '}'; /* over the trailing ',' */
        mine[len + 1] = '\0';
        const char *values[2] = {n->channel, mine};
        PGresult *r =
            PQexecParams(n->pg, "SELECT pg_notify($1, x) FROM unnest($2::text[]) x", 2,
                         NULL, values, NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_TUPLES_OK)
            bench_die("notifier: %s", PQerrorMessage(n->pg));
        PQclear(r);
        int64_t done = mono_ns();
        pthread_mutex_lock(&n->mu);
        hist_add(n->lag, done - oldest);
        n->batches++;
        n->sent += cnt;
    }
    pthread_mutex_unlock(&n->mu);
    free(mine);
    return NULL;
}

/* --- what the writers' backends wait for (--waits) ------------------------------- */

#define MAX_WAIT_KINDS 24

/* Samples pg_stat_activity every 5 ms while the writers run: how many active client
 * backends were on the CPU ("CPU") or waiting, and for what. A diagnostic: the
 * sampling costs the server a little, so the figures are taken without it. */
typedef struct sampler {
    PGconn *pg;
    atomic_int stop;
    int n;
    char name[MAX_WAIT_KINDS][48];
    uint64_t count[MAX_WAIT_KINDS];
    uint64_t total;
    pthread_t thread;
} sampler;

static void *sampler_main(void *arg)
{
    sampler *s = arg;
    while (!atomic_load(&s->stop)) {
        PGresult *r = PQexec(
            s->pg,
            "SELECT coalesce(wait_event_type || ':' || wait_event, 'CPU'), count(*) "
            "FROM pg_stat_activity WHERE backend_type = 'client backend' AND "
            "state = 'active' AND pid <> pg_backend_pid() GROUP BY 1");
        if (PQresultStatus(r) != PGRES_TUPLES_OK)
            bench_die("sampler: %s", PQerrorMessage(s->pg));
        for (int i = 0; i < PQntuples(r); i++) {
            const char *w = PQgetvalue(r, i, 0);
            uint64_t c = strtoull(PQgetvalue(r, i, 1), NULL, 10);
            int k = 0;
            while (k < s->n && strcmp(s->name[k], w))
                k++;
            if (k == s->n && s->n < MAX_WAIT_KINDS)
                snprintf(s->name[s->n++], sizeof s->name[0], "%s", w);
            if (k < s->n)
                s->count[k] += c;
            s->total += c;
        }
        PQclear(r);
        sleep_ns(5000000);
    }
    return NULL;
}

/* "CPU 40%, Lock:object 35%, ...": the top kinds, into buf. */
static void sampler_top(const sampler *s, char *buf, size_t len)
{
    bool used[MAX_WAIT_KINDS] = {false};
    size_t off = 0;
    buf[0] = '\0';
    for (int t = 0; t < 4; t++) {
        int best = -1;
        for (int k = 0; k < s->n; k++)
            if (!used[k] && (best < 0 || s->count[k] > s->count[best]))
                best = k;
        if (best < 0 || s->total == 0 || off >= len)
            break;
        used[best] = true;
        off += (size_t)snprintf(buf + off, len - off, "%s%s %.0f%%", t ? ", " : "",
                                s->name[best],
                                100.0 * (double)s->count[best] / (double)s->total);
    }
}

/* --- writers --------------------------------------------------------------------- */

enum { PH_WARMUP, PH_MEASURE, PH_STOP };

typedef struct writers {
    const variant *v;
    pgcw_cache *cache;
    PGconn **conns; /* the variant's table's, one per writer */
    notifier *nt;
    int cpu;
    atomic_int phase;
    int64_t ttl_ms;
} writers;

typedef struct writer {
    writers *ws;
    int id;
    uint64_t gen;
    uint64_t done; /* writes completed while measuring */
    pthread_t thread;
} writer;

static void *writer_main(void *arg)
{
    writer *w = arg;
    writers *ws = w->ws;
    const variant *v = ws->v;
    bench_pin_self(ws->cpu);
    char ns[16], key[BENCH_KEY_MAX], val[BENCH_VALUE_LEN], ttl[8];
    snprintf(ns, sizeof ns, "w%02d", w->id);
    pgcw__put_int64(ttl, ws->ttl_ms);
    const char *stmt = v->distinct ? ST_DISTINCT : PGCW__ST_SET;
    PGconn *pg = v->lib ? NULL : ws->conns[w->id];
    for (long i = 0;; i++) {
        int ph = atomic_load_explicit(&ws->phase, memory_order_relaxed);
        if (ph == PH_STOP)
            break;
        long k = i % KEYS_PER_WRITER;
        size_t kl = bench_key(key, ns, k);
        if (v->repeat)
            memset(val, REPEAT_BYTE, sizeof val);
        else
            bench_value(val, sizeof val, k, (long)++w->gen + (long)w->id * 1000000000L);
        if (v->lib) {
            pgcw_status st = pgcw_cache_set(ws->cache, key, kl, val, sizeof val,
                                            PGCW_CACHE_TTL_DEFAULT);
            if (st != PGCW_OK)
                bench_die("set: %s", pgcw_cache_errmsg(ws->cache));
        } else {
            const char *values[3] = {key, val, ttl};
            int lengths[3] = {(int)kl, (int)sizeof val, 8};
            PGresult *r = PQexecPrepared(pg, stmt, 3, values, lengths, k_bench_binary, 1);
            if (PQresultStatus(r) != PGRES_TUPLES_OK)
                bench_die("%s: %s", v->name, PQerrorMessage(pg));
            if (ws->nt && PQntuples(r) == 1)
                notifier_push(ws->nt, key, kl, pgcw__res_int64(r, 0, 0));
            PQclear(r);
        }
        if (ph == PH_MEASURE)
            w->done++;
    }
    return NULL;
}

#endif
