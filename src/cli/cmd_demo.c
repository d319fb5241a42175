/*
 * cmd_demo.c - `pgcachewatch demo`: a narrated tour, a few seconds long, of the
 * whole pipeline against a real database: triggers -> watcher -> Greedy strategy
 * -> memo, then the cache table shared by two processes (cmd_demo_cache.c).
 * Everything it creates lives in its own schema and channels, and is removed at
 * the end, also after an error.
 *
 * Must never touch objects it did not create: it refuses to run when its schema
 * already exists, and it uninstalls only its own channel.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <pgcachewatch/pgcachewatch.h>

#include "cli.h"

#define DEMO_SCHEMA CLI_DEMO_SCHEMA
#define DEMO_TABLE DEMO_SCHEMA ".products"
#define DEMO_CHANNEL "pgcachewatch_demo"
#define EVENT_WAIT_MS 10000
#define HEALTHY_WAIT_MS 15000

static const char demo_help[] =
    "Usage: " CLI_PROG " demo [OPTIONS]\n"
    "\n"
    "A short narrated demo against the given database. It creates the schema\n"
    "" DEMO_SCHEMA " with one table, installs triggers with keys on channel\n"
    "" DEMO_CHANNEL ", starts a watcher and a memoized query over a Greedy\n"
    "strategy, shows a miss then a hit, updates a row from a second connection,\n"
    "shows the event (keys, latency) and the invalidation (a miss with the new\n"
    "value). Then two client processes share a cache table in that schema, each\n"
    "with an L1: B's write evicts A's copy (the notification is shown), and both\n"
    "call get_or_set on one key at once: the loader runs once in total. Finally it\n"
    "uninstalls and drops the schema, also when a step fails.\n"
    "Refuses to run when the schema already exists. Needs CREATE on the database.\n"
    "\n"
    "Options:\n"
    "  -h, --help                  show this help and exit\n"
    "\n";

static const char demo_exit_help[] = "\n"
                                     "Exit status: 0 success, 1 a step failed, "
                                     "2 usage error.\n";

typedef struct demo {
    pgcw_conn *setup_conn;  /* DDL, install/uninstall, and the memo's loader */
    pgcw_conn *writer_conn; /* stands for another application writing the table */
    PGconn *setup;          /* their libpq connections, borrowed */
    PGconn *writer;
    pgcw_watcher *watcher;
    pgcw_sub *narrator; /* the events this demo prints */
    pgcw_strategy *strategy;
    pgcw_memo *memo;
    cli_demo_peer peer; /* client B of the cache part, forked first */
    bool schema_created;
    bool installed;
    pgcw_memo_stat last; /* hit or miss of the latest get (stats callback) */
} demo;

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

void cli_demo_say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
}

static void chomp(char *s)
{
    size_t n = strlen(s);
    while (n > 0 && s[n - 1] == '\n')
        s[--n] = '\0';
}

/* Runs SQL; false after printing PostgreSQL's message. */
static bool run_sql(PGconn *conn, const char *what, const char *sql)
{
    PGresult *r = PQexec(conn, sql);
    ExecStatusType st = PQresultStatus(r);
    bool ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
    if (!ok) {
        char msg[2048];
        snprintf(msg, sizeof msg, "%s", PQresultErrorMessage(r));
        chomp(msg);
        fprintf(stderr, "%s demo: %s failed: %s\n", CLI_PROG, what, msg);
    }
    PQclear(r);
    return ok;
}

/* The memoized "real query": one product's name and price. */
static pgcw_status load_product(void *ctx, const void *key, size_t key_len,
                                pgcw_memo_result *result)
{
    demo *d = ctx;
    char id[32];
    snprintf(id, sizeof id, "%.*s", (int)(key_len < 31 ? key_len : 31),
             (const char *)key);
    const char *params[1] = {id};
    PGresult *r = PQexecParams(d->setup,
                               "SELECT name || ' costs ' || price FROM " DEMO_TABLE
                               " WHERE id = $1::int",
                               1, NULL, params, NULL, NULL, 0);
    pgcw_status st = PGCW_ELOADER;
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", PQresultErrorMessage(r));
        chomp(msg);
        pgcw_memo_result_error(result, msg);
    } else if (PQntuples(r) != 1) {
        pgcw_memo_result_error(result, "no such product");
    } else {
        const char *v = PQgetvalue(r, 0, 0);
        st = pgcw_memo_result_set(result, v, strlen(v));
    }
    PQclear(r);
    return st;
}

static void on_stat(void *ctx, pgcw_memo_stat stat)
{
    ((demo *)ctx)->last = stat;
}

static void on_log(void *ctx, pgcw_log_level level, const char *message)
{
    (void)ctx;
    if (level >= PGCW_LOG_WARNING)
        fprintf(stderr, "%s demo: watcher %s: %s\n", CLI_PROG, pgcw_log_level_name(level),
                message);
}

/* One narrated memo get. */
static bool show_get(demo *d, const char *id, const char *expect)
{
    double t0 = now_ms();
    void *value = NULL;
    size_t len = 0;
    pgcw_status st = pgcw_memo_get(d->memo, id, strlen(id), &value, &len);
    double took = now_ms() - t0;
    if (st != PGCW_OK) {
        const char *err = pgcw_memo_errmsg(d->memo);
        fprintf(stderr, "%s demo: get product %s failed: %s\n", CLI_PROG, id,
                err[0] ? err : pgcw_strerror(st));
        return false;
    }
    const char *kind = d->last == PGCW_MEMO_HIT ? "hit" : "miss";
    cli_demo_say("   get product %s -> \"%.*s\"   [%s, %.3f ms%s]", id, (int)len,
                 (char *)value, kind, took,
                 d->last == PGCW_MEMO_HIT ? ", served from memory"
                                          : ", loaded from PostgreSQL");
    bool ok = !expect || strcmp(kind, expect) == 0;
    if (!ok)
        fprintf(stderr, "%s demo: expected a %s\n", CLI_PROG, expect);
    pgcw_free(value);
    return ok;
}

/* Prints the next change event on the narrator's queue (gaps are printed too). */
static bool show_event(demo *d)
{
    double deadline = now_ms() + EVENT_WAIT_MS;
    for (;;) {
        long long left = (long long)(deadline - now_ms());
        const pgcw_event *ev = NULL;
        if (left <= 0 || pgcw_sub_get(d->narrator, left, &ev) != PGCW_OK) {
            fprintf(stderr, "%s demo: no event within %d ms\n", CLI_PROG, EVENT_WAIT_MS);
            return false;
        }
        char *text = pgcw_event_to_text(ev);
        cli_demo_say("   event: %s", text ? text : "(out of memory)");
        pgcw_free(text);
        bool change = ev->kind == PGCW_EVENT_CHANGE;
        if (change) {
            for (size_t i = 0; i < ev->n_keys; i++)
                cli_demo_say("          key %zu of %zu: %s", i + 1, ev->n_keys,
                             ev->keys[i]);
            cli_demo_say(
                "          sent by backend %d, received %.3f ms after the server sent it",
                ev->backend_pid, (double)ev->latency_us / 1000.0);
        }
        pgcw_event_free(ev);
        if (change)
            return true;
    }
}

/* The strategy has its own queue; the fan-out to it may land a moment after the
 * narrator's. Wait for it (bounded) so the next get sees the invalidation. */
static bool wait_strategy_queue(demo *d)
{
    pgcw_sub *s = pgcw_strategy_sub(d->strategy);
    double deadline = now_ms() + EVENT_WAIT_MS;
    while (pgcw_sub_pending(s) == 0) {
        if (now_ms() > deadline) {
            fprintf(stderr, "%s demo: the strategy saw no event\n", CLI_PROG);
            return false;
        }
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    return true;
}

static bool run_demo(demo *d, const cli_conn_opts *conn)
{
    cli_demo_say(
        "pgcachewatch %s demo: keeping a cached query result coherent with PostgreSQL",
        pgcw_version());
    cli_demo_say("%s", "");
    cli_demo_say("1. Create the table " DEMO_TABLE " in a fresh schema");
    d->setup_conn = cli_connect(CLI_PROG " demo", conn);
    if (!d->setup_conn)
        return false;
    d->setup = pgcw_conn_pg(d->setup_conn);
    d->writer_conn = cli_connect(CLI_PROG " demo", conn);
    if (!d->writer_conn)
        return false;
    d->writer = pgcw_conn_pg(d->writer_conn);
    if (!run_sql(d->setup, "creating the schema", "CREATE SCHEMA " DEMO_SCHEMA)) {
        fprintf(stderr,
                "%s demo: if an earlier demo left it, drop it with: DROP SCHEMA %s "
                "CASCADE\n",
                CLI_PROG, DEMO_SCHEMA);
        return false;
    }
    d->schema_created = true;
    /* The notify functions go to the first schema of search_path: keep them in
     * ours, so dropping the schema removes every trace even if uninstall fails. */
    if (!run_sql(d->setup, "creating the table",
                 "SET search_path = " DEMO_SCHEMA ";"
                 "SET client_min_messages = warning;"
                 "CREATE TABLE " DEMO_TABLE " (id int PRIMARY KEY, name text NOT NULL,"
                 " price numeric(10,2) NOT NULL);"
                 "INSERT INTO " DEMO_TABLE " VALUES (1, 'coffee', 3.20),"
                 " (2, 'tea', 2.80), (3, 'cake', 4.50)"))
        return false;
    cli_demo_say("   3 rows: coffee 3.20, tea 2.80, cake 4.50");

    cli_demo_say("2. Install notify triggers with keys (channel " DEMO_CHANNEL ")");
    pgcw_install_opts iopts = {0};
    iopts.channel = DEMO_CHANNEL;
    iopts.with_keys = true;
    const char *tables[] = {DEMO_TABLE};
    pgcw_install *in = NULL;
    pgcw_status st = pgcw_install_new(&iopts, &in);
    if (st == PGCW_OK)
        st = pgcw_install_run(in, d->setup, tables, 1, NULL);
    if (st != PGCW_OK) {
        fprintf(stderr, "%s demo: install failed: %s\n", CLI_PROG,
                in && pgcw_install_errmsg(in)[0] ? pgcw_install_errmsg(in)
                                                 : pgcw_strerror(st));
        pgcw_install_free(in);
        return false;
    }
    pgcw_install_free(in);
    d->installed = true;
    cli_demo_say(
        "   done: AFTER INSERT/UPDATE/DELETE/TRUNCATE triggers now pg_notify() events");

    cli_demo_say("3. Start a watcher (its own thread) LISTENing on " DEMO_CHANNEL);
    cli_conn_settings settings;
    cli_conn_settings_init(&settings, conn);
    const char *channels[] = {DEMO_CHANNEL};
    pgcw_watcher_opts wopts = {0};
    wopts.channels = channels;
    wopts.n_channels = 1;
    wopts.log = on_log;
    st = pgcw_watcher_new(&wopts, &settings.opts, &d->watcher);
    if (st == PGCW_OK)
        st = pgcw_sub_new(d->watcher, NULL, &d->narrator);
    pgcw_strategy_opts sopts = {0}; /* Greedy, any event clears */
    if (st == PGCW_OK)
        st = pgcw_strategy_new(d->watcher, &sopts, &d->strategy);
    pgcw_memo_opts mopts = {0};
    mopts.strategy = d->strategy;
    mopts.load = load_product;
    mopts.load_ctx = d;
    mopts.stats = on_stat;
    mopts.stats_ctx = d;
    if (st == PGCW_OK)
        st = pgcw_memo_new(&mopts, &d->memo);
    if (st == PGCW_OK)
        st = pgcw_watcher_start(d->watcher);
    if (st != PGCW_OK) {
        fprintf(stderr, "%s demo: watcher set-up failed: %s\n", CLI_PROG,
                pgcw_strerror(st));
        return false;
    }
    if (pgcw_watcher_wait_healthy(d->watcher, HEALTHY_WAIT_MS) != PGCW_OK) {
        fprintf(stderr, "%s demo: the watcher did not connect: %s\n", CLI_PROG,
                pgcw_watcher_errmsg(d->watcher));
        return false;
    }
    cli_demo_say("   healthy (connected, LISTEN acknowledged, epoch %llu)",
                 (unsigned long long)pgcw_watcher_epoch(d->watcher));

    cli_demo_say("4. Memoize a real query (Greedy strategy: any event clears the memo)");
    if (!show_get(d, "1", "miss") || !show_get(d, "1", "hit"))
        return false;

    cli_demo_say("5. Another connection updates product 1: UPDATE ... SET price = 3.60");
    if (!run_sql(d->writer, "updating",
                 "UPDATE " DEMO_TABLE " SET price = 3.60 WHERE id = 1"))
        return false;
    if (!show_event(d) || !wait_strategy_queue(d))
        return false;

    cli_demo_say("6. The next get sees the invalidation and reloads");
    if (!show_get(d, "1", "miss") || !show_get(d, "1", "hit"))
        return false;

    pgcw_memo_stats ms;
    pgcw_memo_stats_get(d->memo, &ms);
    cli_demo_say("   memo: %llu hits, %llu misses, %llu loads from PostgreSQL",
                 (unsigned long long)ms.hits, (unsigned long long)ms.misses,
                 (unsigned long long)ms.loads);
    return cli_demo_cache(&d->peer, conn, 7);
}

/* Undoes whatever run_demo() got to; safe after any failure. */
static bool cleanup(demo *d)
{
    bool ok = true;
    pgcw_memo_free(d->memo);
    pgcw_strategy_free(d->strategy);
    pgcw_sub_free(d->narrator);
    pgcw_watcher_free(d->watcher);
    /* B's cache uses the schema's table: it goes first. */
    if (!cli_demo_peer_stop(&d->peer)) {
        fprintf(stderr, "%s demo: client B did not end cleanly\n", CLI_PROG);
        ok = false;
    }
    if (d->setup && PQstatus(d->setup) == CONNECTION_OK) {
        if (d->installed || d->schema_created)
            cli_demo_say("9. Clean up: uninstall the triggers, drop the schema");
        if (d->installed) {
            pgcw_install_opts iopts = {0};
            iopts.channel = DEMO_CHANNEL;
            pgcw_install *in = NULL;
            pgcw_status st = pgcw_install_new(&iopts, &in);
            if (st == PGCW_OK)
                st = pgcw_uninstall_run(in, d->setup, NULL);
            if (st != PGCW_OK) {
                fprintf(stderr, "%s demo: uninstall failed: %s\n", CLI_PROG,
                        in && pgcw_install_errmsg(in)[0] ? pgcw_install_errmsg(in)
                                                         : pgcw_strerror(st));
                ok = false;
            }
            pgcw_install_free(in);
        }
        if (d->schema_created && !run_sql(d->setup, "dropping the schema",
                                          "DROP SCHEMA " DEMO_SCHEMA " CASCADE"))
            ok = false;
    } else if (d->schema_created) {
        fprintf(stderr,
                "%s demo: connection lost; drop the schema by hand: DROP SCHEMA %s "
                "CASCADE\n",
                CLI_PROG, DEMO_SCHEMA);
        ok = false;
    }
    pgcw_conn_free(d->writer_conn);
    pgcw_conn_free(d->setup_conn);
    return ok;
}

int cli_demo_parse(int argc, char **argv, cli_conn_opts *conn, bool *help)
{
    static const struct option longopts[] = {
        {"help", no_argument, NULL, 'h'},
        CLI_CONN_LONG_OPTIONS,
        {NULL, 0, NULL, 0},
    };
    const char *cmd = argv[0];
    memset(conn, 0, sizeof *conn);
    *help = false;
    int c;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        if (cli_conn_opt(conn, c, optarg))
            continue;
        if (c == 'h')
            *help = true;
        else
            return cli_bad_option(cmd);
    }
    if (!*help && optind < argc)
        return cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    return -1;
}

int cli_cmd_demo(int argc, char **argv)
{
    cli_conn_opts conn;
    bool help;
    int rc = cli_demo_parse(argc, argv, &conn, &help);
    if (rc >= 0)
        return rc;
    if (help) {
        fputs(demo_help, stdout);
        fputs(cli_conn_help, stdout);
        fputs(demo_exit_help, stdout);
        return CLI_EXIT_OK;
    }

    demo d;
    memset(&d, 0, sizeof d);
    /* Before anything else: no thread may exist when B is forked. */
    if (!cli_demo_peer_start(&d.peer, &conn))
        return CLI_EXIT_RUNTIME;
    bool ok = run_demo(&d, &conn);
    bool cleaned = cleanup(&d);
    if (ok && cleaned)
        cli_demo_say("Done: every object the demo created is gone.");
    return ok && cleaned ? CLI_EXIT_OK : CLI_EXIT_RUNTIME;
}
