/*
 * install.c - the install handle, running scripts, and uninstall (install.h).
 *
 * Scripts run in one transaction that is rolled back on any error; uninstall reads
 * the catalogs and drops in one transaction, so what it drops is what it read.
 * Must never print: libpq NOTICEs are silenced inside the scripts.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "conn_internal.h"
#include "core_abi.h"
#include "core_util.h"
#include "install_internal.h"
#include "sql_template.h"

pgcw_status pgcw__install_check_idle(PGconn *conn, char *errbuf, size_t errlen)
{
    if (!conn) {
        pgcw__errf(errbuf, errlen, "no connection");
        return PGCW_EINVAL;
    }
    if (PQstatus(conn) != CONNECTION_OK) {
        pgcw__errf(errbuf, errlen, "the connection is not open");
        return PGCW_ECONNLOST;
    }
    if (PQtransactionStatus(conn) != PQTRANS_IDLE) {
        pgcw__errf(errbuf, errlen, "the connection is busy or inside a transaction");
        return PGCW_ESTATE;
    }
    return PGCW_OK;
}

/* Runs a script that starts with BEGIN and ends with COMMIT. On error, rolls back
 * whatever is still open so that nothing is left half-done. */
pgcw_status pgcw__install_run_script(PGconn *conn, const char *sql, char *errbuf,
                                     size_t errlen)
{
    PGresult *res = PQexec(conn, sql);
    ExecStatusType rs = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    pgcw_status st = PGCW_OK;
    if (rs != PGRES_COMMAND_OK && rs != PGRES_TUPLES_OK) {
        pgcw__result_message(res, conn, errbuf, errlen);
        st = PGCW_EQUERY;
    }
    PQclear(res);
    if (PQtransactionStatus(conn) != PQTRANS_IDLE && PQstatus(conn) == CONNECTION_OK) {
        PQclear(PQexec(conn, "ROLLBACK"));
        if (st == PGCW_OK) {
            pgcw__errf(errbuf, errlen, "the script did not commit");
            st = PGCW_EQUERY;
        }
    }
    if (st != PGCW_OK && PQstatus(conn) != CONNECTION_OK)
        st = PGCW_ECONNLOST;
    return st;
}

static pgcw_status install_run(PGconn *conn, const pgcw_install_opts *opts,
                               const char *const *tables, size_t n_tables, char **sql_out,
                               char *errbuf, size_t errlen)
{
    if (sql_out)
        *sql_out = NULL;
    char *sql = NULL;
    pgcw_status st = pgcw__install_script(opts, tables, n_tables, &sql, errbuf, errlen);
    if (st != PGCW_OK)
        return st;
    st = pgcw__install_check_idle(conn, errbuf, errlen);
    if (st == PGCW_OK)
        st = pgcw__install_run_script(conn, sql, errbuf, errlen);
    if (sql_out)
        *sql_out = sql;
    else
        free(sql);
    return st;
}

/* Appends "elem" to a text[] literal being built in b ("{" so far, or "{...").
 * Quoting for the array literal is separate from SQL quoting: it is sent as a
 * parameter. */
static void array_append(pgcw__buf *b, const char *elem)
{
    pgcw__buf_append(b, b->len > 1 ? ",\"" : "\"");
    for (const char *p = elem; *p; p++) {
        if (*p == '"' || *p == '\\')
            pgcw__buf_append(b, "\\");
        pgcw__buf_appendn(b, p, 1);
    }
    pgcw__buf_append(b, "\"");
}

/* Builds the DROP statements (without BEGIN/COMMIT) for n's functions: the folded
 * names install makes now, and the unfolded ones of earlier versions; with ddl,
 * the DDL function and the event triggers that call it, nothing else. */
static pgcw_status uninstall_body(PGconn *conn, const pgcw__install_names *n,
                                  pgcw__buf *out, char *errbuf, size_t errlen)
{
    /* Signatures ($1): the notify functions take no arguments, the change log's
     * do (install_changelog.c); the change log's tables are $2. */
    const char *names[4 + PGCW__N_CHANGELOG_FUNCTIONS];
    const char *args[4 + PGCW__N_CHANGELOG_FUNCTIONS];
    size_t n_names = 0;
    if (n->ddl) {
        names[n_names] = n->ddl_function;
        args[n_names++] = "";
    } else {
        const char *plain[] = {n->function, n->keys_function, n->unfolded_function,
                               n->unfolded_keys_function};
        for (size_t i = 0; i < 4; i++) {
            names[n_names] = plain[i];
            args[n_names++] = "";
        }
        for (size_t i = 0; i < PGCW__N_CHANGELOG_FUNCTIONS; i++) {
            names[n_names] = pgcw__install_changelog_function(n, i);
            args[n_names++] = pgcw__changelog_args[i];
        }
    }
    pgcw__buf arr = {0}, rels = {0};
    bool oom = false;
    pgcw__buf_append(&arr, "{");
    for (size_t i = 0; i < n_names && !oom; i++) {
        char *q = pgcw_quote_ident(names[i]);
        pgcw__buf sig = {0};
        pgcw__buf_appendf(&sig, "%s(%s)", q ? q : "", args[i]);
        oom = !q || sig.failed;
        if (!oom)
            array_append(&arr, sig.data);
        pgcw__buf_free(&sig);
        free(q);
    }
    pgcw__buf_append(&arr, "}");
    pgcw__buf_append(&rels, "{");
    const char *tables[] = {n->log.table, n->log.pruned_table};
    for (size_t i = 0; i < 2 && !n->ddl && !oom; i++) {
        char *q = pgcw_quote_ident(tables[i]);
        oom = !q;
        if (q)
            array_append(&rels, q);
        free(q);
    }
    pgcw__buf_append(&rels, "}");
    if (oom || arr.failed || rels.failed) {
        pgcw__buf_free(&arr);
        pgcw__buf_free(&rels);
        pgcw__errf(errbuf, errlen, "out of memory");
        return PGCW_ENOMEM;
    }
    const char *params[2] = {arr.data, rels.data};
    PGresult *res =
        PQexecParams(conn, pgcw__sql_uninstall_objects, 2, NULL, params, NULL, NULL, 0);
    pgcw__buf_free(&arr);
    pgcw__buf_free(&rels);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        pgcw__result_message(res, conn, errbuf, errlen);
        PQclear(res);
        return PQstatus(conn) == CONNECTION_OK ? PGCW_EQUERY : PGCW_ECONNLOST;
    }
    pgcw_status st = PGCW_OK;
    for (int r = 0; r < PQntuples(res) && st == PGCW_OK; r++) {
        char kind = PQgetvalue(res, r, 0)[0];
        bool trigger = kind == 't', event_trigger = kind == 'e', table = kind == 'r';
        char *name = pgcw_quote_ident(PQgetvalue(res, r, 1));
        char *schema = pgcw_quote_ident(PQgetvalue(res, r, 2));
        char *rel = trigger ? pgcw_quote_ident(PQgetvalue(res, r, 3)) : NULL;
        const char *fn_args = PQgetvalue(res, r, 3); /* as the catalog prints them */
        if (!name || !schema || (trigger && !rel))
            st = PGCW_ENOMEM;
        else if (event_trigger) /* database-wide: no schema */
            pgcw__buf_appendf(out, "DROP EVENT TRIGGER %s;\n", name);
        else if (trigger)
            pgcw__buf_appendf(out, "DROP TRIGGER %s ON %s.%s;\n", name, schema, rel);
        else if (table) /* the change log */
            pgcw__buf_appendf(out, "DROP TABLE %s.%s;\n", schema, name);
        else
            pgcw__buf_appendf(out, "DROP FUNCTION %s.%s(%s);\n", schema, name, fn_args);
        free(name);
        free(schema);
        free(rel);
    }
    PQclear(res);
    if (st == PGCW_OK && out->failed)
        st = PGCW_ENOMEM;
    if (st == PGCW_ENOMEM)
        pgcw__errf(errbuf, errlen, "out of memory");
    return st;
}

/* The body in one transaction, or "" when there is nothing to drop. Owned; NULL
 * on OOM. */
static char *wrap_script(const pgcw__buf *body)
{
    pgcw__buf out = {0};
    if (body->len)
        pgcw__buf_appendf(&out, "BEGIN;\n%sCOMMIT;\n", body->data);
    return pgcw__buf_take(&out);
}

/* What both uninstall calls check first: the names, and a connection that is idle. */
static pgcw_status uninstall_prepare(PGconn *conn, const pgcw_install_opts *opts,
                                     pgcw__install_names *n, char *errbuf, size_t errlen)
{
    pgcw_status st = pgcw__install_resolve(opts, n, errbuf, errlen);
    return st == PGCW_OK ? pgcw__install_check_idle(conn, errbuf, errlen) : st;
}

static pgcw_status uninstall_sql(PGconn *conn, const pgcw_install_opts *opts,
                                 char **sql_out, char *errbuf, size_t errlen)
{
    if (sql_out)
        *sql_out = NULL;
    if (!sql_out) {
        pgcw__errf(errbuf, errlen, "invalid arguments");
        return PGCW_EINVAL;
    }
    pgcw__install_names n;
    pgcw_status st = uninstall_prepare(conn, opts, &n, errbuf, errlen);
    if (st != PGCW_OK)
        return st;
    pgcw__buf body = {0};
    st = uninstall_body(conn, &n, &body, errbuf, errlen);
    if (st == PGCW_OK && !(*sql_out = wrap_script(&body))) {
        pgcw__errf(errbuf, errlen, "out of memory");
        st = PGCW_ENOMEM;
    }
    pgcw__buf_free(&body);
    return st;
}

/* Runs one statement (or several) that must succeed. */
pgcw_status pgcw__install_exec(PGconn *conn, const char *sql, char *errbuf, size_t errlen)
{
    PGresult *res = PQexec(conn, sql);
    pgcw_status st = PGCW_OK;
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        pgcw__result_message(res, conn, errbuf, errlen);
        st = PQstatus(conn) == CONNECTION_OK ? PGCW_EQUERY : PGCW_ECONNLOST;
    }
    PQclear(res);
    return st;
}

static pgcw_status uninstall_run(PGconn *conn, const pgcw_install_opts *opts,
                                 char **sql_out, char *errbuf, size_t errlen)
{
    if (sql_out)
        *sql_out = NULL;
    pgcw__install_names n;
    pgcw_status st = uninstall_prepare(conn, opts, &n, errbuf, errlen);
    if (st != PGCW_OK)
        return st;
    /* Read the catalogs and drop inside one transaction, so what we drop is what we
     * read (a concurrent install would otherwise slip in between). */
    st = pgcw__install_exec(conn, "BEGIN", errbuf, errlen);
    if (st != PGCW_OK)
        return st;
    pgcw__buf body = {0};
    char *script = NULL;
    st = uninstall_body(conn, &n, &body, errbuf, errlen);
    if (st == PGCW_OK && !(script = wrap_script(&body))) {
        pgcw__errf(errbuf, errlen, "out of memory");
        st = PGCW_ENOMEM;
    }
    if (st == PGCW_OK && body.len)
        st = pgcw__install_exec(conn, body.data, errbuf, errlen);
    if (st == PGCW_OK)
        st = pgcw__install_exec(conn, "COMMIT", errbuf, errlen);
    /* Whatever failed, leave the connection idle with nothing half-dropped. */
    if (PQstatus(conn) == CONNECTION_OK && PQtransactionStatus(conn) != PQTRANS_IDLE)
        PQclear(PQexec(conn, "ROLLBACK"));
    pgcw__buf_free(&body);
    if (st == PGCW_OK && sql_out)
        *sql_out = script;
    else
        free(script);
    return st;
}

/* --- the handle ------------------------------------------------------------------ */

struct pgcw_install {
    char *channel, *function_name, *trigger_prefix; /* NULL: the default */
    bool with_keys, ddl;
    pgcw_watch_source source;
    char *slot_name, *publication; /* NULL: the default */
    char err[2048];
    char err_out[2048]; /* err as one line (pgcw_install_errmsg) */
};

pgcw_status pgcw_install_new_sized(const pgcw_install_opts *opts, size_t opts_size,
                                   pgcw_install **out)
{
    if (!out)
        return PGCW_EINVAL;
    *out = NULL;
    pgcw_install_opts o;
    if (pgcw__opts_copy(&o, sizeof o, opts, opts_size) != PGCW_OK)
        return PGCW_EINVAL;
    pgcw_install *in = calloc(1, sizeof *in);
    if (!in)
        return PGCW_ENOMEM;
    in->with_keys = o.with_keys;
    in->ddl = o.ddl;
    in->source = o.source;
    bool ok =
        (!o.channel || (in->channel = pgcw__strdup(o.channel))) &&
        (!o.function_name || (in->function_name = pgcw__strdup(o.function_name))) &&
        (!o.trigger_prefix || (in->trigger_prefix = pgcw__strdup(o.trigger_prefix))) &&
        (!o.slot_name || (in->slot_name = pgcw__strdup(o.slot_name))) &&
        (!o.publication || (in->publication = pgcw__strdup(o.publication)));
    if (!ok) {
        pgcw_install_free(in);
        return PGCW_ENOMEM;
    }
    *out = in;
    return PGCW_OK;
}

void pgcw_install_free(pgcw_install *in)
{
    if (!in)
        return;
    free(in->channel);
    free(in->function_name);
    free(in->trigger_prefix);
    free(in->slot_name);
    free(in->publication);
    free(in);
}

const char *pgcw_install_errmsg(const pgcw_install *in)
{
    if (!in)
        return "";
    pgcw_install *mi = (pgcw_install *)in; /* one thread at a time uses a handle */
    pgcw__escape_line(mi->err_out, sizeof mi->err_out, in->err, strlen(in->err));
    return mi->err_out;
}

/* The options again, for the functions above; clears the last error. */
static pgcw_install_opts begin(pgcw_install *in)
{
    in->err[0] = '\0';
    return (pgcw_install_opts){.channel = in->channel,
                               .function_name = in->function_name,
                               .trigger_prefix = in->trigger_prefix,
                               .with_keys = in->with_keys,
                               .ddl = in->ddl,
                               .source = in->source,
                               .slot_name = in->slot_name,
                               .publication = in->publication};
}

pgcw_status pgcw_install_sql(pgcw_install *in, const char *const *tables, size_t n_tables,
                             char **sql_out)
{
    if (!in) {
        if (sql_out)
            *sql_out = NULL;
        return PGCW_EINVAL;
    }
    pgcw_install_opts o = begin(in);
    if (o.source == PGCW_WATCH_LOGICAL)
        return pgcw__install_logical_script(&o, tables, n_tables, sql_out, in->err,
                                            sizeof in->err);
    return pgcw__install_script(&o, tables, n_tables, sql_out, in->err, sizeof in->err);
}

pgcw_status pgcw_install_run(pgcw_install *in, struct pg_conn *conn,
                             const char *const *tables, size_t n_tables, char **sql_out)
{
    if (!in) {
        if (sql_out)
            *sql_out = NULL;
        return PGCW_EINVAL;
    }
    pgcw_install_opts o = begin(in);
    if (o.source == PGCW_WATCH_LOGICAL)
        return pgcw__install_logical_run(conn, &o, tables, n_tables, sql_out, in->err,
                                         sizeof in->err);
    return install_run(conn, &o, tables, n_tables, sql_out, in->err, sizeof in->err);
}

pgcw_status pgcw_uninstall_sql(pgcw_install *in, struct pg_conn *conn, char **sql_out)
{
    if (!in) {
        if (sql_out)
            *sql_out = NULL;
        return PGCW_EINVAL;
    }
    pgcw_install_opts o = begin(in);
    if (o.source == PGCW_WATCH_LOGICAL)
        return pgcw__uninstall_logical(conn, &o, false, sql_out, in->err, sizeof in->err);
    return uninstall_sql(conn, &o, sql_out, in->err, sizeof in->err);
}

pgcw_status pgcw_uninstall_run(pgcw_install *in, struct pg_conn *conn, char **sql_out)
{
    if (!in) {
        if (sql_out)
            *sql_out = NULL;
        return PGCW_EINVAL;
    }
    pgcw_install_opts o = begin(in);
    if (o.source == PGCW_WATCH_LOGICAL)
        return pgcw__uninstall_logical(conn, &o, true, sql_out, in->err, sizeof in->err);
    return uninstall_run(conn, &o, sql_out, in->err, sizeof in->err);
}
