/*
 * watcher_sender.h - bench_watcher's sender: one thread with a connection to each
 * mode's database (created for the run, dropped at the end) that sends the paced
 * latency notifications and the floods. Bench-only. Must never send into a
 * database a receiver of another mode listens in.
 */
#ifndef PGCW_BENCH_WATCHER_SENDER_H
#define PGCW_BENCH_WATCHER_SENDER_H

#include <stdatomic.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "pgcw_testhook.h"
#include "watcher_common.h"

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

#endif
