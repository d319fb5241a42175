/*
 * bench_install_keys.c - what the installed triggers cost a large statement:
 * the same N-row UPDATE on a table without triggers, with the table-level trigger
 * and with the primary-key triggers (transition tables, keys split under the
 * payload limit). Prints min/median/max milliseconds per statement (commit
 * included) and the notifications each variant sent.
 *
 *   bench_install_keys [DSN] [ROWS=10000] [REPEATS=11]
 *
 * DSN defaults to $PGCW_BENCH_DSN, then libpq's PG* environment. Works in a
 * schema of its own and drops it at the end; never touches anything else.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>

#include <pgcachewatch/pgcachewatch.h>

#include "pgcw_testhook.h"

static int run(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    int ok =
        PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
    if (!ok)
        fprintf(stderr, "bench_install_keys: %s\n  in: %.200s\n", PQresultErrorMessage(r),
                sql);
    PQclear(r);
    return ok;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    const char *dsn = argc > 1 ? argv[1] : getenv("PGCW_BENCH_DSN");
    long rows = argc > 2 ? atol(argv[2]) : 10000;
    int repeats = argc > 3 ? atoi(argv[3]) : 11;
    if (rows <= 0 || repeats <= 0 || repeats > 1000) {
        fprintf(stderr, "usage: bench_install_keys [DSN] [ROWS] [REPEATS]\n");
        return 2;
    }
    PGconn *c = PQconnectdb(dsn ? dsn : "");
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "bench_install_keys: %s", PQerrorMessage(c));
        return 1;
    }
    char schema[64], channel[64], sql[512];
    snprintf(schema, sizeof schema, "pgcw_bench_keys_%ld", (long)getpid());
    snprintf(channel, sizeof channel, "pgcw_bench_keys_%ld", (long)getpid());
    /* Functions go to the first schema of search_path: ours, dropped at the end. */
    snprintf(sql, sizeof sql,
             "SET client_min_messages = warning; CREATE SCHEMA %s; SET search_path = %s",
             schema, schema);
    int ok = run(c, sql);
    const char *tables[] = {"b_none", "b_table", "b_keys"};
    for (int t = 0; ok && t < 3; t++) {
        snprintf(sql, sizeof sql,
                 "CREATE TABLE %s (id int PRIMARY KEY, v int);"
                 "INSERT INTO %s SELECT g, 0 FROM generate_series(1, %ld) g;"
                 "VACUUM ANALYZE %s",
                 tables[t], tables[t], rows, tables[t]);
        /* VACUUM refuses to run in the implicit transaction of a multi-statement
         * string, so split it off. */
        char *vac = strstr(sql, "VACUUM");
        char vacuum[128];
        snprintf(vacuum, sizeof vacuum, "%s", vac);
        vac[0] = '\0';
        ok = run(c, sql) && run(c, vacuum);
    }
    pgcw_install_opts tl = {.channel = channel};
    pgcw_install_opts keys = {.channel = channel, .with_keys = true};
    pgcw_install *in_tl = NULL, *in_keys = NULL;
    if (ok && (pgcw_install_new(&tl, &in_tl) != PGCW_OK ||
               pgcw_install_new(&keys, &in_keys) != PGCW_OK)) {
        fprintf(stderr, "bench_install_keys: install: out of memory\n");
        ok = 0;
    }
    if (ok && pgcw_install_run(in_tl, c, &tables[1], 1, NULL) != PGCW_OK) {
        fprintf(stderr, "bench_install_keys: install: %s\n", pgcw_install_errmsg(in_tl));
        ok = 0;
    }
    if (ok && pgcw_install_run(in_keys, c, &tables[2], 1, NULL) != PGCW_OK) {
        fprintf(stderr, "bench_install_keys: install: %s\n",
                pgcw_install_errmsg(in_keys));
        ok = 0;
    }
    pgcw_install_free(in_tl);
    pgcw_install_free(in_keys);
    snprintf(sql, sizeof sql, "LISTEN %s", channel);
    ok = ok && run(c, sql);

    printf("UPDATE of %ld rows, %d runs each, ms per statement (commit included)\n", rows,
           repeats);
    /* Interleaved, so that a noisy neighbour hurts every variant alike. */
    double *ms = calloc((size_t)repeats * 3, sizeof *ms);
    long notes[3] = {0};
    size_t largest[3] = {0};
    for (int i = 0; ok && ms && i < repeats; i++) {
        for (int t = 0; ok && t < 3; t++) {
            snprintf(sql, sizeof sql, "UPDATE %s SET v = v + 1", tables[t]);
            int64_t t0 = pgcw__mono_us();
            ok = run(c, sql);
            ms[t * repeats + i] = (double)(pgcw__mono_us() - t0) / 1000.0;
            /* Our own notifications arrive with the command's response. */
            PGnotify *n;
            while ((n = PQnotifies(c)) != NULL) {
                notes[t]++;
                if (strlen(n->extra) > largest[t])
                    largest[t] = strlen(n->extra);
                PQfreemem(n);
            }
        }
    }
    for (int t = 0; ok && ms && t < 3; t++) {
        double *m = ms + t * repeats;
        qsort(m, (size_t)repeats, sizeof *m, cmp_double);
        printf("  %-8s min %8.2f  median %8.2f  max %8.2f   notifications/stmt %5.1f  "
               "largest payload %zu bytes\n",
               tables[t], m[0], m[repeats / 2], m[repeats - 1],
               (double)notes[t] / repeats, largest[t]);
    }
    free(ms);
    snprintf(sql, sizeof sql, "RESET search_path; DROP SCHEMA %s CASCADE", schema);
    run(c, sql);
    PQfinish(c);
    return ok ? 0 : 1;
}
