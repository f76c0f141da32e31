#!/usr/bin/env bash
# Sets up (Debian packages and LibTorch), builds everything and runs every test with ctest; then
# the Python SDK's tests against the daemon just built (scripts/python_client_test.sh: a venv in
# .deps/pyclient-venv, packages from PyPI; DB_SKIP_PYTHON=1 skips them) and, when clang is
# installed, the fuzz targets for 30 s each (scripts/fuzz.sh; DB_FUZZ_SECONDS).
# usage: scripts/test.sh [CTEST_ARGS ...]   e.g. -L unit, -R '^diffusion\.' (then ctest only)
set -euo pipefail
if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'
  exit 0
fi
cd "$(dirname "$0")/.."
bash scripts/build.sh
# Two tests run at once on CI's two cores: one OpenMP thread each, and no spinning waits, or the
# processes' thread pools fight over the cores (sampling measured ~15x slower that way).
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
(cd build && ctest --output-on-failure --timeout 1200 -j 2 "$@")
# The Python SDK's tests and the fuzz targets run after a full run only (not when CTEST_ARGS
# pick tests). DB_SKIP_PYTHON=1 leaves the Python tests out.
if [[ $# -gt 0 ]]; then
  exit 0
fi
if [[ "${DB_SKIP_PYTHON:-0}" != "1" ]]; then
  bash scripts/python_client_test.sh
fi
# The fuzz targets need clang's libFuzzer; DB_SKIP_FUZZ=1 leaves them out.
if [[ "${DB_SKIP_FUZZ:-0}" == "1" ]]; then
  exit 0
fi
if command -v clang++ >/dev/null; then
  bash scripts/fuzz.sh
else
  echo "test.sh: clang++ not found, fuzz targets skipped (scripts/setup.sh installs clang)"
fi
