#!/usr/bin/env bash
# soak.sh - the soak run: `pgcachewatch harness --chaos` for a long time (default
# 10 minutes) with several processes, against a throwaway PostgreSQL the harness
# starts itself, while this script samples the harness's processes every
# SAMPLE seconds: resident memory (VmRSS, summed) and open file descriptors
# (summed), printed as a table. At the end it prints the harness's report, the
# recoveries (count, p50, max) and whether RSS and descriptors stayed flat, and
# exits non-zero on any violation or if the harness failed. Not run by CI.
#
#   bench/soak.sh                         # 600 s, 4 processes, --chaos
#   bench/soak.sh --seconds 120 --sample 5 -- --writers 8 --readers 16
#
# Options: --seconds N (600), --sample N (10), --processes N (4); anything after --
# goes to `pgcachewatch harness`. PGCW_BUILD_DIR selects the build (default build/).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
build=${PGCW_BUILD_DIR:-$root/build}
seconds=600 sample=10 processes=4 extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds=$2; shift 2 ;;
    --sample) sample=$2; shift 2 ;;
    --processes) processes=$2; shift 2 ;;
    --) shift; extra=("$@"); break ;;
    *) echo "soak.sh: unknown option $1 (see the top of this file)" >&2; exit 2 ;;
  esac
done
[ -x "$build/pgcachewatch" ] || cmake --build "$build" -j2 --target pgcachewatch_cli >&2

out=$(mktemp) err=$(mktemp)
trap 'rm -f "$out" "$err"; [ -n "${hp:-}" ] && kill "$hp" 2>/dev/null; true' EXIT
"$build/pgcachewatch" harness --duration "$seconds" --chaos --json \
  --processes "$processes" "${extra[@]}" >"$out" 2>"$err" &
hp=$!

# The harness and its client processes (its children, not the server's tree).
procs() { echo "$hp"; pgrep -P "$hp" -f pgcachewatch 2>/dev/null || true; }
rss_kb() { local t=0 p v; for p in $(procs); do
  v=$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0); t=$((t + ${v:-0})); done; echo $t; }
fds() { local t=0 p n; for p in $(procs); do
  n=$(ls "/proc/$p/fd" 2>/dev/null | wc -l); t=$((t + n)); done; echo $t; }

printf '%8s %10s %6s %6s\n' seconds rss_kB fds procs
start=$(date +%s) samples=()
while kill -0 "$hp" 2>/dev/null; do
  sleep "$sample"
  kill -0 "$hp" 2>/dev/null || break
  t=$(( $(date +%s) - start )) r=$(rss_kb) f=$(fds) n=$(procs | wc -l)
  printf '%8d %10d %6d %6d\n' "$t" "$r" "$f" "$n"
  samples+=("$t $r $f $n")
done
rc=0
wait "$hp" || rc=$?
hp=

python3 - "$out" "$rc" "${samples[@]}" <<'PY'
import json, sys
path, rc = sys.argv[1], int(sys.argv[2])
samples = [tuple(int(x) for x in s.split()) for s in sys.argv[3:]]
# Only samples with every process up: not the start, not the teardown.
most = max((x[3] for x in samples), default=0)
samples = [x for x in samples if x[3] == most]
try:
    r = json.load(open(path))
except ValueError:
    print("soak: the harness printed no report (exit %d)" % rc); sys.exit(1)
ch = r.get("chaos", {})
rec = [x.get("ms", x.get("duration_ms", 0)) for x in ch.get("recoveries", [])]
rec.sort()
def pct(v, p): return v[min(len(v) - 1, int(p * len(v)))] if v else 0
print("ops %d (%.0f/s), errors %d, violations %d, hit rate %.4f" % (
    r["ops"], r["ops_per_second"], r["errors"]["total"], r["violations"], r["hit_rate"]))
print("chaos: %d watcher and %d pool backends killed, unrecovered %s; the first %d"
      " recoveries: p50 %.0f ms, max %.0f ms" % (
    ch.get("watcher_kills", 0), ch.get("pool_kills", 0), ch.get("unrecovered"),
    len(rec), pct(rec, 0.5), rec[-1] if rec else 0))
for kind in ("watcher", "pool"):
    h = ch.get(kind + "_recovery_ms", {})
    if h.get("count"):
        print("  %s recovery: %d, p50 %.0f ms, p99 %.0f ms, max %.0f ms" % (
            kind, h["count"], h.get("p50", 0), h.get("p99", 0), h.get("max", 0)))
if len(samples) >= 4:
    # Flat: the last quarter's mean within 10% (RSS) / 10 descriptors of the
    # second quarter's (the first is warm-up).
    q = len(samples) // 4
    mid, end = samples[q:2 * q], samples[-q:]
    mean = lambda xs, i: sum(x[i] for x in xs) / len(xs)
    rss_growth = mean(end, 1) / max(1, mean(mid, 1)) - 1
    fd_growth = mean(end, 2) - mean(mid, 2)
    print("RSS %+.1f%%, descriptors %+.1f from the second quarter to the last" % (
        100 * rss_growth, fd_growth))
    flat = rss_growth < 0.10 and fd_growth < 10
    print("flat" if flat else "NOT FLAT")
else:
    flat = True
    print("too few samples to judge RSS and descriptors")
sys.exit(0 if rc == 0 and r["violations"] == 0 and flat else 1)
PY
