#!/usr/bin/env bash
# pgserver.sh - a throwaway PostgreSQL server for tests, benchmarks and the demo.
#
#   pgserver.sh start STATEFILE [WATCH_PID]   initdb into a new temporary directory,
#                                             start on a free port with the unix
#                                             socket inside that directory, write
#                                             `key=value` lines (dsn, pid, dir, port)
#                                             to STATEFILE
#   pgserver.sh stop STATEFILE                stop that server by its pid, remove its
#                                             directory and STATEFILE
#   pgserver.sh restart STATEFILE MODE [DOWN] pg_ctl stop -m MODE (fast, immediate),
#                                             DOWN seconds down, start again on the
#                                             same port (fault tests)
#
# Uses Debian's postgresql package (/usr/lib/postgresql/*/bin) or whatever initdb
# is on PATH. As root, the server runs as an unprivileged user (postgres, else
# nobody), since PostgreSQL refuses to run as root. With WATCH_PID, a watchdog stops
# the server when that process is gone, so a killed test run leaves nothing behind.
# Only ever listens on the loopback address and a unix socket. Runs with fsync and
# full_page_writes off (nothing here must survive a crash) unless PGCW_PG_DURABLE=1,
# for benchmarks that measure what a WAL flush costs.
set -euo pipefail

die() { echo "pgserver.sh: $*" >&2; exit 1; }

find_bindir() {
  if [ -n "${PGCW_PG_BINDIR:-}" ]; then echo "$PGCW_PG_BINDIR"; return; fi
  local d
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    [ -x "$d/initdb" ] && { echo "$d"; return; }
  done
  command -v initdb >/dev/null 2>&1 && { dirname "$(command -v initdb)"; return; }
  die "no PostgreSQL server binaries found (apt-get install postgresql)"
}

# Runs a command as the server's user.
as_server_user() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u "$SERVER_USER" -- "$@"
  else
    "$@"
  fi
}

port_free() {
  # Nothing accepts on 127.0.0.1:$1 (bash's /dev/tcp; no extra tools needed).
  ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# pg_start BINDIR DIR PORT DURABLE: starts the server of DIR/data (and waits).
pg_start() {
  as_server_user "$1/pg_ctl" -D "$2/data" -l "$2/server.log" -w -t 60 \
    -o "-p $3 -k $2 -c listen_addresses=127.0.0.1 -c fsync=$4 \
        -c full_page_writes=$4 -c max_connections=200 \
        -c shared_buffers=128MB -c wal_level=logical -c max_replication_slots=20 \
        -c max_wal_senders=20" start >/dev/null 2>&1
}

start() {
  local state="$1" watch="${2:-}"
  local bindir dir port logf pid durable=off
  [ "${PGCW_PG_DURABLE:-0}" = 1 ] && durable=on
  # A state file still naming a server (a repeated fixture, an interrupted run):
  # stop that one first rather than orphan it by overwriting its record.
  [ -f "$state" ] && (stop "$state")
  bindir=$(find_bindir)
  SERVER_USER=$(id -un)
  if [ "$(id -u)" -eq 0 ]; then
    if id postgres >/dev/null 2>&1; then SERVER_USER=postgres; else SERVER_USER=nobody; fi
  fi
  dir=$(mktemp -d "${TMPDIR:-/tmp}/pgcw-pg.XXXXXX")
  chmod 0755 "$dir"
  [ "$(id -u)" -eq 0 ] && chown "$SERVER_USER" "$dir"
  as_server_user "$bindir/initdb" -D "$dir/data" -U postgres --auth=trust \
    --no-sync -E UTF8 --locale=C >"$dir/initdb.log" 2>&1 ||
    { cat "$dir/initdb.log" >&2; rm -rf "$dir"; die "initdb failed"; }

  local tries=0
  while :; do
    port=$(( 20000 + (RANDOM * 32768 + RANDOM) % 40000 ))
    tries=$((tries + 1))
    port_free "$port" || continue
    logf="$dir/server.log"
    if pg_start "$bindir" "$dir" "$port" "$durable"; then
      break
    fi
    if [ $tries -ge 5 ]; then
      cat "$logf" >&2 || true; rm -rf "$dir"; die "server did not start"
    fi
  done
  pid=$(head -1 "$dir/data/postmaster.pid")
  {
    echo "dsn=host=$dir port=$port user=postgres dbname=postgres"
    echo "pid=$pid"
    echo "dir=$dir"
    echo "port=$port"
    echo "bindir=$bindir"
    echo "durable=$durable"
    echo "user=$SERVER_USER"
  } >"$state"
  if [ -n "$watch" ]; then
    # Watchdog: when the watched process ends, stop whatever server runs in the
    # directory then (a restart gives it a new pid) and clean up. It ends by itself
    # once the directory is gone (the server was stopped).
    nohup bash -c '
      while kill -0 "$1" 2>/dev/null && [ -d "$2" ]; do sleep 1; done
      pid=$(head -1 "$2/data/postmaster.pid" 2>/dev/null)
      if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -INT "$pid" 2>/dev/null
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null
      fi
      case "$2" in */pgcw-pg.*) rm -rf "$2" ;; esac' _ "$watch" "$dir" >/dev/null 2>&1 &
  fi
  echo "dsn=host=$dir port=$port user=postgres dbname=postgres"
}

stop() {
  local state="$1" pid dir
  [ -f "$state" ] || exit 0
  pid=$(sed -n 's/^pid=//p' "$state")
  dir=$(sed -n 's/^dir=//p' "$state")
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -INT "$pid" # fast shutdown
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
  fi
  case "$dir" in */pgcw-pg.*) rm -rf "$dir" ;; esac
  rm -f "$state"
}

# restart STATEFILE MODE [DOWN_SECONDS]: stops the server with pg_ctl's MODE (fast,
# immediate), waits DOWN_SECONDS (default 0) and starts it again on the same port
# and directory; the state file gets the new pid. For fault tests.
restart() {
  local state="$1" mode="$2" down="${3:-0}" dir port bindir durable
  dir=$(sed -n 's/^dir=//p' "$state")
  port=$(sed -n 's/^port=//p' "$state")
  bindir=$(sed -n 's/^bindir=//p' "$state")
  durable=$(sed -n 's/^durable=//p' "$state")
  SERVER_USER=$(sed -n 's/^user=//p' "$state")
  [ -n "$dir" ] && [ -n "$SERVER_USER" ] || die "restart: $state names no server"
  as_server_user "$bindir/pg_ctl" -D "$dir/data" -m "$mode" -w -t 60 stop >/dev/null ||
    die "restart: stop -m $mode failed"
  sleep "$down"
  pg_start "$bindir" "$dir" "$port" "${durable:-off}" || die "restart: start failed"
  sed -i "s/^pid=.*/pid=$(head -1 "$dir/data/postmaster.pid")/" "$state"
}

case "${1:-}" in
  restart) [ $# -ge 3 ] || die "usage: pgserver.sh restart STATEFILE fast|immediate [DOWN_SECONDS]"
    restart "$2" "$3" "${4:-0}" ;;
  start) [ $# -ge 2 ] || die "usage: pgserver.sh start STATEFILE [WATCH_PID]"; start "$2" "${3:-}" ;;
  stop) [ $# -ge 2 ] || die "usage: pgserver.sh stop STATEFILE"; stop "$2" ;;
  *) die "usage: pgserver.sh start|stop STATEFILE" ;;
esac
