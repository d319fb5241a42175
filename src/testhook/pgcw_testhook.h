/*
 * pgcw_testhook.h - the one door from tests, benchmarks and fuzz targets into the
 * library's internals. Never installed, never included by the library itself.
 *
 * Everything a test needs beyond the public API is reachable from here and from
 * nowhere else (tests/layout_check.sh fails the lint test when a test, benchmark
 * or fuzz target includes an internal header directly), so this file is the list
 * of what tests depend on inside the library: keep it short.
 */
#ifndef PGCW_TESTHOOK_H
#define PGCW_TESTHOOK_H

#include "cache_internal.h"   /* the pool's setup SQL and statement names (benches) */
#include "conn_internal.h"    /* settings resolution, messages, backoff */
#include "core_abi.h"         /* sized options and statistics */
#include "core_err.h"         /* per-thread error detail */
#include "core_sflight.h"     /* single flight */
#include "core_time.h"        /* clocks, deadlines, sleeps */
#include "core_util.h"        /* pgcw__buf, UTF-8 check */
#include "event_internal.h"   /* shared references, the decoders, limits */
#include "l1_internal.h"      /* slot generations, mapped bytes */
#include "sql_names.h"        /* table names with the reason they are refused */
#include "sql_template.h"     /* the embedded templates and their expansion */
#include "source_pgoutput.h"  /* the pgoutput decoder */
#include "watcher_internal.h" /* pgcw__watcher_set_healthy(), test sources */

#endif
