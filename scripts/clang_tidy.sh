#!/usr/bin/env bash
# Runs clang-tidy (checks: .clang-tidy) over translation units of ./build/compile_commands.json
# (made by scripts/build.sh). The compile commands are gcc's: the precompiled-header and
# gcc-only flags are dropped into build/tidy/compile_commands.json first.
#
# usage: scripts/clang_tidy.sh [REGEX]   files matching REGEX (default: the LibTorch-free
#                                         folders: common, world, spec, storage, server, client)
# Exits non-zero when clang-tidy reports a finding.
set -euo pipefail
cd "$(dirname "$0")/.."
regex="${1:-/(common|world|spec|storage|server|client)/[^/]*\.cc$}"
[[ -f build/compile_commands.json ]] || { echo "run scripts/build.sh first" >&2; exit 2; }
mkdir -p build/tidy
python3 scripts/clang_compile_db.py build/compile_commands.json "$regex" build/tidy/compile_commands.json
log=build/tidy/clang-tidy.log
run-clang-tidy -quiet -p build/tidy "$regex" >"$log" 2>&1 || true
if grep -E "(warning|error): .*\[[a-z]+-" "$log"; then
  echo "clang-tidy: findings above (full log: $log)" >&2
  exit 1
fi
echo "clang-tidy: clean"
