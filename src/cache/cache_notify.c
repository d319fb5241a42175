/*
 * cache_notify.c - notify_after_commit: this library's writes skip the table's
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
 * the sender. A write returns only once its notification is sent, so
 * pgcw_cache_set()'s promise holds. Must never send a payload PostgreSQL would
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
    const pgcw__notice *items;
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
    uint64_t batches, sent; /* under mu */
};

void pgcw__notifier_counts(pgcw__notifier *n, uint64_t *batches, uint64_t *sent)
{
    pthread_mutex_lock(&n->mu);
    *batches = n->batches;
    *sent = n->sent;
    pthread_mutex_unlock(&n->mu);
}

pgcw_status pgcw__notifier_new(const pgcw__conn_params *params, const char *channel,
                               pgcw__notifier **out)
{
    pgcw__notifier *n = calloc(1, sizeof *n);
    if (!n)
        return PGCW_ENOMEM;
    n->params = params;
    pgcw__errf(n->channel, sizeof n->channel, "%s", channel);
    if (pthread_mutex_init(&n->mu, NULL) != 0 || pgcw__cond_init(&n->cv) != 0) {
        free(n);
        return PGCW_ENOMEM;
    }
    *out = n;
    return PGCW_OK;
}

void pgcw__notifier_free(pgcw__notifier *n)
{
    if (!n)
        return;
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
    PGresult *res = PQexec(n->conn.pg, "PREPARE pgcw_cache_notify (text, text) AS SELECT"
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

pgcw_status pgcw__notifier_send(pgcw__notifier *n, const pgcw__notice *items,
                                size_t count, int64_t deadline, char *err, size_t errlen)
{
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
            n->sent += st == PGCW_OK ? w->n : 0;
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

pgcw_status pgcw__cache_announce(pgcw_cache *c, const char *what,
                                 const pgcw__notice *items, size_t count)
{
    if (!c->notifier || count == 0)
        return PGCW_OK;
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
