/*
 * conn_internal.h - the conn module's interface to the rest of the library: one
 * libpq connection, from settings to a connected PGconn, and the message and
 * backoff rules every connection shares (conn.h is the public side).
 *
 *   pgcw__conn_params  the settings resolved once (conn_params.c): key/value
 *                      arrays for libpq, the connect timeout, the backoff bounds,
 *                      and the password, kept only to scrub it from messages;
 *   pgcw__conn         one connection attempt and its result, non-blocking
 *                      (conn_async.c): fd, events and deadline for an event loop,
 *                      or pgcw__conn_connect() to block for it;
 *   messages           "message (SQLSTATE xxxxx)" from a result or a failed
 *                      connection, permanent-error classification (conn_error.c);
 *   pgcw__backoff      exponential backoff with equal jitter (conn_backoff.c).
 *
 * Nothing here prints, blocks (but pgcw__conn_connect), or lets a password into a
 * message. Not thread-safe: each pgcw__conn belongs to one thread at a time.
 */
#ifndef PGCW_CONN_INTERNAL_H
#define PGCW_CONN_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "pgcachewatch/conn.h"

/* --- settings (conn_params.c) ------------------------------------------------- */

typedef struct pgcw__conn_params {
    /* NULL-terminated, for PQconnectStartParams(keys, values, 0): a later entry
     * overrides an earlier one with the same keyword. Owned. */
    char **keys;
    char **values;
    size_t n;
    int64_t connect_timeout_us; /* PGCW__NEVER: no limit */
    int64_t reconnect_min_us;
    int64_t reconnect_max_us;
    /* The password given in the settings (NULL if none): removed from every
     * message. */
    char *password;
    /* Non-NULL when the settings cannot be used at all (libpq cannot parse the
     * connection string, an unknown keyword): the reason, already redacted. Every
     * connection attempt fails at once with it, as a permanent error. */
    char *error;
} pgcw__conn_params;

/* Resolves opts (NULL: defaults) into *p, reading $PGDSN and PGCONNECT_TIMEOUT
 * when opts leave them to the environment. Returns PGCW_OK (also when the settings
 * are unusable: p->error says why) or PGCW_ENOMEM (*p is then empty). */
pgcw_status pgcw__conn_params_init(pgcw__conn_params *p, const pgcw_conn_opts *opts);

/* Frees what init allocated; p becomes empty. Safe on a zeroed struct. */
void pgcw__conn_params_free(pgcw__conn_params *p);

/* The last value given for keyword, or NULL. Borrowed from p. */
const char *pgcw__conn_params_get(const pgcw__conn_params *p, const char *keyword);

/* Replaces every occurrence of password in msg with "********" (in place; msg has
 * room for msglen bytes). NULL or empty password: nothing to do. */
void pgcw__scrub_password(char *msg, size_t msglen, const char *password);

/* --- one connection (conn_async.c) -------------------------------------------- */

typedef enum pgcw__conn_step {
    PGCW__CONN_PENDING = 0, /* wait for fd/events or the deadline, then poll again */
    PGCW__CONN_OK = 1,      /* connected */
    PGCW__CONN_FAILED = 2   /* see err, sqlstate, permanent, status */
} pgcw__conn_step;

typedef struct pgcw__conn {
    PGconn *pg;          /* NULL when there is no connection */
    bool connecting;     /* an attempt is in progress */
    int poll_events;     /* PGCW_IO_* PQconnectPoll waits for */
    int64_t deadline_us; /* of the attempt in progress */
    int64_t timeout_us;  /* its length, for the message */
    /* The last failure: message (redacted, SQLSTATE appended), the server's
     * SQLSTATE ("" if none), whether retrying cannot help by itself, and the
     * matching status (EINVAL, ECONNECT, ETIMEDOUT, ENOMEM). */
    char err[1024];
    char sqlstate[6];
    bool permanent;
    pgcw_status status;
    /* The last notice or out-of-band error the server sent (e.g. the FATAL before a
     * terminated backend closes), as "message (SQLSTATE xxxxx)"; "" if none. */
    char notice[512];
    const char *password; /* borrowed from the params, for scrubbing */
} pgcw__conn;

/* Starts an attempt with p (borrowed: must outlive the attempt), closing any
 * previous connection. extra_keys/extra_values (NULL-terminated, may be NULL) are
 * applied after p's own entries. Returns PENDING or FAILED. */
pgcw__conn_step pgcw__conn_start(pgcw__conn *c, const pgcw__conn_params *p,
                                 const char *const *extra_keys,
                                 const char *const *extra_values);

/* Advances the attempt. revents: what poll(2) reported for pgcw__conn_fd() as
 * PGCW_IO_*, or -1 when unknown (then the socket is checked without waiting).
 * Returns PENDING, OK (c->pg is ready, still in blocking mode) or FAILED (also on
 * the deadline). */
pgcw__conn_step pgcw__conn_poll(pgcw__conn *c, int revents);

/* The socket and the events the attempt waits for; -1 / 0 when there is none. */
int pgcw__conn_fd(const pgcw__conn *c);
int pgcw__conn_events(const pgcw__conn *c);

/* Connects, blocking for at most p's connect timeout. Returns PGCW_OK or the
 * failure's status (c->err has the detail). */
pgcw_status pgcw__conn_connect(pgcw__conn *c, const pgcw__conn_params *p,
                               const char *const *extra_keys,
                               const char *const *extra_values);

/* Records a failure on an established connection (lost, LISTEN refused, ...):
 * "what: detail" where detail is libpq's message when NULL, plus the last notice
 * when it adds something; closes the connection. Sets c->status to ECONNLOST. */
void pgcw__conn_fail(pgcw__conn *c, const char *what, const char *detail);

/* Closes the connection if any and forgets the attempt (not the last error). */
void pgcw__conn_close(pgcw__conn *c);

/* --- messages (conn_error.c) -------------------------------------------------- */

/* A failed result as one line: the primary message, then " DETAIL: ..." and
 * " HINT: ..." when present, then " (SQLSTATE xxxxx)"; libpq's own message when
 * the result carries no fields (res NULL: conn's message). Never longer than len. */
void pgcw__result_message(const PGresult *res, const PGconn *conn, char *buf, size_t len);

/* Whether an error with this SQLSTATE will not go away by retrying the same
 * settings: class 28 (invalid authorization), 3D000 (no such database) and 42501
 * (insufficient privilege: no REPLICATION for a replication connection, no
 * CONNECT on the database). */
bool pgcw__sqlstate_permanent(const char *sqlstate);

/* Rewrites a connection failure's text, as libpq builds it in verbose mode
 * ("... FATAL:  3D000: database "x" does not exist\nLOCATION: ..."), into one line
 * without the LOCATION lines and with "(SQLSTATE 3D000)" at the end; the first
 * SQLSTATE found goes to sqlstate (6 bytes; "" when none). */
void pgcw__connect_message(const char *libpq_msg, char *buf, size_t len,
                           char sqlstate[6]);

/* --- backoff (conn_backoff.c) ------------------------------------------------- */

typedef struct pgcw__backoff {
    int64_t min_us, max_us;
    int64_t base_us; /* the next delay's base: doubles up to max_us */
    uint64_t rng;
} pgcw__backoff;

/* seed: anything that differs between processes (0 is replaced). */
void pgcw__backoff_init(pgcw__backoff *b, int64_t min_us, int64_t max_us, uint64_t seed);

/* The next delay: half the base plus up to the other half at random ("equal
 * jitter"), so a fleet that lost the same server does not come back in lockstep;
 * then the base doubles, up to the cap. */
int64_t pgcw__backoff_next(pgcw__backoff *b);

/* Back to the first delay (after a success). */
void pgcw__backoff_reset(pgcw__backoff *b);

#endif
