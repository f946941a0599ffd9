"""A network as a driver for recordings: the learner's half of DAgger.

`network_driver(model)` turns a `DrivingNet` into the callable that
`sim2real.envs.recording.drive_expert(driver=...)` takes: camera frame -> action, through the
model card's preprocessing (the path closed-loop evaluation and datasets use).
`load_driver(directory)` does the same for a checkpoint folder, once per process, on the CPU
with one thread, and checks the folder still holds the weights named by its fingerprint.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from sim2real.agents.checkpoint import CARD_FILE, WEIGHTS_FILE, load_checkpoint
from sim2real.agents.closed_loop import network_policy
from sim2real.agents.model import DrivingNet
from sim2real.agents.shipped import resolve_checkpoint
from sim2real.common.digest import update_with_file


def checkpoint_fingerprint(directory: str | Path) -> str:
    """SHA-256 (hex) over a checkpoint folder's model.json and model.safetensors bytes."""
    directory = resolve_checkpoint(directory)
    digest = hashlib.sha256()
    for name in (CARD_FILE, WEIGHTS_FILE):
        path = directory / name
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: {directory} is not a sim2real checkpoint")
        digest.update(name.encode())
        update_with_file(digest, path)
    return digest.hexdigest()


def network_driver(model: DrivingNet) -> Callable[[np.ndarray], np.ndarray]:
    """`model` (eval mode, its own device) as a driver: camera frame (H, W, 3) uint8 RGB ->
    the card's preprocessing -> `closed_loop.network_policy`'s action (2,) float32."""
    act = network_policy(model)
    preprocessing = model.spec.preprocessing
    return lambda frame: act(preprocessing.apply(frame))


_LOADED: dict[tuple[str, str], Callable[[np.ndarray], np.ndarray]] = {}


def load_driver(directory: str | Path, fingerprint: str | None = None):
    """The checkpoint in `directory` as a driver (see `network_driver`), loaded on the CPU with
    one torch thread, once per process and fingerprint. With `fingerprint`, the folder must
    still hold those exact files (ValueError otherwise)."""
    directory = resolve_checkpoint(directory).resolve()
    found = checkpoint_fingerprint(directory)
    if fingerprint is not None and found != fingerprint:
        raise ValueError(
            f"driver checkpoint {directory} changed: fingerprint {found[:12]}..., "
            f"expected {fingerprint[:12]}..."
        )
    key = (str(directory), found)
    if key not in _LOADED:
        torch.set_num_threads(1)
        model, _ = load_checkpoint(directory, device="cpu")
        _LOADED[key] = network_driver(model)
    return _LOADED[key]
