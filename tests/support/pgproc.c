/* pgproc.c - see pgproc.h. */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "pgproc.h"
#include "pgtest.h"

void pgtest_proc_start(pgtest_proc *p, const char *tag, const char *cmd)
{
    snprintf(p->out_path, sizeof p->out_path, "/tmp/pgcw-%s-%d.out", tag, (int)getpid());
    snprintf(p->err_path, sizeof p->err_path, "/tmp/pgcw-%s-%d.err", tag, (int)getpid());
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    p->start_s = (double)now.tv_sec + (double)now.tv_nsec / 1e9;
    fflush(NULL);
    p->pid = fork();
    assert_true(p->pid >= 0);
    if (p->pid == 0) {
        if (!freopen(p->out_path, "w", stdout) || !freopen(p->err_path, "w", stderr))
            _exit(126);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
}

int pgtest_proc_wait(pgtest_proc *p, int64_t ms)
{
    int rc = pgtest_wait_pid(p->pid, ms);
    if (rc >= 0)
        p->pid = 0;
    return rc;
}

void pgtest_proc_kill(pgtest_proc *p)
{
    if (p->pid > 0) {
        kill(p->pid, SIGKILL);
        waitpid(p->pid, NULL, 0);
        p->pid = 0;
    }
    unlink(p->out_path);
    unlink(p->err_path);
}

void pgtest_proc_wait_listening(pgtest_proc *p, PGconn *conn)
{
    int64_t deadline = pgtest_now_ms() + 20000;
    char sql[512];
    /* The server runs on this machine: its clock is ours. */
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
             " AND pid <> pg_backend_pid() AND state = 'idle'"
             " AND query ILIKE '%%listen%%' AND backend_start >= to_timestamp(%.6f)",
             p->start_s);
    for (;;) {
        long long n = pgtest_query_int(conn, sql);
        if (n > 0)
            return;
        if (pgtest_proc_wait(p, 0) >= 0 || pgtest_now_ms() > deadline) {
            char *err = pgtest_slurp_path(p->err_path);
            pgtest_proc_kill(p);
            fail_msg("the listener never listened; its stderr: %s", err);
        }
        pgtest_sleep_ms(10);
    }
}

int pgtest_proc_finish(pgtest_proc *p, int64_t ms, char **out, char **err)
{
    int rc = pgtest_proc_wait(p, ms);
    *out = pgtest_slurp_path(p->out_path);
    *err = pgtest_slurp_path(p->err_path);
    pgtest_proc_kill(p);
    return rc;
}
