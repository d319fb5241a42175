/*
 * pgtest.c - see pgtest.h. Test-side only: talks to the throwaway server, never
 * starts or stops it (the ctest fixture does).
 */
#define _GNU_SOURCE
#include "pgtest.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cmocka.h>

static char server_dsn[1024];
static char db_dsn[1200];

const char *pgtest_server_dsn(void)
{
    if (server_dsn[0])
        return server_dsn;
    const char *env = getenv("PGCW_TEST_DSN");
    if (env && *env) {
        snprintf(server_dsn, sizeof server_dsn, "%s", env);
        return server_dsn;
    }
    const char *state = getenv("PGCW_TEST_STATE");
    FILE *f = state ? fopen(state, "r") : NULL;
    if (!f) {
        fprintf(stderr,
                "pgtest: no server: set PGCW_TEST_DSN, or run under ctest "
                "(the pg_server fixture writes PGCW_TEST_STATE=%s)\n",
                state ? state : "(unset)");
        exit(1);
    }
    char line[1000];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "dsn=", 4) == 0) {
            line[strcspn(line, "\n")] = '\0';
            snprintf(server_dsn, sizeof server_dsn, "%s", line + 4);
        }
    }
    fclose(f);
    if (!server_dsn[0]) {
        fprintf(stderr, "pgtest: %s holds no dsn\n", state);
        exit(1);
    }
    return server_dsn;
}

const char *pgtest_dsn(void)
{
    if (db_dsn[0])
        return db_dsn;
    char name[64];
    const char *prog = program_invocation_short_name;
    snprintf(name, sizeof name, "t_%.40s_%ld", prog, (long)getpid());
    for (char *p = name; *p; p++)
        if (!(*p >= 'a' && *p <= 'z') && !(*p >= '0' && *p <= '9'))
            *p = '_';
    PGconn *c = PQconnectdb(pgtest_server_dsn());
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "pgtest: cannot connect: %s", PQerrorMessage(c));
        exit(1);
    }
    char sql[256];
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s; ", name);
    PQclear(PQexec(c, sql));
    snprintf(sql, sizeof sql, "CREATE DATABASE %s TEMPLATE template0", name);
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        fprintf(stderr, "pgtest: %s", PQresultErrorMessage(r));
        exit(1);
    }
    PQclear(r);
    PQfinish(c);
    snprintf(db_dsn, sizeof db_dsn, "%s dbname=%s", pgtest_server_dsn(), name);
    return db_dsn;
}

PGconn *pgtest_connect(void)
{
    PGconn *c = PQconnectdb(pgtest_dsn());
    if (PQstatus(c) != CONNECTION_OK)
        fail_msg("connect: %s", PQerrorMessage(c));
    PQclear(PQexec(c, "SET client_min_messages = warning"));
    return c;
}

bool pgtest_try_exec(PGconn *conn, const char *sql, char *errbuf, size_t errlen)
{
    PGresult *r = PQexec(conn, sql);
    ExecStatusType st = PQresultStatus(r);
    bool ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK || st == PGRES_EMPTY_QUERY;
    if (!ok && errbuf)
        snprintf(errbuf, errlen, "%s", PQresultErrorMessage(r));
    PQclear(r);
    return ok;
}

void pgtest_exec(PGconn *conn, const char *sql)
{
    char err[1024];
    if (!pgtest_try_exec(conn, sql, err, sizeof err))
        fail_msg("SQL failed: %s\n  in: %.300s", err, sql);
}

char *pgtest_query_value(PGconn *conn, const char *sql)
{
    PGresult *r = PQexec(conn, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1 || PQnfields(r) < 1) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s (rows=%d)", PQresultErrorMessage(r), PQntuples(r));
        PQclear(r);
        fail_msg("query failed: %s\n  in: %.300s", msg, sql);
    }
    char *v = PQgetisnull(r, 0, 0) ? NULL : strdup(PQgetvalue(r, 0, 0));
    PQclear(r);
    return v;
}

long long pgtest_query_int(PGconn *conn, const char *sql)
{
    char *v = pgtest_query_value(conn, sql);
    if (!v)
        fail_msg("query returned NULL: %.300s", sql);
    long long n = strtoll(v, NULL, 10);
    free(v);
    return n;
}

const char *pgtest_cli(void)
{
    const char *cli = getenv("PGCW_CLI");
    if (!cli || !*cli) {
        fprintf(stderr, "pgtest: PGCW_CLI is not set (run under ctest)\n");
        exit(1);
    }
    return cli;
}

char *pgtest_catalog_snapshot(PGconn *conn)
{
    return pgtest_query_value(
        conn, "SELECT coalesce(string_agg(x, ',' ORDER BY x), '') FROM ("
              " SELECT 'trigger ' || tgrelid::regclass || '.' || tgname AS x"
              "  FROM pg_trigger WHERE NOT tgisinternal"
              " UNION ALL"
              " SELECT 'function ' || oid::regprocedure FROM pg_proc"
              "  WHERE pronamespace NOT IN ('pg_catalog'::regnamespace,"
              "                             'information_schema'::regnamespace)"
              " UNION ALL"
              " SELECT 'relation ' || oid::regclass FROM pg_class"
              "  WHERE relnamespace NOT IN ('pg_catalog'::regnamespace,"
              "                             'information_schema'::regnamespace,"
              "                             'pg_toast'::regnamespace)) s");
}

static char *slurp(FILE *f)
{
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    size_t n;
    rewind(f);
    while (buf && (n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (cap - len - 1 == 0) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                return NULL;
            }
            buf = nb;
            cap *= 2;
        }
    }
    if (buf)
        buf[len] = '\0';
    return buf;
}

int pgtest_run(const char *cmd, char **out, char **err)
{
    FILE *fo = tmpfile(), *fe = tmpfile();
    if (!fo || !fe)
        fail_msg("tmpfile: %s", strerror(errno));
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fileno(fo), 1);
        dup2(fileno(fe), 2);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    if (out)
        *out = slurp(fo);
    if (err)
        *err = slurp(fe);
    fclose(fo);
    fclose(fe);
    if (WIFEXITED(st))
        return WEXITSTATUS(st);
    return 128 + WTERMSIG(st);
}

int64_t pgtest_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void pgtest_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

int pgtest_wait_pid(pid_t pid, int64_t ms)
{
    int64_t deadline = pgtest_now_ms() + ms;
    for (;;) {
        int st = 0;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        if (r < 0 && errno != EINTR)
            return -1;
        if (pgtest_now_ms() >= deadline)
            return -1;
        pgtest_sleep_ms(5);
    }
}

char *pgtest_slurp_path(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return strdup("");
    char *buf = NULL;
    size_t cap = 0;
    ssize_t n = getdelim(&buf, &cap, '\0', f);
    fclose(f);
    if (n < 0) {
        free(buf);
        return strdup("");
    }
    return buf;
}

int pgtest_blackhole_open(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    /* Never accept(): connections queue up, complete at the TCP level and hear
     * nothing back. */
    assert_int_equal(listen(fd, 16), 0);
    socklen_t len = sizeof a;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

int pgtest_cli_run(char **out, char **err, const char *fmt, ...)
{
    char args[4096], cmd[4600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, PGTEST_RUN_LIMIT "\"$PGCW_CLI\" %s", args);
    return pgtest_run(cmd, out, err);
}

void pgtest_cli_expect_help(const char *args, const char *const *has,
                            const char *const *lacks)
{
    char *out = NULL, *err = NULL;
    int rc = pgtest_cli_run(&out, &err, "%s", args);
    if (rc != 0)
        fail_msg("'%s' exited %d: %s", args, rc, err);
    assert_non_null(strstr(out, "Usage:"));
    for (size_t i = 0; has[i]; i++)
        if (!strstr(out, has[i]))
            fail_msg("'%s' does not mention %s:\n%s", args, has[i], out);
    for (size_t i = 0; lacks && lacks[i]; i++)
        if (strstr(out, lacks[i]))
            fail_msg("'%s' mentions %s:\n%s", args, lacks[i], out);
    free(out);
    free(err);
}

void pgtest_cli_expect_usage_error(const char *args, const char *needle)
{
    char *out = NULL, *err = NULL;
    int rc = pgtest_cli_run(&out, &err, "%s", args);
    if (rc != 2)
        fail_msg("'%s' exited %d, not 2; stderr: %s", args, rc, err);
    assert_string_equal(out, ""); /* nothing half-done on stdout */
    if (!strstr(err, "--help"))
        fail_msg("'%s': no hint on stderr: %s", args, err);
    if (needle && !strstr(err, needle))
        fail_msg("'%s': stderr lacks '%s': %s", args, needle, err);
    if (strstr(err, "could not connect"))
        fail_msg("'%s' tried to connect: %s", args, err);
    free(out);
    free(err);
}
