/*
 * cache_combine.c - write combining: the single writes (set, delete,
 * invalidate) that threads of one cache issue at the same time commit together,
 * in one transaction, in every notify mode (in TRIGGER each row is still notified
 * by the table's trigger inside it; in the others each writer announces its own
 * write after the commit, as alone).
 *
 * Why: PostgreSQL serializes the commits of transactions that NOTIFY on one
 * cluster-wide lock held through the commit, so 16 writers each committing their
 * own write wait for each other; the lock is taken once per transaction, not per
 * notification. Every write still commits with its notification (nothing can be
 * lost between the two, whoever crashes). Without a NOTIFY a commit still costs
 * a round trip and the server's per-transaction work, which fewer transactions
 * save as well.
 *
 * How (group commit by flat combining): a writer queues its statement; while
 * fewer than `limit` batches are running (the pool's size, at most
 * PGCW__COMBINE_RUNNING: in TRIGGER mode more transactions at once would only
 * queue for the notify lock, holding their row locks meanwhile), a writer whose
 * statement is still queued becomes a leader, takes up to BATCH_MAX statements
 * from the queue (its own among them, unless the queue is longer), runs them in
 * one pipeline (one implicit transaction) on a pool connection and wakes their
 * writers. A write that finds a batch slot free runs at once, alone: one writer
 * pays nothing. The statements of a batch run sorted by key (arrival order among
 * equal keys), so two batches, in this process or another, take their row locks
 * in one order and cannot deadlock each other.
 *
 * Failures: a batch that PostgreSQL refused (one statement's error aborts the
 * transaction) is run again statement by statement by each writer, each on its
 * own deadline, so a write fails only for its own reason; a lost connection (after
 * the pool's retry) or a timeout is every member's. A batch runs under the
 * earliest deadline of its members, so no call waits past its own. Must never
 * hold the mutex while doing I/O.
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cache_internal.h"
#include "core_err.h"
#include "core_time.h"
#include "core_util.h"

#define BATCH_MAX 64

typedef struct wreq {
    const pgcw__stmt *stmt;
    const void *key;
    size_t key_len;
    int64_t deadline;
    uint64_t seq; /* arrival order */
    int64_t version;
    pgcw_status status;
    bool taken, done, alone; /* alone: the batch was refused, run it by itself */
    char *err;
    size_t errlen;
    struct wreq *next;
} wreq;

struct pgcw__combiner {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    wreq *head, *tail;
    size_t queued, running, limit;
    uint64_t seq;
    uint64_t batches, writes; /* committed batches of more than one write, and theirs */
};

pgcw_status pgcw__combiner_new(size_t limit, pgcw__combiner **out)
{
    *out = NULL;
    pgcw__combiner *k = calloc(1, sizeof *k);
    if (!k)
        return PGCW_ENOMEM;
    if (pthread_mutex_init(&k->mu, NULL) != 0) {
        free(k);
        return PGCW_ESYS;
    }
    if (pgcw__cond_init(&k->cv) != 0) {
        pthread_mutex_destroy(&k->mu);
        free(k);
        return PGCW_ESYS;
    }
    k->limit = limit > 0 ? limit : 1;
    *out = k;
    return PGCW_OK;
}

void pgcw__combiner_free(pgcw__combiner *k)
{
    if (!k)
        return;
    pthread_cond_destroy(&k->cv);
    pthread_mutex_destroy(&k->mu);
    free(k);
}

void pgcw__combiner_counts(pgcw__combiner *k, uint64_t *batches, uint64_t *writes,
                           size_t *queued)
{
    pthread_mutex_lock(&k->mu);
    if (batches)
        *batches = k->batches;
    if (writes)
        *writes = k->writes;
    if (queued)
        *queued = k->queued;
    pthread_mutex_unlock(&k->mu);
}

static int by_key(const void *a, const void *b)
{
    const wreq *x = *(wreq *const *)a, *y = *(wreq *const *)b;
    size_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
    int c = n ? memcmp(x->key, y->key, n) : 0;
    if (c == 0 && x->key_len != y->key_len)
        c = x->key_len < y->key_len ? -1 : 1;
    if (c == 0)
        c = x->seq < y->seq ? -1 : x->seq > y->seq;
    return c;
}

static pgcw_status take_version(void *ctx, size_t i, const PGresult *res)
{
    wreq **b = ctx;
    b[i]->version = PQntuples(res) > 0 ? pgcw__res_int64(res, 0, 0) : 0;
    return PGCW_OK;
}

/* Called with mu held: takes a batch from the queue's head, runs it unlocked,
 * and reports to its writers. */
static void lead(pgcw_cache *c, pgcw__combiner *k)
{
    wreq *b[BATCH_MAX];
    pgcw__stmt s[BATCH_MAX];
    size_t n = 0;
    int64_t deadline = PGCW__NEVER;
    while (k->head && n < BATCH_MAX) {
        wreq *r = k->head;
        k->head = r->next;
        r->taken = true;
        b[n++] = r;
        if (r->deadline < deadline)
            deadline = r->deadline;
    }
    if (!k->head)
        k->tail = NULL;
    k->queued -= n;
    k->running++;
    pthread_mutex_unlock(&k->mu);

    if (n > 1)
        qsort(b, n, sizeof *b, by_key);
    for (size_t i = 0; i < n; i++)
        s[i] = *b[i]->stmt;
    if (pgcw__cache_test.before_combined_run)
        pgcw__cache_test.before_combined_run(n);
    char err[PGCW__ERR_MAX];
    pgcw_status st =
        pgcw__cache_exec(c, s, n, deadline, take_version, b, err, sizeof err);

    pthread_mutex_lock(&k->mu);
    k->running--;
    if (n > 1 && st == PGCW_OK) {
        k->batches++;
        k->writes += n;
    }
    for (size_t i = 0; i < n; i++) {
        b[i]->status = st;
        b[i]->alone = st == PGCW_EQUERY && n > 1;
        if (st != PGCW_OK && !b[i]->alone)
            pgcw__errf(b[i]->err, b[i]->errlen, "%s", err);
        b[i]->done = true;
    }
    pthread_cond_broadcast(&k->cv);
}

/* Called with mu held: takes r out of the queue (its deadline passed). */
static void unqueue(pgcw__combiner *k, wreq *r)
{
    wreq **p = &k->head, *prev = NULL;
    while (*p && *p != r) {
        prev = *p;
        p = &(*p)->next;
    }
    if (!*p)
        return;
    *p = r->next;
    if (k->tail == r)
        k->tail = prev;
    k->queued--;
}

pgcw_status pgcw__cache_combine(pgcw_cache *c, const pgcw__stmt *stmt, const void *key,
                                size_t key_len, int64_t *version, char *err,
                                size_t errlen)
{
    pgcw__combiner *k = c->combiner;
    wreq me = {.stmt = stmt,
               .key = key,
               .key_len = key_len,
               .deadline = pgcw__cache_deadline(c),
               .err = err,
               .errlen = errlen};
    err[0] = '\0';
    pthread_mutex_lock(&k->mu);
    me.seq = k->seq++;
    if (k->tail)
        k->tail->next = &me;
    else
        k->head = &me;
    k->tail = &me;
    k->queued++;
    while (!me.done) {
        if (!me.taken && k->running < k->limit) {
            lead(c, k); /* returns with mu held */
            continue;
        }
        if (me.taken) {
            pthread_cond_wait(&k->cv, &k->mu);
            continue;
        }
        if (!pgcw__cond_wait_until(&k->cv, &k->mu, me.deadline) && !me.taken &&
            !me.done) {
            unqueue(k, &me);
            me.status = PGCW_ETIMEDOUT;
            pgcw__errf(err, errlen,
                       "no pool connection became free in time (all %zu "
                       "in use by other writes)",
                       k->limit);
            me.done = true;
        }
    }
    pthread_mutex_unlock(&k->mu);
    if (me.alone)
        me.status = pgcw__cache_exec(c, stmt, 1, me.deadline, take_version,
                                     (wreq *[]){&me}, err, errlen);
    *version = me.status == PGCW_OK ? me.version : 0;
    return me.status;
}
