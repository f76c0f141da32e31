#!/usr/bin/env bash
# Creates the Python reference environment used to (re)generate tests/data/lora/golden/*.
# Golden generation only -- never a product dependency.
#
#   scripts/lora_reference_env.sh            # install into .deps/lora-ref
#   PYTHONPATH=.deps/lora-ref .deps/venv/bin/python3 tests/data/lora/make_goldens.py
#
# torch is NOT installed here: it is reused from .deps/venv (torch 2.15.0).
# Everything is installed with --no-deps so pip never pulls a second torch; all
# transitive dependencies are pinned explicitly in tests/data/lora/requirements.txt.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
PY="${PY:-.deps/venv/bin/python3}"
TARGET="${TARGET:-.deps/lora-ref}"
REQ=tests/data/lora/requirements.txt

"$PY" -c 'import torch; print("torch", torch.__version__)'
mkdir -p "$TARGET"
"$PY" -m pip install --disable-pip-version-check --no-deps --upgrade \
    --target "$TARGET" -r "$REQ"

# Sanity check: versions as pinned, and torch still the one from .deps/venv.
PYTHONPATH="$TARGET" "$PY" - <<'PYEOF'
import importlib.metadata as md, torch
print("torch", torch.__version__, "from", torch.__file__)
assert "lora-ref" not in torch.__file__, "a second torch got installed into .deps/lora-ref"
for p in ("diffusers", "peft", "transformers", "accelerate", "safetensors", "numpy", "huggingface_hub"):
    print(p, md.version(p))
import diffusers, peft, transformers  # noqa: F401
PYEOF
