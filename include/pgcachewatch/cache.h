/*
 * pgcachewatch/cache.h - a distributed key/value cache in a PostgreSQL table, with a
 * bounded in-process L1 in every client that notifications evict.
 *
 * The table, its schema-version table, its triggers and its notification payload
 * are the Python postgres-cache's (migrations 1 and 2), so a Python service and a C
 * service on the same database and prefix share one cache: each reads the other's
 * writes, each one's writes evict the other's local copies, and their get_or_set
 * on one key loads once between them (same advisory-lock key). pgcw_cache_init_db()
 * applies those migrations and ours (version 3 and up), which a Python client on
 * the same schema keeps working with.
 *
 * Keys are the text column's domain: any valid UTF-8 without NUL, the empty key and
 * 0x1F included. Any other key is refused with PGCW_EINVAL before anything is sent.
 * PostgreSQL's own limit applies: the primary key's btree refuses a key whose
 * (compressed) size is over about 2700 bytes (PGCW_EQUERY, SQLSTATE 54000).
 * Values are bytes (bytea). A Python client stores compact JSON text in UTF-8: a C
 * value written as such text is read by Python as that JSON value, and a Python
 * value reads here as its JSON text.
 *
 * Reads. get looks in the L1 first (no lock, no allocation on the hit path of
 * pgcw_cache_get_into), then asks PostgreSQL in one round trip over a pool of
 * connections. Expiry and remaining lifetime are computed in SQL with now(), so the
 * server's clock decides TTLs whatever the client's clock or the session's
 * TimeZone; an L1 copy lives at most as long as the row had left when it was read.
 *
 * The consistency contract (docs/cache.md shows the test behind each line):
 *   1. Read your writes: once set() returns, get() in this process returns that
 *      value or a newer one.
 *   2. Bounded staleness: once a writer commits, every other client whose watcher
 *      is healthy stops serving the old value as soon as the notification arrives.
 *   3. No stale fills: a value read before an invalidation of its key is never put
 *      in the L1 after it (L1 fill tickets), and a get_or_set load that raced a
 *      set, delete or invalidate of its key by any client of this library is
 *      returned to its callers but never written to the table (see get_or_set).
 *   4. No silent gaps: while the watcher is unhealthy the L1 is flushed and not
 *      used (reads go to PostgreSQL; nothing is kept); a reconnect means a flush.
 *   5. Versions decide: a notification with version v evicts a copy only if it is
 *      older than v; a delete always evicts.
 *   6. The server's clock decides TTL.
 *
 * Deletes leave a tombstone. delete() and invalidate() do not remove the row: they
 * mark it expired (expires_at = '-infinity', value empty) and bump its version, so
 * versions only grow and a get_or_set load that started before the delete can tell
 * it happened. A tombstone reads as a miss here and in Python (both filter on
 * expires_at), and cleanup_expired() removes it like any expired row.
 * Versions grow for as long as the row exists: once cleanup_expired() removed a
 * tombstone, or a crash of the server emptied an UNLOGGED table (PostgreSQL
 * truncates those in crash recovery; a clean restart keeps them), the key starts
 * again at version 1. No copy from before is served then: the delete's
 * notification evicted them before the tombstone could go, and a crash drops
 * every LISTEN connection, so every client flushes its L1 on the reconnect.
 *
 * Long keys. A notification carries the key in hex, so a key over
 * PGCW_CACHE_MAX_NOTIFY_KEY bytes cannot be named in PostgreSQL's 7999-byte payload:
 * this library never keeps such keys in its L1 (every get reads the table, so no
 * notification is needed to evict them), and our migration 3 makes the trigger skip
 * the notification instead of failing the write. A Python client on the same table
 * gets no notification for such keys: its local copy stays until its own TTL.
 *
 * Notifications. By default (disable_notify false) the cache uses a watcher: the
 * one you pass (shared with memo and strategies, so a process needs one LISTEN
 * connection for everything; it must LISTEN on notify_channel with
 * PGCW_FORMAT_CACHE_KEY or PGCW_FORMAT_AUTO, and you drive it), or one it makes and
 * drives with its own thread. The L1 is evicted by a sink (watcher.h): synchronous,
 * no queue to overflow. With disable_notify the cache opens no LISTEN connection
 * and the L1 is kept under TTL alone: a copy read here may then be served for as
 * long as the row had left to live when it was read, capped by l1_ttl_ms, whatever
 * other clients write meanwhile. Set l1_ttl_ms to the staleness you accept.
 * Schema changes: a schema event (`pgcachewatch install --ddl`, event.h) that
 * names the cache's own table (<prefix>cache_entries, in any schema) flushes the
 * L1, as a gap does; schema events about other tables are ignored. The cache's
 * own watcher LISTENs only on notify_channel (with PGCW_FORMAT_AUTO), so it sees
 * them when install --ddl used that channel (`--channel-name cache_events`); a
 * watcher you pass must LISTEN on the DDL channel too, with AUTO or TABLE_CHANGE.
 *
 * Write path. By default (PGCW_CACHE_NOTIFY_TRIGGER) a write notifies from the
 * table's trigger, inside its transaction: the notification commits with the row,
 * for every writer (this library, psql, a Python client). PostgreSQL serializes
 * the commits of transactions that notify (one cluster-wide lock held through the
 * commit), so concurrent writers would wait for each other. So, in every mode,
 * the single writes (set, delete, invalidate) that threads of one cache make at
 * the same time commit together (group commit, since 0.4): while 4 such
 * transactions (or pool_size, if smaller) are running, further writes queue, and
 * the next transaction takes up to 64 of them (sorted by key, so that two such
 * transactions never deadlock); in this mode each row is still notified by the
 * trigger inside it. A write alone runs at once as before. One write's error does
 * not fail the others: a transaction PostgreSQL refused is run again write by
 * write. What it changes for a caller: a write that commits together with others
 * holds its row lock until their transaction commits, and a concurrent set of one
 * key by two threads commits in either order, as before (versions decide). Writes
 * in different processes do not combine. Figures: docs/bench.md, "Write paths".
 * The other modes make this library's writes skip the trigger (their
 * sessions carry pgcachewatch.cache_notify = 'client', which migration 3's trigger
 * checks) and send the notifications of every write that committed meanwhile in
 * this process in one transaction of their own, on one connection of the cache's:
 *   AFTER_COMMIT  each call returns once its notification is sent, and a failed
 *                 send is the call's error (the row is written);
 *   BACKGROUND    each call returns at its commit; a thread of the cache sends the
 *                 batches, so other clients hear of the write a batch later (the
 *                 delay is in docs/bench.md); a failed send is logged and counted
 *                 (notify_failures), and pgcw_cache_free() sends what is queued.
 * The price of both: if the writing process dies between a commit and its send
 * (or, in BACKGROUND, a send fails), other clients keep their old copy until it
 * expires, that is for at most the row's remaining TTL when they read it, capped by
 * l1_ttl_ms. Notifications of two writes of one key may arrive out of order:
 * versions decide, so the older one evicts nothing newer.
 *
 * Logical decoding (PGCW_CACHE_NOTIFY_LOGICAL). No notification at all on the
 * write path: this library's writes skip the trigger, and each cache reads the
 * table's changes from the WAL through a temporary replication slot of its own on
 * the publication <prefix>cache_entries_pub, evicting the key of every insert,
 * update and delete (whatever its version: the stream carries the key only, so a
 * process's own copy is read again after its write) and flushing on a
 * TRUNCATE. A commit is decoded once its WAL is flushed, so a write is heard of as
 * soon as it is durable; nothing can be lost between commit and invalidation, and
 * a crashed writer costs nothing. The price:
 *   - a change can arrive before other sessions can see it: PostgreSQL flushes a
 *     commit's WAL record (which the slot then decodes) a moment before it
 *     takes the transaction out of the running set, so a read made in that
 *     moment, right after the eviction, still returns the old row (what the
 *     table shows then) and fills the L1 with it, since no invalidation raced its
 *     ticket. So every change's keys are evicted twice: at once, and again once a
 *     thread of the cache has seen the transaction (pgcw_event.xid) visible in
 *     pg_current_snapshot(), one query on a pool connection for every
 *     transaction waiting, asked again after 1 ms, doubling to 50 ms, while one
 *     is not. The second eviction removes a copy read in between and refuses
 *     every fill whose read began before it, so contract line 2 holds from the
 *     moment the transaction is visible plus that check's delay
 *     (visibility_delay_us_total / _max in the statistics; docs/bench.md has
 *     the figures), and no l1_ttl_ms is needed for it. A TRUNCATE flushes
 *     twice the same way. When more than 65536 keys, or 8 MiB of them, wait at
 *     once, the L1 is flushed, and flushed again once every transaction dropped
 *     is visible (visibility_overflows). While the check fails (no pool
 *     connection free within a call's deadline, a query error), it is retried
 *     (up to 1 s apart) and a copy read in the window stays until it succeeds;
 *     a lost replication connection is a gap, as always. Each process's own
 *     copy after its write is read again up to twice;
 *   - the table must be LOGGED (PostgreSQL decodes no UNLOGGED table), and
 *     pgcw_cache_init_db() with this mode creates the publication (it needs the
 *     CREATE privilege on the database) and refuses an UNLOGGED table; every pool
 *     connection checks both, so a call fails with PGCW_EQUERY saying which rather
 *     than serve copies nothing evicts;
 *   - the server needs wal_level = logical and a free replication slot and WAL
 *     sender per cache (max_replication_slots, max_wal_senders), the role the
 *     REPLICATION attribute, and PostgreSQL 13 or later (pg_current_snapshot()); the slot
 * is TEMPORARY, so a cache that dies or loses its connection leaves no slot retaining
 * WAL, and a reconnect starts a new slot after a gap that flushes the L1;
 *   - clients that only LISTEN (a Python postgres-cache, or this library in the
 *     other modes) hear nothing of this mode's writes: their copies stay until
 *     their TTL. Use it only when every client of the table uses it;
 *   - a watcher you pass (opts.watcher) must be a logical one (source
 *     PGCW_WATCH_LOGICAL, watcher.h) reading a publication that holds the cache
 *     table, such as <prefix>cache_entries_pub, with a temporary_slot unless you
 *     mean to keep a slot; any other source is PGCW_EINVAL, as a logical one is in
 *     the other modes (neither would ever evict). The cache's own watcher makes
 *     a temporary slot named pgcw_cache_<pid>_<n>_<hex> on that publication. DDL
 *     events (`install --ddl`) come by NOTIFY, so they do not reach it.
 *
 * Threads. A pgcw_cache is fully thread-safe: any number of threads may call any
 * function at once, except pgcw_cache_free(). Loader callbacks run on the calling
 * thread with no lock held. Error detail is per thread (pgcw_cache_errmsg()).
 */
#ifndef PGCACHEWATCH_CACHE_H
#define PGCACHEWATCH_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "conn.h"
#include "watcher.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pgcw_cache pgcw_cache;

/* The longest key this library keeps in its L1 (bytes): "u", a 19-digit version,
 * "|" and the key in hex fit PostgreSQL's 7999-byte payload limit. */
#define PGCW_CACHE_MAX_NOTIFY_KEY 3989u

/* Pass as ttl_ms: the cache's default_ttl_ms. */
#define PGCW_CACHE_TTL_DEFAULT ((int64_t)0)
/* Pass as ttl_ms: the entry never expires. */
#define PGCW_CACHE_TTL_NONE ((int64_t)-1)

typedef enum pgcw_cache_durability {
    PGCW_CACHE_UNLOGGED = 0, /* default: commits wait for no WAL flush; a crash
                              * empties the table (it is a cache) */
    PGCW_CACHE_LOGGED = 1    /* survives a crash; commits flush WAL */
} pgcw_cache_durability;

/* How this library's own writes notify the other clients. */
typedef enum pgcw_cache_notify_mode {
    /* The table's trigger, inside the write's transaction (the default). */
    PGCW_CACHE_NOTIFY_TRIGGER = 0,
    /* The trigger skips this library's sessions; each write's notification is sent
     * right after its commit, batched with the other writes of this process that
     * committed meanwhile; the call returns once it is sent. */
    PGCW_CACHE_NOTIFY_AFTER_COMMIT = 1,
    /* As AFTER_COMMIT, but the call returns at commit and a thread of the cache
     * sends the batches; pgcw_cache_free() sends what is still queued. */
    PGCW_CACHE_NOTIFY_BACKGROUND = 2,
    /* The trigger skips this library's sessions, and every client's L1 is evicted
     * from the table's changes read by logical decoding (since 0.4; top of file,
     * "Logical decoding"). */
    PGCW_CACHE_NOTIFY_LOGICAL = 3
} pgcw_cache_notify_mode;

/* Zeroed means all defaults. Strings are borrowed for the duration of
 * pgcw_cache_new() / pgcw_cache_init_db() only (they are copied). Grows at the end
 * only (docs/abi.md). */
typedef struct pgcw_cache_opts {
    /* The LISTEN/NOTIFY channel. NULL: "cache_events". At most 63 bytes. With
     * notifications on it must be the channel the schema's trigger was made with
     * (init_db keeps an existing schema's): otherwise every call fails with
     * PGCW_EQUERY saying so, rather than serving copies no write would evict. */
    const char *notify_channel;
    /* Prefix of every table, function, trigger and index name: letters, digits and
     * '_' only, at most 33 bytes so every name fits PostgreSQL's 63 (anything else
     * is PGCW_EINVAL, and nothing is created). NULL: "". */
    const char *schema_prefix;
    /* Open no LISTEN connection; the L1 lives under TTL alone (top of file). */
    bool disable_notify;
    /* No L1 at all: every get reads PostgreSQL (and no LISTEN connection). */
    bool disable_l1;
    /* How this library's writes notify the other clients (top of file, "Write
     * path"). Writers that are not this library always notify from the trigger. */
    pgcw_cache_notify_mode notify_mode;
    /* Connections in the pool, opened on first use. 0: 4. */
    size_t pool_size;
    /* L1 bounds. 0: 4096 entries, 64 MiB. */
    size_t l1_max_entries;
    size_t l1_max_bytes;
    /* Upper bound on how long an L1 copy is served (ms). 0: no bound beyond the
     * row's remaining TTL. */
    int64_t l1_ttl_ms;
    /* TTL of set() and get_or_set() with PGCW_CACHE_TTL_DEFAULT (ms). 0: 300000;
     * < 0: no expiry. */
    int64_t default_ttl_ms;
    /* Capacity of the queue of the watcher the cache makes (its sink has no
     * queue; postgres-cache's setting). 0: 2048. */
    size_t notification_queue_size;
    /* How long get_or_set waits for another process's load of the same key (the
     * advisory lock), and any statement for a row lock (ms). 0: 5000. */
    int64_t lock_timeout_ms;
    /* Rows cleanup_expired() removes per call. 0: 500. */
    int cleanup_batch_size;
    /* Used by pgcw_cache_init_db() when it creates the table. */
    pgcw_cache_durability durability;
    /* statement_timeout of the pool's sessions (ms); also bounds the wait for a
     * free pool connection, and with lock_timeout_ms and a second of grace, every
     * call. 0: 10000; < 0: none on the server (calls are then bounded only by
     * the connection's stall timeout, conn.h). */
    int64_t statement_timeout_ms;
    /* A watcher to share (borrowed: must outlive the cache; you drive it). NULL:
     * the cache makes its own with its own thread unless disable_notify or
     * disable_l1. Its source must be PGCW_WATCH_LOGICAL with notify_mode LOGICAL
     * and PGCW_WATCH_LISTEN otherwise (PGCW_EINVAL). */
    pgcw_watcher *watcher;
    pgcw_log_fn log;
    void *log_ctx;
} pgcw_cache_opts;

/*
 * Creates a cache. conn: how to connect (conn.h; NULL: $PGDSN and libpq's PG*
 * variables); the pool and the cache's own watcher use it. Does no I/O: the pool
 * connects on first use, the cache's own watcher starts connecting at once on its
 * thread (pgcw_cache_wait_healthy() waits for it). Does not create the schema
 * (pgcw_cache_init_db()). *out is owned: free with pgcw_cache_free(). Returns
 * PGCW_OK, PGCW_EINVAL (bad prefix or channel, options from a newer header that
 * set a field this library does not know), PGCW_ENOMEM or PGCW_ESYS (thread).
 */
pgcw_status pgcw_cache_new_sized(const pgcw_cache_opts *opts, size_t opts_size,
                                 const pgcw_conn_opts *conn, size_t conn_size,
                                 pgcw_cache **out);
#define pgcw_cache_new(opts, conn, out)                                                  \
    pgcw_cache_new_sized((opts), sizeof(pgcw_cache_opts), (conn),                        \
                         sizeof(pgcw_conn_opts), (out))

/* A cache that stores nothing (postgres-cache's NullCache), for tests and local
 * development: get is always PGCW_ENOTFOUND, set/delete succeed and do nothing,
 * get_or_set always calls the loader (no single flight). No I/O ever. */
pgcw_status pgcw_cache_new_null(pgcw_cache **out);

/* Stops the cache's own watcher, closes the pool, frees everything. No call may be
 * in progress. NULL is fine. */
void pgcw_cache_free(pgcw_cache *c);

/*
 * Creates or upgrades the schema for opts' prefix and channel on one connection of
 * its own: the postgres-cache layout (its migrations 1 and 2), then ours, each
 * migration in one transaction, all under an advisory lock so that processes
 * running it at once all succeed. A schema already current is left alone (a no-op).
 * Returns PGCW_OK, PGCW_EINVAL (bad prefix or channel), PGCW_ECONNECT,
 * PGCW_EQUERY, PGCW_ETIMEDOUT or PGCW_ENOMEM; the detail (with the SQLSTATE) in
 * *errmsg when errmsg is not NULL (owned: free with pgcw_free(); NULL on success).
 * *version (may be NULL) receives the schema version now in place. Thread-safe.
 */
pgcw_status pgcw_cache_init_db_sized(const pgcw_cache_opts *opts, size_t opts_size,
                                     const pgcw_conn_opts *conn, size_t conn_size,
                                     int *version, char **errmsg);
#define pgcw_cache_init_db(opts, conn, version, errmsg)                                  \
    pgcw_cache_init_db_sized((opts), sizeof(pgcw_cache_opts), (conn),                    \
                             sizeof(pgcw_conn_opts), (version), (errmsg))

/* The schema version this library's pgcw_cache_init_db() brings a schema to. */
#define PGCW_CACHE_SCHEMA_VERSION 5

/*
 * Waits until the L1 can be used: the watcher is healthy (a no-op with
 * disable_notify, disable_l1 or a null cache). timeout_ms < 0: forever. Returns
 * PGCW_OK, PGCW_ETIMEDOUT or PGCW_ECONNECT (a permanent connection error:
 * pgcw_cache_errmsg()). Until then every get reads PostgreSQL.
 */
pgcw_status pgcw_cache_wait_healthy(pgcw_cache *c, int64_t timeout_ms);

/*
 * Looks key up. On PGCW_OK *value is owned (free with pgcw_free(); NUL-terminated
 * past *value_len for convenience) and *value_len its length. Returns PGCW_OK,
 * PGCW_ENOTFOUND (absent, expired or deleted), PGCW_EINVAL (key not UTF-8 or with a
 * NUL; NULL arguments), PGCW_ECONNECT, PGCW_ECONNLOST, PGCW_ETIMEDOUT, PGCW_EQUERY
 * or PGCW_ENOMEM, the detail in pgcw_cache_errmsg(). A read that finds its pool
 * connection lost is retried once on a fresh one.
 */
pgcw_status pgcw_cache_get(pgcw_cache *c, const void *key, size_t key_len, void **value,
                           size_t *value_len);

/*
 * As pgcw_cache_get(), and *version receives the row version of the value returned
 * (the table's version column, which every write of the key by this library or
 * by postgres-cache makes larger: a larger version is a later write). An L1 hit
 * gives the version the copy was read or written with. *version is 0 on any status but
 * PGCW_OK. Lets a caller order what it reads against what it or others wrote
 * (pgcachewatch harness checks staleness with it). version must not be NULL
 * (PGCW_EINVAL).
 */
pgcw_status pgcw_cache_get_versioned(pgcw_cache *c, const void *key, size_t key_len,
                                     void **value, size_t *value_len, int64_t *version);

/* As pgcw_cache_get() but copies into buf (buf_len bytes): an L1 hit allocates
 * nothing. PGCW_ETOOBIG: the value is longer than buf_len; *value_len is the length
 * needed and nothing was copied. */
pgcw_status pgcw_cache_get_into(pgcw_cache *c, const void *key, size_t key_len, void *buf,
                                size_t buf_len, size_t *value_len);

/*
 * Writes key = value (copied) with a TTL in ms (> 0, PGCW_CACHE_TTL_DEFAULT or
 * PGCW_CACHE_TTL_NONE), computed by the server. Once it returns PGCW_OK the row is
 * committed and the notification sent; this process's L1 holds the new value.
 * On a failure the outcome in the table is unknown after a lost connection
 * (PGCW_ECONNLOST): this process's L1 copy of key is dropped either way.
 */
pgcw_status pgcw_cache_set(pgcw_cache *c, const void *key, size_t key_len,
                           const void *value, size_t value_len, int64_t ttl_ms);

/* As pgcw_cache_set(); on PGCW_OK *version (may be NULL) receives the row version
 * the write committed (what pgcw_cache_get_versioned() returns for this value), on
 * any other status 0 (after PGCW_ECONNLOST the write may still have committed, with
 * a version not known here). A null cache always gives 0. */
pgcw_status pgcw_cache_set_versioned(pgcw_cache *c, const void *key, size_t key_len,
                                     const void *value, size_t value_len, int64_t ttl_ms,
                                     int64_t *version);

/* Deletes key (a tombstone: top of file); every client's L1 copy is evicted.
 * Deleting an absent key succeeds. Same errors as pgcw_cache_set(). */
pgcw_status pgcw_cache_delete(pgcw_cache *c, const void *key, size_t key_len);

/* Same as pgcw_cache_delete() (postgres-cache's invalidate). */
pgcw_status pgcw_cache_invalidate(pgcw_cache *c, const void *key, size_t key_len);

/* Where a loader puts its answer. Borrowed by the loader for the call only. */
typedef struct pgcw_cache_result pgcw_cache_result;

/* Stores the loaded value (copied; a second call replaces it). Returns PGCW_OK,
 * PGCW_ENOMEM or PGCW_EINVAL (value NULL with len > 0). */
pgcw_status pgcw_cache_result_set(pgcw_cache_result *r, const void *value, size_t len);

/* The TTL to write the value with, overriding get_or_set's ttl_ms. */
void pgcw_cache_result_ttl(pgcw_cache_result *r, int64_t ttl_ms);

/* An error message (copied) for every caller waiting on this load. */
void pgcw_cache_result_error(pgcw_cache_result *r, const char *message);

/* Loads key's value: PGCW_OK after pgcw_cache_result_set(), any other status for a
 * failure (PGCW_ELOADER is a good default). key is borrowed for the call. */
typedef pgcw_status (*pgcw_cache_load_fn)(void *ctx, const void *key, size_t key_len,
                                          pgcw_cache_result *result);

/*
 * Returns key's value, loading it once across threads and processes on a miss:
 *   1. get (L1, then the table);
 *   2. in-process single flight: one thread per key goes on, the others wait for
 *      its outcome;
 *   3. the cross-process lock: pg_advisory_lock on postgres-cache's key (BLAKE2b,
 *      8-byte digest of the key's UTF-8 bytes, big-endian, as a signed 64-bit
 *      integer: pgcw_cache_lock_key()), waited for on the server (woken as soon as
 *      the holder releases it) for at most lock_timeout_ms: then PGCW_ETIMEDOUT;
 *   4. re-check the table (another process may have loaded it), else call load;
 *   5. write the value, unless the key was set, deleted or invalidated since the
 *      re-check (by a client of this library, or set by a Python client): then the
 *      value is returned but not written (a lease, as memcache's);
 *   6. unlock, on every path (loader failure, timeout; a lost connection drops the
 *      lock with the session).
 * A loader failure reaches every waiter of this process (its status; its message in
 * pgcw_cache_errmsg()) and nothing is written. A racing Python delete() removes the
 * row instead of leaving a tombstone: that is noticed when the re-check found a row
 * (expired or a tombstone), but a Python delete of a key that had no row at all
 * leaves no trace, and then the value loaded is written.
 * On PGCW_OK *value is owned (free with pgcw_free()).
 */
pgcw_status pgcw_cache_get_or_set(pgcw_cache *c, const void *key, size_t key_len,
                                  int64_t ttl_ms, pgcw_cache_load_fn load, void *load_ctx,
                                  void **value, size_t *value_len);

/* postgres-cache's advisory-lock key for key: BLAKE2b with an 8-byte digest, read
 * big-endian as a signed 64-bit integer. Thread-safe; no I/O. */
int64_t pgcw_cache_lock_key(const void *key, size_t key_len);

/* Removes up to cleanup_batch_size expired rows (tombstones included) with the
 * schema's cleanup function. *removed (may be NULL) receives how many. */
pgcw_status pgcw_cache_cleanup_expired(pgcw_cache *c, int *removed);

/* One key of a batch: borrowed for the call. */
typedef struct pgcw_cache_key {
    const void *key;
    size_t key_len;
} pgcw_cache_key;

/* One answer of pgcw_cache_get_many(). value is owned (free with pgcw_free()) when
 * status is PGCW_OK, else NULL. */
typedef struct pgcw_cache_item {
    pgcw_status status; /* PGCW_OK or PGCW_ENOTFOUND */
    void *value;
    size_t value_len;
} pgcw_cache_item;

/* One entry of pgcw_cache_set_many(): borrowed for the call. */
typedef struct pgcw_cache_entry {
    const void *key;
    size_t key_len;
    const void *value;
    size_t value_len;
    int64_t ttl_ms; /* as pgcw_cache_set() */
} pgcw_cache_entry;

/*
 * Batches: the L1 answers what it can, the rest goes to PostgreSQL in one round trip
 * (libpq pipeline mode). get_many fills items[i] for keys[i]; on an error return no
 * item holds a value. set_many and delete_many apply every entry in one transaction
 * (all or nothing). Every key is checked first: one bad key is PGCW_EINVAL for the
 * whole batch and nothing is sent. n == 0 is PGCW_OK.
 */
pgcw_status pgcw_cache_get_many(pgcw_cache *c, const pgcw_cache_key *keys, size_t n,
                                pgcw_cache_item *items);
pgcw_status pgcw_cache_set_many(pgcw_cache *c, const pgcw_cache_entry *entries, size_t n);
pgcw_status pgcw_cache_delete_many(pgcw_cache *c, const pgcw_cache_key *keys, size_t n);

/* Frees every value of items[0..n) and sets them to NULL. */
void pgcw_cache_items_free(pgcw_cache_item *items, size_t n);

/* Drops every L1 copy now (this process only). */
void pgcw_cache_flush_local(pgcw_cache *c);

/* The calling thread's last failed call's detail on c (libpq's or the server's
 * message with the SQLSTATE, the loader's message, ...), "" after a success. Per
 * thread, as errno. Borrowed: valid until the thread's next call on c. */
const char *pgcw_cache_errmsg(const pgcw_cache *c);

/* Grows at the end only. */
typedef struct pgcw_cache_stats {
    uint64_t l1_hits;   /* as the L1 counts them (pgcw_l1_stats; its own */
    uint64_t l1_misses; /* per-shard counters, so hits share no cache line) */
    uint64_t l2_hits;   /* table reads that found a live row */
    uint64_t l2_misses;
    uint64_t bypasses; /* gets that skipped the L1: watcher unhealthy */
    uint64_t sets;
    uint64_t deletes;
    uint64_t loads; /* loader calls */
    uint64_t load_errors;
    uint64_t flight_waits; /* get_or_set callers that waited for this process's load */
    uint64_t lock_waits;   /* advisory locks that were held by someone else */
    uint64_t lock_timeouts;
    uint64_t lease_refusals; /* loaded values not written: raced a write (step 5) */
    uint64_t invalidations_received; /* key notifications seen by the sink */
    uint64_t invalidations_applied;  /* ... that removed an L1 copy */
    uint64_t refused_fills;          /* L1 fills refused: raced an invalidation */
    uint64_t flushes;                /* L1 flushed: gap, or pgcw_cache_flush_local() */
    uint64_t retries;                /* calls retried on a fresh connection */
    uint64_t errors;                 /* calls that returned an error */
    uint64_t notify_batches;  /* AFTER_COMMIT, BACKGROUND: transactions that sent them */
    uint64_t notify_sent;     /* ... invalidations sent */
    uint64_t notify_failures; /* ... invalidations whose send failed */
    size_t l1_entries;
    size_t l1_bytes;
    size_t pool_size;
    size_t pool_open; /* connections open now */
    /* since 0.4: transactions that committed more than one thread's single write
     * (set, delete, invalidate) together, and those writes ("Write path") */
    uint64_t combined_batches;
    uint64_t combined_writes;
    /* --- since 0.4: notify_mode LOGICAL's second invalidation, once a decoded
     * change's transaction is visible (top of file, "Logical decoding") ------- */
    uint64_t visibility_checks;         /* snapshots asked for */
    uint64_t visibility_check_failures; /* ... that failed (asked again later) */
    uint64_t visibility_rechecks;  /* checks after which a transaction still waited */
    uint64_t visibility_confirmed; /* transactions seen visible: keys evicted again */
    uint64_t visibility_overflows; /* too much waiting: L1 flushed (twice) */
    uint64_t visibility_pending;   /* transactions waiting now */
    /* From a transaction's first change reaching the sink (its first eviction) to
     * its second eviction, summed over visibility_confirmed, and the longest. */
    uint64_t visibility_delay_us_total;
    uint64_t visibility_delay_us_max;
} pgcw_cache_stats;

/* Copies the counters. Thread-safe. */
void pgcw_cache_stats_get_sized(pgcw_cache *c, pgcw_cache_stats *out, size_t out_size);
#define pgcw_cache_stats_get(c, out)                                                     \
    pgcw_cache_stats_get_sized((c), (out), sizeof(pgcw_cache_stats))

#ifdef __cplusplus
}
#endif

#endif
