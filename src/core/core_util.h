/*
 * core_util.h - internal helpers shared by the library's modules: strings, string
 * building, bounded messages, the log call. Never part of the public API; never
 * prints. (Clocks and deadlines: core_time.h.)
 */
#ifndef PGCW_CORE_UTIL_H
#define PGCW_CORE_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core_time.h"
#include "pgcachewatch/common.h"

#if defined(__GNUC__)
#define PGCW__PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define PGCW__PRINTF(f, a)
#endif

/* malloc'd copy of s (NULL on OOM or when s is NULL). */
char *pgcw__strdup(const char *s);
/* malloc'd copy of exactly n bytes of s (NULs included), NUL-terminated. */
char *pgcw__strndup(const char *s, size_t n);

/* snprintf into a fixed buffer, always NUL-terminated; buf may be NULL. */
void pgcw__errf(char *buf, size_t len, const char *fmt, ...) PGCW__PRINTF(3, 4);

/* Whether s[0..n) is well-formed UTF-8 (RFC 3629: no overlong forms, no
 * surrogates, nothing above U+10FFFF). */
bool pgcw__utf8_valid(const char *s, size_t n);

/* Removes trailing newlines and spaces in place (libpq's messages end with one);
 * returns s. */
char *pgcw__trim_end(char *s);

/* Makes s one line in place: every newline (libpq separates a message's parts with
 * them) becomes a space, then trailing blanks go. Returns s. */
char *pgcw__one_line(char *s);

/* A growable NUL-terminated string. A zeroed pgcw__buf is empty and valid. Once an
 * append fails, `failed` stays set and later appends are no-ops. */
typedef struct pgcw__buf {
    char *data;
    size_t len;
    size_t cap;
    bool failed;
} pgcw__buf;

void pgcw__buf_append(pgcw__buf *b, const char *s);
void pgcw__buf_appendn(pgcw__buf *b, const char *s, size_t n);
void pgcw__buf_appendf(pgcw__buf *b, const char *fmt, ...) PGCW__PRINTF(2, 3);
/* Hands the string over (owned by the caller) and resets b. NULL if failed. */
char *pgcw__buf_take(pgcw__buf *b);
void pgcw__buf_free(pgcw__buf *b);

/* Calls log(ctx, level, formatted) if log is not NULL. */
void pgcw__logf(pgcw_log_fn log, void *ctx, pgcw_log_level level, const char *fmt, ...)
    PGCW__PRINTF(4, 5);

#endif
