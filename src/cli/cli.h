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

/* Opens a connection with those settings (bounded by the connect timeout:
 * connect_timeout / PGCONNECT_TIMEOUT, else 10 s). Returns NULL after printing
 * "<cmd>: <why>" on stderr (never a password). Free with pgcw_conn_free(). */
pgcw_conn *cli_connect(const char *cmd, const cli_conn_opts *c);

/* --- helpers (main.c) ----------------------------------------------------------- */

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

/* Parses a non-negative decimal number of seconds ("2", "0.5") into ms.
 * Returns false when text is not one. */
bool cli_parse_seconds(const char *text, long long *ms_out);

/* Parses a positive integer. Returns false when text is not one. */
bool cli_parse_count(const char *text, long long *out);

/* --- commands: argv[0] is "pgcachewatch CMD"; each returns an exit code -------- */

int cli_cmd_install(int argc, char **argv);
int cli_cmd_uninstall(int argc, char **argv);
int cli_cmd_listen(int argc, char **argv);
int cli_cmd_demo(int argc, char **argv);

#endif
