/*
 * harness_chaos.c - `--chaos`: while the load runs, a thread of the parent kills
 * the clients' backends with pg_terminate_backend() from an admin connection of
 * its own: at random moments (uniformly between half and one and a half times the
 * interval), one backend at a time, picked at random among this run's sessions
 * (found in pg_stat_activity by the application_name every client sets:
 * "<tag>-c<client>-watch" for its watcher, "<tag>-c<client>-pool" for its pool).
 *
 * A kill is written into the client's slot (its pid, then its time) only once the
 * server said it terminated the backend; the client clears it when it has
 * recovered (harness_client.c), and no client gets a second kill of the same kind
 * before that. Must never terminate a session that is not this run's.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"

struct hx_chaos {
    const hx_cfg *cfg;
    hx_shm *shm;
    pgcw_conn *admin;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;
    uint64_t rng;
    uint64_t errors;
};

static uint64_t rnd(hx_chaos *ch)
{
    return hx_rand(&ch->rng);
}

/* Waits ms unless told to stop; true when stopping. */
static bool wait_ms(hx_chaos *ch, int64_t ms)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&ch->mu);
    while (!ch->stop && pthread_cond_timedwait(&ch->cv, &ch->mu, &until) == 0)
        ;
    bool stop = ch->stop;
    pthread_mutex_unlock(&ch->mu);
    return stop;
}

typedef struct victim {
    int pid, client;
    bool watch;
} victim;

/* One kill: false when there was nothing to kill or it failed (counted). */
static void kill_one(hx_chaos *ch)
{
    PGconn *pg = pgcw_conn_pg(ch->admin);
    char pattern[64];
    snprintf(pattern, sizeof pattern, "%s-c%%", ch->cfg->app_tag);
    const char *params[1] = {pattern};
    PGresult *r = PQexecParams(pg,
                               "SELECT pid, application_name FROM pg_stat_activity"
                               " WHERE application_name LIKE $1",
                               1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        if (ch->errors++ == 0)
            fprintf(stderr, CLI_PROG " harness: chaos: %s", PQresultErrorMessage(r));
        PQclear(r);
        return;
    }
    int n = PQntuples(r), k = 0;
    victim *v = calloc((size_t)(n ? n : 1), sizeof *v);
    size_t tag_len = strlen(ch->cfg->app_tag);
    for (int i = 0; v && i < n; i++) {
        const char *app = PQgetvalue(r, i, 1);
        int client = -1;
        char kind[8] = "";
        if (strncmp(app, ch->cfg->app_tag, tag_len) != 0 ||
            sscanf(app + tag_len, "-c%d-%7s", &client, kind) != 2 || client < 0 ||
            client >= ch->shm->clients)
            continue;
        bool watch = strcmp(kind, "watch") == 0;
        hx_client_slot *s = &ch->shm->slot[client];
        if (watch ? atomic_load(&s->watch_kill_t) != 0
                  : atomic_load(&s->pool_kill_t) != 0)
            continue; /* still recovering from the last one */
        v[k++] = (victim){atoi(PQgetvalue(r, i, 0)), client, watch};
    }
    PQclear(r);
    if (k == 0) {
        free(v);
        return;
    }
    victim x = v[rnd(ch) % (uint64_t)k];
    free(v);
    char pid[16];
    snprintf(pid, sizeof pid, "%d", x.pid);
    const char *kp[1] = {pid};
    int64_t t = hx_now_ns();
    r = PQexecParams(pg, "SELECT pg_terminate_backend($1::int)", 1, NULL, kp, NULL, NULL,
                     0);
    bool killed = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 &&
                  strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    if (PQresultStatus(r) != PGRES_TUPLES_OK && ch->errors++ == 0)
        fprintf(stderr, CLI_PROG " harness: chaos: %s", PQresultErrorMessage(r));
    PQclear(r);
    if (!killed)
        return; /* gone meanwhile: nothing to recover from */
    hx_client_slot *s = &ch->shm->slot[x.client];
    if (x.watch) {
        atomic_store(&s->watch_kill_pid, x.pid);
        atomic_store(&s->watch_kill_t, t);
        atomic_fetch_add(&ch->shm->kills_watch, 1);
    } else {
        atomic_store(&s->pool_kill_t, t);
        atomic_fetch_add(&ch->shm->kills_pool, 1);
    }
}

static void *chaos_main(void *arg)
{
    hx_chaos *ch = arg;
    int64_t iv = ch->cfg->chaos_interval_ms;
    for (;;) {
        int64_t ms = iv / 2 + (iv > 0 ? (int64_t)(rnd(ch) % (uint64_t)(iv + 1)) : 0);
        if (wait_ms(ch, ms))
            break;
        if (PQstatus(pgcw_conn_pg(ch->admin)) != CONNECTION_OK &&
            pgcw_conn_connect(ch->admin) != PGCW_OK) {
            if (ch->errors++ == 0)
                fprintf(stderr, CLI_PROG " harness: chaos: %s\n",
                        pgcw_conn_errmsg(ch->admin));
            continue;
        }
        kill_one(ch);
    }
    return NULL;
}

hx_chaos *hx_chaos_start(const hx_cfg *cfg, const cli_conn_opts *conn, hx_shm *shm)
{
    hx_chaos *ch = calloc(1, sizeof *ch);
    if (!ch) {
        fprintf(stderr, CLI_PROG " harness: out of memory\n");
        return NULL;
    }
    ch->cfg = cfg;
    ch->shm = shm;
    ch->rng = (cfg->seed ^ 0xC4A05C4A05ULL) | 1;
    ch->admin = cli_connect(CLI_PROG " harness: chaos", conn);
    if (!ch->admin) {
        free(ch);
        return NULL;
    }
    pthread_mutex_init(&ch->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&ch->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&ch->thread, NULL, chaos_main, ch) != 0) {
        fprintf(stderr, CLI_PROG " harness: chaos: cannot start a thread\n");
        pthread_cond_destroy(&ch->cv);
        pthread_mutex_destroy(&ch->mu);
        pgcw_conn_free(ch->admin);
        free(ch);
        return NULL;
    }
    return ch;
}

void hx_chaos_stop(hx_chaos *ch, uint64_t *kill_errors)
{
    if (!ch)
        return;
    pthread_mutex_lock(&ch->mu);
    ch->stop = true;
    pthread_cond_signal(&ch->cv);
    pthread_mutex_unlock(&ch->mu);
    pthread_join(ch->thread, NULL);
    if (kill_errors)
        *kill_errors = ch->errors;
    pthread_cond_destroy(&ch->cv);
    pthread_mutex_destroy(&ch->mu);
    pgcw_conn_free(ch->admin);
    free(ch);
}
