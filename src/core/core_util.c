/*
 * core_util.c - strings, string building and bounded messages for the library's own
 * use.
 * Must never print or exit: errors go back to the caller.
 */
#define _POSIX_C_SOURCE 200809L
#include "core_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *pgcw__strdup(const char *s)
{
    return s ? pgcw__strndup(s, strlen(s)) : NULL;
}

char *pgcw__strndup(const char *s, size_t n)
{
    if (!s)
        return NULL;
    char *p = malloc(n + 1);
    if (!p)
        return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

void pgcw__errf(char *buf, size_t len, const char *fmt, ...)
{
    if (!buf || len == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, len, fmt, ap);
    va_end(ap);
}

char *pgcw__trim_end(char *s)
{
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' '))
        s[--n] = '\0';
    return s;
}

char *pgcw__one_line(char *s)
{
    char *o = s;
    for (const char *p = s; *p;) {
        if (*p != '\n') {
            *o++ = *p++;
            continue;
        }
        while (*p == '\n' || *p == '\t' || *p == ' ')
            p++;
        *o++ = ' ';
    }
    *o = '\0';
    return pgcw__trim_end(s);
}

static bool buf_reserve(pgcw__buf *b, size_t extra)
{
    if (b->failed)
        return false;
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap *= 2;
    char *p = realloc(b->data, cap);
    if (!p) {
        b->failed = true;
        return false;
    }
    b->data = p;
    b->cap = cap;
    return true;
}

void pgcw__buf_appendn(pgcw__buf *b, const char *s, size_t n)
{
    if (!buf_reserve(b, n))
        return;
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void pgcw__buf_append(pgcw__buf *b, const char *s)
{
    pgcw__buf_appendn(b, s, strlen(s));
}

void pgcw__buf_appendf(pgcw__buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->failed = true;
        return;
    }
    if (!buf_reserve(b, (size_t)n))
        return;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

char *pgcw__buf_take(pgcw__buf *b)
{
    char *p = NULL;
    if (!b->failed)
        p = b->data ? b->data : pgcw__strdup("");
    else
        free(b->data);
    *b = (pgcw__buf){0};
    return p;
}

void pgcw__buf_free(pgcw__buf *b)
{
    free(b->data);
    *b = (pgcw__buf){0};
}

void pgcw__logf(pgcw_log_fn log, void *ctx, pgcw_log_level level, const char *fmt, ...)
{
    if (!log)
        return;
    char raw[1024], msg[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(raw, sizeof raw, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    size_t len = (size_t)n < sizeof raw ? (size_t)n : sizeof raw - 1;
    pgcw__escape_line(msg, sizeof msg, raw, len);
    log(ctx, level, msg);
}
