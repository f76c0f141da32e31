#!/usr/bin/env bash
# Continues the built-in `toy` model's pretraining on a GPU machine in one call (issue 13: the
# shipped weights had 3,000 steps of batch 32 on a 2-core CPU, too few to draw legible shapes).
# Builds dbtool against the machine's own torch (scripts/gpu_build_env.sh), renders the training
# world, measures the training speed in a short probe, then trains the shipped model's UNet and
# text encoder for as many steps as fit in --budget-s (scripts/pretrain_toy.sh with
# PRETRAIN_INIT), exports fp16 and scores it with dbtool eval against the shipped model. What
# comes back under $OUT (at most 8 files): unet.safetensors, text_encoder.safetensors,
# training_curve.csv, eval.json, eval-grid.png and pretrain.log. Install them here with
#   scripts/gpu_pretrain_toy.sh --install DIR      (DIR: where those files landed)
# which replaces the UNet and text-encoder weights in assets/models/toy and keeps the old curve.
#
# usage: scripts/gpu_pretrain_toy.sh [--device cuda|cpu] [--budget-s S] [--batch N] [--lr LR]
#                                    [--images N] [--jobs N] [--out DIR]
#   --device    where it trains (default cuda; cpu runs the same flow here, for a dry run)
#   --budget-s  seconds of UNet training after the probe (default 150: with the build, the
#               rendering, the latent cache and the scoring, meant to fit a 10-minute call)
#   --batch     batch size (default 256)
#   --lr        peak learning rate (default 5e-4, up to 200 warmup steps, cosine decay)
#   --images    rendered training scenes (default 20000)
#   --jobs      build parallelism (default: all cores)
#   --out       where the results go (default $OUT, else ./toy-gpu-out)
set -euo pipefail
if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'
  exit 0
fi
cd "$(dirname "$0")/.."
ROOT="$PWD"
DEST_MODEL="$ROOT/assets/models/toy"

if [[ "${1:-}" == "--install" ]]; then
  FROM="${2:?--install DIR}"
  for f in unet.safetensors text_encoder.safetensors training_curve.csv; do
    [[ -f "$FROM/$f" ]] || { echo "--install: $FROM/$f is missing" >&2; exit 2; }
  done
  cp "$FROM/unet.safetensors" "$DEST_MODEL/unet/diffusion_pytorch_model.safetensors"
  cp "$FROM/text_encoder.safetensors" "$DEST_MODEL/text_encoder/model.safetensors"
  cp "$FROM/training_curve.csv" "$DEST_MODEL/training_curve_gpu.csv"
  echo "installed into $DEST_MODEL (curve of the continued stage: training_curve_gpu.csv)"
  exit 0
fi

DEVICE=cuda
BUDGET=150
BATCH=256
LR=5e-4
IMAGES=20000
JOBS="$(nproc)"
RESULTS="${OUT:-$ROOT/toy-gpu-out}"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --device) DEVICE="$2"; shift 2 ;;
    --budget-s) BUDGET="$2"; shift 2 ;;
    --batch) BATCH="$2"; shift 2 ;;
    --lr) LR="$2"; shift 2 ;;
    --images) IMAGES="$2"; shift 2 ;;
    --jobs) JOBS="$2"; shift 2 ;;
    --out) RESULTS="$2"; shift 2 ;;
    *) echo "gpu_pretrain_toy.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
mkdir -p "$RESULTS"
LOG="$RESULTS/pretrain.log"
exec > >(tee -a "$LOG") 2>&1
echo "gpu_pretrain_toy $(date -u +%Y-%m-%dT%H:%M:%SZ) device=$DEVICE budget=${BUDGET}s batch=$BATCH" \
  "lr=$LR images=$IMAGES commit=$(git rev-parse --short HEAD 2>/dev/null || echo none)"

BUILD="${GPU_BUILD_DIR:-build-gpu}"
# shellcheck source=scripts/gpu_build_env.sh
source scripts/gpu_build_env.sh
start=$SECONDS
cmake "${GPU_CMAKE_ARGS[@]}" >/dev/null
cmake --build "$BUILD" -j "$JOBS" --target dbtool
DBTOOL="$ROOT/$BUILD/tools/dbtool"
echo "==> built dbtool in $((SECONDS - start)) s"

WORK="${GPU_PRETRAIN_DIR:-/tmp/toy-gpu-pretrain}"
mkdir -p "$WORK"
if [[ ! -f "$WORK/init/model_index.json" ]]; then
  "$DBTOOL" convert "$DEST_MODEL" "$WORK/init.tmp" --dtype fp32 >/dev/null
  mv "$WORK/init.tmp" "$WORK/init"
fi
if [[ ! -f "$WORK/data/.complete" ]]; then
  rm -rf "$WORK/data"
  "$DBTOOL" render --out "$WORK/data" --count "$IMAGES" --seed 1 --subject exclude \
    --captions random
  touch "$WORK/data/.complete"
fi

# Probe: 30 steps at full batch (it also fills the latent cache the real run reuses).
start=$SECONDS
probe="$("$DBTOOL" train --mode text-to-image --base-model "$WORK/init" \
  --instance-dir "$WORK/data" --output "$WORK/probe" --latent-cache-dir "$WORK/t2i/cache/latents" \
  --resolution 64 --train-batch-size "$BATCH" --max-train-steps 30 --learning-rate "$LR" \
  --train-text-encoder --snr-gamma 5 --caption-dropout 0.1 --checkpointing-steps 0 \
  --device "$DEVICE" | tee /dev/stderr | grep '^done:')"
rm -rf "$WORK/probe"
rate="$(sed -n 's/.*, \([0-9.]*\) steps\/s,.*/\1/p' <<<"$probe")"
[[ -n "$rate" ]] || { echo "the probe printed no speed" >&2; exit 1; }
STEPS="$(python3 -c "print(max(50, int($rate * $BUDGET)))")"
echo "==> probe: $rate steps/s at batch $BATCH ($((SECONDS - start)) s with latent caching):" \
  "$STEPS steps fit in ${BUDGET}s"

# The step count is new each run, so an earlier run's state cannot be resumed (its latents can).
rm -rf "$WORK/t2i/checkpoints" "$WORK/t2i/final" "$WORK/export"
PRETRAIN_DIR="$WORK" PRETRAIN_INIT="$WORK/init" PRETRAIN_DEVICE="$DEVICE" \
  PRETRAIN_BATCH="$BATCH" PRETRAIN_LR="$LR" PRETRAIN_EMA=0.999 UNET_STEPS="$STEPS" \
  PRETRAIN_DEST="$WORK/export" PRETRAIN_DBTOOL="$DBTOOL" PRETRAIN_THREADS="$JOBS" \
  bash scripts/pretrain_toy.sh --no-build

"$DBTOOL" render --out "$WORK/subject" --count 5 --seed 7 --subject only --captions none \
  >/dev/null
"$DBTOOL" eval --model "$WORK/export" --reference-model "$DEST_MODEL" \
  --instance-dir "$WORK/subject" --samples 32 --attribute-prompts 128 --device "$DEVICE" \
  --json-out "$RESULTS/eval.json" --images-out "$WORK/eval-images" --grid "$RESULTS/eval-grid.png"
cp "$WORK/export/unet/diffusion_pytorch_model.safetensors" "$RESULTS/unet.safetensors"
cp "$WORK/export/text_encoder/model.safetensors" "$RESULTS/text_encoder.safetensors"
cp "$WORK/export/training_curve.csv" "$RESULTS/training_curve.csv"
echo "==> done in $SECONDS s: results in $RESULTS"
