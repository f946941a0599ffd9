"""Self-describing run folders: the resolved config, the command line and the code version."""

from __future__ import annotations

import platform
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel

from sim2real.common.config import save_config
from sim2real.common.io import atomic_write_json


def code_version() -> dict[str, str]:
    """The package version and, when run from a git checkout, the commit and whether it is dirty."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        info = {"package": version("sim2real")}
    except PackageNotFoundError:
        info = {"package": "unknown"}
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5
        )
        if commit.returncode == 0:
            info["git_commit"] = commit.stdout.strip()
            dirty = subprocess.run(
                ["git", "status", "--porcelain"],
                cwd=root,
                capture_output=True,
                text=True,
                timeout=5,
            )
            info["git_dirty"] = str(bool(dirty.stdout.strip())).lower()
    except (OSError, subprocess.SubprocessError):
        pass
    return info


def describe_run(out_dir: str | Path, config: BaseModel | None = None) -> None:
    """Write `config.yaml` (if given) and `run.json` (command, code version, time, host)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if config is not None:
        save_config(config, out_dir / "config.yaml")
    atomic_write_json(
        out_dir / "run.json",
        {
            "command": sys.argv,
            "code_version": code_version(),
            "started_utc": datetime.now(UTC).isoformat(timespec="seconds"),
            "python": sys.version.split()[0],
            "platform": platform.platform(),
        },
    )
