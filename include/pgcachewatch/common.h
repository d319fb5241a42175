/*
 * pgcachewatch/common.h - small types shared by every module: log callback,
 * memory release, version.
 */
#ifndef PGCACHEWATCH_COMMON_H
#define PGCACHEWATCH_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define PGCW_VERSION_MAJOR 0
#define PGCW_VERSION_MINOR 1
#define PGCW_VERSION_PATCH 0
#define PGCW_VERSION_STRING "0.1.0"

/* The library's version string, e.g. "0.1.0". Static; thread-safe. */
const char *pgcw_version(void);

typedef enum pgcw_log_level {
    PGCW_LOG_DEBUG = 0,
    PGCW_LOG_INFO = 1,
    PGCW_LOG_WARNING = 2,
    PGCW_LOG_ERROR = 3
} pgcw_log_level;

/* Name of a level: "debug", "info", "warning", "error". Never NULL. */
const char *pgcw_log_level_name(pgcw_log_level level);

/*
 * Log callback. The library never prints; it calls this instead. `message` is
 * borrowed: valid only during the call, without a trailing newline. Which thread
 * calls it is documented by the handle that takes it; it is never called while an
 * internal lock is held, so it may call back into the library.
 */
typedef void (*pgcw_log_fn)(void *ctx, pgcw_log_level level, const char *message);

/* Release memory the library handed out as "owned: free with pgcw_free".
 * NULL is fine. */
void pgcw_free(void *ptr);

#ifdef __cplusplus
}
#endif

#endif
