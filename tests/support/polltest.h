/*
 * polltest.h - what the poll source's integration tests share (test_poll*_pg.c):
 * a table `items` with the change log installed on channel POLLTEST_CHANNEL, a
 * started poll watcher, and reading its events with a deadline. Helpers fail the
 * current cmocka test on error. Include after <cmocka.h>.
 */
#ifndef PGCW_POLLTEST_H
#define PGCW_POLLTEST_H

#include <stdint.h>

#include <libpq-fe.h>
#include <pgcachewatch/pgcachewatch.h>

#define POLLTEST_WAIT_MS 15000
#define POLLTEST_CHANNEL "poll_events"
/* The change log's tables on that channel (short enough not to be hashed). */
#define POLLTEST_LOG "fn_pgcachewatch_table_change_poll_events_log"

/* (Re)creates items (id int primary key, v text) with keyed triggers and the
 * change log on POLLTEST_CHANNEL, after uninstalling what a failed test left. The
 * handle is owned: pass it to polltest_uninstall(). */
pgcw_install *polltest_install_items(PGconn *c);

/* Uninstalls and frees the handle. */
void polltest_uninstall(pgcw_install *in, PGconn *c);

/* A started poll watcher on POLLTEST_CHANNEL (interval 20 ms, max_latency_ms 1,
 * retention_ms as given, 0: the default) with one subscriber, healthy. Its
 * warnings are kept: polltest_last_warning(). */
pgcw_watcher *polltest_start(int64_t retention_ms, pgcw_sub **sub);

/* Stops and frees both. */
void polltest_stop(pgcw_watcher *w, pgcw_sub *sub);

/* Whether the last warning any polltest watcher logged contains needle. */
bool polltest_warned(const char *needle);

/* The next event that is not a disconnection gap (counted in *disconnects; NULL:
 * such a gap is returned like any event). Owned: pgcw_event_free(). */
const pgcw_event *polltest_next(pgcw_sub *sub, int *disconnects);

/* Fails unless e is a change of items on POLLTEST_CHANNEL from the poll source
 * with this operation and one key. */
void polltest_expect_change(const pgcw_event *e, pgcw_op op, const char *key);

/* The next event (disconnection gaps included), checked as above and freed. */
void polltest_expect_next(pgcw_sub *sub, pgcw_op op, const char *key);

#endif
