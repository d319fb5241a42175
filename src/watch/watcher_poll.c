/*
 * watcher_poll.c - the poll source's options (watcher.h, PGCW_WATCH_POLL): checked
 * and defaulted here, so that watcher.c only dispatches. Never does I/O.
 */
#include <string.h>

#include "core_time.h"
#include "event_internal.h"
#include "pgcachewatch/install.h"
#include "watcher_internal.h"

#define DEFAULT_INTERVAL_MS 250
#define DEFAULT_RETENTION_MS (10 * 60 * 1000)

pgcw_status pgcw__watcher_make_poll(pgcw_watcher *w, const pgcw_watcher_opts *o,
                                    const pgcw_conn_opts *conn)
{
    /* One change log per watcher: its channel's (the reader orders one table). */
    const char *channel =
        o->n_channels ? (o->channels ? o->channels[0] : NULL) : PGCW_DEFAULT_CHANNEL;
    size_t len = channel ? strlen(channel) : 0;
    if (o->n_channels > 1 || len == 0 || len > PGCW_MAX_IDENTIFIER ||
        o->poll_interval_ms < 0 || o->changelog_retention_ms < 0 ||
        (o->formats && !pgcw__payload_format_valid(o->formats[0])))
        return PGCW_EINVAL;
    pgcw__poll_cfg cfg = {
        .conn = conn,
        .channel = channel,
        .format = o->formats ? o->formats[0] : PGCW_FORMAT_AUTO,
        .interval_us = pgcw__ms_or(o->poll_interval_ms, DEFAULT_INTERVAL_MS),
        .retention_ms =
            o->changelog_retention_ms ? o->changelog_retention_ms : DEFAULT_RETENTION_MS,
        .timeout_us = pgcw__ms_or(o->ping_timeout_ms < 0 ? 0 : o->ping_timeout_ms, 5000),
        .max_latency_us =
            o->max_latency_ms < 0 ? -1 : pgcw__ms_or(o->max_latency_ms, 500),
        .log = o->log,
        .log_ctx = o->log_ctx,
    };
    pgcw__source *src = NULL;
    pgcw_status st = pgcw__source_poll_new(&cfg, &pgcw__watcher_hub_ops, w, &src);
    return pgcw__watcher_adopt(w, st, src);
}
