/*
 * pgtest.h - what integration tests share: the throwaway server's DSN, a private
 * database per test process, small query helpers and running the CLI.
 *
 * The server is started by the ctest fixture (tests/pg/pgserver.sh) which writes
 * its state file; PGCW_TEST_STATE names it. PGCW_TEST_DSN, when set, overrides it
 * (to run a test by hand against another server). Helpers fail the current cmocka
 * test on error, with PostgreSQL's message.
 */
#ifndef PGCW_PGTEST_H
#define PGCW_PGTEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sys/types.h>

#include <libpq-fe.h>

/* The server's DSN (dbname=postgres). Static storage. Aborts the test run with a
 * clear message when no server is configured. */
const char *pgtest_server_dsn(void);

/* A DSN for a database private to this test process, created on first call (from
 * template0) and named after the program and pid. Static storage. */
const char *pgtest_dsn(void);

/* A new connection to pgtest_dsn(). Free with PQfinish(). */
PGconn *pgtest_connect(void);

/* Runs SQL that must succeed (any number of statements); fails the test otherwise. */
void pgtest_exec(PGconn *conn, const char *sql);

/* Runs SQL, returns the status. On error copies PostgreSQL's message to errbuf. */
bool pgtest_try_exec(PGconn *conn, const char *sql, char *errbuf, size_t errlen);

/* Runs a one-value query and returns the value as a malloc'd string (NULL for SQL
 * NULL). Fails the test on error or when the result is not one row. */
char *pgtest_query_value(PGconn *conn, const char *sql);

/* Same, parsed as an integer. */
long long pgtest_query_int(PGconn *conn, const char *sql);

/* Relations (tables, indexes, sequences, views), triggers and functions outside the
 * system schemas, as one sorted string (malloc'd): equal snapshots mean nothing we
 * care about was created or dropped. */
char *pgtest_catalog_snapshot(PGconn *conn);

/* Runs `sh -c cmd` with PGCW_CLI, the build dir, etc. in the environment, captures
 * stdout and stderr (each malloc'd, NUL-terminated; pass NULL to discard) and
 * returns the exit status (128+signal if killed). */
int pgtest_run(const char *cmd, char **out, char **err);

/* The whole file at path as a malloc'd string ("" if missing or unreadable). */
char *pgtest_slurp_path(const char *path);

/* Every CLI run is bounded: a hang fails (exit 124) instead of stalling ctest. */
#define PGTEST_RUN_LIMIT "timeout -k 5 60 "

/* Runs `$PGCW_CLI <args>` (printf-style), bounded by PGTEST_RUN_LIMIT; captures as
 * pgtest_run() does and returns its exit status. */
int pgtest_cli_run(char **out, char **err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Runs `$PGCW_CLI <args>` and fails the test unless it exits 0 with a "Usage:" text
 * that mentions every has[i] and no lacks[i] (NULL-terminated; lacks may be NULL). */
void pgtest_cli_expect_help(const char *args, const char *const *has,
                            const char *const *lacks);

/* Runs `$PGCW_CLI <args>` and fails the test unless it is a usage error: exit 2,
 * nothing on stdout, the --help hint and needle (NULL: any) on stderr, and no
 * connection attempted. */
void pgtest_cli_expect_usage_error(const char *args, const char *needle);

/* Path of the CLI under test ($PGCW_CLI). */
const char *pgtest_cli(void);

/* Monotonic milliseconds. */
int64_t pgtest_now_ms(void);

/* Sleeps ms milliseconds (for polling loops that have a deadline). */
void pgtest_sleep_ms(long ms);

/* Waits up to ms for child pid to end (0: just look). Returns its exit status
 * (128+signal if killed) once reaped, or -1 if it is still running. */
int pgtest_wait_pid(pid_t pid, int64_t ms);

/* A TCP listener on 127.0.0.1 that accepts connections (the kernel completes the
 * handshake) and never answers: a server that hangs. Returns the socket (close it
 * to stop) and writes its port. Fails the test on error. */
int pgtest_blackhole_open(int *port);

#endif
