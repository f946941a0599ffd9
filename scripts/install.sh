#!/usr/bin/env bash
# Create .venv and install sim2real with its test tools.
# Python 3.11 (the default) also gets the simulator (pybullet, extra `sim`): pybullet 3.2.7 has
# wheels only up to 3.11. With PYTHON=python3.12 (or 3.13) the car-side commands (data,
# finetune, evaluate, export, models, the pilot) are installed without it; EXTRAS overrides
# (EXTRAS= with nothing: the car-side commands alone, no simulator, ray or test tools).
# torch is installed first so that pip takes a CPU build where one is available
# (TORCH_SPEC overrides, e.g. TORCH_SPEC="torch==2.13.0" or "torch").
# --no-compile: pip would byte-compile every file of every package (13 of torch's 20 CPU-s of
# install, most of it for modules never imported); Python compiles what is imported, once.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
if .venv/bin/python -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
  EXTRAS="${EXTRAS-dev,ray,sim}"
else
  EXTRAS="${EXTRAS-dev}"
  echo "Python $(.venv/bin/python -c 'import platform; print(platform.python_version())'):" \
    "installing without the simulator (pip install -e '.[sim]' builds pybullet from source)"
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
.venv/bin/python -m pip install -q --no-compile "${TORCH_SPEC:-torch==2.13.0}"
.venv/bin/python -m pip install -q --no-compile -e ".${EXTRAS:+[$EXTRAS]}"
