#!/usr/bin/env bash
# Installs what this project builds and tests with: Debian 12 packages (apt) and LibTorch, i.e. the
# PyPI `torch` wheel pinned in scripts/torch-requirements.txt, into the project's own venv
# .deps/venv (never system-wide). Idempotent: when everything is present it does nothing and uses
# no network.
#
# First run: about 3.3 GB downloaded from PyPI (torch 0.5 GB, its CUDA libraries ~2.6 GB, triton
# 0.2 GB), 5.3 GB on disk in .deps/, 1-3 minutes on a fast link; plus ~400 MB of Debian packages
# (clang and libclang-rt-dev, whose libclang_rt.fuzzer is libFuzzer, build fuzz/).
set -euo pipefail
if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'
  echo "usage: scripts/setup.sh   (DB_VENV=DIR puts the venv elsewhere; DB_SETUP_TORCH=0 skips it)"
  exit 0
fi
cd "$(dirname "$0")/.."
PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config git
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev libsqlite3-dev libspdlog-dev libfmt-dev libgtest-dev libgmock-dev libbenchmark-dev
  libpng-dev libjpeg62-turbo-dev libturbojpeg0-dev libre2-dev nlohmann-json3-dev libssl-dev
  libicu-dev libcli11-dev prometheus-cpp-dev libyaml-cpp-dev libcurl4-openssl-dev
  clang libclang-rt-dev
  python3 python3-venv
)
missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#PACKAGES[@]} Debian packages present"
else
  echo "setup: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if [[ "${DB_SETUP_TORCH:-1}" == "0" ]]; then
  echo "setup: DB_SETUP_TORCH=0: LibTorch not installed (service-only build, -DDB_BUILD_TORCH=OFF)"
  exit 0
fi
VENV="${DB_VENV:-$PWD/.deps/venv}"
REQ="scripts/torch-requirements.txt"
WANT="$(grep -E '^torch==' "$REQ" | cut -d= -f3)"
HAVE="$("$VENV/bin/python3" -c 'import torch; print(torch.__version__.split("+")[0])' 2>/dev/null || true)"
if [[ "$HAVE" == "$WANT" ]]; then
  echo "setup: LibTorch $HAVE present in $VENV"
  exit 0
fi
echo "setup: installing torch $WANT (LibTorch for C++, with its CUDA libraries) into $VENV;" \
  "the first time this downloads about 3.3 GB"
# pip downloads the wheels into its temporary folder, then installs them: up to ~9 GB at the peak.
# Below 6 GB free it cannot succeed; say so instead of failing midway with ENOSPC.
mkdir -p "$(dirname "$VENV")"
need_gb=6
for dir in "$(dirname "$VENV")" "${TMPDIR:-/tmp}"; do
  free_gb=$(df -P -BG "$dir" | awk 'NR == 2 { sub("G", "", $4); print $4 }')
  if [[ -n "$free_gb" && "$free_gb" -lt "$need_gb" ]]; then
    echo "setup: only ${free_gb} GB free on the filesystem of $dir; installing LibTorch needs about" \
      "${need_gb}-9 GB (3.3 GB download, 5.3 GB installed). Free some space, or set DB_VENV / TMPDIR" \
      "to a larger disk." >&2
    exit 1
  fi
done
[[ -x "$VENV/bin/python3" ]] || python3 -m venv "$VENV"
# No pip cache: it would keep another 3.3 GB copy of the wheels.
"$VENV/bin/python3" -m pip install --quiet --disable-pip-version-check --no-cache-dir -r "$REQ"
"$VENV/bin/python3" -W ignore -c 'import torch; print("setup: LibTorch", torch.__version__, "CUDA", torch.version.cuda)'
