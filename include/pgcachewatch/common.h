/*
 * pgcachewatch/common.h - small types shared by every module: log callback,
 * memory release, version.
 *
 * ABI. Options and statistics structs grow at the end only and are passed with
 * the size your code was compiled with: pgcw_x_new(...) is a macro that calls
 * pgcw_x_new_sized(..., sizeof(pgcw_x_opts), ...), so code built against an older
 * header keeps working with a newer library (the fields it does not know take
 * their defaults), and a newer header's struct is refused with PGCW_EINVAL only if
 * it sets a field the library does not know. Zero your structs (`= {0}` or
 * designated initializers). Bindings call the _sized functions themselves. The
 * shared library's SONAME changes only when this promise has to be broken;
 * docs/abi.md states the policy.
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
#define PGCW_VERSION_MINOR 2
#define PGCW_VERSION_PATCH 0
#define PGCW_VERSION_STRING "0.2.0"

/* The library's version string, e.g. "0.2.0". Static; thread-safe. */
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

/* What a handle driven from your event loop waits for on its fd (a bit set). */
#define PGCW_IO_READ 1
#define PGCW_IO_WRITE 2

/* Where a watcher gets its events (pgcw_watcher_opts.source) and what an install
 * prepares for it (pgcw_install_opts.source). Since 0.4. */
typedef enum pgcw_watch_source {
    PGCW_WATCH_LISTEN =
        0, /* LISTEN/NOTIFY: the triggers notify, one connection listens */
    PGCW_WATCH_LOGICAL = 1, /* logical decoding: a replication slot and a publication */
    PGCW_WATCH_POLL = 2     /* a change-log table the triggers write, polled */
} pgcw_watch_source;

/* Release memory the library handed out as "owned: free with pgcw_free".
 * NULL is fine. */
void pgcw_free(void *ptr);

#ifdef __cplusplus
}
#endif

#endif
