/*
 * watcher_common.h - what every part of bench_watcher shares: the configuration,
 * the modes, one round's figures, clocks, small parsing and statistics helpers and
 * CPU pinning. Bench-only, included once by bench_watcher.c; never part of the
 * library and never used to decide anything the library does. The includer defines
 * _GNU_SOURCE (affinity, RUSAGE_THREAD) before any system header.
 */
#ifndef PGCW_BENCH_WATCHER_COMMON_H
#define PGCW_BENCH_WATCHER_COMMON_H

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#define CHANNEL "pgcw_bench"
#define POLL_SLICE_MS 100 /* how often waiting loops look at deadlines */
#define P50_TARGET 1.2    /* watcher p50 / bare p50 must be at most this */
#define TPUT_TARGET 0.8   /* watcher events/s / bare events/s at least this */
#define MAX_ROUNDS 1000

enum { MODE_BARE, MODE_WLOOP, MODE_WTHREAD, MODE_SENDER, N_MODES };
static const char *const mode_names[N_MODES] = {"bare", "watcher-loop", "watcher-thread",
                                                "sender-alone"};

enum { PIN_OFF, PIN_ON, N_PINS };
static const char *const pin_names[N_PINS] = {"off", "on"};

typedef struct cfg {
    const char *dsn;
    int rounds;
    size_t events;       /* measured latency samples per phase */
    size_t warmup;       /* leading latency events per phase, not measured */
    int64_t interval_us; /* latency phase pacing */
    size_t flood;        /* flood events per mode and round */
    size_t burst;        /* ... sent in bursts of this many, modes interleaved */
    int batch;           /* notifications per flood transaction */
    bool pins[N_PINS];
    bool modes[N_MODES];
    size_t queue; /* watcher subscriber queue capacity, 0: library default */
    int64_t idle_timeout_us;
    bool json;
    bool verbose;
} cfg;

/* One mode's figures from one round. */
typedef struct sample {
    /* latency phase, microseconds */
    size_t n_lat;
    int64_t p50, p99, max;
    int64_t lib_p50, lib_p99; /* of that, inside the watcher (watcher modes) */
    double lat_cpu_per_event; /* receiver-side CPU us per delivered event */
    /* flood phase */
    double rx_rate; /* events/s, first to last delivery */
    double tx_rate; /* events/s the sender committed */
    double flood_cpu_per_event;
    /* honesty */
    size_t dups, stray;
    uint64_t lost, gaps;
} sample;

/* --- small helpers --------------------------------------------------------------- */

static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* The watcher stamps events with CLOCK_REALTIME (received_at_us). */
static int64_t real_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t thread_cpu_us(int who)
{
    struct rusage ru;
    if (getrusage(who, &ru) != 0)
        return 0;
    return ((int64_t)ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000 +
           ru.ru_utime.tv_usec + ru.ru_stime.tv_usec;
}

static void sleep_until_us(int64_t t_us)
{
    struct timespec ts = {.tv_sec = t_us / 1000000, .tv_nsec = (t_us % 1000000) * 1000};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
    }
}

/* ISO 8601 UTC with microseconds, as our triggers' sent_at. */
static void format_now_utc(char *buf, size_t len)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, len - n, ".%06ldZ", ts.tv_nsec / 1000);
}

static void errf(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void errf(char *buf, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, len, fmt, ap);
    va_end(ap);
    size_t n = strlen(buf); /* libpq messages end in a newline */
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
        buf[--n] = '\0';
}

/* Finds `"key":<integer>` in a payload we produced ourselves. */
static bool payload_int(const char *payload, const char *key, long long *out)
{
    const char *p = strstr(payload, key);
    if (p == NULL)
        return false;
    char *end;
    errno = 0;
    *out = strtoll(p + strlen(key), &end, 10);
    return errno == 0 && end != p + strlen(key);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile of a sorted array. */
static int64_t percentile(const int64_t *sorted, size_t n, double p)
{
    size_t rank = (size_t)(p * (double)n + 0.999999);
    if (rank < 1)
        rank = 1;
    if (rank > n)
        rank = n;
    return sorted[rank - 1];
}

/* --- CPU pinning ------------------------------------------------------------------ */

static cpu_set_t g_all_cpus; /* the mask we started with: "unpinned" */
static int g_cpu_rx = -1, g_cpu_tx = -1;

static int pin_init(void)
{
    if (sched_getaffinity(0, sizeof g_all_cpus, &g_all_cpus) != 0)
        return -1;
    for (int c = 0; c < CPU_SETSIZE; c++) {
        if (!CPU_ISSET(c, &g_all_cpus))
            continue;
        if (g_cpu_rx < 0)
            g_cpu_rx = c;
        else if (g_cpu_tx < 0)
            g_cpu_tx = c;
    }
    return 0;
}

/* Pins the calling thread to one CPU, or back to the starting mask (cpu < 0). Threads
 * created afterwards (the watcher's own thread) inherit it. */
static int pin_self(int cpu)
{
    cpu_set_t set = g_all_cpus;
    if (cpu >= 0) {
        CPU_ZERO(&set);
        CPU_SET(cpu, &set);
    }
    return pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

#endif
