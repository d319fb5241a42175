#!/usr/bin/env bash
# layout_check.sh SOURCE_DIR - the include rules the compiler cannot check:
#   - tests, benchmarks and fuzz targets reach the library's internals only through
#     src/testhook/pgcw_testhook.h (a quoted include names a file of their own
#     folder or that header; unit tests and benchmarks may include the harness's
#     headers in src/cli/harness/, which use the public API only);
#   - the CLI and the examples use the public API only (<pgcachewatch/...>; the CLI
#     also its own headers in src/cli/, and so may the CLI's fuzz targets,
#     fuzz/fuzz_cli*.c, which stay off the test hook like the CLI itself);
#   - no library module includes the test hook or another module by relative path.
# (Between modules the compiler enforces the rest: each module's include path holds
# only the modules it may use, src/CMakeLists.txt.)
set -uo pipefail
cd "$1" || exit 1
bad=0
complain() { echo "layout: $*"; bad=1; }

quoted_includes() { # FILE -> the names in its #include "..." lines
  sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$1"
}

for f in $(git ls-files 'tests/*.c' 'tests/*.h' 'bench/*.c' 'bench/*.h' 'fuzz/*.c' 'fuzz/*.h'); do
  dir=$(dirname "$f")
  for inc in $(quoted_includes "$f"); do
    case "$f" in
      fuzz/fuzz_cli*)
        [ "$inc" = pgcw_testhook.h ] && complain "$f includes the test hook: the CLI uses the public API"
        [ -f "src/cli/$inc" ] && continue ;;
    esac
    [ "$inc" = pgcw_testhook.h ] && continue
    [ -f "$dir/$inc" ] && continue
    [ -f "tests/support/$inc" ] && case "$f" in tests/* | fuzz/*) continue ;; esac
    # The harness's parts are CLI code (public API only): unit tests may test them,
    # and benchmarks share its histogram.
    [ -f "src/cli/harness/$inc" ] && case "$f" in tests/unit/* | bench/*) continue ;; esac
    complain "$f includes \"$inc\": use src/testhook/pgcw_testhook.h for internals"
  done
done

for f in $(git ls-files 'src/cli/*.c' 'src/cli/*.h' 'examples/*.c'); do
  for inc in $(quoted_includes "$f"); do
    # The CLI's own headers (cli.h, cmd_*.h, harness/*.h) hold no library
    # internals: a name relative to the including file that stays inside src/cli/.
    case "$f" in
      src/cli/*)
        target=$(realpath -m --relative-to=. "$(dirname "$f")/$inc")
        case "$target" in src/cli/*) [ -f "$target" ] && continue ;; esac ;;
    esac
    complain "$f includes \"$inc\": the CLI and the examples use <pgcachewatch/...> only"
  done
done

for f in $(git ls-files 'src/*.c' 'src/*.h' | grep -v '^src/cli/\|^src/testhook/'); do
  for inc in $(quoted_includes "$f"); do
    case "$inc" in
      pgcw_testhook.h) complain "$f includes the test hook" ;;
      */*) case "$inc" in pgcachewatch/*) ;; *) complain "$f includes \"$inc\" by path" ;; esac ;;
    esac
  done
done

[ $bad -eq 0 ] && echo "layout: every include follows the module rules"
exit $bad
