/*
 * cmd_cache.h - what the `pgcachewatch cache` command's two files share: the
 * parsed command line, and one function per subcommand (cmd_cache_run.c) for the
 * dispatcher (cmd_cache.c).
 */
#ifndef PGCW_CLI_CMD_CACHE_H
#define PGCW_CLI_CMD_CACHE_H

#include <stdbool.h>
#include <stdint.h>

#include <pgcachewatch/pgcachewatch.h>

#include "cli.h"

/* Rows one cleanup call removes; the command repeats until a call removes fewer. */
#define CLI_CACHE_CLEANUP_BATCH 500

typedef struct cli_cache_args {
    char cmd[64]; /* "pgcachewatch cache get" */
    int err_code; /* exit code of a runtime error (get: 2, its miss is 1) */
    cli_conn_opts conn;
    pgcw_cache_opts opts; /* schema_prefix, notify_channel, durability */
    const char *prefix;   /* opts.schema_prefix or "" */
    int64_t ttl_ms;       /* PGCW_CACHE_TTL_DEFAULT unless --ttl */
    bool json;
    char **args; /* positional arguments, borrowed from argv */
    int n_args;
    char why[512]; /* what the library logged when it refused the options */
    int (*run)(struct cli_cache_args *a, pgcw_cache *c); /* the subcommand */
} cli_cache_args;

/* Parses `cache SUBCOMMAND [OPTIONS] [ARGS]` (argv[0] "pgcachewatch cache") into
 * *a, running nothing and connecting nowhere: -1 when a->run should go on, else
 * the exit code (help printed, or a usage error after printing why). Resets
 * getopt itself; argv[1] is replaced by a->cmd. */
int cli_cache_parse(int argc, char **argv, cli_cache_args *a);

/* A cache handle for one-shot calls: no L1, so no LISTEN connection; one pooled
 * connection, opened by the first call. Returns -1, else the exit code (a prefix
 * or channel the library refuses is a usage error). Free with pgcw_cache_free(). */
int cli_cache_open(cli_cache_args *a, pgcw_cache **out);

/* The subcommands: c is the handle cli_cache_open() made. Each returns the exit
 * code, having printed what went wrong. */
int cli_cache_init(cli_cache_args *a, pgcw_cache *c);
int cli_cache_get(cli_cache_args *a, pgcw_cache *c);
int cli_cache_set(cli_cache_args *a, pgcw_cache *c);
int cli_cache_del(cli_cache_args *a, pgcw_cache *c);
int cli_cache_cleanup(cli_cache_args *a, pgcw_cache *c);
int cli_cache_stats(cli_cache_args *a, pgcw_cache *c);

#endif
