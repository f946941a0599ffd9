"""Frames of the expert driving, for recording datasets (the file format is not ours to know).

`drive_expert(seed, n)` is self-contained per seed: the same seed gives the same frames, so
several workers can record one seed each and the chunks can be concatenated.

With a `driver` (any callable camera frame -> action, e.g. a network), the driver steers the
car and the expert only labels: DAgger (Ross et al. 2011) data, the states a learned policy
drives itself into, each labelled with the expert's clean command for that state.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sim2real.envs.expert import ExpertDriver
from sim2real.envs.randomization import RandomizationSpec
from sim2real.envs.track_env import TrackDrivingEnv

Driver = Callable[[np.ndarray], np.ndarray]
"""A driver: camera frame (H, W, 3) uint8 RGB -> action (2,) [steering, throttle] in [-1, 1].
A driver with state (a temporal network) may also have ``reset()``, called at each episode's
start, and ``observe(frame, applied)``, called on the steps the expert drove with the action
the car applied (2,)."""

MIXING_STREAM = 1
"""SeedSequence spawn key of the driver/expert mixing draws (apart from the expert's own)."""

LABEL_KEYS = ("sim/cte", "sim/heading_error", "sim/curvature", "sim/speed", "sim/progress")

APPLIED_KEYS = ("sim/applied_steering", "sim/applied_throttle")
"""The action the car executed from the frame on (perturbed or the driver's, clipped to [-1, 1]),
unlike user/angle and user/throttle, the expert's clean command: the previous action a temporal
network reads is the previous frame's applied action."""


@dataclass
class Frame:
    """One camera frame and the expert's command for it.

    image (H, W, 3) uint8 RGB; steering and throttle in [-1, 1] (the expert's clean command,
    steering -1 = left); labels: sim ground truth at the frame (cte m, heading_error rad,
    curvature 1/m, speed m/s, progress m; APPLIED_KEYS: the action executed from this frame on);
    episode and step count from 0 within this seed."""

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
    driver: Driver | None = None,
    beta: float = 0.0,
    segment_steps: int = 1,
    takeover: float | None = None,
    takeover_steps: int = 20,
) -> Iterator[Frame]:
    """Yield `n_frames` frames of the expert driving; a new randomized episode starts after
    `episode_steps` steps or when the car leaves the road.

    driver: who steers instead of the expert (None: the expert). With a driver, the expert's
    action is executed with probability `beta`, drawn afresh every `segment_steps` steps
    from a generator seeded by `seed`; the recorded steering and throttle are always the
    expert's clean command for the frame's state. A deterministic driver keeps the frames a
    function of the seed.

    takeover (with a driver): when the driver has the car and its |cte| exceeds this fraction
    of the road's half width, the expert drives the next `takeover_steps` steps, then hands
    back (None: never). A driver that leaves the road in its first second then still yields
    frames of the states it drives into and of the way back, instead of ending the episode."""
    if n_frames < 0:
        raise ValueError(f"n_frames must be >= 0, got {n_frames}")
    if episode_steps < 1:
        raise ValueError(f"episode_steps must be >= 1, got {episode_steps}")
    if not 0.0 <= beta <= 1.0:
        raise ValueError(f"beta must be a probability in [0, 1], got {beta}")
    if segment_steps < 1:
        raise ValueError(f"segment_steps must be >= 1, got {segment_steps}")
    if takeover is not None and not 0.0 < takeover < 1.0:
        raise ValueError(  # at 1 the car has left the road, and the episode ended, first
            f"takeover must be a fraction of the half road width in (0, 1), got {takeover}"
        )
    if takeover_steps < 1:
        raise ValueError(f"takeover_steps must be >= 1, got {takeover_steps}")
    mixing = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(MIXING_STREAM,)))
    env = TrackDrivingEnv(image_size=image_size, randomization=randomization, strength=strength)
    try:
        expert = ExpertDriver(env, perturbation, seed=seed)
        reset = getattr(driver, "reset", None)
        observe = getattr(driver, "observe", None)
        obs, info = env.reset(seed=seed)
        if reset is not None:
            reset()
        episode, step = 0, 0
        expert_drives = True
        rescue = 0  # steps the expert still drives after a takeover
        for _ in range(n_frames):
            action = expert.act()
            if driver is not None:
                if step % segment_steps == 0:
                    expert_drives = bool(mixing.random() < beta)
                if (
                    takeover is not None
                    and not expert_drives
                    and rescue == 0
                    and abs(info["cte"]) > takeover * env.track.width / 2
                ):
                    rescue = takeover_steps
                if not expert_drives and rescue == 0:
                    action = _checked_action(driver(obs))
            expert_drove = driver is None or expert_drives or rescue > 0
            rescue = max(rescue - 1, 0)
            applied = np.clip(np.asarray(action, np.float64).reshape(-1), -1.0, 1.0)
            if driver is not None and expert_drove and observe is not None:
                observe(obs, applied)
            labels = {key: float(info[key.removeprefix("sim/")]) for key in LABEL_KEYS}
            labels.update(zip(APPLIED_KEYS, map(float, applied), strict=True))
            yield Frame(
                image=obs,
                steering=float(expert.label[0]),
                throttle=float(expert.label[1]),
                labels=labels,
                episode=episode,
                step=step,
            )
            obs, _, terminated, _, info = env.step(action)
            step += 1
            if terminated or step >= episode_steps:
                obs, info = env.reset()
                rescue = 0
                expert.reset()
                if reset is not None:
                    reset()
                episode, step = episode + 1, 0
    finally:
        env.close()


def _checked_action(action: np.ndarray) -> np.ndarray:
    """A driver's output as a (2,) float32 action clipped to [-1, 1]."""
    action = np.asarray(action, np.float32).reshape(-1)
    if action.shape != (2,) or not np.all(np.isfinite(action)):
        raise ValueError(
            f"a driver must return 2 finite numbers [steering, throttle], got {action}"
        )
    return np.clip(action, -1.0, 1.0)
