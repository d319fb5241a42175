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
#                               times: plain, under ASan+UBSan, under TSan; then the
#                               plain build's unit tests under valgrind, and every
#                               libFuzzer target for PGCW_FUZZ_SECONDS (60) each
#   scripts/run.sh test quick   the plain build only
#   scripts/run.sh fuzz         the fuzz stage alone (PGCW_FUZZ_SECONDS=N to change)
#
# Works on Debian 12 as root or as a user with sudo. Builds go to build/,
# build-asan/, build-tsan/ and build-fuzz/.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
JOBS=$(nproc 2>/dev/null || echo 2)

PACKAGES=(build-essential cmake pkg-config clang-format libpq-dev libjson-c-dev libb2-dev libcmocka-dev
  libmicrohttpd-dev postgresql pgbouncer curl python3 redis-server libhiredis-dev gnuplot-nox)
# The fuzz and valgrind stages: clang's libFuzzer runtime is only a Recommends of
# clang (libclang-rt-dev), which --no-install-recommends leaves out.
PACKAGES+=(clang libclang-rt-dev valgrind)

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

# The unit tests of the plain build under valgrind's memcheck: any error or
# definitely lost block fails the test (valgrind exits 1). ctest -T needs no
# dashboard: the options are given on its command line.
valgrind_stage() {
  echo "run.sh: valgrind memcheck on the unit tests" >&2
  local log="$ROOT/build/Testing/Temporary"
  mkdir -p "$log"
  # The L1 model test runs 200k random operations here, not 2M: the plain and
  # sanitizer runs above do the 2M, and under valgrind (tens of times slower) the
  # shorter run reaches the same code.
  PGCW_L1_MODEL_OPS=200000 \
    ctest --test-dir "$ROOT/build" -L unit -T memcheck -j"$JOBS" --timeout 900 \
    --output-on-failure \
    --overwrite MemoryCheckCommand="$(command -v valgrind)" \
    --overwrite MemoryCheckCommandOptions="--error-exitcode=1 --leak-check=full \
--errors-for-leak-kinds=definite --num-callers=30" >"$log/valgrind-stage.log" 2>&1 || {
    tail -n 80 "$log/valgrind-stage.log" >&2
    echo "run.sh: valgrind found errors; per-test logs: $log/MemoryChecker.*.log" >&2
    return 1
  }
  grep -E "tests passed|Total Test time" "$log/valgrind-stage.log" >&2
}

# One libFuzzer target for $secs seconds on a copy of its seed corpus in $work,
# so the repository's corpus is never grown. A crash, a leak, an input slower
# than 10 s or over 2 GB is a finding: the run fails and the input is kept.
fuzz_one() { # fuzz_one NAME SECONDS WORK
  local name="$1" secs="$2" dir="$3/$1"
  mkdir -p "$dir/corpus"
  cp -R "$ROOT/fuzz/corpus/$name/." "$dir/corpus/"
  local seeds dict=()
  seeds=$(find "$dir/corpus" -type f | wc -l)
  [ -f "$ROOT/fuzz/$name.dict" ] && dict=(-dict="$ROOT/fuzz/$name.dict")
  # close_fd_mask=3: the CLI's usage errors stay quiet; libFuzzer and the
  # sanitizers still report on a copy of stderr.
  if (cd "$dir" && "$ROOT/build-fuzz/fuzz/$name" "${dict[@]}" -max_total_time="$secs" \
    -timeout=10 -rss_limit_mb=2048 -close_fd_mask=3 -print_final_stats=1 \
    -artifact_prefix="$dir/" "$dir/corpus" >"$dir/log" 2>&1); then
    local runs rate
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log")
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$dir/log")
    echo "run.sh: $name: ${secs} s, $runs runs ($rate/s), corpus $seeds -> $(find "$dir/corpus" -type f | wc -l)" >&2
  else
    tail -n 60 "$dir/log" >&2
    echo "run.sh: $name FAILED; log and input kept in $dir" >&2
    return 1
  fi
}

# Every fuzz/fuzz_*.c target, $JOBS at a time. The work directory goes when
# everything passed, and stays (named on stderr) when something was found.
fuzz_stage() {
  echo "run.sh: fuzz build" >&2
  build build-fuzz -DCMAKE_C_COMPILER=clang -DPGCW_BUILD_FUZZ=ON -DPGCW_BUILD_TESTS=OFF \
    -DPGCW_BUILD_BENCH=OFF -DPGCW_BUILD_EXAMPLES=OFF
  local secs="${PGCW_FUZZ_SECONDS:-60}" work src running=0 failed=0
  work=$(mktemp -d "${TMPDIR:-/tmp}/pgcw-fuzz.XXXXXX")
  for src in "$ROOT"/fuzz/fuzz_*.c; do
    fuzz_one "$(basename "$src" .c)" "$secs" "$work" &
    if [ $((++running)) -ge "$JOBS" ]; then
      wait -n || failed=1
      running=$((running - 1))
    fi
  done
  while [ "$running" -gt 0 ]; do
    wait -n || failed=1
    running=$((running - 1))
  done
  [ "$failed" -eq 0 ] || return 1
  rm -rf "$work"
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
  valgrind_stage
  fuzz_stage
}

case "${1:-}" in
  demo) shift; cmd_demo "$@" ;;
  test) shift; cmd_test "$@" ;;
  harness) shift; cmd_harness "$@" ;;
  fuzz) install_deps; fuzz_stage ;;
  *) echo "usage: scripts/run.sh demo [DSN] | harness [ARGS] | test [quick] | fuzz" >&2; exit 2 ;;
esac
