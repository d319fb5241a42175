/*
 * conn_pool.h - the pool of SQL connections and the one way statements are run on
 * them (the cache's; conn_internal.h holds the single connection they are made of).
 *
 *   pgcw__pool    a fixed number of slots, connected on first use; checkout waits
 *                 for a free slot until a deadline; a slot checked in as broken is
 *                 closed and reconnects on its next checkout, running the setup SQL
 *                 (session settings, PREPAREs) again, so prepared statements survive
 *                 a reconnect. A connection idle for a second or more is checked
 *                 at checkout (one non-blocking read), so one the server closed
 *                 meanwhile (pg_terminate_backend, a restart) is replaced before
 *                 anything is sent on it; a busier one costs no system call, and if
 *                 it was lost its first statement fails and the caller retries.
 *   pgcw__exec    runs prepared statements in pipeline mode under a deadline, the
 *                 results in binary, one round trip for the batch.
 *
 * Thread-safe: any thread may check out; a checked-out connection is its holder's
 * until checkin. Nothing here blocks past the deadline it is given (connecting:
 * the connect timeout of the settings).
 */
#ifndef PGCW_CONN_POOL_H
#define PGCW_CONN_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "conn_internal.h"

typedef struct pgcw__pool pgcw__pool;

typedef struct pgcw__pooled {
    pgcw__conn conn;
    bool ready;            /* connected and set up */
    bool fresh;            /* connected by this checkout (a failure on it is not stale) */
    int64_t idle_since_us; /* monotonic time of the last checkin */
    size_t index;
} pgcw__pooled;

/* params: borrowed, must outlive the pool. setup_sql: run once on every new
 * connection (copied; NULL: none). Returns PGCW_OK, PGCW_EINVAL (size 0) or
 * PGCW_ENOMEM. */
pgcw_status pgcw__pool_new(const pgcw__conn_params *params, size_t size,
                           const char *setup_sql, pgcw__pool **out);

/* Closes every connection. None may be checked out. NULL is fine. */
void pgcw__pool_free(pgcw__pool *p);

/* A connection, connected and set up, for the caller alone. Returns PGCW_OK,
 * PGCW_ETIMEDOUT (no slot freed up before deadline_us), or the connect/setup
 * failure (ECONNECT, ETIMEDOUT, EQUERY, EINVAL, ENOMEM) with its message in err. */
pgcw_status pgcw__pool_checkout(pgcw__pool *p, int64_t deadline_us, pgcw__pooled **out,
                                char *err, size_t errlen);

/* Gives the connection back; broken: close it (it reconnects on its next use). */
void pgcw__pool_checkin(pgcw__pool *p, pgcw__pooled *pc, bool broken);

/* Size, and connections open now. Thread-safe. */
size_t pgcw__pool_size(const pgcw__pool *p);
size_t pgcw__pool_open(pgcw__pool *p);

/* One prepared statement to run: every parameter in binary (text as its bytes,
 * bytea as is, bigint as 8 bytes big-endian). Borrowed for the call. */
typedef struct pgcw__stmt {
    const char *name;
    int n_params;
    const char *const *values;
    const int *lengths;
} pgcw__stmt;

/* Called with statement i's result (tuples or command OK, binary columns). Returns
 * PGCW_OK to go on; anything else ends the batch with that status (the rest of the
 * results are still read, so the connection stays usable). */
typedef pgcw_status (*pgcw__result_fn)(void *ctx, size_t i, const PGresult *res);

/*
 * Runs stmts[0..n) in one pipeline ending in one sync, so they form one implicit
 * transaction (all or nothing), and hands each result to fn. Returns PGCW_OK, fn's
 * status, PGCW_EQUERY (a statement failed: message with SQLSTATE in err),
 * PGCW_ETIMEDOUT (the server's statement or lock timeout, SQLSTATE 57014 or 55P03,
 * or deadline_us passed: then the connection is unusable), PGCW_ECONNLOST or
 * PGCW_ENOMEM. *broken is set when the connection must not be reused.
 */
pgcw_status pgcw__exec(PGconn *pg, const pgcw__stmt *stmts, size_t n, int64_t deadline_us,
                       pgcw__result_fn fn, void *ctx, char *err, size_t errlen,
                       bool *broken);

/* A failed result's status: the server's statement and lock timeouts (SQLSTATE
 * 57014, 55P03) are PGCW_ETIMEDOUT; a backend going away (57Pxx, 08xxx), a lost
 * connection or a failure without SQLSTATE is PGCW_ECONNLOST and sets *broken;
 * anything else is PGCW_EQUERY. */
pgcw_status pgcw__result_status(const PGresult *res, PGconn *pg, bool *broken);

/* Binary result helpers: column col of row 0 as a big-endian int64 / bool. */
int64_t pgcw__res_int64(const PGresult *res, int row, int col);
bool pgcw__res_bool(const PGresult *res, int row, int col);

/* Writes v as 8 bytes big-endian (a binary bigint parameter). */
void pgcw__put_int64(char out[8], int64_t v);

#endif
