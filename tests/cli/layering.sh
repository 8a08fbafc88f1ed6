#!/usr/bin/env bash
# Arrows point down only: tools -> host -> hwbridge -> base -> kernels (docs/architecture.md).
# Checked two ways on the built library: every #include of a source file names a header of its
# own layer or a lower one, and every function an object file calls that libpnn defines is
# defined in its own layer or a lower one (nm). A physical system's files sit in kernels/systems/
# and hwbridge/systems/, so a system that reached up would show here too.
source "$(dirname "$0")/lib.bash"
objs=$(dirname "$pnn")/CMakeFiles/pnn.dir
[ -d "$objs" ] || { echo "no object files in $objs (not a CMake build tree): skipped"; exit 77; }

layer_of_path() {  # a source or header path -> 0 kernels, 1 base, 2 hwbridge, 3 host, 9 unknown
  case $1 in
    kernels/*) echo 0 ;;
    base/*) echo 1 ;;
    hwbridge/*) echo 2 ;;
    host/*) echo 3 ;;
    pnn/status.h | pnn/backend.h) echo 0 ;;
    pnn/tensor.h | pnn/rng.h | pnn/clock.h | pnn/fileio.h) echo 1 ;;
    pnn/device.h | pnn/twin.h | pnn/system.h | pnn/remote.h | pnn/callback.h) echo 2 ;;
    pnn/*) echo 3 ;;
    *) echo 9 ;;
  esac
}

# 1. includes
while IFS= read -r file; do
  own=$(layer_of_path "$file")
  while IFS= read -r inc; do
    l=$(layer_of_path "$inc")
    [ "$l" = 9 ] && { bad "$file includes \"$inc\", which no layer owns"; continue; }
    [ "$l" -le "$own" ] && ok || bad "$file (layer $own) includes \"$inc\" (layer $l)"
  done < <(sed -n 's/^#include "\([^"]*\)".*/\1/p' "$src/$file" | grep -v '^[a-z_]*\.h$')
done < <(cd "$src" && find kernels base hwbridge host -name '*.c' -o -name '*.h' -o -name '*.cu' -o -name '*.cuh' | sort)

# 2. calls between objects of libpnn
declare -A def_layer
while IFS= read -r o; do
  rel=${o#"$objs"/}
  l=$(layer_of_path "$rel")
  while read -r sym; do def_layer[$sym]=$l; done < <(nm -g --defined-only "$o" | awk '$2 ~ /[TDRB]/ {print $3}')
done < <(find "$objs" -name '*.o' | sort)
while IFS= read -r o; do
  rel=${o#"$objs"/}
  own=$(layer_of_path "$rel")
  while read -r sym; do
    l=${def_layer[$sym]:-}
    [ -z "$l" ] && continue
    [ "$l" -le "$own" ] && ok || bad "${rel%.o} (layer $own) calls $sym, defined in layer $l"
  done < <(nm -u "$o" | awk '{print $2}')
done < <(find "$objs" -name '*.o' | sort)
finish
