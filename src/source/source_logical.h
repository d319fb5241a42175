/*
 * source_logical.h - the logical decoding source (source_logical.c): pgoutput
 * through a replication slot, behind source.h.
 */
#ifndef PGCW_SOURCE_LOGICAL_H
#define PGCW_SOURCE_LOGICAL_H

#include <stdint.h>

#include "source.h"

/* What the logical source needs; strings are copied. */
typedef struct pgcw__logical_cfg {
    const pgcw_conn_opts *conn;
    const char *channel;     /* stamped on events; names the defaults (NULL: default) */
    const char *slot_name;   /* NULL: "pgcachewatch_<channel>" (sql_logical.h) */
    const char *publication; /* NULL: "pgcachewatch_<channel>_pub" */
    /* How often a standby status update asks the server to answer (< 0: never),
     * and how long an answer may take before the connection counts as lost. */
    int64_t ping_interval_us;
    int64_t ping_timeout_us;
    /* Make the slot at each connect as a TEMPORARY one (the server drops it when
     * the connection ends) instead of using one that install made. */
    bool temporary;
    pgcw_log_fn log;
    void *log_ctx;
} pgcw__logical_cfg;

/* Creates the logical source (no I/O). Returns PGCW_OK, PGCW_EINVAL (a channel,
 * slot or publication name sql_logical.h refuses; logged with the reason) or
 * PGCW_ENOMEM. */
pgcw_status pgcw__source_logical_new(const pgcw__logical_cfg *cfg,
                                     const pgcw__hub_ops *ops, void *hub,
                                     pgcw__source **out);

#endif
