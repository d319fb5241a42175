/*
 * watcher_kind.h - what other modules may ask of a watcher beyond the public API,
 * without seeing the hub's internals (watcher_internal.h needs the source module).
 */
#ifndef PGCW_WATCHER_KIND_H
#define PGCW_WATCHER_KIND_H

#include "pgcachewatch/watcher.h"

/* opts.source of w (the cache checks a watcher it is given). Thread-safe. */
pgcw_watch_source pgcw__watcher_source_kind(const pgcw_watcher *w);

#endif
