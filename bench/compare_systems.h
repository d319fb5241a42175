/*
 * compare_systems.h - bench_compare's four systems behind one client interface:
 *   lib-l1     pgcw_cache with its L1 (default notify mode: the table's trigger),
 *   lib-no-l1  pgcw_cache with disable_l1 (every get one round trip),
 *   raw-libpq  a plain blocking PGconn per thread running the library's own
 *              prepared statements (the SELECT with its expiry check, the upsert;
 *              cache_bench.h takes them from src/cache, so they cannot drift),
 *   redis      a hiredis redisContext per thread: GET, SET k v PX ttl;
 * and, for writes only, for information:
 *   lib-l1-bg  lib-l1 with notify_mode PGCW_CACHE_NOTIFY_BACKGROUND (writes skip
 *              the trigger; the cache's thread sends their notifications in
 *              batches after commit: cache.h, "Write path").
 * The library is used as a service would use it: one pgcw_cache per process,
 * shared by every thread, with pool_size = the number of threads (so each thread
 * can hold a connection, as each raw and Redis client holds its own). Everything
 * connects over TCP to 127.0.0.1, PostgreSQL and Redis alike.
 *
 * Bench-only; included once by bench_compare.c. Any error ends the run: a
 * failed operation is never counted.
 */
#ifndef PGCW_BENCH_COMPARE_SYSTEMS_H
#define PGCW_BENCH_COMPARE_SYSTEMS_H

#include <hiredis/hiredis.h>
#include <sys/time.h>

#include "cache_bench.h"

enum { SYS_L1, SYS_NOL1, SYS_RAW, SYS_REDIS, SYS_BG, N_SYS };

static const char *const k_sys_names[N_SYS] = {"lib-l1", "lib-no-l1", "raw-libpq",
                                               "redis", "lib-l1-bg"};

/* What every system's clients need, for the whole run. */
typedef struct sys_env {
    const bench_cfg *c; /* c->dsn: PostgreSQL */
    const char *setup;  /* the library's setup SQL (PREPAREs), for raw-libpq */
    const char *redis_host;
    int redis_port;
} sys_env;

/* One system for one measurement: the part a process holds once. */
typedef struct sys_inst {
    int sys;
    const sys_env *env;
    pgcw_cache *cache; /* lib-l1, lib-no-l1: shared by every thread */
} sys_inst;

/* One thread's client. */
typedef struct client {
    const sys_inst *s;
    pgcw_cache *cache; /* borrowed from s */
    PGconn *pg;
    redisContext *rc;
} client;

static inline pgcw_cache_opts compare_cache_opts(int sys, size_t pool)
{
    pgcw_cache_opts o = {.schema_prefix = BENCH_PREFIX,
                         .notify_channel = BENCH_CHANNEL,
                         .disable_l1 = sys == SYS_NOL1,
                         .notify_mode = sys == SYS_BG ? PGCW_CACHE_NOTIFY_BACKGROUND
                                                      : PGCW_CACHE_NOTIFY_TRIGGER,
                         .pool_size = pool};
    return o;
}

static inline void sys_open(sys_inst *s, const sys_env *e, int sys, size_t threads)
{
    *s = (sys_inst){.sys = sys, .env = e};
    if (sys != SYS_RAW && sys != SYS_REDIS) {
        pgcw_cache_opts o = compare_cache_opts(sys, threads);
        s->cache = bench_cache_new(e->c, &o);
    }
}

static inline void sys_close(sys_inst *s)
{
    pgcw_cache_free(s->cache);
    s->cache = NULL;
}

static inline redisContext *redis_connect(const sys_env *e)
{
    struct timeval tv = {5, 0};
    redisContext *rc = redisConnectWithTimeout(e->redis_host, e->redis_port, tv);
    if (!rc || rc->err)
        bench_die("redis connect %s:%d: %s", e->redis_host, e->redis_port,
                  rc ? rc->errstr : "out of memory");
    if (redisSetTimeout(rc, (struct timeval){30, 0}) != REDIS_OK)
        bench_die("redis: cannot set the timeout");
    return rc;
}

/* A reply of the expected type, else the run ends. */
static inline redisReply *redis_check(redisContext *rc, void *r, int type,
                                      const char *what)
{
    redisReply *rep = r;
    if (!rep)
        bench_die("redis %s: %s", what, rc->errstr);
    if (rep->type != type &&
        !(type == REDIS_REPLY_STRING && rep->type == REDIS_REPLY_NIL))
        bench_die("redis %s: reply type %d (%s)", what, rep->type,
                  rep->type == REDIS_REPLY_ERROR ? rep->str : "");
    return rep;
}

static inline void client_open(client *cl, const sys_inst *s)
{
    *cl = (client){.s = s, .cache = s->cache};
    if (s->sys == SYS_RAW)
        cl->pg = bench_raw_connect(s->env->c, s->env->setup);
    else if (s->sys == SYS_REDIS)
        cl->rc = redis_connect(s->env);
}

static inline void client_close(client *cl)
{
    if (cl->pg)
        PQfinish(cl->pg);
    if (cl->rc)
        redisFree(cl->rc);
    cl->pg = NULL;
    cl->rc = NULL;
}

/* Reads key into buf (BENCH_VALUE_LEN bytes); returns its length, or -1 when the
 * key is absent or expired. Every system copies the value into buf. */
static inline long client_get(client *cl, const char *key, size_t kl, char *buf)
{
    switch (cl->s->sys) {
    case SYS_L1:
    case SYS_NOL1:
    case SYS_BG: {
        size_t len = 0;
        pgcw_status st =
            pgcw_cache_get_into(cl->cache, key, kl, buf, BENCH_VALUE_LEN, &len);
        if (st == PGCW_ENOTFOUND)
            return -1;
        if (st != PGCW_OK)
            bench_die("get %s: %s %s", key, pgcw_strerror(st),
                      pgcw_cache_errmsg(cl->cache));
        return (long)len;
    }
    case SYS_RAW: {
        const char *values[1] = {key};
        int lengths[1] = {(int)kl};
        PGresult *r =
            PQexecPrepared(cl->pg, PGCW__ST_GET, 1, values, lengths, k_bench_binary, 1);
        if (PQresultStatus(r) != PGRES_TUPLES_OK)
            bench_die("raw get: %s", PQerrorMessage(cl->pg));
        long len = -1;
        if (PQntuples(r) == 1) {
            len = PQgetlength(r, 0, 0);
            if (len > BENCH_VALUE_LEN)
                bench_die("raw get %s: %ld bytes", key, len);
            memcpy(buf, PQgetvalue(r, 0, 0), (size_t)len);
        }
        PQclear(r);
        return len;
    }
    default: {
        redisReply *rep = redis_check(cl->rc, redisCommand(cl->rc, "GET %b", key, kl),
                                      REDIS_REPLY_STRING, "GET");
        long len = -1;
        if (rep->type == REDIS_REPLY_STRING) {
            len = (long)rep->len;
            if (len > BENCH_VALUE_LEN)
                bench_die("redis GET %s: %ld bytes", key, len);
            memcpy(buf, rep->str, (size_t)len);
        }
        freeReplyObject(rep);
        return len;
    }
    }
}

/* Writes key = val for ttl_ms (> 0). */
static inline void client_set(client *cl, const char *key, size_t kl, const char *val,
                              size_t vl, int64_t ttl_ms)
{
    switch (cl->s->sys) {
    case SYS_L1:
    case SYS_NOL1:
    case SYS_BG: {
        pgcw_status st = pgcw_cache_set(cl->cache, key, kl, val, vl, ttl_ms);
        if (st != PGCW_OK)
            bench_die("set %s: %s %s", key, pgcw_strerror(st),
                      pgcw_cache_errmsg(cl->cache));
        return;
    }
    case SYS_RAW: {
        char ttl[8];
        pgcw__put_int64(ttl, ttl_ms);
        const char *values[3] = {key, val, ttl};
        int lengths[3] = {(int)kl, (int)vl, 8};
        PGresult *r =
            PQexecPrepared(cl->pg, PGCW__ST_SET, 3, values, lengths, k_bench_binary, 1);
        if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
            bench_die("raw set: %s", PQerrorMessage(cl->pg));
        PQclear(r);
        return;
    }
    default: {
        redisReply *rep = redis_check(cl->rc,
                                      redisCommand(cl->rc, "SET %b %b PX %lld", key, kl,
                                                   val, vl, (long long)ttl_ms),
                                      REDIS_REPLY_STATUS, "SET");
        freeReplyObject(rep);
        return;
    }
    }
}

/* Writes keys ns:0 .. ns:n-1 (generation 0) with ttl_ms into PostgreSQL (one
 * transaction, the library's upsert) and into Redis (one pipeline): every system
 * starts from the same rows. */
static inline void compare_populate(const sys_env *e, const char *ns, long n,
                                    int64_t ttl_ms)
{
    PGconn *pg = bench_raw_connect(e->c, e->setup);
    sys_inst s = {.sys = SYS_RAW, .env = e};
    client cl = {.s = &s, .pg = pg};
    redisContext *rc = redis_connect(e);
    char key[BENCH_KEY_MAX], val[BENCH_VALUE_LEN];
    bench_exec(pg, "BEGIN");
    for (long i = 0; i < n; i++) {
        size_t kl = bench_key(key, ns, i);
        bench_value(val, sizeof val, i, 0);
        client_set(&cl, key, kl, val, sizeof val, ttl_ms);
        if (redisAppendCommand(rc, "SET %b %b PX %lld", key, kl, val, sizeof val,
                               (long long)ttl_ms) != REDIS_OK)
            bench_die("redis: out of memory");
    }
    bench_exec(pg, "COMMIT");
    for (long i = 0; i < n; i++) {
        void *r = NULL;
        if (redisGetReply(rc, &r) != REDIS_OK)
            bench_die("redis SET: %s", rc->errstr);
        freeReplyObject(redis_check(rc, r, REDIS_REPLY_STATUS, "SET"));
    }
    redisFree(rc);
    PQfinish(pg);
}

#endif
