/*
 * cmd_cache_run.c - the `pgcachewatch cache` subcommands, each one short-lived
 * client: get, set, del and cleanup use a pgcw_cache without an L1 (disable_l1: no
 * LISTEN connection, nothing kept) and a pool of one connection; init runs the
 * library's init_db; stats and init's report read the table with plain SQL
 * (cmd_cache_table.c).
 *
 * Must never print anything but the value on get's stdout: a script reads it byte
 * for byte. Keys and names are checked by the library, never by hand here.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pgcachewatch/pgcachewatch.h>

#include "cli.h"
#include "cmd_cache.h"

/* --- errors and the handle ------------------------------------------------------ */

static int fail(const cli_cache_args *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int fail(const cli_cache_args *a, const char *fmt, ...)
{
    char msg[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cli_runtime_error(a->cmd, "%s", msg);
    return a->err_code;
}

/* A key for a message: printable ASCII as it is, every other byte as \xNN. */
static void show_key(const char *key, char *out, size_t len)
{
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)key; *p && o + 5 < len; p++) {
        if (*p >= 0x20 && *p < 0x7f && *p != '"' && *p != '\\')
            out[o++] = (char)*p;
        else
            o += (size_t)snprintf(out + o, len - o, "\\x%02x", *p);
    }
    out[o] = '\0';
}

/* The failure of a call on c. The library checks keys before any I/O, with a
 * detail that starts with "key"; any other PGCW_EINVAL (a connection string libpq
 * refuses) names the operation first and is a runtime error like the rest. */
static int op_failed(const cli_cache_args *a, pgcw_cache *c, pgcw_status st,
                     const char *key)
{
    const char *msg = pgcw_cache_errmsg(c);
    if (!msg || !*msg)
        msg = pgcw_strerror(st);
    if (st == PGCW_EINVAL && strncmp(msg, "key", 3) == 0) {
        const char *rule = "a key is text: valid UTF-8 without NUL bytes";
        if (!key)
            return cli_usage_error(a->cmd,
                                   "one of the keys was refused (%s; %s); nothing "
                                   "was sent",
                                   msg, rule);
        char shown[256];
        show_key(key, shown, sizeof shown);
        return cli_usage_error(a->cmd, "key \"%s\" refused: %s (%s)", shown, msg, rule);
    }
    int rc = fail(a, "%s", msg);
    if (strstr(msg, "SQLSTATE 42P01"))
        fprintf(stderr,
                "%s: hint: no cache table for this prefix? create it with '" CLI_PROG
                " cache init%s%s'\n",
                a->cmd, *a->prefix ? " --schema-prefix " : "", a->prefix);
    return rc;
}

static void on_log(void *ctx, pgcw_log_level level, const char *message)
{
    cli_cache_args *a = ctx;
    if (level < PGCW_LOG_ERROR || a->why[0])
        return;
    if (strncmp(message, "cache: ", 7) == 0)
        message += 7;
    snprintf(a->why, sizeof a->why, "%s", message);
}

int cli_cache_open(cli_cache_args *a, pgcw_cache **out)
{
    cli_conn_settings s;
    cli_conn_settings_init(&s, &a->conn);
    pgcw_cache_opts o = a->opts;
    o.disable_l1 = true;
    o.pool_size = 1;
    o.cleanup_batch_size = CLI_CACHE_CLEANUP_BATCH;
    o.log = on_log;
    o.log_ctx = a;
    pgcw_status st = pgcw_cache_new(&o, &s.opts, out);
    if (st == PGCW_EINVAL)
        return cli_usage_error(a->cmd, "%s", a->why[0] ? a->why : pgcw_strerror(st));
    if (st != PGCW_OK)
        return fail(a, "%s", pgcw_strerror(st));
    return -1;
}

/* --- the subcommands ------------------------------------------------------------ */

/* The table as plain SQL sees it, on a connection of its own: -1, else the exit
 * code after printing why. */
static int read_table(cli_cache_args *a, bool count, cli_cache_table *t)
{
    pgcw_conn *conn = cli_connect(a->cmd, &a->conn);
    if (!conn)
        return CLI_EXIT_RUNTIME;
    int rc = cli_cache_table_read(a->cmd, pgcw_conn_pg(conn), a->prefix, count,
                                  CLI_EXIT_RUNTIME, t);
    pgcw_conn_free(conn);
    return rc;
}

int cli_cache_init(cli_cache_args *a, pgcw_cache *c)
{
    (void)c; /* init_db makes a connection of its own */
    cli_conn_settings s;
    cli_conn_settings_init(&s, &a->conn);
    int version = 0;
    char *err = NULL;
    pgcw_status st = pgcw_cache_init_db(&a->opts, &s.opts, &version, &err);
    int rc;
    if (st != PGCW_OK) {
        rc = fail(a, "%s", err ? err : pgcw_strerror(st));
        pgcw_free(err);
        return rc;
    }
    /* Report what is in place, which is not what was asked for when the schema
     * already existed: init never alters an existing table or trigger. */
    cli_cache_table t;
    rc = read_table(a, false, &t);
    if (rc >= 0)
        return rc;
    printf("schema version %d: table %s.%s (%s), notify channel %s\n", version, t.schema,
           t.name, t.logged ? "logged" : "unlogged", t.channel[0] ? t.channel : "(none)");
    const char *want = a->opts.notify_channel ? a->opts.notify_channel : "cache_events";
    if (strcmp(t.channel, want) != 0)
        fprintf(stderr,
                "%s: note: the schema already existed: its trigger notifies on %s, not "
                "%s\n",
                a->cmd, t.channel[0] ? t.channel : "(nothing)", want);
    if (a->opts.durability == PGCW_CACHE_LOGGED && !t.logged)
        fprintf(stderr, "%s: note: the table already existed and stays UNLOGGED\n",
                a->cmd);
    return CLI_EXIT_OK;
}

int cli_cache_get(cli_cache_args *a, pgcw_cache *c)
{
    const char *key = a->args[0];
    void *value = NULL;
    size_t len = 0;
    pgcw_status st = pgcw_cache_get(c, key, strlen(key), &value, &len);
    int rc = 1; /* a miss: nothing printed, as grep prints nothing */
    if (st == PGCW_OK)
        rc = fwrite(value, 1, len, stdout) == len && fflush(stdout) == 0
                 ? CLI_EXIT_OK
                 : fail(a, "writing the value to stdout failed");
    else if (st != PGCW_ENOTFOUND)
        rc = op_failed(a, c, st, key);
    pgcw_free(value);
    return rc;
}

/* All of stdin, bytes as they are. *out is malloc'd (NULL with len 0 is fine). */
static bool read_stdin(char **out, size_t *len)
{
    size_t cap = 0, n = 0;
    char *buf = NULL;
    for (;;) {
        if (n == cap) {
            size_t grown = cap ? cap * 2 : 65536;
            char *p = realloc(buf, grown);
            if (!p) {
                free(buf);
                return false;
            }
            buf = p;
            cap = grown;
        }
        size_t got = fread(buf + n, 1, cap - n, stdin);
        n += got;
        if (got == 0)
            break;
    }
    if (ferror(stdin)) {
        free(buf);
        return false;
    }
    *out = buf;
    *len = n;
    return true;
}

int cli_cache_set(cli_cache_args *a, pgcw_cache *c)
{
    const char *key = a->args[0];
    char *input = NULL;
    const char *value = a->n_args > 1 ? a->args[1] : NULL;
    size_t len = value ? strlen(value) : 0;
    if (!value && !read_stdin(&input, &len))
        return fail(a, "reading the value from stdin failed");
    pgcw_status st =
        pgcw_cache_set(c, key, strlen(key), value ? value : input, len, a->ttl_ms);
    free(input);
    return st == PGCW_OK ? CLI_EXIT_OK : op_failed(a, c, st, key);
}

int cli_cache_del(cli_cache_args *a, pgcw_cache *c)
{
    pgcw_cache_key *keys = calloc((size_t)a->n_args, sizeof *keys);
    if (!keys)
        return fail(a, "out of memory");
    for (int i = 0; i < a->n_args; i++)
        keys[i] = (pgcw_cache_key){a->args[i], strlen(a->args[i])};
    /* One transaction: every key is deleted, or (on an error) none is. */
    pgcw_status st = pgcw_cache_delete_many(c, keys, (size_t)a->n_args);
    free(keys);
    return st == PGCW_OK ? CLI_EXIT_OK
                         : op_failed(a, c, st, a->n_args == 1 ? a->args[0] : NULL);
}

int cli_cache_cleanup(cli_cache_args *a, pgcw_cache *c)
{
    /* In batches, so no statement holds many row locks for long. */
    long long total = 0;
    int removed = CLI_CACHE_CLEANUP_BATCH;
    pgcw_status st = PGCW_OK;
    while (st == PGCW_OK && removed == CLI_CACHE_CLEANUP_BATCH) {
        st = pgcw_cache_cleanup_expired(c, &removed);
        total += st == PGCW_OK ? removed : 0;
    }
    if (st != PGCW_OK) {
        int rc = op_failed(a, c, st, NULL);
        if (total > 0)
            fprintf(stderr, "%s: %lld expired rows were removed before the error\n",
                    a->cmd, total);
        return rc;
    }
    printf("removed %lld expired row%s\n", total, total == 1 ? "" : "s");
    return CLI_EXIT_OK;
}

int cli_cache_stats(cli_cache_args *a, pgcw_cache *c)
{
    (void)c; /* the table's figures, not this process's */
    cli_cache_table t;
    int rc = read_table(a, true, &t);
    if (rc >= 0)
        return rc;
    cli_cache_table_print(stdout, &t, a->json);
    return CLI_EXIT_OK;
}
