/*
 * sql_changelog.h - the names of a channel's change log (docs/source_poll.md), for
 * the install module that creates it and the poll source that reads it, so the two
 * can never disagree on a name.
 */
#ifndef PGCW_SQL_CHANGELOG_H
#define PGCW_SQL_CHANGELOG_H

#include "pgcachewatch/install.h"

/* Raw (unquoted) names, derived and folded as install.h's naming rules say. */
typedef struct pgcw__changelog_names {
    char table[PGCW_MAX_IDENTIFIER + 1];          /* <function_name>_<channel>_log */
    char pruned_table[PGCW_MAX_IDENTIFIER + 1];   /* ..._log_pruned (one row) */
    char write_function[PGCW_MAX_IDENTIFIER + 1]; /* ..._log_write(text, text) */
    char read_function[PGCW_MAX_IDENTIFIER +
                       1]; /* ..._log_read(xid8, bigint, int, snapshot) */
    char prune_function[PGCW_MAX_IDENTIFIER + 1]; /* ..._log_prune(bigint) */
} pgcw__changelog_names;

/* Derives the names for a channel (1..63 bytes) and a function name (1..63 bytes;
 * NULL: PGCW_DEFAULT_FUNCTION_NAME). Never fails. */
void pgcw__changelog_names_derive(const char *function_name, const char *channel,
                                  pgcw__changelog_names *out);

#endif
