/*
 * lru_sim.h - exact reference policies for bench_l1's hit-ratio comparison: LRU
 * (hash map + doubly linked list, move-to-front on every access) and SIEVE (one
 * FIFO with visited bits and a hand), both over 64-bit keys, single-threaded.
 *
 * They simulate the same trace the L1 runs: a set inserts or touches the key; a get
 * that misses inserts it too when the trace fills on a miss (cache-aside), else
 * not. Bench-only: aborts on OOM.
 */
#ifndef PGCW_BENCH_LRU_SIM_H
#define PGCW_BENCH_LRU_SIM_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define SIM_NIL UINT32_MAX

typedef struct sim_node {
    uint64_t key;
    uint32_t prev, next, hnext;
    bool visited;
} sim_node;

typedef struct sim {
    sim_node *nodes;
    uint32_t *buckets;
    uint32_t nbuckets; /* power of two */
    uint32_t cap, used;
    uint32_t head, tail; /* head: most recent / newest */
    uint32_t hand;       /* SIEVE only */
    uint64_t hits, misses;
} sim;

static inline uint32_t sim_bucket(const sim *s, uint64_t key)
{
    uint64_t h = key * 0x9E3779B97F4A7C15u;
    return (uint32_t)(h >> 32) & (s->nbuckets - 1);
}

static inline void sim_init(sim *s, uint32_t cap)
{
    s->cap = cap;
    s->used = 0;
    s->nbuckets = 1;
    while (s->nbuckets < cap * 2)
        s->nbuckets <<= 1;
    s->nodes = malloc(sizeof(*s->nodes) * cap);
    s->buckets = malloc(sizeof(*s->buckets) * s->nbuckets);
    if (!s->nodes || !s->buckets) {
        fprintf(stderr, "lru_sim: out of memory\n");
        exit(1);
    }
    for (uint32_t i = 0; i < s->nbuckets; i++)
        s->buckets[i] = SIM_NIL;
    s->head = s->tail = s->hand = SIM_NIL;
    s->hits = s->misses = 0;
}

static inline void sim_free(sim *s)
{
    free(s->nodes);
    free(s->buckets);
}

static inline uint32_t sim_find(const sim *s, uint64_t key)
{
    uint32_t i = s->buckets[sim_bucket(s, key)];
    while (i != SIM_NIL && s->nodes[i].key != key)
        i = s->nodes[i].hnext;
    return i;
}

static inline void sim_unlink(sim *s, uint32_t i)
{
    sim_node *n = &s->nodes[i];
    if (n->prev != SIM_NIL)
        s->nodes[n->prev].next = n->next;
    else
        s->head = n->next;
    if (n->next != SIM_NIL)
        s->nodes[n->next].prev = n->prev;
    else
        s->tail = n->prev;
}

static inline void sim_push_head(sim *s, uint32_t i)
{
    sim_node *n = &s->nodes[i];
    n->prev = SIM_NIL;
    n->next = s->head;
    if (s->head != SIM_NIL)
        s->nodes[s->head].prev = i;
    s->head = i;
    if (s->tail == SIM_NIL)
        s->tail = i;
}

static inline void sim_unhash(sim *s, uint32_t i)
{
    uint32_t *pp = &s->buckets[sim_bucket(s, s->nodes[i].key)];
    while (*pp != i)
        pp = &s->nodes[*pp].hnext;
    *pp = s->nodes[i].hnext;
}

/* Inserts key at the head, reusing slot `i`. */
static inline void sim_insert(sim *s, uint32_t i, uint64_t key)
{
    sim_node *n = &s->nodes[i];
    n->key = key;
    n->visited = false;
    uint32_t b = sim_bucket(s, key);
    n->hnext = s->buckets[b];
    s->buckets[b] = i;
    sim_push_head(s, i);
}

/* LRU: a hit moves to the head; a miss (if `insert`) evicts the tail when full
 * and inserts at the head. */
static inline bool lru_access(sim *s, uint64_t key, bool insert)
{
    uint32_t i = sim_find(s, key);
    if (i != SIM_NIL) {
        sim_unlink(s, i);
        sim_push_head(s, i);
        return true;
    }
    if (!insert)
        return false;
    if (s->used < s->cap) {
        i = s->used++;
    } else {
        i = s->tail;
        sim_unlink(s, i);
        sim_unhash(s, i);
    }
    sim_insert(s, i, key);
    return false;
}

/* SIEVE (Zhang et al., NSDI'24): a hit sets the visited bit; to evict, the hand
 * walks from the tail towards the head clearing visited bits and evicts the first
 * unvisited node; new keys go to the head. */
static inline bool sieve_access(sim *s, uint64_t key, bool insert)
{
    uint32_t i = sim_find(s, key);
    if (i != SIM_NIL) {
        s->nodes[i].visited = true;
        return true;
    }
    if (!insert)
        return false;
    if (s->used < s->cap) {
        i = s->used++;
    } else {
        uint32_t h = s->hand != SIM_NIL ? s->hand : s->tail;
        while (s->nodes[h].visited) {
            s->nodes[h].visited = false;
            h = s->nodes[h].prev != SIM_NIL ? s->nodes[h].prev : s->tail;
        }
        s->hand = s->nodes[h].prev;
        i = h;
        sim_unlink(s, i);
        sim_unhash(s, i);
    }
    sim_insert(s, i, key);
    return false;
}

#endif
