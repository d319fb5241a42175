#!/usr/bin/env bash
# run.sh - the two README commands.
#
#   scripts/run.sh demo [DSN]   install what is needed, build, run `pgcachewatch demo`
#                               against DSN / $PGDSN, or else against a throwaway
#                               PostgreSQL started (and stopped) for the demo
#   scripts/run.sh harness [ARGS]  install what is needed, build, run `pgcachewatch
#                               harness ARGS` (a throwaway PostgreSQL unless ARGS or
#                               the environment name a server)
#   scripts/run.sh test         install, then build and run the whole suite three
#                               times: plain, under ASan+UBSan, under TSan
#   scripts/run.sh test quick   the plain build only
#
# Works on Debian 12 as root or as a user with sudo. Builds go to build/,
# build-asan/ and build-tsan/.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
JOBS=$(nproc 2>/dev/null || echo 2)

PACKAGES=(build-essential cmake pkg-config clang-format libpq-dev libjson-c-dev libb2-dev libcmocka-dev
  libmicrohttpd-dev postgresql curl python3 redis-server libhiredis-dev gnuplot-nox)

install_deps() {
  local missing=() p
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
      missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "run.sh: installing ${missing[*]}" >&2
  $sudo apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    --no-install-recommends "${missing[@]}" >/dev/null
}

build() { # build DIR [cmake args...]
  local dir="$1"; shift
  cmake -S "$ROOT" -B "$ROOT/$dir" -DPGCW_WERROR=ON "$@" >/dev/null
  cmake --build "$ROOT/$dir" -j"$JOBS"
}

run_suite() { # run_suite DIR
  ctest --test-dir "$ROOT/$1" --output-on-failure -j"$JOBS" --timeout 600
}

cmd_demo() {
  install_deps
  build build
  local dsn="${1:-${PGDSN:-}}"
  if [ -n "$dsn" ]; then
    exec "$ROOT/build/pgcachewatch" demo --pg-dsn "$dsn"
  fi
  local state
  state=$(mktemp -u "${TMPDIR:-/tmp}/pgcw-demo.XXXXXX")
  # Expanded now: `state` is local and gone by the time the EXIT trap runs.
  trap "bash '$ROOT/tests/pg/pgserver.sh' stop '$state'" EXIT
  bash "$ROOT/tests/pg/pgserver.sh" start "$state" $$ >/dev/null
  dsn=$(sed -n 's/^dsn=//p' "$state")
  echo "run.sh: throwaway PostgreSQL at: $dsn" >&2
  "$ROOT/build/pgcachewatch" demo --pg-dsn "$dsn"
}

cmd_harness() {
  install_deps
  build build
  exec "$ROOT/build/pgcachewatch" harness "$@"
}

cmd_test() {
  install_deps
  build build
  run_suite build
  [ "${1:-}" = quick ] && return 0
  echo "run.sh: ASan+UBSan build" >&2
  build build-asan -DCMAKE_BUILD_TYPE=Debug -DPGCW_SANITIZE=address,undefined \
    -DPGCW_BUILD_BENCH=OFF
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
    run_suite build-asan
  echo "run.sh: TSan build" >&2
  build build-tsan -DCMAKE_BUILD_TYPE=Debug -DPGCW_SANITIZE=thread \
    -DPGCW_BUILD_BENCH=OFF
  # Some kernels map memory where TSan cannot run; without ASLR it always can.
  local noaslr=()
  setarch "$(uname -m)" -R true 2>/dev/null && noaslr=(setarch "$(uname -m)" -R)
  TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" "${noaslr[@]}" \
    ctest --test-dir "$ROOT/build-tsan" --output-on-failure -j"$JOBS" --timeout 600
}

case "${1:-}" in
  demo) shift; cmd_demo "$@" ;;
  test) shift; cmd_test "$@" ;;
  harness) shift; cmd_harness "$@" ;;
  *) echo "usage: scripts/run.sh demo [DSN] | harness [ARGS] | test [quick]" >&2; exit 2 ;;
esac
