/*
 * harness_client.h - inside one client process: the checker each client carries
 * (harness_check.c) and the key naming both sides agree on.
 */
#ifndef PGCW_HARNESS_CLIENT_H
#define PGCW_HARNESS_CLIENT_H

#include "harness.h"

/* One notification waiting to be matched with the write that caused it. */
typedef struct hx_pending {
    int key;
    int64_t version;
    int64_t t; /* when the sink saw it */
} hx_pending;

/* What a client's watcher delivered of one key. */
typedef struct hx_nkey {
    _Atomic uint32_t seq;
    hx_ckpts ck;
} hx_nkey;

/* A client's checker: what its watcher told it, by key, and the delays. */
typedef struct hx_checker {
    const hx_cfg *cfg;
    hx_shm *shm;
    int client;
    hx_nkey *notified;  /* [keys]: written by the sink, read by the client */
    pthread_mutex_t mu; /* the pending list: the sink against the monitor */
    hx_pending *pending, *work;
    size_t n_pending, cap_pending, cap_work;
    uint64_t lost;
    /* The monitor's alone: */
    hx_hist delay;
    uint64_t unmatched;
} hx_checker;

/* Keys are "k<index>". The index of a key, or -1 when it is not one of ours. */
int hx_key_index(const char *key, size_t len, int keys);

bool hx_checker_init(hx_checker *ch, const hx_cfg *cfg, hx_shm *shm, int client);
void hx_checker_free(hx_checker *ch);
/* The sink (pgcw_sink_fn; ctx is the checker). */
void hx_checker_sink(void *ctx, const pgcw_event *ev);
/* The largest version of key notified to this client by time t. */
int64_t hx_checker_notified_by(hx_checker *ch, int key, int64_t t, int64_t *when);
/* Matches pending notifications with recorded commits into the delay histogram;
 * final: give up on the rest. Called by one thread at a time. */
void hx_checker_resolve(hx_checker *ch, int64_t now, bool final);

#endif
