#!/bin/sh
# Fails when the shared library imports exit() or abort(): a library reports
# errors, it never ends its host process (the same check libpq's build makes).
lib="$1"
bad=$(nm -D --undefined-only "$lib" 2>/dev/null | grep -E ' U (exit|_exit|abort)(@|$)' || true)
if [ -n "$bad" ]; then
  echo "error: $lib calls process-ending functions:" >&2
  echo "$bad" >&2
  exit 1
fi
