#!/usr/bin/env bash
# test_package.sh BUILD_DIR SOURCE_DIR - `cmake --install` into a temporary prefix,
# then build a consumer three ways: CMake package (shared and static) and
# pkg-config. Each consumer must run.
set -euo pipefail
build="$1"; src="$2"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
libdir=$(ls -d "$tmp"/prefix/lib*/ | head -1)
# The installed CMake package names its dependencies, never a path of this machine.
if grep -rn '/libpq\|/usr/lib\|/usr/include' "$libdir/cmake/pgcachewatch/"; then
  echo "package: the CMake package holds a path of the build machine" >&2
  exit 1
fi
grep -q 'PostgreSQL::PostgreSQL' "$libdir/cmake/pgcachewatch/pgcachewatchTargets.cmake"

cmake -S "$src/tests/package/consumer" -B "$tmp/consumer" \
  -DCMAKE_PREFIX_PATH="$tmp/prefix" >/dev/null
cmake --build "$tmp/consumer" >/dev/null
LD_LIBRARY_PATH="$libdir" "$tmp/consumer/consumer_shared"
"$tmp/consumer/consumer_static"

export PKG_CONFIG_PATH="$libdir/pkgconfig"
# shellcheck disable=SC2046
cc -o "$tmp/consumer_pc" "$src/tests/package/consumer/main.c" \
  $(pkg-config --cflags --libs pgcachewatch)
LD_LIBRARY_PATH="$libdir" "$tmp/consumer_pc"
# shellcheck disable=SC2046
cc -o "$tmp/consumer_pc_static" "$src/tests/package/consumer/main.c" \
  $(pkg-config --cflags pgcachewatch) "$libdir/libpgcachewatch.a" \
  $(pkg-config --libs --static pgcachewatch | sed 's/-lpgcachewatch//')
"$tmp/consumer_pc_static"
echo "package: 4 consumers built and ran"
