/*
 * watcher_loop.c - driving the sources: the event-loop interface (fd, events,
 * timeout, process), pgcw_watcher_run() on the caller's thread,
 * pgcw_watcher_start()/_stop() on a thread of its own, pgcw_watcher_wait_healthy(),
 * and the wakeup pipe behind _interrupt().
 *
 * The fd interface hands out one descriptor: today's watchers have exactly one
 * source with a socket (LISTEN). A second socket-bearing source (logical decoding)
 * will need an epoll set here; the own-thread and run() loops already poll every
 * source. Must never busy-wait (every wait is poll(2) or a condition variable with a
 * deadline), and pgcw_watcher_interrupt() must stay async-signal-safe.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <unistd.h>

#include "core_time.h"
#include "pgcachewatch/adapters/poll.h"
#include "watcher_internal.h"

#define MAX_POLL_SOURCES 8

static void drain_wakeups(pgcw_watcher *w)
{
    char buf[64];
    while (read(w->wake_rd, buf, sizeof buf) > 0)
        ;
}

/* The earliest deadline of any source (PGCW__NEVER if none). */
static int64_t next_deadline(const pgcw_watcher *w)
{
    int64_t d = PGCW__NEVER;
    for (size_t i = 0; i < w->n_sources; i++)
        d = pgcw__deadline_min(d, w->sources[i]->vt->deadline_us(w->sources[i]));
    return d;
}

int pgcw_watcher_fd(const pgcw_watcher *w)
{
    if (!w)
        return -1;
    for (size_t i = 0; i < w->n_sources; i++) {
        int fd = w->sources[i]->vt->fd(w->sources[i]);
        if (fd >= 0)
            return fd;
    }
    return -1;
}

int pgcw_watcher_events(const pgcw_watcher *w)
{
    if (!w)
        return 0;
    for (size_t i = 0; i < w->n_sources; i++)
        if (w->sources[i]->vt->fd(w->sources[i]) >= 0)
            return w->sources[i]->vt->events(w->sources[i]);
    return 0;
}

int64_t pgcw_watcher_timeout_ms(const pgcw_watcher *w)
{
    if (!w)
        return -1;
    return pgcw__deadline_left_ms(next_deadline(w));
}

pgcw_status pgcw_watcher_process(pgcw_watcher *w)
{
    if (!w)
        return PGCW_EINVAL;
    if (w->thread_started)
        return PGCW_ESTATE;
    for (size_t i = 0; i < w->n_sources; i++)
        w->sources[i]->vt->step(w->sources[i], -1);
    return PGCW_OK;
}

/* Waits for any source's socket, a wakeup or the next deadline (at most
 * max_wait_ms; < 0: no cap), then steps every source. */
static void loop_once(pgcw_watcher *w, int64_t max_wait_ms)
{
    struct pollfd p[1 + MAX_POLL_SOURCES] = {{.fd = w->wake_rd, .events = POLLIN}};
    size_t slot[MAX_POLL_SOURCES];
    nfds_t n = 1;
    for (size_t i = 0; i < w->n_sources && n < 1 + MAX_POLL_SOURCES; i++) {
        int fd = w->sources[i]->vt->fd(w->sources[i]);
        if (fd < 0)
            continue;
        slot[n - 1] = i;
        p[n++] = (struct pollfd){
            .fd = fd,
            .events = pgcw_poll_events(w->sources[i]->vt->events(w->sources[i]))};
    }
    int64_t wait = pgcw__deadline_left_ms(next_deadline(w));
    if (max_wait_ms >= 0 && (wait < 0 || wait > max_wait_ms))
        wait = max_wait_ms;
    if (wait > INT_MAX)
        wait = INT_MAX;
    int r = poll(p, n, (int)wait);
    if (r < 0 && errno != EINTR)
        pgcw__sleep_us(10000); /* should not happen (EFAULT/ENOMEM); do not spin */
    if (r > 0 && p[0].revents)
        drain_wakeups(w);
    int revents[MAX_POLL_SOURCES] = {0};
    for (nfds_t k = 1; r > 0 && k < n; k++)
        revents[k - 1] = pgcw_poll_io(p[k].revents);
    /* Sources without a socket (between attempts) step on their deadline. */
    for (size_t i = 0, k = 0; i < w->n_sources; i++) {
        int ev = 0;
        if (k < n - 1 && slot[k] == i)
            ev = revents[k++];
        w->sources[i]->vt->step(w->sources[i], ev);
    }
}

pgcw_status pgcw_watcher_run(pgcw_watcher *w, int64_t timeout_ms)
{
    if (!w)
        return PGCW_EINVAL;
    if (w->thread_started)
        return PGCW_ESTATE;
    int64_t deadline = pgcw__deadline_in_ms(timeout_ms);
    for (;;) {
        /* Sticky until a run() sees it, so a signal that lands between two runs is
         * not lost. */
        if (atomic_exchange(&w->interrupted, false))
            return PGCW_OK;
        loop_once(w, pgcw__deadline_left_ms(deadline));
        if (deadline != PGCW__NEVER && pgcw__mono_us() >= deadline)
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
    /* Notifications are not received while stopped: that is a gap too (the sources
     * report unhealthy as they close). */
    bool was = atomic_load(&w->healthy);
    for (size_t i = 0; i < w->n_sources; i++)
        w->sources[i]->vt->close(w->sources[i]);
    if (was && !atomic_load(&w->healthy))
        pgcw__logf(w->log, w->log_ctx, PGCW_LOG_INFO, "stopped listening");
    return PGCW_OK;
}

pgcw_status pgcw_watcher_wait_healthy(pgcw_watcher *w, int64_t timeout_ms)
{
    if (!w)
        return PGCW_EINVAL;
    int64_t deadline = pgcw__deadline_in_ms(timeout_ms);
    uint64_t permanent = atomic_load(&w->permanent_failures);
    bool refused = false;
    if (w->thread_started) {
        pthread_mutex_lock(&w->state_mu);
        while (!atomic_load(&w->healthy) &&
               !(refused = atomic_load(&w->permanent_failures) != permanent) &&
               pgcw__cond_wait_until(&w->state_cv, &w->state_mu, deadline))
            ;
        pthread_mutex_unlock(&w->state_mu);
    } else {
        while (!atomic_load(&w->healthy) &&
               !(refused = atomic_load(&w->permanent_failures) != permanent)) {
            int64_t left = pgcw__deadline_left_ms(deadline);
            if (left == 0)
                break;
            loop_once(w, left);
        }
    }
    if (atomic_load(&w->healthy))
        return PGCW_OK;
    if (refused)
        return PGCW_ECONNECT;
    pthread_mutex_lock(&w->err_mu);
    if (!w->err[0])
        pgcw__errf(w->err, sizeof w->err, "not healthy after %lld ms (still connecting)",
                   (long long)timeout_ms);
    pthread_mutex_unlock(&w->err_mu);
    return PGCW_ETIMEDOUT;
}
