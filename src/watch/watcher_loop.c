/*
 * watcher_loop.c - the watcher's own poll(2) loop: pgcw_watcher_run() on the
 * caller's thread, pgcw_watcher_start()/_stop() on a thread of its own,
 * pgcw_watcher_wait_healthy(), and the wakeup pipe behind _interrupt().
 *
 * Must never busy-wait (every wait is poll(2) or a condition variable with a
 * deadline), and pgcw_watcher_interrupt() must stay async-signal-safe.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <time.h>
#include <unistd.h>

#include "watcher_internal.h"

static void drain_wakeups(pgcw_watcher *w)
{
    char buf[64];
    while (read(w->wake_rd, buf, sizeof buf) > 0)
        ;
}

/* Monotonic deadline in us, or -1 for "never" (negative or absurdly long timeouts,
 * which would overflow). */
static int64_t deadline_after(int64_t timeout_ms)
{
    if (timeout_ms < 0 || timeout_ms > INT64_C(1000000000000))
        return -1;
    return pgcw__mono_us() + timeout_ms * 1000;
}

static int64_t remaining_ms(int64_t deadline_us)
{
    if (deadline_us < 0)
        return -1;
    int64_t left = deadline_us - pgcw__mono_us();
    return left <= 0 ? 0 : (left + 999) / 1000;
}

/* Waits for the socket, a wakeup or the next deadline (at most max_wait_ms; < 0:
 * no cap), then runs one step. */
static void loop_once(pgcw_watcher *w, int64_t max_wait_ms)
{
    int fd = pgcw_watcher_fd(w);
    int want = pgcw_watcher_events(w);
    int64_t wait = pgcw_watcher_timeout_ms(w);
    if (max_wait_ms >= 0 && (wait < 0 || wait > max_wait_ms))
        wait = max_wait_ms;
    if (wait > INT_MAX)
        wait = INT_MAX;

    struct pollfd p[2] = {{.fd = w->wake_rd, .events = POLLIN}};
    nfds_t n = 1;
    if (fd >= 0) {
        p[1] = (struct pollfd){.fd = fd,
                               .events = (short)((want & PGCW_IO_READ ? POLLIN : 0) |
                                                 (want & PGCW_IO_WRITE ? POLLOUT : 0))};
        n = 2;
    }
    int r = poll(p, n, (int)wait);
    if (r < 0 && errno != EINTR) {
        /* Should not happen (EFAULT/ENOMEM); do not spin on it. */
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    if (r > 0 && p[0].revents)
        drain_wakeups(w);
    int revents = 0;
    if (r > 0 && n == 2) {
        if (p[1].revents & POLLIN)
            revents |= PGCW_IO_READ;
        if (p[1].revents & POLLOUT)
            revents |= PGCW_IO_WRITE;
        /* Errors and hangups are for libpq to report: let it read and write. */
        if (p[1].revents & (POLLERR | POLLHUP | POLLNVAL))
            revents |= PGCW_IO_READ | PGCW_IO_WRITE;
    }
    pgcw__watcher_step(w, revents);
}

pgcw_status pgcw_watcher_run(pgcw_watcher *w, int64_t timeout_ms)
{
    if (!w)
        return PGCW_EINVAL;
    if (w->thread_started)
        return PGCW_ESTATE;
    int64_t deadline = deadline_after(timeout_ms);
    for (;;) {
        /* Sticky until a run() sees it, so a signal that lands between two runs is
         * not lost. */
        if (atomic_exchange(&w->interrupted, false))
            return PGCW_OK;
        loop_once(w, remaining_ms(deadline));
        if (deadline >= 0 && pgcw__mono_us() >= deadline)
            return PGCW_OK;
    }
}

void pgcw_watcher_interrupt(pgcw_watcher *w)
{
    if (!w)
        return;
    int saved = errno;
    atomic_store(&w->interrupted, true);
    ssize_t r = write(w->wake_wr, "", 1);
    (void)r; /* a full pipe already guarantees a wakeup */
    errno = saved;
}

static void *thread_main(void *arg)
{
    pgcw_watcher *w = arg;
    while (!atomic_load(&w->stopping))
        loop_once(w, -1);
    return NULL;
}

pgcw_status pgcw_watcher_start(pgcw_watcher *w)
{
    if (!w)
        return PGCW_EINVAL;
    if (w->thread_started)
        return PGCW_ESTATE;
    atomic_store(&w->stopping, false);
    if (pthread_create(&w->thread, NULL, thread_main, w) != 0)
        return PGCW_ESYS;
    w->thread_started = true;
    return PGCW_OK;
}

pgcw_status pgcw_watcher_stop(pgcw_watcher *w)
{
    if (!w)
        return PGCW_EINVAL;
    if (w->thread_started) {
        atomic_store(&w->stopping, true);
        ssize_t r = write(w->wake_wr, "", 1);
        (void)r;
        pthread_join(w->thread, NULL);
        w->thread_started = false;
        drain_wakeups(w);
    }
    if (w->st != PGCW__ST_IDLE) {
        pgcw__watcher_close_conn(w);
        w->st = PGCW__ST_IDLE;
        w->backoff_us = w->reconnect_min_us;
        /* Notifications are not received while stopped: that is a gap too. */
        if (pgcw__watcher_became_unhealthy(w, false))
            pgcw__logf(w->log, w->log_ctx, PGCW_LOG_INFO, "stopped listening");
    }
    return PGCW_OK;
}

static struct timespec abs_mono(int64_t us)
{
    return (struct timespec){.tv_sec = (time_t)(us / 1000000),
                             .tv_nsec = (long)(us % 1000000) * 1000};
}

pgcw_status pgcw_watcher_wait_healthy(pgcw_watcher *w, int64_t timeout_ms)
{
    if (!w)
        return PGCW_EINVAL;
    int64_t deadline = deadline_after(timeout_ms);
    if (w->thread_started) {
        struct timespec until = abs_mono(deadline);
        pthread_mutex_lock(&w->state_mu);
        while (!atomic_load(&w->healthy)) {
            if (deadline < 0)
                pthread_cond_wait(&w->state_cv, &w->state_mu);
            else if (pthread_cond_timedwait(&w->state_cv, &w->state_mu, &until) ==
                     ETIMEDOUT)
                break;
        }
        pthread_mutex_unlock(&w->state_mu);
    } else {
        while (!atomic_load(&w->healthy)) {
            int64_t left = remaining_ms(deadline);
            if (left == 0)
                break;
            loop_once(w, left);
        }
    }
    if (atomic_load(&w->healthy))
        return PGCW_OK;
    if (!pgcw_watcher_errmsg(w)[0])
        pgcw__watcher_set_err(w, "not healthy after %lld ms (still connecting)",
                              (long long)timeout_ms);
    return PGCW_ETIMEDOUT;
}
