/*
 * sql_names.h - the sql module's name parsing for the modules that generate SQL
 * (install now, the cache's migrations next): pgcw_parse_qualified_name() with the
 * reason a name is refused.
 */
#ifndef PGCW_SQL_NAMES_H
#define PGCW_SQL_NAMES_H

#include <stddef.h>

#include "pgcachewatch/install.h"

/* pgcw_parse_qualified_name(), writing a one-line reason to errbuf (truncated to
 * errlen; errbuf may be NULL) on PGCW_EINVAL. */
pgcw_status pgcw__parse_qualified_name(const char *text, pgcw_qualified_name *out,
                                       char *errbuf, size_t errlen);

/*
 * Derives the object name a + b + c (install.h's naming rules). Names that fit in
 * PGCW_MAX_IDENTIFIER bytes are the plain concatenation (the Python tool's names).
 * Longer ones would be truncated by PostgreSQL, silently and so that two channels
 * could share a name, or lose the suffixes that tell them apart; instead they keep
 * as much of a + b as fits (cut on a UTF-8 boundary), then "_" and 8 hex digits of
 * a hash of the whole a + b, then c, so the result is deterministic (a reinstall
 * replaces it) and distinct per channel. c must be shorter than 50 bytes.
 */
void pgcw__derive_name(char out[PGCW_MAX_IDENTIFIER + 1], const char *a, const char *b,
                       const char *c);

/* Lower-cases ASCII letters in place: what PostgreSQL does to an unquoted name in a
 * multibyte encoding (table names are folded the same way when parsed). */
void pgcw__fold_ascii(char *s);

#endif
