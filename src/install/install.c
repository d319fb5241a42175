/*
 * install.c - generating and running the install/uninstall scripts (install.h).
 *
 * Names are validated and quoted here, then pasted into the templates of sql/;
 * no unquoted input ever reaches SQL, and nothing is sent to the server before
 * every name has been checked. Scripts run in one transaction that is rolled back
 * on any error. Must never print: libpq NOTICEs are silenced inside the script.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "pgcachewatch/install.h"
#include "sql_template.h"
#include "core_util.h"

/* The options with defaults applied, and every name derived from them. */
typedef struct names {
    const char *channel;
    const char *function_name;
    const char *trigger_prefix;
    bool with_keys;
    char function[PGCW_MAX_IDENTIFIER + 1];
    char keys_function[PGCW_MAX_IDENTIFIER + 1];
} names;

static const char *const key_suffixes[] = {"_ins", "_upd", "_del"};

/*
 * Derives the name a + b + c. Names that fit in PGCW_MAX_IDENTIFIER bytes are the
 * plain concatenation (the Python tool's names). Longer ones would be truncated by
 * PostgreSQL, silently and so that two tables could share a trigger name; instead
 * they keep as much of a + b as fits (cut on a UTF-8 boundary), then "_" and 8 hex
 * digits of a hash of the whole a + b, then c, so the result is deterministic (a
 * reinstall replaces it) and distinct per table.
 */
static void derive_name(char out[PGCW_MAX_IDENTIFIER + 1], const char *a, const char *b,
                        const char *c)
{
    size_t la = strlen(a), lb = strlen(b), lc = strlen(c);
    if (la + lb + lc <= PGCW_MAX_IDENTIFIER) {
        memcpy(out, a, la);
        memcpy(out + la, b, lb);
        memcpy(out + la + lb, c, lc);
        out[la + lb + lc] = '\0';
        return;
    }
    uint32_t h = 2166136261u; /* FNV-1a */
    for (const char *p = a; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    for (const char *p = b; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    char head[2 * (PGCW_MAX_IDENTIFIER + 1)];
    snprintf(head, sizeof head, "%s%s", a, b);
    size_t keep = PGCW_MAX_IDENTIFIER - lc - 9; /* "_" + 8 hex digits */
    while (keep > 0 && ((unsigned char)head[keep] & 0xC0) == 0x80)
        keep--; /* never split a multi-byte character */
    snprintf(out, PGCW_MAX_IDENTIFIER + 1, "%.*s_%08x%s", (int)keep, head, (unsigned)h,
             c);
}

static pgcw_status resolve_names(const pgcw_install_opts *opts, names *n, char *errbuf,
                                 size_t errlen)
{
    pgcw_install_opts o = opts ? *opts : (pgcw_install_opts){0};
    n->channel = o.channel ? o.channel : PGCW_DEFAULT_CHANNEL;
    n->function_name = o.function_name ? o.function_name : PGCW_DEFAULT_FUNCTION_NAME;
    n->trigger_prefix = o.trigger_prefix ? o.trigger_prefix : PGCW_DEFAULT_TRIGGER_PREFIX;
    n->with_keys = o.with_keys;
    if (n->channel[0] == '\0') {
        pgcw__errf(errbuf, errlen, "the channel name is empty");
        return PGCW_EINVAL;
    }
    if (strlen(n->channel) > PGCW_MAX_IDENTIFIER) {
        pgcw__errf(errbuf, errlen, "channel name \"%s\" is longer than %d bytes",
                   n->channel, PGCW_MAX_IDENTIFIER);
        return PGCW_EINVAL;
    }
    if (n->function_name[0] == '\0') {
        pgcw__errf(errbuf, errlen, "the function name is empty");
        return PGCW_EINVAL;
    }
    if (strlen(n->function_name) > PGCW_MAX_IDENTIFIER ||
        strlen(n->trigger_prefix) > PGCW_MAX_IDENTIFIER) {
        pgcw__errf(errbuf, errlen,
                   "function name or trigger prefix is longer than %d bytes",
                   PGCW_MAX_IDENTIFIER);
        return PGCW_EINVAL;
    }
    char base[2 * PGCW_MAX_IDENTIFIER + 2];
    snprintf(base, sizeof base, "%s_", n->function_name);
    derive_name(n->function, base, n->channel, "");
    derive_name(n->keys_function, base, n->channel, "_keys");
    return PGCW_OK;
}

/* A dollar-quote tag that does not occur in the quoted channel, the only
 * caller-provided text inside function bodies. */
static void body_tag(const char *quoted_channel, char tag[32])
{
    snprintf(tag, 32, "$pgcw$");
    for (unsigned i = 1; strstr(quoted_channel, tag); i++)
        snprintf(tag, 32, "$pgcw_%u$", i);
}

/* The owned, quoted values every template may use; freed by quoted_free(). */
typedef struct quoted {
    char *channel, *function, *keys_function, *table;
    char *trigger, *trigger_ins, *trigger_upd, *trigger_del;
} quoted;

static void quoted_free(quoted *q)
{
    free(q->channel);
    free(q->function);
    free(q->keys_function);
    free(q->table);
    free(q->trigger);
    free(q->trigger_ins);
    free(q->trigger_upd);
    free(q->trigger_del);
    *q = (quoted){0};
}

/* Quotes a possibly schema-qualified table name. */
static char *quote_table(const pgcw_qualified_name *t)
{
    char *name = pgcw_quote_ident(t->name);
    if (!name || t->schema[0] == '\0')
        return name;
    char *schema = pgcw_quote_ident(t->schema);
    char *out = NULL;
    if (schema) {
        pgcw__buf b = {0};
        pgcw__buf_appendf(&b, "%s.%s", schema, name);
        out = pgcw__buf_take(&b);
    }
    free(schema);
    free(name);
    return out;
}

/* Appends the triggers of one table. */
static pgcw_status append_table(pgcw__buf *out, const names *n, const quoted *fq,
                                const char *table_text, char *errbuf, size_t errlen)
{
    pgcw_qualified_name t;
    pgcw_status st = pgcw_parse_qualified_name(table_text, &t, errbuf, errlen);
    if (st != PGCW_OK)
        return st;
    char trig[PGCW_MAX_IDENTIFIER + 1], sub[3][PGCW_MAX_IDENTIFIER + 1];
    derive_name(trig, n->trigger_prefix, t.name, "");
    for (int i = 0; i < 3; i++)
        derive_name(sub[i], n->trigger_prefix, t.name, key_suffixes[i]);

    quoted q = {0};
    q.table = quote_table(&t);
    q.trigger = pgcw_quote_ident(trig);
    q.trigger_ins = pgcw_quote_ident(sub[0]);
    q.trigger_upd = pgcw_quote_ident(sub[1]);
    q.trigger_del = pgcw_quote_ident(sub[2]);
    st = PGCW_OK;
    if (!q.table || !q.trigger || !q.trigger_ins || !q.trigger_upd || !q.trigger_del)
        st = PGCW_ENOMEM;

    if (st == PGCW_OK && n->with_keys) {
        const pgcw__sql_var vars[] = {
            {"table", q.table},
            {"trigger", q.trigger},
            {"trigger_ins", q.trigger_ins},
            {"trigger_upd", q.trigger_upd},
            {"trigger_del", q.trigger_del},
            {"function", fq->function},
            {"keys_function", fq->keys_function},
        };
        st = pgcw__sql_expand(out, pgcw__sql_keys_triggers, vars,
                              sizeof vars / sizeof vars[0]);
    } else if (st == PGCW_OK) {
        /* Switching from with_keys: drop that variant's triggers. */
        const char *others[] = {q.trigger_ins, q.trigger_upd, q.trigger_del};
        for (int i = 0; i < 3 && st == PGCW_OK; i++) {
            const pgcw__sql_var vars[] = {{"table", q.table}, {"trigger", others[i]}};
            st = pgcw__sql_expand(out, pgcw__sql_drop_trigger_if_exists, vars, 2);
        }
        const pgcw__sql_var vars[] = {
            {"table", q.table}, {"trigger", q.trigger}, {"function", fq->function}};
        if (st == PGCW_OK)
            st = pgcw__sql_expand(out, pgcw__sql_table_triggers, vars, 3);
    }
    quoted_free(&q);
    if (st == PGCW_EINVAL)
        pgcw__errf(errbuf, errlen, "internal error: bad SQL template");
    return st;
}

pgcw_status pgcw_install_sql(const pgcw_install_opts *opts, const char *const *tables,
                             size_t n_tables, char **sql_out, char *errbuf, size_t errlen)
{
    if (sql_out)
        *sql_out = NULL;
    if (!sql_out || (n_tables && !tables)) {
        pgcw__errf(errbuf, errlen, "invalid arguments");
        return PGCW_EINVAL;
    }
    names n;
    pgcw_status st = resolve_names(opts, &n, errbuf, errlen);
    if (st != PGCW_OK)
        return st;

    quoted fq = {0};
    fq.channel = pgcw_quote_literal(n.channel);
    fq.function = pgcw_quote_ident(n.function);
    fq.keys_function = pgcw_quote_ident(n.keys_function);
    if (!fq.channel || !fq.function || !fq.keys_function) {
        quoted_free(&fq);
        pgcw__errf(errbuf, errlen, "out of memory");
        return PGCW_ENOMEM;
    }
    char tag[32];
    body_tag(fq.channel, tag);

    pgcw__buf out = {0};
    pgcw__buf_append(&out,
                     "BEGIN;\n"
                     "-- DROP TRIGGER IF EXISTS reports missing triggers as NOTICEs.\n"
                     "SET LOCAL client_min_messages = warning;\n");
    const pgcw__sql_var fvars[] = {
        {"function", fq.function}, {"channel", fq.channel}, {"tag", tag}};
    st = pgcw__sql_expand(&out, pgcw__sql_notify_function, fvars, 3);
    if (st == PGCW_OK && n.with_keys) {
        const pgcw__sql_var kvars[] = {
            {"function", fq.keys_function}, {"channel", fq.channel}, {"tag", tag}};
        st = pgcw__sql_expand(&out, pgcw__sql_notify_keys_function, kvars, 3);
    }
    if (st == PGCW_EINVAL)
        pgcw__errf(errbuf, errlen, "internal error: bad SQL template");
    for (size_t i = 0; i < n_tables && st == PGCW_OK; i++)
        st = append_table(&out, &n, &fq, tables[i], errbuf, errlen);
    quoted_free(&fq);
    if (st == PGCW_OK)
        pgcw__buf_append(&out, "COMMIT;\n");
    if (st == PGCW_OK && out.failed)
        st = PGCW_ENOMEM;
    if (st != PGCW_OK) {
        if (st == PGCW_ENOMEM)
            pgcw__errf(errbuf, errlen, "out of memory");
        pgcw__buf_free(&out);
        return st;
    }
    *sql_out = pgcw__buf_take(&out);
    return PGCW_OK;
}

/* "message (SQLSTATE xxxxx)" from a failed result, or libpq's message. */
static void query_error(PGconn *conn, const PGresult *res, char *errbuf, size_t errlen)
{
    const char *msg = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    if (msg && state) {
        pgcw__errf(errbuf, errlen, "%s (SQLSTATE %s)", msg, state);
        return;
    }
    char tmp[512];
    snprintf(tmp, sizeof tmp, "%s", PQerrorMessage(conn));
    tmp[strcspn(tmp, "\n")] = '\0';
    pgcw__errf(errbuf, errlen, "%s", tmp[0] ? tmp : "query failed");
}

static pgcw_status check_idle(PGconn *conn, char *errbuf, size_t errlen)
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
static pgcw_status run_script(PGconn *conn, const char *sql, char *errbuf, size_t errlen)
{
    PGresult *res = PQexec(conn, sql);
    ExecStatusType rs = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    pgcw_status st = PGCW_OK;
    if (rs != PGRES_COMMAND_OK && rs != PGRES_TUPLES_OK) {
        query_error(conn, res, errbuf, errlen);
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

pgcw_status pgcw_install(struct pg_conn *conn, const pgcw_install_opts *opts,
                         const char *const *tables, size_t n_tables, char **sql_out,
                         char *errbuf, size_t errlen)
{
    if (sql_out)
        *sql_out = NULL;
    char *sql = NULL;
    pgcw_status st = pgcw_install_sql(opts, tables, n_tables, &sql, errbuf, errlen);
    if (st != PGCW_OK)
        return st;
    st = check_idle(conn, errbuf, errlen);
    if (st == PGCW_OK)
        st = run_script(conn, sql, errbuf, errlen);
    if (sql_out)
        *sql_out = sql;
    else
        free(sql);
    return st;
}

/* Builds the DROP statements (without BEGIN/COMMIT) for n's functions. */
static pgcw_status uninstall_body(PGconn *conn, const names *n, pgcw__buf *out,
                                  char *errbuf, size_t errlen)
{
    char *fn = pgcw_quote_ident(n->function);
    char *kfn = pgcw_quote_ident(n->keys_function);
    pgcw__buf arr = {0};
    /* A text[] literal of the signatures: {"\"fn\"()", ...}. Quoting for the array
     * literal is separate from SQL quoting: it is sent as a parameter. */
    const char *sigs[2] = {fn, kfn};
    pgcw__buf_append(&arr, "{");
    for (int i = 0; i < 2; i++) {
        if (i)
            pgcw__buf_append(&arr, ",");
        pgcw__buf_append(&arr, "\"");
        for (const char *p = sigs[i]; *p; p++) {
            if (*p == '"' || *p == '\\')
                pgcw__buf_append(&arr, "\\");
            pgcw__buf_appendn(&arr, p, 1);
        }
        pgcw__buf_append(&arr, "()\"");
    }
    pgcw__buf_append(&arr, "}");
    bool oom = !fn || !kfn || arr.failed;
    free(fn);
    free(kfn);
    if (oom) {
        pgcw__buf_free(&arr);
        pgcw__errf(errbuf, errlen, "out of memory");
        return PGCW_ENOMEM;
    }
    const char *params[1] = {arr.data};
    PGresult *res =
        PQexecParams(conn, pgcw__sql_uninstall_objects, 1, NULL, params, NULL, NULL, 0);
    pgcw__buf_free(&arr);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        query_error(conn, res, errbuf, errlen);
        PQclear(res);
        return PQstatus(conn) == CONNECTION_OK ? PGCW_EQUERY : PGCW_ECONNLOST;
    }
    pgcw_status st = PGCW_OK;
    for (int r = 0; r < PQntuples(res) && st == PGCW_OK; r++) {
        bool trigger = PQgetvalue(res, r, 0)[0] == 't';
        char *name = pgcw_quote_ident(PQgetvalue(res, r, 1));
        char *schema = pgcw_quote_ident(PQgetvalue(res, r, 2));
        char *rel = trigger ? pgcw_quote_ident(PQgetvalue(res, r, 3)) : NULL;
        if (!name || !schema || (trigger && !rel))
            st = PGCW_ENOMEM;
        else if (trigger)
            pgcw__buf_appendf(out, "DROP TRIGGER %s ON %s.%s;\n", name, schema, rel);
        else
            pgcw__buf_appendf(out, "DROP FUNCTION %s.%s();\n", schema, name);
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
                                     names *n, char *errbuf, size_t errlen)
{
    pgcw_status st = resolve_names(opts, n, errbuf, errlen);
    return st == PGCW_OK ? check_idle(conn, errbuf, errlen) : st;
}

pgcw_status pgcw_uninstall_sql(struct pg_conn *conn, const pgcw_install_opts *opts,
                               char **sql_out, char *errbuf, size_t errlen)
{
    if (sql_out)
        *sql_out = NULL;
    if (!sql_out) {
        pgcw__errf(errbuf, errlen, "invalid arguments");
        return PGCW_EINVAL;
    }
    names n;
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
static pgcw_status exec_ok(PGconn *conn, const char *sql, char *errbuf, size_t errlen)
{
    PGresult *res = PQexec(conn, sql);
    pgcw_status st = PGCW_OK;
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        query_error(conn, res, errbuf, errlen);
        st = PQstatus(conn) == CONNECTION_OK ? PGCW_EQUERY : PGCW_ECONNLOST;
    }
    PQclear(res);
    return st;
}

pgcw_status pgcw_uninstall(struct pg_conn *conn, const pgcw_install_opts *opts,
                           char **sql_out, char *errbuf, size_t errlen)
{
    if (sql_out)
        *sql_out = NULL;
    names n;
    pgcw_status st = uninstall_prepare(conn, opts, &n, errbuf, errlen);
    if (st != PGCW_OK)
        return st;
    /* Read the catalogs and drop inside one transaction, so what we drop is what we
     * read (a concurrent install would otherwise slip in between). */
    st = exec_ok(conn, "BEGIN", errbuf, errlen);
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
        st = exec_ok(conn, body.data, errbuf, errlen);
    if (st == PGCW_OK)
        st = exec_ok(conn, "COMMIT", errbuf, errlen);
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
