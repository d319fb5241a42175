/*
 * sql_logical.h - the names of logical decoding's server objects (install.h, "the
 * logical source"): the replication slot and the publication of one channel,
 * defaulted and checked in one place, for the install module that creates them
 * and the logical source that uses them (sql_logical.c).
 */
#ifndef PGCW_SQL_LOGICAL_H
#define PGCW_SQL_LOGICAL_H

#include <stddef.h>

#include "pgcachewatch/install.h"

typedef struct pgcw__logical_names {
    char slot[PGCW_MAX_IDENTIFIER + 1];        /* [a-z0-9_]+ */
    char publication[PGCW_MAX_IDENTIFIER + 1]; /* raw; quote before use */
} pgcw__logical_names;

/*
 * The slot: slot_name, or "pgcachewatch_<channel>"; the publication: publication,
 * or "pgcachewatch_<channel>_pub" (channel NULL: PGCW_DEFAULT_CHANNEL). ASCII
 * capitals are folded to lower case in all of them, as PostgreSQL folds unquoted
 * names. In a derived slot name every byte that a slot name may not hold (only
 * a-z, 0-9 and _ are allowed) becomes '_'; a derived name longer than 63 bytes
 * keeps its head, then "_" and 8 hex digits of a hash of the whole, then its
 * suffix. A given slot_name must be 1..63 bytes of [a-z0-9_] once folded, a
 * given publication 1..63 bytes of UTF-8: else PGCW_EINVAL with the reason in
 * errbuf.
 */
pgcw_status pgcw__logical_names_resolve(const char *channel, const char *slot_name,
                                        const char *publication, pgcw__logical_names *out,
                                        char *errbuf, size_t errlen);

#endif
