/*
 * pgcachewatch/conn.h - connection settings, and a connection handle for one-shot
 * work (install, uninstall, your own setup SQL).
 *
 * Every connection the library opens (the watcher's LISTEN connection, a
 * pgcw_conn, the coming cache pool) is built from a pgcw_conn_opts the same way,
 * in one place:
 *
 *   1. conninfo, else $PGDSN when it is set and not empty: a key=value string or a
 *      postgresql:// URI; any other text is a database name (libpq's dbname rule);
 *   2. then keys[i] = values[i] in order, each overriding what came before (a NULL
 *      or empty value is skipped), so values taken from a command line need no
 *      quoting;
 *   3. libpq's PG* environment variables and defaults fill in the rest;
 *   4. fallback_application_name is application_name ("pgcachewatch"), and unless
 *      steps 1-3 set them, TCP keepalives and tcp_user_timeout are derived from
 *      stall_timeout_ms, so a peer that stops answering is noticed in bounded time
 *      even while a call waits for a result.
 *
 * Connecting is non-blocking inside the library and bounded by connect_timeout_ms
 * (or libpq's connect_timeout / PGCONNECT_TIMEOUT when that is what you set), for
 * every host libpq tries.
 *
 * Passwords never reach a message: a connection string libpq cannot parse is
 * reported without quoting any of it, and the password's value is removed from
 * every message the library keeps or logs.
 */
#ifndef PGCACHEWATCH_CONN_H
#define PGCACHEWATCH_CONN_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* libpq's connection (PGconn), declared here so this header needs no libpq-fe.h. */
struct pg_conn;

/* Zeroed means all defaults. Strings and arrays are borrowed for the duration of
 * the call that takes them (they are copied). Grows at the end only: see
 * docs/abi.md. */
typedef struct pgcw_conn_opts {
    /* key=value string or URI; NULL: $PGDSN if set and not empty, else none. */
    const char *conninfo;
    /* libpq keywords and their values, applied after conninfo: keys is
     * NULL-terminated and values has as many entries (a NULL or "" value is
     * skipped). NULL: none. */
    const char *const *keys;
    const char *const *values;
    /* fallback_application_name. NULL: "pgcachewatch". */
    const char *application_name;
    /* How long one connection attempt may take, every host included. 0: the
     * connect_timeout of the settings (in seconds, as libpq reads it, e.g. from
     * PGCONNECT_TIMEOUT) if any, else 10000 ms. Huge values mean forever. */
    int64_t connect_timeout_ms;
    /* How long a peer may stay silent while the connection has something
     * unanswered before it counts as lost: tcp_user_timeout = stall_timeout_ms,
     * and keepalives after stall_timeout_ms / 2 of idleness, 4 probes
     * stall_timeout_ms / 8 apart (whole seconds, at least 1). 0: 20000 ms. < 0:
     * leave both to libpq and the operating system. A keyword set in steps 1-3
     * wins over the derived value. */
    int64_t stall_timeout_ms;
    /* For handles that reconnect by themselves (the watcher): the first delay and
     * the cap, doubling with jitter. 0: 100 ms and 5000 ms. */
    int64_t reconnect_min_ms;
    int64_t reconnect_max_ms;
} pgcw_conn_opts;

typedef struct pgcw_conn pgcw_conn;

/*
 * Creates a handle with a copy of the settings. Does no I/O and never fails on
 * bad settings (pgcw_conn_connect() reports them). opts NULL means zeroed. *out is
 * owned: free with pgcw_conn_free(). Returns PGCW_OK, PGCW_EINVAL (out NULL, or
 * opts from a newer header that set a field this library does not know) or
 * PGCW_ENOMEM.
 */
pgcw_status pgcw_conn_new_sized(const pgcw_conn_opts *opts, size_t opts_size,
                                pgcw_conn **out);
#define pgcw_conn_new(opts, out)                                                         \
    pgcw_conn_new_sized((opts), sizeof(pgcw_conn_opts), (out))

/*
 * Connects, blocking the calling thread for at most the connect timeout. A
 * connection already open is closed first. Returns PGCW_OK, PGCW_EINVAL (settings
 * libpq refuses: a connection string it cannot parse, an unknown keyword),
 * PGCW_ECONNECT (the server refused, or no host could be reached),
 * PGCW_ETIMEDOUT or PGCW_ENOMEM; the detail is in pgcw_conn_errmsg() and, when the
 * server sent one, pgcw_conn_sqlstate().
 */
pgcw_status pgcw_conn_connect(pgcw_conn *c);

/* The open libpq connection, borrowed: valid until the next pgcw_conn_connect(),
 * pgcw_conn_close() or pgcw_conn_free() on c. NULL when not connected. Run your
 * own queries on it; never PQfinish() it. Its notice receiver is the library's
 * (notices are kept for error messages, never printed). */
struct pg_conn *pgcw_conn_pg(const pgcw_conn *c);

/* Closes the connection if open. */
void pgcw_conn_close(pgcw_conn *c);

/* The last error's detail (libpq's message, with "(SQLSTATE xxxxx)" when the
 * server sent one), "" after a success. Borrowed: valid until the next call on c. */
const char *pgcw_conn_errmsg(const pgcw_conn *c);

/* The SQLSTATE of the last error, or "" when there was none or it did not come
 * from the server (a network error). Borrowed, as pgcw_conn_errmsg(). */
const char *pgcw_conn_sqlstate(const pgcw_conn *c);

/* Closes and frees. NULL is fine. */
void pgcw_conn_free(pgcw_conn *c);

/*
 * Threads: a pgcw_conn is used by one thread at a time (like a PGconn). The
 * settings struct is only read during the call that takes it.
 */

#ifdef __cplusplus
}
#endif

#endif
