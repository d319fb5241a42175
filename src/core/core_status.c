/*
 * status.c - status names and messages, generated from the one X-macro list in
 * status.h, plus the few library-wide helpers (version, log level names, free).
 */
#include <stdlib.h>

#include "pgcachewatch/common.h"

static const char *const messages[] = {
#define PGCW__STATUS_MSG(name, msg) msg,
    PGCW_STATUS_MAP(PGCW__STATUS_MSG)
#undef PGCW__STATUS_MSG
};

static const char *const names[] = {
#define PGCW__STATUS_NAME(name, msg) #name,
    PGCW_STATUS_MAP(PGCW__STATUS_NAME)
#undef PGCW__STATUS_NAME
};

const char *pgcw_strerror(pgcw_status status)
{
    if ((unsigned)status >= (unsigned)PGCW__STATUS_COUNT)
        return "unknown status";
    return messages[status];
}

const char *pgcw_status_name(pgcw_status status)
{
    if ((unsigned)status >= (unsigned)PGCW__STATUS_COUNT)
        return "UNKNOWN";
    return names[status];
}

const char *pgcw_version(void)
{
    return PGCW_VERSION_STRING;
}

const char *pgcw_log_level_name(pgcw_log_level level)
{
    switch (level) {
    case PGCW_LOG_DEBUG:
        return "debug";
    case PGCW_LOG_INFO:
        return "info";
    case PGCW_LOG_WARNING:
        return "warning";
    case PGCW_LOG_ERROR:
        return "error";
    }
    return "unknown";
}

void pgcw_free(void *ptr)
{
    free(ptr);
}
