#!/usr/bin/env bash
# Configures and builds the project into ./build (Ninja, ccache). Extra args go to cmake --build.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The cache lives outside the checkout so that other clones on this machine (CI) reuse it; paths
# are made relative to the checkout so a clone elsewhere still hits.
export CCACHE_DIR="${CCACHE_DIR:-$HOME/.cache/ccache}"
export CCACHE_BASEDIR="$PWD"
export CCACHE_NOHASHDIR=true
export CCACHE_SLOPPINESS="pch_defines,time_macros,include_file_mtime,include_file_ctime"
export CCACHE_MAXSIZE="${CCACHE_MAXSIZE:-5G}"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)" "$@"
