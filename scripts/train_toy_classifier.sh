#!/usr/bin/env bash
# Reproduces the toy world's attribute classifier (assets/models/toy-classifier.safetensors), the
# evaluator of dbtool eval, with the commands that made the shipped weights: 2000 steps from random
# weights (renders of seed 1, lr 2e-3), 900 more from those weights on fresh renders (seed 2,
# lr 1e-3), then 1500 more (seed 3, lr 1e-3) where a quarter of every batch takes the toy VAE's
# round trip with latent noise (evaluation/vae_round_trip.h), so that it reads generated images.
# Prints the held-out accuracy (2000 renders no training step sees), clean and round-tripped.
#
# usage: scripts/train_toy_classifier.sh [--no-build]
#   CLASSIFIER_THREADS  CPU threads (default 1: about 20 + 9 + 15 minutes on this VM)
set -euo pipefail
if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'
  exit 0
fi
cd "$(dirname "$0")/.."
[[ "${1:-}" == "--no-build" ]] || bash scripts/build.sh dbtool
DBTOOL="$PWD/build/tools/dbtool"
THREADS="${CLASSIFIER_THREADS:-1}"
STAGE1="$(mktemp -t toy-classifier.XXXXXX.safetensors)"
STAGE2="$(mktemp -t toy-classifier.XXXXXX.safetensors)"
trap 'rm -f "$STAGE1" "$STAGE2"' EXIT
"$DBTOOL" train-classifier --out "$STAGE1" --steps 2000 --batch-size 64 --learning-rate 2e-3 \
  --seed 1 --threads "$THREADS" --held-out 2000 --log-every 100
"$DBTOOL" train-classifier --init "$STAGE1" --out "$STAGE2" --steps 900 --batch-size 64 \
  --learning-rate 1e-3 --seed 2 --threads "$THREADS" --held-out 2000 --log-every 100
"$DBTOOL" train-classifier --init "$STAGE2" --out assets/models/toy-classifier.safetensors \
  --steps 1500 --batch-size 64 --learning-rate 1e-3 --seed 3 --threads "$THREADS" \
  --held-out 2000 --log-every 100 --round-trip-model toy --round-trip-per-batch 16 \
  --round-trip-noise 0.3
