/*
 * core_err.h - the error detail of thread-safe handles (the memo now, the cache
 * next): per handle and per thread, so that two threads failing on one handle at
 * once each read their own message, as errno works.
 *
 * Each thread keeps the detail of its last failed call on one handle (the owner);
 * pgcw__err_get() on any other owner reads "". Fixed storage (no allocation, so
 * recording a failure cannot itself fail); messages longer than
 * PGCW__ERR_MAX - 1 bytes are truncated. Handles whose calls run on one thread at
 * a time (a watcher's driving thread, a pgcw_conn) keep their message in the handle.
 */
#ifndef PGCW_CORE_ERR_H
#define PGCW_CORE_ERR_H

#include "core_util.h"

#define PGCW__ERR_MAX 1024

/* Records the calling thread's detail for owner (formatted, trailing newlines
 * trimmed, then escaped to one line: pgcw__escape_line). */
void pgcw__err_set(const void *owner, const char *fmt, ...) PGCW__PRINTF(2, 3);

/* Forgets the calling thread's detail if it belongs to owner (a call that
 * succeeded). */
void pgcw__err_clear(const void *owner);

/* The calling thread's last detail for owner, or "". Valid until this thread's
 * next pgcw__err_set(). */
const char *pgcw__err_get(const void *owner);

#endif
