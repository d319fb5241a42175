/*
 * source_pgoutput.h - the pgoutput decoder (source_pgoutput.c): PostgreSQL's
 * logical replication protocol, version 1, as the built-in pgoutput plugin sends
 * it inside XLogData, turned into change events. No I/O: the logical source
 * (source_logical.c) feeds it one message at a time; tests and the fuzz target
 * feed it bytes they built.
 *
 * A decoder keeps the relation cache (relid -> schema, table, columns, which are
 * in the replica identity) and the transaction in progress. Every change message
 * (Insert, Update, Delete, Truncate) becomes events at once, queued in order; the
 * caller takes them with pgcw__pgoutput_take(). A Commit tells the caller the
 * transaction's end LSN, the position to confirm once its events are delivered.
 * pgoutput v1 sends a transaction only after it committed, and never one that
 * rolled back, so every event queued is of a committed transaction.
 *
 * One thread at a time. Every length in a message is checked against the bytes
 * that are there: a truncated or hostile message is PGCW_EPARSE with the reason,
 * never a read past the end.
 */
#ifndef PGCW_SOURCE_PGOUTPUT_H
#define PGCW_SOURCE_PGOUTPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pgcachewatch/event.h"

/* The Unix time of pgoutput's epoch (2000-01-01 00:00:00 UTC), in microseconds. */
#define PGCW__PG_EPOCH_US INT64_C(946684800000000)

/* Most relations a decoder describes at once (a stream describing more is refused:
 * memory stays bounded whatever the server sends), and PostgreSQL's own column
 * limit (MaxTupleAttributeNumber). */
#define PGCW__PGOUTPUT_MAX_RELATIONS 100000
#define PGCW__PGOUTPUT_MAX_COLUMNS 1664

typedef struct pgcw__pgoutput pgcw__pgoutput;

/* What the last message was. */
typedef enum pgcw__pgoutput_kind {
    PGCW__PGO_BEGIN = 1,
    PGCW__PGO_COMMIT,
    PGCW__PGO_CHANGE,   /* insert, update, delete, truncate: events queued */
    PGCW__PGO_RELATION, /* a relation described (cached) */
    PGCW__PGO_SKIPPED   /* type, origin, logical message: nothing to do */
} pgcw__pgoutput_kind;

typedef struct pgcw__pgoutput_info {
    pgcw__pgoutput_kind kind;
    /* BEGIN and COMMIT: the commit's LSN and time (us since the Unix epoch).
     * COMMIT: end_lsn, the position after the commit record: confirming it says
     * the whole transaction was consumed. */
    uint64_t commit_lsn;
    uint64_t end_lsn;
    int64_t commit_time_us;
} pgcw__pgoutput_info;

/* A decoder whose events carry channel (copied; NULL means ""). Returns PGCW_OK or
 * PGCW_ENOMEM. */
pgcw_status pgcw__pgoutput_new(const char *channel, pgcw__pgoutput **out);

/* Frees it and every event still queued. NULL is fine. */
void pgcw__pgoutput_free(pgcw__pgoutput *d);

/* Forgets the relations, the transaction in progress and the queued events: for a
 * new replication session, which describes its relations again. */
void pgcw__pgoutput_reset(pgcw__pgoutput *d);

/*
 * Decodes one pgoutput message (msg[0..len), the XLogData payload). received_at_us
 * is stamped on events. info (may be NULL) says what it was. Returns PGCW_OK,
 * PGCW_EPARSE (truncated, unknown message type, a change outside a transaction,
 * an undescribed relation, a tuple whose column count does not match its
 * relation's, a name that is not UTF-8, ...: why holds one line) or PGCW_ENOMEM.
 * After an error the stream cannot be trusted: reset before feeding more. Events
 * queued before the error stay queued.
 */
pgcw_status pgcw__pgoutput_feed(pgcw__pgoutput *d, const void *msg, size_t len,
                                int64_t received_at_us, pgcw__pgoutput_info *info,
                                char *why, size_t whylen);

/* Moves up to max queued events, oldest first, into out (the caller's references
 * now). Returns how many. */
size_t pgcw__pgoutput_take(pgcw__pgoutput *d, pgcw_event **out, size_t max);

/* How many events are queued. */
size_t pgcw__pgoutput_pending(const pgcw__pgoutput *d);

/* Whether a transaction is open (a Begin without its Commit yet). */
bool pgcw__pgoutput_in_transaction(const pgcw__pgoutput *d);

#endif
