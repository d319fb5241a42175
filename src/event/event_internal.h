/*
 * event_internal.h - what the library's other modules may do with an event beyond
 * the public API: share it. The watcher parses a notification once and hands one
 * reference to each subscriber; every holder calls pgcw_event_free() once. Events
 * are immutable after construction, which is what makes the sharing safe: nothing
 * in the library may write to an event it did not just build.
 */
#ifndef PGCW_EVENT_INTERNAL_H
#define PGCW_EVENT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pgcachewatch/event.h"

/* Largest payload pgcw_event_parse() accepts. PostgreSQL's own limit is 7999 bytes;
 * the margin is for payloads read from files or other transports. */
#define PGCW__EVENT_MAX_PAYLOAD ((size_t)1 << 20)

/* Deepest JSON nesting pgcw_event_parse() accepts (object > keys > key > value). */
#define PGCW__EVENT_MAX_DEPTH 32

/* Adds a reference (thread-safe) and returns e; NULL gives NULL. Each reference is
 * dropped by one pgcw_event_free(). The one exception to immutability: whoever
 * creates an event may still fill in fields the parser cannot know (epoch,
 * backend_pid) while it holds the only reference, before the first ref. */
const pgcw_event *pgcw__event_ref(const pgcw_event *e);

/* The current number of references, for tests and assertions only: another thread
 * may change it the moment it is read. */
size_t pgcw__event_refcount(const pgcw_event *e);

/* Builds an event with one reference in a single allocation, copying every string
 * and array tmpl points to (the decoders, _new_* and _clone use it). tmpl->payload,
 * if not NULL, is payload_len bytes and tmpl->key, if not NULL, tmpl->key_len
 * bytes; neither need be NUL-terminated; every other string is NUL-terminated.
 * NULL channel becomes "". Returns PGCW_OK or PGCW_ENOMEM. */
pgcw_status pgcw__event_build(const pgcw_event *tmpl, size_t payload_len,
                              pgcw_event **out);

/* received_at_us - sent_at_us, saturating instead of overflowing (a caller may
 * pass any received_at_us). */
static inline int64_t pgcw__latency_us(int64_t received_at_us, int64_t sent_at_us)
{
    int64_t r;
    if (__builtin_sub_overflow(received_at_us, sent_at_us, &r))
        return sent_at_us < 0 ? INT64_MAX : INT64_MIN;
    return r;
}

/*
 * Decodes one payload in the given format (AUTO: by its first byte) after the
 * checks every payload passes (not empty, not too long, no NUL). received_at_us 0
 * means now. On PGCW_EPARSE, PGCW_ENOMEM and PGCW_EINVAL, why (if not NULL) holds a
 * one-line reason. pgcw_event_parse() is this without the reason.
 */
pgcw_status pgcw__event_decode(pgcw_payload_format format, const char *channel,
                               const char *payload, size_t payload_len,
                               int64_t received_at_us, pgcw_event **out, char *why,
                               size_t whylen);

/* a == b ignoring the case of ASCII letters in a; b is lower case. */
bool pgcw__ascii_ieq(const char *a, const char *b);

/* Whether format is one the decoders know (AUTO included). */
bool pgcw__payload_format_valid(pgcw_payload_format format);

/*
 * The table-change decoder in two steps, for it and for the tests and the differential
 * fuzzer, which call each step on its own. Both take received_at_us as the final
 * value (no "0 = now") and leave *out NULL unless they succeed.
 *
 * The fast path (event_fastpath.c) handles the flat payloads our triggers and
 * Python's send: a JSON object whose members are strings without escapes or
 * non-ASCII bytes, integers of at most 18 digits, true/false/null, no duplicate
 * names, with operation/table/sent_at valid and pk/keys absent or null. It returns
 * true with *out built, or false ("declined", *out NULL, nothing written anywhere)
 * on anything else, out of memory included. Whatever it accepts, the json-c path
 * accepts and turns into an identical event. Any payload_len; payload may be NULL.
 */
bool pgcw__event_parse_fast(const char *channel, const char *payload, size_t payload_len,
                            int64_t received_at_us, pgcw_event **out);

/* The json-c path (event_parse.c), the authority on every payload and the one that
 * explains errors. payload must be non-empty, at most PGCW__EVENT_MAX_PAYLOAD bytes
 * and free of NUL bytes (pgcw__event_decode checks that first). Returns as
 * pgcw__event_decode does. */
pgcw_status pgcw__event_parse_json(const char *channel, const char *payload,
                                   size_t payload_len, int64_t received_at_us,
                                   pgcw_event **out, char *errbuf, size_t errlen);

#endif
