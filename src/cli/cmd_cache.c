/*
 * cmd_cache.c - `pgcachewatch cache init|get|set|del|cleanup|stats`: the
 * PostgreSQL-backed cache (cache.h) from the shell. This file parses the command
 * line, prints each subcommand's help and dispatches; the subcommands are in
 * cmd_cache_run.c.
 *
 * The prefix and the channel are checked by the library (pgcw_cache_new refuses
 * them before any I/O), never by hand here. Every option a --help lists is one
 * its subcommand takes; the others are refused.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pgcachewatch/pgcachewatch.h>

#include "cli.h"
#include "cmd_cache.h"

enum {
    OPT_PREFIX = CLI_OPT_FIRST_COMMAND,
    OPT_CHANNEL,
    OPT_TTL,
    OPT_LOGGED,
    OPT_JSON,
};

/* The options a subcommand takes besides --schema-prefix, --help and the
 * connection options. */
enum { F_CHANNEL = 1, F_LOGGED = 2, F_TTL = 4, F_JSON = 8 };

#define STR_(x) #x
#define STR(x) STR_(x)
#define SCHEMA_VERSION STR(PGCW_CACHE_SCHEMA_VERSION)
#define CLEANUP_BATCH STR(CLI_CACHE_CLEANUP_BATCH)

typedef struct subcommand {
    const char *name;
    int (*run)(cli_cache_args *a, pgcw_cache *c);
    unsigned flags;
    int min_args, max_args; /* -1: no upper bound */
    const char *synopsis;   /* after "[OPTIONS]" */
    const char *about;      /* what it does, ends with a blank line */
    const char *exit_help;
} subcommand;

static const char prefix_help[] =
    "      --schema-prefix PREFIX  prefix of the cache's table, function, trigger and\n"
    "                              index names: letters, digits and '_' (default\n"
    "                              none: the table is cache_entries)\n";
static const char channel_help[] =
    "      --notify-channel NAME   the channel the table's trigger notifies on\n"
    "                              (default cache_events; set when the schema is\n"
    "                              created, an existing one keeps its own)\n";
static const char logged_help[] =
    "      --logged                create the table LOGGED: it survives a crash, and\n"
    "                              commits wait for the WAL (default UNLOGGED; an\n"
    "                              existing table keeps its own)\n";
static const char ttl_help[] =
    "      --ttl SECONDS           time to live in seconds (30, 1.5; rounded to the\n"
    "                              millisecond, at least 0.001), or 'none': never\n"
    "                              expires. The server's clock counts it (default\n"
    "                              300, the library's default_ttl_ms)\n";
static const char json_help[] =
    "      --json                  print one JSON object instead of lines\n";

static const char exit_help_common[] =
    "Exit status: 0 success, 1 PostgreSQL or connection error, 2 usage error.\n";

static const subcommand subcommands[] = {
    {"init", cli_cache_init, F_CHANNEL | F_LOGGED, 0, 0, "",
     "Creates the cache's table, its schema-version table, triggers and cleanup\n"
     "function for the prefix, or upgrades them, to schema version " SCHEMA_VERSION ":\n"
     "the layout of the Python postgres-cache, so Python clients can share it. Safe\n"
     "to run again, and from several processes at once. Prints the version, where\n"
     "the table is and what its trigger notifies on.\n\n",
     exit_help_common},
    {"get", cli_cache_get, 0, 1, 1, "KEY",
     "Prints KEY's value on stdout exactly as stored: raw bytes, no newline added.\n"
     "A missing, expired or deleted key prints nothing and exits 1.\n\n",
     "Exit status: 0 the key was found, 1 it was not, 2 any error (usage,\n"
     "connection, PostgreSQL).\n"},
    {"set", cli_cache_set, F_TTL, 1, 2, "KEY [VALUE]",
     "Writes KEY = VALUE; without VALUE, the value is all of stdin (any bytes).\n"
     "Other clients' L1 copies of KEY are evicted by the table's notification.\n"
     "Put '--' before a KEY or VALUE that starts with '-'.\n\n",
     exit_help_common},
    {"del", cli_cache_del, 0, 1, -1, "KEY...",
     "Deletes the keys, in one transaction (a tombstone each: it reads as a miss and\n"
     "cleanup removes it). Deleting a missing key succeeds.\n\n",
     exit_help_common},
    {"cleanup", cli_cache_cleanup, 0, 0, 0, "",
     "Removes every expired row (tombstones included), " CLEANUP_BATCH " per statement,\n"
     "and prints how many were removed.\n\n",
     exit_help_common},
    {"stats", cli_cache_stats, F_JSON, 0, 0, "",
     "Prints what the table holds, whoever wrote it: where it is, its schema version,\n"
     "durability and notify channel, its rows (live, expired, tombstones), the\n"
     "values' bytes and the table's size on disk. Counts every row (one scan).\n\n",
     exit_help_common},
};

#define N_SUBCOMMANDS (sizeof subcommands / sizeof subcommands[0])

static void print_cache_help(void)
{
    fputs("Usage: " CLI_PROG " cache SUBCOMMAND [OPTIONS] [ARGS]\n"
          "\n"
          "A key/value cache in a PostgreSQL table, shared with every client of the\n"
          "same database and prefix (C or the Python postgres-cache).\n"
          "\n"
          "Subcommands:\n"
          "  init               create or upgrade the table, triggers and functions\n"
          "  get KEY            print a value (exit 1 when the key is missing)\n"
          "  set KEY [VALUE]    write a value (from stdin without VALUE)\n"
          "  del KEY...         delete keys\n"
          "  cleanup            remove expired rows\n"
          "  stats              what the table holds (--json)\n"
          "\n"
          "Run '" CLI_PROG " cache SUBCOMMAND --help' for its options.\n",
          stdout);
}

static void print_sub_help(const char *cmd, const subcommand *s)
{
    printf("Usage: %s [OPTIONS]%s%s\n\n%sOptions:\n", cmd, *s->synopsis ? " " : "",
           s->synopsis, s->about);
    fputs(prefix_help, stdout);
    if (s->flags & F_CHANNEL)
        fputs(channel_help, stdout);
    if (s->flags & F_LOGGED)
        fputs(logged_help, stdout);
    if (s->flags & F_TTL)
        fputs(ttl_help, stdout);
    if (s->flags & F_JSON)
        fputs(json_help, stdout);
    fputs("  -h, --help                  show this help and exit\n\n", stdout);
    fputs(cli_conn_help, stdout);
    putchar('\n');
    fputs(s->exit_help, stdout);
}

/* --ttl: seconds (ms resolution, at least 1 ms) or "none". */
static bool parse_ttl(const char *text, int64_t *ttl_ms)
{
    long long ms = 0;
    if (strcmp(text, "none") == 0) {
        *ttl_ms = PGCW_CACHE_TTL_NONE;
        return true;
    }
    if (!cli_parse_seconds(text, &ms) || ms < 1)
        return false;
    *ttl_ms = ms;
    return true;
}

/* The options only some subcommands take. */
static const struct {
    int code;
    unsigned flag;
    const char *name;
} narrow_options[] = {
    {OPT_CHANNEL, F_CHANNEL, "--notify-channel"},
    {OPT_LOGGED, F_LOGGED, "--logged"},
    {OPT_TTL, F_TTL, "--ttl"},
    {OPT_JSON, F_JSON, "--json"},
};

/* Parses a subcommand's options into *a. Returns -1 to go on, else the exit code. */
static int parse(int argc, char **argv, const subcommand *s, cli_cache_args *a)
{
    static const struct option longopts[] = {
        {"schema-prefix", required_argument, NULL, OPT_PREFIX},
        {"notify-channel", required_argument, NULL, OPT_CHANNEL},
        {"ttl", required_argument, NULL, OPT_TTL},
        {"logged", no_argument, NULL, OPT_LOGGED},
        {"json", no_argument, NULL, OPT_JSON},
        {"help", no_argument, NULL, 'h'},
        CLI_CONN_LONG_OPTIONS,
        {NULL, 0, NULL, 0},
    };
    bool help = false;
    int c, rc = -1;
    while (rc < 0 && (c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        if (cli_conn_opt(&a->conn, c, optarg))
            continue;
        for (size_t i = 0; i < sizeof narrow_options / sizeof narrow_options[0]; i++)
            if (c == narrow_options[i].code && !(s->flags & narrow_options[i].flag))
                rc = cli_usage_error(a->cmd, "%s is not an option of 'cache %s'",
                                     narrow_options[i].name, s->name);
        if (rc >= 0)
            break;
        switch (c) {
        case 'h':
            help = true;
            break;
        case OPT_PREFIX:
            a->opts.schema_prefix = optarg;
            break;
        case OPT_CHANNEL:
            a->opts.notify_channel = optarg;
            break;
        case OPT_LOGGED:
            a->opts.durability = PGCW_CACHE_LOGGED;
            break;
        case OPT_TTL:
            if (!parse_ttl(optarg, &a->ttl_ms))
                rc = cli_usage_error(a->cmd,
                                     "--ttl wants seconds (a number of at least 0.001, "
                                     "e.g. 30 or 1.5) or 'none', not '%s'",
                                     optarg);
            break;
        case OPT_JSON:
            a->json = true;
            break;
        default:
            rc = cli_bad_option(a->cmd);
        }
    }
    if (rc >= 0)
        return rc;
    if (help) {
        print_sub_help(a->cmd, s);
        return CLI_EXIT_OK;
    }
    a->args = argv + optind;
    a->n_args = argc - optind;
    if (a->n_args < s->min_args)
        return cli_usage_error(a->cmd, "no KEY given");
    if (s->max_args >= 0 && a->n_args > s->max_args)
        return cli_usage_error(a->cmd, "unexpected argument '%s'",
                               argv[optind + s->max_args]);
    a->prefix = a->opts.schema_prefix ? a->opts.schema_prefix : "";
    return -1;
}

int cli_cache_parse(int argc, char **argv, cli_cache_args *a)
{
    const char *cmd = argv[0];
    memset(a, 0, sizeof *a);
    if (argc < 2)
        return cli_usage_error(cmd, "no subcommand given (init, get, set, del, cleanup "
                                    "or stats)");
    const char *name = argv[1];
    if (strcmp(name, "-h") == 0 || strcmp(name, "--help") == 0 ||
        (strcmp(name, "help") == 0 && argc == 2)) {
        print_cache_help();
        return CLI_EXIT_OK;
    }
    if (name[0] == '-')
        return cli_usage_error(cmd,
                               "no subcommand given: it comes first ('" CLI_PROG
                               " cache SUBCOMMAND [OPTIONS]'), not '%s'",
                               name);
    bool help = strcmp(name, "help") == 0; /* cache help SUBCOMMAND */
    if (help)
        name = argv[2];
    for (size_t i = 0; i < N_SUBCOMMANDS; i++) {
        const subcommand *s = &subcommands[i];
        if (strcmp(s->name, name) != 0)
            continue;
        snprintf(a->cmd, sizeof a->cmd, "%s %s", cmd, s->name);
        a->run = s->run;
        a->err_code = s->run == cli_cache_get ? CLI_EXIT_USAGE : CLI_EXIT_RUNTIME;
        a->ttl_ms = PGCW_CACHE_TTL_DEFAULT;
        if (help) {
            print_sub_help(a->cmd, s);
            return CLI_EXIT_OK;
        }
        /* getopt sees "pgcachewatch cache get" as argv[0], so its messages name it. */
        argv[1] = a->cmd;
        optind = 0;
        return parse(argc - 1, argv + 1, s, a);
    }
    return cli_usage_error(cmd, "unknown subcommand '%s'", name);
}

int cli_cmd_cache(int argc, char **argv)
{
    cli_cache_args a;
    int rc = cli_cache_parse(argc, argv, &a);
    /* Every subcommand gets the handle: making it is the library's check of the
     * prefix and the channel (init and stats need nothing else of it). */
    pgcw_cache *c = NULL;
    if (rc < 0)
        rc = cli_cache_open(&a, &c);
    if (rc < 0)
        rc = a.run(&a, c);
    pgcw_cache_free(c);
    return rc;
}
