#!/usr/bin/env bash
# Reproduces the built-in `toy` model (assets/models/toy) from scratch with the project's own
# tools: renders the toy world (held-out subject excluded), initialises the toy architecture,
# trains its VAE (dbtool pretrain-vae), then its UNet and text encoder together in text-to-image
# mode (dbtool train --mode text-to-image), and exports the EMA weights as fp16 into
# assets/models/toy with the training curves. Every stage is resumable: run it again after an
# interruption (Ctrl-C or a killed session) and it continues where it stopped.
#
# usage: scripts/pretrain_toy.sh [--no-build] [--export-only]
#   PRETRAIN_DIR      work folder (default .deps/toy-pretrain; several GB of cache)
#   PRETRAIN_IMAGES   rendered training scenes (default 20000)
#   VAE_STEPS         VAE steps (default 4000, batch 16 of 32x32 crops)
#   UNET_STEPS        UNet + text-encoder steps (default 3000, batch 32)
#   PRETRAIN_THREADS  CPU threads (default: all cores)
#   PRETRAIN_DEVICE   cpu | cuda (default cpu)
#   PRETRAIN_BATCH    UNet-stage batch size (default 32)
#   PRETRAIN_LR       UNet-stage peak learning rate (default 5e-4)
#   PRETRAIN_EMA      EMA decay of the exported UNet weights (default 0.999)
#   PRETRAIN_WARMUP   UNet-stage warmup steps (default 200, at most a tenth of the steps)
#   PRETRAIN_INIT     a trained toy model (diffusers folder) to continue from: skips the
#                     init and VAE stages and trains its UNet and text encoder on a new schedule
#   PRETRAIN_DEST     where the fp16 export goes (default assets/models/toy)
#   PRETRAIN_DBTOOL   the dbtool binary (default build/tools/dbtool)
#   --export-only     only export the newest checkpoint of the UNet stage (e.g. mid-run)
set -euo pipefail
if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'
  exit 0
fi
cd "$(dirname "$0")/.."
ROOT="$PWD"
BUILD=1
EXPORT_ONLY=0
for arg in "$@"; do
  case "$arg" in
    --no-build) BUILD=0 ;;
    --export-only) EXPORT_ONLY=1 ;;
    *) echo "pretrain_toy.sh: unknown argument '$arg' (see --help)" >&2; exit 2 ;;
  esac
done
[[ $BUILD == 1 ]] && bash scripts/build.sh dbtool
DBTOOL="${PRETRAIN_DBTOOL:-$ROOT/build/tools/dbtool}"
WORK="${PRETRAIN_DIR:-$ROOT/.deps/toy-pretrain}"
IMAGES="${PRETRAIN_IMAGES:-20000}"
VAE_STEPS="${VAE_STEPS:-4000}"
UNET_STEPS="${UNET_STEPS:-3000}"
THREADS="${PRETRAIN_THREADS:-$(nproc)}"
DEVICE="${PRETRAIN_DEVICE:-cpu}"
BATCH="${PRETRAIN_BATCH:-32}"
LR="${PRETRAIN_LR:-5e-4}"
EMA="${PRETRAIN_EMA:-0.999}"
WARMUP="${PRETRAIN_WARMUP:-$((UNET_STEPS / 10 < 200 ? UNET_STEPS / 10 : 200))}"
INIT="${PRETRAIN_INIT:-}"
DEST="${PRETRAIN_DEST:-$ROOT/assets/models/toy}"
mkdir -p "$WORK"

if [[ $EXPORT_ONLY == 0 ]]; then
  if [[ ! -f "$WORK/data/.complete" ]]; then
    echo "==> rendering $IMAGES training scenes into $WORK/data"
    rm -rf "$WORK/data"
    "$DBTOOL" render --out "$WORK/data" --count "$IMAGES" --seed 1 --subject exclude \
      --captions random
    touch "$WORK/data/.complete"
  fi
  if [[ -n "$INIT" && ! -f "$WORK/model/model_index.json" ]]; then
    [[ -f "$INIT/model_index.json" ]] || { echo "PRETRAIN_INIT: no model in $INIT" >&2; exit 2; }
    echo "==> continuing from $INIT (no init or VAE stage)"
    cp -r "$INIT" "$WORK/model.tmp" && mv "$WORK/model.tmp" "$WORK/model"
    touch "$WORK/vae.complete"
  fi
  if [[ ! -f "$WORK/model/model_index.json" ]]; then
    echo "==> initialising the toy architecture in $WORK/model"
    "$DBTOOL" init-model --arch toy --out "$WORK/model"
  fi
  if [[ ! -f "$WORK/vae.complete" ]]; then
    echo "==> training the VAE ($VAE_STEPS steps)"
    "$DBTOOL" pretrain-vae --model "$WORK/model" --image-dir "$WORK/data" \
      --max-steps "$VAE_STEPS" --batch-size 16 --crop-size 32 --learning-rate 5e-4 \
      --kl-weight 1e-6 --seed 1 --checkpoint-every 250 --threads "$THREADS" \
      --device "$DEVICE" | tee -a "$WORK/vae.log"
    touch "$WORK/vae.complete"
  fi
  echo "==> training the UNet and text encoder, text-to-image ($UNET_STEPS steps)"
  "$DBTOOL" train --mode text-to-image --base-model "$WORK/model" --instance-dir "$WORK/data" \
    --output "$WORK/t2i" --resume --resolution 64 --train-batch-size "$BATCH" \
    --max-train-steps "$UNET_STEPS" --learning-rate "$LR" --lr-scheduler cosine \
    --lr-warmup-steps "$WARMUP" --train-text-encoder --snr-gamma 5 --caption-dropout 0.1 \
    --use-ema --ema-decay "$EMA" --adam-weight-decay 0.01 --max-grad-norm 1 --seed 1 \
    --checkpointing-steps 250 --checkpoints-total-limit 1 --resume-states-to-keep 1 \
    --threads "$THREADS" --device "$DEVICE" | tee -a "$WORK/t2i.log"
fi

# The newest model of the UNet stage: the final export, else the newest checkpoint.
SRC="$WORK/t2i/final"
if [[ ! -f "$SRC/model_index.json" ]]; then
  SRC="$(ls -d "$WORK"/t2i/checkpoints/*/ 2>/dev/null | sort -V | tail -1)"
fi
[[ -n "$SRC" && -f "$SRC/model_index.json" ]] || { echo "no trained model yet in $WORK/t2i" >&2; exit 1; }
echo "==> exporting $SRC as fp16 into $DEST"
rm -rf "$DEST.tmp"
"$DBTOOL" convert "$SRC" "$DEST.tmp" --dtype fp16
python3 scripts/toy_training_curve.py "$WORK/vae.log" "$WORK/t2i.log" "$DEST.tmp/training_curve.csv"
rm -rf "$DEST"
mv "$DEST.tmp" "$DEST"
du -sh "$DEST"
