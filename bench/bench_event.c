/*
 * bench_event.c - what one pgcw_event_parse() costs (parse + pgcw_event_free) in a
 * tight loop, beside json-c's path alone (what every payload cost before the fast
 * path) and the fast path alone, for the payload shapes the watcher sees: the
 * watcher benchmark's, our trigger's as PostgreSQL 15 prints it, Python's, and a
 * --with-keys payload (which the fast path declines). No server, no threads.
 *
 * Usage: bench_event [rounds, default 7]. Each figure is the median over rounds of
 * ns per call, one round being ~0.2 s of calls.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pgcachewatch/pgcachewatch.h>

#include "pgcw_testhook.h"

#define ROUND_US 200000
#define MAX_ROUNDS 31

static const struct {
    const char *name;
    const char *payload;
} shapes[] = {
    {"bench_watcher",
     "{\"operation\":\"update\",\"table\":\"bench\",\"schema\":\"public\","
     "\"sent_at\":\"2026-11-21T21:58:51.123456Z\",\"run\":4242,\"seq\":1717,"
     "\"mono_us\":3602123456}"},
    {"trigger (pg15)", "{\"operation\" : \"insert\", \"table\" : \"orders\", "
                       "\"schema\" : \"public\", "
                       "\"sent_at\" : \"2026-11-21T21:58:51.123456+00:00\"}"},
    {"python", "{\"operation\":\"delete\",\"table\":\"users\","
               "\"sent_at\":\"2026-11-21T21:58:51.123456+00:00\"}"},
    {"with keys", "{\"operation\":\"update\",\"table\":\"orders\",\"schema\":\"public\","
                  "\"sent_at\":\"2026-11-21T21:58:51.123456+00:00\",\"pk\":[\"id\"],"
                  "\"keys\":[[1],[2],[3]]}"},
};

enum { PUBLIC, JSONC, FAST, N_WAYS };
static const char *const way_names[N_WAYS] = {"pgcw_event_parse", "json-c path",
                                              "fast path"};

/* One call; false if the way did not produce an event (the fast path declining). */
static bool once(int way, const char *p, size_t len)
{
    const pgcw_event *e = NULL;
    pgcw_event *built = NULL;
    const int64_t recv = INT64_C(1795298331223456);
    switch (way) {
    case PUBLIC:
        pgcw_event_parse(PGCW_FORMAT_TABLE_CHANGE, "bench", p, len, recv, &e);
        break;
    case JSONC:
        pgcw__event_parse_json("bench", p, len, recv, &built, NULL, 0);
        e = built;
        break;
    default:
        pgcw__event_parse_fast("bench", p, len, recv, &built);
        e = built;
        break;
    }
    bool ok = e != NULL;
    pgcw_event_free(e);
    return ok;
}

static double ns_per_call(int way, const char *p)
{
    size_t len = strlen(p);
    long calls = 0;
    int64_t t0 = pgcw__mono_us(), t;
    do {
        for (int i = 0; i < 1000; i++)
            once(way, p, len);
        calls += 1000;
        t = pgcw__mono_us();
    } while (t - t0 < ROUND_US);
    return (double)(t - t0) * 1000.0 / (double)calls;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 7;
    if (rounds < 1 || rounds > MAX_ROUNDS) {
        fprintf(stderr, "usage: bench_event [rounds 1..%d]\n", MAX_ROUNDS);
        return 2;
    }
    printf("ns per call (parse + free), median of %d rounds\n", rounds);
    printf("%-16s %18s %12s %10s  the fast path\n", "payload", way_names[PUBLIC],
           way_names[JSONC], way_names[FAST]);
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const char *p = shapes[s].payload;
        if (!once(JSONC, p, strlen(p))) {
            fprintf(stderr, "bench_event: json-c rejects the %s payload\n",
                    shapes[s].name);
            return 1;
        }
        /* The ways take turns within each round, first one rotating, so load
         * changes hit all of them alike. */
        double all[N_WAYS][MAX_ROUNDS], med[N_WAYS];
        for (int k = 0; k < rounds; k++)
            for (int i = 0; i < N_WAYS; i++) {
                int w = (i + k) % N_WAYS;
                all[w][k] = ns_per_call(w, p);
            }
        for (int w = 0; w < N_WAYS; w++) {
            qsort(all[w], (size_t)rounds, sizeof all[w][0], cmp_double);
            med[w] = all[w][rounds / 2];
        }
        bool taken = once(FAST, p, strlen(p));
        printf("%-16s %18.0f %12.0f %10.0f  %s\n", shapes[s].name, med[PUBLIC],
               med[JSONC], med[FAST], taken ? "accepts" : "declines");
    }
    return 0;
}
