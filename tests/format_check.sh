#!/usr/bin/env bash
# format_check.sh SOURCE_DIR - every tracked C file is formatted with the
# project's .clang-format. Exit 77 (skipped) without clang-format or git.
set -uo pipefail
cd "$1" || exit 1
command -v clang-format >/dev/null && command -v git >/dev/null || exit 77
git rev-parse --git-dir >/dev/null 2>&1 || exit 77
bad=0
while IFS= read -r f; do
  if ! clang-format --dry-run -Werror "$f" >/dev/null 2>&1; then
    echo "not formatted: $f (clang-format -i $f)"
    bad=1
  fi
done < <(git ls-files '*.c' '*.h')
[ $bad -eq 0 ] && echo "format: every C file is formatted"
exit $bad
