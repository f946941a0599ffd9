"""What a policy run is made of: the env, the held-out evaluation, PPO's or SAC's
hyperparameters and the network to start from (`PolicyConfig`, saved as a run's config.yaml).

`sim2real.agents.policy.train_policy` trains it; the classes are also importable from there.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from sim2real.agents.closed_loop import HELD_OUT_SEED_START
from sim2real.agents.encoders import check_architecture
from sim2real.agents.preprocessing import Preprocessing
from sim2real.agents.sb3_env import OFF_ROAD_PENALTY
from sim2real.common.config import StrictModel, load_config
from sim2real.common.device import DeviceName


class EnvConfig(StrictModel):
    """The training env (sim2real/TrackDriving-v1)."""

    image_size: tuple[int, int] = (120, 160)
    """camera (H, W) before preprocessing (crop, resize to the network input)"""
    randomization: str | None = None
    """RandomizationSpec YAML (None: the envs package default)"""
    strength: float = Field(1.0, ge=0.0, le=1.0)
    """randomization strength (0: nominal world)"""
    max_episode_steps: int = Field(1000, ge=1)
    off_road_penalty: float = Field(OFF_ROAD_PENALTY, ge=0)
    """reward (m of progress) lost on leaving the road or flipping, which ends the episode
    (the env's own is 1.0)"""
    speed_cap_mps: float | None = Field(None, gt=0)
    """progress pays up to this speed only (m/s; None: all of it, the env's reward)"""
    cte_penalty: float = Field(0.0, ge=0)
    """each step costs this x |cte| / (road width / 2) m of progress (a dense lane-keeping
    term; 0: none, the env's reward)"""
    privileged_state: bool = False
    """observe {"image", "state"}: sim ground truth (cte, heading, speed, curvature ahead, the
    episode's randomization) for PPO's critic alone (an asymmetric actor-critic); the actor
    and the exported network read the image only"""


class EvalConfig(StrictModel):
    """Closed-loop evaluation during training, on held-out seeds."""

    freq: int = Field(5000, ge=0)
    """evaluate every this many env steps, all envs counted (0: only before and after)"""
    episodes: int = Field(5, ge=1)
    seed_start: int = Field(HELD_OUT_SEED_START, ge=0)
    """first held-out track seed; training seeds must stay below it"""
    max_steps: int = Field(1500, ge=1)
    stall_steps: int | None = Field(100, ge=1)
    """end an episode after this many steps without progress (None: never)"""
    nominal: bool = False
    """evaluate in the un-randomized world instead of the training randomization"""


class PPOParams(StrictModel):
    """stable-baselines3 PPO hyperparameters (see its docs)."""

    learning_rate: float = Field(3e-4, gt=0)
    n_steps: int = Field(512, ge=2)
    """steps per env per rollout"""
    batch_size: int = Field(64, ge=2)
    n_epochs: int = Field(4, ge=1)
    gamma: float = Field(0.99, gt=0, le=1)
    gae_lambda: float = Field(0.95, gt=0, le=1)
    clip_range: float = Field(0.2, gt=0)
    target_kl: float | None = Field(None, gt=0)
    """stop an update's epochs early once the approximate KL passes 1.5 x this (None: never)"""
    ent_coef: float = Field(0.0, ge=0)
    vf_coef: float = Field(0.5, ge=0)
    max_grad_norm: float = Field(0.5, gt=0)
    log_std_init: float = -1.0
    """initial log std of the Gaussian actions (-1: std 0.37 of the [-1, 1] range)"""
    actor_warmup_steps: int = Field(0, ge=0)
    """env steps (all envs) during which only the value function learns (actor rate 0)"""
    actor_lr_scale: float = Field(1.0, ge=0)
    """the actor's (encoder, actor layers, log std) learning rate as a fraction of
    learning_rate, which the value layers get; applies after actor_warmup_steps"""
    value_hidden: list[int] | None = None
    """the value function's hidden layer widths (None: as the actor's, [hidden])"""
    steering_only: bool = False
    """explore and learn the steering alone: the throttle is driven at its mean and is no
    term of PPO's loss (it still moves with the hidden layer it shares with the steering)"""

    @field_validator("value_hidden")
    @classmethod
    def _widths(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and any(width < 1 for width in value):
            raise ValueError(f"every layer width must be >= 1, got {value}")
        return value


class SACParams(StrictModel):
    """stable-baselines3 SAC hyperparameters (see its docs)."""

    learning_rate: float = Field(3e-4, gt=0)
    buffer_size: int = Field(20_000, ge=100)
    learning_starts: int = Field(1000, ge=0)
    batch_size: int = Field(64, ge=2)
    tau: float = Field(0.005, gt=0, le=1)
    gamma: float = Field(0.99, gt=0, le=1)
    train_freq: int = Field(1, ge=1)
    gradient_steps: int = Field(1, ge=1)
    log_std_init: float = -1.0
    critic_hidden: list[int] = Field(default_factory=lambda: [256, 256])


class PolicyConfig(StrictModel):
    """Everything `train_policy` needs; saved as config.yaml in the run folder."""

    algorithm: Literal["ppo", "sac"] = "ppo"
    total_timesteps: int = Field(50_000, ge=1)
    n_envs: int = Field(2, ge=1)
    vec_env: Literal["dummy", "subproc"] = "subproc"
    """dummy: envs in-process (deterministic, cheap); subproc: one process per env"""
    env: EnvConfig = Field(default_factory=EnvConfig)
    architecture: str | None = None
    """registered encoder (None: the init checkpoint's, else pilotnet)"""
    preprocessing: Preprocessing | None = None
    """network input (None: the init checkpoint's, else the defaults)"""
    hidden: int = Field(100, ge=0)
    """actor hidden layer width (DrivingNet's head.hidden)"""
    init_checkpoint: str | None = None
    """perception (or policy) checkpoint folder to initialise the encoder and actor from"""
    freeze: int | str | list[str] = 0
    """encoder stages to freeze: k (the lower k), "all", "none" or stage names"""
    seed: int = Field(0, ge=0)
    device: DeviceName = "cpu"
    num_threads: int | None = Field(1, ge=1)
    """torch CPU threads (None: leave torch's setting)"""
    eval: EvalConfig = Field(default_factory=EvalConfig)
    ppo: PPOParams = Field(default_factory=PPOParams)
    sac: SACParams = Field(default_factory=SACParams)

    @field_validator("architecture")
    @classmethod
    def _known(cls, value: str | None) -> str | None:
        return value if value is None else check_architecture(value)

    @model_validator(mode="after")
    def _privileged_for_ppo(self) -> PolicyConfig:
        if self.env.privileged_state and self.algorithm != "ppo":
            raise ValueError(
                f"env.privileged_state feeds PPO's critic; algorithm is {self.algorithm!r}"
            )
        return self

    @model_validator(mode="after")
    def _disjoint_seeds(self) -> PolicyConfig:
        if self.seed + self.n_envs > self.eval.seed_start:
            raise ValueError(
                f"training seeds {self.seed}..{self.seed + self.n_envs - 1} reach the held-out "
                f"evaluation seeds from eval.seed_start={self.eval.seed_start}"
            )
        return self


def load_policy_config(
    path: str | Path | None, overrides: Mapping[str, Any] | None = None
) -> PolicyConfig:
    """A `PolicyConfig` from YAML (or the defaults) with overrides by dotted field path
    (``{"total_timesteps": 4096}``), as `sim2real.common.config.load_config`."""
    return load_config(PolicyConfig, path, overrides)
