/*
 * pgcw_testhook.h - the one door from tests, benchmarks and fuzz targets into the
 * library's internals. Never installed, never included by the library itself.
 *
 * Everything a test needs beyond the public API is reachable from here and from
 * nowhere else (tests/layout_check.sh fails the build's lint test when a test,
 * benchmark or fuzz target includes an internal header directly), so this file is
 * the list of what tests depend on inside the library: keep it short.
 */
#ifndef PGCW_TESTHOOK_H
#define PGCW_TESTHOOK_H

#include "core_util.h"        /* clocks, sleeps, pgcw__buf */
#include "event_internal.h"   /* shared references, the two parser paths, limits */
#include "l1_internal.h"      /* slot generations, mapped bytes, payload-only bounds */
#include "sql_template.h"     /* the embedded templates and their expansion */
#include "watcher_internal.h" /* pgcw__watcher_set_healthy() */

#endif
