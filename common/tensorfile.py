"""Tensors on disk without pickle: safetensors files with a reproducible header.

`save_tensors` writes the same bytes for the same tensors and metadata (safetensors itself
keeps metadata in a hash map, so its key order, and the file's md5, changed run to run).
`save_state` / `load_state` store a nested state (optimizer state dicts, counters: dicts,
lists, numbers, strings, tensors) as one safetensors file whose metadata holds the JSON
structure, so a training state can be resumed without ever unpickling a file.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file
from safetensors.torch import save as save_bytes

from sim2real.common.io import atomic_write_bytes

STATE_KEY = "sim2real_state"


def _sorted_header(data: bytes) -> bytes:
    """`data` (a safetensors file) with its JSON header re-written with sorted keys."""
    (size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + size])
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)  # the data that follows stays 8-byte aligned
    return struct.pack("<Q", len(text)) + text + data[8 + size :]


def save_tensors(
    path: str | Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None
) -> None:
    """Write `tensors` (any device; shared storage is fine) to `path` atomically, with the
    same bytes for the same input."""
    cpu = {name: t.detach().to("cpu").contiguous().clone() for name, t in tensors.items()}
    atomic_write_bytes(path, _sorted_header(save_bytes(cpu, metadata)))


def load_tensors(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of safetensors file `path` (CPU); FileNotFoundError / ValueError naming it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found" + (" (it is a folder)" * path.is_dir()))
    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise ValueError(f"{path}: not a readable safetensors file ({exc})") from None


def _encode(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """JSON form of `value`; its tensors move into `tensors` under t0, t1, ..."""
    if isinstance(value, torch.Tensor):
        name = f"t{len(tensors)}"
        tensors[name] = value
        return {"tensor": name}
    if isinstance(value, dict):
        for key in value:
            if not isinstance(key, str | int) or isinstance(key, bool):
                raise TypeError(f"cannot store a dict key of type {type(key).__name__}")
        return {"dict": [[key, _encode(item, tensors)] for key, item in value.items()]}
    if isinstance(value, list | tuple):
        kind = "list" if isinstance(value, list) else "tuple"
        return {kind: [_encode(item, tensors) for item in value]}
    if value is None or isinstance(value, bool | int | float | str):
        return {"value": value}
    raise TypeError(f"cannot store a {type(value).__name__} in a state file")


def _decode(node: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if not isinstance(node, dict) or len(node) != 1:
        raise ValueError(f"unexpected node {str(node)[:60]}")
    ((kind, body),) = node.items()
    if kind == "tensor":
        return tensors[body]
    if kind == "dict":
        return {key: _decode(item, tensors) for key, item in body}
    if kind == "list":
        return [_decode(item, tensors) for item in body]
    if kind == "tuple":
        return tuple(_decode(item, tensors) for item in body)
    if kind == "value":
        return body
    raise ValueError(f"unknown node kind {kind!r}")


def save_state(path: str | Path, state: Any) -> None:
    """Write the nested `state` to safetensors file `path` (atomically, reproducibly)."""
    tensors: dict[str, torch.Tensor] = {}
    tree = _encode(state, tensors)
    save_tensors(path, tensors, {STATE_KEY: json.dumps(tree, separators=(",", ":"))})


def load_state(path: str | Path) -> Any:
    """The nested state `save_state` wrote to `path`; ValueError naming `path` when the file
    is not one (truncated, another format, edited)."""
    path = Path(path)
    tensors = load_tensors(path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        return _decode(json.loads(metadata[STATE_KEY]), tensors)
    except (KeyError, ValueError, TypeError, json.JSONDecodeError, SafetensorError) as exc:
        raise ValueError(f"{path}: not a sim2real state file ({exc!r})") from None
