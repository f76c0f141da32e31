#!/usr/bin/env bash
# Sets up (scripts/setup.sh), configures and builds the project into ./build (Ninja, ccache).
#
# usage: scripts/build.sh [TARGET ...]   build the named CMake targets, or everything
#        extra cmake configure options: DB_CMAKE_ARGS="-DDB_BUILD_TESTS=OFF ..."
set -euo pipefail
if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  sed -n '2,5p' "$0" | sed 's/^# \{0,1\}//'
  exit 0
fi
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The cache lives outside the checkout so that other clones on this machine (CI) reuse it; paths
# are made relative to the checkout so a clone elsewhere still hits.
export CCACHE_DIR="${CCACHE_DIR:-$HOME/.cache/ccache}"
export CCACHE_BASEDIR="$PWD"
export CCACHE_NOHASHDIR=true
export CCACHE_SLOPPINESS="pch_defines,time_macros,include_file_mtime,include_file_ctime"
export CCACHE_MAXSIZE="${CCACHE_MAXSIZE:-5G}"
# shellcheck disable=SC2086
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo ${DB_CMAKE_ARGS:-} >/dev/null
targets=()
for t in "$@"; do targets+=(--target "$t"); done
cmake --build build -j "$(nproc)" "${targets[@]}"
