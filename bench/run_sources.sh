#!/usr/bin/env bash
# run_sources.sh - the rerunnable sources benchmark (docs/bench.md, "Sources"):
# builds bench_sources if needed, starts a throwaway PostgreSQL with fsync on
# (tests/pg/pgserver.sh with PGCW_PG_DURABLE=1, wal_level=logical), runs the
# benchmark against it and stops that server by its pid on every exit path (a
# watchdog bound to this script's pid covers kill -9). Arguments go to
# bench_sources (--writers N, --seconds S, --events N). Never touches any other
# server.
#
#   bench/run_sources.sh                  # the figures in docs/bench.md
#   bench/run_sources.sh --seconds 10
#
# PGCW_BUILD_DIR selects the build directory (default: build/ in the source tree).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
build=${PGCW_BUILD_DIR:-$root/build}
. "$here/build_targets.sh"
bin=$build/bench/bench_sources

bench_build bench_sources

state=$(mktemp "${TMPDIR:-/tmp}/pgcw-bench.XXXXXX")
bench_pid=
cleanup() {
  if [ -n "$bench_pid" ]; then kill "$bench_pid" 2>/dev/null || true; wait "$bench_pid" 2>/dev/null || true; fi
  bash "$root/tests/pg/pgserver.sh" stop "$state" || true
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

PGCW_PG_DURABLE=1 bash "$root/tests/pg/pgserver.sh" start "$state" $$ >/dev/null
dsn=$(sed -n 's/^dsn=//p' "$state")
echo "bench_sources: throwaway server: $dsn" >&2
# In the background so that a signal runs the traps at once, not after the run.
"$bin" "$dsn" "$@" &
bench_pid=$!
rc=0
wait "$bench_pid" || rc=$?
bench_pid=
exit "$rc"
