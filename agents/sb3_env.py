"""The driving env as a policy sees it: camera frames through the one preprocessing path.

`PreprocessObservation` applies `Preprocessing.apply` (crop rows, area-resize) to every camera
frame, so an RL policy sees exactly what a perception network sees in a dataset.
`PrivilegedState` (only when asked) turns the observation into {"image", "state"}: the state is
sim ground truth the car never has, for an asymmetric critic (Pinto et al. 2017); the actor
reads the image alone. `make_env` builds ``sim2real/TrackDriving-v1`` wrapped that way;
`make_vec_env` builds n of them for SB3 (DummyVecEnv in-process, SubprocVecEnv one process per
env).
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
from sim2real.envs.randomization import Range
from sim2real.envs.track_env import OFF_ROAD_PENALTY
from sim2real.envs.tracks import SAMPLE_SPACING
from sim2real.envs.world import CONTROL_DT

IMAGE_KEY, STATE_KEY = "image", "state"
"""Keys of the observation dict when the env exposes the privileged state."""


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
    leaves the road or flips), reshaped: leaving the road costs `off_road_penalty` m instead;
    with `speed_cap_mps` the progress of one step counts up to that speed only (a car
    faster than the cap earns no more, so speed that risks a crash does not pay); with
    `cte_penalty` every step also costs ``cte_penalty * |cte| / (road width / 2)`` m (a dense
    lane-keeping term: `cte_penalty` m at the road's edge, 0 on the centreline)."""

    def __init__(
        self,
        env: gym.Env,
        off_road_penalty: float,
        speed_cap_mps: float | None = None,
        cte_penalty: float = 0.0,
    ) -> None:
        super().__init__(env)
        if not off_road_penalty >= 0:
            raise ValueError(f"off_road_penalty must be >= 0, got {off_road_penalty}")
        if speed_cap_mps is not None and not speed_cap_mps > 0:
            raise ValueError(f"speed_cap_mps must be > 0, got {speed_cap_mps}")
        if not cte_penalty >= 0:
            raise ValueError(f"cte_penalty must be >= 0, got {cte_penalty}")
        self.penalty = float(off_road_penalty)
        self.cap_m = None if speed_cap_mps is None else float(speed_cap_mps) * CONTROL_DT
        self.cte_penalty = float(cte_penalty)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        reward = float(reward)
        if terminated:
            reward += OFF_ROAD_PENALTY - self.penalty
        if self.cap_m is not None:
            progress = reward + (self.penalty if terminated else 0.0)
            reward += min(progress, self.cap_m) - progress
        if self.cte_penalty:
            half_width = self.env.unwrapped.track.width / 2
            reward -= self.cte_penalty * abs(float(info["cte"])) / half_width
        return obs, reward, terminated, truncated, info


LOOKAHEAD_M = (0.25, 0.5, 1.0, 1.5, 2.0)
"""Distances (m along the centreline) at which the privileged state reads the curvature."""


class PrivilegedState(gym.Wrapper):
    """Observation -> {"image": the wrapped observation, "state": (D,) float32}: what the sim
    knows and the car's camera does not, for the critic only.

    The state: cte / (road width / 2), heading error (rad), speed (m/s) and speed / the
    episode's top speed, the centreline's curvature (1/m) here and `LOOKAHEAD_M` ahead, the
    previous action [steering, throttle], then every scalar range of the randomization spec
    drawn for this episode (camera height and pitch, lens, image noise, steering gain,
    latency, top speed, road width, ...) mapped from its range [low, high] to [-1, 1], in
    `state_names()` order."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        if not isinstance(env.observation_space, spaces.Box):
            raise ValueError(f"expected a Box image space, got {env.observation_space}")
        spec = env.unwrapped.spec_ranges
        self._ranges = [
            (group, name, rng)
            for group in type(spec).model_fields
            for name, rng in getattr(spec, group)
            if isinstance(rng, Range)
        ]
        size = len(self.state_names())
        self.observation_space = spaces.Dict(
            {
                IMAGE_KEY: env.observation_space,
                STATE_KEY: spaces.Box(-np.inf, np.inf, (size,), np.float32),
            }
        )
        self._action = np.zeros(2, np.float32)

    def state_names(self) -> list[str]:
        """What each entry of the state is, in order."""
        ahead = [f"curvature_{d:g}m" for d in LOOKAHEAD_M]
        return [
            "cte_over_half_width",
            "heading_error",
            "speed",
            "speed_over_top_speed",
            "curvature",
            *ahead,
            "previous_steering",
            "previous_throttle",
            *(f"{group}.{name}" for group, name, _ in self._ranges),
        ]

    def _state(self, info: dict[str, Any]) -> np.ndarray:
        env = self.env.unwrapped
        track, params = env.track, env.params
        index = env.track_index
        n = len(track.points)
        ahead = [track.curvature[(index + int(round(d / SAMPLE_SPACING))) % n] for d in LOOKAHEAD_M]
        top_speed = float(params["dynamics"]["top_speed"])
        drawn = [
            2.0 * (float(params[g][k]) - r.low) / (r.high - r.low) - 1.0 if r.high > r.low else 0.0
            for g, k, r in self._ranges
        ]
        values = [
            float(info["cte"]) / (track.width / 2),
            float(info["heading_error"]),
            float(info["speed"]),
            float(info["speed"]) / top_speed,
            float(info["curvature"]),
            *ahead,
            *self._action,
            *drawn,
        ]
        return np.asarray(values, np.float32)

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self._action = np.zeros(2, np.float32)
        return {IMAGE_KEY: obs, STATE_KEY: self._state(info)}, info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._action = np.clip(np.asarray(action, np.float32).reshape(2), -1.0, 1.0)
        return {IMAGE_KEY: obs, STATE_KEY: self._state(info)}, reward, terminated, truncated, info


def make_env(
    preprocessing: Preprocessing,
    *,
    image_size: tuple[int, int] = (120, 160),
    randomization: None | str | Path | dict = None,
    strength: float = 1.0,
    max_episode_steps: int = 1000,
    off_road_penalty: float = OFF_ROAD_PENALTY,
    speed_cap_mps: float | None = None,
    cte_penalty: float = 0.0,
    privileged_state: bool = False,
) -> gym.Env:
    """``sim2real/TrackDriving-v1`` (camera `image_size` (H, W)) seen through `preprocessing`;
    its reward reshaped by `DrivingReward` where `off_road_penalty`, `speed_cap_mps` or
    `cte_penalty` differ from the env's own; with `privileged_state`, observations are
    {"image", "state"} dicts (`PrivilegedState`)."""
    env = gym.make(
        ENV_ID,
        image_size=tuple(image_size),
        randomization=randomization,
        strength=strength,
        max_episode_steps=max_episode_steps,
    )
    if off_road_penalty != OFF_ROAD_PENALTY or speed_cap_mps is not None or cte_penalty:
        env = DrivingReward(env, off_road_penalty, speed_cap_mps, cte_penalty)
    env = PreprocessObservation(env, preprocessing)
    return PrivilegedState(env) if privileged_state else env


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
