/*
 * source_probe.h - the LISTEN source's self-probe (docs/source_poll.md): once its
 * LISTENs are acknowledged, a second, short-lived session sends one notification
 * on a channel only this connection listens on, and the LISTEN connection must
 * receive it within a bound. Through PgBouncer in transaction pooling mode (and
 * proxies like it) it never does: the LISTEN ran on a server session that is back
 * in the pool. The same connection could not tell: a NOTIFY in the LISTENing
 * session's own transaction is delivered by the same server backend, so it comes
 * back even through such a pooler.
 *
 * The second session is driven without blocking and without an fd of its own in
 * the caller's event loop: while it is open, pgcw__probe_deadline() asks for a
 * step every few milliseconds (a loopback round trip or three, once per connect).
 * Used by one thread at a time, like its source.
 */
#ifndef PGCW_SOURCE_PROBE_H
#define PGCW_SOURCE_PROBE_H

#include <stdbool.h>
#include <stdint.h>

#include "conn_internal.h"

typedef enum pgcw__probe_state {
    PGCW__PROBE_OFF = 0, /* not probing */
    PGCW__PROBE_SENDING, /* the second session connects and sends */
    PGCW__PROBE_WAITING, /* sent: waiting for it to come back */
    PGCW__PROBE_ARRIVED, /* it came back: LISTEN works */
    PGCW__PROBE_UNSENT   /* the second session failed: nothing learned (err) */
} pgcw__probe_state;

typedef struct pgcw__probe {
    char channel[64]; /* pgcw_probe_<pid>_<hex>: LISTENed with the user's channels */
    char token[32];   /* the payload of this round */
    pgcw__probe_state st;
    pgcw__conn conn;          /* the second session */
    bool sent;                /* its pg_notify was sent, results pending */
    unsigned round;           /* rounds started, for the payload */
    int64_t timeout_us;       /* how long it may take once committed */
    int64_t deadline_us;      /* by when it must have come back (once WAITING) */
    int64_t send_deadline_us; /* by when it must be sent (the connect timeout) */
    char err[512];
} pgcw__probe;

/* Chooses a new probe channel (no I/O): at each connect, before the LISTENs. */
void pgcw__probe_name(pgcw__probe *p);

/* Starts a round: opens the second session with params (borrowed: must outlive
 * the round; its connect timeout bounds connecting and sending); once the
 * notification is committed it must be back within timeout_us. */
void pgcw__probe_start(pgcw__probe *p, const pgcw__conn_params *params,
                       int64_t timeout_us);

/* Advances the second session (never blocks). */
void pgcw__probe_step(pgcw__probe *p);

/* Whether a notification is the probe's: true for any on the probe channel (they
 * are never events); the round's payload marks it ARRIVED. */
bool pgcw__probe_take(pgcw__probe *p, const char *channel, const char *payload);

/* When the caller must step again: soon while the second session is open, else
 * the round's deadline; PGCW__NEVER when not probing. */
int64_t pgcw__probe_deadline(const pgcw__probe *p);

/* Whether the round's bound passed with the notification committed and not back. */
bool pgcw__probe_expired(const pgcw__probe *p);

/* Closes the second session and stops probing. */
void pgcw__probe_stop(pgcw__probe *p);

#endif
