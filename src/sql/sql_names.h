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

#endif
