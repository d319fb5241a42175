#!/usr/bin/env bash
# run.sh [quick|full] - which cache lines two CPUs sharing one L1 move between them,
# for machines where `perf c2c` cannot run (no PMU in this VM). Builds bench_l1 with
# the L1 compiled under -fsanitize=thread and c2c_sim.c as its runtime, runs section
# 2 (both traces: cache-aside, literal) with the two CPUs taking turns op by op,
# and names the top instructions with addr2line. Output: build-c2c/report-SIZE.txt.
# Needs the plain build (build/) for the rest of the library. See docs/l1.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
SIZE=${1:-quick}
OUT=$ROOT/build-c2c
mkdir -p "$OUT"
cmake --build "$ROOT/build" --target pgcachewatch_static >/dev/null
INC=(-I"$ROOT/include" -I"$ROOT/bench")
for d in "$ROOT"/src/*/; do INC+=(-I"$d"); done
read -r -a PKG <<<"$(pkg-config --cflags libpq json-c)"
CC=${CC:-gcc}
objs=()
for f in "$ROOT"/src/l1/*.c; do
  o=$OUT/$(basename "$f" .c).o
  "$CC" -O2 -g -std=c11 -D_GNU_SOURCE -DNDEBUG -fsanitize=thread \
    -include "$ROOT/bench/c2c/c2c_shim.h" "${INC[@]}" -c "$f" -o "$o" 2>/dev/null
  objs+=("$o")
done
for f in c2c_sim c2c_l1; do
  "$CC" -O2 -g -std=c11 -D_GNU_SOURCE "${INC[@]}" "${PKG[@]}" \
    -c "$ROOT/bench/c2c/$f.c" -o "$OUT/$f.o"
  objs+=("$OUT/$f.o")
done
"$CC" -O2 -g -no-pie -std=c11 -DPGCW_BENCH_C2C "${INC[@]}" "${PKG[@]}" \
  "$ROOT/bench/bench_l1.c" "${objs[@]}" "$ROOT/build/src/libpgcachewatch.a" \
  $(pkg-config --libs libpq json-c) -lpthread -lm -o "$OUT/bench_l1_c2c"
"$OUT/bench_l1_c2c" "$SIZE" mixed >"$OUT/raw-$SIZE.txt"
while IFS= read -r line; do
  if [[ $line =~ ^\ \ pc\ (0x[0-9a-f]+)\ (.*)$ ]]; then
    where=$(addr2line -f -i -s -e "$OUT/bench_l1_c2c" "${BASH_REMATCH[1]}" | paste -sd' ')
    printf '  %-26s %s\n' "${BASH_REMATCH[2]}" "$where"
  else
    printf '%s\n' "$line"
  fi
done <"$OUT/raw-$SIZE.txt" >"$OUT/report-$SIZE.txt"
echo "run.sh: $OUT/report-$SIZE.txt" >&2
