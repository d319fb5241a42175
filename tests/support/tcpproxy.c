/*
 * tcpproxy.c - the stalling loopback proxy of the fault tests (tcpproxy.h).
 */
#define _POSIX_C_SOURCE 200809L
#include "tcpproxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#define MAX_PAIRS 64
#define BUF 65536

typedef struct half { /* bytes read from one side, not yet written to the other */
    char buf[BUF];
    size_t len;
} half;

typedef struct pair {
    int fd[2];   /* 0: the client, 1: the target */
    half to[2];  /* to[i]: waiting to be written to fd[i] */
    bool closed; /* either side ended: both are closed */
} pair;

struct tcpproxy {
    int listen_fd, target_port;
    int wake[2]; /* a pipe: stop or stall changed */
    atomic_bool stalled, stop;
    pthread_t thread;
    pair pairs[MAX_PAIRS];
    size_t n;
};

static void close_pair(pair *p)
{
    close(p->fd[0]);
    close(p->fd[1]);
    p->closed = true;
}

static int connect_target(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void accept_one(tcpproxy *p)
{
    int c = accept(p->listen_fd, NULL, NULL);
    if (c < 0)
        return;
    int t = p->n < MAX_PAIRS ? connect_target(p->target_port) : -1;
    if (t < 0) {
        close(c);
        return;
    }
    pair *np = &p->pairs[p->n++];
    memset(np, 0, sizeof *np);
    np->fd[0] = c;
    np->fd[1] = t;
}

/* Reads what side i sent into the other side's buffer, writes what waits for
 * side i. Ends the pair when either side is gone. */
static void pump(pair *p, int i, short revents)
{
    int o = 1 - i;
    if (revents & (POLLERR | POLLHUP | POLLNVAL)) {
        close_pair(p);
        return;
    }
    if (revents & POLLIN) {
        half *h = &p->to[o];
        ssize_t r = read(p->fd[i], h->buf + h->len, BUF - h->len);
        if (r <= 0) {
            close_pair(p);
            return;
        }
        h->len += (size_t)r;
    }
    if ((revents & POLLOUT) && p->to[i].len) {
        half *h = &p->to[i];
        ssize_t w = write(p->fd[i], h->buf, h->len);
        if (w < 0 && errno != EAGAIN) {
            close_pair(p);
            return;
        }
        if (w > 0) {
            memmove(h->buf, h->buf + w, h->len - (size_t)w);
            h->len -= (size_t)w;
        }
    }
}

static void *proxy_main(void *arg)
{
    tcpproxy *p = arg;
    struct pollfd fds[2 + 2 * MAX_PAIRS];
    while (!atomic_load(&p->stop)) {
        bool stalled = atomic_load(&p->stalled);
        size_t n = 0;
        fds[n++] = (struct pollfd){.fd = p->wake[0], .events = POLLIN};
        fds[n++] = (struct pollfd){.fd = p->listen_fd, .events = POLLIN};
        for (size_t k = 0; k < p->n; k++)
            for (int i = 0; i < 2; i++) {
                pair *pr = &p->pairs[k];
                short ev = 0;
                if (!pr->closed && !stalled) {
                    if (pr->to[1 - i].len < BUF)
                        ev |= POLLIN;
                    if (pr->to[i].len)
                        ev |= POLLOUT;
                }
                /* A stalled or closed pair is not polled at all (fd -1). */
                fds[n++] = (struct pollfd){.fd = ev ? pr->fd[i] : -1, .events = ev};
            }
        if (poll(fds, n, 1000) < 0 && errno != EINTR)
            break;
        if (fds[0].revents & POLLIN) {
            char drain[64];
            (void)!read(p->wake[0], drain, sizeof drain);
        }
        if (fds[1].revents & POLLIN)
            accept_one(p); /* accepted even when stalled: it hears nothing */
        for (size_t k = 0, f = 2; k < p->n && f < n; k++)
            for (int i = 0; i < 2; i++, f++)
                if (fds[f].fd >= 0 && fds[f].revents && !p->pairs[k].closed)
                    pump(&p->pairs[k], i, fds[f].revents);
    }
    return NULL;
}

tcpproxy *tcpproxy_start(int target_port, int *port)
{
    tcpproxy *p = calloc(1, sizeof *p);
    assert_non_null(p);
    p->target_port = target_port;
    p->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(p->listen_fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(p->listen_fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(p->listen_fd, 16), 0);
    socklen_t len = sizeof a;
    assert_int_equal(getsockname(p->listen_fd, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    assert_int_equal(pipe(p->wake), 0);
    assert_int_equal(pthread_create(&p->thread, NULL, proxy_main, p), 0);
    return p;
}

static void wake(tcpproxy *p)
{
    (void)!write(p->wake[1], "x", 1);
}

void tcpproxy_stall(tcpproxy *p, bool stalled)
{
    atomic_store(&p->stalled, stalled);
    wake(p);
}

void tcpproxy_stop(tcpproxy *p)
{
    atomic_store(&p->stop, true);
    wake(p);
    pthread_join(p->thread, NULL);
    for (size_t k = 0; k < p->n; k++)
        if (!p->pairs[k].closed)
            close_pair(&p->pairs[k]);
    close(p->listen_fd);
    close(p->wake[0]);
    close(p->wake[1]);
    free(p);
}
