/*
 * bench_sources.c - triggers + NOTIFY against logical decoding, in one run on one
 * server: the commit-to-delivery latency each gives a watcher, and what each
 * costs 16 writers committing one-row INSERTs.
 *
 *   bench_sources [DSN] [--writers N] [--seconds S] [--events N]
 *
 * Modes, each on a LOGGED table of its own (id bigint primary key, v int):
 *   none        no trigger, no slot: the writers alone (throughput only)
 *   notify      the statement-level trigger that pg_notify()s (install)
 *   notify-keys the primary-key triggers (install --with-keys)
 *   logical     no trigger: a publication and a slot (install --source logical)
 * A watcher of the mode's source runs on its own thread the whole time, counting
 * events in a sink. Latency: one INSERT at a time (autocommit), from just before
 * PQexec to the sink seeing its event, --events (500) of them after 50 not
 * counted; p50/p99/max nearest-rank. Throughput: --writers (16) connections
 * INSERT as fast as they can for --seconds (5); commits per second, and a check
 * that the watcher got an event for every commit (for logical: once the stream
 * caught up). Works in a database of its own (pgcw_bench_src_<pid>, from
 * template0), dropped at the end; the role needs CREATEDB and REPLICATION. DSN
 * (else $PGCW_BENCH_DSN, else libpq's PG* variables) is key=value settings, to
 * which dbname= is appended.
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include <pgcachewatch/pgcachewatch.h>

#include "harness_hist.h"

typedef enum { M_NONE, M_NOTIFY, M_KEYS, M_LOGICAL, N_MODES } mode;
static const char *const mode_names[] = {"none", "notify", "notify-keys", "logical"};

static char dsn[1024];
static int writers = 16, seconds = 5, events = 500;

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void sleep_us(long us)
{
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

static PGconn *connect_db(void)
{
    PGconn *c = PQconnectdb(dsn);
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "bench_sources: %s", PQerrorMessage(c));
        exit(1);
    }
    return c;
}

static void run(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK) {
        fprintf(stderr, "bench_sources: %s  in: %.200s\n", PQresultErrorMessage(r), sql);
        exit(1);
    }
    PQclear(r);
}

/* What the sink saw: events of the mode's table, and the newest one's time. */
static atomic_uint_fast64_t seen;
static atomic_int_fast64_t last_seen_ns;

static void sink(void *ctx, const pgcw_event *e)
{
    (void)ctx;
    if (e->kind == PGCW_EVENT_CHANGE) {
        atomic_store(&last_seen_ns, mono_ns());
        /* A keyed event counts its rows; a table-level one a statement. */
        atomic_fetch_add(&seen, e->n_keys ? e->n_keys : 1);
    }
}

static pgcw_watcher *watch(mode m, const char *channel)
{
    const char *channels[] = {channel};
    pgcw_watcher_opts wo = {.channels = channels,
                            .n_channels = 1,
                            .source =
                                m == M_LOGICAL ? PGCW_WATCH_LOGICAL : PGCW_WATCH_LISTEN};
    pgcw_conn_opts co = {.conninfo = dsn};
    pgcw_watcher *w = NULL;
    pgcw_sink_opts so = {.fn = sink};
    pgcw_sink *k = NULL;
    if (pgcw_watcher_new(&wo, &co, &w) != PGCW_OK ||
        pgcw_sink_new(w, &so, &k) != PGCW_OK || pgcw_watcher_start(w) != PGCW_OK ||
        pgcw_watcher_wait_healthy(w, 20000) != PGCW_OK) {
        fprintf(stderr, "bench_sources: watcher: %s\n", w ? pgcw_watcher_errmsg(w) : "");
        exit(1);
    }
    return w; /* the sink goes with the watcher */
}

static void latency(mode m, const char *table, hx_hist *h)
{
    PGconn *c = connect_db();
    char sql[160];
    for (int i = 0; i < events + 50; i++) {
        uint64_t before = atomic_load(&seen);
        snprintf(sql, sizeof sql, "INSERT INTO %s VALUES (%d, 0)", table, -1 - i);
        int64_t t0 = mono_ns();
        run(c, sql);
        int64_t give_up = t0 + 10 * 1000000000LL;
        while (atomic_load(&seen) == before) {
            if (mono_ns() > give_up) {
                fprintf(stderr, "bench_sources: %s: an event never came\n",
                        mode_names[m]);
                exit(1);
            }
            sleep_us(20);
        }
        if (i >= 50)
            hx_hist_record(h, atomic_load(&last_seen_ns) - t0);
    }
    PQfinish(c);
}

typedef struct writer_arg {
    const char *table;
    int id;
    atomic_bool *stop;
    uint64_t commits;
} writer_arg;

static void *writer(void *p)
{
    writer_arg *a = p;
    PGconn *c = connect_db();
    char sql[160];
    for (long i = 0; !atomic_load(a->stop); i++) {
        snprintf(sql, sizeof sql, "INSERT INTO %s VALUES (%ld, 0)", a->table,
                 (long)a->id * 100000000L + i);
        run(c, sql);
        a->commits++;
    }
    PQfinish(c);
    return NULL;
}

static double throughput(const char *table, uint64_t *commits)
{
    atomic_bool stop = false;
    pthread_t th[64];
    writer_arg args[64];
    int64_t t0 = mono_ns();
    for (int i = 0; i < writers; i++) {
        args[i] = (writer_arg){.table = table, .id = i + 1, .stop = &stop};
        pthread_create(&th[i], NULL, writer, &args[i]);
    }
    sleep((unsigned)seconds);
    atomic_store(&stop, true);
    *commits = 0;
    for (int i = 0; i < writers; i++) {
        pthread_join(th[i], NULL);
        *commits += args[i].commits;
    }
    return (double)*commits / ((double)(mono_ns() - t0) / 1e9);
}

int main(int argc, char **argv)
{
    const char *base = getenv("PGCW_BENCH_DSN");
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--writers") == 0 && i + 1 < argc)
            writers = atoi(argv[++i]);
        else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc)
            seconds = atoi(argv[++i]);
        else if (strcmp(argv[i], "--events") == 0 && i + 1 < argc)
            events = atoi(argv[++i]);
        else if (argv[i][0] != '-')
            base = argv[i];
        else {
            fprintf(stderr, "usage: bench_sources [DSN] [--writers N] [--seconds S] "
                            "[--events N]\n");
            return 2;
        }
    }
    if (writers < 1 || writers > 64 || seconds < 1 || events < 1) {
        fprintf(stderr, "bench_sources: --writers 1..64, --seconds and --events >= 1\n");
        return 2;
    }
    snprintf(dsn, sizeof dsn, "%s", base ? base : "");
    PGconn *admin = connect_db();
    char db[64], sql[1200];
    snprintf(db, sizeof db, "pgcw_bench_src_%ld", (long)getpid());
    snprintf(sql, sizeof sql, "CREATE DATABASE %s TEMPLATE template0", db);
    run(admin, sql);
    snprintf(dsn, sizeof dsn, "%s dbname=%s", base ? base : "", db);
    PGconn *c = connect_db();

    PGresult *fs = PQexec(c, "SHOW fsync");
    printf("bench_sources: %d writers, %d s each; latency over %d events; server %s, "
           "fsync %s\n",
           writers, seconds, events, PQparameterStatus(c, "server_version"),
           PQresultStatus(fs) == PGRES_TUPLES_OK ? PQgetvalue(fs, 0, 0) : "?");
    PQclear(fs);
    printf("%-12s %10s %10s %10s %12s %10s\n", "mode", "p50 ms", "p99 ms", "max ms",
           "commits/s", "events");
    for (int m = 0; m < N_MODES; m++) {
        char table[32], channel[32];
        snprintf(table, sizeof table, "bs_%d", m);
        snprintf(channel, sizeof channel, "bench_src_%d", m);
        snprintf(sql, sizeof sql, "CREATE TABLE %s (id bigint primary key, v int)",
                 table);
        run(c, sql);
        const char *tables[] = {table};
        pgcw_install_opts io = {.channel = channel,
                                .with_keys = m == M_KEYS,
                                .source = m == M_LOGICAL ? PGCW_WATCH_LOGICAL
                                                         : PGCW_WATCH_LISTEN};
        pgcw_install *in = NULL;
        if (m != M_NONE && (pgcw_install_new(&io, &in) != PGCW_OK ||
                            pgcw_install_run(in, c, tables, 1, NULL) != PGCW_OK)) {
            fprintf(stderr, "bench_sources: install: %s\n", pgcw_install_errmsg(in));
            return 1;
        }
        atomic_store(&seen, 0);
        pgcw_watcher *w = m == M_NONE ? NULL : watch((mode)m, channel);
        hx_hist h;
        hx_hist_reset(&h);
        if (w)
            latency((mode)m, table, &h);
        uint64_t before = atomic_load(&seen), commits = 0;
        double tps = throughput(table, &commits);
        /* Every commit must reach the watcher (the logical stream may lag). */
        uint64_t want = before + commits;
        int64_t give_up = mono_ns() + 120 * 1000000000LL;
        while (w && atomic_load(&seen) < want && mono_ns() < give_up)
            sleep_us(10000);
        char delivered[48] = "-";
        uint64_t got = atomic_load(&seen) - before;
        if (w && got == commits)
            snprintf(delivered, sizeof delivered, "all");
        else if (w)
            snprintf(delivered, sizeof delivered, "%llu of %llu", (unsigned long long)got,
                     (unsigned long long)commits);
        if (w)
            printf("%-12s %10.3f %10.3f %10.3f %12.0f %10s\n", mode_names[m],
                   (double)hx_hist_quantile(&h, 0.5) / 1e6,
                   (double)hx_hist_quantile(&h, 0.99) / 1e6, (double)h.max / 1e6, tps,
                   delivered);
        else
            printf("%-12s %10s %10s %10s %12.0f %10s\n", mode_names[m], "-", "-", "-",
                   tps, delivered);
        fflush(stdout);
        pgcw_watcher_free(w);
        if (in) {
            int64_t until = mono_ns() + 20 * 1000000000LL;
            while (pgcw_uninstall_run(in, c, NULL) != PGCW_OK && mono_ns() < until)
                sleep_us(20000); /* the walsender releases the slot */
        }
        pgcw_install_free(in);
    }
    PQfinish(c);
    snprintf(sql, sizeof sql, "DROP DATABASE %s", db);
    run(admin, sql);
    PQfinish(admin);
    return 0;
}
