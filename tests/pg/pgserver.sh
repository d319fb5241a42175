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
    if as_server_user "$bindir/pg_ctl" -D "$dir/data" -l "$logf" -w -t 60 \
        -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=$durable \
            -c full_page_writes=$durable -c max_connections=200 \
            -c shared_buffers=128MB" start >/dev/null 2>&1; then
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
  } >"$state"
  if [ -n "$watch" ]; then
    # Watchdog: when the watched process ends, stop the server and clean up.
    nohup bash -c '
      while kill -0 "$1" 2>/dev/null && kill -0 "$2" 2>/dev/null; do sleep 1; done
      if kill -0 "$2" 2>/dev/null; then
        kill -INT "$2" 2>/dev/null
        for _ in $(seq 50); do kill -0 "$2" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$2" 2>/dev/null
      fi
      rm -rf "$3"' _ "$watch" "$pid" "$dir" >/dev/null 2>&1 &
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

case "${1:-}" in
  start) [ $# -ge 2 ] || die "usage: pgserver.sh start STATEFILE [WATCH_PID]"; start "$2" "${3:-}" ;;
  stop) [ $# -ge 2 ] || die "usage: pgserver.sh stop STATEFILE"; stop "$2" ;;
  *) die "usage: pgserver.sh start|stop STATEFILE" ;;
esac
