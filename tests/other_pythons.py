"""Other Python interpreters for the slow tests that check sim2real (or DonkeyCar) there:
found on $SIM2REAL_PYTHON3XX, on PATH or under pyenv, never installed by the tests."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
from pathlib import Path


def find_python(minor: int) -> str | None:
    """A Python 3.`minor` interpreter: $SIM2REAL_PYTHON3<minor>, python3.<minor> on PATH, or
    pyenv's (~/.pyenv/versions/3.<minor>.*); None where there is none."""
    candidates = [os.environ.get(f"SIM2REAL_PYTHON3{minor}"), shutil.which(f"python3.{minor}")]
    pattern = os.path.expanduser(f"~/.pyenv/versions/3.{minor}.*/bin/python")
    candidates += sorted(glob.glob(pattern))
    for candidate in candidates:
        if not candidate:
            continue
        done = subprocess.run(
            [candidate, "-c", f"import sys; print(sys.version_info[:2] == (3, {minor}))"],
            capture_output=True,
            text=True,
        )
        if done.returncode == 0 and done.stdout.strip() == "True":
            return candidate
    return None


def cached_venv(name: str, env_var: str) -> Path:
    """Where a test keeps a venv between runs: $`env_var`, else ~/.cache/sim2real/`name`
    ($XDG_CACHE_HOME is honoured)."""
    kept = os.environ.get(env_var)
    if kept:
        return Path(kept).expanduser()
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "sim2real" / name


def venv_size_mb(venv: Path) -> float:
    """Bytes on disk under `venv`, in MB (10^6)."""
    total = 0
    for root, _, files in os.walk(venv):
        for name in files:
            path = Path(root) / name
            if not path.is_symlink():
                total += path.stat().st_size
    return total / 1e6


NO_INDEX = ("No matching distribution", "Could not find a version", "Failed to establish")
"""pip's messages when the package index cannot be reached or has no wheel for this Python."""
