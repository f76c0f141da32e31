#!/usr/bin/env bash
# The GPU check: what a machine with only CUDA, CMake, Ninja and a Python torch 2.x (no gRPC, no
# SQLite, no network) runs in under ten minutes. It builds the LibTorch-only targets (dbtool, the
# kernel and device tests) against that torch, then on --device runs: the device listing, the
# parity fixtures in float32 (the fixtures' own tolerances) with every attention backend and in
# bf16 (and fp16 on CUDA) within the stated reduced-precision tolerances (docs/diffusion-io.md), the
# kernels' tests, the device test and the benchmarks in float32 and bf16 (on CUDA also the SD
# 1.5-size suite at 512x512 with TFLOP/s and fraction of peak, channels_last, the fused kernels
# and CUDA graphs, each beside the plain run), and writes every result into one file.
#
# usage: scripts/gpu_check.sh [--device cuda|cuda:N|cpu] [--out FILE] [--python PY]
#                             [--deps-root DIR] [--build-dir DIR] [--jobs N] [--quick]
#   --device     where everything runs (default: cuda)
#   --out        results file (default: gpu-check-results.txt, or $OUT/gpu-check-results.txt)
#   --python     the Python whose torch provides LibTorch (default: python3 if it has torch,
#                else .deps/venv/bin/python3)
#   --deps-root  Debian packages unpacked with dpkg -x (absl, re2, ICU, libpng, libjpeg, OpenSSL,
#                GoogleTest, nlohmann-json, CLI11) for a machine without them; default:
#                .gpu-deps/root when .gpu-deps/debs exists (scripts/gpu_deps.sh downloads them)
#   --quick      skip the benchmarks
# Exit status: 0 when every step passed.
set -uo pipefail
if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'
  exit 0
fi
cd "$(dirname "$0")/.."
ROOT="$PWD"
DEVICE=cuda
RESULTS="${OUT:+$OUT/}gpu-check-results.txt"
PY=""
DEPS=""
BUILD="build-gpu"
JOBS="$(nproc)"
QUICK=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --device) DEVICE="$2"; shift 2 ;;
    --out) RESULTS="$2"; shift 2 ;;
    --python) PY="$2"; shift 2 ;;
    --deps-root) DEPS="$2"; shift 2 ;;
    --build-dir) BUILD="$2"; shift 2 ;;
    --jobs) JOBS="$2"; shift 2 ;;
    --quick) QUICK=1; shift ;;
    *) echo "gpu_check.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
# shellcheck source=scripts/gpu_build_env.sh
source scripts/gpu_build_env.sh
mkdir -p "$(dirname "$RESULTS")"
: >"$RESULTS"
FAILED=0
log() { echo "$*" | tee -a "$RESULTS"; }
# step NAME COMMAND...: runs, appends its output to the results, records PASS/FAIL and seconds.
step() {
  local name="$1"; shift
  log ""
  log "=== $name: $*"
  local start=$SECONDS
  "$@" 2>&1 | tee -a "$RESULTS"
  local rc=${PIPESTATUS[0]}
  if [[ $rc -eq 0 ]]; then log "=== $name: PASS ($((SECONDS - start)) s)";
  else log "=== $name: FAIL rc=$rc ($((SECONDS - start)) s)"; FAILED=$((FAILED + 1)); fi
}

log "gpu_check $(date -u +%Y-%m-%dT%H:%M:%SZ) device=$DEVICE commit=$(git rev-parse --short HEAD 2>/dev/null || echo none)"
log "host: $(uname -sr), $(nproc) cores; python: $PY"
"$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "gpus", torch.cuda.device_count())' 2>&1 | tee -a "$RESULTS"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee -a "$RESULTS"

step configure cmake "${GPU_CMAKE_ARGS[@]}"
TEST_TARGETS=(diffusion_device_test diffusion_cuda_graph_unet_test)
for t in tests/kernels/*_test.cc; do [[ -e "$t" ]] && TEST_TARGETS+=("kernels_$(basename "$t" .cc)"); done
step build cmake --build "$BUILD" -j "$JOBS" --target dbtool "${TEST_TARGETS[@]}"

DBTOOL="$BUILD/tools/dbtool"
step devices "$DBTOOL" devices
for backend in auto math sdpa; do
  step "parity-tiny-a-fp32-$backend" "$DBTOOL" parity tests/data/fixtures/tiny-a \
    --device "$DEVICE" --attention "$backend"
done
step parity-tiny-a-bf16 "$DBTOOL" parity tests/data/fixtures/tiny-a --device "$DEVICE" --dtype bf16
if [[ "$DEVICE" == cuda* ]]; then
  step parity-tiny-a-fp16 "$DBTOOL" parity tests/data/fixtures/tiny-a --device "$DEVICE" --dtype fp16
fi
step parity-tokenizer "$DBTOOL" parity tests/data/fixtures/tokenizer
step parity-lora-fp32 "$DBTOOL" parity tests/data/lora --device "$DEVICE"
for t in "${TEST_TARGETS[@]}"; do
  bin="$(find "$BUILD/tests" -type f -name "$t" | head -1)"
  step "$t" "$bin"
done
if [[ $QUICK -eq 0 ]]; then
  step bench-fp32 "$DBTOOL" bench --device "$DEVICE" --dtype fp32 --repeats 3
  step bench-bf16 "$DBTOOL" bench --device "$DEVICE" --dtype bf16 --repeats 3
  step bench-attention-bf16 "$DBTOOL" bench --device "$DEVICE" --dtype bf16 --only attention
  if [[ "$DEVICE" == cuda* ]]; then
    # Dense peaks of the H100/H200 SXM datasheet (bf16 ~990, plain fp32 ~67 TFLOP/s); 0 (no
    # fraction printed) for other GPUs.
    GPU_NAME="$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)"
    PEAK_BF16=0
    PEAK_FP32=0
    if [[ "$GPU_NAME" == *H100* || "$GPU_NAME" == *H200* ]]; then PEAK_BF16=990; PEAK_FP32=67; fi
    step bench-sd15-bf16 "$DBTOOL" bench --device "$DEVICE" --dtype bf16 --only sd15 \
      --repeats 3 --peak-tflops "$PEAK_BF16"
    step bench-sd15-fp32 "$DBTOOL" bench --device "$DEVICE" --dtype fp32 --only sd15 \
      --repeats 3 --peak-tflops "$PEAK_FP32"
    step bench-sd15-bf16-channels-last "$DBTOOL" bench --device "$DEVICE" --dtype bf16 \
      --only sd15_unet --repeats 3 --peak-tflops "$PEAK_BF16" --channels-last
    # The fused kernels (GroupNorm+SiLU, guided DDIM step) against LibTorch's ops: they are
    # switched on by default only where these lines show them faster.
    step bench-sd15-bf16-fused "$DBTOOL" bench --device "$DEVICE" --dtype bf16 --only sd15 \
      --repeats 3 --peak-tflops "$PEAK_BF16" --fused-kernels all
    step parity-tiny-a-fused "$DBTOOL" parity tests/data/fixtures/tiny-a --device "$DEVICE" \
      --fused-kernels all
    # CUDA graphs for the sampling loop's UNet call: the goldens still pass, and the time of 50
    # guided steps with and without them.
    step parity-tiny-a-cuda-graphs "$DBTOOL" parity tests/data/fixtures/tiny-a \
      --device "$DEVICE" --cuda-graphs
    step bench-sd15-sample-bf16-cuda-graphs "$DBTOOL" bench --device "$DEVICE" --dtype bf16 \
      --only sd15_sample --repeats 3 --peak-tflops "$PEAK_BF16" --cuda-graphs
    step bench-tiny-sample-cuda-graphs "$DBTOOL" bench --device "$DEVICE" --only sample_tiny \
      --repeats 3 --cuda-graphs
  fi
fi
log ""
log "gpu_check: $FAILED step(s) failed; results in $RESULTS"
[[ $FAILED -eq 0 ]]
