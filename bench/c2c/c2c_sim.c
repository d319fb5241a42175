/*
 * c2c_sim.c - a software stand-in for `perf c2c` on machines without a PMU (this
 * KVM guest exposes none: perf c2c says "memory events not supported").
 *
 * The L1's sources are compiled with -fsanitize=thread, and this file replaces the
 * TSan runtime: every load and store the compiler instruments (and the copies,
 * compares and mutex calls c2c_shim.h routes here) updates a MESI-like state per
 * 64-byte line: which CPU holds it modified, which CPUs hold copies. While counting
 * (c2c_begin .. c2c_end) it records, per line and per instruction address, what
 * costs a transfer between cores: a load of a line another CPU holds modified (as
 * perf c2c's HITM) and a store to a line another CPU holds a copy of (an RFO that
 * must invalidate it). Caches are modelled as infinite, so this counts sharing,
 * not capacity misses. The CPU is whatever c2c_cpu() last said on this thread, so a
 * single thread can interleave two CPUs' operations deterministically; accesses to
 * that thread's own stack are not modelled (two real CPUs would have two stacks).
 * Never part of a normal build or of ctest (run.sh builds it).
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "c2c_sim.h"

#define TBITS 24
#define TSIZE (1u << TBITS)
#define PBITS 16
#define PSIZE (1u << PBITS)

/* Line state: line number << 8 | (owner CPU + 1, 0: none) | sharers mask << 4. */
static _Atomic uint64_t g_state[TSIZE];

typedef struct counted {
    _Atomic uint64_t key; /* line number + 1, or instruction address; 0: free */
    _Atomic uint64_t hitm, rfo;
} counted;
static counted g_lines[TSIZE], g_pcs[PSIZE];

static _Atomic int g_counting;
static _Atomic uint64_t g_accesses;
static _Thread_local int t_cpu;

void c2c_cpu(int cpu)
{
    t_cpu = cpu & 3;
}
void c2c_begin(void) /* not while another thread is counting */
{
    memset(g_lines, 0, sizeof g_lines);
    memset(g_pcs, 0, sizeof g_pcs);
    atomic_store(&g_accesses, 0);
    atomic_store(&g_counting, 1);
}
void c2c_end(void)
{
    atomic_store(&g_counting, 0);
}

static uint32_t mix(uint64_t x, unsigned bits)
{
    return (uint32_t)((x * 0x9E3779B97F4A7C15ull) >> (64 - bits));
}

/* The counter slot for key in table t of 2^bits slots (linear probing). */
static counted *slot_for(counted *t, unsigned bits, uint64_t key)
{
    uint32_t m = (1u << bits) - 1, i = mix(key, bits);
    for (uint32_t k = 0; k <= m; k++, i = (i + 1) & m) {
        uint64_t cur = atomic_load_explicit(&t[i].key, memory_order_relaxed), z = 0;
        if (cur == key ||
            (cur == 0 &&
             (atomic_compare_exchange_strong(&t[i].key, &z, key) || z == key)))
            return &t[i];
    }
    return NULL; /* full: uncounted */
}

static void count(counted *c, int hitm, int rfo)
{
    if (!c)
        return;
    atomic_fetch_add_explicit(&c->hitm, (uint64_t)hitm, memory_order_relaxed);
    atomic_fetch_add_explicit(&c->rfo, (uint64_t)rfo, memory_order_relaxed);
}

static void access_line(uint64_t line, int store, uintptr_t pc)
{
    uint64_t me = (uint64_t)t_cpu + 1, bit = 1u << t_cpu;
    _Atomic uint64_t *w = &g_state[mix(line, TBITS)];
    uint64_t o = atomic_load_explicit(w, memory_order_relaxed), n;
    int hitm, rfo;
    do {
        bool same = (o >> 8) == line;
        uint64_t owner = same ? o & 15 : 0, sharers = same ? (o >> 4) & 15 : 0;
        hitm = !store && owner && owner != me;
        rfo = store && ((owner && owner != me) || (sharers & ~bit));
        if (store)
            n = line << 8 | me | bit << 4;
        else
            n = line << 8 | (hitm ? 0 : owner) | (sharers | bit) << 4;
    } while (n != o && !atomic_compare_exchange_weak_explicit(
                           w, &o, n, memory_order_relaxed, memory_order_relaxed));
    if (!atomic_load_explicit(&g_counting, memory_order_relaxed))
        return;
    atomic_fetch_add_explicit(&g_accesses, 1, memory_order_relaxed);
    if (hitm || rfo) {
        count(slot_for(g_lines, TBITS, line + 1), hitm, rfo);
        count(slot_for(g_pcs, PBITS, pc), hitm, rfo);
    }
}

static void range(const void *p, size_t n, int store, uintptr_t pc)
{
    uintptr_t sp = (uintptr_t)__builtin_frame_address(0);
    if ((uintptr_t)p + 4096 > sp && (uintptr_t)p < sp + ((uintptr_t)8 << 20))
        return; /* this thread's stack */
    uintptr_t a = (uintptr_t)p >> 6, end = ((uintptr_t)p + n + 63) >> 6;
    for (; a < end; a++)
        access_line(a, store, pc);
}

#define PC ((uintptr_t)__builtin_return_address(0))

/* --- what -fsanitize=thread calls (the ones GCC emits for the L1) ------------ */
void __tsan_init(void);
void __tsan_func_entry(void *pc);
void __tsan_func_exit(void);
void __tsan_read_range(void *p, unsigned long n);
void __tsan_write_range(void *p, unsigned long n);
void __tsan_atomic_thread_fence(int mo);
void __tsan_init(void)
{
}
void __tsan_func_entry(void *pc)
{
    (void)pc;
}
void __tsan_func_exit(void)
{
}
void __tsan_read_range(void *p, unsigned long n)
{
    range(p, n, 0, PC);
}
void __tsan_write_range(void *p, unsigned long n)
{
    range(p, n, 1, PC);
}
void __tsan_atomic_thread_fence(int mo)
{
    (void)mo;
    atomic_thread_fence(memory_order_seq_cst);
}

#define PLAIN(n)                                                                         \
    void __tsan_read##n(void *p);                                                        \
    void __tsan_write##n(void *p);                                                       \
    void __tsan_read##n(void *p)                                                         \
    {                                                                                    \
        range(p, n, 0, PC);                                                              \
    }                                                                                    \
    void __tsan_write##n(void *p)                                                        \
    {                                                                                    \
        range(p, n, 1, PC);                                                              \
    }
PLAIN(1)
PLAIN(2)
PLAIN(4)
PLAIN(8)
PLAIN(16)

/* Atomics: counted as the access they are, then done for real (seq_cst). */
#define LOAD(n, T)                                                                       \
    T __tsan_atomic##n##_load(const volatile T *a, int mo);                              \
    T __tsan_atomic##n##_load(const volatile T *a, int mo)                               \
    {                                                                                    \
        (void)mo;                                                                        \
        range((const void *)a, sizeof(T), 0, PC);                                        \
        return __atomic_load_n(a, __ATOMIC_SEQ_CST);                                     \
    }
#define STORE(n, T)                                                                      \
    void __tsan_atomic##n##_store(volatile T *a, T v, int mo);                           \
    void __tsan_atomic##n##_store(volatile T *a, T v, int mo)                            \
    {                                                                                    \
        (void)mo;                                                                        \
        range((const void *)a, sizeof(T), 1, PC);                                        \
        __atomic_store_n(a, v, __ATOMIC_SEQ_CST);                                        \
    }
#define RMW(n, T, op, call)                                                              \
    T __tsan_atomic##n##_##op(volatile T *a, T v, int mo);                               \
    T __tsan_atomic##n##_##op(volatile T *a, T v, int mo)                                \
    {                                                                                    \
        (void)mo;                                                                        \
        range((const void *)a, sizeof(T), 1, PC);                                        \
        return call(a, v, __ATOMIC_SEQ_CST);                                             \
    }
#define CAS(n, T, kind, weak)                                                            \
    int __tsan_atomic##n##_compare_exchange_##kind(volatile T *a, T *c, T v, int mo,     \
                                                   int fmo);                             \
    int __tsan_atomic##n##_compare_exchange_##kind(volatile T *a, T *c, T v, int mo,     \
                                                   int fmo)                              \
    {                                                                                    \
        (void)mo, (void)fmo;                                                             \
        range((const void *)a, sizeof(T), 1, PC);                                        \
        return __atomic_compare_exchange_n(a, c, v, weak, __ATOMIC_SEQ_CST,              \
                                           __ATOMIC_SEQ_CST);                            \
    }
#define ALL(n, T)                                                                        \
    LOAD(n, T)                                                                           \
    STORE(n, T)                                                                          \
    RMW(n, T, exchange, __atomic_exchange_n)                                             \
    RMW(n, T, fetch_add, __atomic_fetch_add)                                             \
    RMW(n, T, fetch_sub, __atomic_fetch_sub)                                             \
    RMW(n, T, fetch_and, __atomic_fetch_and)                                             \
    RMW(n, T, fetch_or, __atomic_fetch_or)                                               \
    CAS(n, T, strong, 0)                                                                 \
    CAS(n, T, weak, 1)
ALL(8, char)
ALL(16, short)
ALL(32, int)
ALL(64, long)

/* --- c2c_shim.h ----------------------------------------------------------------- */
void *c2c_memcpy(void *d, const void *s, size_t n);
int c2c_memcmp(const void *a, const void *b, size_t n);
void *c2c_memset(void *d, int c, size_t n);
int c2c_lock(pthread_mutex_t *m);
int c2c_unlock(pthread_mutex_t *m);
void *c2c_memcpy(void *d, const void *s, size_t n)
{
    range(s, n, 0, PC);
    range(d, n, 1, PC);
    return memcpy(d, s, n);
}
int c2c_memcmp(const void *a, const void *b, size_t n)
{
    range(a, n, 0, PC);
    range(b, n, 0, PC);
    return memcmp(a, b, n);
}
void *c2c_memset(void *d, int c, size_t n)
{
    range(d, n, 1, PC);
    return memset(d, c, n);
}
int c2c_lock(pthread_mutex_t *m)
{
    range(m, sizeof(int), 1, PC); /* the lock word: an atomic exchange */
    return pthread_mutex_lock(m);
}
int c2c_unlock(pthread_mutex_t *m)
{
    range(m, sizeof(int), 1, PC);
    return pthread_mutex_unlock(m);
}

/* --- report ------------------------------------------------------------------- */
static int by_events(const void *a, const void *b)
{
    const counted *x = *(counted *const *)a, *y = *(counted *const *)b;
    uint64_t u = x->hitm + x->rfo, v = y->hitm + y->rfo;
    return u < v ? 1 : u > v ? -1 : 0;
}

static size_t collect(counted *t, size_t size, counted **out)
{
    size_t n = 0;
    for (size_t i = 0; i < size; i++)
        if (t[i].key && (t[i].hitm || t[i].rfo))
            out[n++] = &t[i];
    qsort(out, n, sizeof(*out), by_events);
    return n;
}

void c2c_report(FILE *f, uint64_t ops, c2c_classify_fn classify)
{
    static counted *v[TSIZE];
    enum { NC = 48 };
    char name[NC][80];
    uint64_t ch[NC] = {0}, cr[NC] = {0}, cl[NC] = {0}, th = 0, tr = 0;
    int nc = 0;
    size_t n = collect(g_lines, TSIZE, v);
    for (size_t i = 0; i < n; i++) {
        char buf[160];
        classify((uintptr_t)((v[i]->key - 1) << 6), buf, sizeof buf);
        char *detail = strchr(buf, '#'); /* "class#detail": totals by class */
        if (detail)
            *detail = 0;
        int k = 0;
        while (k < nc && strcmp(name[k], buf) != 0)
            k++;
        if (k == nc && nc < NC)
            snprintf(name[nc++], sizeof name[0], "%s", buf);
        if (k == NC)
            continue;
        ch[k] += v[i]->hitm;
        cr[k] += v[i]->rfo;
        cl[k]++;
        th += v[i]->hitm;
        tr += v[i]->rfo;
    }
    fprintf(f,
            "c2c-sim: %llu ops, %llu accesses counted; HITM loads %llu, RFO stores %llu:"
            " %.3f line transfers per op\n",
            (unsigned long long)ops, (unsigned long long)g_accesses,
            (unsigned long long)th, (unsigned long long)tr,
            ops ? (double)(th + tr) / (double)ops : 0.0);
    fprintf(f,
            "by class:                                      HITM        RFO   lines\n");
    for (int k = 0; k < nc; k++)
        fprintf(f, "  %-40s %10llu %10llu %7llu\n", name[k], (unsigned long long)ch[k],
                (unsigned long long)cr[k], (unsigned long long)cl[k]);
    fprintf(f, "top lines:\n");
    for (size_t i = 0; i < n && i < 24; i++) {
        char buf[160];
        classify((uintptr_t)((v[i]->key - 1) << 6), buf, sizeof buf);
        fprintf(f, "  %#14llx %-52s HITM %9llu RFO %9llu\n",
                (unsigned long long)((v[i]->key - 1) << 6), buf,
                (unsigned long long)v[i]->hitm, (unsigned long long)v[i]->rfo);
    }
    static counted *p[PSIZE];
    size_t m = collect(g_pcs, PSIZE, p);
    fprintf(f, "top instructions:\n");
    for (size_t i = 0; i < m && i < 40; i++)
        fprintf(f, "  pc %#llx HITM %llu RFO %llu\n", (unsigned long long)p[i]->key,
                (unsigned long long)p[i]->hitm, (unsigned long long)p[i]->rfo);
}
