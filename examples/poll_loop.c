/*
 * poll_loop.c - drive a watcher from your own poll(2) loop and print every event.
 *
 *   poll_loop [conninfo [channel ...]]      (conninfo "" or absent: $PGDSN / PG*)
 *
 * The whole integration is: wait until pgcw_watcher_fd() is ready for
 * pgcw_watcher_events() or pgcw_watcher_timeout_ms() passes, call
 * pgcw_watcher_process(), drain the subscriber. Re-read fd/events/timeout every
 * turn: they change while the watcher (re)connects. Stops on SIGINT/SIGTERM.
 * Uses the public API only; must stay short enough to read in one go.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <pgcachewatch/pgcachewatch.h>

static volatile sig_atomic_t stop;
static int stop_pipe[2] = {-1, -1}; /* wakes poll() from the signal handler */

static void on_signal(int sig)
{
    (void)sig;
    int saved = errno;
    stop = 1;
    ssize_t r = write(stop_pipe[1], "", 1);
    (void)r;
    errno = saved;
}

static void on_log(void *ctx, pgcw_log_level level, const char *message)
{
    (void)ctx;
    fprintf(stderr, "%s: %s\n", pgcw_log_level_name(level), message);
}

int main(int argc, char **argv)
{
    pgcw_watcher_opts opts = {0};
    pgcw_conn_opts conn = {0};
    if (argc > 1 && argv[1][0])
        conn.conninfo = argv[1];
    if (argc > 2) {
        opts.channels = (const char *const *)&argv[2];
        opts.n_channels = (size_t)(argc - 2);
    }
    opts.log = on_log;

    pgcw_watcher *w = NULL;
    pgcw_sub *sub = NULL;
    pgcw_status st = pgcw_watcher_new(&opts, &conn, &w);
    if (st == PGCW_OK)
        st = pgcw_sub_new(w, NULL, &sub);
    if (st != PGCW_OK || pipe(stop_pipe) != 0) {
        fprintf(stderr, "poll_loop: %s\n", pgcw_strerror(st));
        pgcw_watcher_free(w);
        return 1;
    }
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    bool was_healthy = false;
    while (!stop) {
        int fd = pgcw_watcher_fd(w);
        int want = pgcw_watcher_events(w);
        struct pollfd p[2] = {{.fd = stop_pipe[0], .events = POLLIN},
                              {.fd = fd,
                               .events = (short)((want & PGCW_IO_READ ? POLLIN : 0) |
                                                 (want & PGCW_IO_WRITE ? POLLOUT : 0))}};
        int64_t timeout = pgcw_watcher_timeout_ms(w);
        if (poll(p, fd >= 0 ? 2 : 1, timeout > 60000 ? 60000 : (int)timeout) < 0 &&
            errno != EINTR)
            break;
        pgcw_watcher_process(w);

        if (pgcw_watcher_healthy(w) != was_healthy) {
            was_healthy = !was_healthy;
            fprintf(stderr,
                    was_healthy ? "healthy (epoch %llu)\n" : "unhealthy (epoch %llu)\n",
                    (unsigned long long)pgcw_watcher_epoch(w));
        }
        const pgcw_event *ev;
        while (pgcw_sub_try_get(sub, &ev) == PGCW_OK) {
            char *line = pgcw_event_to_text(ev);
            printf("%s\n", line ? line : "(out of memory)");
            fflush(stdout);
            pgcw_free(line);
            pgcw_event_free(ev);
        }
    }
    pgcw_sub_free(sub);
    pgcw_watcher_free(w);
    close(stop_pipe[0]);
    close(stop_pipe[1]);
    return 0;
}
