/*
 * conn.c - the public connection handle (conn.h): settings resolved once, a
 * blocking connect bounded by the connect timeout, the PGconn lent to the caller.
 * Must never print, and never keep a password in a message.
 */
#include <stdlib.h>
#include <string.h>

#include "conn_internal.h"
#include "core_abi.h"
#include "core_util.h"

struct pgcw_conn {
    pgcw__conn_params params;
    pgcw__conn conn;
    char err_out[sizeof((pgcw__conn *)0)->err]; /* conn.err as one line */
};

pgcw_status pgcw_conn_new_sized(const pgcw_conn_opts *opts, size_t opts_size,
                                pgcw_conn **out)
{
    if (!out)
        return PGCW_EINVAL;
    *out = NULL;
    pgcw_conn_opts o;
    if (pgcw__opts_copy(&o, sizeof o, opts, opts_size) != PGCW_OK)
        return PGCW_EINVAL;
    pgcw_conn *c = calloc(1, sizeof *c);
    if (!c)
        return PGCW_ENOMEM;
    if (pgcw__conn_params_init(&c->params, &o) != PGCW_OK) {
        free(c);
        return PGCW_ENOMEM;
    }
    *out = c;
    return PGCW_OK;
}

pgcw_status pgcw_conn_connect(pgcw_conn *c)
{
    if (!c)
        return PGCW_EINVAL;
    return pgcw__conn_connect(&c->conn, &c->params, NULL, NULL);
}

struct pg_conn *pgcw_conn_pg(const pgcw_conn *c)
{
    return c && !c->conn.connecting ? c->conn.pg : NULL;
}

void pgcw_conn_close(pgcw_conn *c)
{
    if (c)
        pgcw__conn_close(&c->conn);
}

const char *pgcw_conn_errmsg(const pgcw_conn *c)
{
    if (!c)
        return "";
    pgcw_conn *mc = (pgcw_conn *)c; /* one thread at a time uses a pgcw_conn */
    pgcw__escape_line(mc->err_out, sizeof mc->err_out, c->conn.err, strlen(c->conn.err));
    return mc->err_out;
}

const char *pgcw_conn_sqlstate(const pgcw_conn *c)
{
    return c ? c->conn.sqlstate : "";
}

void pgcw_conn_free(pgcw_conn *c)
{
    if (!c)
        return;
    pgcw__conn_close(&c->conn);
    pgcw__conn_params_free(&c->params);
    free(c);
}
