"""Which half of the command loses the laps: the network's steering or its throttle?

    python benchmarks/oracle_split.py CHECKPOINT OUT --seed-start 20000 --episodes 80 \
        --randomization experiments/configs/policy_two_lane_worlds.yaml

Drives each track once per arm (five), the steering and the throttle each taken from either the
network or the expert (`ExpertDriver`, no perturbation: pure pursuit that knows the car's speed, top
speed and latency). A single frame shows none of those three, so "network steering + expert
throttle" laps what a network that sees its speed could at best gain on the throttle side, and
"expert steering + network throttle" what perfect perception of the road would; "blind expert
steering" is that expert told a nominal speed and no latency (`BlindView`), i.e. perfect
perception of one frame and nothing more. Episodes end and
are scored as `evaluate --sim` ends and scores the network's (`closed_loop.drive_episode`).
Writes OUT/episodes.jsonl (one line per track and arm: arm and `drive_episode`'s metrics: seed,
completed, outcome, lap_fraction, mean_speed_mps, ...) and prints laps per arm with Wilson 95%
intervals. Resumable: the rows are written after every track, and a re-run with the same
checkpoint, spec and step limit (OUT/settings.json) drives only what is missing. A diagnostic
for choosing where to work (run it on selection seeds, not held-out ones).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from scipy.stats import binomtest

from sim2real.agents.closed_loop import camera_size_for, drive_episode, network_policy
from sim2real.agents.ensemble import load_predictor
from sim2real.agents.model import check_driving_outputs
from sim2real.agents.sb3_env import PreprocessObservation
from sim2real.agents.shipped import resolve_checkpoint
from sim2real.common.io import atomic_write_json, atomic_write_text
from sim2real.envs.expert import ExpertDriver
from sim2real.envs.track_env import TrackDrivingEnv

ARMS = {  # name -> (steering from, throttle from)
    "network": ("network", "network"),
    "expert throttle": ("network", "expert"),
    "expert steering": ("expert", "network"),
    "blind expert steering": ("blind", "network"),
    "expert": ("expert", "expert"),
}
EPISODES_FILE, SETTINGS_FILE = "episodes.jsonl", "settings.json"
NOMINAL_SPEED = 1.8  # m/s: what the blind expert assumes (about the network's mean speed)


class BlindView:
    """The env as a pure-pursuit expert that cannot see what one frame hides sees it: the car
    at NOMINAL_SPEED (lookahead and latency step) and no command latency. Track and pose stay
    true, so what it lacks is exactly speed and latency. Reads the env at each call, so it
    may be made before the env's reset."""

    def __init__(self, env) -> None:
        self._env = env.unwrapped
        self.unwrapped = self

    @property
    def track(self):
        return self._env.track

    @property
    def params(self) -> dict:
        return {**self._env.params, "dynamics": {**self._env.params["dynamics"], "latency": 0}}

    @property
    def car_state(self):
        return dataclasses.replace(self._env.car_state, speed=NOMINAL_SPEED)

    @property
    def track_index(self) -> int:
        return self._env.track_index


def mixed_policy(env, model, steer_from: str, throttle_from: str) -> Callable:
    """A fresh policy for one episode of `env`: preprocessed frame -> [steering, throttle],
    each taken from "network", "expert" or "blind" (the blind expert). A temporal network
    reads the action the car applied as its previous action, as it would on the car."""
    act = network_policy(model)
    expert, blind = ExpertDriver(env), ExpertDriver(BlindView(env))

    def policy(obs: np.ndarray) -> np.ndarray:
        source = {"network": act(obs), "expert": expert.act(), "blind": blind.act()}
        action = np.array([source[steer_from][0], source[throttle_from][1]], np.float32)
        act.applied(action)
        return action

    return policy


def drive(env, model, seed: int, steer_from: str, throttle_from: str, max_steps: int) -> dict:
    """One episode with the steering and the throttle each from the network or the expert,
    ended and scored as `evaluate --sim` ends and scores the network's (`drive_episode`)."""
    policy = mixed_policy(env, model, steer_from, throttle_from)
    return drive_episode(model, env, seed, max_steps=max_steps, policy=policy)


def _resolved(path: str) -> str:
    return str(Path(path).resolve())


def previous_drives(out: Path, settings: dict) -> dict[tuple[int, str], dict]:
    """{(seed, arm): row} that OUT already holds, driven with these `settings` (checkpoint,
    spec, step limit); SystemExit (one line) when OUT's were driven with other settings."""
    path = out / EPISODES_FILE
    if not path.is_file():
        return {}
    saved_path = out / SETTINGS_FILE
    saved = json.loads(saved_path.read_text()) if saved_path.is_file() else None
    if saved != settings:
        raise SystemExit(
            f"error: {out} holds drives with other settings ({saved} there, {settings} now); "
            "use a fresh OUT"
        )
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {(int(row["seed"]), row["arm"]): row for row in rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="folder or shipped name")
    parser.add_argument("out", type=Path)
    parser.add_argument("--seed-start", type=int, default=20000)
    parser.add_argument("--episodes", type=int, default=80)
    parser.add_argument("--randomization", default=None)
    parser.add_argument("--max-steps", type=int, default=2000)
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.episodes < 1 or args.max_steps < 1:
        raise SystemExit(
            f"error: --episodes and --max-steps must be >= 1, got {args.episodes}, {args.max_steps}"
        )
    try:
        model, card = load_predictor(args.checkpoint)
        check_driving_outputs(model.outputs, "oracle_split")
        env = PreprocessObservation(
            TrackDrivingEnv(image_size=camera_size_for(card), randomization=args.randomization),
            model.spec.preprocessing,
        )
    except (ValueError, KeyError, FileNotFoundError) as exc:
        raise SystemExit(f"error: {exc.args[0] if exc.args else exc}") from None
    model.eval()
    settings = {
        "checkpoint": str(resolve_checkpoint(args.checkpoint).resolve()),
        "randomization": None if args.randomization is None else _resolved(args.randomization),
        "max_steps": args.max_steps,
    }
    done = previous_drives(args.out, settings)
    seeds = range(args.seed_start, args.seed_start + args.episodes)
    with torch.no_grad():
        for seed in seeds:
            todo = [arm for arm in args.arms if (seed, arm) not in done]
            for arm in todo:
                row = {"arm": arm, **drive(env, model, seed, *ARMS[arm], args.max_steps)}
                done[seed, arm] = row
            if todo:  # after every track: an interrupted run resumes from here
                args.out.mkdir(parents=True, exist_ok=True)
                atomic_write_json(args.out / SETTINGS_FILE, settings)
                text = "".join(json.dumps(row) + "\n" for row in done.values())
                atomic_write_text(args.out / EPISODES_FILE, text)
    env.close()
    rows = [done[seed, arm] for seed in seeds for arm in args.arms]
    for arm in args.arms:
        mine = [r for r in rows if r["arm"] == arm]
        laps = sum(r["completed"] for r in mine)
        low, high = binomtest(laps, len(mine)).proportion_ci(method="wilson")
        fraction = np.mean([r["lap_fraction"] for r in mine])
        speed = np.mean([r["mean_speed_mps"] for r in mine])
        print(
            f"{arm:21s} {laps:3d} / {len(mine)} = {laps / len(mine):.1%} "
            f"[{low:.0%}, {high:.0%}]  lap fraction {fraction:.3f}  speed {speed:.2f} m/s"
        )


if __name__ == "__main__":
    main()
