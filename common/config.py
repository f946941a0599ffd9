"""Configs are pydantic models: validated on load, loadable from YAML, saved with every run."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar, get_args

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


def parse_assignment(text: str) -> tuple[str, Any]:
    """``"train.epochs=5"`` -> ``("train.epochs", 5)``: a dotted field path and a YAML value
    (``[a, b]`` a list, ``null`` None, ``'5'`` the string); ConfigError for anything else."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    parts = key.split(".")
    if not sep or not all(part.strip() and part == part.strip() for part in parts):
        raise ConfigError(
            f"--set {text}: expected KEY=VALUE with a dotted field path, e.g. --set train.epochs=5"
        )
    try:
        value = yaml.safe_load(raw) if raw.strip() else raw
    except yaml.YAMLError as exc:
        reason = " ".join(str(exc).split())
        raise ConfigError(f"--set {text}: the value is not valid YAML ({reason})") from None
    return key, value


def set_field(data: dict[str, Any], key: str, value: Any) -> None:
    """Set the dotted field path `key` of the raw config mapping `data` (in place), making the
    mappings on the way; a mapping value is merged into a mapping already there."""
    *parents, last = key.split(".")
    node = data
    for part in parents:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    if isinstance(value, dict) and isinstance(node.get(last), dict):
        for sub, sub_value in value.items():
            set_field(node[last], str(sub), sub_value)
    else:
        node[last] = value


def _seed_defaults(cls: type[BaseModel], data: dict[str, Any], path: list[str]) -> None:
    """Give each model field on `path` that `data` lacks its default, as a mapping (in place):
    ``train.epochs`` on a config whose ``train`` defaults to other values than TrainConfig's
    keeps those values, as assigning the one field would."""
    model: type[BaseModel] | None = cls
    node = data
    for part in path:
        field = model.model_fields.get(part) if model is not None else None
        if field is None:
            return  # not a field: validation names it
        if not isinstance(node.get(part), dict):
            default = field.get_default(call_default_factory=True)
            node[part] = default.model_dump(mode="json") if isinstance(default, BaseModel) else {}
        options = [field.annotation, *get_args(field.annotation)]
        model = next((t for t in options if isinstance(t, type) and issubclass(t, BaseModel)), None)
        node = node[part]


def _plain(value: Any) -> Any:
    """Paths as strings, tuples as lists (what a YAML file would hold)."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _override_of(loc: tuple[str, ...], keys: dict[tuple[str, ...], str]) -> str | None:
    """How the override an error location falls under was given: the longest key that holds
    `loc` or that `loc` holds (None: no override's)."""
    hits = [
        parts for parts in keys if loc and (loc[: len(parts)] == parts or parts[: len(loc)] == loc)
    ]
    return keys[max(hits, key=len)] if hits else None


def _override_error(
    exc: ValidationError, cls: type[BaseModel], source: str, given: dict[tuple[str, ...], str]
) -> str:
    """One line naming each bad field by how it was set: `--epochs 0: Input should be ...
    (config field PretrainConfig.train.epochs)`, the alternatives a union field rejected
    joined with "or"; a field no override set is the file's (`source: field: ...`), and a
    problem of the config as a whole names the file and the overrides."""
    grouped: dict[str, tuple[list[str], list[tuple[str, ...]]]] = {}
    problems = []
    for err in exc.errors():
        loc = tuple(str(part) for part in err["loc"])
        reason = err["msg"].removeprefix("Value error, ")
        what = _override_of(loc, given)
        if what is None and loc:
            got = err.get("input")
            got_text = "" if isinstance(got, dict) else f" (got {got!r})"
            problems.append(f"{source or 'config'}: {'.'.join(loc)}: {reason}{got_text}")
            continue
        what = what or " with ".join([source, ", ".join(given.values())]).removeprefix(" with ")
        reasons, locs = grouped.setdefault(what, ([], []))
        reasons.append(reason)
        locs.append(loc)
    for what, (reasons, locs) in grouped.items():
        common = locs[0]
        while any(loc[: len(common)] != common for loc in locs):
            common = common[:-1]
        field = ".".join((cls.__name__, *common))
        problems.append(f"{what}: {' or '.join(dict.fromkeys(reasons))} (config field {field})")
    return "; ".join(problems)


def load_config(
    cls: type[ModelT],
    path: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    *,
    given: Mapping[str, str] | None = None,
) -> ModelT:
    """`cls` from a YAML file (None: the defaults) with `overrides` applied before validation.

    `overrides` maps dotted field paths to values (``{"train.epochs": 5}``; a mapping merges
    into the file's; None sets None: leave a key out to keep the file's value). `given` says
    how the user gave each key (``{"train.epochs": "--epochs 0"}``) for the error: a
    ConfigError in one line that names the file or the override, and the field, of each
    problem.
    """
    data = load_yaml_mapping(path) if path is not None else {}
    source = str(path) if path is not None else ""
    applied = dict(overrides or {})
    if not applied:
        return validate_config(cls, data, source=source or "config")
    for key, value in applied.items():
        parts = key.split(".")
        _seed_defaults(cls, data, parts if isinstance(value, dict) else parts[:-1])
        set_field(data, key, _plain(value))
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        labels = {
            tuple(key.split(".")): (given or {}).get(key) or f"{key}={applied[key]!r}"
            for key in applied
        }
        raise ConfigError(_override_error(exc, cls, source, labels)) from None


def save_config(config: BaseModel, path: str | Path) -> None:
    """Write a config as YAML (atomically), in a form `load_config` reads back."""
    text = yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
    atomic_write_text(path, text)
