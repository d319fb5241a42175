/*
 * main.c - `pgcachewatch`: global options and dispatch to a command (the helpers
 * every command shares are in cli_util.c).
 *
 * Uses the public API only. Never exits from a helper: each command returns its
 * exit code to main().
 */
#define _GNU_SOURCE
#include <getopt.h>
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
