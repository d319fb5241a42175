/*
 * harness_check.c - the consistency checker's memory: checkpoints of what was
 * committed or notified by when, the sink that records each notification a client
 * receives, and the invalidation delay (the writer's call start -> the
 * notification in another client), matched once the writer has recorded its
 * commit.
 *
 * Must never call into the cache or block in the sink beyond its own short lock:
 * the sink runs on the watcher's thread, before the next notification.
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

#include "harness_client.h"

/* Pending notifications older than this that match no recorded commit (deletes,
 * get_or_set loads, commits already gone from the ring) stop being looked for. */
#define MATCH_WAIT_NS 1000000000LL

/* Notifications a client can hold while they wait to be matched: a second of a
 * client's notifications under the soak's load is some 700. Fixed and touched at
 * start: grown by doubling, these buffers were what made a long run's memory creep
 * up (each new high-water mark of a backlog a step). What does not fit is counted
 * as unmatched, which the report shows. */
#define PENDING_CAP 4096

int hx_key_index(const char *key, size_t len, int keys)
{
    if (len < 2 || len > 11 || key[0] != 'k')
        return -1;
    long v = 0;
    for (size_t i = 1; i < len; i++) {
        if (key[i] < '0' || key[i] > '9')
            return -1;
        v = v * 10 + (key[i] - '0');
    }
    return v < keys ? (int)v : -1;
}

bool hx_checker_init(hx_checker *ch, const hx_cfg *cfg, hx_shm *shm, int client)
{
    memset(ch, 0, sizeof *ch);
    ch->cfg = cfg;
    ch->shm = shm;
    ch->client = client;
    ch->notified = calloc((size_t)cfg->keys, sizeof *ch->notified);
    ch->pending = malloc(PENDING_CAP * sizeof *ch->pending);
    ch->work = malloc(PENDING_CAP * sizeof *ch->work);
    if (!ch->notified || !ch->pending || !ch->work) {
        free(ch->notified);
        free(ch->pending);
        free(ch->work);
        ch->notified = NULL;
        return false;
    }
    memset(ch->pending, 0, PENDING_CAP * sizeof *ch->pending);
    memset(ch->work, 0, PENDING_CAP * sizeof *ch->work);
    ch->cap_pending = ch->cap_work = PENDING_CAP;
    pthread_mutex_init(&ch->mu, NULL);
    return true;
}

void hx_checker_free(hx_checker *ch)
{
    if (!ch->notified)
        return;
    pthread_mutex_destroy(&ch->mu);
    free(ch->notified);
    free(ch->pending);
    free(ch->work);
    ch->notified = NULL;
}

void hx_checker_sink(void *ctx, const pgcw_event *ev)
{
    hx_checker *ch = ctx;
    if (ev->kind != PGCW_EVENT_KEY)
        return; /* a gap: the cache's own sink flushes its L1 */
    int key = hx_key_index(ev->key, ev->key_len, ch->cfg->keys);
    if (key < 0)
        return;
    int64_t now = hx_now_ns();
    hx_nkey *nk = &ch->notified[key];
    hx_seq_write_begin(&nk->seq); /* this sink is the only writer */
    hx_ckpt_record(&nk->ck, ev->version, now, ch->cfg->notify_bound_ms * 250000);
    hx_seq_write_end(&nk->seq);
    pthread_mutex_lock(&ch->mu);
    if (ch->n_pending < ch->cap_pending)
        ch->pending[ch->n_pending++] = (hx_pending){key, ev->version, now};
    else
        ch->lost++; /* no room: not measured, counted as unmatched in the report */
    pthread_mutex_unlock(&ch->mu);
}

int64_t hx_checker_notified_by(hx_checker *ch, int key, int64_t t, int64_t *when)
{
    return hx_ckpt_read(&ch->notified[key].seq, &ch->notified[key].ck, t, when);
}

void hx_checker_resolve(hx_checker *ch, int64_t now, bool final)
{
    /* Take the pending list (the sink keeps appending to a fresh one). */
    pthread_mutex_lock(&ch->mu);
    hx_pending *in = ch->pending;
    size_t n = ch->n_pending, cap = ch->cap_pending;
    ch->pending = ch->work;
    ch->cap_pending = ch->cap_work;
    ch->n_pending = 0;
    pthread_mutex_unlock(&ch->mu);
    size_t keep = 0;
    for (size_t i = 0; i < n; i++) {
        hx_commit c;
        if (hx_shm_find(ch->shm, in[i].key, in[i].version, &c)) {
            if (c.client != ch->client)
                hx_hist_record(&ch->delay, in[i].t - c.t_start);
        } else if (!final && now - in[i].t < MATCH_WAIT_NS) {
            in[keep++] = in[i];
        } else {
            ch->unmatched++;
        }
    }
    /* What is still unmatched goes back in front of what arrived meanwhile. */
    pthread_mutex_lock(&ch->mu);
    if (keep > 0 && ch->n_pending + keep <= cap) {
        if (ch->n_pending > 0)
            memcpy(in + keep, ch->pending, ch->n_pending * sizeof *in);
        keep += ch->n_pending;
        ch->work = ch->pending;
        ch->cap_work = ch->cap_pending;
        ch->pending = in;
        ch->cap_pending = cap;
        ch->n_pending = keep;
    } else {
        ch->unmatched += keep; /* no room to keep them: given up on */
        ch->work = in;
        ch->cap_work = cap;
    }
    pthread_mutex_unlock(&ch->mu);
}
