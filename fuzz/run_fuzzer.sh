#!/usr/bin/env bash
# Runs one libFuzzer target for DB_FUZZ_SECONDS (default 30) from its seed corpus, as the ctest
# of fuzz/CMakeLists.txt does. New inputs go to a temporary folder, never into the repository;
# a crash, leak, sanitizer report, timeout or out-of-memory input is written to ARTIFACT_DIR and
# fails the run.
#
# usage: fuzz/run_fuzzer.sh FUZZER SEED_DIR ARTIFACT_DIR [LIBFUZZER_ARGS ...]
set -euo pipefail
if [[ $# -lt 3 ]]; then
  sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi
fuzzer="$1" seeds="$2" artifacts="$3"
shift 3
seconds="${DB_FUZZ_SECONDS:-30}"
work="$(mktemp -d "${TMPDIR:-/tmp}/db-fuzz.XXXXXX")"
trap 'rm -rf "$work"' EXIT
mkdir -p "$artifacts"
# UBSan findings are fatal (-fno-sanitize-recover=all) and print a stack; LeakSanitizer is on.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
echo "run_fuzzer: $(basename "$fuzzer") for ${seconds}s from $seeds"
# The first folder receives new inputs (temporary); the seed folder is only read.
"$fuzzer" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=25 -print_final_stats=1 \
  -artifact_prefix="$artifacts/" "$@" "$work" "$seeds"
