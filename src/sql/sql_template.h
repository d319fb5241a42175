/*
 * sql_template.h - expanding the embedded templates of sql/.
 *
 * A template holds `{{name}}` placeholders (name: [a-z0-9_]+). Values must already
 * be quoted (pgcw_quote_ident / pgcw_quote_literal): expansion pastes them as they
 * are and never quotes, so it must never be handed raw user input.
 */
#ifndef PGCW_SQL_TEMPLATE_H
#define PGCW_SQL_TEMPLATE_H

#include <stddef.h>

#include "pgcachewatch/status.h"
#include "core_util.h"

typedef struct pgcw__sql_var {
    const char *name;  /* placeholder name, without braces */
    const char *value; /* already-quoted SQL text */
} pgcw__sql_var;

/*
 * Appends tmpl to out with every placeholder replaced by its value. A placeholder
 * missing from vars, or a malformed one (`{{` not closed by `}}`), is a
 * programming error: PGCW_EINVAL, and out holds a partial expansion. PGCW_ENOMEM if
 * out failed to grow.
 */
pgcw_status pgcw__sql_expand(pgcw__buf *out, const char *tmpl, const pgcw__sql_var *vars,
                             size_t n_vars);

/* The embedded templates (generated from the files in sql/ by cmake/embed_sql.cmake). */
extern const char pgcw__sql_notify_function[];
extern const char pgcw__sql_notify_keys_function[];
extern const char pgcw__sql_table_triggers[];
extern const char pgcw__sql_keys_triggers[];
extern const char pgcw__sql_drop_trigger_if_exists[];
extern const char pgcw__sql_uninstall_objects[];
extern const char pgcw__sql_ddl_superuser_check[];
extern const char pgcw__sql_ddl_function[];
extern const char pgcw__sql_ddl_event_triggers[];
extern const char pgcw__sql_logical_publication[];
extern const char pgcw__sql_logical_slot[];
extern const char pgcw__sql_logical_uninstall_objects[];

extern const char pgcw__sql_changelog_tables[];
extern const char pgcw__sql_changelog_functions[];
extern const char pgcw__sql_changelog_search_path[];
extern const char pgcw__sql_cache_migration_1[];
extern const char pgcw__sql_cache_migration_2[];
extern const char pgcw__sql_cache_migration_3[];
extern const char pgcw__sql_cache_migration_4[];
extern const char pgcw__sql_cache_migration_5[];

#endif
