/*
 * install_internal.h - what the install module's two files share: the names derived
 * from the options (install_script.c builds the install script from them;
 * install.c runs scripts and reads the catalogs for uninstall).
 */
#ifndef PGCW_INSTALL_INTERNAL_H
#define PGCW_INSTALL_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "core_util.h"
#include "pgcachewatch/install.h"
#include "sql_changelog.h"

/* The keyed triggers' suffixes, in the order of pgcw__install_names.keys_triggers. */
#define PGCW__N_KEYS_TRIGGERS 3

/* The options with defaults applied, and every name derived from them (raw, not
 * quoted). Derived names are folded to lower case, as PostgreSQL folds the Python
 * tool's unquoted names (install.h). */
typedef struct pgcw__install_names {
    const char *channel;
    const char *function_name;
    const char *trigger_prefix;
    bool with_keys;
    bool ddl;
    bool poll; /* source PGCW_WATCH_POLL: the channel has a change log */
    char function[PGCW_MAX_IDENTIFIER + 1];      /* <function_name>_<channel> */
    char keys_function[PGCW_MAX_IDENTIFIER + 1]; /* ... _keys */
    char trigger[PGCW_MAX_IDENTIFIER + 1];       /* <trigger_prefix><channel> */
    char keys_triggers[PGCW__N_KEYS_TRIGGERS][PGCW_MAX_IDENTIFIER + 1]; /* _ins... */
    char ddl_function[PGCW_MAX_IDENTIFIER + 1];    /* <function_name>_<channel>_ddl */
    char ddl_trigger_end[PGCW_MAX_IDENTIFIER + 1]; /* <trigger_prefix><channel>_ddl_end */
    char ddl_trigger_drop[PGCW_MAX_IDENTIFIER + 1]; /* ... _ddl_drop */
    /* The function names as earlier versions made them (not folded); uninstall
     * looks for these too. */
    char unfolded_function[PGCW_MAX_IDENTIFIER + 1];
    char unfolded_keys_function[PGCW_MAX_IDENTIFIER + 1];
    pgcw__changelog_names log; /* the change log's names (made whatever poll says) */
} pgcw__install_names;

/* Applies the defaults and checks the channel, function name and trigger prefix;
 * PGCW_EINVAL with the reason in errbuf. */
pgcw_status pgcw__install_resolve(const pgcw_install_opts *opts, pgcw__install_names *n,
                                  char *errbuf, size_t errlen);

/* The install script for the tables (pgcw_install_sql() on a handle's options). */
pgcw_status pgcw__install_script(const pgcw_install_opts *opts, const char *const *tables,
                                 size_t n_tables, char **sql_out, char *errbuf,
                                 size_t errlen);

/* A dollar-quote tag ("$pgcw$", "$pgcw_1$", ...) that does not occur in text, the
 * caller-provided text pasted inside a body it quotes. */
void pgcw__install_body_tag(const char *text, char tag[32]);

/* A possibly schema-qualified table name, quoted. Owned; NULL on OOM. */
char *pgcw__install_quote_table(const pgcw_qualified_name *t);

/* What install.c's runners share with install_logical.c. An idle connection:
 * PGCW_OK, else PGCW_EINVAL (NULL), PGCW_ECONNLOST or PGCW_ESTATE. */
pgcw_status pgcw__install_check_idle(struct pg_conn *conn, char *errbuf, size_t errlen);
/* Runs a BEGIN ... COMMIT script; rolls back whatever is left open on error. */
pgcw_status pgcw__install_run_script(struct pg_conn *conn, const char *sql, char *errbuf,
                                     size_t errlen);
/* Runs statements that must succeed (PGRES_COMMAND_OK). */
pgcw_status pgcw__install_exec(struct pg_conn *conn, const char *sql, char *errbuf,
                               size_t errlen);

/* install --source logical (install_logical.c): the script (publication, then
 * slot), running it, and uninstall (slot, then publication). */
pgcw_status pgcw__install_logical_script(const pgcw_install_opts *opts,
                                         const char *const *tables, size_t n_tables,
                                         char **sql_out, char *errbuf, size_t errlen);
pgcw_status pgcw__install_logical_run(struct pg_conn *conn, const pgcw_install_opts *opts,
                                      const char *const *tables, size_t n_tables,
                                      char **sql_out, char *errbuf, size_t errlen);
/* run false: the script only (pgcw_uninstall_sql); true: run it too. */
pgcw_status pgcw__uninstall_logical(struct pg_conn *conn, const pgcw_install_opts *opts,
                                    bool run, char **sql_out, char *errbuf,
                                    size_t errlen);

/* --- install_changelog.c: the change log (source PGCW_WATCH_POLL) ------------- */

/* Its functions: writer, reader, pruner, with their argument lists (for
 * signatures). */
#define PGCW__N_CHANGELOG_FUNCTIONS 3
extern const char *const pgcw__changelog_args[PGCW__N_CHANGELOG_FUNCTIONS];
const char *pgcw__install_changelog_function(const pgcw__install_names *n, size_t i);

/* Appends the change log's tables and functions; tag is the dollar-quote tag. */
pgcw_status pgcw__install_changelog(pgcw__buf *out, const pgcw__install_names *n,
                                    const char *tag);

/* Appends the DO block that sets the search_path of every function that names the
 * change log (its own and the notify functions) to find it where it was created. */
pgcw_status pgcw__install_changelog_path(pgcw__buf *out, const pgcw__install_names *n,
                                         const char *tag);

#endif
