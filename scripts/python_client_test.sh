#!/usr/bin/env bash
# Tests the Python SDK (client/python) against a real dreamboothd with a real local worker from the
# build folder: makes the venv .deps/pyclient-venv (python3 -m venv), pip installs
# ./client/python[dev] into it from PyPI (grpcio, grpcio-tools, grpcio-status, protobuf,
# googleapis-common-protos, pillow, pytest, tqdm; the gRPC stubs are generated from proto/ while
# the package builds), then runs pytest on client/python/tests (about 25 s of tests on 2 cores;
# the first install downloads about 30 MB).
# usage: scripts/python_client_test.sh [PYTEST_ARGS ...]   e.g. -k watch, -x
#   DB_PYCLIENT_VENV      the venv (default .deps/pyclient-venv)
#   DREAMBOOTH_BUILD_DIR  the build folder holding dreamboothd and dreambooth-worker (default ./build)
set -euo pipefail
if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'
  exit 0
fi
cd "$(dirname "$0")/.."
ROOT="$PWD"
VENV="${DB_PYCLIENT_VENV:-$ROOT/.deps/pyclient-venv}"
export DREAMBOOTH_BUILD_DIR="${DREAMBOOTH_BUILD_DIR:-$ROOT/build}"
for bin in server/dreamboothd worker/dreambooth-worker; do
  [[ -x "$DREAMBOOTH_BUILD_DIR/$bin" ]] ||
    { echo "python_client_test.sh: missing $DREAMBOOTH_BUILD_DIR/$bin: build first (scripts/build.sh)" >&2; exit 1; }
done
if [[ ! -x "$VENV/bin/python3" ]]; then
  echo "python_client_test.sh: creating $VENV"
  mkdir -p "$(dirname "$VENV")"
  python3 -m venv "$VENV" ||
    { echo "python_client_test.sh: python3 -m venv failed; install python3-venv (scripts/setup.sh does)" >&2; exit 1; }
fi
echo "python_client_test.sh: installing ./client/python[dev] into $VENV"
# A local folder is always rebuilt and reinstalled, so the stubs follow the current protos.
"$VENV/bin/python3" -m pip install --quiet --disable-pip-version-check "$ROOT/client/python[dev]"
cd "$ROOT/client/python"
# One OpenMP thread per process unless the caller chose (the worker runs --worker-threads=2).
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
exec "$VENV/bin/python3" -m pytest -p no:cacheprovider -ra "$@"
