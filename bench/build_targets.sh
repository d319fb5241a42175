# build_targets.sh - sourced by the bench/run_*.sh scripts (with $root and $build
# set): bench_build TARGET... configures the build tree every time (cheap once
# configured: a tree made before a program existed would not know its target; a
# new tree is RelWithDebInfo) and builds those targets.
bench_build() {
  if [ -f "$build/CMakeCache.txt" ]; then
    cmake -S "$root" -B "$build" >/dev/null
  else
    cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >&2
  fi
  local args=() t
  for t in "$@"; do args+=(--target "$t"); done
  cmake --build "$build" -j2 "${args[@]}" >&2
}
