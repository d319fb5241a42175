/*
 * pgserver.h - a PostgreSQL server of a test's own (tests/pg/pgserver.sh, its own
 * state file), for a test that changes a server-wide setting the other tests,
 * running at once against the shared fixture server, must not see. Its watchdog
 * is the test process, so a test that dies leaves nothing running; stop it by
 * pid in a teardown as well. Include after <cmocka.h>.
 */
#ifndef PGCW_PGSERVER_H
#define PGCW_PGSERVER_H

typedef struct pgtest_server {
    char state[128]; /* the state file; "" once stopped */
    char *dsn;       /* malloc'd: host, port, user postgres, dbname postgres */
} pgtest_server;

/* Starts one (tag names its state file); fails the test on error. */
void pgtest_server_start(pgtest_server *s, const char *tag);

/* Stops it by pid and removes its directory; a no-op once stopped or if never
 * started. Returns 0, or -1 when pgserver.sh failed. */
int pgtest_server_stop(pgtest_server *s);

#endif
