#!/usr/bin/env bash
# Sets up (Debian packages and LibTorch), builds everything and runs every test with ctest.
#
# usage: scripts/test.sh [CTEST_ARGS ...]   e.g. -L unit, -R '^diffusion\.'
set -euo pipefail
if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  sed -n '2,4p' "$0" | sed 's/^# \{0,1\}//'
  exit 0
fi
cd "$(dirname "$0")/.."
bash scripts/build.sh
# Two tests run at once on CI's two cores: one OpenMP thread each, and no spinning waits, or the
# processes' thread pools fight over the cores (sampling measured ~15x slower that way).
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
cd build
ctest --output-on-failure --timeout 1200 -j 2 "$@"
