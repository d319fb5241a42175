/*
 * tcpproxy.h - a TCP proxy on loopback for fault tests: it forwards every
 * connection to a target port until told to stall, and then forwards nothing in
 * either direction while keeping every socket open (new connections are accepted
 * and hear nothing), as a network that stops carrying packets without resetting
 * anything. Unstalled, it forwards again what was held back. One thread.
 *
 * What it cannot show: the proxy's own kernel still acknowledges what it receives,
 * so TCP keepalives and tcp_user_timeout see a healthy peer; only what the
 * library does at its own level (pings, deadlines) notices the stall.
 */
#ifndef PGCW_TEST_TCPPROXY_H
#define PGCW_TEST_TCPPROXY_H

#include <stdbool.h>

typedef struct tcpproxy tcpproxy;

/* Starts a proxy on 127.0.0.1 (a free port, in *port) to 127.0.0.1:target_port.
 * Fails the test on error. */
tcpproxy *tcpproxy_start(int target_port, int *port);

/* Stops or resumes forwarding. Thread-safe. */
void tcpproxy_stall(tcpproxy *p, bool stalled);

/* Closes every connection and the listening socket, and joins the thread. */
void tcpproxy_stop(tcpproxy *p);

#endif
