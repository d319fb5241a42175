/*
 * cache_internal.h - the cache module's shared state: the handle, its schema names
 * and statements, the L1 gate, and the helpers every operation file uses.
 *
 *   cache.c         the handle: options, new/free, statistics, errors
 *   cache_schema.c  names from the prefix, the pool's setup SQL, init_db migrations
 *   cache_local.c   the L1 side: the sink that evicts, the health gate, fills
 *   cache_ops.c     get / set / delete and their batches over the pool
 *   cache_combine.c concurrent single writes committed together
 *   cache_load.c    get_or_set: single flight, advisory lock, lease
 *   cache_hash.c    postgres-cache's advisory-lock key (BLAKE2b-64)
 */
#ifndef PGCW_CACHE_INTERNAL_H
#define PGCW_CACHE_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conn_internal.h"
#include "conn_pool.h"
#include "core_sflight.h"
#include "core_util.h"
#include "pgcachewatch/cache.h"
#include "pgcachewatch/l1.h"
#include "pgcachewatch/watcher.h"

typedef struct pgcw__notifier pgcw__notifier;
typedef struct pgcw__combiner pgcw__combiner;
typedef struct pgcw__vis pgcw__vis;

/* Names of the schema objects, quoted, for a prefix (cache_schema.c). */
typedef struct pgcw__cache_names {
    char *entries_table;
    char *expires_index;
    char *set_updated_function;
    char *set_updated_trigger;
    char *broadcast_function;
    char *broadcast_trigger;
    char *cleanup_function;
    char *schema_table;
    char *notify_channel_literal;
} pgcw__cache_names;

/* Validated settings with defaults applied. */
typedef struct pgcw__cache_cfg {
    char channel[64];
    char prefix[64]; /* folded to lower case, as PostgreSQL folds the unquoted names
                      * postgres-cache pastes */
    bool notify;     /* L1 evicted by notifications */
    pgcw_cache_notify_mode notify_mode;
    bool l1;
    size_t pool_size;
    size_t l1_max_entries, l1_max_bytes;
    int64_t l1_ttl_us; /* 0: no cap */
    int64_t default_ttl_ms;
    size_t queue_size;
    int64_t lock_timeout_ms;
    int cleanup_batch;
    pgcw_cache_durability durability;
    int64_t statement_timeout_ms; /* < 0: none */
    pgcw_log_fn log;
    void *log_ctx;
} pgcw__cache_cfg;

typedef struct pgcw__cache_counters {
    /* L1 hits and misses are the L1's own (no shared line on the hit path). */
    atomic_uint_fast64_t l2_hits, l2_misses, bypasses, sets, deletes, loads, load_errors,
        flight_waits, lock_waits, lock_timeouts, lease_refusals, inv_received,
        inv_applied, refused_fills, flushes, retries, errors;
    /* notify_mode LOGICAL's visibility checks (cache_logical_vis.c) */
    atomic_uint_fast64_t vis_checks, vis_check_failures, vis_rechecks, vis_confirmed,
        vis_overflows, vis_delay_us_total, vis_delay_us_max;
} pgcw__cache_counters;

struct pgcw_cache {
    bool null; /* pgcw_cache_new_null() */
    pgcw__cache_cfg cfg;
    pgcw__cache_names names;
    pgcw__conn_params params;
    pgcw__pool *pool;
    pgcw_l1 *l1;           /* NULL with disable_l1 */
    pgcw_watcher *watcher; /* NULL with disable_notify */
    bool own_watcher;
    pgcw_sink *sink;
    pgcw__sflight *flights;
    pgcw__notifier *notifier; /* notify modes other than TRIGGER */
    pgcw__combiner *combiner; /* concurrent single writes commit together */
    pgcw__vis *vis;           /* notify_mode LOGICAL with an L1 */
    pgcw__cache_counters n;
};

#define PGCW__CACHE_COUNT(c, field)                                                      \
    atomic_fetch_add_explicit(&(c)->n.field, 1, memory_order_relaxed)

/* --- settings and schema (cache_schema.c) -------------------------------------- */

/* Checks opts and fills cfg with defaults. Returns PGCW_OK or PGCW_EINVAL with the
 * reason in why. */
pgcw_status pgcw__cache_cfg_init(pgcw__cache_cfg *cfg, const pgcw_cache_opts *o,
                                 char *why, size_t whylen);
pgcw_status pgcw__cache_names_init(pgcw__cache_names *n, const pgcw__cache_cfg *cfg);
void pgcw__cache_names_free(pgcw__cache_names *n);
/* The setup SQL of every pool connection (session settings, PREPAREs). Owned. */
char *pgcw__cache_setup_sql(const pgcw__cache_cfg *cfg, const pgcw__cache_names *n);

/* Prepared statement names (the setup SQL prepares them). */
#define PGCW__ST_GET "pgcw_cache_get"
#define PGCW__ST_PEEK "pgcw_cache_peek"
#define PGCW__ST_SET "pgcw_cache_set"
#define PGCW__ST_DEL "pgcw_cache_del"
#define PGCW__ST_FILL_NEW "pgcw_cache_fill_new"
#define PGCW__ST_FILL_OLD "pgcw_cache_fill_old"
#define PGCW__ST_TRYLOCK "pgcw_cache_trylock"
#define PGCW__ST_LOCK "pgcw_cache_lock"
#define PGCW__ST_UNLOCK "pgcw_cache_unlock"
#define PGCW__ST_CLEANUP "pgcw_cache_cleanup"
#define PGCW__ST_SNAPSHOT "pgcw_cache_snapshot" /* LOGICAL only */

/* --- the L1 side (cache_local.c) ------------------------------------------------ */

/* What a reader saw of the watcher before it went to PostgreSQL. */
typedef struct pgcw__cache_gate {
    bool usable; /* the L1 may be filled */
    uint64_t epoch;
    int64_t t0_us; /* monotonic time before the read */
    pgcw_l1_ticket ticket;
} pgcw__cache_gate;

/* Adds the eviction sink to the watcher (and starts the own watcher's thread). */
pgcw_status pgcw__cache_local_start(pgcw_cache *c);
void pgcw__cache_local_stop(pgcw_cache *c);
/* Whether key may live in the L1 at all (not too long to be notified). */
bool pgcw__cache_l1_key_ok(const pgcw_cache *c, size_t key_len);
/* Whether the L1 may be used now (watcher healthy, when there is one). */
bool pgcw__cache_l1_open(const pgcw_cache *c);
/* Takes a fill ticket for key before a read of the table. */
void pgcw__cache_gate_take(pgcw_cache *c, const void *key, size_t key_len,
                           pgcw__cache_gate *g);
/* Stores what was read after the gate was taken, unless the watcher lost
 * notifications meanwhile or the key was invalidated (refused fill). remain_ms:
 * the row's remaining TTL (< 0: none). */
bool pgcw__cache_fill(pgcw_cache *c, const pgcw__cache_gate *g, const void *key,
                      size_t key_len, const void *value, size_t len, int64_t version,
                      int64_t remain_ms);
/* After this process's own write of key (version, remain_ms as written): stores the
 * new value, or, when that is refused, removes any older copy. */
void pgcw__cache_own_write(pgcw_cache *c, const pgcw__cache_gate *g, const void *key,
                           size_t key_len, const void *value, size_t len, int64_t version,
                           int64_t remain_ms);

/* --- operations (cache_ops.c) --------------------------------------------------- */

/* Sets the per-thread error and counts it; returns st. */
pgcw_status pgcw__cache_fail(pgcw_cache *c, pgcw_status st, const char *fmt, ...)
    PGCW__PRINTF(3, 4);
/* Validates a key (UTF-8, no NUL). */
pgcw_status pgcw__cache_check_key(pgcw_cache *c, const void *key, size_t key_len);
/* The deadline of one call: statement timeout + lock timeout + 1 s. */
int64_t pgcw__cache_deadline(const pgcw_cache *c);
/* TTL argument to the ms sent to SQL (> 0, or 0 for none). */
int64_t pgcw__cache_ttl(const pgcw_cache *c, int64_t ttl_ms);

/* Runs stmts on a pool connection under one call's deadline, retrying once on a
 * fresh connection when an old one turns out lost; the failure's detail goes to
 * the thread's error as "what: detail". fn must tolerate being run again. */
pgcw_status pgcw__cache_run(pgcw_cache *c, const char *what, const pgcw__stmt *stmts,
                            size_t n, pgcw__result_fn fn, void *ctx);
/* The same under a given deadline, with the failure's detail in err instead of the
 * thread's error (nothing counted). */
pgcw_status pgcw__cache_exec(pgcw_cache *c, const pgcw__stmt *stmts, size_t n,
                             int64_t deadline, pgcw__result_fn fn, void *ctx, char *err,
                             size_t errlen);

/* --- write combining (cache_combine.c) ------------------------------------------ */

/* How many combined transactions may run at once, at most (in TRIGGER mode one
 * commits, holding the notify lock, while the others run their statements). 2, 4
 * and 8 measured within noise of each other with 16 writers here (bench_cache_write);
 * 16 (a transaction per writer) at half their rate. */
#define PGCW__COMBINE_RUNNING 4

/* limit: how many batches may run at once. */
pgcw_status pgcw__combiner_new(size_t limit, pgcw__combiner **out);
void pgcw__combiner_free(pgcw__combiner *k);
/* Batches of more than one write so far, their writes, and the writes queued now.
 * Any pointer may be NULL. */
void pgcw__combiner_counts(pgcw__combiner *k, uint64_t *batches, uint64_t *writes,
                           size_t *queued);
/* Runs stmt (one write of key, RETURNING version or nothing) in a transaction
 * shared with the other threads' writes queued meanwhile; *version: what it
 * returned (0 for none or on failure). On failure err holds the detail. */
pgcw_status pgcw__cache_combine(pgcw_cache *c, const pgcw__stmt *stmt, const void *key,
                                size_t key_len, int64_t *version, char *err,
                                size_t errlen);

/* A row as read by GET or PEEK. */
typedef struct pgcw__cache_row {
    bool found; /* a row exists (PEEK) / a live row (GET) */
    bool live;
    int64_t version;
    int64_t remain_ms; /* < 0: no expiry */
    char *value;       /* owned (malloc), NUL-terminated */
    size_t len;
} pgcw__cache_row;
pgcw_status pgcw__cache_row_take(const PGresult *res, pgcw__cache_row *row, bool peek);

/* --- notifying after commit (cache_notify.c)
 * --------------------------------------------
 */

/* One written key to announce. Borrowed for the call. */
typedef struct pgcw__notice {
    const void *key;
    size_t key_len;
    int64_t version;
} pgcw__notice;

/* background: a thread of its own sends the batches (free sends what is queued);
 * timeout_ms bounds each of its sends. log may be NULL. */
pgcw_status pgcw__notifier_new(const pgcw__conn_params *params, const char *channel,
                               bool background, int64_t timeout_ms, pgcw_log_fn log,
                               void *log_ctx, pgcw__notifier **out);
void pgcw__notifier_free(pgcw__notifier *n);
/* Sends the invalidations of items (committed writes), batched with other threads';
 * returns once they are sent (or, background, queued: items are copied), or the
 * failure with its detail in err. */
pgcw_status pgcw__notifier_send(pgcw__notifier *n, const pgcw__notice *items,
                                size_t count, int64_t deadline, char *err, size_t errlen);
void pgcw__notifier_counts(pgcw__notifier *n, uint64_t *batches, uint64_t *sent,
                           uint64_t *failures);
/* Tests only: hooks into the notify modes other than TRIGGER (all NULL otherwise).
 *   before_announce  called by pgcw__cache_announce() after the write committed
 *                    and before its notification is sent, so a test can end the
 *                    writing process exactly there;
 *   notify_sql       the PREPARE the notifier's connection runs instead of its own,
 *                    so a test can make PostgreSQL refuse the batched notifications
 *                    as on a full NOTIFY queue;
 *   vis_max_items    LOGICAL: the bound on keys + transactions waiting for
 *                    visibility (cache_logical_vis.c) instead of 65536, so a test
 *                    can overflow it with a small transaction. */
typedef struct pgcw__cache_test_hooks {
    void (*before_announce)(void);
    const char *notify_sql;
    /* called by a combining leader (TRIGGER mode) before it runs its batch of n
     * writes, so a test can hold it there while more writes queue */
    void (*before_combined_run)(size_t n);
    size_t vis_max_items;
} pgcw__cache_test_hooks;
extern pgcw__cache_test_hooks pgcw__cache_test;

/* After a committed write: sends its invalidations when notify_after_commit is on
 * (PGCW_OK otherwise); a failure is the call's error. */
pgcw_status pgcw__cache_announce(pgcw_cache *c, const char *what,
                                 const pgcw__notice *items, size_t count);

/* --- invalidation by logical decoding (cache_logical.c) ------------------------- */

/* The publication's name, unquoted: <prefix>cache_entries_pub. */
void pgcw__cache_publication_name(const pgcw__cache_cfg *cfg, char *buf, size_t len);
/* init_db's step for notify_mode LOGICAL: refuses an UNLOGGED table, creates the
 * publication if missing. Owned; NULL on OOM. */
char *pgcw__cache_logical_init_sql(const pgcw__cache_cfg *cfg,
                                   const pgcw__cache_names *n);
/* Appends the check every pool connection runs in LOGICAL mode (LOGGED table, in
 * the publication). */
void pgcw__cache_logical_setup_sql(const pgcw__cache_cfg *cfg, const pgcw__cache_names *n,
                                   pgcw__buf *b);
/* A name for the cache's temporary replication slot, unique in the cluster. */
void pgcw__cache_slot_name(char *buf, size_t len);
/* The sink's part for logical change events: true when ev was one (handled). */
bool pgcw__cache_logical_event(pgcw_cache *c, const pgcw_event *ev);

/* --- visibility of decoded changes (cache_logical_vis.c) ------------------------ */

/* pg_current_snapshot() as text, "xmin:xmax:xip,...", each id's low 32 bits. */
typedef struct pgcw__vis_snapshot {
    uint32_t xmin, xmax;
    uint32_t *xip; /* owned */
    size_t n_xip;
} pgcw__vis_snapshot;
/* Returns PGCW_OK, PGCW_EPARSE or PGCW_ENOMEM; *out is zeroed on failure. */
pgcw_status pgcw__vis_snapshot_parse(const char *text, pgcw__vis_snapshot *out);
void pgcw__vis_snapshot_free(pgcw__vis_snapshot *s);
/* Whether every 32-bit id from lo to hi (modulo 2^32) had finished when s was
 * taken, so that every later snapshot sees it. */
bool pgcw__vis_all_visible(const pgcw__vis_snapshot *s, uint32_t lo, uint32_t hi);

/* The confirmer and its thread (c's pool and L1 must outlive it). */
pgcw_status pgcw__vis_new(pgcw_cache *c, pgcw__vis **out);
/* Stops the thread (after the sink is gone) and drops what waits. NULL is fine. */
void pgcw__vis_free(pgcw__vis *v);
/* From the sink, after the first eviction: key (len bytes) of transaction xid, or
 * with flush, a change without keys; deleted (or flushed) again once xid is
 * visible. Never blocks on I/O. v NULL or xid 0: nothing. */
void pgcw__vis_note(pgcw__vis *v, uint32_t xid, const void *key, size_t len, bool flush);
/* Transactions waiting now (an overflow's range counts as one). */
size_t pgcw__vis_pending(pgcw__vis *v);

/* --- the lock key (cache_hash.c) ------------------------------------------------- */
int64_t pgcw__cache_hash(const void *data, size_t len);

#endif
