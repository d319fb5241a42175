#!/usr/bin/env bash
# imports_check.sh LIBRARY - the shared library never ends the process and never
# writes to the application's stdout or stderr: it imports none of exit, abort,
# assert's handler, the printf/puts/perror family or the stdio streams. A library
# reports through return values, errmsg functions and the log callback only.
set -uo pipefail
lib="$1"
command -v nm >/dev/null || exit 77
forbidden='^(exit|_exit|_Exit|quick_exit|abort|__assert_fail|__assert_perror_fail|err|errx|warn|warnx|verr|verrx|printf|vprintf|__printf_chk|__vprintf_chk|fprintf|vfprintf|__fprintf_chk|__vfprintf_chk|dprintf|vdprintf|__dprintf_chk|puts|fputs|putchar|putc|fputc|_IO_putc|perror|fwrite|fflush|psignal|psiginfo|stdout|stderr|_IO_2_1_stdout_|_IO_2_1_stderr_)$'
imports=$(nm -D --undefined-only "$lib" | awk '{print $2}' | sed 's/@.*//')
[ -n "$imports" ] || { echo "imports: nm listed nothing for $lib"; exit 1; }
bad=$(echo "$imports" | grep -E "$forbidden")
if [ -n "$bad" ]; then
  echo "imports: $lib imports what a library must not call:"
  echo "$bad" | sed 's/^/  /'
  exit 1
fi
echo "imports: $(echo "$imports" | wc -l) imported symbols, none that exits or prints"
