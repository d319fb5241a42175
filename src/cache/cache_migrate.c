/*
 * cache_migrate.c - pgcw_cache_init_db(): bring a prefix's schema to
 * PGCW_CACHE_SCHEMA_VERSION on a connection of its own.
 *
 * The version lives in <prefix>cache_schema (id 1), as postgres-cache keeps it.
 * Every migration runs in one transaction that re-reads the version with FOR
 * UPDATE, and the whole run holds a session advisory lock derived from the prefix,
 * so any number of processes may run init_db at once: the first applies, the
 * others wait and then find nothing to do. Must never apply a migration twice or
 * leave one half-applied.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <string.h>

#include "cache_internal.h"
#include "core_abi.h"
#include "core_time.h"
#include "core_util.h"
#include "sql_template.h"

typedef struct migration {
    int version;
    const char *tmpl;
} migration;

static const migration k_migrations[] = {
    {1, pgcw__sql_cache_migration_1}, {2, pgcw__sql_cache_migration_2},
    {3, pgcw__sql_cache_migration_3}, {4, pgcw__sql_cache_migration_4},
    {5, pgcw__sql_cache_migration_5},
};

typedef struct run {
    PGconn *pg;
    char err[1024];
} run;

/* Runs sql; PGCW_OK or PGCW_EQUERY/ECONNLOST with "what: message" in r->err. On
 * success with a tuple result, *out (if not NULL) is the first column of row 0 as
 * an int (0 when NULL or no row). */
static pgcw_status exec(run *r, const char *what, const char *sql, int *out)
{
    PGresult *res = PQexec(r->pg, sql);
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        char msg[900];
        pgcw__result_message(res, r->pg, msg, sizeof msg);
        pgcw__errf(r->err, sizeof r->err, "%s: %s", what, msg);
        bool broken = false;
        pgcw_status status = pgcw__result_status(res, r->pg, &broken);
        PQclear(res);
        return status;
    }
    if (out) {
        *out = 0;
        if (st == PGRES_TUPLES_OK && PQntuples(res) > 0 && !PQgetisnull(res, 0, 0))
            *out = atoi(PQgetvalue(res, 0, 0));
    }
    PQclear(res);
    return PGCW_OK;
}

static pgcw_status expand(const pgcw__cache_cfg *cfg, const pgcw__cache_names *n,
                          const char *tmpl, char **out)
{
    const pgcw__sql_var vars[] = {
        {"entries_table", n->entries_table},
        {"expires_index", n->expires_index},
        {"set_updated_function", n->set_updated_function},
        {"set_updated_trigger", n->set_updated_trigger},
        {"broadcast_function", n->broadcast_function},
        {"broadcast_trigger", n->broadcast_trigger},
        {"cleanup_function", n->cleanup_function},
        {"schema_table", n->schema_table},
        {"notify_channel_literal", n->notify_channel_literal},
        {"durability", cfg->durability == PGCW_CACHE_LOGGED ? "" : "UNLOGGED"},
    };
    pgcw__buf b = {0};
    pgcw_status st = pgcw__sql_expand(&b, tmpl, vars, sizeof vars / sizeof vars[0]);
    if (st != PGCW_OK) {
        pgcw__buf_free(&b);
        return st;
    }
    *out = pgcw__buf_take(&b);
    return *out ? PGCW_OK : PGCW_ENOMEM;
}

/* Applies migration m unless the version (re-read under a row lock) is already
 * there. */
static pgcw_status apply(run *r, const pgcw__cache_cfg *cfg, const pgcw__cache_names *n,
                         const migration *m)
{
    char *body = NULL;
    pgcw_status st = expand(cfg, n, m->tmpl, &body);
    if (st != PGCW_OK) {
        pgcw__errf(r->err, sizeof r->err, "expanding migration %d failed", m->version);
        return st;
    }
    char sql[512], what[64];
    pgcw__errf(what, sizeof what, "migration %d", m->version);
    int current = 0;
    st = exec(r, what, "BEGIN", NULL);
    if (st == PGCW_OK) {
        pgcw__errf(sql, sizeof sql, "SELECT version FROM %s WHERE id = 1 FOR UPDATE",
                   n->schema_table);
        st = exec(r, what, sql, &current);
    }
    if (st == PGCW_OK && current < m->version) {
        st = exec(r, what, body, NULL);
        if (st == PGCW_OK) {
            pgcw__errf(sql, sizeof sql, "UPDATE %s SET version = %d WHERE id = 1",
                       n->schema_table, m->version);
            st = exec(r, what, sql, NULL);
        }
    }
    free(body);
    if (st == PGCW_OK)
        return exec(r, what, "COMMIT", NULL);
    PQclear(PQexec(r->pg, "ROLLBACK"));
    return st;
}

static pgcw_status migrate(run *r, const pgcw__cache_cfg *cfg, const pgcw__cache_names *n,
                           int *version)
{
    char sql[1024];
    /* One lock per prefix: init_db runs of other prefixes need not wait. */
    char lockname[128];
    pgcw__errf(lockname, sizeof lockname, "pgcachewatch.cache.init_db:%s", cfg->prefix);
    pgcw__errf(sql, sizeof sql, "SET lock_timeout = 0; SELECT pg_advisory_lock(%lld)",
               (long long)pgcw__cache_hash(lockname, strlen(lockname)));
    pgcw_status st = exec(r, "taking the init_db lock", sql, NULL);
    if (st != PGCW_OK)
        return st;
    pgcw__errf(sql, sizeof sql,
               "CREATE TABLE IF NOT EXISTS %s (id integer PRIMARY KEY CHECK (id = 1),"
               " version integer NOT NULL);"
               " INSERT INTO %s (id, version) VALUES (1, 0) ON CONFLICT (id) DO NOTHING",
               n->schema_table, n->schema_table);
    st = exec(r, "creating the schema-version table", sql, NULL);
    for (size_t i = 0; st == PGCW_OK && i < sizeof k_migrations / sizeof k_migrations[0];
         i++)
        st = apply(r, cfg, n, &k_migrations[i]);
    if (st == PGCW_OK && cfg->notify_mode == PGCW_CACHE_NOTIFY_LOGICAL) {
        char *pub = pgcw__cache_logical_init_sql(cfg, n);
        st = pub ? exec(r, "preparing notify_mode LOGICAL", pub, NULL) : PGCW_ENOMEM;
        free(pub);
    }
    if (st == PGCW_OK) {
        pgcw__errf(sql, sizeof sql, "SELECT version FROM %s WHERE id = 1",
                   n->schema_table);
        st = exec(r, "reading the schema version", sql, version);
    }
    return st;
}

pgcw_status pgcw_cache_init_db_sized(const pgcw_cache_opts *opts, size_t opts_size,
                                     const pgcw_conn_opts *conn, size_t conn_size,
                                     int *version, char **errmsg)
{
    if (errmsg)
        *errmsg = NULL;
    pgcw_cache_opts o;
    pgcw_conn_opts co;
    char why[512] = "";
    pgcw_status st = pgcw__opts_copy(&o, sizeof o, opts, opts_size);
    if (st == PGCW_OK)
        st = pgcw__opts_copy(&co, sizeof co, conn, conn_size);
    if (st != PGCW_OK) {
        if (errmsg)
            *errmsg = pgcw__strdup("options from a newer header set a field this "
                                   "library does not know");
        return st;
    }
    pgcw__cache_cfg cfg;
    st = pgcw__cache_cfg_init(&cfg, &o, why, sizeof why);
    if (st != PGCW_OK) {
        if (errmsg)
            *errmsg = pgcw__strdup(why);
        return st;
    }
    pgcw__cache_names names;
    pgcw__conn_params params = {0};
    pgcw__conn c = {0};
    run r = {0};
    int v = 0;
    st = pgcw__cache_names_init(&names, &cfg);
    if (st != PGCW_OK)
        return st;
    st = pgcw__conn_params_init(&params, &co);
    if (st == PGCW_OK) {
        st = pgcw__conn_connect(&c, &params, NULL, NULL);
        if (st != PGCW_OK)
            pgcw__errf(r.err, sizeof r.err, "%s", c.err);
    }
    if (st == PGCW_OK) {
        r.pg = c.pg;
        st = migrate(&r, &cfg, &names, &v);
        pgcw__scrub_password(r.err, sizeof r.err, params.password);
    }
    pgcw__conn_close(&c);
    pgcw__conn_params_free(&params);
    pgcw__cache_names_free(&names);
    if (version)
        *version = v;
    if (st != PGCW_OK && errmsg)
        *errmsg = pgcw__strdup(r.err[0] ? r.err : pgcw_strerror(st));
    return st;
}
