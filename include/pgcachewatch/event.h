/*
 * pgcachewatch/event.h - the event model and the payload decoders.
 *
 * An event is one notification turned into a struct. Its kind says what it is:
 *
 *   PGCW_EVENT_CHANGE  a table changed. Decoded from JSON (unknown members
 *                      ignored):
 *     Python pgcachewatch: {"operation":"insert","table":"t","sent_at":"<ISO 8601>"}
 *       (its emit_event() also adds "channel" and "received_at": ignored)
 *     ours, a superset:    {"operation":"update","table":"t","schema":"s",
 *                           "sent_at":"<ISO 8601>",
 *                           "pk":["id"], "keys":[[1],[2]], "part":1}
 *     "keys" is present only when triggers were installed with --with-keys and the
 *     table has a primary key; a large statement is split over several payloads,
 *     each under PostgreSQL's 7999-byte limit. An event without keys means
 *     "something in the table changed".
 *   PGCW_EVENT_KEY     one key of a postgres-cache table was written or deleted.
 *     Decoded from the Python postgres-cache notification: 'u' (insert or update)
 *     or 'd' (delete), the entry's version in decimal, then either 0x1F and the key
 *     with every 0x1F in it doubled ("u42\x1Fprofile:7"), or '|' and the key's
 *     bytes in hex ("u42|70726f66696c653a37").
 *   PGCW_EVENT_GAP     notifications may have been lost: drop everything. Never
 *     decoded: the watcher makes it (reconnect, queue overflow, stop).
 *   PGCW_EVENT_SCHEMA  a DDL command ran (event triggers installed with
 *     `pgcachewatch install --ddl`, install.h). Decoded from the table-change JSON
 *     format when "operation" is "ddl" (ASCII case-insensitive):
 *       {"operation":"ddl","event":"ddl_command_end","command_tag":"ALTER TABLE",
 *        "object_type":"table","object_identity":"public.items",
 *        "schema":"public","table":"items","sent_at":"<ISO 8601>"}
 *     command_tag, object_type, object_identity (may be "") and sent_at are
 *     required strings; schema and table are optional (absent when the object is
 *     not a table nor an index or trigger of one, nor, for drops, a column or
 *     constraint of one; a dropped index names no table). operation is
 *     PGCW_OP_NONE. The trigger cuts a long object_identity short (and adds
 *     "identity_truncated":true) so that every payload stays under 7999 bytes.
 *
 * More kinds and more gap reasons may be added: a consumer must
 * treat a kind it does not know as "something changed" (or ignore it if it only
 * cares about one kind) and any gap, whatever its reason, as a gap.
 *
 * Events are immutable and shared: the library hands out `const pgcw_event *`,
 * and the same event may be in several queues at once. The struct grows at the end
 * only; only the library allocates events (so code built against an older header
 * reads the prefix it knows).
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
    /* For key events: PGCW_OP_UPDATE (written: inserted or updated) or
     * PGCW_OP_DELETE. */
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
    PGCW_EVENT_GAP = 1,    /* notifications may have been lost: drop everything */
    PGCW_EVENT_KEY = 2,    /* a cache key was written or deleted */
    PGCW_EVENT_SCHEMA = 3  /* a DDL command ran (since 0.3) */
} pgcw_event_kind;

/* "change", "gap", "key", "schema"; "unknown" for anything else. Never NULL. */
const char *pgcw_event_kind_name(pgcw_event_kind kind);

/* Where an event came from. */
typedef enum pgcw_event_source {
    PGCW_SOURCE_LOCAL = 0,  /* made in this process: decoded by hand, dispatched, a gap */
    PGCW_SOURCE_LISTEN = 1, /* a NOTIFY received on a LISTEN connection */
    PGCW_SOURCE_LOGICAL = 2, /* decoded from the WAL through a replication slot (0.4) */
    PGCW_SOURCE_POLL = 3     /* read from a change-log table by polling (0.4) */
} pgcw_event_source;

/* "local", "listen", "logical", "poll"; "unknown" for anything else. Never NULL. */
const char *pgcw_event_source_name(pgcw_event_source source);

/* How a channel's payloads are decoded (pgcw_watcher_opts.formats). */
typedef enum pgcw_payload_format {
    /* By the first byte: '{' is JSON (a table change, or a schema change when its
     * operation is "ddl"), 'u' or 'd' a cache key. */
    PGCW_FORMAT_AUTO = 0,
    PGCW_FORMAT_TABLE_CHANGE = 1, /* JSON, ours or Python pgcachewatch's; DDL too */
    PGCW_FORMAT_CACHE_KEY = 2     /* the postgres-cache key notification */
} pgcw_payload_format;

/* "auto", "table-change", "cache-key"; "unknown" for anything else. Never NULL. */
const char *pgcw_payload_format_name(pgcw_payload_format format);

/* Parses "auto", "table-change" or "cache-key" into *out. Returns PGCW_OK or
 * PGCW_EPARSE. */
pgcw_status pgcw_payload_format_parse(const char *text, pgcw_payload_format *out);

typedef enum pgcw_gap_reason {
    PGCW_GAP_NONE = 0,
    PGCW_GAP_DISCONNECTED = 1, /* the LISTEN connection was lost */
    PGCW_GAP_OVERFLOW = 2,     /* this subscriber's queue was full */
    PGCW_GAP_PRUNED = 3        /* change-log rows not yet read were pruned (0.4) */
} pgcw_gap_reason;

/* "none", "disconnected", "overflow", "pruned". Never NULL. */
const char *pgcw_gap_reason_name(pgcw_gap_reason reason);

/*
 * One event. Every pointer member points into the same allocation as the struct
 * and lives exactly as long as it: release it with pgcw_event_free().
 */
typedef struct pgcw_event {
    pgcw_event_kind kind;
    pgcw_op operation;      /* PGCW_OP_NONE for gap events */
    const char *channel;    /* never NULL ("" if unknown) */
    const char *schema;     /* NULL when the payload had none (Python payload) */
    const char *table;      /* never NULL for change events; schema events: the
                             * table concerned or NULL; NULL otherwise */
    int64_t sent_at_us;     /* server's clock, microseconds since the Unix epoch
                             * (key events carry no time: received_at_us) */
    int64_t received_at_us; /* this host's realtime clock, same unit */
    int64_t latency_us;     /* received_at_us - sent_at_us (may be < 0 with skew) */
    uint64_t epoch;         /* watcher epoch when received (see watcher.h) */
    int backend_pid;        /* pid of the notifying backend, 0 if unknown */
    const char *payload;    /* the raw payload; NULL for gap events and made events */

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

    /* --- since 0.2 ------------------------------------------------------------ */
    pgcw_event_source source;
    /* Key events: the key's bytes (key_len of them, followed by a NUL that is not
     * part of the key; a key never holds a NUL itself) and the entry's version. */
    const char *key;
    size_t key_len;
    int64_t version;
    /* The log position of the commit, for sources that know it; 0 otherwise. */
    uint64_t lsn;

    /* --- since 0.3 ------------------------------------------------------------ */
    /* Schema events only (NULL otherwise): the command ("ALTER TABLE", "DROP
     * TABLE"), the object's type ("table", "index", "table column") and its
     * identity as pg_identify_object() gives it ("public.items"), possibly cut
     * short. schema and table above name the table concerned, or are NULL. */
    const char *command_tag;
    const char *object_type;
    const char *object_identity;

    /* --- since 0.4 ------------------------------------------------------------ */
    /* The id of the transaction that made the change, as PostgreSQL's pgoutput
     * sends it in the transaction's Begin message: 32 bits, wrapping around (compare
     * two modulo 2^32), the low half of what pg_current_snapshot() shows. Set by
     * the logical source on every change event; 0 (PostgreSQL's invalid id) when
     * the source does not know it: LISTEN, polling, key events, gaps. The cache
     * (notify_mode LOGICAL) asks the server when this transaction is visible
     * to other sessions, which can be a moment after its change arrives. */
    uint32_t xid;
} pgcw_event;

/*
 * Decodes one notification payload in the given format.
 *
 * channel: borrowed, copied (NULL means ""). payload: borrowed, copied; need not be
 * NUL-terminated beyond payload_len. received_at_us: when it arrived (0 = now).
 * On success *out is owned: release with pgcw_event_free(); source is
 * PGCW_SOURCE_LOCAL. On error *out is NULL. Returns PGCW_OK, PGCW_EINVAL (out NULL,
 * unknown format), PGCW_EPARSE (table change: not JSON, not an object, a required
 * member missing or of the wrong type, unknown operation, bad timestamp, not UTF-8;
 * cache key: see the top of this file; AUTO: neither) or PGCW_ENOMEM. The watcher
 * logs the reason for each payload it skips. Never crashes on any input.
 * Thread-safe.
 */
pgcw_status pgcw_event_parse(pgcw_payload_format format, const char *channel,
                             const char *payload, size_t payload_len,
                             int64_t received_at_us, const pgcw_event **out);

/* Makes a gap event. channel may be NULL. Owned: release with pgcw_event_free(). */
pgcw_status pgcw_event_new_gap(const char *channel, pgcw_gap_reason reason, uint64_t lost,
                               uint64_t epoch, const pgcw_event **out);

/* Makes a key event (for pgcw_watcher_dispatch(): a local invalidation). op is
 * PGCW_OP_UPDATE or PGCW_OP_DELETE; key is key_len bytes without a NUL. Owned:
 * release with pgcw_event_free(). Returns PGCW_OK, PGCW_EINVAL or PGCW_ENOMEM. */
pgcw_status pgcw_event_new_key(const char *channel, pgcw_op op, const void *key,
                               size_t key_len, int64_t version, const pgcw_event **out);

/* A deep copy (its own allocation, not shared). Owned: release with
 * pgcw_event_free(). */
pgcw_status pgcw_event_clone(const pgcw_event *event, const pgcw_event **out);

/* Releases this reference to an event. NULL is fine. */
void pgcw_event_free(const pgcw_event *event);

/*
 * Formats an event as one line of JSON (no newline), e.g. for `listen --json`:
 * {"kind":"change","channel":..,"operation":..,"schema":..,"table":..,
 *  "sent_at":"<ISO 8601 UTC>","received_at":..,"latency_ms":..,"keys":[..]}
 * A key event has "key" (the key as a JSON string; "key_hex" instead when it is
 * not valid UTF-8) and "version" in place of schema, table and keys. A schema
 * event adds "command_tag", "object_type" and "object_identity"; its schema and
 * table may be null. An event with a commit LSN (logical decoding) adds "lsn" in
 * PostgreSQL's form, "16/B374D848".
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
