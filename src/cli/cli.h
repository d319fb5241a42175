/*
 * cli.h - what the `pgcachewatch` command's files share: exit codes, the
 * connection options every command accepts, and one entry point per command.
 *
 * The CLI is a client of the public API only (<pgcachewatch/...> and libpq); it
 * must never include anything from src/. Commands print; the library never does.
 */
#ifndef PGCW_CLI_H
#define PGCW_CLI_H

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <sys/types.h>

#include <libpq-fe.h>

#include <pgcachewatch/pgcachewatch.h>

/* Exit codes shared by every command. */
#define CLI_EXIT_OK 0
#define CLI_EXIT_RUNTIME 1 /* PostgreSQL (or the system) said no */
#define CLI_EXIT_USAGE 2   /* the command line was wrong; a hint was printed */

/* The program name used in messages ("pgcachewatch"). */
#define CLI_PROG "pgcachewatch"

/* --- connection options (conn_opts.c) ------------------------------------------ */

/* getopt_long codes for the connection options; above any short option. */
enum {
    CLI_OPT_PG_DSN = 0x1000,
    CLI_OPT_PG_HOST,
    CLI_OPT_PG_PORT,
    CLI_OPT_PG_USER,
    CLI_OPT_PG_DATABASE,
    CLI_OPT_PG_PASSWORD,
    /* Each command numbers its own long-only options from here. */
    CLI_OPT_FIRST_COMMAND = 0x1100
};

/* Spliced into each command's `struct option` array. */
#define CLI_CONN_LONG_OPTIONS                                                            \
    {"pg-dsn", required_argument, NULL, CLI_OPT_PG_DSN},                                 \
        {"pg-host", required_argument, NULL, CLI_OPT_PG_HOST},                           \
        {"pg-port", required_argument, NULL, CLI_OPT_PG_PORT},                           \
        {"pg-user", required_argument, NULL, CLI_OPT_PG_USER},                           \
        {"pg-database", required_argument, NULL, CLI_OPT_PG_DATABASE},                   \
    {                                                                                    \
        "pg-password", required_argument, NULL, CLI_OPT_PG_PASSWORD                      \
    }

/* The help text block describing them (ends with a newline). */
extern const char cli_conn_help[];

/* Values borrowed from argv or the environment; NULL means "not given". */
typedef struct cli_conn_opts {
    const char *dsn; /* --pg-dsn, else $PGDSN */
    const char *host;
    const char *port;
    const char *user;
    const char *database;
    const char *password;
} cli_conn_opts;

/* Takes one getopt_long result. Returns true when `code` was a connection
 * option (and stores arg), false when it is someone else's. */
bool cli_conn_opt(cli_conn_opts *c, int code, const char *arg);

/* The settings as the library takes them (conn.h): the DSN as conninfo (NULL: the
 * library reads $PGDSN), each explicit option as a keyword/value pair after it, so
 * nothing is quoted by hand. The arrays live in *s; c must outlive it. */
typedef struct cli_conn_settings {
    pgcw_conn_opts opts;
    const char *keys[8];
    const char *values[8];
} cli_conn_settings;

void cli_conn_settings_init(cli_conn_settings *s, const cli_conn_opts *c);

/* Sets keyword key to value in *s (replacing an earlier setting of it), after
 * everything cli_conn_settings_init() put there: it wins. Both borrowed. Returns
 * false when the arrays are full. */
bool cli_conn_settings_set(cli_conn_settings *s, const char *key, const char *value);

/* Opens a connection with those settings (bounded by the connect timeout:
 * connect_timeout / PGCONNECT_TIMEOUT, else 10 s). Returns NULL after printing
 * "<cmd>: <why>" on stderr (never a password). Free with pgcw_conn_free(). */
pgcw_conn *cli_connect(const char *cmd, const cli_conn_opts *c);

/* --- helpers (cli_util.c) ------------------------------------------------------- */

/* `cmd` below is a command's argv[0], which main() sets to "pgcachewatch CMD"
 * (NULL: the program itself). */

/* Prints "<cmd>: <message>" and the --help hint on stderr, returns
 * CLI_EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Prints "<cmd>: <message>" on stderr (message taken as-is; a trailing
 * newline is not doubled), returns CLI_EXIT_RUNTIME. */
int cli_runtime_error(const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The error a getopt_long loop reports for '?' / ':' (getopt already printed the
 * reason): the hint, then CLI_EXIT_USAGE. */
int cli_bad_option(const char *cmd);

/* The largest number of seconds an option takes (about 31 years). */
#define CLI_MAX_SECONDS 1e9

/* Parses a non-negative decimal number of seconds ("2", "0.5"; digits with an
 * optional fraction, nothing else) into ms, rounded. Returns false when text is
 * not one or is above CLI_MAX_SECONDS: out of range is refused, never clamped. */
bool cli_parse_seconds(const char *text, long long *ms_out);

/* Parses a positive integer (decimal digits only) that fits a long long. Returns
 * false otherwise: out of range is refused, never clamped. */
bool cli_parse_count(const char *text, long long *out);

/* Parses a --source value: "listen", "logical" or "poll". Returns false for
 * anything else. */
bool cli_parse_source(const char *text, pgcw_watch_source *out);

/* --- commands: argv[0] is "pgcachewatch CMD"; each returns an exit code -------- */

int cli_cmd_install(int argc, char **argv);
int cli_cmd_uninstall(int argc, char **argv);
int cli_cmd_listen(int argc, char **argv);
int cli_cmd_demo(int argc, char **argv);
int cli_cmd_cache(int argc, char **argv);
int cli_cmd_harness(int argc, char **argv);

/* --- each command's command line, parsed without running it -------------------- */

/* These run no command and connect nowhere, so fuzz/fuzz_cli.c calls them. Each
 * returns -1 when the command should go on, else its exit code after printing why
 * (a usage error: CLI_EXIT_USAGE). Strings are borrowed from argv, whose order
 * getopt may change. getopt must start afresh: optind = 0 before each call. A
 * --help is only flagged: the command prints its help. */

/* `install` (install true) and `uninstall`. */
typedef struct cli_install_args {
    pgcw_install_opts opts;
    cli_conn_opts conn;
    bool commit;
    bool help;
    const char **tables; /* malloc'd array (free it whatever the result) */
    size_t n_tables;
} cli_install_args;

int cli_install_parse(int argc, char **argv, bool install, cli_install_args *p);

/* `listen`. */
typedef struct cli_listen_args {
    cli_conn_opts conn;
    const char **channels; /* malloc'd array (free it whatever the result) */
    size_t n_channels;
    pgcw_payload_format format; /* PGCW_FORMAT_AUTO unless --format */
    long long count;            /* 0 unless --count */
    long long timeout_ms;       /* -1 unless --timeout */
    bool json;
    bool help;
    pgcw_watch_source source; /* PGCW_WATCH_LISTEN unless --source */
    const char *slot_name;    /* --slot, --publication: NULL unless given */
    const char *publication;
    bool format_given;
    long long poll_interval_ms; /* 0 unless --poll-interval */
} cli_listen_args;

int cli_listen_parse(int argc, char **argv, cli_listen_args *a);

/* `demo`: the connection options and --help only. */
int cli_demo_parse(int argc, char **argv, cli_conn_opts *conn, bool *help);

/* --- the cache table as plain SQL sees it (cmd_cache_table.c) ------------------- */

/* What a prefix's cache table holds, read with plain SQL on any connection (the
 * library's statistics are per process; these are the table's). */
typedef struct cli_cache_table {
    char schema[256];      /* where the table is (search_path decides, as for the
                            * library) */
    char name[64];         /* <prefix>cache_entries, folded as the library folds it */
    int version;           /* <prefix>cache_schema's version; 0 when that is missing */
    bool logged;           /* false: UNLOGGED */
    char channel[256];     /* the channel the broadcast trigger notifies on; "" when the
                            * trigger is missing */
    long long total_bytes; /* table, indexes and TOAST on disk */
    /* Only when counted: */
    long long rows, live, expired, tombstones; /* rows = live + expired + tombstones */
    long long value_bytes;                     /* sum of the values' lengths */
} cli_cache_table;

/* Reads prefix's table on pg (prefix already accepted by the library: letters,
 * digits and '_'). count: also scan every row for the counts. Returns -1 on
 * success, else prints "<cmd>: why" on stderr (a missing table: how to create it)
 * and returns err_code. */
int cli_cache_table_read(const char *cmd, PGconn *pg, const char *prefix, bool count,
                         int err_code, cli_cache_table *out);

/* Writes the table as text lines, or as one JSON object and a newline. */
void cli_cache_table_print(FILE *f, const cli_cache_table *t, bool json);

/* --- the demo (cmd_demo.c, cmd_demo_cache.c) ------------------------------------ */

/* The schema the demo creates, and drops with everything in it. */
#define CLI_DEMO_SCHEMA "pgcachewatch_demo"

/* Prints one line of narration on stdout (a newline added) and flushes. */
void cli_demo_say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Client B of the demo's cache part: a child process and its two pipes. */
typedef struct cli_demo_peer {
    pid_t pid; /* 0: none */
    int to_peer;
    int from_peer;
} cli_demo_peer;

/* Forks client B, which waits for commands. Call before any thread exists (the
 * child of a threaded process may only call async-signal-safe functions). False
 * after printing why. */
bool cli_demo_peer_start(cli_demo_peer *p, const cli_conn_opts *conn);

/* The cache part, steps `step` and `step + 1`: init_db in the demo's schema, A's
 * L1 copy evicted by B's write, get_or_set from both loading once. Frees what it
 * made (B's cache lives until cli_demo_peer_stop()). False after printing why. */
bool cli_demo_cache(cli_demo_peer *p, const cli_conn_opts *conn, int step);

/* Tells B to quit and waits for it (kills it after 10 s). Safe on a peer that
 * never started. False when B did not end cleanly. */
bool cli_demo_peer_stop(cli_demo_peer *p);

#endif
