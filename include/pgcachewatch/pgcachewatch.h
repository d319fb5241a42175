/*
 * pgcachewatch/pgcachewatch.h - the whole public API in one include.
 *
 * pgcachewatch keeps application caches coherent with PostgreSQL using only
 * PostgreSQL: triggers that pg_notify() a JSON event (install.h), connection
 * settings shared by everything that connects (conn.h), a watcher that LISTENs and
 * fans events out to subscribers and sinks (watcher.h, event.h), strategies that
 * decide when cached results must go (strategy.h) and memoized results driven by
 * them (memo.h), and the concurrent in-process cache every client reads first
 * (l1.h).
 */
#ifndef PGCACHEWATCH_PGCACHEWATCH_H
#define PGCACHEWATCH_PGCACHEWATCH_H

#include "common.h"
#include "status.h"
#include "conn.h"
#include "event.h"
#include "install.h"
#include "watcher.h"
#include "strategy.h"
#include "memo.h"
#include "l1.h"
#include "cache.h"

#endif
