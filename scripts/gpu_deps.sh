#!/usr/bin/env bash
# Downloads (never installs) the Debian 12 packages that the LibTorch-only targets build against
# (absl, RE2, ICU, libpng, libjpeg, OpenSSL, GoogleTest, nlohmann-json, zlib, CLI11) into
# .gpu-deps/debs, about 28 MB, for a GPU machine that has CUDA and a Python torch but none of
# these and no network: carry .gpu-deps there and scripts/gpu_check.sh unpacks them with dpkg -x
# (CMake finds CLI11's config under <root>/usr/share/cmake through CMAKE_PREFIX_PATH).
# usage: scripts/gpu_deps.sh
set -euo pipefail
if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'
  exit 0
fi
cd "$(dirname "$0")/.."
PACKAGES=(libabsl-dev libabsl20220623 nlohmann-json3-dev libre2-dev libre2-9 libicu-dev libicu72
          libpng-dev libpng16-16 libjpeg62-turbo-dev libjpeg62-turbo libssl-dev libssl3
          libgtest-dev libgmock-dev zlib1g-dev zlib1g libcli11-dev)
rm -rf .gpu-deps
mkdir -p .gpu-deps/debs
cd .gpu-deps/debs
apt-get download "${PACKAGES[@]}"
du -sh .
