#!/usr/bin/env bash
# run_watcher.sh - the rerunnable watcher benchmark: builds bench_watcher if needed,
# starts a throwaway PostgreSQL (tests/pg/pgserver.sh), runs the benchmark against
# it and stops that server by its pid on every exit path (a watchdog bound to this
# script's pid covers kill -9). Arguments go to bench_watcher (see --help); with
# --dsn the given server is used and none is started. Never touches any other server.
#
#   bench/run_watcher.sh                       # the figures in docs/bench.md
#   bench/run_watcher.sh --rounds 9 --pin on   # more rounds, pinned only
#   bench/run_watcher.sh --json > out.json
#
# PGCW_BUILD_DIR selects the build directory (default: build/ in the source tree).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
build=${PGCW_BUILD_DIR:-$root/build}
. "$here/build_targets.sh"
bin=$build/bench/bench_watcher

bench_build bench_watcher

for arg in "$@"; do
  case "$arg" in
    --dsn | --dsn=*) exec "$bin" "$@" ;;
  esac
done

state=$(mktemp "${TMPDIR:-/tmp}/pgcw-bench.XXXXXX")
bench_pid=
cleanup() {
  if [ -n "$bench_pid" ]; then kill "$bench_pid" 2>/dev/null || true; wait "$bench_pid" 2>/dev/null || true; fi
  bash "$root/tests/pg/pgserver.sh" stop "$state" || true
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

bash "$root/tests/pg/pgserver.sh" start "$state" $$ >/dev/null
dsn=$(sed -n 's/^dsn=//p' "$state")
echo "bench_watcher: throwaway server: $dsn" >&2
# In the background so that a signal runs the traps at once, not after the run.
"$bin" --dsn "$dsn" "$@" &
bench_pid=$!
rc=0
wait "$bench_pid" || rc=$?
bench_pid=
exit "$rc"
