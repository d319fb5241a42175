/*
 * pgcachewatch/install.h - the SQL we install: notify function and triggers.
 *
 * `pgcachewatch install TABLE...` puts statement-level AFTER triggers on each table
 * that pg_notify() a JSON payload (see event.h) on one channel. The names are the
 * Python pgcachewatch ones, so either tool can uninstall the other's objects:
 *
 *   function  <function_name>_<channel>()          table-level payloads
 *   function  <function_name>_<channel>_keys()     payloads with primary keys
 *   trigger   <trigger_prefix><table>              INSERT/UPDATE/DELETE/TRUNCATE, or
 *                                                  only TRUNCATE with keys
 *   triggers  <trigger_prefix><table>_ins/_upd/_del with keys (transition tables)
 *
 * A derived name longer than PostgreSQL's 63 bytes is not truncated the way
 * PostgreSQL would (silently, so that two long table names could collide): it keeps
 * its first bytes, then "_" and 8 hex digits of a hash of the full name, then its
 * suffix, exactly 63 bytes, the same on every install. Uninstall finds triggers by
 * the function they call, so their names never matter to it.
 *
 * Trigger names do not include the channel: installing another channel on the same
 * table with the same trigger_prefix replaces the first channel's triggers (as the
 * Python tool does); give the second channel its own trigger_prefix instead.
 *
 * Functions are created unqualified, i.e. in the first schema of search_path, as
 * the Python tool does. Every identifier and literal in the generated SQL is quoted;
 * a name that is not a valid (optionally schema-qualified, optionally double-quoted)
 * identifier is refused with PGCW_EINVAL before any SQL is produced.
 */
#ifndef PGCACHEWATCH_INSTALL_H
#define PGCACHEWATCH_INSTALL_H

#include <stdbool.h>
#include <stddef.h>

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* libpq's connection (PGconn), declared here so this header needs no libpq-fe.h. */
struct pg_conn;

#define PGCW_DEFAULT_CHANNEL "ch_pgcachewatch_table_change"
#define PGCW_DEFAULT_FUNCTION_NAME "fn_pgcachewatch_table_change"
#define PGCW_DEFAULT_TRIGGER_PREFIX "tg_pgcachewatch_table_change_"

/* PostgreSQL's limits: a NOTIFY payload must be shorter than 8000 bytes, and an
 * identifier is at most 63 bytes. */
#define PGCW_MAX_PAYLOAD 7999
#define PGCW_MAX_IDENTIFIER 63

/* Zeroed means all defaults. Strings are borrowed for the duration of the call. */
typedef struct pgcw_install_opts {
    const char *channel;        /* NULL: PGCW_DEFAULT_CHANNEL */
    const char *function_name;  /* NULL: PGCW_DEFAULT_FUNCTION_NAME */
    const char *trigger_prefix; /* NULL: PGCW_DEFAULT_TRIGGER_PREFIX */
    bool with_keys;             /* add primary-key values to payloads */
} pgcw_install_opts;

/*
 * One parsed table name. Parses `orders`, `sales.orders`, `"Order Items"`,
 * `sales."Order Items"` with PostgreSQL's rules (unquoted parts are folded to lower
 * case and may hold letters, digits, _ and $; quoted parts may hold anything but
 * NUL, with "" for a quote). schema is "" when not given.
 * Returns PGCW_OK or PGCW_EINVAL (errbuf, if not NULL, says why).
 */
typedef struct pgcw_qualified_name {
    char schema[PGCW_MAX_IDENTIFIER + 1];
    char name[PGCW_MAX_IDENTIFIER + 1];
} pgcw_qualified_name;

pgcw_status pgcw_parse_qualified_name(const char *text, pgcw_qualified_name *out,
                                      char *errbuf, size_t errlen);

/* Quotes an identifier the way quote_ident(..) does for any input: always
 * double-quoted, inner quotes doubled. Owned: free with pgcw_free(). NULL on OOM. */
char *pgcw_quote_ident(const char *ident);

/* Quotes a string literal ('...' with '' doubled, E'' never needed since we never
 * emit backslashes unescaped: standard_conforming_strings is assumed on, as it is
 * by default since PostgreSQL 9.1). Owned: free with pgcw_free(). */
char *pgcw_quote_literal(const char *text);

/*
 * Generates the install script for tables[0..n_tables-1] as one string, wrapped in
 * BEGIN/COMMIT. No connection is needed. On success *sql_out is owned: free with
 * pgcw_free(). On PGCW_EINVAL, errbuf (if not NULL) names the bad input.
 */
pgcw_status pgcw_install_sql(const pgcw_install_opts *opts, const char *const *tables,
                             size_t n_tables, char **sql_out, char *errbuf,
                             size_t errlen);

/*
 * Installs on a live connection (borrowed; must be idle, not in a transaction) in
 * one transaction: either everything is created or nothing is. On PGCW_EQUERY the
 * transaction was rolled back and errbuf holds PostgreSQL's message, with its
 * SQLSTATE. If sql_out is not NULL it receives the script that was run (owned).
 */
pgcw_status pgcw_install(struct pg_conn *conn, const pgcw_install_opts *opts,
                         const char *const *tables, size_t n_tables, char **sql_out,
                         char *errbuf, size_t errlen);

/*
 * Builds the uninstall script for opts->channel by reading the catalogs over conn
 * (borrowed): DROP TRIGGER for every trigger that calls one of this channel's
 * functions, on any table, then DROP FUNCTION for those functions. Nothing else is
 * touched. *sql_out is owned: free with pgcw_free(); it is "" when nothing is
 * installed. Does not change anything.
 */
pgcw_status pgcw_uninstall_sql(struct pg_conn *conn, const pgcw_install_opts *opts,
                               char **sql_out, char *errbuf, size_t errlen);

/* Runs pgcw_uninstall_sql()'s script in one transaction. *sql_out as above,
 * optional. */
pgcw_status pgcw_uninstall(struct pg_conn *conn, const pgcw_install_opts *opts,
                           char **sql_out, char *errbuf, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif
