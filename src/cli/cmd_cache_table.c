/*
 * cmd_cache_table.c - a prefix's cache table as plain SQL sees it, for `cache
 * stats` and `cache init`: where it is, its schema version, durability and
 * channel, and (for stats) what its rows hold.
 *
 * The library's statistics (pgcw_cache_stats) count one process's calls; these are
 * the table's, whoever wrote it. Read-only: must never write to the database. Names
 * are built from the prefix as the library builds them (folded to lower case, as
 * postgres-cache's unquoted names are) and always quoted.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pgcachewatch/pgcachewatch.h>

#include "cli.h"

/* <prefix><suffix>, the prefix folded to lower case. */
static void object_name(const char *prefix, const char *suffix, char *out, size_t len)
{
    size_t n = 0;
    for (; prefix[n] && n + 1 < len; n++)
        out[n] = prefix[n] >= 'A' && prefix[n] <= 'Z' ? (char)(prefix[n] - 'A' + 'a')
                                                      : prefix[n];
    snprintf(out + n, len - n, "%s", suffix);
}

static int sql_error(const char *cmd, PGconn *pg, int err_code, const char *what,
                     PGresult *r)
{
    const char *primary = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    char msg[2048];
    snprintf(msg, sizeof msg, "%s", primary ? primary : PQerrorMessage(pg));
    size_t n = strlen(msg);
    while (n > 0 && msg[n - 1] == '\n')
        msg[--n] = '\0';
    fprintf(stderr, "%s: %s: %s%s%s%s\n", cmd, what, msg, state ? " (SQLSTATE " : "",
            state ? state : "", state ? ")" : "");
    PQclear(r);
    return err_code;
}

static long long int_at(PGresult *r, int col)
{
    return PQgetisnull(r, 0, col) ? 0 : strtoll(PQgetvalue(r, 0, col), NULL, 10);
}

/* One row of a query whose parameters are text; NULL after printing the error. */
static PGresult *one_row(const char *cmd, PGconn *pg, const char *what, const char *sql,
                         int n, const char *const *params, int err_code, int *rc)
{
    PGresult *r = PQexecParams(pg, sql, n, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        *rc = sql_error(cmd, pg, err_code, what, r);
        return NULL;
    }
    return r;
}

/* The rows, by expiry: live, tombstones (delete's '-infinity'), other expired. */
static int count_rows(const char *cmd, PGconn *pg, int err_code, cli_cache_table *t)
{
    char *schema = pgcw_quote_ident(t->schema), *name = pgcw_quote_ident(t->name);
    char *sql = NULL;
    int rc = -1;
    if (schema && name) {
#define COUNTS                                                                           \
    "SELECT count(*),"                                                                   \
    " count(*) FILTER (WHERE expires_at IS NULL OR expires_at > now()),"                 \
    " count(*) FILTER (WHERE expires_at = '-infinity'),"                                 \
    " count(*) FILTER (WHERE expires_at <= now() AND expires_at <> '-infinity'),"        \
    " coalesce(sum(octet_length(value)), 0) FROM %s.%s"
        size_t len = sizeof COUNTS + strlen(schema) + strlen(name);
        sql = malloc(len);
        if (sql)
            snprintf(sql, len, COUNTS, schema, name);
#undef COUNTS
    }
    if (!sql) {
        rc = cli_runtime_error(cmd, "out of memory");
    } else {
        PGresult *r = one_row(cmd, pg, "counting the rows", sql, 0, NULL, err_code, &rc);
        if (r) {
            t->rows = int_at(r, 0);
            t->live = int_at(r, 1);
            t->tombstones = int_at(r, 2);
            t->expired = int_at(r, 3);
            t->value_bytes = int_at(r, 4);
            PQclear(r);
        }
    }
    free(sql);
    pgcw_free(schema);
    pgcw_free(name);
    return rc;
}

int cli_cache_table_read(const char *cmd, PGconn *pg, const char *prefix, bool count,
                         int err_code, cli_cache_table *t)
{
    memset(t, 0, sizeof *t);
    char entries[128], versions[128], trigger[128];
    object_name(prefix, "cache_entries", entries, sizeof entries);
    object_name(prefix, "cache_schema", versions, sizeof versions);
    object_name(prefix, "cache_broadcast_change_trigger", trigger, sizeof trigger);
    /* to_regclass wants a name as SQL text: quoted, so nothing in it is folded. */
    char *qentries = pgcw_quote_ident(entries), *qversions = pgcw_quote_ident(versions);
    if (!qentries || !qversions) {
        pgcw_free(qentries);
        pgcw_free(qversions);
        return cli_runtime_error(cmd, "out of memory");
    }
    const char *params[3] = {qentries, trigger, qversions};
    int rc = -1;
    PGresult *r = one_row(cmd, pg, "reading the catalogs",
                          "SELECT n.nspname, c.relname, c.relpersistence <> 'u',"
                          " (SELECT convert_from(substring(t.tgargs FROM 1 FOR"
                          "   position(decode('00', 'hex') IN t.tgargs) - 1), 'UTF8')"
                          "  FROM pg_trigger t WHERE t.tgrelid = c.oid AND t.tgname = $2"
                          "  AND t.tgnargs > 0),"
                          " to_regclass($3) IS NOT NULL, pg_total_relation_size(c.oid)"
                          " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                          " WHERE c.oid = to_regclass($1)",
                          3, params, err_code, &rc);
    pgcw_free(qentries);
    if (r && PQntuples(r) == 0) {
        fprintf(stderr,
                "%s: no cache table %s in the search_path; create it with '" CLI_PROG
                " cache init%s%s'\n",
                cmd, entries, *prefix ? " --schema-prefix " : "", prefix);
        PQclear(r);
        r = NULL;
        rc = err_code;
    }
    bool has_versions = false;
    if (r) {
        snprintf(t->schema, sizeof t->schema, "%s", PQgetvalue(r, 0, 0));
        snprintf(t->name, sizeof t->name, "%s", PQgetvalue(r, 0, 1));
        t->logged = strcmp(PQgetvalue(r, 0, 2), "t") == 0;
        snprintf(t->channel, sizeof t->channel, "%s", PQgetvalue(r, 0, 3));
        has_versions = strcmp(PQgetvalue(r, 0, 4), "t") == 0;
        t->total_bytes = int_at(r, 5);
        PQclear(r);
    }
    if (rc < 0 && has_versions) {
        char sql[256];
        snprintf(sql, sizeof sql, "SELECT version FROM %s WHERE id = 1", qversions);
        r = one_row(cmd, pg, "reading the schema version", sql, 0, NULL, err_code, &rc);
        if (r) {
            t->version = PQntuples(r) ? (int)int_at(r, 0) : 0;
            PQclear(r);
        }
    }
    pgcw_free(qversions);
    if (rc < 0 && count)
        rc = count_rows(cmd, pg, err_code, t);
    return rc;
}

/* A JSON string: quotes, backslashes and control bytes escaped; other bytes as
 * they are (names come from the catalogs, which are valid in the server's
 * encoding). */
static void json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

void cli_cache_table_print(FILE *f, const cli_cache_table *t, bool json)
{
    const char *durability = t->logged ? "logged" : "unlogged";
    const struct {
        const char *key, *label;
        long long value;
    } counts[] = {
        {"rows", "rows", t->rows},
        {"live", "  live", t->live},
        {"expired", "  expired", t->expired},
        {"tombstones", "  tombstones", t->tombstones},
        {"value_bytes", "value bytes", t->value_bytes},
        {"total_bytes", "total bytes", t->total_bytes},
    };
    size_t n = sizeof counts / sizeof counts[0];
    if (json) {
        fputs("{\"schema\":", f);
        json_string(f, t->schema);
        fputs(",\"table\":", f);
        json_string(f, t->name);
        fprintf(f, ",\"schema_version\":%d,\"durability\":\"%s\",\"notify_channel\":",
                t->version, durability);
        if (t->channel[0])
            json_string(f, t->channel);
        else
            fputs("null", f);
        for (size_t i = 0; i < n; i++)
            fprintf(f, ",\"%s\":%lld", counts[i].key, counts[i].value);
        fputs("}\n", f);
        return;
    }
    fprintf(f, "%-16s%s.%s\n", "table", t->schema, t->name);
    fprintf(f, "%-16s%d\n", "schema version", t->version);
    fprintf(f, "%-16s%s\n", "durability", durability);
    fprintf(f, "%-16s%s\n", "notify channel",
            t->channel[0] ? t->channel : "(none: the trigger is missing)");
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%-16s%lld\n", counts[i].label, counts[i].value);
}
