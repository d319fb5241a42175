/*
 * bench_watcher.c - commit-to-delivery latency and events/s through the watcher,
 * beside a bare libpq LISTEN loop in the same run (the physical limit it is judged
 * against: p50 latency within 1.2x of the bare loop, throughput at least 0.8x).
 *
 * Receivers ("modes"):
 *   bare            poll(2) on PQsocket, PQconsumeInput, PQnotifies, copy the payload
 *   watcher-loop    the watcher driven from our poll loop (pgcw_watcher_fd/events/
 *                   timeout_ms/process) and pgcw_sub_try_get()
 *   watcher-thread  pgcw_watcher_start() and a blocking pgcw_sub_get()
 *   sender-alone    nobody listens: how fast the sender itself can go
 * Each listening mode gets a database of its own (created for the run, dropped at
 * the end), because PostgreSQL wakes every listener of a database on every NOTIFY
 * in it: with one database, the other modes' listeners would wake and compete for
 * the CPU on each event. One sender thread holds a connection to each database.
 *
 * Latency phase: one `SELECT pg_notify($1,$2)` per transaction, paced, whose payload
 * carries the sender's CLOCK_MONOTONIC time taken right before the statement; the
 * receiver reads the clock when the application has the event in hand. The modes
 * are interleaved event by event (each on its own thread; the sender rotates over
 * their databases), so that a shared, noisy machine hurts every mode alike.
 * Flood phase: batches of distinct payloads per transaction as fast as the sender
 * can go, in bursts that visit one mode after the other (order rotating), so again
 * load changes hit every mode alike; a mode's events/s is counted from first to last
 * delivery within each of its bursts.
 *
 * This file runs the rounds and the command line; the parts are headers beside it:
 * watcher_common.h (configuration, helpers, pinning), watcher_sender.h,
 * watcher_receiver.h (collector and receivers), watcher_report.h (table, JSON).
 *
 * It is a measurement: it exits 0 whether the targets are met or not, and non-zero
 * only when it could not measure (usage, connection, query or delivery failures).
 * It must never report a figure from a phase that lost, duplicated or misattributed
 * events without saying so.
 */
#define _GNU_SOURCE /* pthread_setaffinity_np, CPU_SET, RUSAGE_THREAD */

#include <getopt.h>

#include "watcher_common.h"
#include "watcher_receiver.h"
#include "watcher_report.h"
#include "watcher_sender.h"

/* --- one round -------------------------------------------------------------------- */

static long g_run; /* tags every phase's payloads so no event is counted twice */

static int check_clean(const collector *c, int mode, char *err, size_t errlen)
{
    if (c->dups || c->stray) {
        errf(err, errlen, "%s: %zu duplicate and %zu stray events", mode_names[mode],
             c->dups, c->stray);
        return -1;
    }
    return 0;
}

/* One receiver collecting on a thread of its own during the interleaved latency
 * phase. */
typedef struct lat_worker {
    receiver *r;
    collector c;
    const sender *s;
    pthread_t thread;
    bool running;
    int rc;
    int64_t cpu_us; /* this thread's CPU time */
} lat_worker;

static void *lat_worker_main(void *arg)
{
    lat_worker *lw = arg;
    int64_t cpu0 = thread_cpu_us(RUSAGE_THREAD);
    lw->rc = receiver_collect(lw->r, &lw->c, lw->s);
    lw->cpu_us = thread_cpu_us(RUSAGE_THREAD) - cpu0;
    return NULL;
}

/* All listening modes at once, event by event. */
static int latency_phase(const cfg *cf, sender *s, receiver *rx, int cpu_tx, sample *out,
                         char *err, size_t errlen)
{
    lat_worker lw[N_MODES];
    job j = {.cmd = CMD_LATENCY,
             .run = ++g_run,
             .n = cf->warmup + cf->events,
             .interval_us = cf->interval_us,
             .cpu = cpu_tx};
    memset(lw, 0, sizeof lw);
    int rc = 0;
    for (int m = 0; m < MODE_SENDER && rc == 0; m++) {
        if (!cf->modes[m])
            continue;
        lw[m].r = &rx[m];
        lw[m].s = s;
        j.modes[j.n_modes++] = m;
        if (collector_init(&lw[m].c, j.run, j.n, cf->warmup, true) != 0) {
            errf(err, errlen, "out of memory");
            rc = -1;
        }
    }
    int64_t cpu0 = thread_cpu_us(RUSAGE_SELF);
    /* The workers inherit this thread's CPU affinity. */
    for (int m = 0; m < MODE_SENDER && rc == 0; m++) {
        if (lw[m].r == NULL)
            continue;
        if (pthread_create(&lw[m].thread, NULL, lat_worker_main, &lw[m]) != 0) {
            errf(err, errlen, "pthread_create failed");
            rc = -1;
        } else {
            lw[m].running = true;
        }
    }
    if (rc == 0)
        sender_start(s, &j);
    else
        atomic_store(&s->failed, 1); /* makes started workers give up */
    for (int m = 0; m < MODE_SENDER; m++)
        if (lw[m].running)
            pthread_join(lw[m].thread, NULL);
    if (rc == 0 && sender_wait(s) != 0) {
        errf(err, errlen, "%s", s->err);
        rc = -1;
    }
    /* CPU the process spent beside the sender and the workers: the only other thread
     * that runs meanwhile is watcher-thread's own (this one waits in join). */
    int64_t rest = thread_cpu_us(RUSAGE_SELF) - cpu0 - (rc == 0 ? s->cpu_us : 0);
    for (int m = 0; m < MODE_SENDER; m++)
        rest -= lw[m].cpu_us;
    for (int m = 0; m < MODE_SENDER; m++) {
        lat_worker *w = &lw[m];
        if (w->r == NULL)
            continue;
        if (rc == 0 && w->rc != 0) {
            errf(err, errlen, "%s", w->r->err);
            rc = -1;
        }
        if (rc == 0)
            rc = check_clean(&w->c, m, err, errlen);
        if (rc == 0) {
            sample *o = &out[m];
            collector *c = &w->c;
            qsort(c->lat, c->n_lat, sizeof *c->lat, cmp_i64);
            o->n_lat = c->n_lat;
            if (c->n_lat > 0) {
                o->p50 = percentile(c->lat, c->n_lat, 0.50);
                o->p99 = percentile(c->lat, c->n_lat, 0.99);
                o->max = c->lat[c->n_lat - 1];
            }
            if (c->n_lib > 0) {
                qsort(c->lib, c->n_lib, sizeof *c->lib, cmp_i64);
                o->lib_p50 = percentile(c->lib, c->n_lib, 0.50);
                o->lib_p99 = percentile(c->lib, c->n_lib, 0.99);
            }
            int64_t cpu = w->cpu_us + (m == MODE_WTHREAD && rest > 0 ? rest : 0);
            o->lat_cpu_per_event = c->got ? (double)cpu / (double)c->got : 0.0;
            o->lost += c->lost;
            o->gaps += c->gaps;
        }
        collector_free(&w->c);
    }
    return rc;
}

/* Flood sums over a round's bursts, per mode. */
typedef struct flood_acc {
    uint64_t intervals; /* delivered events minus one, per burst */
    int64_t rx_us;      /* first to last delivery, per burst */
    uint64_t sent;
    int64_t tx_us;
    uint64_t got;
    int64_t cpu_us;
} flood_acc;

/* One burst of one mode's flood, collected on this thread. */
static int flood_burst(sender *s, receiver *r, int mode, size_t n, int batch, int cpu_tx,
                       flood_acc *acc, sample *out, char *err, size_t errlen)
{
    collector c;
    job j = {.cmd = CMD_FLOOD,
             .run = ++g_run,
             .n = n,
             .batch = batch,
             .cpu = cpu_tx,
             .mode = mode};
    /* Nobody listens in sender-alone: expect nothing. */
    if (collector_init(&c, j.run, mode == MODE_SENDER ? 0 : j.n, 0, false) != 0) {
        errf(err, errlen, "out of memory");
        return -1;
    }
    int64_t cpu0 = thread_cpu_us(RUSAGE_SELF);
    sender_start(s, &j);
    int rrc = receiver_collect(r, &c, s);
    int src = sender_wait(s);
    /* Whole-process CPU minus the sender thread's: the receiving side, including the
     * watcher's own thread when it has one. */
    int64_t rx_cpu = thread_cpu_us(RUSAGE_SELF) - cpu0 - s->cpu_us;
    int rc = 0;
    if (src != 0) {
        errf(err, errlen, "%s", s->err);
        rc = -1;
    } else if (rrc != 0) {
        errf(err, errlen, "%s", r->err);
        rc = -1;
    } else {
        rc = check_clean(&c, mode, err, errlen);
    }
    if (rc == 0) {
        acc->sent += j.n;
        acc->tx_us += s->elapsed_us;
        acc->got += c.got;
        acc->cpu_us += rx_cpu;
        if (c.got > 1) {
            acc->intervals += c.got - 1;
            acc->rx_us += c.last_us - c.first_us;
        }
        out->lost += c.lost;
        out->gaps += c.gaps;
    }
    collector_free(&c);
    return rc;
}

/* Every mode's flood, in bursts interleaved over the modes (order rotating with the
 * burst and the round), so that load changes on the machine hit every mode alike. */
static int flood_phase(const cfg *cf, sender *s, receiver *rx, int round, int cpu_tx,
                       sample *out, char *err, size_t errlen)
{
    flood_acc acc[N_MODES];
    int order[N_MODES], n = 0;
    memset(acc, 0, sizeof acc);
    for (int m = 0; m < N_MODES; m++)
        if (cf->modes[m])
            order[n++] = m;
    int rc = 0;
    size_t bursts = (cf->flood + cf->burst - 1) / cf->burst;
    for (size_t b = 0; b < bursts && rc == 0; b++) {
        size_t cnt = b + 1 < bursts ? cf->burst : cf->flood - b * cf->burst;
        for (int k = 0; k < n && rc == 0; k++) {
            int m = order[((size_t)round + b + (size_t)k) % (size_t)n];
            rc = flood_burst(s, &rx[m], m, cnt, cf->batch, cpu_tx, &acc[m], &out[m], err,
                             errlen);
        }
    }
    for (int m = 0; m < N_MODES && rc == 0; m++) {
        flood_acc *a = &acc[m];
        sample *o = &out[m];
        o->tx_rate = a->tx_us > 0 ? (double)a->sent * 1e6 / (double)a->tx_us : 0.0;
        o->rx_rate = a->rx_us > 0 ? (double)a->intervals * 1e6 / (double)a->rx_us : 0.0;
        o->flood_cpu_per_event = a->got ? (double)a->cpu_us / (double)a->got : 0.0;
    }
    return rc;
}

/* One round at one pinning: the interleaved latency phase, then the interleaved
 * flood bursts. */
static int run_round(const cfg *cf, sender *s, int round, int pin, sample *out, char *err,
                     size_t errlen)
{
    receiver rx[N_MODES];
    int cpu_rx = pin == PIN_ON ? g_cpu_rx : -1, cpu_tx = pin == PIN_ON ? g_cpu_tx : -1;
    memset(rx, 0, sizeof rx);
    for (int m = 0; m < N_MODES; m++)
        memset(&out[m], 0, sizeof out[m]);
    if (pin_self(cpu_rx) != 0) {
        errf(err, errlen, "cannot pin the receiver to CPU %d", cpu_rx);
        return -1;
    }
    int rc = 0;
    bool listening = false;
    /* Opened on this (pinned) thread, so watcher-thread's own thread inherits it. */
    for (int m = 0; m < N_MODES && rc == 0; m++) {
        if (!cf->modes[m])
            continue;
        rc = receiver_open(&rx[m], cf, m, s->conninfo[m]);
        if (rc != 0)
            errf(err, errlen, "%s", rx[m].err);
        listening |= m != MODE_SENDER;
    }
    if (rc == 0 && listening)
        rc = latency_phase(cf, s, rx, cpu_tx, out, err, errlen);
    if (rc == 0)
        rc = flood_phase(cf, s, rx, round, cpu_tx, out, err, errlen);
    for (int m = 0; m < N_MODES; m++)
        receiver_close(&rx[m]);
    return rc;
}

/* --- command line ----------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(
        f, "usage: bench_watcher [options]\n"
           "  --dsn DSN          libpq connection string (default $PGDSN, else libpq's "
           "defaults)\n"
           "  --rounds N         interleaved rounds (default 7)\n"
           "  --events N         measured latency events per mode and round (default "
           "2000)\n"
           "  --warmup N         leading latency events not measured (default 200)\n"
           "  --interval-us N    latency pacing: one notification per N us (default "
           "500)\n"
           "  --flood N          flood events per mode and round (default 50000)\n"
           "  --burst N          ... sent in bursts of N, modes interleaved (default "
           "5000)\n"
           "  --batch N          notifications per flood transaction (default 20)\n"
           "  --pin off|on|both  pin receiver and sender to separate CPUs (default "
           "both)\n"
           "  --modes LIST       comma-separated subset of bare,watcher-loop,"
           "watcher-thread,sender-alone\n"
           "  --queue N          watcher subscriber queue capacity (default: library's)\n"
           "  --idle-timeout-ms N  give up when nothing arrives for N ms (default "
           "10000)\n"
           "  --json             machine-readable output\n"
           "  -v, --verbose      per-round progress on stderr\n");
}

static bool parse_size(const char *s, long long min, long long max, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *s == '\0' || *end != '\0' || v < min || v > max)
        return false;
    *out = v;
    return true;
}

static int parse_modes(const char *list, cfg *c)
{
    memset(c->modes, 0, sizeof c->modes);
    char *copy = strdup(list), *save = NULL;
    if (copy == NULL)
        return -1;
    int rc = 0;
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        int m = 0;
        while (m < N_MODES && strcmp(t, mode_names[m]) != 0)
            m++;
        if (m == N_MODES) {
            rc = -1;
            break;
        }
        c->modes[m] = true;
    }
    free(copy);
    return rc;
}

static int parse_args(int argc, char **argv, cfg *c)
{
    static const struct option longopts[] = {
        {"dsn", required_argument, NULL, 'd'},
        {"rounds", required_argument, NULL, 'r'},
        {"events", required_argument, NULL, 'e'},
        {"warmup", required_argument, NULL, 'w'},
        {"interval-us", required_argument, NULL, 'i'},
        {"flood", required_argument, NULL, 'f'},
        {"batch", required_argument, NULL, 'b'},
        {"burst", required_argument, NULL, 'B'},
        {"pin", required_argument, NULL, 'p'},
        {"modes", required_argument, NULL, 'm'},
        {"queue", required_argument, NULL, 'q'},
        {"idle-timeout-ms", required_argument, NULL, 't'},
        {"json", no_argument, NULL, 'j'},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    memset(c, 0, sizeof *c);
    c->dsn = getenv("PGDSN") ? getenv("PGDSN") : "";
    c->rounds = 7;
    c->events = 2000;
    c->warmup = 200;
    c->interval_us = 500;
    c->flood = 50000;
    c->batch = 20;
    c->burst = 5000;
    c->pins[PIN_OFF] = c->pins[PIN_ON] = true;
    for (int m = 0; m < N_MODES; m++)
        c->modes[m] = true;
    c->idle_timeout_us = 10000 * 1000LL;
    int opt;
    long long v;
    while ((opt = getopt_long(argc, argv, "vh", longopts, NULL)) != -1) {
        bool ok = true;
        switch (opt) {
        case 'd':
            c->dsn = optarg;
            break;
        case 'r':
            ok = parse_size(optarg, 1, MAX_ROUNDS, &v) && ((c->rounds = (int)v), true);
            break;
        case 'e':
            ok = parse_size(optarg, 1, 10000000, &v) && ((c->events = (size_t)v), true);
            break;
        case 'w':
            ok = parse_size(optarg, 0, 10000000, &v) && ((c->warmup = (size_t)v), true);
            break;
        case 'i':
            ok = parse_size(optarg, 0, 10000000, &v) && ((c->interval_us = v), true);
            break;
        case 'f':
            ok = parse_size(optarg, 2, 100000000, &v) && ((c->flood = (size_t)v), true);
            break;
        case 'b':
            ok = parse_size(optarg, 1, 10000, &v) && ((c->batch = (int)v), true);
            break;
        case 'B':
            ok = parse_size(optarg, 2, 100000000, &v) && ((c->burst = (size_t)v), true);
            break;
        case 'p':
            c->pins[PIN_OFF] = !strcmp(optarg, "off") || !strcmp(optarg, "both");
            c->pins[PIN_ON] = !strcmp(optarg, "on") || !strcmp(optarg, "both");
            ok = c->pins[PIN_OFF] || c->pins[PIN_ON];
            break;
        case 'm':
            ok = parse_modes(optarg, c) == 0;
            break;
        case 'q':
            ok = parse_size(optarg, 0, 100000000, &v) && ((c->queue = (size_t)v), true);
            break;
        case 't':
            ok = parse_size(optarg, 1, 3600000, &v) &&
                 ((c->idle_timeout_us = v * 1000), true);
            break;
        case 'j':
            c->json = true;
            break;
        case 'v':
            c->verbose = true;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            ok = false;
        }
        if (!ok) {
            if (opt != '?')
                fprintf(stderr, "bench_watcher: bad value for option: %s\n",
                        optarg ? optarg : "");
            usage(stderr);
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "bench_watcher: unexpected argument: %s\n", argv[optind]);
        usage(stderr);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    static cfg cf;
    if (parse_args(argc, argv, &cf) != 0)
        return 2;
    if (pin_init() != 0) {
        fprintf(stderr, "bench_watcher: sched_getaffinity: %s\n", strerror(errno));
        return 1;
    }
    if (cf.pins[PIN_ON] && g_cpu_tx < 0) {
        fprintf(stderr, "bench_watcher: pinning needs two CPUs (use --pin off)\n");
        return 1;
    }

    /* Indexed [pin][mode][round]; static keeps it off the stack. */
    static sample samples[N_PINS][N_MODES][MAX_ROUNDS];
    static summary sum[N_PINS][N_MODES];
    char err[768];
    sender s;
    if (sender_open(&s, &cf, err, sizeof err) != 0) {
        fprintf(stderr, "bench_watcher: %s\n", err);
        return 1;
    }
    int rc = 0;
    for (int round = 0; round < cf.rounds && rc == 0; round++) {
        for (int p = 0; p < N_PINS && rc == 0; p++) {
            if (!cf.pins[p])
                continue;
            sample row[N_MODES];
            rc = run_round(&cf, &s, round, p, row, err, sizeof err);
            for (int m = 0; m < N_MODES && rc == 0; m++) {
                if (!cf.modes[m])
                    continue;
                samples[p][m][round] = row[m];
                if (cf.verbose)
                    fprintf(stderr,
                            "round %d pin %-3s %-15s p50 %6" PRId64 " p99 %6" PRId64
                            " max %7" PRId64 " us  %8.0f ev/s  sender %8.0f ev/s\n",
                            round + 1, pin_names[p], mode_names[m], row[m].p50,
                            row[m].p99, row[m].max, row[m].rx_rate, row[m].tx_rate);
            }
        }
    }
    pin_self(-1);
    sender_close(&s);
    if (rc != 0) {
        fprintf(stderr, "bench_watcher: %s\n", err);
        return 1;
    }
    summarize(&cf, samples, sum);
    if (cf.json)
        print_json(&cf, samples, sum);
    else
        print_table(&cf, sum);
    return 0;
}
