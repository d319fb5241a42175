/*
 * pgcachewatch/adapters/poll.h - wire a watcher into a poll(2) loop.
 *
 * Header-only and thin on purpose (like hiredis' adapters): it only translates
 * pgcw_watcher_fd()/_events()/_timeout_ms() into a struct pollfd and back into
 * pgcw_watcher_process(). Add the pollfd to your own array, or call
 * pgcw_poll_once() when the watcher is all you wait for. Same threading rules as
 * the watcher's driving calls.
 */
#ifndef PGCACHEWATCH_ADAPTERS_POLL_H
#define PGCACHEWATCH_ADAPTERS_POLL_H

#include <errno.h>
#include <poll.h>

#include "../watcher.h"

#ifdef __cplusplus
extern "C" {
#endif

/* PGCW_IO_* as poll(2) events, and poll(2)'s revents as PGCW_IO_* (an error or a
 * hangup is both: let the library's read or write find out what happened). The
 * library's own loops use these too. */
static inline short pgcw_poll_events(int io)
{
    return (short)((io & PGCW_IO_READ ? POLLIN : 0) | (io & PGCW_IO_WRITE ? POLLOUT : 0));
}

static inline int pgcw_poll_io(short revents)
{
    int io =
        (revents & POLLIN ? PGCW_IO_READ : 0) | (revents & POLLOUT ? PGCW_IO_WRITE : 0);
    if (revents & (POLLERR | POLLHUP | POLLNVAL))
        io |= PGCW_IO_READ | PGCW_IO_WRITE;
    return io;
}

/* Fills *pfd for the watcher (fd -1 when it has none: poll(2) then ignores the
 * entry) and returns the poll timeout to use: the watcher's deadline, capped at
 * max_wait_ms (< 0: no cap), -1 for none. Call again before every poll(). */
static inline int pgcw_poll_prepare(const pgcw_watcher *w, struct pollfd *pfd,
                                    int max_wait_ms)
{
    pfd->fd = pgcw_watcher_fd(w);
    pfd->events = pgcw_poll_events(pgcw_watcher_events(w));
    pfd->revents = 0;
    int64_t t = pgcw_watcher_timeout_ms(w);
    if (max_wait_ms >= 0 && (t < 0 || t > max_wait_ms))
        t = max_wait_ms;
    return t > 0x7fffffff ? 0x7fffffff : (int)t;
}

/* Waits for the watcher's fd or deadline (at most max_wait_ms; < 0: no cap) and
 * processes it once. Returns what pgcw_watcher_process() returns, or PGCW_ESYS if
 * poll(2) failed other than by a signal. */
static inline pgcw_status pgcw_poll_once(pgcw_watcher *w, int max_wait_ms)
{
    struct pollfd pfd;
    int timeout = pgcw_poll_prepare(w, &pfd, max_wait_ms);
    if (poll(&pfd, 1, timeout) < 0 && errno != EINTR)
        return PGCW_ESYS;
    return pgcw_watcher_process(w);
}

#ifdef __cplusplus
}
#endif

#endif
