/*
 * c2c_l1.c - names the L1's cache lines for the coherence simulator's report: the
 * cache handle, each shard's lines by the fields that start in them, reader slots,
 * buckets, fill generations, ghosts, slab memory (entries). Compiled without the
 * instrumentation; reads the cache only after the counting ends.
 */
#include <stdio.h>
#include <string.h>

#include "c2c_sim.h"
#include "pgcw_testhook.h"

static pgcw_l1 *g_c;

void c2c_l1_watch(pgcw_l1 *c)
{
    g_c = c;
}

/* The shard fields starting in [off, off + 64), comma-separated. */
static void shard_fields(size_t off, char *buf, size_t n)
{
    static const struct {
        size_t off;
        const char *name;
    } f[] = {
#define F(x) {offsetof(pgcw__l1_shard, x), #x}
        F(table), F(gmask), F(gens),  F(seed),   F(ghost),      F(nghost),
        F(cap_n), F(mu),    F(small), F(live_n), F(live_bytes), F(main),
        F(slab),  F(ct),    F(aged),  F(lanes),
#undef F
    };
    buf[0] = 0;
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
        size_t end =
            i + 1 < sizeof f / sizeof f[0] ? f[i + 1].off : sizeof(pgcw__l1_shard);
        if (f[i].off < off + 64 && end > off && strlen(buf) + strlen(f[i].name) + 2 < n) {
            strcat(buf, buf[0] ? "," : "");
            strcat(buf, f[i].name);
        }
    }
}

void c2c_l1_name(uintptr_t a, char *buf, size_t n)
{
    pgcw_l1 *c = g_c;
    char fl[96];
    if (c && a + 64 > (uintptr_t)c && a < (uintptr_t)(c + 1)) {
        snprintf(buf, n, "cache handle#+%zu", (size_t)(a - (uintptr_t)c));
    } else if (c && a >= (uintptr_t)c->shards &&
               a < (uintptr_t)(c->shards + c->nshards)) {
        size_t off = (a - (uintptr_t)c->shards) % sizeof(pgcw__l1_shard);
        shard_fields(off, fl, sizeof fl);
        snprintf(buf, n, "shard +%zu (%s)#%zu", off, fl,
                 (size_t)(a - (uintptr_t)c->shards) / sizeof(pgcw__l1_shard));
    } else if (c && a >= (uintptr_t)c->readers &&
               a < (uintptr_t)(c->readers + PGCW__L1_READERS)) {
        snprintf(buf, n, "reader slot#%zu", (size_t)(a - (uintptr_t)c->readers) / 64);
    } else if (c && a >= (uintptr_t)c->tables &&
               a < (uintptr_t)c->tables + c->tables_bytes) {
        snprintf(buf, n, "buckets");
    } else {
        snprintf(buf, n, "other");
        for (unsigned i = 0; c && i < c->nshards; i++) {
            pgcw__l1_shard *s = &c->shards[i];
            if (a >= (uintptr_t)s->gens && a < (uintptr_t)(s->gens + s->gmask + 1))
                snprintf(buf, n, "fill generations");
            if (a >= (uintptr_t)s->ghost && a < (uintptr_t)(s->ghost + s->nghost))
                snprintf(buf, n, "ghost fingerprints");
        }
        for (void *ch = c ? c->pool.chunks : NULL; ch; memcpy(&ch, ch, sizeof ch))
            if (a >= (uintptr_t)ch && a < (uintptr_t)ch + ((size_t)2 << 20))
                snprintf(buf, n, "slab (entries)");
    }
}
