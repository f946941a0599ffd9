"""Frames of the expert driving, for recording datasets (the file format is not ours to know).

`drive_expert(seed, n)` is self-contained per seed: the same seed gives the same frames, so
several workers can record one seed each and the chunks can be concatenated.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sim2real.envs.expert import ExpertDriver
from sim2real.envs.randomization import RandomizationSpec
from sim2real.envs.track_env import TrackDrivingEnv

LABEL_KEYS = ("sim/cte", "sim/heading_error", "sim/curvature", "sim/speed", "sim/progress")


@dataclass
class Frame:
    """One camera frame and the expert's command for it.

    image (H, W, 3) uint8 RGB; steering and throttle in [-1, 1] (the expert's clean command,
    steering -1 = left); labels: sim ground truth at the frame (cte m, heading_error rad,
    curvature 1/m, speed m/s, progress m); episode and step count from 0 within this seed."""

    image: np.ndarray
    steering: float
    throttle: float
    labels: dict[str, float] = field(default_factory=dict)
    episode: int = 0
    step: int = 0


def drive_expert(
    seed: int,
    n_frames: int,
    *,
    image_size: tuple[int, int] = (120, 160),
    randomization: None | RandomizationSpec | str | Path | dict = None,
    strength: float = 1.0,
    perturbation: float = 0.02,
    episode_steps: int = 1000,
) -> Iterator[Frame]:
    """Yield `n_frames` frames of the expert driving; a new randomized episode starts after
    `episode_steps` steps or when the car leaves the road."""
    if n_frames < 0:
        raise ValueError(f"n_frames must be >= 0, got {n_frames}")
    if episode_steps < 1:
        raise ValueError(f"episode_steps must be >= 1, got {episode_steps}")
    env = TrackDrivingEnv(image_size=image_size, randomization=randomization, strength=strength)
    try:
        expert = ExpertDriver(env, perturbation, seed=seed)
        obs, info = env.reset(seed=seed)
        episode, step = 0, 0
        for _ in range(n_frames):
            action = expert.act()
            yield Frame(
                image=obs,
                steering=float(expert.label[0]),
                throttle=float(expert.label[1]),
                labels={key: float(info[key.removeprefix("sim/")]) for key in LABEL_KEYS},
                episode=episode,
                step=step,
            )
            obs, _, terminated, _, info = env.step(action)
            step += 1
            if terminated or step >= episode_steps:
                obs, info = env.reset()
                expert.reset()
                episode, step = episode + 1, 0
    finally:
        env.close()
