"""The driving env as a policy sees it: camera frames through the one preprocessing path.

`PreprocessObservation` applies `Preprocessing.apply` (crop rows, area-resize) to every camera
frame, so an RL policy sees exactly what a perception network sees in a dataset.
`make_env` builds ``sim2real/TrackDriving-v1`` wrapped that way; `make_vec_env` builds n of
them for SB3 (DummyVecEnv in-process, SubprocVecEnv one process per env).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

import sim2real.envs  # noqa: F401  (registers sim2real/TrackDriving-v1)
from sim2real.agents.preprocessing import Preprocessing
from sim2real.envs import ENV_ID
from sim2real.envs.track_env import OFF_ROAD_PENALTY
from sim2real.envs.world import CONTROL_DT


class PreprocessObservation(gym.ObservationWrapper):
    """Camera frames (H, W, 3) uint8 -> `preprocessing.apply(frame)` (height, width, 3) uint8."""

    def __init__(self, env: gym.Env, preprocessing: Preprocessing) -> None:
        super().__init__(env)
        space = env.observation_space
        if not isinstance(space, spaces.Box) or space.dtype != np.uint8 or len(space.shape) != 3:
            raise ValueError(f"expected an (H, W, 3) uint8 image space, got {space}")
        preprocessing.check_source(space.shape[0])
        self.preprocessing = preprocessing
        self.observation_space = spaces.Box(
            0, 255, (preprocessing.height, preprocessing.width, 3), np.uint8
        )

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return self.preprocessing.apply(observation)


class DrivingReward(gym.Wrapper):
    """The env's reward (m of progress this step, minus `OFF_ROAD_PENALTY` on the step that
    leaves the road or flips), reshaped: leaving the road costs `off_road_penalty` m instead,
    and with `speed_cap_mps` the progress of one step counts up to that speed only (a car
    faster than the cap earns no more, so speed that risks a crash does not pay)."""

    def __init__(
        self, env: gym.Env, off_road_penalty: float, speed_cap_mps: float | None = None
    ) -> None:
        super().__init__(env)
        if not off_road_penalty >= 0:
            raise ValueError(f"off_road_penalty must be >= 0, got {off_road_penalty}")
        if speed_cap_mps is not None and not speed_cap_mps > 0:
            raise ValueError(f"speed_cap_mps must be > 0, got {speed_cap_mps}")
        self.penalty = float(off_road_penalty)
        self.cap_m = None if speed_cap_mps is None else float(speed_cap_mps) * CONTROL_DT

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        reward = float(reward)
        if terminated:
            reward += OFF_ROAD_PENALTY - self.penalty
        if self.cap_m is not None:
            progress = reward + (self.penalty if terminated else 0.0)
            reward += min(progress, self.cap_m) - progress
        return obs, reward, terminated, truncated, info


def make_env(
    preprocessing: Preprocessing,
    *,
    image_size: tuple[int, int] = (120, 160),
    randomization: None | str | Path | dict = None,
    strength: float = 1.0,
    max_episode_steps: int = 1000,
    off_road_penalty: float = OFF_ROAD_PENALTY,
    speed_cap_mps: float | None = None,
) -> gym.Env:
    """``sim2real/TrackDriving-v1`` (camera `image_size` (H, W)) seen through `preprocessing`;
    its reward reshaped by `DrivingReward` where `off_road_penalty` or `speed_cap_mps` differ
    from the env's own."""
    env = gym.make(
        ENV_ID,
        image_size=tuple(image_size),
        randomization=randomization,
        strength=strength,
        max_episode_steps=max_episode_steps,
    )
    if off_road_penalty != OFF_ROAD_PENALTY or speed_cap_mps is not None:
        env = DrivingReward(env, off_road_penalty, speed_cap_mps)
    return PreprocessObservation(env, preprocessing)


def _monitored_env(kwargs: dict[str, Any]) -> gym.Env:
    from stable_baselines3.common.monitor import Monitor

    return Monitor(make_env(**kwargs))


def make_vec_env(n_envs: int, kind: str, seed: int, **kwargs: Any):
    """`n_envs` monitored envs (`make_env(**kwargs)`) as a SB3 VecEnv, seeded seed, seed+1, ...

    kind: "dummy" (in-process, deterministic and cheap to start) or "subproc" (one process
    per env, forkserver)."""
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

    if n_envs < 1:
        raise ValueError(f"n_envs must be >= 1, got {n_envs}")
    factories = [functools.partial(_monitored_env, kwargs) for _ in range(n_envs)]
    if kind == "dummy":
        venv = DummyVecEnv(factories)
    elif kind == "subproc":
        venv = SubprocVecEnv(factories)
    else:
        raise ValueError(f"vec_env must be 'dummy' or 'subproc', got {kind!r}")
    venv.seed(seed)
    return venv
