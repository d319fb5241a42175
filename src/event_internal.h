/*
 * event_internal.h - what the library's other modules may do with an event beyond
 * the public API: share it. The watcher parses a notification once and hands one
 * reference to each subscriber; every holder calls pgcw_event_free() once. Events
 * are immutable after construction, which is what makes the sharing safe: nothing
 * in the library may write to an event it did not just build.
 */
#ifndef PGCW_EVENT_INTERNAL_H
#define PGCW_EVENT_INTERNAL_H

#include <stddef.h>

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
pgcw_event *pgcw__event_ref(pgcw_event *e);

/* The current number of references, for tests and assertions only: another thread
 * may change it the moment it is read. */
size_t pgcw__event_refcount(const pgcw_event *e);

/* Builds an event with one reference in a single allocation, copying every string
 * and array tmpl points to (pgcw_event_parse and _clone use it). tmpl->payload, if
 * not NULL, is payload_len bytes and need not be NUL-terminated; every other string
 * is NUL-terminated. NULL channel becomes "". Returns PGCW_OK or PGCW_ENOMEM. */
pgcw_status pgcw__event_build(const pgcw_event *tmpl, size_t payload_len,
                              pgcw_event **out);

#endif
