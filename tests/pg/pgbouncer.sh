#!/usr/bin/env bash
# pgbouncer.sh - a throwaway PgBouncer in transaction pooling mode in front of the
# tests' throwaway PostgreSQL (pgserver.sh), for the tests of what LISTEN cannot do
# through it and what polling can.
#
#   pgbouncer.sh start STATEFILE PG_STATEFILE [WATCH_PID]
#                     write a configuration into a new temporary directory that
#                     forwards every database to PG_STATEFILE's server as its user,
#                     start pgbouncer on a free loopback port (no unix socket),
#                     write `key=value` lines (dsn, pid, dir, port) to STATEFILE
#   pgbouncer.sh stop STATEFILE
#                     stop that pgbouncer by its pid, remove its directory and
#                     STATEFILE
#
# Uses Debian's pgbouncer package. As root it runs as the server's user (pgbouncer
# refuses to run as root). With WATCH_PID, a watchdog stops it when that process
# is gone, so a killed test leaves nothing behind. Only ever listens on 127.0.0.1.
set -euo pipefail

die() { echo "pgbouncer.sh: $*" >&2; exit 1; }

val() { sed -n "s/^$1=//p" "$2"; }

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

start() {
  local state="$1" pgstate="$2" watch="${3:-}" bin dir port user pgdir pgport pid
  bin=$(command -v pgbouncer || echo /usr/sbin/pgbouncer)
  [ -x "$bin" ] || die "no pgbouncer (apt-get install pgbouncer)"
  [ -f "$state" ] && (stop "$state")
  pgdir=$(val dir "$pgstate")
  pgport=$(val port "$pgstate")
  user=$(val user "$pgstate")
  [ -n "$pgdir" ] && [ -n "$pgport" ] || die "$pgstate names no server"
  dir=$(mktemp -d "${TMPDIR:-/tmp}/pgcw-bouncer.XXXXXX")
  chmod 0755 "$dir"
  [ "$(id -u)" -eq 0 ] && chown "$user" "$dir"
  for _ in $(seq 20); do
    port=$(( 20000 + (RANDOM * 32768 + RANDOM) % 40000 ))
    port_free "$port" && break
  done
  # auth_type any: no authentication, every client logs in as the server's
  # superuser (postgres), which is what the tests' server trusts.
  cat >"$dir/pgbouncer.ini" <<INI
[databases]
* = host=$pgdir port=$pgport user=postgres
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = any
pool_mode = transaction
max_client_conn = 200
default_pool_size = 20
ignore_startup_parameters = extra_float_digits,options,tcp_user_timeout
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
INI
  [ "$(id -u)" -eq 0 ] && chown "$user" "$dir/pgbouncer.ini"
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u "$user" -- "$bin" -d "$dir/pgbouncer.ini" >/dev/null 2>&1 ||
      { cat "$dir/pgbouncer.log" >&2 || true; rm -rf "$dir"; die "pgbouncer did not start"; }
  else
    "$bin" -d "$dir/pgbouncer.ini" >/dev/null 2>&1 ||
      { cat "$dir/pgbouncer.log" >&2 || true; rm -rf "$dir"; die "pgbouncer did not start"; }
  fi
  for _ in $(seq 100); do [ -s "$dir/pgbouncer.pid" ] && ! port_free "$port" && break; sleep 0.05; done
  pid=$(cat "$dir/pgbouncer.pid" 2>/dev/null) || { rm -rf "$dir"; die "no pid file"; }
  {
    echo "dsn=host=127.0.0.1 port=$port dbname=postgres user=postgres"
    echo "pid=$pid"
    echo "dir=$dir"
    echo "port=$port"
  } >"$state"
  if [ -n "$watch" ]; then
    nohup bash -c '
      while kill -0 "$1" 2>/dev/null && [ -d "$2" ]; do sleep 1; done
      kill -INT "$3" 2>/dev/null
      for _ in $(seq 50); do kill -0 "$3" 2>/dev/null || break; sleep 0.1; done
      kill -KILL "$3" 2>/dev/null
      case "$2" in */pgcw-bouncer.*) rm -rf "$2" ;; esac' _ "$watch" "$dir" "$pid" \
      >/dev/null 2>&1 &
  fi
  echo "dsn=host=127.0.0.1 port=$port dbname=postgres user=postgres"
}

stop() {
  local state="$1" pid dir
  [ -f "$state" ] || exit 0
  pid=$(val pid "$state")
  dir=$(val dir "$state")
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -INT "$pid"
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
  fi
  case "$dir" in */pgcw-bouncer.*) rm -rf "$dir" ;; esac
  rm -f "$state"
}

case "${1:-}" in
  start) [ $# -ge 3 ] || die "usage: pgbouncer.sh start STATEFILE PG_STATEFILE [WATCH_PID]"
    start "$2" "$3" "${4:-}" ;;
  stop) [ $# -ge 2 ] || die "usage: pgbouncer.sh stop STATEFILE"; stop "$2" ;;
  *) die "usage: pgbouncer.sh start|stop STATEFILE ..." ;;
esac
