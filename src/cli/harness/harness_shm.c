/*
 * harness_shm.c - the memory the harness's parent and its client processes share:
 * one anonymous MAP_SHARED mapping made before fork, holding per key the
 * checkpoints and a ring of recent commits (writers serialize on a process-shared
 * mutex, readers follow a seqlock),
 * per client the progress counters and chaos slots, per process its result.
 *
 * Must never hold a key's lock across a call into the cache or PostgreSQL.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <sys/mman.h>

#include "harness.h"

const char *const hx_op_names[HX_N_OPS] = {"get_hit", "get_miss", "set", "delete",
                                           "get_or_set"};

int64_t hx_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void hx_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

uint64_t hx_rand(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1DULL;
}

int64_t hx_commit_bound_ns(const hx_cfg *cfg)
{
    int64_t ms = cfg->bound_ms + (cfg->disable_notify ? cfg->l1_ttl_ms : 0);
    return ms * 1000000;
}

bool hx_is_writer(const hx_cfg *cfg, int client)
{
    return client < cfg->writers;
}

int hx_process_of(const hx_cfg *cfg, int client)
{
    return client % cfg->processes;
}

static size_t align64(size_t n)
{
    return (n + 63) & ~(size_t)63;
}

hx_shm *hx_shm_new(const hx_cfg *cfg)
{
    int clients = cfg->writers + cfg->readers;
    size_t off_key = align64(sizeof(hx_shm));
    size_t off_slot = off_key + align64((size_t)cfg->keys * sizeof(hx_key));
    size_t off_res = off_slot + align64((size_t)clients * sizeof(hx_client_slot));
    size_t size = off_res + (size_t)cfg->processes * sizeof(hx_result);
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        perror(CLI_PROG " harness: mmap of the shared state");
        return NULL;
    }
    /* The mapping is zeroed: every counter and histogram starts empty. */
    hx_shm *s = p;
    s->keys = cfg->keys;
    s->clients = clients;
    s->processes = cfg->processes;
    s->key = (hx_key *)((char *)p + off_key);
    s->slot = (hx_client_slot *)((char *)p + off_slot);
    s->result = (hx_result *)((char *)p + off_res);
    s->size = size;
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    for (int i = 0; i < cfg->keys; i++)
        pthread_mutex_init(&s->key[i].mu, &a);
    pthread_mutexattr_destroy(&a);
    return s;
}

void hx_shm_free(hx_shm *s)
{
    if (!s)
        return;
    for (int i = 0; i < s->keys; i++)
        pthread_mutex_destroy(&s->key[i].mu);
    munmap(s, s->size);
}

#define ST(field, v) atomic_store_explicit(&(field), (v), memory_order_relaxed)
#define LD(field) atomic_load_explicit(&(field), memory_order_relaxed)

void hx_shm_commit(hx_shm *s, int key, const hx_commit *c, int64_t spacing)
{
    hx_key *k = &s->key[key];
    pthread_mutex_lock(&k->mu);
    hx_seq_write_begin(&k->seq);
    hx_ckpt_record(&k->committed, c->version, c->t_ret, spacing);
    uint32_t i = LD(k->next) % HX_COMMIT_RING;
    ST(k->ring[i].version, c->version);
    ST(k->ring[i].t_start, c->t_start);
    ST(k->ring[i].t_ret, c->t_ret);
    ST(k->ring[i].client, c->client);
    ST(k->ring[i].seq, c->seq);
    ST(k->next, LD(k->next) + 1);
    hx_seq_write_end(&k->seq);
    pthread_mutex_unlock(&k->mu);
}

int64_t hx_shm_committed_by(hx_shm *s, int key, int64_t t, int64_t *when)
{
    return hx_ckpt_read(&s->key[key].seq, &s->key[key].committed, t, when);
}

bool hx_shm_find(hx_shm *s, int key, int64_t version, hx_commit *out)
{
    hx_key *k = &s->key[key];
    bool found;
    uint32_t b;
    do {
        b = hx_seq_read_begin(&k->seq);
        found = false;
        for (unsigned i = 0; i < HX_COMMIT_RING && !found; i++)
            if (version > 0 && LD(k->ring[i].version) == version) {
                out->version = version;
                out->t_start = LD(k->ring[i].t_start);
                out->t_ret = LD(k->ring[i].t_ret);
                out->client = LD(k->ring[i].client);
                out->seq = LD(k->ring[i].seq);
                found = true;
            }
    } while (hx_seq_read_retry(&k->seq, b));
    return found;
}
