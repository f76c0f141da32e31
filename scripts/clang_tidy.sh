#!/usr/bin/env bash
# Runs clang-tidy (checks: .clang-tidy) over translation units of ./build/compile_commands.json
# (made by scripts/build.sh). The compile commands are gcc's: the precompiled-header and
# gcc-only flags are dropped into build/tidy/compile_commands.json first.
#
# usage: scripts/clang_tidy.sh [REGEX]   files matching REGEX (default: the LibTorch-free
#                                         folders: common, spec, storage, server, client)
# Exits non-zero when clang-tidy reports a finding.
set -euo pipefail
cd "$(dirname "$0")/.."
regex="${1:-/(common|spec|storage|server|client)/[^/]*\.cc$}"
[[ -f build/compile_commands.json ]] || { echo "run scripts/build.sh first" >&2; exit 2; }
mkdir -p build/tidy
python3 - "$regex" <<'PY'
import json, re, shlex, sys
regex = re.compile(sys.argv[1])
out = []
for e in json.load(open("build/compile_commands.json")):
    if not regex.search(e["file"]) or "/build/" in e["file"]:
        continue
    args = shlex.split(e["command"]) if "command" in e else e["arguments"]
    clean, skip = [], False
    for a in args:
        if skip:
            skip = False
            continue
        if a == "-include" or a == "-Xclang":
            skip = True
            continue
        if a in ("-fpch-preprocess", "-Winvalid-pch") or "cmake_pch" in a:
            continue
        clean.append(a)
    e = dict(e)
    e.pop("command", None)
    e["arguments"] = clean
    out.append(e)
json.dump(out, open("build/tidy/compile_commands.json", "w"), indent=1)
print(f"{len(out)} translation units", file=sys.stderr)
PY
log=build/tidy/clang-tidy.log
run-clang-tidy -quiet -p build/tidy "$regex" >"$log" 2>&1 || true
if grep -E "(warning|error): .*\[[a-z]+-" "$log"; then
  echo "clang-tidy: findings above (full log: $log)" >&2
  exit 1
fi
echo "clang-tidy: clean"
