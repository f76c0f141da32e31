#!/usr/bin/env bash
# Measures what DreamBooth does to the built-in `toy` model (docs/quality.md): renders the
# held-out subject's instance images, scores the base model, then fine-tunes it with and without
# prior preservation over a grid of steps and learning rates (dbtool train) and scores each
# result against the base (dbtool eval). Prints the markdown table docs/quality.md holds.
#
# usage: scripts/quality_toy.sh [--no-build]
#   QUALITY_DIR      work folder (default .deps/toy-quality)
#   QUALITY_STEPS    training steps to try (default "100 200 400")
#   QUALITY_LRS      learning rates to try (default "1e-4 3e-4")
#   QUALITY_SAMPLES  images per evaluation prompt (default 32)
#   QUALITY_THREADS  CPU threads (default: all cores)
set -euo pipefail
if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
  exit 0
fi
cd "$(dirname "$0")/.."
ROOT="$PWD"
[[ "${1:-}" == "--no-build" ]] || bash scripts/build.sh dbtool
DBTOOL="$ROOT/build/tools/dbtool"
W="${QUALITY_DIR:-$ROOT/.deps/toy-quality}"
STEPS_LIST="${QUALITY_STEPS:-100 200 400}"
LR_LIST="${QUALITY_LRS:-1e-4 3e-4}"
SAMPLES="${QUALITY_SAMPLES:-32}"
THREADS="${QUALITY_THREADS:-$(nproc)}"
mkdir -p "$W"

"$DBTOOL" render --out "$W/instance" --count 5 --seed 7 --subject only --captions none >/dev/null
EVAL=("$DBTOOL" eval --instance-dir "$W/instance" --samples "$SAMPLES" --attribute-prompts 64
      --threads "$THREADS")
if [[ ! -f "$W/base.json" ]]; then
  echo "==> base model"
  "${EVAL[@]}" --model toy --json-out "$W/base.json"
fi
for prior in 1 0; do
  for lr in $LR_LIST; do
    for steps in $STEPS_LIST; do
      name="prior${prior}-lr${lr}-steps${steps}"
      [[ -f "$W/$name.json" ]] && continue
      echo "==> $name"
      args=(--base-model toy --instance-dir "$W/instance" --instance-prompt "a photo of sks toy"
            --resolution 64 --max-train-steps "$steps" --learning-rate "$lr" --seed 7
            --checkpointing-steps 0 --threads "$THREADS" --output "$W/$name")
      if [[ $prior == 1 ]]; then
        args+=(--with-prior-preservation --class-prompt "a photo of a toy" --num-class-images 100
               --class-scheduler ddim --class-inference-steps 25 --class-cache-dir "$W/class")
      fi
      start=$(date +%s)
      "$DBTOOL" train "${args[@]}" | grep -E "^(done|class images)" || true
      echo "{\"train_seconds\": $(( $(date +%s) - start ))}" >"$W/$name.time.json"
      "${EVAL[@]}" --model "$W/$name/final" --reference-model toy --json-out "$W/$name.json"
      rm -rf "$W/$name"
    done
  done
done
python3 scripts/quality_table.py "$W"
