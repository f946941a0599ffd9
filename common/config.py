"""Configs are pydantic models: validated on load, loadable from YAML, saved with every run."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from sim2real.common.io import atomic_write_text


class StrictModel(BaseModel):
    """Base for every config: unknown keys are errors, assignments are re-validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


ModelT = TypeVar("ModelT", bound=BaseModel)


class ConfigError(ValueError):
    """A config file or value is invalid; the message names the file and the field."""


def load_yaml_mapping(path: str | Path) -> dict[str, Any]:
    """Read a YAML file that must hold a mapping (an empty file is an empty mapping)."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path}: is a folder; give the YAML config file")
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not a text file (byte {exc.start} is not UTF-8); give a YAML config file"
        ) from None
    except yaml.YAMLError as exc:
        reason = " ".join(str(exc).split())
        raise ConfigError(f"{path}: not valid YAML ({reason}); fix the file") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def format_validation_error(exc: ValidationError, source: str) -> str:
    """One line per problem: `source: field.path: message (got value)`."""
    lines = []
    for err in exc.errors():
        field = ".".join(str(part) for part in err["loc"]) or "<root>"
        got = err.get("input")
        got_text = "" if isinstance(got, dict) else f" (got {got!r})"
        lines.append(f"{source}: {field}: {err['msg']}{got_text}")
    return "\n".join(lines)


def validate_config(cls: type[ModelT], data: dict[str, Any], source: str = "config") -> ModelT:
    """Build `cls` from `data`, turning pydantic's error into a ConfigError naming each field."""
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source)) from None


def load_config(cls: type[ModelT], path: str | Path, **overrides: Any) -> ModelT:
    """Load `cls` from a YAML file; keyword overrides (not None) replace top-level keys."""
    data = load_yaml_mapping(path)
    data.update({k: v for k, v in overrides.items() if v is not None})
    return validate_config(cls, data, source=str(path))


def save_config(config: BaseModel, path: str | Path) -> None:
    """Write a config as YAML (atomically), in a form `load_config` reads back."""
    text = yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
    atomic_write_text(path, text)
