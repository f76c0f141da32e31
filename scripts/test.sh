#!/usr/bin/env bash
# Sets up (Debian packages), builds everything and runs every test with ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
cd build
ctest --output-on-failure --timeout 1200 -j 2 "$@"
