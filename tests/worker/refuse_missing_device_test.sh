#!/usr/bin/env bash
# The binaries start on a machine without a GPU, and asking them for a CUDA device this machine
# lacks fails at start with a clear message (never a crash or a hang).
# usage: refuse_missing_device_test.sh DBTOOL DREAMBOOTH_WORKER
set -uo pipefail
DBTOOL="$1"
WORKER="$2"
fail() { echo "FAIL: $*"; exit 1; }

devices="$("$DBTOOL" devices --json)" || fail "dbtool devices did not start"
echo "devices: $devices"
cuda_count="$(python3 -c 'import json,sys; print(sum(d["name"].startswith("cuda") for d in json.loads(sys.argv[1])))' "$devices")"
missing="cuda:$cuda_count"  # one past the last device: absent on every machine

out="$(timeout 60 "$WORKER" --server 127.0.0.1:1 --cache-dir "$(mktemp -d)" --device "$missing" 2>&1)"
rc=$?
[[ $rc -eq 2 ]] || fail "worker --device $missing exited $rc, want 2: $out"
grep -q "CUDA device" <<<"$out" || fail "worker message does not explain: $out"
echo "worker: $out"

out="$(timeout 60 "$DBTOOL" sample tiny --prompt "a dog" --steps 1 --device "$missing" 2>&1)"
rc=$?
[[ $rc -ne 0 && $rc -ne 124 ]] || fail "dbtool sample --device $missing exited $rc: $out"
grep -q "CUDA device" <<<"$out" || fail "dbtool message does not explain: $out"
echo "dbtool: $out"

if [[ "$cuda_count" -eq 0 ]]; then
  out="$(timeout 60 "$WORKER" --server 127.0.0.1:1 --cache-dir "$(mktemp -d)" --device cuda 2>&1)"
  rc=$?
  [[ $rc -eq 2 ]] || fail "worker --device cuda on a machine without GPU exited $rc: $out"
  grep -q "no usable CUDA device" <<<"$out" || fail "worker message does not explain: $out"
fi
echo "1 passed, 0 failed"
