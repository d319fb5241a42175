/*
 * pgproc.h - a process that runs alongside an integration test (a CLI listener, an
 * example server): started with its stdout and stderr in files, waited for with a
 * deadline, killed and cleaned up by pid. Include after <cmocka.h>.
 */
#ifndef PGCW_PGPROC_H
#define PGCW_PGPROC_H

#include <stdint.h>
#include <sys/types.h>

#include <libpq-fe.h>

typedef struct pgtest_proc {
    pid_t pid;      /* 0 once reaped */
    double start_s; /* wall clock when it was started (epoch seconds) */
    char out_path[64];
    char err_path[64];
} pgtest_proc;

/* Runs `sh -c cmd` with stdout/stderr in files named after this process and tag. */
void pgtest_proc_start(pgtest_proc *p, const char *tag, const char *cmd);

/* Waits up to ms for it to end; returns its exit status (128+signal if killed),
 * or -1 if it is still running. */
int pgtest_proc_wait(pgtest_proc *p, int64_t ms);

/* Kills it if still running (SIGKILL, reaped) and removes its output files. */
void pgtest_proc_kill(pgtest_proc *p);

/* pgtest_proc_wait(), then the process's stdout and stderr (malloc'd, into *out and
 * *err), then pgtest_proc_kill(). Returns the exit status as pgtest_proc_wait(). */
int pgtest_proc_finish(pgtest_proc *p, int64_t ms, char **out, char **err);

/* Waits until a session of conn's database that started after the process did has
 * an acknowledged LISTEN (idle after a statement that LISTENs): from then on
 * notifications reach it. (A listener of an earlier process may still be there,
 * ending: it does not count.)
 * Fails the test with the process's stderr if it ends or 20 s pass first. */
void pgtest_proc_wait_listening(pgtest_proc *p, PGconn *conn);

#endif
