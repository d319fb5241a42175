/*
 * install_logical.c - install and uninstall for the logical source (install.h,
 * opts.source = PGCW_WATCH_LOGICAL): a publication FOR TABLE the given tables,
 * then a pgoutput replication slot; uninstall drops the slot, then the
 * publication. The SQL is sql/logical_*.sql.
 *
 * The order is PostgreSQL's: the publication must exist before the slot starts
 * (pgoutput looks publications up as of each change), and a logical slot cannot
 * be created in a transaction that has written. So an install is two steps, and
 * when the second fails the first is undone if it created something. Must never
 * paste an unquoted name into SQL.
 */
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "conn_internal.h"
#include "core_util.h"
#include "install_internal.h"
#include "sql_logical.h"
#include "sql_names.h"
#include "sql_template.h"

/* The two parts of the install script: the publication's transaction and the
 * slot's statement. */
typedef struct logical_script {
    pgcw__logical_names names;
    char *publication; /* BEGIN ... COMMIT */
    char *slot;
} logical_script;

static void script_free(logical_script *s)
{
    free(s->publication);
    free(s->slot);
    s->publication = s->slot = NULL;
}

static pgcw_status resolve(const pgcw_install_opts *o, pgcw__logical_names *n,
                           char *errbuf, size_t errlen)
{
    if (o->ddl) {
        pgcw__errf(errbuf, errlen,
                   "DDL event triggers belong to the LISTEN source: install them "
                   "without --source logical");
        return PGCW_EINVAL;
    }
    return pgcw__logical_names_resolve(o->channel, o->slot_name, o->publication, n,
                                       errbuf, errlen);
}

/* The quoted table list "a", "s"."b", ... */
static pgcw_status table_list(const char *const *tables, size_t n_tables, pgcw__buf *out,
                              char *errbuf, size_t errlen)
{
    if (n_tables == 0) {
        pgcw__errf(errbuf, errlen,
                   "a publication needs at least one table: name the tables to watch");
        return PGCW_EINVAL;
    }
    for (size_t i = 0; i < n_tables; i++) {
        pgcw_qualified_name t;
        pgcw_status st = pgcw__parse_qualified_name(tables[i], &t, errbuf, errlen);
        if (st != PGCW_OK)
            return st;
        char *q = pgcw__install_quote_table(&t);
        if (!q)
            return PGCW_ENOMEM;
        pgcw__buf_appendf(out, "%s%s", i ? ", " : "", q);
        free(q);
    }
    return out->failed ? PGCW_ENOMEM : PGCW_OK;
}

static pgcw_status build(const pgcw_install_opts *o, const char *const *tables,
                         size_t n_tables, logical_script *s, char *errbuf, size_t errlen)
{
    memset(s, 0, sizeof *s);
    if (n_tables && !tables) {
        pgcw__errf(errbuf, errlen, "invalid arguments");
        return PGCW_EINVAL;
    }
    pgcw_status st = resolve(o, &s->names, errbuf, errlen);
    if (st != PGCW_OK)
        return st;
    pgcw__buf list = {0};
    st = table_list(tables, n_tables, &list, errbuf, errlen);
    char *pub = pgcw_quote_ident(s->names.publication);
    char *pub_lit = pgcw_quote_literal(s->names.publication);
    char *slot_lit = pgcw_quote_literal(s->names.slot);
    if (st == PGCW_OK && (!pub || !pub_lit || !slot_lit))
        st = PGCW_ENOMEM;
    pgcw__buf pb = {0}, sb = {0};
    if (st == PGCW_OK) {
        /* The tag must not occur in anything pasted inside the bodies. */
        pgcw__buf all = {0};
        pgcw__buf_appendf(&all, "%s %s %s %s", list.data, pub, pub_lit, slot_lit);
        char tag[32];
        pgcw__install_body_tag(all.data ? all.data : "", tag);
        pgcw__buf_free(&all);
        const pgcw__sql_var vars[] = {{"tag", tag},
                                      {"publication", pub},
                                      {"publication_literal", pub_lit},
                                      {"tables", list.data},
                                      {"slot", slot_lit}};
        size_t nv = sizeof vars / sizeof vars[0];
        pgcw__buf_append(&pb, "BEGIN;\n");
        st = pgcw__sql_expand(&pb, pgcw__sql_logical_publication, vars, nv);
        pgcw__buf_append(&pb, "COMMIT;\n");
        if (st == PGCW_OK)
            st = pgcw__sql_expand(&sb, pgcw__sql_logical_slot, vars, nv);
        if (st == PGCW_EINVAL)
            pgcw__errf(errbuf, errlen, "internal error: bad SQL template");
    }
    pgcw__buf_free(&list);
    free(pub);
    free(pub_lit);
    free(slot_lit);
    if (st == PGCW_OK) {
        s->publication = pgcw__buf_take(&pb);
        s->slot = pgcw__buf_take(&sb);
        if (!s->publication || !s->slot)
            st = PGCW_ENOMEM;
    }
    pgcw__buf_free(&pb);
    pgcw__buf_free(&sb);
    if (st != PGCW_OK)
        script_free(s);
    if (st == PGCW_ENOMEM)
        pgcw__errf(errbuf, errlen, "out of memory");
    return st;
}

static char *joined(const logical_script *s)
{
    pgcw__buf b = {0};
    pgcw__buf_appendf(&b, "%s%s", s->publication, s->slot);
    return pgcw__buf_take(&b);
}

pgcw_status pgcw__install_logical_script(const pgcw_install_opts *opts,
                                         const char *const *tables, size_t n_tables,
                                         char **sql_out, char *errbuf, size_t errlen)
{
    if (!sql_out) {
        pgcw__errf(errbuf, errlen, "invalid arguments");
        return PGCW_EINVAL;
    }
    *sql_out = NULL;
    logical_script s;
    pgcw_status st = build(opts, tables, n_tables, &s, errbuf, errlen);
    if (st == PGCW_OK && !(*sql_out = joined(&s))) {
        pgcw__errf(errbuf, errlen, "out of memory");
        st = PGCW_ENOMEM;
    }
    script_free(&s);
    return st;
}

/* Whether the query with one text parameter returns a row: 1, 0, or -1 (error
 * in errbuf). */
static int exists(PGconn *conn, const char *sql, const char *param, char *errbuf,
                  size_t errlen)
{
    const char *params[1] = {param};
    PGresult *res = PQexecParams(conn, sql, 1, NULL, params, NULL, NULL, 0);
    int r = -1;
    if (PQresultStatus(res) == PGRES_TUPLES_OK)
        r = PQntuples(res) > 0;
    else
        pgcw__result_message(res, conn, errbuf, errlen);
    PQclear(res);
    return r;
}

static pgcw_status conn_status(PGconn *conn)
{
    return PQstatus(conn) == CONNECTION_OK ? PGCW_EQUERY : PGCW_ECONNLOST;
}

pgcw_status pgcw__install_logical_run(PGconn *conn, const pgcw_install_opts *opts,
                                      const char *const *tables, size_t n_tables,
                                      char **sql_out, char *errbuf, size_t errlen)
{
    if (sql_out)
        *sql_out = NULL;
    logical_script s;
    pgcw_status st = build(opts, tables, n_tables, &s, errbuf, errlen);
    if (st != PGCW_OK)
        return st;
    st = pgcw__install_check_idle(conn, errbuf, errlen);
    int had_pub = -1;
    if (st == PGCW_OK) {
        had_pub = exists(conn, "SELECT FROM pg_catalog.pg_publication WHERE pubname = $1",
                         s.names.publication, errbuf, errlen);
        if (had_pub < 0)
            st = conn_status(conn);
    }
    if (st == PGCW_OK)
        st = pgcw__install_run_script(conn, s.publication, errbuf, errlen);
    if (st == PGCW_OK) {
        st = pgcw__install_exec(conn, s.slot, errbuf, errlen);
        if (st == PGCW_EQUERY && !had_pub) {
            /* Nothing half-made: the publication this run created goes too. */
            char *drop = NULL, *q = pgcw_quote_ident(s.names.publication);
            pgcw__buf b = {0};
            if (q)
                pgcw__buf_appendf(&b, "DROP PUBLICATION IF EXISTS %s", q);
            drop = pgcw__buf_take(&b);
            if (drop)
                PQclear(PQexec(conn, drop));
            free(drop);
            free(q);
        }
    }
    if (sql_out && (st == PGCW_OK || st == PGCW_EQUERY))
        *sql_out = joined(&s);
    script_free(&s);
    return st;
}

pgcw_status pgcw__uninstall_logical(PGconn *conn, const pgcw_install_opts *opts, bool run,
                                    char **sql_out, char *errbuf, size_t errlen)
{
    if (sql_out)
        *sql_out = NULL;
    if (!run && !sql_out) {
        pgcw__errf(errbuf, errlen, "invalid arguments");
        return PGCW_EINVAL;
    }
    pgcw__logical_names n;
    pgcw_status st = resolve(opts, &n, errbuf, errlen);
    if (st == PGCW_OK)
        st = pgcw__install_check_idle(conn, errbuf, errlen);
    if (st != PGCW_OK)
        return st;
    const char *params[2] = {n.slot, n.publication};
    PGresult *res = PQexecParams(conn, pgcw__sql_logical_uninstall_objects, 2, NULL,
                                 params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        pgcw__result_message(res, conn, errbuf, errlen);
        PQclear(res);
        return conn_status(conn);
    }
    /* The slot first (rows come 's' before 'p'): when it is in use, dropping it
     * fails and the publication stays too. */
    pgcw__buf slot_sql = {0}, pub_sql = {0};
    for (int r = 0; r < PQntuples(res); r++) {
        bool slot = PQgetvalue(res, r, 0)[0] == 's';
        const char *name = PQgetvalue(res, r, 1);
        char *q = slot ? pgcw_quote_literal(name) : pgcw_quote_ident(name);
        if (!q) {
            slot_sql.failed = true;
            break;
        }
        if (slot && !PQgetisnull(res, r, 2))
            pgcw__buf_appendf(&slot_sql, "-- the slot is in use by pid %s\n",
                              PQgetvalue(res, r, 2));
        if (slot)
            pgcw__buf_appendf(&slot_sql,
                              "SELECT pg_catalog.pg_drop_replication_slot(%s);\n", q);
        else
            pgcw__buf_appendf(&pub_sql, "BEGIN;\nDROP PUBLICATION %s;\nCOMMIT;\n", q);
        free(q);
    }
    PQclear(res);
    if (slot_sql.failed || pub_sql.failed) {
        pgcw__buf_free(&slot_sql);
        pgcw__buf_free(&pub_sql);
        pgcw__errf(errbuf, errlen, "out of memory");
        return PGCW_ENOMEM;
    }
    if (run && slot_sql.len) {
        /* pg_drop_replication_slot returns a row: not a COMMAND_OK statement. */
        PGresult *dr = PQexec(conn, slot_sql.data);
        if (PQresultStatus(dr) != PGRES_TUPLES_OK) {
            pgcw__result_message(dr, conn, errbuf, errlen);
            st = conn_status(conn);
        }
        PQclear(dr);
    }
    if (run && st == PGCW_OK && pub_sql.len)
        st = pgcw__install_run_script(conn, pub_sql.data, errbuf, errlen);
    pgcw__buf all = {0};
    pgcw__buf_appendf(&all, "%s%s", slot_sql.data ? slot_sql.data : "",
                      pub_sql.data ? pub_sql.data : "");
    pgcw__buf_free(&slot_sql);
    pgcw__buf_free(&pub_sql);
    char *script = pgcw__buf_take(&all);
    if (!script && st == PGCW_OK) {
        pgcw__errf(errbuf, errlen, "out of memory");
        st = PGCW_ENOMEM;
    }
    if (sql_out && st == PGCW_OK)
        *sql_out = script;
    else
        free(script);
    return st;
}
