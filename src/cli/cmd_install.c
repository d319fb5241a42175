/*
 * cmd_install.c - `pgcachewatch install` and `pgcachewatch uninstall`.
 *
 * Both are dry runs unless --commit is given: they print the SQL they would run
 * and change nothing. Install's dry run needs no connection at all. Never runs
 * SQL of its own: the library generates and executes every statement.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pgcachewatch/pgcachewatch.h>

#include "cli.h"

enum {
    OPT_TABLES = CLI_OPT_FIRST_COMMAND,
    OPT_CHANNEL,
    OPT_FUNCTION,
    OPT_TRIGGER,
    OPT_COMMIT,
    OPT_WITH_KEYS,
    OPT_DDL,
    OPT_SOURCE,
    OPT_SLOT,
    OPT_PUBLICATION,
};

static const char commit_hint[] = "::: Use '--commit' to write changes to db. :::\n";

static const char install_help[] =
    "Usage: " CLI_PROG " install [OPTIONS] TABLE...\n"
    "       " CLI_PROG
    " install [OPTIONS] --tables TABLE [--tables TABLE]... [TABLE]...\n"
    "       " CLI_PROG " install [OPTIONS] --ddl\n"
    "       " CLI_PROG
    " install --source logical [--slot NAME] [--publication NAME] TABLE...\n"
    "\n"
    "Puts statement-level AFTER INSERT/UPDATE/DELETE/TRUNCATE triggers on each TABLE\n"
    "that pg_notify() a JSON event on one channel. TABLE may be schema-qualified and\n"
    "double-quoted (sales.orders, \"Order Items\"). Without --commit the SQL is\n"
    "printed and nothing is changed (no connection is made); with --commit it runs\n"
    "in one transaction: everything is created or nothing is.\n"
    "\n"
    "With --ddl (and no TABLE) it installs instead event triggers on ddl_command_end\n"
    "and sql_drop that notify a schema-change event (\"operation\":\"ddl\") on the\n"
    "same channel for every object a DDL command creates, alters or drops. Needs a\n"
    "superuser; otherwise it fails and creates nothing.\n"
    "\n"
    "With --source logical it installs no trigger: it creates a publication FOR TABLE\n"
    "the TABLEs, then a logical replication slot (plugin pgoutput) that `listen\n"
    "--source logical` and watchers with that source read (docs/source_logical.md).\n"
    "Needs wal_level=logical and a role with REPLICATION. A reinstall sets the\n"
    "publication's tables and keeps the slot. A TABLE without a primary key refuses\n"
    "UPDATE and DELETE from then on until it has a REPLICA IDENTITY.\n"
    "\n"
    "With --source poll the channel also gets a change log, a table the same\n"
    "triggers write one row to per event, for `listen --source poll` where LISTEN\n"
    "does not work (PgBouncer in transaction pooling mode); the triggers still\n"
    "pg_notify() too, unless the writing session sets pgcachewatch.notify = off.\n"
    "\n"
    "Options:\n"
    "      --tables TABLE          a table to install on (may repeat; the remaining\n"
    "                              arguments are tables too)\n"
    "      --channel-name NAME     NOTIFY channel (default " PGCW_DEFAULT_CHANNEL ")\n"
    "      --function-name NAME    trigger function name prefix\n"
    "                              (default " PGCW_DEFAULT_FUNCTION_NAME ")\n"
    "      --trigger-name PREFIX   trigger name prefix, also --trigger-name-prefix\n"
    "                              (default " PGCW_DEFAULT_TRIGGER_PREFIX ");\n"
    "                              each table's trigger is PREFIX<channel>\n"
    "      --with-keys             add the changed rows' primary-key values to events\n"
    "      --ddl                   install the DDL event triggers (see above)\n"
    "      --source SOURCE         listen (default: the triggers), logical (see\n"
    "                              above) or poll (the triggers and a change log)\n"
    "      --slot NAME             with --source logical: the replication slot\n"
    "                              (default pgcachewatch_<channel>; a-z, 0-9, _)\n"
    "      --publication NAME      with --source logical: the publication\n"
    "                              (default pgcachewatch_<channel>_pub)\n"
    "      --commit                run the SQL instead of printing it only\n"
    "  -h, --help                  show this help and exit\n";

static const char uninstall_help[] =
    "Usage: " CLI_PROG " uninstall [OPTIONS]\n"
    "\n"
    "Removes every trigger (on any table) that calls one of the channel's notify\n"
    "functions, then those functions; nothing else is touched. Reads the catalogs,\n"
    "so it always connects. Without --commit the SQL is printed and nothing is\n"
    "changed; with --commit it runs in one transaction. When nothing is installed\n"
    "for the channel it says so and exits 0. The DDL event triggers are left alone\n"
    "unless --ddl is given, which removes them and their function and nothing else.\n"
    "With --source logical it drops the replication slot, then the publication; a\n"
    "slot in use (a logical listener running) cannot be dropped: it fails naming\n"
    "the process and drops nothing.\n"
    "The channel's change log (install --source poll), if any, goes with its\n"
    "triggers, whichever --source is given.\n"
    "\n"
    "Options:\n"
    "      --channel-name NAME     NOTIFY channel (default " PGCW_DEFAULT_CHANNEL ")\n"
    "      --function-name NAME    trigger function name prefix\n"
    "                              (default " PGCW_DEFAULT_FUNCTION_NAME ")\n"
    "      --trigger-name PREFIX   accepted (also --trigger-name-prefix) for symmetry\n"
    "                              with install; triggers are found by the function\n"
    "                              they call, whatever their names\n"
    "      --ddl                   remove the DDL event triggers instead\n"
    "      --source SOURCE         listen (default), logical (the slot and the\n"
    "                              publication instead) or poll (as listen)\n"
    "      --slot NAME             with --source logical (default as install's)\n"
    "      --publication NAME      with --source logical (default as install's)\n"
    "      --commit                run the SQL instead of printing it only\n"
    "  -h, --help                  show this help and exit\n";

static const char exit_help[] = "\n"
                                "Exit status: 0 success, 1 PostgreSQL or connection "
                                "error, 2 usage error.\n";

static void print_help(const char *text)
{
    fputs(text, stdout);
    putchar('\n');
    fputs(cli_conn_help, stdout);
    fputs(exit_help, stdout);
}

static const struct option longopts[] = {
    {"tables", required_argument, NULL, OPT_TABLES},
    {"channel-name", required_argument, NULL, OPT_CHANNEL},
    {"function-name", required_argument, NULL, OPT_FUNCTION},
    {"trigger-name", required_argument, NULL, OPT_TRIGGER},
    {"trigger-name-prefix", required_argument, NULL, OPT_TRIGGER},
    {"commit", no_argument, NULL, OPT_COMMIT},
    {"with-keys", no_argument, NULL, OPT_WITH_KEYS},
    {"ddl", no_argument, NULL, OPT_DDL},
    {"source", required_argument, NULL, OPT_SOURCE},
    {"slot", required_argument, NULL, OPT_SLOT},
    {"publication", required_argument, NULL, OPT_PUBLICATION},
    {"help", no_argument, NULL, 'h'},
    CLI_CONN_LONG_OPTIONS,
    {NULL, 0, NULL, 0},
};

int cli_install_parse(int argc, char **argv, bool install, cli_install_args *p)
{
    const char *cmd = argv[0];
    memset(p, 0, sizeof *p);
    p->tables = calloc((size_t)argc + 1, sizeof *p->tables);
    if (!p->tables)
        return cli_runtime_error(cmd, "out of memory");
    int c;
    /* "-": positionals come back as code 1, in command-line order, so tables keep
     * the order they were given in however they were spelled. */
    while ((c = getopt_long(argc, argv, "-h", longopts, NULL)) != -1) {
        if (cli_conn_opt(&p->conn, c, optarg))
            continue;
        switch (c) {
        case 'h':
            p->help = true;
            break;
        case 1:
            if (!install && !p->help)
                return cli_usage_error(cmd, "unexpected argument '%s'", optarg);
            p->tables[p->n_tables++] = optarg;
            break;
        case OPT_TABLES:
            if (!install)
                return cli_usage_error(cmd, "--tables is an install option");
            p->tables[p->n_tables++] = optarg;
            break;
        case OPT_CHANNEL:
            p->opts.channel = optarg;
            break;
        case OPT_FUNCTION:
            p->opts.function_name = optarg;
            break;
        case OPT_TRIGGER:
            p->opts.trigger_prefix = optarg;
            break;
        case OPT_COMMIT:
            p->commit = true;
            break;
        case OPT_WITH_KEYS:
            if (!install)
                return cli_usage_error(cmd, "--with-keys is an install option");
            p->opts.with_keys = true;
            break;
        case OPT_DDL:
            p->opts.ddl = true;
            break;
        case OPT_SOURCE:
            if (!cli_parse_source(optarg, &p->opts.source))
                return cli_usage_error(
                    cmd, "--source wants listen, logical or poll, not '%s'", optarg);
            break;
        case OPT_SLOT:
            p->opts.slot_name = optarg;
            break;
        case OPT_PUBLICATION:
            p->opts.publication = optarg;
            break;
        default:
            return cli_bad_option(cmd);
        }
    }
    if (p->help)
        return -1;
    /* Only after "--": the rest are tables too. */
    for (int i = optind; i < argc; i++) {
        if (!install)
            return cli_usage_error(cmd, "unexpected argument '%s'", argv[i]);
        p->tables[p->n_tables++] = argv[i];
    }
    bool logical = p->opts.source == PGCW_WATCH_LOGICAL;
    if (!logical && (p->opts.slot_name || p->opts.publication))
        return cli_usage_error(cmd, "--slot and --publication go with --source logical");
    if (logical && (p->opts.ddl || p->opts.with_keys))
        return cli_usage_error(cmd, "--source logical takes no --ddl and no --with-keys "
                                    "(its events always carry the keys)");
    if (install && p->opts.ddl && (p->n_tables || p->opts.with_keys))
        return cli_usage_error(cmd, "--ddl takes no table and no --with-keys: event "
                                    "triggers are database-wide");
    if (install && p->n_tables == 0 && !p->opts.ddl)
        return cli_usage_error(cmd, "no table given");
    return -1;
}

/* A message from the library, which may end with a newline or not. */
static int report(const char *cmd, pgcw_status st, const pgcw_install *in)
{
    const char *msg = pgcw_install_errmsg(in);
    return cli_runtime_error(cmd, "%s", msg[0] ? msg : pgcw_strerror(st));
}

static int usage(const char *cmd, pgcw_status st, const pgcw_install *in)
{
    const char *msg = pgcw_install_errmsg(in);
    return cli_usage_error(cmd, "%s", msg[0] ? msg : pgcw_strerror(st));
}

static void print_sql(const char *sql)
{
    size_t len = strlen(sql);
    fputs(sql, stdout);
    if (len > 0 && sql[len - 1] != '\n')
        putchar('\n');
    fflush(stdout);
}

int cli_cmd_install(int argc, char **argv)
{
    const char *cmd = argv[0];
    cli_install_args p;
    int rc = cli_install_parse(argc, argv, true, &p);
    if (rc >= 0 || p.help) {
        if (p.help)
            print_help(install_help);
        free(p.tables);
        return rc >= 0 ? rc : CLI_EXIT_OK;
    }
    pgcw_install *in = NULL;
    if (pgcw_install_new(&p.opts, &in) != PGCW_OK) {
        free(p.tables);
        return cli_runtime_error(cmd, "out of memory");
    }
    /* Bad names are refused before connecting: a usage error, not a runtime one. */
    char *sql = NULL;
    pgcw_status st = pgcw_install_sql(in, p.tables, p.n_tables, &sql);
    if (st == PGCW_EINVAL) {
        rc = usage(cmd, st, in);
    } else if (st != PGCW_OK) {
        rc = report(cmd, st, in);
    } else if (!p.commit) {
        print_sql(sql);
        fputs(commit_hint, stderr);
        rc = CLI_EXIT_OK;
    } else {
        pgcw_free(sql);
        sql = NULL;
        pgcw_conn *conn = cli_connect(cmd, &p.conn);
        if (!conn) {
            rc = CLI_EXIT_RUNTIME;
        } else {
            st = pgcw_install_run(in, pgcw_conn_pg(conn), p.tables, p.n_tables, &sql);
            if (st == PGCW_OK) {
                print_sql(sql);
                const char *channel =
                    p.opts.channel ? p.opts.channel : PGCW_DEFAULT_CHANNEL;
                if (p.opts.source == PGCW_WATCH_LOGICAL)
                    fprintf(stderr,
                            "%s: installed logical decoding on %zu table%s (channel "
                            "%s)\n",
                            cmd, p.n_tables, p.n_tables == 1 ? "" : "s", channel);
                else if (p.opts.ddl)
                    fprintf(stderr, "%s: installed the DDL event triggers (channel %s)\n",
                            cmd, channel);
                else
                    fprintf(stderr, "%s: installed on %zu table%s (channel %s)\n", cmd,
                            p.n_tables, p.n_tables == 1 ? "" : "s", channel);
                rc = CLI_EXIT_OK;
            } else {
                rc = report(cmd, st, in);
            }
            pgcw_conn_free(conn);
        }
    }
    pgcw_free(sql);
    pgcw_install_free(in);
    free(p.tables);
    return rc;
}

int cli_cmd_uninstall(int argc, char **argv)
{
    const char *cmd = argv[0];
    cli_install_args p;
    int rc = cli_install_parse(argc, argv, false, &p);
    free(p.tables);
    if (rc >= 0 || p.help) {
        if (p.help)
            print_help(uninstall_help);
        return rc >= 0 ? rc : CLI_EXIT_OK;
    }
    const char *channel = p.opts.channel ? p.opts.channel : PGCW_DEFAULT_CHANNEL;
    pgcw_install *in = NULL;
    if (pgcw_install_new(&p.opts, &in) != PGCW_OK)
        return cli_runtime_error(cmd, "out of memory");
    /* Bad names are refused before connecting, as by install (a publication's
     * script needs a table: any name does to check the others). */
    static const char *const any_table[] = {"t"};
    bool logical = p.opts.source == PGCW_WATCH_LOGICAL;
    char *sql = NULL;
    pgcw_status st = pgcw_install_sql(in, logical ? any_table : NULL, logical, &sql);
    pgcw_free(sql);
    sql = NULL;
    if (st != PGCW_OK) {
        rc = st == PGCW_EINVAL ? usage(cmd, st, in) : report(cmd, st, in);
        pgcw_install_free(in);
        return rc;
    }
    pgcw_conn *conn = cli_connect(cmd, &p.conn);
    if (!conn) {
        pgcw_install_free(in);
        return CLI_EXIT_RUNTIME;
    }
    if (p.commit)
        st = pgcw_uninstall_run(in, pgcw_conn_pg(conn), &sql);
    else
        st = pgcw_uninstall_sql(in, pgcw_conn_pg(conn), &sql);
    if (st == PGCW_EINVAL) {
        rc = usage(cmd, st, in);
    } else if (st != PGCW_OK) {
        rc = report(cmd, st, in);
    } else if (!sql || !*sql) {
        fprintf(stderr, "%s: nothing installed for channel %s\n", cmd, channel);
        rc = CLI_EXIT_OK;
    } else {
        print_sql(sql);
        if (p.commit)
            fprintf(stderr, "%s: uninstalled channel %s\n", cmd, channel);
        else
            fputs(commit_hint, stderr);
        rc = CLI_EXIT_OK;
    }
    pgcw_free(sql);
    pgcw_conn_free(conn);
    pgcw_install_free(in);
    return rc;
}
