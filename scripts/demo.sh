#!/usr/bin/env bash
# The one-command demo: builds the project (installing Debian packages first), starts dreamboothd
# with one local worker on a temporary data dir, uploads a synthetic instance set, fine-tunes the
# built-in `tiny` model with prior preservation while showing the progress of every stage,
# samples 4 images from the final checkpoint into ./demo-output and shuts everything down.
#
# The tiny model has random weights, so the images are noise: the demo shows the service working,
# not a model that has learnt anything.
#
# usage: scripts/demo.sh [--no-build]
#   --no-build      use the binaries already in the build folder
#   DEMO_STEPS      training steps (default 100; CI runs 20)
#   DEMO_THREADS    OpenMP threads of the worker (default: all cores)
#   DEMO_PORT       the daemon's loopback port (default: a free one)
#   DEMO_BUILD_DIR  the build folder (default ./build)
#   DEMO_OUT        where the 4 images go (default ./demo-output)
set -euo pipefail
if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
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
  bash scripts/build.sh dreamboothd dreambooth-worker dbctl
fi
for bin in server/dreamboothd worker/dreambooth-worker client/dbctl; do
  [[ -x "$BUILD/$bin" ]] || { echo "missing $BUILD/$bin: build first" >&2; exit 1; }
done
DBCTL="$BUILD/client/dbctl"

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
"$BUILD/server/dreamboothd" --listen="$DREAMBOOTH_SERVER" --data-dir="$WORK/data" \
  --local-workers=1 --worker-threads="${DEMO_THREADS:-$(nproc)}" >"$WORK/dreamboothd.log" 2>&1 &
DAEMON_PID=$!
for _ in $(seq 1 100); do
  "$DBCTL" health >/dev/null 2>&1 && break
  kill -0 "$DAEMON_PID" 2>/dev/null || { cat "$WORK/dreamboothd.log"; exit 1; }
  sleep 0.2
done
"$DBCTL" health

echo "==> generating the instance set (a synthetic 'sks' toy)"
python3 scripts/make_demo_images.py "$WORK/instance" --count 5 --size 64
SET_ID="$("$DBCTL" --json upload --name=demo-toy "$WORK/instance" |
  python3 -c 'import json,sys; print(json.loads(sys.stdin.read().splitlines()[-1])["image_set"]["id"])')"
echo "    uploaded 5 images into image set $SET_ID"

STEPS="${DEMO_STEPS:-100}"
cat >"$WORK/spec.json" <<JSON
{
  "base_model": "tiny",
  "instance_image_set": "$SET_ID",
  "instance_prompt": "a photo of sks toy",
  "with_prior_preservation": true,
  "regularization_prompt": "a photo of a toy",
  "num_reg_images": 4,
  "num_images_per_prompt": 4,
  "class_sampler": {"scheduler": "SCHEDULER_KIND_DDIM", "num_inference_steps": 10},
  "resolution": 64,
  "max_train_steps": $STEPS,
  "learning_rate": 1e-4,
  "checkpointing_steps": $((STEPS / 2)),
  "seed": 7
}
JSON
echo "==> submitting a prior-preservation DreamBooth job on 'tiny' ($STEPS steps)"
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

echo "==> sampling 4 images from the final checkpoint"
OUT="${DEMO_OUT:-$ROOT/demo-output}"
rm -rf "$OUT"
mkdir -p "$OUT"
"$DBCTL" sample "$JOB_ID" --prompt="a photo of sks toy" --num-images=4 --steps=20 --seed=1 \
  --out="$OUT"
n_png="$(find "$OUT" -maxdepth 1 -name '*.png' -size +0 | wc -l)"
if [[ "$n_png" -ne 4 ]]; then
  echo "demo: expected 4 images in $OUT, found $n_png" >&2
  exit 1
fi
echo
echo "Done. The 4 sampled images are in $OUT (noise: the built-in tiny model has random weights):"
ls -l "$OUT"
