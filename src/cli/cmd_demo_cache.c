/*
 * cmd_demo_cache.c - the demo's cache part: two clients of one cache table in two
 * processes, each with its own L1. B's write evicts A's L1 copy (the notification
 * is shown), and get_or_set called by both at once runs the loader once in total.
 *
 * Client A is the demo itself; client B is a child forked before the demo starts
 * any thread, which waits for one-line commands on a pipe and answers each on
 * another. Only A prints on stdout (B's answers are narrated by A), so the output
 * keeps its order. The cache's objects are created in the demo's schema (its
 * connections put it first in search_path), so dropping the schema removes them.
 * Must never leave B running: it exits when its command pipe closes, and
 * cli_demo_peer_stop() kills it if it does not.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <pgcachewatch/pgcachewatch.h>

#include "cli.h"

#define CACHE_CHANNEL CLI_DEMO_SCHEMA "_cache"
#define SEARCH_PATH "-c search_path=" CLI_DEMO_SCHEMA
#define LOADER_MS 300
#define REPLY_WAIT_MS 20000
#define WAIT_MS 10000

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* The settings of every cache connection: the demo's schema first in search_path. */
static void cache_settings(cli_conn_settings *s, const cli_conn_opts *conn)
{
    cli_conn_settings_init(s, conn);
    (void)cli_conn_settings_set(s, "options", SEARCH_PATH); /* room: 5 of 7 used */
}

/* The loader both clients use: slow enough that the other client arrives while it
 * runs. ctx: the client's name; loaded counts the calls. */
typedef struct loader {
    const char *who;
    int loaded;
} loader;

static pgcw_status load_report(void *ctx, const void *key, size_t key_len,
                               pgcw_cache_result *result)
{
    (void)key;
    (void)key_len;
    loader *l = ctx;
    l->loaded++;
    sleep_ms(LOADER_MS);
    char value[64];
    snprintf(value, sizeof value, "report made by %s (pid %d)", l->who, (int)getpid());
    return pgcw_cache_result_set(result, value, strlen(value));
}

/* --- client B, in the child --------------------------------------------------- */

static void reply(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void reply(int fd, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    for (char *p = line; *p; p++)
        if (*p == '\n')
            *p = ' ';
    size_t n = strlen(line);
    line[n++] = '\n';
    for (size_t off = 0; off < n;) {
        ssize_t w = write(fd, line + off, n - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return; /* A is gone; the next read of its pipe says so */
        off += (size_t)w;
    }
}

/* Runs commands until "quit" or the end of the pipe: start, set KEY VALUE, race
 * KEY. Answers "ok ..." or "err MESSAGE". */
static int peer_main(FILE *in, int out, const cli_conn_opts *conn)
{
    cli_conn_settings s;
    cache_settings(&s, conn);
    pgcw_cache *c = NULL;
    char line[512];
    while (fgets(line, sizeof line, in)) {
        line[strcspn(line, "\n")] = '\0';
        char *arg = strchr(line, ' ');
        if (arg)
            *arg++ = '\0';
        pgcw_status st = PGCW_OK;
        if (strcmp(line, "quit") == 0)
            break;
        if (!c && strcmp(line, "start") == 0) {
            pgcw_cache_opts o = {.notify_channel = CACHE_CHANNEL};
            st = pgcw_cache_new(&o, &s.opts, &c);
            if (st == PGCW_OK)
                st = pgcw_cache_wait_healthy(c, WAIT_MS);
            if (st == PGCW_OK)
                reply(out, "ok %d", (int)getpid());
        } else if (c && strcmp(line, "set") == 0 && arg && strchr(arg, ' ')) {
            char *value = strchr(arg, ' ');
            *value++ = '\0';
            st = pgcw_cache_set(c, arg, strlen(arg), value, strlen(value),
                                PGCW_CACHE_TTL_DEFAULT);
            if (st == PGCW_OK)
                reply(out, "ok");
        } else if (c && strcmp(line, "race") == 0 && arg) {
            loader l = {"B", 0};
            pgcw_cache_stats before, after;
            pgcw_cache_stats_get(c, &before);
            void *value = NULL;
            size_t len = 0;
            st = pgcw_cache_get_or_set(c, arg, strlen(arg), PGCW_CACHE_TTL_DEFAULT,
                                       load_report, &l, &value, &len);
            pgcw_cache_stats_get(c, &after);
            if (st == PGCW_OK)
                reply(out, "ok %d %llu %.*s", l.loaded,
                      (unsigned long long)(after.lock_waits - before.lock_waits),
                      (int)len, (const char *)value);
            pgcw_free(value);
        } else {
            reply(out, "err unknown command '%s'", line);
            continue;
        }
        if (st != PGCW_OK)
            reply(out, "err %s",
                  c && pgcw_cache_errmsg(c)[0] ? pgcw_cache_errmsg(c)
                                               : pgcw_strerror(st));
    }
    pgcw_cache_free(c);
    return 0;
}

/* --- client A's side of the pipes ---------------------------------------------- */

bool cli_demo_peer_start(cli_demo_peer *p, const cli_conn_opts *conn)
{
    memset(p, 0, sizeof *p);
    p->to_peer = p->from_peer = -1;
    int cmd[2], ans[2];
    if (pipe(cmd) != 0) {
        fprintf(stderr, "%s demo: pipe: %s\n", CLI_PROG, strerror(errno));
        return false;
    }
    if (pipe(ans) != 0) {
        fprintf(stderr, "%s demo: pipe: %s\n", CLI_PROG, strerror(errno));
        close(cmd[0]);
        close(cmd[1]);
        return false;
    }
    fflush(NULL); /* nothing buffered may be written twice */
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "%s demo: fork: %s\n", CLI_PROG, strerror(errno));
        close(cmd[0]);
        close(cmd[1]);
        close(ans[0]);
        close(ans[1]);
        return false;
    }
    if (pid == 0) {
        close(cmd[1]);
        close(ans[0]);
        FILE *in = fdopen(cmd[0], "r");
        int code = in ? peer_main(in, ans[1], conn) : 1;
        if (in)
            fclose(in);
        close(ans[1]);
        exit(code);
    }
    close(cmd[0]);
    close(ans[1]);
    /* A dead B must be an error message, not a SIGPIPE that skips the clean-up. */
    signal(SIGPIPE, SIG_IGN);
    p->pid = pid;
    p->to_peer = cmd[1];
    p->from_peer = ans[0];
    return true;
}

/* Sends one command line; false after printing why. */
static bool tell(cli_demo_peer *p, const char *command)
{
    size_t n = strlen(command);
    if (write(p->to_peer, command, n) != (ssize_t)n || write(p->to_peer, "\n", 1) != 1) {
        fprintf(stderr, "%s demo: client B is gone: %s\n", CLI_PROG, strerror(errno));
        return false;
    }
    return true;
}

/* Reads B's answer to the last command into line (without "ok "). False after
 * printing B's error, or when it takes longer than REPLY_WAIT_MS. */
static bool answer(cli_demo_peer *p, char *line, size_t len)
{
    size_t n = 0;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        long waited =
            (long)(now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000;
        struct pollfd pfd = {p->from_peer, POLLIN, 0};
        if (waited >= REPLY_WAIT_MS ||
            poll(&pfd, 1, (int)(REPLY_WAIT_MS - waited)) == 0) {
            fprintf(stderr, "%s demo: client B did not answer within %d ms\n", CLI_PROG,
                    REPLY_WAIT_MS);
            return false;
        }
        char ch;
        ssize_t r = read(p->from_peer, &ch, 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            fprintf(stderr, "%s demo: client B ended\n", CLI_PROG);
            return false;
        }
        if (ch == '\n')
            break;
        if (n + 1 < len)
            line[n++] = ch;
    }
    line[n] = '\0';
    if (strncmp(line, "ok", 2) != 0) {
        fprintf(stderr, "%s demo: client B: %s\n", CLI_PROG,
                strncmp(line, "err ", 4) == 0 ? line + 4 : line);
        return false;
    }
    memmove(line, line + (line[2] ? 3 : 2), strlen(line + (line[2] ? 3 : 2)) + 1);
    return true;
}

static bool ask(cli_demo_peer *p, const char *command, char *line, size_t len)
{
    return tell(p, command) && answer(p, line, len);
}

bool cli_demo_peer_stop(cli_demo_peer *p)
{
    if (p->to_peer >= 0)
        (void)tell(p, "quit");
    if (p->to_peer >= 0)
        close(p->to_peer);
    if (p->from_peer >= 0)
        close(p->from_peer);
    p->to_peer = p->from_peer = -1;
    if (p->pid <= 0)
        return true;
    int status = 0;
    for (int waited = 0; waitpid(p->pid, &status, WNOHANG) == 0; waited += 10) {
        if (waited >= WAIT_MS) {
            fprintf(stderr, "%s demo: client B did not quit: killing it\n", CLI_PROG);
            kill(p->pid, SIGKILL);
            waitpid(p->pid, &status, 0);
            break;
        }
        sleep_ms(10);
    }
    p->pid = 0;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* --- client A, narrating -------------------------------------------------------- */

typedef struct client_a {
    pgcw_watcher *watcher; /* shared with the cache: its sink evicts the L1 */
    pgcw_sub *narrator;    /* the key notifications this demo prints */
    pgcw_cache *cache;
} client_a;

static bool a_failed(const client_a *a, const char *what, pgcw_status st)
{
    const char *msg = a->cache ? pgcw_cache_errmsg(a->cache) : "";
    fprintf(stderr, "%s demo: client A: %s failed: %s\n", CLI_PROG, what,
            msg[0] ? msg : pgcw_strerror(st));
    return false;
}

/* One narrated get: where the value came from, by the cache's own counters. */
static bool a_get(client_a *a, const char *key, const char *expect)
{
    pgcw_cache_stats before, after;
    pgcw_cache_stats_get(a->cache, &before);
    void *value = NULL;
    size_t len = 0;
    pgcw_status st = pgcw_cache_get(a->cache, key, strlen(key), &value, &len);
    pgcw_cache_stats_get(a->cache, &after);
    if (st != PGCW_OK)
        return a_failed(a, "get", st);
    const char *from = after.l1_hits > before.l1_hits ? "A's L1"
                       : after.l1_entries > before.l1_entries
                           ? "read from PostgreSQL, now in A's L1"
                           : "read from PostgreSQL";
    cli_demo_say("   A: get %s -> \"%.*s\"   [%s]", key, (int)len, (char *)value, from);
    bool ok = len == strlen(expect) && memcmp(value, expect, len) == 0;
    if (!ok)
        fprintf(stderr, "%s demo: client A expected \"%s\"\n", CLI_PROG, expect);
    pgcw_free(value);
    return ok;
}

/* Waits for the notification of key; false on a gap or after WAIT_MS. */
static bool a_notification(client_a *a, const char *key, bool show, uint64_t applied0)
{
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        long left = WAIT_MS - ((long)(now.tv_sec - t0.tv_sec) * 1000 +
                               (now.tv_nsec - t0.tv_nsec) / 1000000);
        const pgcw_event *ev = NULL;
        if (left <= 0 || pgcw_sub_get(a->narrator, left, &ev) != PGCW_OK) {
            fprintf(stderr, "%s demo: client A saw no notification within %d ms\n",
                    CLI_PROG, WAIT_MS);
            return false;
        }
        bool gap = ev->kind == PGCW_EVENT_GAP;
        bool mine = ev->kind == PGCW_EVENT_KEY && ev->key_len == strlen(key) &&
                    memcmp(ev->key, key, ev->key_len) == 0;
        if (mine && show) {
            /* The cache's sink ran before any queue got the event: the eviction,
             * if any, is done. */
            pgcw_cache_stats s;
            pgcw_cache_stats_get(a->cache, &s);
            char *text = pgcw_event_to_text(ev);
            cli_demo_say("   A: notification: %s -> %s", text ? text : "(out of memory)",
                         s.invalidations_applied > applied0 ? "A's L1 copy evicted"
                                                            : "A held no older copy");
            pgcw_free(text);
        }
        pgcw_event_free(ev);
        if (gap) {
            fprintf(stderr, "%s demo: client A's watcher lost its connection\n",
                    CLI_PROG);
            return false;
        }
        if (mine)
            return true;
    }
}

static bool a_start(client_a *a, const cli_conn_settings *s)
{
    const char *channels[] = {CACHE_CHANNEL};
    pgcw_payload_format formats[] = {PGCW_FORMAT_CACHE_KEY};
    pgcw_watcher_opts wo = {.channels = channels, .n_channels = 1, .formats = formats};
    pgcw_status st = pgcw_watcher_new(&wo, &s->opts, &a->watcher);
    if (st == PGCW_OK)
        st = pgcw_sub_new(a->watcher, NULL, &a->narrator);
    pgcw_cache_opts o = {.notify_channel = CACHE_CHANNEL, .watcher = a->watcher};
    if (st == PGCW_OK)
        st = pgcw_cache_new(&o, &s->opts, &a->cache);
    if (st == PGCW_OK)
        st = pgcw_watcher_start(a->watcher);
    if (st == PGCW_OK)
        st = pgcw_cache_wait_healthy(a->cache, WAIT_MS);
    return st == PGCW_OK || a_failed(a, "starting", st);
}

static void a_free(client_a *a)
{
    pgcw_cache_free(a->cache);
    pgcw_sub_free(a->narrator);
    pgcw_watcher_free(a->watcher); /* stops its thread */
}

/* How one client's get_or_set went, from its loader calls and lock waits. */
static const char *race_outcome(int loaded, unsigned long long lock_waits)
{
    return loaded           ? "ran the loader"
           : lock_waits > 0 ? "waited for the other's advisory lock, then read the table"
                            : "found the value in the table";
}

static bool race(client_a *a, cli_demo_peer *p, int step)
{
    cli_demo_say("%d. A and B call get_or_set(\"report\") at the same moment; the loader "
                 "takes %d ms",
                 step, LOADER_MS);
    if (!tell(p, "race report"))
        return false;
    loader l = {"A", 0};
    pgcw_cache_stats before, after;
    pgcw_cache_stats_get(a->cache, &before);
    void *value = NULL;
    size_t len = 0;
    pgcw_status st = pgcw_cache_get_or_set(a->cache, "report", 6, PGCW_CACHE_TTL_DEFAULT,
                                           load_report, &l, &value, &len);
    pgcw_cache_stats_get(a->cache, &after);
    char b[512];
    bool b_ok = answer(p, b, sizeof b); /* always read it: B may be done or failing */
    if (st != PGCW_OK) {
        pgcw_free(value);
        return a_failed(a, "get_or_set", st);
    }
    int b_loaded = 0, used = 0;
    unsigned long long b_waits = 0;
    if (b_ok && sscanf(b, "%d %llu %n", &b_loaded, &b_waits, &used) < 2) {
        fprintf(stderr, "%s demo: client B answered '%s'\n", CLI_PROG, b);
        b_ok = false;
    }
    if (b_ok) {
        cli_demo_say("   A: -> \"%.*s\"   [%s]", (int)len, (char *)value,
                     race_outcome(l.loaded, after.lock_waits - before.lock_waits));
        cli_demo_say("   B: -> \"%s\"   [%s]", b + used, race_outcome(b_loaded, b_waits));
        int total = l.loaded + b_loaded;
        if (total == 1)
            cli_demo_say("   the loader ran once in total (A: %d, B: %d)", l.loaded,
                         b_loaded);
        else
            cli_demo_say("   the loader ran %d times in total (A: %d, B: %d)", total,
                         l.loaded, b_loaded);
        b_ok = total == 1 && strlen(b + used) == len && memcmp(b + used, value, len) == 0;
        if (!b_ok)
            fprintf(stderr, "%s demo: expected one load and one value\n", CLI_PROG);
    }
    pgcw_free(value);
    return b_ok;
}

static bool run(client_a *a, cli_demo_peer *p, const cli_conn_settings *s, int step)
{
    char b[512];
    if (!ask(p, "start", b, sizeof b))
        return false;
    cli_demo_say("%d. A shared cache: one table, two client processes with an L1 each "
                 "(A: pid %d, B: pid %s)",
                 step, (int)getpid(), b);
    pgcw_cache_opts o = {.notify_channel = CACHE_CHANNEL};
    int version = 0;
    char *err = NULL;
    pgcw_status st = pgcw_cache_init_db(&o, &s->opts, &version, &err);
    if (st != PGCW_OK) {
        fprintf(stderr, "%s demo: cache init_db failed: %s\n", CLI_PROG,
                err ? err : pgcw_strerror(st));
        pgcw_free(err);
        return false;
    }
    cli_demo_say("   init_db: " CLI_DEMO_SCHEMA ".cache_entries at schema version %d, "
                 "notifying on " CACHE_CHANNEL,
                 version);
    if (!a_start(a, s))
        return false;
    if (!ask(p, "set greeting hello", b, sizeof b))
        return false;
    cli_demo_say("   B: set greeting = \"hello\"");
    /* Its notification first, so the one narrated below is the next write's. */
    if (!a_notification(a, "greeting", false, 0) || !a_get(a, "greeting", "hello") ||
        !a_get(a, "greeting", "hello"))
        return false;
    pgcw_cache_stats s0;
    pgcw_cache_stats_get(a->cache, &s0);
    if (!ask(p, "set greeting bonjour", b, sizeof b))
        return false;
    cli_demo_say("   B: set greeting = \"bonjour\"");
    if (!a_notification(a, "greeting", true, s0.invalidations_applied) ||
        !a_get(a, "greeting", "bonjour"))
        return false;
    return race(a, p, step + 1);
}

bool cli_demo_cache(cli_demo_peer *p, const cli_conn_opts *conn, int step)
{
    cli_conn_settings s;
    cache_settings(&s, conn);
    client_a a = {0};
    bool ok = run(&a, p, &s, step);
    a_free(&a);
    return ok;
}
