/*
 * cli_util.c - what every command shares: usage and runtime error messages, and
 * the one number syntax of --count, --timeout and --ttl.
 *
 * Kept apart from main() so the parsing can be linked into a fuzz target
 * (fuzz/fuzz_cli.c) without the program around it. Never exits: every helper
 * returns, and each command returns its exit code to main().
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void vreport(const char *cmd, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
static void vreport(const char *cmd, const char *fmt, va_list ap)
{
    char msg[4096];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n > 0 && msg[n - 1] == '\n')
        msg[--n] = '\0';
    fprintf(stderr, "%s: %s\n", cmd ? cmd : CLI_PROG, msg);
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport(cmd, fmt, ap);
    va_end(ap);
    return cli_bad_option(cmd);
}

int cli_runtime_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport(cmd, fmt, ap);
    va_end(ap);
    return CLI_EXIT_RUNTIME;
}

int cli_bad_option(const char *cmd)
{
    fprintf(stderr, "Try '%s --help' for more information.\n", cmd ? cmd : CLI_PROG);
    return CLI_EXIT_USAGE;
}

/* The one number syntax of every option: decimal digits, then (where a fraction
 * is allowed) a point and more digits. No sign, space, exponent, hex or "inf":
 * strtod alone would take "0x1p3" or " 5" and strtoll would clamp an overflow. */
static bool decimal_syntax(const char *text, bool fraction)
{
    const char *p = text;
    if (!p || *p < '0' || *p > '9')
        return false;
    while (*p >= '0' && *p <= '9')
        p++;
    if (fraction && *p == '.') {
        p++;
        if (*p < '0' || *p > '9')
            return false;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    return *p == '\0';
}

bool cli_parse_seconds(const char *text, long long *ms_out)
{
    if (!decimal_syntax(text, true))
        return false;
    double s = strtod(text, NULL);
    if (s > CLI_MAX_SECONDS) /* refused, never clamped */
        return false;
    *ms_out = (long long)(s * 1000.0 + 0.5);
    return true;
}

bool cli_parse_count(const char *text, long long *out)
{
    if (!decimal_syntax(text, false))
        return false;
    errno = 0;
    long long n = strtoll(text, NULL, 10);
    if (errno == ERANGE || n <= 0) /* refused, never clamped */
        return false;
    *out = n;
    return true;
}

bool cli_parse_source(const char *text, pgcw_watch_source *out)
{
    static const struct {
        const char *name;
        pgcw_watch_source source;
    } names[] = {{"listen", PGCW_WATCH_LISTEN},
                 {"logical", PGCW_WATCH_LOGICAL},
                 {"poll", PGCW_WATCH_POLL}};
    for (size_t i = 0; text && i < sizeof names / sizeof names[0]; i++)
        if (strcmp(text, names[i].name) == 0) {
            *out = names[i].source;
            return true;
        }
    return false;
}
