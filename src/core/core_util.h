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
 * surrogates, nothing above U+10FFFF). (core_text.c) */
bool pgcw__utf8_valid(const char *s, size_t n);

/* Decodes the well-formed UTF-8 character at p[0..n): its length (1-4) with
 * *cp set, or 0 when p does not start with one. */
size_t pgcw__utf8_next(const unsigned char *p, size_t n, uint32_t *cp);

/* Copies src[0..n) into dst as one line of printable text: newline, carriage
 * return and tab become \n, \r, \t (a backslash stays as it is); other control
 * bytes and bytes that are not UTF-8 become \xHH; C1 controls, line separators
 * and bidirectional overrides become \uHHHH; everything else is kept. Truncates at
 * a character boundary to fit cap (NUL included); returns the length written. */
size_t pgcw__escape_line(char *dst, size_t cap, const char *src, size_t n);

/* At most `burst` messages per window; the rest are counted. Zeroed except for
 * window_us and burst; one thread at a time. */
typedef struct pgcw__ratelimit {
    int64_t window_us;
    unsigned burst;
    int64_t window_start_us;
    unsigned used;
    uint64_t suppressed;
} pgcw__ratelimit;

/* Whether a message may go out at now_us (a monotonic clock); if so *suppressed
 * receives how many were held back since the last one that went out. */
bool pgcw__ratelimit_take(pgcw__ratelimit *r, int64_t now_us, uint64_t *suppressed);

/* Removes trailing newlines and spaces in place (libpq's messages end with one);
 * returns s. */
char *pgcw__trim_end(char *s);

/* Makes s one line in place: every line break (libpq separates a message's parts
 * with them, the next part often indented with a tab) becomes one space, then
 * trailing blanks go. Returns s. */
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

/* Calls log(ctx, level, formatted) if log is not NULL, the formatted text escaped
 * to one line (pgcw__escape_line): every log message of the library is one line
 * with no control bytes, whatever the payloads and names it quotes hold. */
void pgcw__logf(pgcw_log_fn log, void *ctx, pgcw_log_level level, const char *fmt, ...)
    PGCW__PRINTF(4, 5);

#endif
