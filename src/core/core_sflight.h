/*
 * core_sflight.h - single flight per key, in process: while one caller (the
 * leader) loads a key, every other caller of the same key waits for that load
 * instead of starting its own. The memo uses it; the cache's get_or_set will (with
 * the advisory lock doing the same across processes).
 *
 * A flight is attached to its group from join until the leader finishes or it is
 * detached: only an attached flight can be joined. Detaching (a clear, a write of
 * the key) makes later callers start a new flight while those already joined still
 * get the old one's outcome; the owner of the values decides whether that outcome
 * may be stored (the memo: its L1 fill ticket).
 *
 * Threads: every function is thread-safe. Nothing here calls out while holding a
 * lock, except the re-check callback, which is the caller's own code and must
 * neither block nor call into the group.
 */
#ifndef PGCW_CORE_SFLIGHT_H
#define PGCW_CORE_SFLIGHT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pgcachewatch/status.h"

typedef struct pgcw__sflight pgcw__sflight;
typedef struct pgcw__flight pgcw__flight;

typedef enum pgcw__flight_role {
    PGCW__FLIGHT_LEAD = 0, /* load, then pgcw__flight_finish() */
    PGCW__FLIGHT_WAIT = 1, /* pgcw__flight_wait() for the leader's outcome */
    PGCW__FLIGHT_FOUND = 2 /* the re-check found the value: no flight */
} pgcw__flight_role;

/* Run under the group's lock when no flight for the key is attached, just before a
 * new one would be started: true when the value has become available meanwhile (a
 * flight finished between the caller's own look and its join), so that a value is
 * never loaded twice in a row. */
typedef bool (*pgcw__sflight_recheck_fn)(void *ctx);

/* *out is owned: free with pgcw__sflight_free(). Returns PGCW_OK or PGCW_ENOMEM. */
pgcw_status pgcw__sflight_new(pgcw__sflight **out);

/* Frees the group. No flight may be in progress. NULL is fine. */
void pgcw__sflight_free(pgcw__sflight *g);

/* Joins the attached flight for key, or starts one (after recheck, which may be
 * NULL). On PGCW_OK *role says which; for LEAD and WAIT *out is the caller's
 * reference, ended by pgcw__flight_finish() or pgcw__flight_wait() respectively;
 * for FOUND *out is NULL. Returns PGCW_OK or PGCW_ENOMEM (nothing joined). */
pgcw_status pgcw__sflight_join(pgcw__sflight *g, const void *key, size_t key_len,
                               pgcw__sflight_recheck_fn recheck, void *ctx,
                               pgcw__flight **out, pgcw__flight_role *role);

/* Detaches the flight for key, if one is attached. */
void pgcw__sflight_detach(pgcw__sflight *g, const void *key, size_t key_len);

/* Detaches every attached flight. */
void pgcw__sflight_detach_all(pgcw__sflight *g);

/* Flights attached now (tests, statistics). */
size_t pgcw__sflight_attached(pgcw__sflight *g);

/* The leader's outcome: detaches f if it is still attached, hands the outcome to
 * every waiter and drops the leader's reference. value (len bytes) is copied for
 * the waiters only when there are any (the leader keeps its own); errmsg may be
 * NULL. If that copy fails, the waiters get PGCW_ENOMEM. Returns the number of
 * callers that had joined as waiters. */
size_t pgcw__flight_finish(pgcw__flight *f, pgcw_status status, const void *value,
                           size_t len, const char *errmsg);

/*
 * Waits for the leader until deadline_us (a core_time.h deadline; PGCW__NEVER for
 * no limit), then drops the caller's reference. Returns the leader's status, or
 * PGCW_ETIMEDOUT (the flight goes on without this caller), or PGCW_ENOMEM. On
 * PGCW_OK *value is an owned copy (free() it; NUL-terminated past *len). On the
 * leader's failure, *errmsg (if errmsg is not NULL) is an owned copy of its message
 * or NULL.
 */
pgcw_status pgcw__flight_wait(pgcw__flight *f, int64_t deadline_us, void **value,
                              size_t *len, char **errmsg);

#endif
