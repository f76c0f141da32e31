#!/usr/bin/env bash
# Compiles (syntax only) every LibTorch source against LibTorch 2.x headers: Debian trixie's
# libtorch-dev, fetched with apt into a private cache (nothing is installed). This covers the
# TORCH_VERSION_MAJOR >= 2 branches (scaled_dot_product_attention, the 2.3+ Allocator API) on a
# machine whose LibTorch is 1.13. Needs ./build configured (generated proto headers are not used
# by these sources). About 15 minutes on 2 cores; not part of scripts/test.sh.
# usage: scripts/check_libtorch2.sh [FILE.cc ...]
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${LIBTORCH2_CACHE:-$HOME/.cache/dreambooth-libtorch2}"
VERSION="${LIBTORCH2_VERSION:-2.6.0+dfsg-7}"
APT=(-o Dir::Etc::sourcelist="$CACHE/sources.list" -o Dir::Etc::sourceparts=/nonexistent
     -o Dir::State::Lists="$CACHE/lists" -o Dir::Cache="$CACHE/cache")
if [ ! -f "$CACHE/root/usr/include/torch/csrc/api/include/torch/version.h" ]; then
  mkdir -p "$CACHE/lists/partial" "$CACHE/cache/archives/partial" "$CACHE/root"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg]" \
    "http://deb.debian.org/debian trixie main" >"$CACHE/sources.list"
  apt-get "${APT[@]}" update >/dev/null
  (cd "$CACHE" && apt-get "${APT[@]}" download "libtorch-dev=$VERSION" 2>/dev/null)
  dpkg -x "$CACHE"/libtorch-dev_*.deb "$CACHE/root"
fi
export INC="$CACHE/root/usr/include"
if [ "$#" -gt 0 ]; then
  files=("$@")
else
  mapfile -t files < <(ls worker/diffusion/*.cc worker/train/*.cc tools/dbtool/*.cc \
    tests/diffusion/*.cc tests/train/*.cc | grep -v clip_tokenizer_assets)
fi
check() {
  if out=$(g++ -std=c++17 -fsyntax-only -DDB_TEST_DATA_DIR='"unused"' -I. -Ibuild -I"$INC" \
      -I"$INC/torch/csrc/api/include" "$1" 2>&1); then
    echo "ok   $1"
  else
    echo "FAIL $1"
    echo "$out" | grep -E "error" | head -5
    return 1
  fi
}
export -f check
printf '%s\n' "${files[@]}" | xargs -P "$(nproc)" -I{} bash -c 'check "$@"' _ {}
echo "all ${#files[@]} files compile against LibTorch $VERSION headers"
