#!/usr/bin/env bash
# Runs the standard CPU measurements of tests/data/bench/README.md on this project (dbtool bench,
# train_step_bench mid_step) and on diffusers + PyTorch (bench/diffusers_bench.py) in one run, and
# prints a Markdown table with both columns and the ratio. diffusers, transformers and torch are
# installed from PyPI into their own venv .deps/bench-venv (for comparisons only; never a
# dependency of the product). Needs ./build (scripts/build.sh).
#
# usage: bench/compare_diffusers.sh [--threads T=1] [--repeats R=3] [--steps N=10]
set -euo pipefail
if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'
  exit 0
fi
cd "$(dirname "$0")/.."
THREADS=1
REPEATS=3
STEPS=10
while [[ $# -gt 0 ]]; do
  case "$1" in
    --threads) THREADS="$2"; shift 2 ;;
    --repeats) REPEATS="$2"; shift 2 ;;
    --steps) STEPS="$2"; shift 2 ;;
    *) echo "compare_diffusers.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
VENV=.deps/bench-venv
TORCH="$(grep -E '^torch==' scripts/torch-requirements.txt)"
if ! "$VENV/bin/python3" -c 'import diffusers, transformers, torch' 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/python3" -m pip install --quiet --disable-pip-version-check "$TORCH" diffusers \
    transformers numpy
fi
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
export OMP_NUM_THREADS="$THREADS"
build/tools/dbtool bench --threads "$THREADS" --repeats "$REPEATS" | tee "$TMP/ours.txt" >&2
build/tests/train/train_step_bench mid_step --steps "$STEPS" --threads "$THREADS" |
  tee "$TMP/ours_step.json" >&2
"$VENV/bin/python3" bench/diffusers_bench.py --threads "$THREADS" --repeats "$REPEATS" |
  tee "$TMP/theirs.jsonl" >&2
VERSIONS="$("$VENV/bin/python3" -c 'import diffusers, torch; print(f"diffusers {diffusers.__version__}, torch {torch.__version__}")')"
python3 - "$TMP" "$THREADS" "$VERSIONS" <<'PY'
import json, re, sys
tmp, threads, versions = sys.argv[1], sys.argv[2], sys.argv[3]
ours = {}
for line in open(f"{tmp}/ours.txt"):
    m = re.match(r"(\S+)\s+median\s+([0-9.]+) ms", line)
    if m:
        ours[m.group(1)] = float(m.group(2))
step = json.loads(open(f"{tmp}/ours_step.json").read().strip().splitlines()[-1])
ours["dreambooth_step_mid"] = 1000.0 / step["steps_per_second"]
theirs = {}
for line in open(f"{tmp}/theirs.jsonl"):
    d = json.loads(line)
    if "median_ms" in d:
        theirs[d["name"]] = d["median_ms"]
print(f"\n{threads} thread(s); this project vs {versions} (median ms; ratio = diffusers / ours)\n")
print("| measurement | this project (ms) | diffusers (ms) | ratio |")
print("| --- | ---: | ---: | ---: |")
for name in ["unet_mid_fwd_b1", "unet_mid_fwd_b4", "unet_mid_fwd_bwd_b2", "dreambooth_step_mid",
             "sample_tiny_ddim25_cfg_64px", "vae_tiny_encode_64px", "vae_tiny_decode_64px"]:
    a, b = ours.get(name), theirs.get(name)
    ratio = f"{b / a:.2f}x" if a and b else "-"
    fa = f"{a:.1f}" if a else "-"
    fb = f"{b:.1f}" if b else "-"
    print(f"| {name} | {fa} | {fb} | {ratio} |")
PY
