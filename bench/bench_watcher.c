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
 * It is a measurement: it exits 0 whether the targets are met or not, and non-zero
 * only when it could not measure (usage, connection, query or delivery failures).
 * It must never report a figure from a phase that lost, duplicated or misattributed
 * events without saying so.
 */
#define _GNU_SOURCE /* pthread_setaffinity_np, CPU_SET, RUSAGE_THREAD */

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>
#include <libpq-fe.h>

#include <pgcachewatch/pgcachewatch.h>

#include "util.h" /* pgcw__buf */

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

/* --- small helpers --------------------------------------------------------------- */

static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
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

/* --- the sender ------------------------------------------------------------------- */

enum { CMD_IDLE, CMD_LATENCY, CMD_FLOOD, CMD_QUIT };

typedef struct job {
    int cmd;
    long run;
    size_t n; /* events per mode */
    int64_t interval_us;
    int batch;
    int cpu;            /* -1: unpinned */
    int modes[N_MODES]; /* latency: the databases to rotate over */
    int n_modes;
    int mode; /* flood: the database to notify in */
} job;

typedef struct sender {
    PGconn *admin;          /* creates and drops the databases */
    PGconn *conns[N_MODES]; /* one per mode's database; sender-alone: the DSN's */
    char dbnames[N_MODES][64];
    char *conninfo[N_MODES]; /* what receivers of that mode connect with */
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int cmd; /* guarded by mu; back to CMD_IDLE when the job is done */
    job job; /* guarded by mu */
    /* Results: written by the sender thread before it sets cmd = CMD_IDLE. */
    int rc;
    int64_t elapsed_us;
    int64_t cpu_us;
    char err[512];
    atomic_int failed; /* lets a receiver stop waiting for events that never come */
    bool started;
} sender;

static int send_latency(sender *s, const job *j)
{
    char payload[256], sent_at[40], chan[] = CHANNEL;
    const char *params[2] = {chan, payload};
    int64_t next = mono_us();
    size_t k = (size_t)j->n_modes;
    for (size_t i = 0; i < j->n * k; i++) {
        /* Event seq of every mode, in an order that rotates each cycle so that no
         * mode always comes right after another. */
        size_t seq = i / k;
        int m = j->modes[(i + seq) % k];
        sleep_until_us(next);
        format_now_utc(sent_at, sizeof sent_at);
        int64_t t = mono_us();
        snprintf(payload, sizeof payload,
                 "{\"operation\":\"update\",\"table\":\"bench\",\"schema\":\"public\","
                 "\"sent_at\":\"%s\",\"run\":%ld,\"seq\":%zu,\"mono_us\":%" PRId64 "}",
                 sent_at, j->run, seq, t);
        PGresult *res = PQexecPrepared(s->conns[m], "lat", 2, params, NULL, NULL, 0);
        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
            errf(s->err, sizeof s->err, "sender: %s", PQerrorMessage(s->conns[m]));
            PQclear(res);
            return -1;
        }
        PQclear(res);
        /* Never catch up in a burst: the point is an empty queue at every send. */
        next += j->interval_us;
        int64_t now = mono_us();
        if (next < now)
            next = now;
    }
    return 0;
}

static int send_flood(sender *s, const job *j)
{
    char prefix[256], sent_at[40], base[24], count[24], chan[] = CHANNEL;
    const char *params[4] = {chan, prefix, base, count};
    for (size_t first = 0; first < j->n; first += (size_t)j->batch) {
        size_t cnt = j->n - first < (size_t)j->batch ? j->n - first : (size_t)j->batch;
        format_now_utc(sent_at, sizeof sent_at);
        snprintf(prefix, sizeof prefix,
                 "{\"operation\":\"insert\",\"table\":\"bench\",\"schema\":\"public\","
                 "\"sent_at\":\"%s\",\"run\":%ld,\"seq\":",
                 sent_at, j->run);
        snprintf(base, sizeof base, "%zu", first);
        snprintf(count, sizeof count, "%zu", cnt);
        PGresult *res =
            PQexecPrepared(s->conns[j->mode], "flood", 4, params, NULL, NULL, 0);
        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
            errf(s->err, sizeof s->err, "sender: %s", PQerrorMessage(s->conns[j->mode]));
            PQclear(res);
            return -1;
        }
        PQclear(res);
    }
    return 0;
}

static void *sender_main(void *arg)
{
    sender *s = arg;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (s->cmd == CMD_IDLE)
            pthread_cond_wait(&s->cv, &s->mu);
        if (s->cmd == CMD_QUIT)
            break;
        job j = s->job;
        pthread_mutex_unlock(&s->mu);

        s->err[0] = '\0';
        int rc = pin_self(j.cpu) == 0 ? 0 : -1;
        if (rc != 0)
            errf(s->err, sizeof s->err, "sender: cannot pin to CPU %d", j.cpu);
        int64_t cpu0 = thread_cpu_us(RUSAGE_THREAD), t0 = mono_us();
        if (rc == 0)
            rc = j.cmd == CMD_LATENCY ? send_latency(s, &j) : send_flood(s, &j);
        s->elapsed_us = mono_us() - t0;
        s->cpu_us = thread_cpu_us(RUSAGE_THREAD) - cpu0;
        s->rc = rc;
        if (rc != 0)
            atomic_store(&s->failed, 1);

        pthread_mutex_lock(&s->mu);
        s->cmd = CMD_IDLE;
        pthread_cond_broadcast(&s->cv);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* The DSN (key=value or URI) as key=value with another dbname, or NULL on error.
 * Owned: free(). */
static char *conninfo_with_db(const char *dsn, const char *dbname, char *err,
                              size_t errlen)
{
    char *perr = NULL;
    PQconninfoOption *opts = PQconninfoParse(dsn, &perr);
    if (opts == NULL) {
        errf(err, errlen, "bad DSN: %s", perr ? perr : "out of memory");
        PQfreemem(perr);
        return NULL;
    }
    pgcw__buf b = {0};
    for (PQconninfoOption *o = opts; o->keyword; o++) {
        if (o->val == NULL || strcmp(o->keyword, "dbname") == 0)
            continue;
        pgcw__buf_appendf(&b, "%s='", o->keyword);
        for (const char *v = o->val; *v; v++) {
            if (*v == '\'' || *v == '\\')
                pgcw__buf_append(&b, "\\");
            pgcw__buf_appendn(&b, v, 1);
        }
        pgcw__buf_append(&b, "' ");
    }
    pgcw__buf_appendf(&b, "dbname='%s'", dbname);
    PQconninfoFree(opts);
    char *out = pgcw__buf_take(&b);
    if (out == NULL)
        errf(err, errlen, "out of memory");
    return out;
}

static PGconn *connect_prepared(const char *conninfo, char *err, size_t errlen)
{
    static const struct {
        const char *name, *sql;
        int nparams;
    } stmts[] = {
        {"lat", "SELECT pg_notify($1, $2)", 2},
        /* Distinct payloads: PostgreSQL folds identical ones within a transaction. */
        {"flood",
         "SELECT pg_notify($1, $2::text || ($3::int + g - 1)::text || '}') "
         "FROM generate_series(1, $4::int) g",
         4},
    };
    PGconn *conn = PQconnectdb(conninfo);
    if (PQstatus(conn) != CONNECTION_OK) {
        errf(err, errlen, "sender: cannot connect: %s", PQerrorMessage(conn));
        PQfinish(conn);
        return NULL;
    }
    for (size_t i = 0; i < sizeof stmts / sizeof stmts[0]; i++) {
        PGresult *res =
            PQprepare(conn, stmts[i].name, stmts[i].sql, stmts[i].nparams, NULL);
        bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
        PQclear(res);
        if (!ok) {
            errf(err, errlen, "sender: prepare %s: %s", stmts[i].name,
                 PQerrorMessage(conn));
            PQfinish(conn);
            return NULL;
        }
    }
    return conn;
}

static int admin_exec(sender *s, const char *sql, char *err, size_t errlen)
{
    PGresult *res = PQexec(s->admin, sql);
    bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    PQclear(res);
    if (!ok)
        errf(err, errlen, "sender: %s: %s", sql, PQerrorMessage(s->admin));
    return ok ? 0 : -1;
}

static void sender_close(sender *s);

/* Connects, creates a database per listening mode and starts the thread. On error
 * everything is undone. */
static int sender_open(sender *s, const cfg *c, char *err, size_t errlen)
{
    memset(s, 0, sizeof *s);
    s->admin = PQconnectdb(c->dsn);
    if (PQstatus(s->admin) != CONNECTION_OK) {
        errf(err, errlen, "sender: cannot connect: %s", PQerrorMessage(s->admin));
        PQfinish(s->admin);
        s->admin = NULL;
        return -1;
    }
    int rc = 0;
    for (int m = 0; m < N_MODES && rc == 0; m++) {
        if (!c->modes[m])
            continue;
        if (m == MODE_SENDER) {
            s->conninfo[m] = strdup(c->dsn);
            rc = s->conninfo[m] ? 0 : -1;
        } else {
            char sql[128];
            snprintf(s->dbnames[m], sizeof s->dbnames[m], "pgcw_bench_%ld_%d",
                     (long)getpid(), m);
            snprintf(sql, sizeof sql, "CREATE DATABASE %s TEMPLATE template0",
                     s->dbnames[m]);
            rc = admin_exec(s, sql, err, errlen);
            if (rc != 0) {
                s->dbnames[m][0] = '\0';
                break;
            }
            s->conninfo[m] = conninfo_with_db(c->dsn, s->dbnames[m], err, errlen);
            rc = s->conninfo[m] ? 0 : -1;
        }
        if (rc == 0)
            s->conns[m] = connect_prepared(s->conninfo[m], err, errlen);
        if (rc == 0 && s->conns[m] == NULL)
            rc = -1;
    }
    if (rc == 0) {
        pthread_mutex_init(&s->mu, NULL);
        pthread_cond_init(&s->cv, NULL);
        s->cmd = CMD_IDLE;
        if (pthread_create(&s->thread, NULL, sender_main, s) != 0) {
            errf(err, errlen, "sender: pthread_create failed");
            pthread_cond_destroy(&s->cv);
            pthread_mutex_destroy(&s->mu);
            rc = -1;
        } else {
            s->started = true;
        }
    }
    if (rc != 0)
        sender_close(s);
    return rc;
}

static void sender_start(sender *s, const job *j)
{
    atomic_store(&s->failed, 0);
    pthread_mutex_lock(&s->mu);
    s->job = *j;
    s->cmd = j->cmd;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static int sender_wait(sender *s)
{
    pthread_mutex_lock(&s->mu);
    while (s->cmd != CMD_IDLE)
        pthread_cond_wait(&s->cv, &s->mu);
    int rc = s->rc;
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* Stops the thread, closes the connections and drops the databases. Receivers must
 * be closed first (PostgreSQL waits a few seconds for their backends to go). */
static void sender_close(sender *s)
{
    if (s->started) {
        pthread_mutex_lock(&s->mu);
        s->cmd = CMD_QUIT;
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->thread, NULL);
        pthread_cond_destroy(&s->cv);
        pthread_mutex_destroy(&s->mu);
        s->started = false;
    }
    for (int m = 0; m < N_MODES; m++) {
        PQfinish(s->conns[m]);
        s->conns[m] = NULL;
        free(s->conninfo[m]);
        s->conninfo[m] = NULL;
        if (s->dbnames[m][0] && s->admin) {
            char sql[128], err[512];
            snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s", s->dbnames[m]);
            if (admin_exec(s, sql, err, sizeof err) != 0)
                fprintf(stderr, "bench_watcher: %s\n", err);
        }
        s->dbnames[m][0] = '\0';
    }
    PQfinish(s->admin);
    s->admin = NULL;
}

/* --- what the receiver saw -------------------------------------------------------- */

typedef struct collector {
    long run;
    size_t expect; /* events the sender sends in this phase, seq 0..expect-1 */
    size_t skip;   /* seqs below this are warmup: counted, not measured */
    bool latency;
    unsigned char *seen;
    int64_t *lat;
    size_t n_lat;
    size_t got, dups, stray;
    uint64_t lost, gaps; /* watcher queue overflows */
    int64_t first_us, last_us;
} collector;

static int collector_init(collector *c, long run, size_t expect, size_t skip,
                          bool latency)
{
    memset(c, 0, sizeof *c);
    c->run = run;
    c->expect = expect;
    c->skip = skip;
    c->latency = latency;
    c->seen = calloc(expect ? expect : 1, 1);
    c->lat = latency ? malloc((expect ? expect : 1) * sizeof *c->lat) : NULL;
    return c->seen == NULL || (latency && c->lat == NULL) ? -1 : 0;
}

static void collector_free(collector *c)
{
    free(c->seen);
    free(c->lat);
}

static void collector_take(collector *c, const char *payload, int64_t now)
{
    long long run, seq, sent;
    if (!payload_int(payload, "\"run\":", &run) || run != c->run ||
        !payload_int(payload, "\"seq\":", &seq) || seq < 0 || (size_t)seq >= c->expect) {
        c->stray++;
        return;
    }
    if (c->seen[seq]) {
        c->dups++;
        return;
    }
    c->seen[seq] = 1;
    if (c->got++ == 0)
        c->first_us = now;
    c->last_us = now;
    if (c->latency && (size_t)seq >= c->skip &&
        payload_int(payload, "\"mono_us\":", &sent))
        c->lat[c->n_lat++] = now - (int64_t)sent;
}

static bool collector_done(const collector *c)
{
    return c->got + c->lost >= c->expect;
}

/* --- receivers -------------------------------------------------------------------- */

typedef struct receiver {
    int mode;
    const cfg *cfg;
    PGconn *conn;    /* bare */
    pgcw_watcher *w; /* watcher-* */
    pgcw_sub *sub;
    char err[512];
} receiver;

static void watcher_log(void *ctx, pgcw_log_level level, const char *message)
{
    const cfg *c = ctx;
    if (level >= PGCW_LOG_WARNING || c->verbose)
        fprintf(stderr, "watcher %s: %s\n", pgcw_log_level_name(level), message);
}

static int receiver_open(receiver *r, const cfg *c, int mode, const char *conninfo)
{
    memset(r, 0, sizeof *r);
    r->mode = mode;
    r->cfg = c;
    if (mode == MODE_SENDER)
        return 0;
    if (mode == MODE_BARE) {
        r->conn = PQconnectdb(conninfo);
        if (PQstatus(r->conn) != CONNECTION_OK) {
            errf(r->err, sizeof r->err, "bare: cannot connect: %s",
                 PQerrorMessage(r->conn));
            return -1;
        }
        PGresult *res = PQexec(r->conn, "LISTEN " CHANNEL);
        bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
        PQclear(res);
        if (!ok) {
            errf(r->err, sizeof r->err, "bare: LISTEN: %s", PQerrorMessage(r->conn));
            return -1;
        }
        return 0;
    }
    const char *channels[] = {CHANNEL};
    pgcw_watcher_opts o;
    memset(&o, 0, sizeof o);
    o.conninfo = conninfo;
    o.channels = channels;
    o.n_channels = 1;
    o.max_latency_ms = -1; /* a benchmark is not interested in late-event warnings */
    o.queue_capacity = c->queue;
    o.log = watcher_log;
    o.log_ctx = (void *)c;
    pgcw_status st = pgcw_watcher_new(&o, &r->w);
    if (st == PGCW_OK)
        st = pgcw_sub_new(r->w, NULL, &r->sub);
    if (st == PGCW_OK && mode == MODE_WTHREAD)
        st = pgcw_watcher_start(r->w);
    if (st == PGCW_OK)
        st = pgcw_watcher_wait_healthy(r->w, 10000);
    if (st != PGCW_OK) {
        errf(r->err, sizeof r->err, "%s: %s: %s", mode_names[mode], pgcw_strerror(st),
             r->w ? pgcw_watcher_errmsg(r->w) : "");
        return -1;
    }
    return 0;
}

static void receiver_close(receiver *r)
{
    if (r->conn)
        PQfinish(r->conn);
    pgcw_sub_free(r->sub);
    pgcw_watcher_free(r->w); /* stops its thread */
    r->conn = NULL;
    r->sub = NULL;
    r->w = NULL;
}

/* Shared by every waiting loop: gives up when the sender failed or when nothing has
 * arrived for the idle timeout (a lost notification must not hang the run). */
static int receiver_check(receiver *r, const collector *c, const sender *s,
                          size_t *seen_before, int64_t *progress_us)
{
    int64_t now = mono_us();
    size_t seen = c->got + c->dups + c->stray + c->lost;
    if (seen != *seen_before) {
        *seen_before = seen;
        *progress_us = now;
    }
    if (atomic_load(&s->failed)) {
        errf(r->err, sizeof r->err, "%s: the sender failed", mode_names[r->mode]);
        return -1;
    }
    if (now - *progress_us > r->cfg->idle_timeout_us) {
        errf(r->err, sizeof r->err,
             "%s: nothing delivered for %" PRId64 " ms (%zu of %zu events, %zu stray)",
             mode_names[r->mode], r->cfg->idle_timeout_us / 1000, c->got, c->expect,
             c->stray);
        return -1;
    }
    return 0;
}

static int collect_bare(receiver *r, collector *c, const sender *s)
{
    struct pollfd pfd = {.fd = PQsocket(r->conn), .events = POLLIN};
    size_t seen = 0;
    int64_t progress = mono_us();
    for (;;) {
        if (!PQconsumeInput(r->conn)) {
            errf(r->err, sizeof r->err, "bare: %s", PQerrorMessage(r->conn));
            return -1;
        }
        PGnotify *n;
        while ((n = PQnotifies(r->conn)) != NULL) {
            /* What an application does with it: a copy it owns. */
            char *payload = strdup(n->extra);
            PQfreemem(n);
            if (payload == NULL) {
                errf(r->err, sizeof r->err, "bare: out of memory");
                return -1;
            }
            collector_take(c, payload, mono_us());
            free(payload);
        }
        if (collector_done(c))
            return 0;
        if (receiver_check(r, c, s, &seen, &progress) != 0)
            return -1;
        if (poll(&pfd, 1, POLL_SLICE_MS) < 0 && errno != EINTR) {
            errf(r->err, sizeof r->err, "bare: poll: %s", strerror(errno));
            return -1;
        }
    }
}

static int take_event(receiver *r, collector *c, const pgcw_event *ev, int64_t now)
{
    if (ev->kind == PGCW_EVENT_GAP) {
        if (ev->gap_reason != PGCW_GAP_OVERFLOW) {
            errf(r->err, sizeof r->err, "%s: gap (%s) during the measurement",
                 mode_names[r->mode], pgcw_gap_reason_name(ev->gap_reason));
            return -1;
        }
        c->gaps++;
        c->lost += ev->gap_lost;
        return 0;
    }
    collector_take(c, ev->payload ? ev->payload : "", now);
    return 0;
}

static int collect_wloop(receiver *r, collector *c, const sender *s)
{
    size_t seen = 0;
    int64_t progress = mono_us();
    for (;;) {
        pgcw_event *ev;
        pgcw_status st;
        while ((st = pgcw_sub_try_get(r->sub, &ev)) == PGCW_OK) {
            int rc = take_event(r, c, ev, mono_us());
            pgcw_event_free(ev);
            if (rc != 0)
                return -1;
        }
        if (st != PGCW_EAGAIN) {
            errf(r->err, sizeof r->err, "watcher-loop: pgcw_sub_try_get: %s",
                 pgcw_strerror(st));
            return -1;
        }
        if (collector_done(c))
            return 0;
        if (receiver_check(r, c, s, &seen, &progress) != 0)
            return -1;
        int fd = pgcw_watcher_fd(r->w), want = pgcw_watcher_events(r->w);
        int64_t timeout = pgcw_watcher_timeout_ms(r->w);
        int wait = timeout >= 0 && timeout < POLL_SLICE_MS ? (int)timeout : POLL_SLICE_MS;
        struct pollfd pfd = {.fd = fd,
                             .events = (short)((want & PGCW_IO_READ ? POLLIN : 0) |
                                               (want & PGCW_IO_WRITE ? POLLOUT : 0))};
        if (poll(&pfd, fd >= 0 ? 1 : 0, wait) < 0 && errno != EINTR) {
            errf(r->err, sizeof r->err, "watcher-loop: poll: %s", strerror(errno));
            return -1;
        }
        st = pgcw_watcher_process(r->w);
        if (st != PGCW_OK) {
            errf(r->err, sizeof r->err, "watcher-loop: process: %s: %s",
                 pgcw_strerror(st), pgcw_watcher_errmsg(r->w));
            return -1;
        }
    }
}

static int collect_wthread(receiver *r, collector *c, const sender *s)
{
    size_t seen = 0;
    int64_t progress = mono_us();
    for (;;) {
        pgcw_event *ev;
        pgcw_status st = pgcw_sub_get(r->sub, POLL_SLICE_MS, &ev);
        if (st == PGCW_OK) {
            int rc = take_event(r, c, ev, mono_us());
            pgcw_event_free(ev);
            if (rc != 0)
                return -1;
            if (collector_done(c))
                return 0;
        } else if (st != PGCW_ETIMEDOUT) {
            errf(r->err, sizeof r->err, "watcher-thread: pgcw_sub_get: %s",
                 pgcw_strerror(st));
            return -1;
        }
        if (receiver_check(r, c, s, &seen, &progress) != 0)
            return -1;
    }
}

static int receiver_collect(receiver *r, collector *c, const sender *s)
{
    if (collector_done(c))
        return 0;
    switch (r->mode) {
    case MODE_BARE:
        return collect_bare(r, c, s);
    case MODE_WLOOP:
        return collect_wloop(r, c, s);
    case MODE_WTHREAD:
        return collect_wthread(r, c, s);
    default:
        return 0; /* sender-alone: nobody listens */
    }
}

/* --- one mode in one round -------------------------------------------------------- */

typedef struct sample {
    /* latency phase, microseconds */
    size_t n_lat;
    int64_t p50, p99, max;
    double lat_cpu_per_event; /* receiver-side CPU us per delivered event */
    /* flood phase */
    double rx_rate; /* events/s, first to last delivery */
    double tx_rate; /* events/s the sender committed */
    double flood_cpu_per_event;
    /* honesty */
    size_t dups, stray;
    uint64_t lost, gaps;
} sample;

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

/* --- summary and output ----------------------------------------------------------- */

typedef struct summary {
    bool present;
    double p50, p99, max, rx_rate, tx_rate, lat_cpu, flood_cpu; /* medians over rounds */
    int64_t worst_max;
    uint64_t lost, gaps;
    /* vs bare, 0 when not applicable. The verdict uses the median of per-round
     * ratios: bare and watcher ran seconds apart in the same round, so drift in the
     * machine's load cancels out; the ratio of the medians is kept for reference. */
    double p50_ratio, tput_ratio;
    double p50_ratio_of_medians, tput_ratio_of_medians;
    bool pass;
} summary;

static double median(double *v, size_t n)
{
    if (n == 0)
        return 0.0;
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2.0;
}

static void summarize(const cfg *cf, sample (*samples)[N_MODES][MAX_ROUNDS],
                      summary (*sum)[N_MODES])
{
    double *v = malloc((size_t)cf->rounds * sizeof *v);
    if (v == NULL)
        return;
    for (int p = 0; p < N_PINS; p++) {
        for (int m = 0; m < N_MODES; m++) {
            summary *o = &sum[p][m];
            memset(o, 0, sizeof *o);
            if (!cf->pins[p] || !cf->modes[m])
                continue;
            o->present = true;
            const sample *sm = samples[p][m];
#define MEDIAN_OF(field, expr)                                                           \
    do {                                                                                 \
        for (int i = 0; i < cf->rounds; i++)                                             \
            v[i] = (double)(expr);                                                       \
        o->field = median(v, (size_t)cf->rounds);                                        \
    } while (0)
            MEDIAN_OF(p50, sm[i].p50);
            MEDIAN_OF(p99, sm[i].p99);
            MEDIAN_OF(max, sm[i].max);
            MEDIAN_OF(rx_rate, sm[i].rx_rate);
            MEDIAN_OF(tx_rate, sm[i].tx_rate);
            MEDIAN_OF(lat_cpu, sm[i].lat_cpu_per_event);
            MEDIAN_OF(flood_cpu, sm[i].flood_cpu_per_event);
#undef MEDIAN_OF
            for (int i = 0; i < cf->rounds; i++) {
                if (sm[i].max > o->worst_max)
                    o->worst_max = sm[i].max;
                o->lost += sm[i].lost;
                o->gaps += sm[i].gaps;
            }
        }
        const summary *b = &sum[p][MODE_BARE];
        for (int m = MODE_WLOOP; m <= MODE_WTHREAD; m++) {
            summary *o = &sum[p][m];
            if (!o->present || !b->present)
                continue;
            const sample *sb = samples[p][MODE_BARE], *sw = samples[p][m];
            for (int i = 0; i < cf->rounds; i++)
                v[i] = sb[i].p50 > 0 ? (double)sw[i].p50 / (double)sb[i].p50 : 0.0;
            o->p50_ratio = median(v, (size_t)cf->rounds);
            for (int i = 0; i < cf->rounds; i++)
                v[i] = sb[i].rx_rate > 0 ? sw[i].rx_rate / sb[i].rx_rate : 0.0;
            o->tput_ratio = median(v, (size_t)cf->rounds);
            o->p50_ratio_of_medians = b->p50 > 0 ? o->p50 / b->p50 : 0.0;
            o->tput_ratio_of_medians = b->rx_rate > 0 ? o->rx_rate / b->rx_rate : 0.0;
            o->pass = o->p50_ratio > 0 && o->p50_ratio <= P50_TARGET &&
                      o->tput_ratio >= TPUT_TARGET && o->lost == 0;
        }
    }
    free(v);
}

static void print_table(const cfg *cf, summary (*sum)[N_MODES])
{
    printf("pgcachewatch watcher bench: %d rounds; latency: %zu events (+%zu warmup) one "
           "per %" PRId64 " us; flood: %zu events, %d per transaction\n",
           cf->rounds, cf->events, cf->warmup, cf->interval_us, cf->flood, cf->batch);
    printf("figures are medians over rounds; latency = commit-to-delivery in the "
           "application, us\n");
    for (int p = 0; p < N_PINS; p++) {
        if (!cf->pins[p])
            continue;
        if (p == PIN_ON)
            printf("\npinned: receiver (and the watcher's thread) on CPU %d, sender's "
                   "client thread on CPU %d; PostgreSQL unpinned\n",
                   g_cpu_rx, g_cpu_tx);
        else
            printf("\nunpinned\n");
        printf("%-15s %8s %8s %8s %10s %10s %8s %8s %6s %6s  %s\n", "mode", "p50", "p99",
               "max", "ev/s", "sender/s", "cpu/ev", "lat cpu", "p50 x", "ev/s x",
               "verdict");
        for (int m = 0; m < N_MODES; m++) {
            const summary *o = &sum[p][m];
            if (!o->present)
                continue;
            if (m == MODE_SENDER) {
                printf("%-15s %8s %8s %8s %10s %10.0f %8s %8s %6s %6s  %s\n",
                       mode_names[m], "-", "-", "-", "-", o->tx_rate, "-", "-", "-", "-",
                       "-");
                continue;
            }
            char r1[16] = "-", r2[16] = "-", verdict[64] = "(reference)";
            if (m != MODE_BARE) {
                if (sum[p][MODE_BARE].present) {
                    snprintf(r1, sizeof r1, "%.2f", o->p50_ratio);
                    snprintf(r2, sizeof r2, "%.2f", o->tput_ratio);
                    snprintf(verdict, sizeof verdict, "%s", o->pass ? "PASS" : "FAIL");
                } else {
                    snprintf(verdict, sizeof verdict, "(no bare run)");
                }
            }
            printf("%-15s %8.0f %8.0f %8.0f %10.0f %10.0f %8.2f %8.2f %6s %6s  %s",
                   mode_names[m], o->p50, o->p99, o->max, o->rx_rate, o->tx_rate,
                   o->flood_cpu, o->lat_cpu, r1, r2, verdict);
            if (o->lost)
                printf(" (%" PRIu64 " events lost to %" PRIu64 " queue overflows)",
                       o->lost, o->gaps);
            printf("\n");
        }
    }
    printf("\ntargets: watcher p50 <= %.1fx bare, watcher ev/s >= %.1fx bare.\n"
           "p50 x, ev/s x: median over rounds of watcher/bare within the round.\n"
           "cpu/ev: CPU us of the receiving side (the process minus the sender thread) "
           "per event in the flood; lat cpu: the same in the latency phase.\n",
           P50_TARGET, TPUT_TARGET);
}

static void print_json(const cfg *cf, sample (*samples)[N_MODES][MAX_ROUNDS],
                       summary (*sum)[N_MODES])
{
    json_object *root = json_object_new_object();
    json_object *conf = json_object_new_object();
    json_object_object_add(conf, "rounds", json_object_new_int(cf->rounds));
    json_object_object_add(conf, "events", json_object_new_int64((int64_t)cf->events));
    json_object_object_add(conf, "warmup", json_object_new_int64((int64_t)cf->warmup));
    json_object_object_add(conf, "interval_us", json_object_new_int64(cf->interval_us));
    json_object_object_add(conf, "flood", json_object_new_int64((int64_t)cf->flood));
    json_object_object_add(conf, "batch", json_object_new_int(cf->batch));
    json_object_object_add(conf, "cpu_receiver", json_object_new_int(g_cpu_rx));
    json_object_object_add(conf, "cpu_sender", json_object_new_int(g_cpu_tx));
    json_object_object_add(conf, "p50_target", json_object_new_double(P50_TARGET));
    json_object_object_add(conf, "throughput_target",
                           json_object_new_double(TPUT_TARGET));
    json_object_object_add(root, "config", conf);
    json_object *results = json_object_new_array();
    for (int p = 0; p < N_PINS; p++) {
        for (int m = 0; m < N_MODES; m++) {
            const summary *o = &sum[p][m];
            if (!o->present)
                continue;
            json_object *e = json_object_new_object();
            json_object_object_add(e, "mode", json_object_new_string(mode_names[m]));
            json_object_object_add(e, "pin", json_object_new_string(pin_names[p]));
            json_object_object_add(e, "p50_us", json_object_new_double(o->p50));
            json_object_object_add(e, "p99_us", json_object_new_double(o->p99));
            json_object_object_add(e, "max_us", json_object_new_double(o->max));
            json_object_object_add(e, "worst_max_us",
                                   json_object_new_int64(o->worst_max));
            json_object_object_add(e, "events_per_s", json_object_new_double(o->rx_rate));
            json_object_object_add(e, "sender_events_per_s",
                                   json_object_new_double(o->tx_rate));
            json_object_object_add(e, "cpu_us_per_event_flood",
                                   json_object_new_double(o->flood_cpu));
            json_object_object_add(e, "cpu_us_per_event_latency",
                                   json_object_new_double(o->lat_cpu));
            json_object_object_add(e, "lost", json_object_new_int64((int64_t)o->lost));
            json_object_object_add(e, "overflows",
                                   json_object_new_int64((int64_t)o->gaps));
            if ((m == MODE_WLOOP || m == MODE_WTHREAD) && sum[p][MODE_BARE].present) {
                json_object_object_add(e, "p50_ratio",
                                       json_object_new_double(o->p50_ratio));
                json_object_object_add(e, "p50_ratio_of_medians",
                                       json_object_new_double(o->p50_ratio_of_medians));
                json_object_object_add(e, "throughput_ratio_of_medians",
                                       json_object_new_double(o->tput_ratio_of_medians));
                json_object_object_add(e, "throughput_ratio",
                                       json_object_new_double(o->tput_ratio));
                json_object_object_add(e, "pass", json_object_new_boolean(o->pass));
            }
            json_object *rounds = json_object_new_array();
            for (int i = 0; i < cf->rounds; i++) {
                const sample *s = &samples[p][m][i];
                json_object *x = json_object_new_object();
                json_object_object_add(x, "latency_samples",
                                       json_object_new_int64((int64_t)s->n_lat));
                json_object_object_add(x, "p50_us", json_object_new_int64(s->p50));
                json_object_object_add(x, "p99_us", json_object_new_int64(s->p99));
                json_object_object_add(x, "max_us", json_object_new_int64(s->max));
                json_object_object_add(x, "events_per_s",
                                       json_object_new_double(s->rx_rate));
                json_object_object_add(x, "sender_events_per_s",
                                       json_object_new_double(s->tx_rate));
                json_object_array_add(rounds, x);
            }
            json_object_object_add(e, "rounds", rounds);
            json_object_array_add(results, e);
        }
    }
    json_object_object_add(root, "results", results);
    printf("%s\n", json_object_to_json_string_ext(
                       root, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(root);
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
