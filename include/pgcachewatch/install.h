/*
 * pgcachewatch/install.h - the SQL we install: notify function and triggers.
 *
 * `pgcachewatch install TABLE...` puts statement-level AFTER triggers on each table
 * that pg_notify() a JSON payload (see event.h) on one channel. The names are the
 * Python pgcachewatch ones (0.4 and later), the same on every table:
 *
 *   function  <function_name>_<channel>()          table-level payloads
 *   function  <function_name>_<channel>_keys()     payloads with primary keys
 *   trigger   <trigger_prefix><channel>            INSERT/UPDATE/DELETE/TRUNCATE, or
 *                                                  only TRUNCATE with keys
 *   triggers  <trigger_prefix><channel>_ins/_upd/_del  with keys (transition tables)
 *
 * ASCII capitals in these names are folded to lower case: the Python tool pastes
 * its names unquoted, so PostgreSQL folds them, and ours are then its objects. (The
 * channel itself keeps its capitals: pg_notify() takes it as a string.) So channels
 * that differ only in ASCII case share their functions and triggers. Without keys,
 * the Python uninstall removes everything we install (README.md says when it
 * cannot); with keys it removes nothing, since information_schema.triggers, where
 * it looks, lists no TRUNCATE-only trigger.
 *
 * A derived name longer than PostgreSQL's 63 bytes is not truncated the way
 * PostgreSQL would (silently, so that two long channel names could collide): it
 * keeps its first bytes, then "_" and 8 hex digits of a hash of the full name, then
 * its suffix, exactly 63 bytes, the same on every install; such names are not the
 * Python tool's. Uninstall finds triggers by the function they call, so their
 * names never matter to it; it also finds the unfolded function names that earlier
 * versions created.
 *
 * DDL events (opts.ddl, `pgcachewatch install --ddl`): instead of table triggers,
 * the handle installs and uninstalls
 *
 *   function       <function_name>_<channel>_ddl()   RETURNS event_trigger
 *   event triggers <trigger_prefix><channel>_ddl_end  ON ddl_command_end
 *                  <trigger_prefix><channel>_ddl_drop ON sql_drop
 *
 * which notify one schema-change payload (event.h, PGCW_EVENT_SCHEMA) on the same
 * channel per object a command created, altered or dropped, read from
 * pg_event_trigger_ddl_commands() and pg_event_trigger_dropped_objects(). Event
 * triggers fire in every schema of the database. Only a superuser may create
 * them: the script checks pg_roles.rolsuper first and fails with SQLSTATE 42501
 * and a message that says so, having created nothing. With ddl, tables must be
 * empty (PGCW_EINVAL otherwise). Uninstall with ddl drops exactly the event
 * triggers that call that function, and the function; uninstall without it leaves
 * them in place, so the two are removed independently. Payloads stay under
 * PGCW_MAX_PAYLOAD bytes: a long object identity is cut short (at a character
 * boundary) and the payload says "identity_truncated":true.
 *
 * Logical decoding (opts.source = PGCW_WATCH_LOGICAL, `pgcachewatch install
 * --source logical`): instead of triggers, the handle installs and uninstalls
 *
 *   publication  opts.publication or "pgcachewatch_<channel>_pub", FOR TABLE the
 *                given tables (at least one; a reinstall sets its tables to
 *                exactly these, keeping the publication)
 *   slot         opts.slot_name or "pgcachewatch_<channel>", a logical replication
 *                slot made with pg_create_logical_replication_slot(slot,
 *                'pgoutput'); a reinstall keeps an existing pgoutput slot of this
 *                database (and the changes it holds); a slot of that name that is
 *                not one is PGCW_EQUERY (SQLSTATE 42710)
 *
 * ASCII capitals in both names are folded to lower case. A slot name may hold only
 * a-z, 0-9 and _ (PostgreSQL's rule): a derived one has every other byte of the
 * channel replaced by _, a given one that breaks the rule is PGCW_EINVAL. Names
 * longer than 63 bytes are derived as above (head, hash, suffix). The server needs
 * wal_level = logical and a free replication slot, and the role needs the
 * REPLICATION attribute (or superuser) and the right to create a publication
 * (CREATE on the database, ownership of the tables). The publication is created
 * first, in one transaction, then the slot (a logical slot cannot be made in a
 * transaction that has written, and must not start before its publication
 * exists); if the slot cannot be made, a publication this run created is dropped
 * again. The script pgcw_install_sql() prints is exactly these two steps.
 *
 * Once a table is in a publication, PostgreSQL refuses UPDATE and DELETE on it
 * unless it has a replica identity: a primary key (the default identity), or one
 * set with ALTER TABLE ... REPLICA IDENTITY USING INDEX / FULL. Such statements
 * fail with SQLSTATE 55000 ("cannot update table ... because it does not have a
 * replica identity and publishes updates") until then; inserts are unaffected.
 * Events carry the replica identity's values as their keys (event.h): with FULL,
 * every column.
 *
 * Uninstall with PGCW_WATCH_LOGICAL drops the slot, then the publication. A slot
 * that a process is using (a running logical watcher) cannot be dropped: the call
 * fails with PostgreSQL's message ('replication slot "..." is active for PID n',
 * SQLSTATE 55006) and drops nothing; pgcw_uninstall_sql() notes the pid. opts.ddl
 * with PGCW_WATCH_LOGICAL is PGCW_EINVAL; with_keys is ignored (the keys always
 * come).
 *
 * The change log (opts.source PGCW_WATCH_POLL; docs/source_poll.md): the install
 * also creates, for the polling source (watcher.h),
 *
 *   table     <function_name>_<channel>_log         xid xid8 (the writer's
 *             pg_current_xact_id()), seq (identity), created_at (now()),
 *             channel, payload; primary key (xid, seq); LOGGED
 *   table     <function_name>_<channel>_log_pruned  one row: the highest
 *             (xid, seq) pruning removed, and how many rows
 *   function  <function_name>_<channel>_log_write(text, text)  what the notify
 *             functions call instead of pg_notify(): one row, then pg_notify()
 *             unless the writing session set pgcachewatch.notify = off
 *   function  <function_name>_<channel>_log_read(xid8, bigint, integer,
 *             pg_snapshot)                          one poll (the watcher's)
 *   function  <function_name>_<channel>_log_prune(bigint)  removes rows older
 *             than that many ms; returns how many (the watcher calls it; any
 *             session may)
 *
 * named and folded like the other objects. They and the notify functions get
 * search_path = pg_catalog, <the schema they were created in>, pg_temp. With
 * source PGCW_WATCH_POLL, ddl is PGCW_EINVAL (DDL events are notified only).
 * Uninstall (without ddl) drops the change log with the triggers, whatever the
 * source. A later install with PGCW_WATCH_LISTEN makes the notify functions
 * notify only again and leaves the change log (uninstall removes it).
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

/* Zeroed means all defaults. Strings are borrowed for the duration of
 * pgcw_install_new() (they are copied). Grows at the end only (docs/abi.md). */
typedef struct pgcw_install_opts {
    const char *channel;        /* NULL: PGCW_DEFAULT_CHANNEL */
    const char *function_name;  /* NULL: PGCW_DEFAULT_FUNCTION_NAME */
    const char *trigger_prefix; /* NULL: PGCW_DEFAULT_TRIGGER_PREFIX */
    bool with_keys;             /* add primary-key values to payloads */
    /* --- since 0.3 ------------------------------------------------------------ */
    bool ddl; /* work on the DDL event triggers instead (top of file) */
    /* --- since 0.4 ------------------------------------------------------------ */
    /* Which source the install prepares for. PGCW_WATCH_LISTEN (0): the triggers
     * above. Other values are described where they are supported. */
    pgcw_watch_source source;
    const char *slot_name;   /* logical decoding: NULL: derived from the channel */
    const char *publication; /* logical decoding: NULL: derived from the channel */
} pgcw_install_opts;

/*
 * One parsed table name. Parses `orders`, `sales.orders`, `"Order Items"`,
 * `sales."Order Items"` with PostgreSQL's rules (unquoted parts are folded to lower
 * case and may hold letters, digits, _ and $; quoted parts may hold anything but
 * NUL, with "" for a quote). schema is "" when not given. *out is untouched on
 * error. Returns PGCW_OK or PGCW_EINVAL (pgcw_install_sql() says why for a table
 * it is given). Thread-safe.
 */
typedef struct pgcw_qualified_name {
    char schema[PGCW_MAX_IDENTIFIER + 1];
    char name[PGCW_MAX_IDENTIFIER + 1];
} pgcw_qualified_name;

pgcw_status pgcw_parse_qualified_name(const char *text, pgcw_qualified_name *out);

/* Quotes an identifier the way quote_ident(..) does for any input: always
 * double-quoted, inner quotes doubled. Owned: free with pgcw_free(). NULL on OOM. */
char *pgcw_quote_ident(const char *ident);

/* Quotes a string literal ('...' with '' doubled, E'' never needed since we never
 * emit backslashes unescaped: standard_conforming_strings is assumed on, as it is
 * by default since PostgreSQL 9.1). Owned: free with pgcw_free(). */
char *pgcw_quote_literal(const char *text);

/*
 * An install handle: the options of one channel, the scripts that install and
 * uninstall it, and the detail of the last error. Use it from one thread at a
 * time.
 */
typedef struct pgcw_install pgcw_install;

/* Creates a handle with a copy of the options. Never fails on bad names (the calls
 * below report them, with the reason in pgcw_install_errmsg()). opts NULL means
 * zeroed. *out is owned: free with pgcw_install_free(). Returns PGCW_OK,
 * PGCW_EINVAL (out NULL; options from a newer header that set a field this
 * library does not know) or PGCW_ENOMEM. */
pgcw_status pgcw_install_new_sized(const pgcw_install_opts *opts, size_t opts_size,
                                   pgcw_install **out);
#define pgcw_install_new(opts, out)                                                      \
    pgcw_install_new_sized((opts), sizeof(pgcw_install_opts), (out))

/* Frees the handle. NULL is fine. */
void pgcw_install_free(pgcw_install *in);

/* The last failed call's detail (which name is bad and why; PostgreSQL's message
 * with its SQLSTATE), "" after a success. Borrowed: valid until the next call on
 * in. */
const char *pgcw_install_errmsg(const pgcw_install *in);

/*
 * Generates the install script for tables[0..n_tables-1] as one string, wrapped in
 * BEGIN/COMMIT. No connection is needed. On success *sql_out is owned: free with
 * pgcw_free(). Returns PGCW_OK, PGCW_EINVAL (a bad name: the channel, function name,
 * trigger prefix or a table) or PGCW_ENOMEM.
 */
pgcw_status pgcw_install_sql(pgcw_install *in, const char *const *tables, size_t n_tables,
                             char **sql_out);

/*
 * Installs on a live connection (borrowed: yours, or pgcw_conn_pg(); it must be
 * idle, not in a transaction) in one transaction: either everything is created or
 * nothing is. Returns PGCW_OK, PGCW_EINVAL (as above: nothing was sent),
 * PGCW_ESTATE (the connection is busy or in a transaction), PGCW_ECONNLOST,
 * PGCW_EQUERY (rolled back; PostgreSQL's message and SQLSTATE in
 * pgcw_install_errmsg()) or PGCW_ENOMEM. If sql_out is not NULL it receives the
 * script that was run (owned), also on PGCW_EQUERY.
 */
pgcw_status pgcw_install_run(pgcw_install *in, struct pg_conn *conn,
                             const char *const *tables, size_t n_tables, char **sql_out);

/*
 * Builds the uninstall script of the handle's channel by reading the catalogs over
 * conn (borrowed): DROP TRIGGER for every trigger that calls one of this channel's
 * functions, on any table, then DROP FUNCTION for those functions. Nothing else is
 * touched. *sql_out is owned: free with pgcw_free(); it is "" when nothing is
 * installed. Does not change anything. Errors as pgcw_install_run().
 */
pgcw_status pgcw_uninstall_sql(pgcw_install *in, struct pg_conn *conn, char **sql_out);

/* Runs pgcw_uninstall_sql()'s script: the catalogs are read and the objects
 * dropped in one transaction. *sql_out as above, optional. */
pgcw_status pgcw_uninstall_run(pgcw_install *in, struct pg_conn *conn, char **sql_out);

#ifdef __cplusplus
}
#endif

#endif
