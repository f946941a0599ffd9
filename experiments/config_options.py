"""Command-line options onto a command's config: `--set key.path=value` and named shortcuts.

Every command that runs from a config (finetune, pretrain, simulate, train-policy, dagger,
experiment) reads it the same way: the YAML file of ``--config`` (or the defaults), then each
named option the user gave (``--epochs 3`` is a shortcut for ``--set train.epochs=3``), then
each ``--set``, all validated once by the config's pydantic model
(`sim2real.common.config.load_config`). A bad key or value is a one-line error naming the
option as the user wrote it and the config field.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

from pydantic import BaseModel

from sim2real.common.config import load_config, load_yaml_mapping, parse_assignment

ModelT = TypeVar("ModelT", bound=BaseModel)

SET_DEST = "set_fields"


class Shortcut(NamedTuple):
    """A named option that sets one config field."""

    key: str
    """dotted field path, e.g. ``train.epochs``"""
    flag: str
    """the option, e.g. ``--epochs``"""
    convert: Callable[[Any], Any] | None
    """the option's value -> the field's (None: skip the field, e.g. a choice handled apart)"""


def add_set_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--set KEY=VALUE`` (repeatable) to a command whose config is a pydantic model."""
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        dest=SET_DEST,
        metavar="KEY=VALUE",
        help="set any config field by its dotted path, the value read as YAML (repeatable; "
        "after --config and the named options): --set train.lr=3e-4 --set data=[a,b]; see "
        "--config for the fields",
    )


def add_shortcut(
    parser: argparse.ArgumentParser,
    flag: str,
    key: str,
    *,
    convert: Callable[[Any], Any] | None = None,
    **kwargs: Any,
) -> None:
    """Add the option `flag` (argparse `kwargs`) as a shortcut for ``--set key=VALUE``; its
    help says so. An option left out (None, or False for a switch) keeps the config's value."""
    kwargs["help"] = f"{kwargs.get('help', '')} (--set {key})".lstrip()
    action = parser.add_argument(flag, **kwargs)
    shortcuts = dict(parser.get_default("shortcuts") or {})
    shortcuts[action.dest] = Shortcut(key, flag, convert)
    parser.set_defaults(shortcuts=shortcuts)


def add_crop_top(parser: argparse.ArgumentParser) -> None:
    """`--crop-top ROWS`, the shortcut for the `crop_top` field of `finetune` and `adapt`."""
    add_shortcut(
        parser,
        "--crop-top",
        "crop_top",
        type=int,
        metavar="ROWS",
        help="rows cut off the top of the camera frame before the network looks (default: the "
        "checkpoint's; 0 when your camera sees the walls or lines where the checkpoint crops)",
    )


def _plain(value: Any) -> Any:
    return str(value) if isinstance(value, Path) else value


def overrides_from_args(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, str]]:
    """(overrides by dotted key, how the user gave each) from the shortcuts and ``--set``s."""
    overrides: dict[str, Any] = {}
    given: dict[str, str] = {}
    shortcuts: dict[str, Shortcut] = getattr(args, "shortcuts", None) or {}
    for dest, shortcut in shortcuts.items():
        raw = getattr(args, dest, None)
        if raw is None or raw is False:
            continue
        value = shortcut.convert(raw) if shortcut.convert else raw
        if value is None:
            continue
        raw = [_plain(v) for v in raw] if isinstance(raw, list) else _plain(raw)
        overrides[shortcut.key] = value
        given[shortcut.key] = shortcut.flag if raw is True else f"{shortcut.flag} {raw!r}"
    for text in getattr(args, SET_DEST, None) or []:
        key, value = parse_assignment(text)
        overrides[key] = value
        given[key] = f"--set {text}"
    return overrides, given


def config_mentions(args: argparse.Namespace, key: str) -> bool:
    """Whether the command line or its ``--config`` file sets field `key` (dotted for a nested
    one, e.g. ``train.epochs``), a field inside it, or the field holding it: a shortcut given,
    even one whose value leaves the field alone (e.g. ``--pseudo-label none``), a
    ``--set ...``, or the file's own entry."""

    def overlaps(other: str) -> bool:  # one of the two dotted paths lies inside the other
        a, b = other.split("."), key.split(".")
        return a[: len(b)] == b or b[: len(a)] == a

    shortcuts: dict[str, Shortcut] = getattr(args, "shortcuts", None) or {}
    for dest, shortcut in shortcuts.items():
        raw = getattr(args, dest, None)
        if raw is not None and raw is not False and overlaps(shortcut.key):
            return True
    for text in getattr(args, SET_DEST, None) or []:
        if overlaps(parse_assignment(text)[0]):
            return True
    path = getattr(args, "config", None)
    if path is None:
        return False
    node: Any = load_yaml_mapping(path)
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def config_from_args(
    cls: type[ModelT], args: argparse.Namespace, path: str | Path | None = None
) -> ModelT:
    """`cls` from `path` (default ``args.config``; None: the defaults) with the command
    line's shortcuts and ``--set``s applied; ConfigError (one line) naming a bad one."""
    overrides, given = overrides_from_args(args)
    path = getattr(args, "config", None) if path is None else path
    return load_config(cls, path, overrides, given=given)


def add_print_config(parser: argparse.ArgumentParser) -> None:
    """Add ``--print-config`` to a command that writes a run to ``--out`` (`printed_config`)."""
    parser.add_argument(
        "--print-config",
        action="store_true",
        help="print the resolved config as YAML (a starting point for --config) and exit",
    )


def printed_config(args: argparse.Namespace, config: BaseModel) -> bool:
    """With ``--print-config``: print `config` as YAML and return True (the command exits);
    else ValueError (one line) when ``--out`` is missing, and False."""
    import yaml

    if args.print_config:
        print(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False), end="")
        return True
    if args.out is None:
        raise ValueError("--out DIR is required (the checkpoint folder to write)")
    return False
