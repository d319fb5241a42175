#!/usr/bin/env bash
# run_cache.sh - the rerunnable cache benchmark: builds the bench_cache_* programs,
# starts a throwaway PostgreSQL (tests/pg/pgserver.sh), runs every program against
# it, unpinned and pinned, and stops that server by its pid on every exit path (a
# watchdog bound to this script's pid covers kill -9). Prints everything.
#
#   bench/run_cache.sh                          # the figures in docs/bench.md
#   bench/run_cache.sh --pin on --only read,write
#   bench/run_cache.sh --quick                  # a smoke test of the harness
#   bench/run_cache.sh --dsn 'host=/tmp port=5432 dbname=postgres'  # your server
#
# Options: --pin off|on|both (default both: unpinned, then pinned), --only LIST
# (of hit, read, write, inval; default all), --quick, --durable on|off (default
# on: when write runs, its writers are run again on a second throwaway server
# with fsync and full_page_writes on, PGCW_PG_DURABLE=1, since the first runs
# with them off and so hides what a WAL flush costs a LOGGED commit), --dsn DSN
# (use that server: none is started, it is never re-pinned, no durable pass).
# Anything after -- goes to every program. Pinned means: the server's processes
# (postmaster, and so every backend it starts) on the first CPU, via taskset, and
# the programs' client threads on the last (the L1 sweep: round robin).
#
# PGCW_BUILD_DIR selects the build directory (default: build/ in the source tree).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
build=${PGCW_BUILD_DIR:-$root/build}
. "$here/build_targets.sh"
programs=(hit read write inval)

pins=(off on) only="" quick=() dsn="" durable=on extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --pin) case "${2:-}" in off) pins=(off) ;; on) pins=(on) ;; both) pins=(off on) ;;
             *) echo "run_cache.sh: --pin takes off, on or both" >&2; exit 2 ;; esac; shift 2 ;;
    --only) only=$2; shift 2 ;;
    --quick) quick=(--quick); shift ;;
    --dsn) dsn=$2; shift 2 ;;
    --durable) durable=$2; shift 2 ;;
    --) shift; extra=("$@"); break ;;
    *) echo "run_cache.sh: unknown option $1 (see the top of this file)" >&2; exit 2 ;;
  esac
done
if [ -n "$only" ]; then
  IFS=, read -r -a programs <<<"$only"
fi
for p in "${programs[@]}"; do
  case "$p" in hit | read | write | inval) ;; *) echo "run_cache.sh: unknown program $p" >&2; exit 2 ;; esac
done

targets=()
for p in "${programs[@]}"; do targets+=("bench_cache_$p"); done
bench_build "${targets[@]}"

states=()
bench_pid=""
cleanup() {
  if [ -n "$bench_pid" ]; then kill "$bench_pid" 2>/dev/null || true; wait "$bench_pid" 2>/dev/null || true; fi
  local s
  for s in "${states[@]}"; do bash "$root/tests/pg/pgserver.sh" stop "$s" || true; rm -f "$s"; done
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Starts a throwaway server (PGCW_PG_DURABLE as set by the caller); sets dsn,
# server_pid and state, and records the state file for the cleanup.
start_server() {
  state=$(mktemp "${TMPDIR:-/tmp}/pgcw-bench.XXXXXX")
  states+=("$state")
  bash "$root/tests/pg/pgserver.sh" start "$state" $$ >/dev/null
  dsn=$(sed -n 's/^dsn=//p' "$state")
  server_pid=$(sed -n 's/^pid=//p' "$state")
  echo "run_cache.sh: throwaway server: $dsn" >&2
}

server_pid="" state=""
if [ -z "$dsn" ]; then
  start_server
else
  durable=off
fi

# Pins the throwaway server's postmaster and its current children (backends
# started later inherit the postmaster's mask) to CPU list $1.
pin_server() {
  [ -n "$server_pid" ] || return 0
  local p
  for p in "$server_pid" $(pgrep -P "$server_pid" || true); do
    taskset -a -p -c "$1" "$p" >/dev/null 2>&1 || true
  done
}
all_cpus=$(taskset -p -c $$ | sed 's/.*: //')
first_cpu=${all_cpus%%[,-]*}

# Runs one program in the background, so that a signal runs the traps at once.
run() {
  "$@" &
  bench_pid=$!
  local rc=0
  wait "$bench_pid" || rc=$?
  bench_pid=""
  [ "$rc" -eq 0 ] || { echo "run_cache.sh: $1 failed (exit $rc)" >&2; exit 1; }
}

echo "pgcachewatch cache bench: $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs ($all_cpus), load $(cut -d' ' -f1-3 /proc/loadavg)"
[ -z "$server_pid" ] || echo "server: throwaway PostgreSQL $(sed -n 's/^bindir=//p' "$state"), fsync off unless said otherwise"
for pin in "${pins[@]}"; do
  if [ "$pin" = on ]; then
    pin_server "$first_cpu"
    echo; echo "######## pinned: server on CPU $first_cpu (taskset), client threads on the last CPU"
  else
    pin_server "$all_cpus"
    echo; echo "######## unpinned"
  fi
  for p in "${programs[@]}"; do
    run "$build/bench/bench_cache_$p" --dsn "$dsn" --pin "$pin" "${quick[@]}" "${extra[@]}"
  done
done
pin_server "$all_cpus"

case " ${programs[*]} " in *" write "*) ;; *) durable=off ;; esac
if [ "$durable" = on ]; then
  bash "$root/tests/pg/pgserver.sh" stop "$state"
  PGCW_PG_DURABLE=1 start_server
  for pin in "${pins[@]}"; do
    if [ "$pin" = on ]; then pin_server "$first_cpu"; else pin_server "$all_cpus"; fi
    echo; echo "######## durable server (fsync, full_page_writes on), $([ "$pin" = on ] && echo "pinned: server on CPU $first_cpu" || echo unpinned)"
    run "$build/bench/bench_cache_write" --dsn "$dsn" --pin "$pin" --skip-set "${quick[@]}" "${extra[@]}"
  done
fi
