/*
 * sql_changelog.c - deriving the names of a channel's change log (sql_changelog.h).
 * Pure: never quotes, never connects.
 */
#include <stdio.h>

#include "sql_changelog.h"
#include "sql_names.h"

void pgcw__changelog_names_derive(const char *function_name, const char *channel,
                                  pgcw__changelog_names *out)
{
    char base[2 * PGCW_MAX_IDENTIFIER + 2], chan[PGCW_MAX_IDENTIFIER + 1];
    snprintf(base, sizeof base, "%s_",
             function_name ? function_name : PGCW_DEFAULT_FUNCTION_NAME);
    snprintf(chan, sizeof chan, "%s", channel);
    pgcw__fold_ascii(base);
    pgcw__fold_ascii(chan);
    pgcw__derive_name(out->table, base, chan, "_log");
    pgcw__derive_name(out->pruned_table, base, chan, "_log_pruned");
    pgcw__derive_name(out->write_function, base, chan, "_log_write");
    pgcw__derive_name(out->read_function, base, chan, "_log_read");
    pgcw__derive_name(out->prune_function, base, chan, "_log_prune");
}
