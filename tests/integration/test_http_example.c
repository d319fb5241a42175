/*
 * test_http_example.c - examples/http_server end to end: real HTTP over loopback
 * against a real server. First GET is a miss, the second a hit; a change to
 * another table does not invalidate; once the server's watcher has an UPDATE of
 * the table (seen on GET /stats, within a deadline) a GET returns the new data (a
 * miss), then hits again; SIGTERM stops it cleanly.
 *
 * The server process is always stopped (SIGTERM, then SIGKILL after a deadline),
 * also when an assertion fails: the cmocka teardown does it.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "pgtest.h"

typedef struct server {
    pid_t pid;
    int port;
    char out_path[64];
    char err_path[64];
} server;

/* Waits up to ms for the server to exit; its exit status, or -1 if still running. */
static int server_wait(server *s, int64_t ms)
{
    int rc = pgtest_wait_pid(s->pid, ms);
    if (rc >= 0)
        s->pid = 0;
    return rc;
}

/* SIGTERM, then SIGKILL if it has not gone within the deadline. */
static int server_stop(server *s)
{
    if (s->pid <= 0)
        return -1;
    kill(s->pid, SIGTERM);
    int rc = server_wait(s, 10000);
    if (rc < 0) {
        kill(s->pid, SIGKILL);
        waitpid(s->pid, NULL, 0);
        s->pid = 0;
    }
    return rc;
}

static int setup(void **state)
{
    server *s = calloc(1, sizeof *s);
    if (!s)
        return -1;
    snprintf(s->out_path, sizeof s->out_path, "/tmp/pgcw-test-http-%d.out",
             (int)getpid());
    snprintf(s->err_path, sizeof s->err_path, "/tmp/pgcw-test-http-%d.err",
             (int)getpid());
    *state = s;
    return 0;
}

static int teardown(void **state)
{
    server *s = *state;
    server_stop(s);
    unlink(s->out_path);
    unlink(s->err_path);
    free(s);
    return 0;
}

/* Starts the example and reads "listening on http://127.0.0.1:PORT". */
static void server_start(server *s, const char *table)
{
    const char *build = getenv("PGCW_BUILD_DIR");
    assert_non_null(build);
    char exe[1024];
    snprintf(exe, sizeof exe, "%s/examples/http_server", build);
    if (access(exe, X_OK) != 0)
        skip(); /* built without libmicrohttpd */
    fflush(NULL);
    s->pid = fork();
    assert_true(s->pid >= 0);
    if (s->pid == 0) {
        if (!freopen(s->out_path, "w", stdout) || !freopen(s->err_path, "w", stderr))
            _exit(126);
        execl(exe, "http_server", "--port", "0", "--table", table, "--pg-dsn",
              pgtest_dsn(), (char *)NULL);
        _exit(127);
    }
    int64_t deadline = pgtest_now_ms() + 30000;
    for (;;) {
        char *out = pgtest_slurp_path(s->out_path);
        const char *p = strstr(out, "listening on http://127.0.0.1:");
        if (p && strchr(p, '\n')) {
            s->port = atoi(p + strlen("listening on http://127.0.0.1:"));
            free(out);
            assert_true(s->port > 0 && s->port < 65536);
            return;
        }
        free(out);
        int rc = server_wait(s, 0);
        if (rc >= 0 || pgtest_now_ms() > deadline) {
            char *err = pgtest_slurp_path(s->err_path);
            fail_msg("http_server did not start (exit %d): %s", rc, err);
        }
        pgtest_sleep_ms(10);
    }
}

typedef struct response {
    int status;
    char cache[16]; /* X-Cache value, "" if absent */
    char *body;
} response;

/* One HTTP/1.1 request with Connection: close; reads until EOF. */
static response http_get(const server *s, const char *path)
{
    response r = {0, "", NULL};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)s->port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0)
        fail_msg("connect to port %d: %s", s->port, strerror(errno));
    char req[256];
    int n =
        snprintf(req, sizeof req,
                 "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", path);
    assert_int_equal(send(fd, req, (size_t)n, MSG_NOSIGNAL), n);
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    assert_non_null(buf);
    for (;;) {
        if (cap - len < 1024) {
            cap *= 2;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
        ssize_t got = recv(fd, buf + len, cap - len - 1, 0);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            fail_msg("recv: %s", strerror(errno));
        if (got == 0)
            break;
        len += (size_t)got;
    }
    close(fd);
    buf[len] = '\0';
    char *end = strstr(buf, "\r\n\r\n");
    if (!end || sscanf(buf, "HTTP/1.%*d %d", &r.status) != 1)
        fail_msg("not an HTTP response: %s", buf);
    *end = '\0';
    for (char *line = strstr(buf, "\r\n"); line && line < end;
         line = strstr(line, "\r\n")) {
        line += 2;
        if (strncasecmp(line, "X-Cache:", 8) == 0) {
            const char *v = line + 8;
            while (*v == ' ')
                v++;
            snprintf(r.cache, sizeof r.cache, "%.*s", (int)strcspn(v, "\r\n"), v);
        }
    }
    r.body = strdup(end + 4);
    free(buf);
    return r;
}

/* The watcher's "events" counter, from GET /stats. */
static long long watcher_events(const server *s)
{
    response r = http_get(s, "/stats");
    assert_int_equal(r.status, 200);
    struct json_object *j = json_tokener_parse(r.body), *w = NULL, *e = NULL;
    if (!j || !json_object_object_get_ex(j, "watcher", &w) ||
        !json_object_object_get_ex(w, "events", &e))
        fail_msg("bad /stats: %s", r.body);
    long long n = json_object_get_int64(e);
    json_object_put(j);
    free(r.body);
    return n;
}

/* Polls /stats until the watcher has received at least n events. */
static void wait_events(const server *s, long long n)
{
    int64_t deadline = pgtest_now_ms() + 10000;
    long long got;
    while ((got = watcher_events(s)) < n) {
        if (pgtest_now_ms() > deadline)
            fail_msg("the watcher has %lld events, not %lld, after 10 s", got, n);
        pgtest_sleep_ms(2);
    }
}

static void install_triggers(const char *tables)
{
    char cmd[2048], *err = NULL;
    snprintf(cmd, sizeof cmd,
             "timeout -k 5 60 \"$PGCW_CLI\" install --commit --pg-dsn '%s' %s",
             pgtest_dsn(), tables);
    int rc = pgtest_run(cmd, NULL, &err);
    if (rc != 0)
        fail_msg("install exited %d: %s", rc, err);
    free(err);
}

static void test_get_hit_miss_invalidate(void **state)
{
    server *s = *state;
    PGconn *conn = pgtest_connect();
    pgtest_exec(conn, "DROP TABLE IF EXISTS items, other CASCADE;"
                      "CREATE TABLE items (id int PRIMARY KEY, name text);"
                      "CREATE TABLE other (id int PRIMARY KEY);"
                      "INSERT INTO items VALUES (1, 'apple'), (2, 'pear')");
    install_triggers("items other");
    server_start(s, "items");

    response r = http_get(s, "/data");
    assert_int_equal(r.status, 200);
    assert_string_equal(r.cache, "miss");
    assert_non_null(strstr(r.body, "apple"));
    assert_non_null(strstr(r.body, "\"count\" : 2"));
    char *first = r.body;
    r = http_get(s, "/data");
    assert_int_equal(r.status, 200);
    assert_string_equal(r.cache, "hit");
    assert_string_equal(r.body, first);
    free(r.body);
    free(first);

    r = http_get(s, "/nope");
    assert_int_equal(r.status, 404);
    free(r.body);

    /* A change to another table must not clear the memo. /stats tells when the
     * watcher has the event, so the next GET must find it in the strategy's queue
     * (and, the table not being ours, keep serving the stored value). */
    long long ev0 = watcher_events(s);
    pgtest_exec(conn, "INSERT INTO other VALUES (1)");
    wait_events(s, ev0 + 1);
    r = http_get(s, "/data");
    assert_string_equal(r.cache, "hit");
    assert_non_null(strstr(r.body, "apple"));
    free(r.body);

    /* A change to items must: once the watcher has it, the next GET loads anew. */
    int64_t t0 = pgtest_now_ms();
    pgtest_exec(conn, "UPDATE items SET name = 'banana' WHERE id = 1");
    wait_events(s, ev0 + 2);
    int64_t took = pgtest_now_ms() - t0;
    r = http_get(s, "/data");
    assert_int_equal(r.status, 200);
    assert_string_equal(r.cache, "miss");
    assert_non_null(strstr(r.body, "banana"));
    assert_null(strstr(r.body, "apple"));
    char *fresh = r.body;
    r = http_get(s, "/data");
    assert_string_equal(r.cache, "hit");
    assert_string_equal(r.body, fresh);
    free(r.body);
    free(fresh);
    print_message("UPDATE to event at the server: %lld ms\n", (long long)took);

    int rc = server_stop(s);
    char *err = pgtest_slurp_path(s->err_path);
    if (rc != 0)
        fail_msg("http_server exited %d after SIGTERM: %s", rc, err);
    free(err);
    PQfinish(conn);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_get_hit_miss_invalidate, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
