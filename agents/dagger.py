"""A network as a driver for recordings: the learner's half of DAgger.

`network_driver(model)` turns a `DrivingNet` into the callable that
`sim2real.envs.recording.drive_expert(driver=...)` takes: camera frame -> action, through the
model card's preprocessing (the path closed-loop evaluation and datasets use).
`load_driver(directory)` does the same for a checkpoint folder, once per process, on the CPU
with one thread, and checks the folder still holds the weights named by its fingerprint.
A temporal network's state (previous action, earlier frames) is reset at each episode's start
(`drive_expert` calls `reset`), so the one cached driver carries nothing from one episode or
recorded chunk to the next.
"""

from __future__ import annotations

import hashlib
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


class NetworkDriver:
    """`model` as a driver for `drive_expert`: camera frame (H, W, 3) uint8 RGB -> the card's
    preprocessing -> `closed_loop.NetworkPolicy`'s action (2,) float32. A temporal network's
    state (previous action, earlier frames) starts afresh at every `reset` (each episode) and
    follows the steps the expert drove through `observe`."""

    def __init__(self, model: DrivingNet) -> None:
        self.policy = network_policy(model)
        self.preprocessing = model.spec.preprocessing

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        return self.policy(self.preprocessing.apply(frame))

    def reset(self) -> None:
        """A new episode: the car at rest, no earlier frames."""
        self.policy.reset()

    def observe(self, frame: np.ndarray, applied: np.ndarray) -> None:
        """A step the expert drove: the car saw `frame` and applied `applied` (2,)."""
        if self.policy.stateful:  # (a single-frame network skips the preprocessing)
            self.policy.observe(self.preprocessing.apply(frame), applied)


def network_driver(model: DrivingNet) -> NetworkDriver:
    """`model` (eval mode, its own device) as a driver (`NetworkDriver`)."""
    return NetworkDriver(model)


_LOADED: dict[tuple[str, str], NetworkDriver] = {}


def load_driver(directory: str | Path, fingerprint: str | None = None) -> NetworkDriver:
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
