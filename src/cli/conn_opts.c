/*
 * conn_opts.c - the connection options every command accepts (--pg-dsn,
 * --pg-host, ...), handed to the library as settings (conn.h).
 *
 * Precedence, lowest first: libpq's PG* environment variables, the DSN
 * (--pg-dsn, else $PGDSN), then each explicit --pg-* option. The values go to the
 * library as keyword/value pairs: nothing is quoted by hand, and no password is
 * ever echoed (the library keeps it out of its messages).
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <string.h>

#include "cli.h"

const char cli_conn_help[] =
    "Connection options (default: $PGDSN, then libpq's PG* environment variables;\n"
    "an explicit option overrides the same setting in the DSN):\n"
    "      --pg-dsn DSN            connection string (key=value or postgresql:// URI)\n"
    "      --pg-host HOST          server host or unix-socket directory (PGHOST)\n"
    "      --pg-port PORT          server port (PGPORT)\n"
    "      --pg-user USER          user name (PGUSER)\n"
    "      --pg-database DATABASE  database name (PGDATABASE)\n"
    "      --pg-password PASSWORD  password; other users can read a command line\n"
    "                              (ps): prefer PGPASSWORD or ~/.pgpass\n"
    "A connection attempt gives up after connect_timeout seconds (in the DSN or\n"
    "PGCONNECT_TIMEOUT), 10 by default.\n";

bool cli_conn_opt(cli_conn_opts *c, int code, const char *arg)
{
    switch (code) {
    case CLI_OPT_PG_DSN:
        c->dsn = arg;
        return true;
    case CLI_OPT_PG_HOST:
        c->host = arg;
        return true;
    case CLI_OPT_PG_PORT:
        c->port = arg;
        return true;
    case CLI_OPT_PG_USER:
        c->user = arg;
        return true;
    case CLI_OPT_PG_DATABASE:
        c->database = arg;
        return true;
    case CLI_OPT_PG_PASSWORD:
        c->password = arg;
        return true;
    default:
        return false;
    }
}

void cli_conn_settings_init(cli_conn_settings *s, const cli_conn_opts *c)
{
    memset(s, 0, sizeof *s);
    const char *const all[][2] = {{"host", c->host},
                                  {"port", c->port},
                                  {"user", c->user},
                                  {"dbname", c->database},
                                  {"password", c->password}};
    size_t n = 0;
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (all[i][1] && *all[i][1]) {
            s->keys[n] = all[i][0];
            s->values[n++] = all[i][1];
        }
    s->keys[n] = s->values[n] = NULL;
    s->opts.conninfo = c->dsn && *c->dsn ? c->dsn : NULL;
    s->opts.keys = s->keys;
    s->opts.values = s->values;
    s->opts.application_name = CLI_PROG;
}

bool cli_conn_settings_set(cli_conn_settings *s, const char *key, const char *value)
{
    size_t n = 0;
    while (s->keys[n] && strcmp(s->keys[n], key) != 0)
        n++;
    if (!s->keys[n] && n + 1 >= sizeof s->keys / sizeof s->keys[0])
        return false;
    if (!s->keys[n])
        s->keys[n + 1] = s->values[n + 1] = NULL;
    s->keys[n] = key;
    s->values[n] = value;
    return true;
}

pgcw_conn *cli_connect(const char *cmd, const cli_conn_opts *c)
{
    cli_conn_settings s;
    cli_conn_settings_init(&s, c);
    pgcw_conn *conn = NULL;
    if (pgcw_conn_new(&s.opts, &conn) != PGCW_OK) {
        fprintf(stderr, "%s: out of memory\n", cmd);
        return NULL;
    }
    if (pgcw_conn_connect(conn) != PGCW_OK) {
        fprintf(stderr, "%s: %s\n", cmd, pgcw_conn_errmsg(conn));
        pgcw_conn_free(conn);
        return NULL;
    }
    return conn;
}
