/*
 * bench_changelog.c - what the change log (install --source poll) costs writers:
 * single-row INSERT throughput (one autocommit statement per transaction) from C
 * client threads into four tables of one run, interleaved round by round so that
 * the machine's drift hits every variant alike:
 *
 *   none     no trigger
 *   notify   the primary-key triggers, pg_notify() only (install --with-keys)
 *   log      the same triggers with a change log: one row, then pg_notify()
 *            (install --with-keys --source poll)
 *   log-only the change log with pgcachewatch.notify = off in the writing sessions
 *
 * Prints the median and the spread (min..max) of commits per second per variant
 * over the rounds. Nothing polls or prunes meanwhile: the change log only grows.
 *
 *   bench_changelog [DSN] [CLIENTS=4] [SECONDS_PER_ROUND=2] [ROUNDS=5]
 *
 * DSN defaults to $PGCW_BENCH_DSN, then libpq's PG* environment. Works in a
 * schema of its own and drops it at the end; never touches anything else.
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

#define N_VARIANTS 4
#define MAX_CLIENTS 64
#define MAX_ROUNDS 100

static const char *const variant_names[N_VARIANTS] = {"none", "notify", "log",
                                                      "log-only"};
static const char *const variant_tables[N_VARIANTS] = {"b_none", "b_notify", "b_log",
                                                       "b_log"};

static char schema[64];
static const char *dsn;

static int run(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    int ok =
        PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
    if (!ok)
        fprintf(stderr, "bench_changelog: %s  in: %.200s\n", PQresultErrorMessage(r),
                sql);
    PQclear(r);
    return ok;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

typedef struct client {
    pthread_t thread;
    PGconn *conn;
    int variant;
    double until;
    long commits;
    int failed;
} client;

static void *client_main(void *arg)
{
    client *cl = arg;
    char sql[128];
    snprintf(sql, sizeof sql, "INSERT INTO %s (v) VALUES (1)",
             variant_tables[cl->variant]);
    cl->commits = 0;
    while (now_s() < cl->until) {
        if (!run(cl->conn, sql)) {
            cl->failed = 1;
            break;
        }
        cl->commits++;
    }
    return NULL;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int install(PGconn *c, const char *table, const char *channel,
                   pgcw_watch_source source)
{
    pgcw_install_opts o = {.channel = channel, .with_keys = true, .source = source};
    pgcw_install *in = NULL;
    if (pgcw_install_new(&o, &in) != PGCW_OK)
        return 0;
    const char *tables[] = {table};
    pgcw_status st = pgcw_install_run(in, c, tables, 1, NULL);
    if (st != PGCW_OK)
        fprintf(stderr, "bench_changelog: install: %s\n", pgcw_install_errmsg(in));
    pgcw_install_free(in);
    return st == PGCW_OK;
}

int main(int argc, char **argv)
{
    dsn = argc > 1 ? argv[1] : getenv("PGCW_BENCH_DSN");
    int clients = argc > 2 ? atoi(argv[2]) : 4;
    double seconds = argc > 3 ? atof(argv[3]) : 2.0;
    int rounds = argc > 4 ? atoi(argv[4]) : 5;
    if (clients <= 0 || clients > MAX_CLIENTS || seconds <= 0 || rounds <= 0 ||
        rounds > MAX_ROUNDS) {
        fprintf(stderr, "usage: bench_changelog [DSN] [CLIENTS] [SECONDS] [ROUNDS]\n");
        return 2;
    }
    PGconn *c = PQconnectdb(dsn ? dsn : "");
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "bench_changelog: %s", PQerrorMessage(c));
        return 1;
    }
    char sql[512];
    snprintf(schema, sizeof schema, "pgcw_bench_log_%ld", (long)getpid());
    /* Functions and the change log go to the first schema of search_path: ours. */
    snprintf(sql, sizeof sql,
             "SET client_min_messages = warning; CREATE SCHEMA %s; SET search_path = %s",
             schema, schema);
    int ok = run(c, sql);
    for (int t = 0; ok && t < 3; t++) {
        snprintf(sql, sizeof sql,
                 "CREATE TABLE %s (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
                 "v int)",
                 variant_tables[t]);
        ok = run(c, sql);
    }
    ok = ok && install(c, "b_notify", "bench_notify", PGCW_WATCH_LISTEN) &&
         install(c, "b_log", "bench_log", PGCW_WATCH_POLL);
    char fsync[16] = "?", sync_commit[16] = "?";
    PGresult *r = PQexec(c, "SELECT current_setting('fsync'), "
                            "current_setting('synchronous_commit')");
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
        snprintf(fsync, sizeof fsync, "%s", PQgetvalue(r, 0, 0));
        snprintf(sync_commit, sizeof sync_commit, "%s", PQgetvalue(r, 0, 1));
    }
    PQclear(r);

    static client cl[MAX_CLIENTS];
    static double tps[N_VARIANTS][MAX_ROUNDS];
    for (int i = 0; ok && i < clients; i++) {
        cl[i].conn = PQconnectdb(dsn ? dsn : "");
        snprintf(sql, sizeof sql, "SET search_path = %s", schema);
        ok = PQstatus(cl[i].conn) == CONNECTION_OK && run(cl[i].conn, sql);
    }
    for (int round = 0; ok && round < rounds; round++) {
        for (int v = 0; ok && v < N_VARIANTS; v++) {
            const char *notify =
                v == 3 ? "SET pgcachewatch.notify = off" : "RESET pgcachewatch.notify";
            for (int i = 0; ok && i < clients; i++)
                ok = run(cl[i].conn, notify);
            double t0 = now_s();
            for (int i = 0; ok && i < clients; i++) {
                cl[i].variant = v;
                cl[i].until = t0 + seconds;
                cl[i].failed = 0;
                pthread_create(&cl[i].thread, NULL, client_main, &cl[i]);
            }
            long commits = 0;
            for (int i = 0; ok && i < clients; i++) {
                pthread_join(cl[i].thread, NULL);
                commits += cl[i].commits;
                ok = !cl[i].failed;
            }
            tps[v][round] = (double)commits / (now_s() - t0);
        }
    }
    if (ok) {
        printf("single-row INSERT commits/s, %d clients, %d rounds of %.1f s "
               "(fsync=%s, synchronous_commit=%s)\n",
               clients, rounds, seconds, fsync, sync_commit);
        double base = 0;
        for (int v = 0; v < N_VARIANTS; v++) {
            qsort(tps[v], (size_t)rounds, sizeof tps[v][0], cmp_double);
            double med = tps[v][rounds / 2];
            if (v == 1)
                base = med;
            printf("  %-9s median %8.0f  (%.0f..%.0f)", variant_names[v], med, tps[v][0],
                   tps[v][rounds - 1]);
            if (v >= 2 && base > 0)
                printf("  %+.1f%% vs notify", (med / base - 1.0) * 100.0);
            putchar('\n');
        }
    }
    for (int i = 0; i < clients; i++)
        PQfinish(cl[i].conn);
    snprintf(sql, sizeof sql, "SET client_min_messages = warning; DROP SCHEMA %s CASCADE",
             schema);
    run(c, sql);
    PQfinish(c);
    return ok ? 0 : 1;
}
