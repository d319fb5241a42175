#!/usr/bin/env bash
# run_compare.sh - the side-by-side comparison (bench_compare.c): builds it, starts a
# throwaway PostgreSQL (tests/pg/pgserver.sh) and a throwaway Redis (loopback, a
# free port, no persistence: --save '' --appendonly no), runs bench_compare
# unpinned and then pinned, writes the figures to a data file, draws the chart with
# gnuplot (bench/compare.gp) and stops both servers by their pids on every exit
# path (a watchdog bound to this script's pid covers kill -9).
#
#   bench/run_compare.sh                                # figures, data and chart in build/compare/
#   bench/run_compare.sh --chart docs/img/compare.svg   # the chart README.md embeds
#   bench/run_compare.sh --pin on --only reads,inval
#   bench/run_compare.sh --quick                        # a smoke test of the harness
#
# Options: --pin off|on|both (default both), --only LIST (of reads, writes, mixed,
# inval), --quick, --out DIR (default build/compare: compare.txt, the printed
# table; compare.tsv, the data; compare.svg, the chart), --chart FILE (where the
# chart goes; default DIR/compare.svg). Anything after -- goes to bench_compare
# (--help lists its options). Pinned means: PostgreSQL's processes and Redis on
# the first CPU (taskset), every client thread on the last.
#
# PGCW_BUILD_DIR selects the build directory (default: build/ in the source tree).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
build=${PGCW_BUILD_DIR:-$root/build}
. "$here/build_targets.sh"

pins=(off on) only="" quick=() out="" chart="" extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --pin) case "${2:-}" in off) pins=(off) ;; on) pins=(on) ;; both) pins=(off on) ;;
             *) echo "run_compare.sh: --pin takes off, on or both" >&2; exit 2 ;; esac; shift 2 ;;
    --only) only=$2; shift 2 ;;
    --quick) quick=(--quick); shift ;;
    --out) out=$2; shift 2 ;;
    --chart) chart=$2; shift 2 ;;
    --) shift; extra=("$@"); break ;;
    *) echo "run_compare.sh: unknown option $1 (see the top of this file)" >&2; exit 2 ;;
  esac
done
out=${out:-$build/compare}
chart=${chart:-$out/compare.svg}
for tool in redis-server redis-cli gnuplot; do
  command -v "$tool" >/dev/null ||
    { echo "run_compare.sh: $tool is missing (scripts/run.sh installs redis-server, gnuplot-nox)" >&2; exit 1; }
done

bench_build bench_compare

pg_state="" redis_pid="" redis_dir="" bench_pid=""
cleanup() {
  if [ -n "$bench_pid" ]; then kill "$bench_pid" 2>/dev/null || true; wait "$bench_pid" 2>/dev/null || true; fi
  if [ -n "$redis_pid" ]; then
    kill "$redis_pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$redis_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$redis_pid" 2>/dev/null || true
    wait "$redis_pid" 2>/dev/null || true
  fi
  [ -z "$redis_dir" ] || rm -rf "$redis_dir"
  [ -z "$pg_state" ] || { bash "$root/tests/pg/pgserver.sh" stop "$pg_state" || true; rm -f "$pg_state"; }
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

pg_state=$(mktemp "${TMPDIR:-/tmp}/pgcw-compare.XXXXXX")
bash "$root/tests/pg/pgserver.sh" start "$pg_state" $$ >/dev/null
pg_pid=$(sed -n 's/^pid=//p' "$pg_state")
pg_port=$(sed -n 's/^port=//p' "$pg_state")
# TCP to the loopback address, as Redis is reached (not the unix socket).
dsn="host=127.0.0.1 port=$pg_port user=postgres dbname=postgres"

# Redis on a free loopback port; a port taken meanwhile makes it exit: try another.
redis_dir=$(mktemp -d "${TMPDIR:-/tmp}/pgcw-redis.XXXXXX")
redis_port=""
for _ in 1 2 3 4 5; do
  port=$(( 20000 + (RANDOM * 32768 + RANDOM) % 40000 ))
  ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || continue
  redis-server --bind 127.0.0.1 --port "$port" --save "" --appendonly no \
    --protected-mode yes --daemonize no --dir "$redis_dir" \
    --logfile "$redis_dir/redis.log" &
  redis_pid=$!
  for _ in $(seq 100); do
    [ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" = PONG ] && { redis_port=$port; break; }
    kill -0 "$redis_pid" 2>/dev/null || break
    sleep 0.1
  done
  [ -n "$redis_port" ] && break
  kill "$redis_pid" 2>/dev/null || true; wait "$redis_pid" 2>/dev/null || true; redis_pid=""
done
[ -n "$redis_port" ] || { cat "$redis_dir/redis.log" >&2 || true; echo "run_compare.sh: Redis did not start" >&2; exit 1; }
# Watchdog: if this script dies without its traps (kill -9), stop Redis.
nohup bash -c 'while kill -0 "$1" 2>/dev/null && kill -0 "$2" 2>/dev/null; do sleep 1; done
  kill "$2" 2>/dev/null; rm -rf "$3"' _ $$ "$redis_pid" "$redis_dir" >/dev/null 2>&1 &
echo "run_compare.sh: PostgreSQL at $dsn, Redis at 127.0.0.1:$redis_port (pid $redis_pid)" >&2

# Pins both servers' processes (PostgreSQL: the postmaster and its children, whose
# later backends inherit its mask; Redis: every thread) to CPU list $1.
pin_servers() {
  local p
  for p in "$pg_pid" $(pgrep -P "$pg_pid" || true) "$redis_pid"; do
    taskset -a -p -c "$1" "$p" >/dev/null 2>&1 || true
  done
}
all_cpus=$(taskset -p -c $$ | sed 's/.*: //')
first_cpu=${all_cpus%%[,-]*}

mkdir -p "$out" "$(dirname "$chart")"
data=$out/compare.tsv
printf 'pin\tworkload\tclients\tsystem\trate\tp50_us\tp99_us\tx_redis\tx_raw\n' >"$data"
stamp="$(date -u +%Y-%m-%dT%H:%MZ), commit $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?')"
{
  echo "pgcachewatch comparison: $stamp, $(nproc) CPUs ($all_cpus), load $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "servers: PostgreSQL $(sed -n 's/^bindir=//p' "$pg_state") (fsync off), $(redis-server --version | cut -d' ' -f1-3) (no persistence); client: hiredis $(pkg-config --modversion hiredis 2>/dev/null || echo '?')"
} | tee "$out/compare.txt"
loads=()
for pin in "${pins[@]}"; do
  if [ "$pin" = on ]; then
    pin_servers "$first_cpu"
    echo; echo "######## pinned: PostgreSQL and Redis on CPU $first_cpu (taskset), client threads on the last CPU"
  else
    pin_servers "$all_cpus"
    echo; echo "######## unpinned"
  fi | tee -a "$out/compare.txt"
  loads+=("$(cut -d' ' -f1-3 /proc/loadavg)")
  "$build/bench/bench_compare" --dsn "$dsn" --redis-port "$redis_port" --pin "$pin" \
    --data "$data" ${only:+--only "$only"} "${quick[@]}" "${extra[@]}" >"$out/compare.part" &
  bench_pid=$!
  rc=0
  wait "$bench_pid" || rc=$?
  bench_pid=""
  tee -a "$out/compare.txt" <"$out/compare.part"
  rm -f "$out/compare.part"
  [ "$rc" -eq 0 ] || { echo "run_compare.sh: bench_compare failed (exit $rc)" >&2; exit 1; }
done
pin_servers "$all_cpus"
echo "load at the end $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$out/compare.txt"

gnuplot -e "data='$data'; out='$chart'; stamp='$stamp, load ${loads[*]}'" "$here/compare.gp"
echo "run_compare.sh: table $out/compare.txt, data $data, chart $chart" >&2
