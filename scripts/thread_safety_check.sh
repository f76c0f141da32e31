#!/usr/bin/env bash
# Clang's thread-safety analysis (-Wthread-safety) over a gcc build: re-parses translation units
# from build/compile_commands.json (written by scripts/build.sh) with clang++ -fsyntax-only,
# each with its own defines and include paths, and fails on any thread-safety warning. gcc-only
# flags (-fpch-preprocess, the precompiled header's -include) and the build's own -W options are
# dropped. Prints a PASS/FAIL table, then the findings.
#
# usage: scripts/thread_safety_check.sh [--all] [--jobs N] [--build-dir DIR] [--clang CLANG++]
#                                       [PATH_PART ...]
#   default  the translation units that can see a mutex: their source, or a project header they
#            include (transitively), declares or locks one (absl::Mutex, std::mutex, ABSL_*)
#   --all    every C++ translation unit of server/, storage/, client/, worker/ and its subfolders
#            (slower: worker/ parses LibTorch's headers)
#   PATH_PART  only the selected units whose path contains one of these (e.g. server/event_hub)
#   exit status: 0 all pass; 1 a thread-safety warning; 2 a unit clang could not parse
set -euo pipefail
if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
  exit 0
fi
cd "$(dirname "$0")/.."
MODE=mutex
JOBS="$(nproc)"
BUILD_DIR=build
CLANG="${CLANGXX:-clang++-14}"
FILTERS=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --all) MODE=all ;;
    --jobs) JOBS="$2"; shift ;;
    --build-dir) BUILD_DIR="$2"; shift ;;
    --clang) CLANG="$2"; shift ;;
    -*) echo "thread_safety_check: unknown option '$1' (see --help)" >&2; exit 2 ;;
    *) FILTERS+=("$1") ;;
  esac
  shift
done
if [[ ! -f "$BUILD_DIR/compile_commands.json" ]]; then
  echo "thread_safety_check: no $BUILD_DIR/compile_commands.json; run scripts/build.sh first" >&2
  exit 2
fi
command -v "$CLANG" >/dev/null || { echo "thread_safety_check: $CLANG not found" >&2; exit 2; }

exec python3 - "$PWD" "$BUILD_DIR/compile_commands.json" "$MODE" "$JOBS" "$CLANG" \
  ${FILTERS[@]+"${FILTERS[@]}"} <<'PY'
import concurrent.futures, json, os, re, shlex, subprocess, sys, time

root, db_path, mode, jobs, clang = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
filters = sys.argv[6:]
root = os.path.realpath(root)
sys.path.insert(0, os.path.join(root, "scripts"))
from clang_compile_db import arguments, without_pch  # noqa: E402
MUTEX = re.compile(r"absl::Mutex\b|std::mutex\b|ABSL_GUARDED_BY|ABSL_PT_GUARDED_BY|"
                   r"ABSL_EXCLUSIVE_LOCKS_REQUIRED|ABSL_SHARED_LOCKS_REQUIRED|ABSL_LOCKS_EXCLUDED")
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
ALL_DIRS = ("server/", "storage/", "client/", "worker/")

def read(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return None

seen = {}
def sees_mutex(path, stack=()):
    """True when `path` or a project header it includes (transitively) mentions a mutex."""
    if path in seen:
        return seen[path]
    seen[path] = False  # include cycles end here
    text = read(path)
    if text is None:
        return False
    found = bool(MUTEX.search(text))
    for inc in INCLUDE.findall(text):
        header = os.path.join(root, inc)
        if not found and os.path.isfile(header):
            found = sees_mutex(header)
    seen[path] = found
    return found

def clang_args(entry):
    args = without_pch(arguments(entry))
    source = os.path.realpath(os.path.join(entry["directory"], entry["file"]))
    out, i = [clang], 1  # args[0] is the gcc driver
    while i < len(args):
        a = args[i]
        if a in ("-o", "-MF", "-MT", "-MQ"):
            i += 1
        elif a in ("-c", "-MD", "-MMD"):
            pass
        elif a.startswith("-W") and not a.startswith(("-Wl,", "-Wp,", "-Wa,")):
            pass  # the build's warnings are gcc's business; only thread safety is checked here
        elif os.path.realpath(os.path.join(entry["directory"], a)) == source:
            pass
        else:
            out.append(a)
        i += 1
    return out + ["-fsyntax-only", "-Wthread-safety", "-Werror=thread-safety", source]

entries = []
for e in json.load(open(db_path)):
    f = os.path.realpath(os.path.join(e["directory"], e["file"]))
    if not f.startswith(root + "/") or not f.endswith((".cc", ".cpp", ".cxx")):
        continue
    rel = os.path.relpath(f, root)
    if rel.startswith(("build", ".deps")):
        continue  # generated sources (protobuf), third-party
    if mode == "all":
        if not rel.startswith(ALL_DIRS):
            continue
    elif not sees_mutex(f):
        continue
    if filters and not any(part in rel for part in filters):
        continue
    e = dict(e, file=f)
    entries.append((rel, e))
entries.sort()
if not entries:
    print("thread_safety_check: no translation units selected", file=sys.stderr)
    sys.exit(2)

def check(item):
    rel, e = item
    start = time.time()
    p = subprocess.run(clang_args(e), cwd=e["directory"], capture_output=True, text=True)
    out = p.stdout + p.stderr
    findings = [l for l in out.splitlines() if "-Wthread-safety" in l]
    if findings:
        status = "FAIL"
    elif p.returncode != 0:
        status = "ERROR"
    else:
        status = "PASS"
    return rel, status, len(findings), time.time() - start, out

print(f"thread_safety_check: {len(entries)} translation units ({mode}), {clang}, -j{jobs}")
results = []
with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
    for r in pool.map(check, entries):
        results.append(r)
width = max(len(r[0]) for r in results)
print(f"{'unit'.ljust(width)}  result  warnings  seconds")
for rel, status, n, secs, _ in results:
    print(f"{rel.ljust(width)}  {status:<6}  {n:>8}  {secs:7.1f}")
bad = [r for r in results if r[1] != "PASS"]
for rel, status, _, _, out in bad:
    print(f"\n==== {status}: {rel}\n{out.rstrip()}")
fails = sum(r[1] == "FAIL" for r in results)
errors = sum(r[1] == "ERROR" for r in results)
print(f"\n{len(results) - len(bad)} passed, {fails} with thread-safety warnings, "
      f"{errors} not parsed")
sys.exit(1 if fails else 2 if errors else 0)
PY
