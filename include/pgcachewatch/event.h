/*
 * pgcachewatch/event.h - the event model and payload parsing.
 *
 * An event is one notification turned into a struct: which table changed, how,
 * when the server sent it and when we received it. Two payload formats are
 * accepted (both JSON objects, unknown members ignored):
 *
 *   Python pgcachewatch: {"operation":"insert","table":"t","sent_at":"<ISO 8601>"}
 *     (its emit_event() also adds "channel" and "received_at": ignored)
 *   ours, a superset:    {"operation":"update","table":"t","schema":"s",
 *                         "sent_at":"<ISO 8601>",
 *                         "pk":["id"], "keys":[[1],[2]], "part":1}
 *
 * "keys" is present only when triggers were installed with --with-keys and the
 * table has a primary key; a large statement is split over several payloads, each
 * under PostgreSQL's 7999-byte limit. An event without keys means "something in the
 * table changed".
 *
 * A gap event (kind PGCW_EVENT_GAP) is not parsed from a payload: the watcher
 * creates it when notifications may have been lost (reconnect, queue overflow).
 */
#ifndef PGCACHEWATCH_EVENT_H
#define PGCACHEWATCH_EVENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum pgcw_op {
    PGCW_OP_NONE = 0, /* gap events */
    PGCW_OP_INSERT = 1,
    PGCW_OP_UPDATE = 2,
    PGCW_OP_DELETE = 3,
    PGCW_OP_TRUNCATE = 4
} pgcw_op;

/* "insert", "update", "delete", "truncate", or "none". Never NULL. */
const char *pgcw_op_name(pgcw_op op);

/* Parses "insert"/"INSERT"/... (ASCII case-insensitive) into *out.
 * Returns PGCW_OK or PGCW_EPARSE. */
pgcw_status pgcw_op_parse(const char *text, pgcw_op *out);

typedef enum pgcw_event_kind {
    PGCW_EVENT_CHANGE = 0, /* a table changed */
    PGCW_EVENT_GAP = 1     /* notifications may have been lost: drop everything */
} pgcw_event_kind;

typedef enum pgcw_gap_reason {
    PGCW_GAP_NONE = 0,
    PGCW_GAP_DISCONNECTED = 1, /* the LISTEN connection was lost */
    PGCW_GAP_OVERFLOW = 2      /* this subscriber's queue was full */
} pgcw_gap_reason;

/* "none", "disconnected", "overflow". Never NULL. */
const char *pgcw_gap_reason_name(pgcw_gap_reason reason);

/*
 * One event. Every pointer member points into the same allocation as the struct
 * and lives exactly as long as it: free the whole thing with pgcw_event_free().
 * Treat it as read-only.
 */
typedef struct pgcw_event {
    pgcw_event_kind kind;
    pgcw_op operation;      /* PGCW_OP_NONE for gap events */
    const char *channel;    /* never NULL ("" if unknown) */
    const char *schema;     /* NULL when the payload had none (Python payload) */
    const char *table;      /* never NULL for change events; NULL for gaps */
    int64_t sent_at_us;     /* server's clock, microseconds since the Unix epoch */
    int64_t received_at_us; /* this host's realtime clock, same unit */
    int64_t latency_us;     /* received_at_us - sent_at_us (may be < 0 with skew) */
    uint64_t epoch;         /* watcher epoch when received (see watcher.h) */
    int backend_pid;        /* pid of the notifying backend, 0 if unknown */
    const char *payload;    /* the raw payload; NULL for gap events */

    /* Keys (only with --with-keys triggers). pk_columns names the primary-key
     * columns, in key order; each keys[i] is the JSON text of one row's key as an
     * array in that order, e.g. "[42]" or "[7,\"eu\"]". */
    size_t n_pk_columns;
    const char *const *pk_columns;
    size_t n_keys;
    const char *const *keys;
    int part; /* 1-based part number when a statement was split, else 0 */

    /* Gap events only. */
    pgcw_gap_reason gap_reason;
    uint64_t gap_lost; /* events known to be dropped by overflow (0 if unknown) */
} pgcw_event;

/*
 * Parses one notification payload.
 *
 * channel: borrowed, copied (NULL means ""). payload: borrowed, copied; need not be
 * NUL-terminated beyond payload_len. received_at_us: when it arrived (0 = now).
 * On success *out is owned: free with pgcw_event_free(). On error *out is NULL and,
 * if errbuf is not NULL, a one-line reason is written there (truncated to errlen).
 * Returns PGCW_OK, PGCW_EPARSE (not JSON, not an object, a required member missing
 * or of the wrong type, unknown operation, bad timestamp) or PGCW_ENOMEM.
 * Never crashes on any input. Thread-safe.
 */
pgcw_status pgcw_event_parse(const char *channel, const char *payload, size_t payload_len,
                             int64_t received_at_us, pgcw_event **out, char *errbuf,
                             size_t errlen);

/* Makes a gap event. channel may be NULL. Owned: free with pgcw_event_free(). */
pgcw_status pgcw_event_new_gap(const char *channel, pgcw_gap_reason reason, uint64_t lost,
                               uint64_t epoch, pgcw_event **out);

/* A deep copy. Owned: free with pgcw_event_free(). */
pgcw_status pgcw_event_clone(const pgcw_event *event, pgcw_event **out);

/* Frees an event. NULL is fine. */
void pgcw_event_free(pgcw_event *event);

/*
 * Formats an event as one line of JSON (no newline), e.g. for `listen --json`:
 * {"kind":"change","channel":..,"operation":..,"schema":..,"table":..,
 *  "sent_at":"<ISO 8601 UTC>","received_at":..,"latency_ms":..,"keys":[..]}
 * Owned: free with pgcw_free(). NULL on allocation failure.
 */
char *pgcw_event_to_json(const pgcw_event *event);

/* Formats an event as one human-readable line (no newline). Owned: free with
 * pgcw_free(). NULL on allocation failure. */
char *pgcw_event_to_text(const pgcw_event *event);

/*
 * Timestamps. Parses ISO 8601 / PostgreSQL timestamptz text into microseconds since
 * the Unix epoch: "2024-05-01T12:00:00Z", "2024-05-01 12:00:00.123456+02",
 * "...+05:30", "...-0800". A missing zone means UTC. Returns PGCW_OK or PGCW_EPARSE.
 */
pgcw_status pgcw_time_parse(const char *text, int64_t *out_us);

/* Formats microseconds since the epoch as "YYYY-MM-DDTHH:MM:SS.ffffffZ" into buf
 * (at least 32 bytes). Returns buf. */
char *pgcw_time_format(int64_t us, char *buf, size_t buflen);

#ifdef __cplusplus
}
#endif

#endif
