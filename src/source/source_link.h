/*
 * source_link.h - the connection life that every source holding a libpq
 * connection shares: connect through the conn module (with extra keywords, e.g.
 * replication=database), hand the new connection to the source for its session
 * setup, report ready and lost to the hub with the counters that go with them,
 * back off with jitter, reconnect, and say what to wait for in the states that
 * are not the source's own.
 *
 * A source embeds one pgcw__link and drives it from its step(): pgcw__link_step()
 * first; when it returns false the connection is up (SETUP or READY) and the
 * source reads and writes it, calling pgcw__link_ready() once its setup is done
 * and pgcw__link_lost() on any failure. Like the source, a link is used by one
 * thread at a time; only backend_pid is read from other threads.
 */
#ifndef PGCW_SOURCE_LINK_H
#define PGCW_SOURCE_LINK_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "conn_internal.h"
#include "source.h"

typedef enum pgcw__link_state {
    PGCW__LINK_IDLE = 0,   /* no connection; connect at the next step */
    PGCW__LINK_CONNECTING, /* the conn module's attempt in progress */
    PGCW__LINK_SETUP,      /* connected; the source's session setup in progress */
    PGCW__LINK_READY,      /* set up: the source is healthy */
    PGCW__LINK_BACKOFF     /* lost or failed: waiting before the next attempt */
} pgcw__link_state;

typedef struct pgcw__link_cfg {
    /* What the connection is, for messages ("LISTEN connection"). Static. */
    const char *label;
    /* Extra connection keywords and values, NULL-terminated (or NULL), applied
     * after the user's settings so they win. Static. */
    const char *const *keys;
    const char *const *values;
    /* The connection is up and non-blocking: send the session setup, then call
     * pgcw__link_setup() (or pgcw__link_ready(), or pgcw__link_lost()). */
    void (*on_connected)(pgcw__source *src);
    /* The connection is gone (lost, closed, freed): forget what belonged to it.
     * May be NULL. */
    void (*on_drop)(pgcw__source *src);
    /* A step with the connection up (SETUP or READY): the source's own reading
     * and writing, revents as in pgcw__source_vt.step (pgcw__link_source_step). */
    void (*on_online)(pgcw__source *src, int revents);
} pgcw__link_cfg;

typedef struct pgcw__link {
    pgcw__source *src; /* the owner: hub reports and counters go through it */
    pgcw__link_cfg cfg;
    pgcw__conn_params params;
    pgcw__conn conn;
    pgcw__backoff backoff;
    pgcw__link_state st;
    bool flush_pending;  /* output queued in libpq that the socket did not take */
    int64_t deadline_us; /* the setup's deadline, or the end of the backoff */
    int64_t last_rx_us;  /* last time the server sent anything (the source sets it) */
    atomic_int backend_pid;
} pgcw__link;

/* Copies the connection settings (no I/O). Returns PGCW_OK or PGCW_ENOMEM (then
 * pgcw__link_free() is still safe). */
pgcw_status pgcw__link_init(pgcw__link *l, pgcw__source *src, const pgcw_conn_opts *conn,
                            const pgcw__link_cfg *cfg);

/* Drops the connection (no report) and frees the settings. */
void pgcw__link_free(pgcw__link *l);

/* Advances the states that are the link's own (IDLE, BACKOFF, CONNECTING) and
 * returns true; returns false when the connection is up (SETUP or READY), where
 * the source takes over. revents as in pgcw__source_vt.step. */
bool pgcw__link_step(pgcw__link *l, int revents);

/* With the connection up: flushes pending output when the socket is writable and
 * reads input when it is readable (or revents < 0). Returns false when the
 * connection was found lost (already reported). */
bool pgcw__link_io(pgcw__link *l, int revents);

/* PQflush; false when the connection was lost (reported). */
bool pgcw__link_flush(pgcw__link *l);

/* The setup was sent: SETUP, with timeout_us to finish it (the source checks). */
void pgcw__link_setup(pgcw__link *l, int64_t timeout_us);

/* The setup is done: READY; resets the backoff, counts a connect, clears the hub's
 * error and reports healthy. */
void pgcw__link_ready(pgcw__link *l);

/* Ends the attempt or connection: "what: detail" (detail NULL: libpq's message),
 * dropped, reported unhealthy (lost if it was ready) with the error, counted, a
 * warning logged, and the next attempt scheduled. */
void pgcw__link_lost(pgcw__link *l, const char *what, const char *detail);

/* pgcw__link_lost(), reported as permanent when retrying the same settings will
 * not fix it by itself (a missing change log or replication slot, LISTEN that does
 * not work through this connection). The link still retries with backoff, since
 * someone may fix it meanwhile. */
void pgcw__link_fail(pgcw__link *l, const char *what, const char *detail, bool permanent);

/* "connection lost" when ready, else "could not connect". */
const char *pgcw__link_lost_what(const pgcw__link *l);

/* Drops the connection and goes IDLE (the next step connects again); reports
 * unhealthy (not lost) unless it was IDLE already. */
void pgcw__link_close(pgcw__link *l);

/* What to wait for: the socket (-1: none), its events, and the deadline of the
 * link's own states (IDLE: at once; READY: PGCW__NEVER, the source adds its own). */
int pgcw__link_fd(const pgcw__link *l);
int pgcw__link_events(const pgcw__link *l);
int64_t pgcw__link_deadline(const pgcw__link *l);

/* The server backend's pid, 0 when not connected. Thread-safe. */
int pgcw__link_backend_pid(const pgcw__link *l);

/* The same four and the step, as pgcw__source_vt entries (fd, events, close,
 * backend_pid, step) of a source whose one connection is its link (s->link, set
 * by pgcw__link_init()). The step runs pgcw__link_step(), then the link's
 * on_online when the connection is up. */
void pgcw__link_source_step(pgcw__source *s, int revents);
int pgcw__link_source_fd(const pgcw__source *s);
int pgcw__link_source_events(const pgcw__source *s);
void pgcw__link_source_close(pgcw__source *s);
int pgcw__link_source_backend_pid(const pgcw__source *s);

#endif
