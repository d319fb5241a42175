/*
 * event_decoder.h - payload decoders behind one interface: one file per format
 * (event_parse.c: table-change JSON; event_decode_key.c: the postgres-cache key
 * notification), chosen per channel by event_decode.c. A new format is a new file
 * and a line in event_decode.c's table. (DDL events are not one: they share the
 * table triggers' channel and JSON, told apart by "operation":"ddl".)
 *
 * A decoder is a pure function: it must never crash, leak or read past
 * payload_len on any input, and never write to anything but *out and why.
 */
#ifndef PGCW_EVENT_DECODER_H
#define PGCW_EVENT_DECODER_H

#include <stddef.h>
#include <stdint.h>

#include "pgcachewatch/event.h"

/*
 * Decodes payload into *out (one reference, kind and fields set; source
 * PGCW_SOURCE_LOCAL, epoch 0, backend_pid 0: the caller fills those in while it
 * holds the only reference). The caller has checked that payload is non-empty, at
 * most PGCW__EVENT_MAX_PAYLOAD bytes and free of NUL bytes, and resolved
 * received_at_us (never 0). Returns PGCW_OK, PGCW_EPARSE (why holds a one-line
 * reason, truncated to whylen) or PGCW_ENOMEM; *out is NULL unless PGCW_OK.
 */
typedef pgcw_status (*pgcw__decode_fn)(const char *channel, const char *payload,
                                       size_t payload_len, int64_t received_at_us,
                                       pgcw_event **out, char *why, size_t whylen);

typedef struct pgcw__decoder {
    pgcw_payload_format format;
    const char *name; /* pgcw_payload_format_name(format) */
    pgcw__decode_fn decode;
} pgcw__decoder;

extern const pgcw__decoder pgcw__decoder_table_change; /* event_parse.c */
extern const pgcw__decoder pgcw__decoder_cache_key;    /* event_decode_key.c */

#endif
