/*
 * cache_notify.c - notifying after commit (PGCW_CACHE_NOTIFY_AFTER_COMMIT and
 * _BACKGROUND): this library's writes skip the table's
 * trigger (their sessions carry pgcachewatch.cache_notify = 'client', which
 * migration 3's trigger checks) and send their invalidations right after commit,
 * batched across writes and threads, in postgres-cache's payload format.
 *
 * Why: PostgreSQL serializes the commits of transactions that NOTIFY on one
 * cluster-wide lock held through the commit; 16 writers each notifying in their own
 * transaction spend most of their time waiting for it. Here one transaction sends
 * the notifications of every write that committed meanwhile.
 *
 * How (flat combining): a writer adds itself to the pending list; if no batch is
 * being sent it becomes the sender, takes the whole list, sends it on the
 * notifier's own connection and wakes every writer in it; otherwise it waits for
 * the sender; a write returns once its notification is sent. In the background
 * mode a writer queues a copy of its notices and returns, and the notifier's
 * thread is the only sender. Must never send a payload PostgreSQL would
 * refuse (over 7999 bytes: such keys are never in an L1) nor hold the lock while
 * doing I/O.
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cache_internal.h"
#include "core_time.h"
#include "core_util.h"

typedef struct waiter {
    const pgcw__notice *items; /* background: copies, in the same allocation */
    size_t n;
    pgcw_status status;
    bool done;
    char err[512];
    struct waiter *next;
} waiter;

struct pgcw__notifier {
    const pgcw__conn_params *params;
    char channel[64];
    pthread_mutex_t mu;
    pthread_cond_t cv;
    waiter *pending; /* newest first */
    bool sending;
    pgcw__conn conn; /* the sender's alone */
    bool ready;
    uint64_t batches, sent, failures; /* under mu */
    /* background mode */
    bool background, stop;
    pthread_t thread;
    int64_t timeout_ms;
    pgcw_log_fn log;
    void *log_ctx;
};

void pgcw__notifier_counts(pgcw__notifier *n, uint64_t *batches, uint64_t *sent,
                           uint64_t *failures)
{
    pthread_mutex_lock(&n->mu);
    *batches = n->batches;
    *sent = n->sent;
    *failures = n->failures;
    pthread_mutex_unlock(&n->mu);
}

static void *notifier_main(void *arg);

pgcw_status pgcw__notifier_new(const pgcw__conn_params *params, const char *channel,
                               bool background, int64_t timeout_ms, pgcw_log_fn log,
                               void *log_ctx, pgcw__notifier **out)
{
    pgcw__notifier *n = calloc(1, sizeof *n);
    if (!n)
        return PGCW_ENOMEM;
    n->params = params;
    pgcw__errf(n->channel, sizeof n->channel, "%s", channel);
    n->timeout_ms = timeout_ms;
    n->log = log;
    n->log_ctx = log_ctx;
    if (pthread_mutex_init(&n->mu, NULL) != 0 || pgcw__cond_init(&n->cv) != 0) {
        free(n);
        return PGCW_ENOMEM;
    }
    if (background) {
        if (pthread_create(&n->thread, NULL, notifier_main, n) != 0) {
            pthread_mutex_destroy(&n->mu);
            pthread_cond_destroy(&n->cv);
            free(n);
            return PGCW_ESYS;
        }
        n->background = true;
    }
    *out = n;
    return PGCW_OK;
}

void pgcw__notifier_free(pgcw__notifier *n)
{
    if (!n)
        return;
    if (n->background) {
        pthread_mutex_lock(&n->mu);
        n->stop = true;
        pthread_cond_broadcast(&n->cv);
        pthread_mutex_unlock(&n->mu);
        pthread_join(n->thread, NULL); /* it sends what is queued first */
    }
    pgcw__conn_close(&n->conn);
    pthread_mutex_destroy(&n->mu);
    pthread_cond_destroy(&n->cv);
    free(n);
}

/* "u<version>|<key in hex>", or nothing when it would not fit a notification. */
static void append_payload(pgcw__buf *b, const pgcw__notice *it, bool *first)
{
    if (it->key_len > PGCW_CACHE_MAX_NOTIFY_KEY)
        return;
    static const char hex[] = "0123456789abcdef";
    if (!*first)
        pgcw__buf_append(b, ",");
    *first = false;
    pgcw__buf_appendf(b, "u%lld|", (long long)it->version);
    const unsigned char *k = it->key;
    for (size_t i = 0; i < it->key_len; i++) {
        char two[2] = {hex[k[i] >> 4], hex[k[i] & 15]};
        pgcw__buf_appendn(b, two, 2);
    }
}

static pgcw_status connect_sender(pgcw__notifier *n, char *err, size_t errlen)
{
    pgcw_status st = pgcw__conn_connect(&n->conn, n->params, NULL, NULL);
    if (st != PGCW_OK) {
        pgcw__errf(err, errlen, "%s", n->conn.err);
        return st;
    }
    /* The payloads are [ud0-9|a-f]: a comma separates them safely. */
    PGresult *res =
        PQexec(n->conn.pg, pgcw__cache_test.notify_sql
                               ? pgcw__cache_test.notify_sql
                               : "PREPARE pgcw_cache_notify (text, text) AS SELECT"
                                 " count(pg_notify($1, x)) FROM"
                                 " unnest(string_to_array($2, ',')) x");
    bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    if (!ok)
        pgcw__result_message(res, n->conn.pg, err, errlen);
    PQclear(res);
    if (!ok || PQsetnonblocking(n->conn.pg, 1) != 0) {
        pgcw__conn_close(&n->conn);
        return PGCW_EQUERY;
    }
    n->ready = true;
    return PGCW_OK;
}

/* Sends one batch: every waiter's payloads in one transaction, on the sender's
 * connection, reconnecting (once) if it was lost: a notification sent twice is
 * harmless. */
static pgcw_status send_batch(pgcw__notifier *n, waiter *list, int64_t deadline,
                              char *err, size_t errlen)
{
    pgcw__buf b = {0};
    bool first = true;
    for (waiter *w = list; w; w = w->next)
        for (size_t i = 0; i < w->n; i++)
            append_payload(&b, &w->items[i], &first);
    char *payloads = pgcw__buf_take(&b);
    if (!payloads) {
        pgcw__errf(err, errlen, "out of memory");
        return PGCW_ENOMEM;
    }
    pgcw_status st = PGCW_OK;
    if (!first) {
        const char *values[2] = {n->channel, payloads};
        int lengths[2] = {(int)strlen(n->channel), (int)strlen(payloads)};
        pgcw__stmt s = {"pgcw_cache_notify", 2, values, lengths};
        for (int attempt = 0; attempt < 2; attempt++) {
            if (!n->ready && (st = connect_sender(n, err, errlen)) != PGCW_OK)
                break;
            bool broken = false;
            st =
                pgcw__exec(n->conn.pg, &s, 1, deadline, NULL, NULL, err, errlen, &broken);
            if (broken) {
                pgcw__conn_close(&n->conn);
                n->ready = false;
            }
            if (st != PGCW_ECONNLOST)
                break;
        }
    }
    free(payloads);
    return st;
}

/* The background thread: sends whatever is queued, batch after batch, until told
 * to stop with nothing left. */
static void *notifier_main(void *arg)
{
    pgcw__notifier *n = arg;
    pthread_mutex_lock(&n->mu);
    for (;;) {
        while (!n->pending && !n->stop)
            pthread_cond_wait(&n->cv, &n->mu);
        if (!n->pending)
            break;
        waiter *batch = n->pending;
        n->pending = NULL;
        pthread_mutex_unlock(&n->mu);
        char msg[512] = "";
        pgcw_status st =
            send_batch(n, batch, pgcw__deadline_in_ms(n->timeout_ms), msg, sizeof msg);
        uint64_t count = 0;
        for (waiter *w = batch, *next; w; w = next) {
            next = w->next;
            count += w->n;
            free(w);
        }
        if (st != PGCW_OK)
            pgcw__logf(n->log, n->log_ctx, PGCW_LOG_ERROR,
                       "cache: %llu invalidations could not be sent (other clients may "
                       "serve their copies until they expire): %s",
                       (unsigned long long)count, msg);
        pthread_mutex_lock(&n->mu);
        n->batches += st == PGCW_OK;
        if (st == PGCW_OK)
            n->sent += count;
        else
            n->failures += count;
    }
    pthread_mutex_unlock(&n->mu);
    return NULL;
}

/* Background mode: queue a copy (notices and keys in one allocation). */
static pgcw_status enqueue_copy(pgcw__notifier *n, const pgcw__notice *items,
                                size_t count)
{
    size_t bytes = sizeof(waiter) + count * sizeof(pgcw__notice);
    for (size_t i = 0; i < count; i++)
        bytes += items[i].key_len;
    waiter *w = malloc(bytes);
    if (!w)
        return PGCW_ENOMEM;
    pgcw__notice *copy = (pgcw__notice *)(w + 1);
    char *keys = (char *)(copy + count);
    for (size_t i = 0; i < count; i++) {
        if (items[i].key_len)
            memcpy(keys, items[i].key, items[i].key_len);
        copy[i] = (pgcw__notice){keys, items[i].key_len, items[i].version};
        keys += items[i].key_len;
    }
    *w = (waiter){.items = copy, .n = count};
    pthread_mutex_lock(&n->mu);
    w->next = n->pending;
    n->pending = w;
    pthread_cond_signal(&n->cv);
    pthread_mutex_unlock(&n->mu);
    return PGCW_OK;
}

pgcw_status pgcw__notifier_send(pgcw__notifier *n, const pgcw__notice *items,
                                size_t count, int64_t deadline, char *err, size_t errlen)
{
    if (n->background) {
        pgcw_status st = enqueue_copy(n, items, count);
        if (st != PGCW_OK)
            pgcw__errf(err, errlen, "out of memory queueing the invalidations");
        return st;
    }
    waiter me = {.items = items, .n = count};
    pthread_mutex_lock(&n->mu);
    me.next = n->pending;
    n->pending = &me;
    while (!me.done) {
        if (n->sending) {
            /* The sender's own call is bounded by its deadline; it wakes us. */
            pthread_cond_wait(&n->cv, &n->mu);
            continue;
        }
        n->sending = true;
        waiter *batch = n->pending;
        n->pending = NULL;
        pthread_mutex_unlock(&n->mu);
        char msg[512] = "";
        pgcw_status st = send_batch(n, batch, deadline, msg, sizeof msg);
        pthread_mutex_lock(&n->mu);
        n->batches += st == PGCW_OK;
        for (waiter *w = batch, *next; w; w = next) {
            next = w->next; /* w may return and vanish once done is set */
            w->status = st;
            if (st != PGCW_OK)
                pgcw__errf(w->err, sizeof w->err, "%s", msg);
            if (st == PGCW_OK)
                n->sent += w->n;
            else
                n->failures += w->n;
            w->done = true;
        }
        n->sending = false;
        pthread_cond_broadcast(&n->cv);
    }
    pthread_mutex_unlock(&n->mu);
    if (me.status != PGCW_OK)
        pgcw__errf(err, errlen, "%s", me.err);
    return me.status;
}

pgcw__cache_test_hooks pgcw__cache_test;

pgcw_status pgcw__cache_announce(pgcw_cache *c, const char *what,
                                 const pgcw__notice *items, size_t count)
{
    if (!c->notifier || count == 0)
        return PGCW_OK;
    if (pgcw__cache_test.before_announce)
        pgcw__cache_test.before_announce();
    char err[512];
    pgcw_status st = pgcw__notifier_send(c->notifier, items, count,
                                         pgcw__cache_deadline(c), err, sizeof err);
    if (st != PGCW_OK)
        return pgcw__cache_fail(
            c, st,
            "%s: written, but its invalidation could not be sent (other "
            "clients may serve their copy until it expires): %s",
            what, err);
    return PGCW_OK;
}
