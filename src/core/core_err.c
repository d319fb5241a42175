/*
 * core_err.c - per-thread error detail of thread-safe handles (core_err.h). Must
 * never allocate: a failure has to be recordable when memory is what ran out.
 */
#include "core_err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local const void *err_owner;
static _Thread_local char err_msg[PGCW__ERR_MAX];

void pgcw__err_set(const void *owner, const char *fmt, ...)
{
    char raw[PGCW__ERR_MAX];
    va_list ap;
    va_start(ap, fmt);
    if (vsnprintf(raw, sizeof raw, fmt, ap) < 0)
        raw[0] = '\0';
    va_end(ap);
    pgcw__trim_end(raw);
    pgcw__escape_line(err_msg, sizeof err_msg, raw, strlen(raw));
    err_owner = owner;
}

void pgcw__err_clear(const void *owner)
{
    if (err_owner == owner) {
        err_owner = NULL;
        err_msg[0] = '\0';
    }
}

const char *pgcw__err_get(const void *owner)
{
    return owner && err_owner == owner ? err_msg : "";
}
