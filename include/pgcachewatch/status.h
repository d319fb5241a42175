/*
 * pgcachewatch/status.h - the one status type every call returns.
 *
 * Every fallible function returns a pgcw_status. PGCW_OK is zero; every error is
 * positive. The detail (libpq's message, the SQLSTATE) lives in the handle that
 * failed: pgcw_watcher_errmsg(), pgcw_install_errmsg() and friends.
 *
 * The list is one X-macro so the enum, pgcw_strerror() and pgcw_status_name() can
 * never disagree. New codes are appended, never renumbered.
 */
#ifndef PGCACHEWATCH_STATUS_H
#define PGCACHEWATCH_STATUS_H

#ifdef __cplusplus
extern "C" {
#endif

#define PGCW_STATUS_MAP(X)                                                               \
    X(OK, "success")                                                                     \
    X(EINVAL, "invalid argument")                                                        \
    X(ENOMEM, "out of memory")                                                           \
    X(ECONNECT, "could not connect to PostgreSQL")                                       \
    X(ECONNLOST, "connection to PostgreSQL lost")                                        \
    X(EQUERY, "PostgreSQL reported an error")                                            \
    X(EPARSE, "malformed input")                                                         \
    X(ETIMEDOUT, "timed out")                                                            \
    X(EAGAIN, "nothing available yet")                                                   \
    X(ESTATE, "operation not valid in the current state")                                \
    X(ESYS, "system call failed")                                                        \
    X(ETOOBIG, "value too large")                                                        \
    X(ELOADER, "loader failed")                                                          \
    X(ENOTFOUND, "not found")                                                            \
    X(ECLOSED, "handle is closed")

typedef enum pgcw_status {
#define PGCW__STATUS_ENUM(name, msg) PGCW_##name,
    PGCW_STATUS_MAP(PGCW__STATUS_ENUM)
#undef PGCW__STATUS_ENUM
        PGCW__STATUS_COUNT
} pgcw_status;

/* A static English sentence for the status ("timed out"). Never NULL: an unknown
 * value yields "unknown status". Thread-safe. */
const char *pgcw_strerror(pgcw_status status);

/* The constant's name without prefix ("ETIMEDOUT"). Never NULL. Thread-safe. */
const char *pgcw_status_name(pgcw_status status);

#ifdef __cplusplus
}
#endif

#endif
