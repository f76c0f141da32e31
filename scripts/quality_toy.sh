#!/usr/bin/env bash
# Measures what DreamBooth does to the built-in `toy` model (docs/quality.md): renders the
# held-out subject's instance images, scores the base model, then fine-tunes it with and without
# prior preservation over a grid of steps and learning rates (dbtool train), then scores each
# result against the base (dbtool eval). Rerunning skips what is done. Prints the markdown table docs/quality.md holds.
#
# usage: scripts/quality_toy.sh [--no-build]
#   QUALITY_DIR      work folder (default .deps/toy-quality)
#   QUALITY_STEPS    training steps to try (default "100 300")
#   QUALITY_LRS      learning rates to try (default "1e-4 3e-4")
#   QUALITY_SAMPLES  images per evaluation prompt (default 32)
#   QUALITY_THREADS  CPU threads (default: all cores)
#   QUALITY_PHASE    train | score | all (default all): only train, or only score what is trained
set -euo pipefail
if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
  exit 0
fi
cd "$(dirname "$0")/.."
ROOT="$PWD"
[[ "${1:-}" == "--no-build" ]] || bash scripts/build.sh dbtool
DBTOOL="$ROOT/build/tools/dbtool"
W="${QUALITY_DIR:-$ROOT/.deps/toy-quality}"
STEPS_LIST="${QUALITY_STEPS:-100 300}"
LR_LIST="${QUALITY_LRS:-1e-4 3e-4}"
SAMPLES="${QUALITY_SAMPLES:-32}"
THREADS="${QUALITY_THREADS:-$(nproc)}"
PHASE="${QUALITY_PHASE:-all}"
mkdir -p "$W"

"$DBTOOL" render --out "$W/instance" --count 5 --seed 7 --subject only --captions none >/dev/null
rm -f "$W/instance"/*.jsonl
EVAL=("$DBTOOL" eval --instance-dir "$W/instance" --samples "$SAMPLES" --attribute-prompts 64
      --guidance 5 --threads "$THREADS")
configs=()
for prior in 1 0; do
  for lr in $LR_LIST; do
    for steps in $STEPS_LIST; do configs+=("$prior:$lr:$steps"); done
  done
done
# Train every configuration first (each keeps its final model until it is scored), then score.
for c in "${configs[@]}"; do
  [[ $PHASE == score ]] && break
  IFS=: read -r prior lr steps <<<"$c"
  name="prior${prior}-lr${lr}-steps${steps}"
  [[ -f "$W/$name.json" || -f "$W/$name/final/model_index.json" ]] && continue
  echo "==> training $name"
  args=(--base-model toy --instance-dir "$W/instance" --instance-prompt "a photo of sks toy"
        --resolution 64 --max-train-steps "$steps" --learning-rate "$lr" --seed 7
        --checkpointing-steps 0 --threads "$THREADS" --output "$W/$name")
  if [[ $prior == 1 ]]; then
    args+=(--with-prior-preservation --class-prompt "a photo of a toy" --num-class-images 100
           --class-scheduler ddim --class-inference-steps 25 --class-guidance-scale 5
           --class-cache-dir "$W/class")
  fi
  start=$(date +%s)
  "$DBTOOL" train "${args[@]}" | grep -E "^(done|class images)" || true
  echo "{\"train_seconds\": $(( $(date +%s) - start ))}" >"$W/$name.time.json"
done
[[ $PHASE == train ]] && exit 0
for c in "${configs[@]}"; do
  IFS=: read -r prior lr steps <<<"$c"
  name="prior${prior}-lr${lr}-steps${steps}"
  [[ -f "$W/$name.json" ]] && continue
  echo "==> scoring $name"
  "${EVAL[@]}" --model "$W/$name/final" --reference-model toy --json-out "$W/$name.json"
  rm -rf "$W/$name"
done
if [[ ! -f "$W/base.json" ]]; then
  echo "==> scoring the base model"
  "${EVAL[@]}" --model toy --json-out "$W/base.json"
fi
python3 scripts/quality_table.py "$W"
