#!/usr/bin/env bash
# abi_check.sh LIBRARY SOVERSION SYMBOLS_FILE - the shared library exports exactly the
# functions listed in SYMBOLS_FILE (no internal pgcw__ one, none missing) and its
# SONAME carries SOVERSION. A function removed without bumping the SOVERSION, or
# added without being listed, fails here (docs/abi.md).
set -uo pipefail
lib="$1"; sover="$2"; list="$3"
command -v nm >/dev/null && command -v objdump >/dev/null || exit 77
want=$(grep -v '^#' "$list" | sort)
have=$(nm -D --defined-only "$lib" | awk '$2 == "T" || $2 == "D" || $2 == "B" {print $3}' | sort)
bad=0
missing=$(comm -23 <(echo "$want") <(echo "$have"))
extra=$(comm -13 <(echo "$want") <(echo "$have"))
if [ -n "$missing" ]; then
  echo "abi: listed but not exported (an ABI break: bump PGCW_SOVERSION, then update $list):"
  echo "$missing" | sed 's/^/  /'
  bad=1
fi
if [ -n "$extra" ]; then
  echo "abi: exported but not listed (add them to $list):"
  echo "$extra" | sed 's/^/  /'
  bad=1
fi
soname=$(objdump -p "$lib" | awk '$1 == "SONAME" {print $2}')
if [ "$soname" != "libpgcachewatch.so.$sover" ]; then
  echo "abi: SONAME is '$soname', expected libpgcachewatch.so.$sover"
  bad=1
fi
[ $bad -eq 0 ] && echo "abi: $(echo "$have" | wc -l) functions exported, as listed; SONAME $soname"
exit $bad
