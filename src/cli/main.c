/*
 * main.c - `pgcachewatch`: global options, dispatch to a command, and the error
 * and number helpers every command shares.
 *
 * Uses the public API only. Never exits from a helper: each command returns its
 * exit code to main().
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pgcachewatch/pgcachewatch.h>

#include "cli.h"

typedef struct cli_command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} cli_command;

static const cli_command commands[] = {
    {"install", cli_cmd_install,
     "put NOTIFY triggers on tables (dry run without --commit)"},
    {"uninstall", cli_cmd_uninstall, "remove a channel's triggers and functions"},
    {"listen", cli_cmd_listen, "print change events as they arrive"},
    {"cache", cli_cmd_cache,
     "the key/value cache in PostgreSQL: init, get, set, del, cleanup, stats"},
    {"harness", cli_cmd_harness,
     "many cache clients under load, every read checked for staleness"},
    {"demo", cli_cmd_demo, "a short narrated demo in a scratch schema"},
};

#define N_COMMANDS (sizeof commands / sizeof commands[0])

static void print_help(FILE *f)
{
    fprintf(f,
            "Usage: " CLI_PROG " [--help] [--version] COMMAND [OPTIONS] [ARGS]\n"
            "\n"
            "Keeps application caches coherent with PostgreSQL: triggers that NOTIFY a\n"
            "JSON event on every change, a listener that turns them into cache\n"
            "invalidations, and a key/value cache stored in PostgreSQL.\n"
            "\n"
            "Commands:\n");
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(f,
            "\n"
            "Options:\n"
            "  -h, --help     show this help and exit\n"
            "  -V, --version  show the version and exit\n"
            "\n"
            "Run '" CLI_PROG " COMMAND --help' (or '" CLI_PROG " help COMMAND') for a\n"
            "command's options.\n"
            "Exit status: 0 success, 1 runtime error (e.g. PostgreSQL refused),\n"
            "2 usage error ('cache get': 1 the key is missing, 2 any error).\n");
}

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

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    /* '+': stop at the command name; what follows belongs to the command. */
    static char prog0[] = CLI_PROG;
    argv[0] = prog0; /* getopt's messages name the program, not its path */
    int c;
    opterr = 1;
    while ((c = getopt_long(argc, argv, "+hV", longopts, NULL)) != -1) {
        switch (c) {
        case 'h':
            print_help(stdout);
            return CLI_EXIT_OK;
        case 'V':
            printf("%s %s (libpq %d)\n", CLI_PROG, pgcw_version(), PQlibVersion());
            return CLI_EXIT_OK;
        default:
            return cli_bad_option(NULL);
        }
    }
    if (optind >= argc)
        return cli_usage_error(NULL, "no command given");

    const char *name = argv[optind];
    /* `pgcachewatch help [COMMAND]` is `pgcachewatch [COMMAND] --help`. */
    if (strcmp(name, "help") == 0) {
        if (optind + 1 >= argc) {
            print_help(stdout);
            return CLI_EXIT_OK;
        }
        name = argv[optind + 1];
        for (size_t i = 0; i < N_COMMANDS; i++) {
            if (strcmp(commands[i].name, name) == 0) {
                char prog[64];
                snprintf(prog, sizeof prog, "%s %s", CLI_PROG, name);
                char *sub[] = {prog, (char *)"--help", NULL};
                optind = 0; /* glibc: fully re-initialise getopt for the command */
                return commands[i].run(2, sub);
            }
        }
        return cli_usage_error(NULL, "unknown command '%s'", name);
    }
    int first = optind;
    for (size_t i = 0; i < N_COMMANDS; i++) {
        if (strcmp(commands[i].name, name) == 0) {
            /* The command's messages (getopt's too) then read
             * "pgcachewatch install: ...". */
            char prog[64];
            snprintf(prog, sizeof prog, "%s %s", CLI_PROG, name);
            argv[first] = prog;
            optind = 0;
            return commands[i].run(argc - first, argv + first);
        }
    }
    return cli_usage_error(NULL, "unknown command '%s'", name);
}
