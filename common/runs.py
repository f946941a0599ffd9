"""Self-describing run folders: the resolved config, the command line and the code version."""

from __future__ import annotations

import platform
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from sim2real.common.config import (
    ConfigError,
    ModelT,
    load_config,
    load_yaml_mapping,
    save_config,
)
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


def check_run_dir(
    out_dir: str | Path,
    config: BaseModel,
    *,
    started: bool,
    resume: bool,
    what: str,
    may_change: Any,
    predating: dict[str, Any] | None = None,
) -> None:
    """Refuse to overwrite a started run, or to resume it with a different config.

    `started`: whether `out_dir` already holds a run; `what`: its kind, for the message
    ("a pretraining run"); `may_change`: the fields that a resume may change, in pydantic's
    `exclude` form (e.g. ``{"train": {"epochs"}}``). The saved config is `out_dir/config.yaml`;
    `predating`: top-level fields whose default changed, with the value a saved config
    without the field was made with (it is compared as that value, not today's default).
    """
    out_dir = Path(out_dir)
    saved_path = out_dir / "config.yaml"
    other = _other_kind(saved_path, type(config)) if started else None
    if other is not None:
        raise ValueError(
            f"{out_dir} already holds another kind of run, not {what} (its config.yaml is "
            f"not a {type(config).__name__}: {other}); choose another out dir"
        )
    if started and not resume:
        raise ValueError(
            f"{out_dir} already holds {what}; resume it (--resume) or choose another out dir"
        )
    if not (resume and started and saved_path.is_file()):
        return
    saved = with_predating(load_config(type(config), saved_path), saved_path, predating)
    before, now = saved.model_dump(exclude=may_change), config.model_dump(exclude=may_change)
    if before != now:
        raise ValueError(
            f"cannot resume {out_dir}: its config.yaml differs from this run's config "
            f"(only {_field_names(may_change)} may change; saved -> now: "
            f"{', '.join(_differences(before, now))})"
        )


def with_predating(config: ModelT, path: str | Path, predating: dict[str, Any] | None) -> ModelT:
    """`config`, read from the YAML file `path`, with `predating`'s value for each of its
    fields the file does not name (a file written before the field: made with that value)."""
    if not predating:
        return config
    named = load_yaml_mapping(path)
    update = {k: v for k, v in predating.items() if k not in named}
    return config.model_copy(update=update) if update else config


def _other_kind(saved_path: Path, cls: type[BaseModel]) -> str | None:
    """Why `saved_path` is not a config of `cls` (None when it is one, or is absent)."""
    if not saved_path.is_file():
        return None
    try:
        load_config(cls, saved_path)
    except ConfigError as exc:
        return str(exc).splitlines()[0]
    return None


def _differences(before: Any, now: Any, prefix: str = "", most: int = 3) -> list[str]:
    """Up to `most` "field: saved -> now" lines where the dumps `before` and `now` differ,
    nested fields by their dotted path."""
    if isinstance(before, dict) and isinstance(now, dict):
        out: list[str] = []
        for key in sorted(set(before) | set(now), key=str):
            if before.get(key) != now.get(key):
                out += _differences(before.get(key), now.get(key), f"{prefix}{key}.", most)
        return out[:most]
    return [f"{prefix.rstrip('.')}: {_short(before)} -> {_short(now)}"]


def _short(value: Any, width: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def _field_names(fields: Any, prefix: str = "") -> str:
    """{"train": {"epochs", "device"}, "cache_dir": True} -> "cache_dir, train.device,
    train.epochs" (pydantic's `exclude` form: True is the whole field)."""
    if fields is True:
        return prefix.rstrip(".")
    if isinstance(fields, dict):
        return ", ".join(_field_names(v, f"{prefix}{k}.") for k, v in sorted(fields.items()))
    return ", ".join(f"{prefix}{name}" for name in sorted(fields))
