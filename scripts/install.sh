#!/usr/bin/env bash
# Create .venv (Python 3.11) and install sim2real with its test tools.
# torch is installed first so that pip takes a CPU build where one is available
# (TORCH_SPEC overrides, e.g. TORCH_SPEC="torch==2.13.0" or "torch").
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
.venv/bin/python -m pip install -q "${TORCH_SPEC:-torch==2.13.0}"
.venv/bin/python -m pip install -q -e ".[dev,ray]"
