/*
 * conn_opts.c - the connection options every command accepts (--pg-dsn,
 * --pg-host, ...), turned into a libpq connection or a conninfo string.
 *
 * Precedence, lowest first: libpq's PG* environment variables, the DSN
 * (--pg-dsn, else $PGDSN), then each explicit --pg-* option. Never echoes a
 * password.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
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
    "      --pg-password PASSWORD  password (PGPASSWORD; prefer ~/.pgpass)\n";

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

static const char *effective_dsn(const cli_conn_opts *c)
{
    const char *dsn = c->dsn ? c->dsn : getenv("PGDSN");
    return dsn && *dsn ? dsn : NULL;
}

/* The explicit options, in override order. */
typedef struct kv {
    const char *key;
    const char *value;
} kv;

static size_t explicit_options(const cli_conn_opts *c, kv *out)
{
    const kv all[] = {{"host", c->host},
                      {"port", c->port},
                      {"user", c->user},
                      {"dbname", c->database},
                      {"password", c->password}};
    size_t n = 0;
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (all[i].value && *all[i].value)
            out[n++] = all[i];
    return n;
}

PGconn *cli_connect(const cli_conn_opts *c)
{
    const char *keys[10];
    const char *values[10];
    size_t n = 0;
    keys[n] = "fallback_application_name";
    values[n++] = CLI_PROG;
    const char *dsn = effective_dsn(c);
    if (dsn) {
        /* First dbname entry: libpq expands it as a connection string, and the
         * entries after it override what it sets. */
        keys[n] = "dbname";
        values[n++] = dsn;
    }
    kv ex[5];
    size_t n_ex = explicit_options(c, ex);
    for (size_t i = 0; i < n_ex; i++) {
        keys[n] = ex[i].key;
        values[n++] = ex[i].value;
    }
    keys[n] = NULL;
    values[n] = NULL;
    /* Without a DSN, a --pg-database value must stay a plain name. */
    PGconn *conn = PQconnectdbParams(keys, values, dsn ? 1 : 0);
    if (!conn) {
        fprintf(stderr, "%s: out of memory\n", CLI_PROG);
        return NULL;
    }
    if (PQstatus(conn) != CONNECTION_OK) {
        const char *msg = PQerrorMessage(conn);
        size_t len = strlen(msg);
        while (len > 0 && msg[len - 1] == '\n')
            len--;
        fprintf(stderr, "%s: could not connect to PostgreSQL: %.*s\n", CLI_PROG, (int)len,
                msg);
        PQfinish(conn);
        return NULL;
    }
    return conn;
}

/* Appends ` key='value'` with libpq's quoting (backslash before ' and \). */
static bool append_kv(char **buf, size_t *len, size_t *cap, const char *key,
                      const char *value)
{
    size_t need = *len + strlen(key) + 2 * strlen(value) + 8;
    if (need > *cap) {
        size_t ncap = *cap ? *cap : 256;
        while (ncap < need)
            ncap *= 2;
        char *nb = realloc(*buf, ncap);
        if (!nb)
            return false;
        *buf = nb;
        *cap = ncap;
    }
    char *p = *buf + *len;
    if (*len > 0)
        *p++ = ' ';
    size_t klen = strlen(key);
    memcpy(p, key, klen);
    p += klen;
    *p++ = '=';
    *p++ = '\'';
    for (const char *v = value; *v; v++) {
        if (*v == '\'' || *v == '\\')
            *p++ = '\\';
        *p++ = *v;
    }
    *p++ = '\'';
    *p = '\0';
    *len = (size_t)(p - *buf);
    return true;
}

static bool looks_like_conninfo(const char *s)
{
    return strchr(s, '=') || strncmp(s, "postgresql://", 13) == 0 ||
           strncmp(s, "postgres://", 11) == 0;
}

char *cli_conninfo(const cli_conn_opts *c)
{
    char *buf = NULL;
    size_t len = 0, cap = 0;
    bool ok = append_kv(&buf, &len, &cap, "fallback_application_name", CLI_PROG);
    const char *dsn = effective_dsn(c);
    if (ok && dsn && looks_like_conninfo(dsn)) {
        char *err = NULL;
        PQconninfoOption *opts = PQconninfoParse(dsn, &err);
        if (!opts) {
            fprintf(stderr, "%s: invalid DSN: %s", CLI_PROG,
                    err ? err : "out of memory\n");
            PQfreemem(err);
            free(buf);
            return NULL;
        }
        for (PQconninfoOption *o = opts; ok && o->keyword; o++)
            if (o->val && *o->val)
                ok = append_kv(&buf, &len, &cap, o->keyword, o->val);
        PQconninfoFree(opts);
    } else if (ok && dsn) {
        ok = append_kv(&buf, &len, &cap, "dbname", dsn); /* libpq's rule: a name */
    }
    kv ex[5];
    size_t n_ex = explicit_options(c, ex);
    /* Later keywords override earlier ones in a conninfo string. */
    for (size_t i = 0; ok && i < n_ex; i++)
        ok = append_kv(&buf, &len, &cap, ex[i].key, ex[i].value);
    if (!ok) {
        fprintf(stderr, "%s: out of memory\n", CLI_PROG);
        free(buf);
        return NULL;
    }
    return buf;
}
