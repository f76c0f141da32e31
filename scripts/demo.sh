#!/usr/bin/env bash
# The one-command demo: builds the project (installing Debian packages first), starts dreamboothd
# with one local worker on a temporary data dir, renders 5 images of the toy world's held-out
# subject (a blue striped heart the base model has never seen), uploads them, fine-tunes the
# built-in `toy` model on them with prior preservation while showing the progress of every stage,
# samples "a photo of sks toy" and "a photo of sks toy on a beach" from the final checkpoint into
# ./demo-output, scores the samples with the toy world's evaluator (dbtool eval), writes a
# picture grid (instance images, then samples) and shuts everything down.
#
# usage: scripts/demo.sh [--no-build]
#   --no-build      use the binaries already in the build folder
#   DEMO_STEPS      training steps (default 300; CI runs 20, too few to learn the subject)
#   DEMO_THREADS    OpenMP threads of the worker (default: all cores)
#   DEMO_PORT       the daemon's loopback port (default: a free one)
#   DEMO_BUILD_DIR  the build folder (default ./build)
#   DEMO_OUT        where the samples, scores and grid go (default ./demo-output)
set -euo pipefail
if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'
  exit 0
fi
if [[ $# -gt 0 && "$1" != "--no-build" ]]; then
  echo "demo.sh: unknown argument '$1' (see --help)" >&2
  exit 2
fi
cd "$(dirname "$0")/.."
ROOT="$PWD"
BUILD="${DEMO_BUILD_DIR:-$ROOT/build}"  # DEMO_BUILD_DIR: use another build tree

if [[ "${1:-}" != "--no-build" ]]; then
  echo "==> building (scripts/build.sh; first run installs packages and compiles for a while)"
  bash scripts/build.sh dreamboothd dreambooth-worker dbctl dbtool
fi
for bin in server/dreamboothd worker/dreambooth-worker client/dbctl tools/dbtool; do
  [[ -x "$BUILD/$bin" ]] || { echo "missing $BUILD/$bin: build first" >&2; exit 1; }
done
DBCTL="$BUILD/client/dbctl"
DBTOOL="$BUILD/tools/dbtool"

WORK="$(mktemp -d -t dreambooth-demo.XXXXXX)"
PORT="${DEMO_PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')}"
export DREAMBOOTH_SERVER="127.0.0.1:$PORT"
DAEMON_PID=""
cleanup() {
  if [[ -n "$DAEMON_PID" ]] && kill -0 "$DAEMON_PID" 2>/dev/null; then
    echo "==> stopping dreamboothd (and its worker)"
    kill -TERM "$DAEMON_PID" 2>/dev/null || true
    wait "$DAEMON_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

echo "==> starting dreamboothd on $DREAMBOOTH_SERVER with one local worker (data: $WORK/data)"
# Loopback only, so no API keys are needed (docs/security.md); the worker service takes any free
# port (only the daemon's own local worker uses it).
"$BUILD/server/dreamboothd" --listen="$DREAMBOOTH_SERVER" --worker-listen=127.0.0.1:0 \
  --data-dir="$WORK/data" --local-workers=1 --worker-threads="${DEMO_THREADS:-$(nproc)}" >"$WORK/dreamboothd.log" 2>&1 &
DAEMON_PID=$!
for _ in $(seq 1 100); do
  "$DBCTL" health >/dev/null 2>&1 && break
  kill -0 "$DAEMON_PID" 2>/dev/null || { cat "$WORK/dreamboothd.log"; exit 1; }
  sleep 0.2
done
"$DBCTL" health

echo "==> rendering the instance set: 5 images of the held-out subject (a blue striped heart)"
"$DBTOOL" render --out "$WORK/instance" --count 5 --seed 7 --subject only --captions none
rm -f "$WORK/instance"/*.jsonl
SET_ID="$("$DBCTL" --json upload --name=demo-toy "$WORK/instance" |
  python3 -c 'import json,sys; print(json.loads(sys.stdin.read().splitlines()[-1])["image_set"]["id"])')"
echo "    uploaded 5 images into image set $SET_ID"

STEPS="${DEMO_STEPS:-300}"
LR="${DEMO_LR:-3e-4}"
cat >"$WORK/spec.json" <<JSON
{
  "base_model": "toy",
  "instance_image_set": "$SET_ID",
  "instance_prompt": "a photo of sks toy",
  "with_prior_preservation": true,
  "regularization_prompt": "a photo of a toy",
  "num_reg_images": 50,
  "num_images_per_prompt": 10,
  "class_sampler": {"scheduler": "SCHEDULER_KIND_DDIM", "num_inference_steps": 25,
                    "guidance_scale": 5},
  "resolution": 64,
  "max_train_steps": $STEPS,
  "learning_rate": $LR,
  "checkpointing_steps": $((STEPS / 2)),
  "seed": 7
}
JSON
echo "==> submitting a prior-preservation DreamBooth job on 'toy' ($STEPS steps, lr $LR)"
JOB_ID="$("$DBCTL" --json jobs submit --spec-json="$WORK/spec.json" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')"
echo "    job $JOB_ID"

echo "==> watching the job (every stage)"
"$DBCTL" jobs watch "$JOB_ID"
STATE="$("$DBCTL" --json jobs get "$JOB_ID" | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])')"
if [[ "$STATE" != "JOB_STATE_SUCCEEDED" ]]; then
  echo "job ended in $STATE; daemon log:" >&2
  tail -50 "$WORK/dreamboothd.log" >&2
  exit 1
fi
"$DBCTL" checkpoints list "$JOB_ID"

OUT="${DEMO_OUT:-$ROOT/demo-output}"
rm -rf "$OUT"
mkdir -p "$OUT/samples" "$OUT/instance"
cp "$WORK/instance"/*.png "$OUT/instance/"
# name: prompt (8 samples each, through the service's Sample RPC)
PROMPTS=("subject:a photo of sks toy" "beach:a photo of sks toy on a beach")
for entry in "${PROMPTS[@]}"; do
  name="${entry%%:*}"
  prompt="${entry#*:}"
  echo "==> sampling 8 images of \"$prompt\" from the final checkpoint"
  "$DBCTL" sample "$JOB_ID" --prompt="$prompt" --num-images=8 --steps=25 --guidance=5 --seed=1 \
    --out="$WORK/sample-$name" >/dev/null
  for f in "$WORK/sample-$name"/*.png; do
    stem="$name-$(basename "$f" .png)"
    cp "$f" "$OUT/samples/$stem.png"
    printf '%s' "$prompt" >"$OUT/samples/$stem.txt"
  done
done
n_png="$(find "$OUT/samples" -maxdepth 1 -name '*.png' -size +0 | wc -l)"
if [[ "$n_png" -ne 16 ]]; then
  echo "demo: expected 16 images in $OUT/samples, found $n_png" >&2
  exit 1
fi

echo "==> scoring the samples with the toy world's evaluator (dbtool eval)"
"$DBTOOL" eval --images "$OUT/samples" --instance-dir "$OUT/instance" \
  --json-out "$OUT/scores.json" --grid "$OUT/grid.png"
echo
echo "Done. In $OUT: instance/ (what the job was given), samples/ (with their prompts),"
echo "grid.png (first row: the instance images; then the samples), scores.json."
echo "'subject' is the share of samples the classifier reads as the blue striped heart, which the"
echo "base model never draws (docs/quality.md has the measured numbers)."
