#!/usr/bin/env bash
# Builds the libFuzzer targets of fuzz/ with clang (ASan + UBSan, no LibTorch) into ./build-fuzz
# and runs each for SECONDS (default 30, or DB_FUZZ_SECONDS) through ctest -L fuzz. Fails on any
# crash, leak or sanitizer report; the offending input is kept in build-fuzz/fuzz/artifacts/.
#
# usage: scripts/fuzz.sh [SECONDS] [CTEST_ARGS ...]   e.g. scripts/fuzz.sh 300 -R fuzz_tokenizer
set -euo pipefail
if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'
  exit 0
fi
cd "$(dirname "$0")/.."
if [[ $# -gt 0 && "$1" =~ ^[0-9]+$ ]]; then
  export DB_FUZZ_SECONDS="$1"
  shift
fi
export DB_FUZZ_SECONDS="${DB_FUZZ_SECONDS:-30}"
CC="${DB_FUZZ_CC:-clang}"
CXX="${DB_FUZZ_CXX:-clang++}"
if ! command -v "$CXX" >/dev/null; then
  echo "fuzz.sh: $CXX not found (scripts/setup.sh installs clang)" >&2
  exit 1
fi
if ! ls "$("$CXX" --print-runtime-dir)"/libclang_rt.fuzzer*.a >/dev/null 2>&1; then
  echo "fuzz.sh: $CXX has no libFuzzer runtime (scripts/setup.sh installs libclang-rt-dev)" >&2
  exit 1
fi
export CCACHE_DIR="${CCACHE_DIR:-$HOME/.cache/ccache}"
export CCACHE_BASEDIR="$PWD"
export CCACHE_NOHASHDIR=true
# Tests, benchmarks and LibTorch are off: only the parsers the targets link are compiled.
cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_C_COMPILER="$CC" -DCMAKE_CXX_COMPILER="$CXX" -DDB_FUZZ=ON -DDB_BUILD_TORCH=OFF \
  -DDB_BUILD_TESTS=OFF -DDB_BUILD_BENCH=OFF ${DB_FUZZ_CMAKE_ARGS:-} >/dev/null
cmake --build build-fuzz -j "${DB_FUZZ_JOBS:-$(nproc)}" --target db_fuzzers
cd build-fuzz
echo "==> fuzz: each target for ${DB_FUZZ_SECONDS}s"
ctest --output-on-failure -L fuzz "$@"
