"""Closed-loop evaluation in sim: a network drives seeded held-out tracks.

`evaluate_closed_loop(model, ...)` lets any `DrivingNet` with ``user/angle`` and
``user/throttle`` outputs (a perception network or an exported policy) drive one episode per
seed, from the env's camera through the model card's preprocessing (the same path as
datasets), and reports lap completion, |cross-track error|, off-road events per km and speed.

An episode ends when the car completes one lap (success), leaves the road or flips (the env
terminates), makes no progress along the track for `stall_steps` steps (stalled: a parked or
reversing car would otherwise use up the whole budget), or after `max_steps` steps (timeout).
Seeds default to 10_000.. so that they never coincide with training seeds (which stay below
10_000 by convention).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch

from sim2real.agents.model import STEERING, THROTTLE, check_driving_outputs
from sim2real.agents.sb3_env import PreprocessObservation
from sim2real.agents.temporal import FALLBACK_ACTION
from sim2real.envs.expert import ExpertDriver
from sim2real.envs.track_env import TrackDrivingEnv
from sim2real.envs.tracks import Track
from sim2real.envs.world import CONTROL_DT

if TYPE_CHECKING:
    from sim2real.agents.ensemble import Predictor

STALL_PROGRESS_M = 0.1
"""progress (m along the centreline) that counts as moving on, for stall detection"""

HELD_OUT_SEED_START = 10_000
"""First seed of held-out evaluation tracks; training seeds stay below it."""


@dataclass(frozen=True)
class DriveFrame:
    """One decision of a recorded drive: what the car saw and what each driver would do.

    camera: (H, W, 3) uint8 RGB, the env's frame before the model's preprocessing.
    position: (2,) m, the car's true position; yaw: rad. network_action and expert_action:
    (2,) float32 [steering, throttle]; the network's is executed, the expert's is the clean
    pure-pursuit command for the same state. cte: m (positive = left of the centreline);
    speed: m/s."""

    step: int
    camera: np.ndarray
    position: np.ndarray
    yaw: float
    network_action: np.ndarray
    expert_action: np.ndarray
    cte: float
    speed: float


class DriveRecorder(Protocol):
    """Receives a drive as it happens (`drive_episode(recorder=...)`), e.g. to write a video."""

    def begin(self, seed: int, track: Track) -> None:
        """A new episode on `track` starts."""

    def frame(self, frame: DriveFrame) -> None:
        """The network acts on `frame.camera` (called once per step, before the step)."""

    def end(self, episode: dict[str, Any]) -> None:
        """The episode is over; `episode` is `drive_episode`'s result."""


def held_out_seeds(episodes: int, start: int = HELD_OUT_SEED_START) -> list[int]:
    """`episodes` consecutive evaluation seeds from `start`."""
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    return list(range(start, start + episodes))


class NetworkPolicy:
    """`model` (put in eval mode, on its own device) as a policy: preprocessed frame
    (height, width, 3) uint8 at the network's input size -> action (2,) float32
    [steering, throttle * throttle_scale] clipped to [-1, 1]. `throttle_scale` plays the part
    of DonkeyCar's ``AI_THROTTLE_MULT`` (the car applies it after the pilot part).

    A temporal network (``model.temporal.previous_action``) is fed the action the car applied
    at the previous step (FALLBACK_ACTION after `reset`); one with ``previous_frame_gap`` k,
    the frame of k steps back (the current one for a run's first k steps). That state lives
    here: `reset` at each episode's start, and `observe` the steps someone else drove."""

    def __init__(self, model: Predictor, throttle_scale: float = 1.0) -> None:
        check_driving_outputs(model.outputs, "a driving network")
        self.model = model.eval()
        self.throttle_scale = throttle_scale
        self.columns = model.output_index(STEERING), model.output_index(THROTTLE)
        self.device = next(model.parameters()).device
        self.temporal = bool(model.context_names)
        """True when the network reads the previous action"""
        self.gap = model.spec.temporal.previous_frame_gap
        self.reset()

    @property
    def stateful(self) -> bool:
        """True when the network reads anything besides the current frame."""
        return self.temporal or self.gap > 0

    def reset(self) -> None:
        """A new episode: a car at rest, no earlier frames."""
        self.previous = torch.tensor([FALLBACK_ACTION], dtype=torch.float32, device=self.device)
        self.earlier: deque[torch.Tensor] = deque(maxlen=self.gap)  # the last `gap`, oldest first

    def _input(self, obs: np.ndarray) -> torch.Tensor:
        """The network's image input (1, C, H, W) for `obs`; remembers the frame."""
        x = torch.from_numpy(obs).to(self.device).permute(2, 0, 1).unsqueeze(0).float() / 255.0
        if not self.gap:
            return x
        back = self.earlier[0] if len(self.earlier) == self.gap else x
        self.earlier.append(x)
        return torch.cat([x, back], dim=1)

    @torch.no_grad()
    def __call__(self, obs: np.ndarray) -> np.ndarray:
        out = self.model(self._input(obs), self.previous if self.temporal else None)[0]
        steer_i, throttle_i = self.columns
        action = np.clip(
            np.array(
                [out[steer_i].item(), self.throttle_scale * out[throttle_i].item()], np.float32
            ),
            -1.0,
            1.0,
        )
        self.previous = torch.from_numpy(action).to(self.device).unsqueeze(0)
        return action

    def observe(self, obs: np.ndarray, applied: np.ndarray) -> None:
        """A step this policy did not drive: the car saw `obs` and applied `applied` (2,)
        [steering, throttle], which become the policy's earlier frame and previous action."""
        if self.gap:
            self._input(obs)
        self.applied(applied)

    def applied(self, action: np.ndarray) -> None:
        """The car applied `action` (2,) [steering, throttle], not this policy's last command
        (a step it shared with another driver, e.g. its steering and an expert's throttle):
        the previous action a temporal network reads next. The frame stays remembered."""
        if self.temporal:
            action = np.asarray(action, np.float32).reshape(1, 2)
            self.previous = torch.from_numpy(action).to(self.device)


def network_policy(model: Predictor, throttle_scale: float = 1.0) -> NetworkPolicy:
    """`model` as a fresh `NetworkPolicy` (FALLBACK_ACTION before its first call)."""
    return NetworkPolicy(model, throttle_scale)


def episode_end(terminated: bool, info: dict[str, Any]) -> str | None:
    """How an env step ended the episode: "lap" (one lap done), "off_road" or "flipped" (the
    env terminated), or None (it goes on)."""
    if info["laps"] >= 1:
        return "lap"
    if terminated:
        return "off_road" if info["off_road"] else "flipped"
    return None


@torch.no_grad()
def drive_episode(
    model: Predictor,
    env: PreprocessObservation,
    seed: int,
    *,
    nominal: bool = False,
    max_steps: int = 2000,
    stall_steps: int | None = 100,
    throttle_scale: float = 1.0,
    recorder: DriveRecorder | None = None,
    policy: Callable[[np.ndarray], np.ndarray] | None = None,
) -> dict[str, Any]:
    """Let `model` drive one episode of `env` (reset with `seed`); per-episode metrics.

    recorder: gets every step's camera frame, pose and the network's and expert's actions
    (`DriveFrame`); the env must have render_mode "rgb_array" then. None (the default) adds
    no work per step.
    policy: drives instead of `network_policy(model, throttle_scale)`: preprocessed frame ->
    action (2,) float32, called once per step after the reset (e.g. the network's steering
    with an expert's throttle, benchmarks/oracle_split.py; `throttle_scale` is then its
    business); the episode ends and is scored as the network's own.

    Returns seed, completed (one lap done), outcome ("lap", "off_road", "flipped", "stalled"
    or "timeout"), steps, track_length_m, progress_m (along the centreline), distance_m
    (odometer), lap_fraction (progress / track length, clipped to [0, 1]), mean_abs_cte_m,
    max_abs_cte_m, mean_speed_mps, off_road_events."""
    act = network_policy(model, throttle_scale) if policy is None else policy
    obs, info = env.reset(seed=seed, options={"randomize": not nominal})
    track_length = float(env.unwrapped.track.length)
    abs_cte, speeds = [abs(info["cte"])], []
    outcome, steps, terminated = "timeout", 0, False
    best_progress, best_step = 0.0, 0
    if recorder is not None:
        expert = ExpertDriver(env)
        recorder.begin(int(seed), env.unwrapped.track)
    while steps < max_steps:
        action = act(obs)
        if recorder is not None:
            _record(recorder, env, expert, steps, action, info)
        obs, _, terminated, _, info = env.step(action)
        steps += 1
        abs_cte.append(abs(info["cte"]))
        speeds.append(abs(info["speed"]))
        ended = episode_end(terminated, info)
        if ended is not None:
            outcome = ended
            break
        if info["progress"] > best_progress + STALL_PROGRESS_M:
            best_progress, best_step = info["progress"], steps
        elif stall_steps is not None and steps - best_step >= stall_steps:
            outcome = "stalled"
            break
    distance = float(np.sum(speeds) * CONTROL_DT)
    result = {
        "seed": int(seed),
        "completed": outcome == "lap",
        "outcome": outcome,
        "steps": steps,
        "track_length_m": track_length,
        "progress_m": float(info["progress"]),
        "distance_m": distance,
        "lap_fraction": float(np.clip(info["progress"] / track_length, 0.0, 1.0)),
        "mean_abs_cte_m": float(np.mean(abs_cte)),
        "max_abs_cte_m": float(np.max(abs_cte)),
        "mean_speed_mps": float(np.mean(speeds)) if speeds else 0.0,
        "off_road_events": int(outcome == "off_road"),
    }
    if recorder is not None:
        recorder.end(result)
    return result


def _record(
    recorder: DriveRecorder,
    env: PreprocessObservation,
    expert: ExpertDriver,
    step: int,
    action: np.ndarray,
    info: dict[str, Any],
) -> None:
    camera = env.unwrapped.render()
    if camera is None:
        raise ValueError("recording a drive needs an env made with render_mode='rgb_array'")
    state = env.unwrapped.car_state
    recorder.frame(
        DriveFrame(
            step=step,
            camera=camera,
            position=np.asarray(state.position[:2], np.float64).copy(),
            yaw=float(state.yaw),
            network_action=action,
            expert_action=expert.act(),
            cte=float(info["cte"]),
            speed=float(info["speed"]),
        )
    )


def summarize(episodes: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Aggregate per-episode metrics: lap completion rate, mean lap fraction, mean |cte| (m,
    over all steps), off-road events per km driven, mean speed (m/s, over all steps)."""
    if not episodes:
        raise ValueError("no episodes to summarize")
    steps = np.array([e["steps"] for e in episodes], float)
    distance_km = sum(e["distance_m"] for e in episodes) / 1000.0
    off_road = sum(e["off_road_events"] for e in episodes)
    weights = np.maximum(steps, 1)
    return {
        "episodes": len(episodes),
        "lap_completion_rate": float(np.mean([e["completed"] for e in episodes])),
        "mean_lap_fraction": float(np.mean([e["lap_fraction"] for e in episodes])),
        "mean_abs_cte_m": float(
            np.average([e["mean_abs_cte_m"] for e in episodes], weights=weights)
        ),
        "off_road_per_km": float(off_road / distance_km) if distance_km > 0 else float("inf"),
        "mean_speed_mps": float(
            np.average([e["mean_speed_mps"] for e in episodes], weights=weights)
        ),
        "distance_km": float(distance_km),
        "off_road_events": int(off_road),
        "steps": int(steps.sum()),
    }


def evaluate_closed_loop(
    model: Predictor,
    *,
    episodes: int = 10,
    seeds: Sequence[int] | None = None,
    nominal: bool = False,
    strength: float = 1.0,
    image_size: tuple[int, int] = (120, 160),
    max_steps: int = 2000,
    randomization: None | str | Path | dict = None,
    stall_steps: int | None = 100,
    throttle_scale: float = 1.0,
    recorder: DriveRecorder | None = None,
) -> dict[str, Any]:
    """Let `model` drive one episode per seed; returns ``{"summary": ..., "episodes": [...],
    "settings": ...}`` (see `summarize` and `drive_episode`).

    seeds: defaults to `episodes` held-out seeds from 10_000. nominal: the un-randomized
    world (strength 0) on each seed's track; otherwise the randomization spec at `strength`.
    image_size: the camera's (H, W) before the model's own preprocessing (crop, resize).
    stall_steps: end an episode after this many steps without 0.1 m of new progress (None:
    never; 100 steps = 5 s). throttle_scale: multiplies the network's throttle (drive slower
    or faster than it was trained to, as DonkeyCar's ``AI_THROTTLE_MULT`` does).
    recorder: sees every episode step by step (see `DriveRecorder`), e.g. to write videos.
    """
    if not 0.0 < throttle_scale <= 2.0:
        raise ValueError(f"throttle_scale must be in (0, 2], got {throttle_scale}")
    check_driving_outputs(model.outputs, "closed-loop driving")
    seeds = list(seeds) if seeds is not None else held_out_seeds(episodes)
    if not seeds:
        raise ValueError("no seeds to evaluate on")
    if max_steps < 1:
        raise ValueError(f"max_steps must be >= 1, got {max_steps}")
    was_training = model.training
    model.eval()
    env = PreprocessObservation(
        TrackDrivingEnv(
            image_size=image_size,
            randomization=randomization,
            strength=strength,
            render_mode=None if recorder is None else "rgb_array",
        ),
        model.spec.preprocessing,
    )
    try:
        results = [
            drive_episode(
                model,
                env,
                seed,
                nominal=nominal,
                max_steps=max_steps,
                stall_steps=stall_steps,
                throttle_scale=throttle_scale,
                recorder=recorder,
            )
            for seed in seeds
        ]
    finally:
        env.close()
        model.train(was_training)
    return {
        "summary": summarize(results),
        "episodes": results,
        "settings": {
            "seeds": [int(s) for s in seeds],
            "nominal": bool(nominal),
            "strength": float(strength),
            "image_size": [int(v) for v in image_size],
            "max_steps": int(max_steps),
            "stall_steps": stall_steps,
            "throttle_scale": float(throttle_scale),
            "randomization": None if randomization is None else str(randomization),
        },
    }


def camera_size_for(card: Any) -> tuple[int, int]:
    """The sim camera (H, W) a checkpoint was trained with, from its card (default 120x160)."""
    env_config = (card.trained_on or {}).get("env_config") or {}
    if "image_size" in env_config:
        return tuple(int(v) for v in env_config["image_size"])
    for entry in (card.randomization or {}).values():  # pretrain: one entry per sim tub
        if isinstance(entry, dict) and "image_size" in entry:
            return tuple(int(v) for v in entry["image_size"])
        if isinstance(entry, dict) and "image_height" in entry and "image_width" in entry:
            return int(entry["image_height"]), int(entry["image_width"])
    return (120, 160)


def evaluate_checkpoint(
    directory: str | Path,
    *,
    episodes: int = 10,
    nominal: bool = False,
    strength: float = 1.0,
    max_steps: int = 2000,
    seed_start: int = HELD_OUT_SEED_START,
    throttle_scale: float = 1.0,
    recorder: DriveRecorder | None = None,
    randomization: None | str | Path | dict = None,
    mirror_average: bool | None = None,
) -> dict[str, Any]:
    """`evaluate_closed_loop` for checkpoint folder `directory` (camera size from its card);
    the result also names the checkpoint and whether it drove mirror-averaged.
    `mirror_average` overrides the card's `ModelSpec.mirror_average` (None: the card's).
    recorder, randomization (None: the envs default spec): see `evaluate_closed_loop`."""
    from sim2real.agents.checkpoint import override_mirror_average
    from sim2real.agents.ensemble import load_predictor

    model, card = load_predictor(directory)
    override_mirror_average(model, mirror_average, directory)
    result = evaluate_closed_loop(
        model,
        seeds=held_out_seeds(episodes, seed_start),
        nominal=nominal,
        strength=strength,
        image_size=camera_size_for(card),
        max_steps=max_steps,
        throttle_scale=throttle_scale,
        recorder=recorder,
        randomization=randomization,
    )
    result["checkpoint"] = {
        "path": str(Path(directory).resolve()),
        "kind": card.kind,
        "architecture": card.spec.architecture,
        "mirror_average": model.spec.mirror_average,
        "members": list(card.members),  # an ensemble's member folders ([]: one network)
    }
    return result


def format_result(result: dict[str, Any]) -> str:
    """A short table: the summary line, then one line per episode."""
    s, settings = result["summary"], result["settings"]
    world = "nominal" if settings["nominal"] else f"randomized (strength {settings['strength']})"
    scale = settings.get("throttle_scale", 1.0)
    driven = "" if scale == 1.0 else f" (throttle x{scale:g})"
    lines = [
        f"{s['episodes']} held-out {world} tracks, seeds {settings['seeds'][0]}.."
        f"{settings['seeds'][-1]}{driven}: lap completion {100 * s['lap_completion_rate']:.0f}%, "
        f"mean lap fraction {s['mean_lap_fraction']:.2f}, mean |cte| {s['mean_abs_cte_m']:.3f} m, "
        f"off-road {s['off_road_per_km']:.1f}/km, mean speed {s['mean_speed_mps']:.2f} m/s",
    ]
    for e in result["episodes"]:
        lines.append(
            f"  seed {e['seed']}: {e['outcome']:8s} {e['steps']:5d} steps, "
            f"{e['lap_fraction']:.2f} of {e['track_length_m']:.1f} m, "
            f"|cte| {e['mean_abs_cte_m']:.3f} m, {e['mean_speed_mps']:.2f} m/s"
        )
    return "\n".join(lines)
