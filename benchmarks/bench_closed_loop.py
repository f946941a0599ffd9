"""Closed-loop lap completion of checkpoints on held-out tracks, and where the failures are.

Usage: python benchmarks/bench_closed_loop.py CKPT|EVAL.json ... [--episodes 20] [--json FILE]
       python benchmarks/bench_closed_loop.py --dagger RUN_DIR   (table from dagger.json)

For each checkpoint: `evaluate_closed_loop` on the held-out seeds (10,000..), as `sim2real
evaluate --sim`, then per failed episode the place it failed: the sharpest |curvature| of the
centreline in the 1.5 m before the car left the road (against the track's own 90th
percentile) and the episode's sampled latency, field of view and top speed
(successes for comparison). An EVAL.json (from `sim2real evaluate --sim --json`, or a
`sim2real dagger` run's iter_NN/eval.json) is analysed without driving again. One torch
thread; the load average is printed beside wall time. --throttle-scale S multiplies the
network's throttle output (does a slower car fail less?), --steering-scale its steering
(does a network that under-steers in bends do better with a gain?); --expert drives the
expert on the same tracks first (the ceiling). --strength 0 0.5 1 drives each checkpoint at
each randomization strength (lap completion against how far the world strays from nominal).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from sim2real.agents.calibration import scale_output
from sim2real.agents.checkpoint import load_checkpoint
from sim2real.agents.closed_loop import (
    HELD_OUT_SEED_START,
    camera_size_for,
    episode_end,
    evaluate_closed_loop,
    held_out_seeds,
)
from sim2real.agents.model import STEERING
from sim2real.common.io import atomic_write_text
from sim2real.common.machine import load_text, machine_info
from sim2real.envs.expert import ExpertDriver
from sim2real.envs.track_env import TrackDrivingEnv
from sim2real.envs.tracks import SAMPLE_SPACING

BEFORE_M = 1.5


def episode_context(env: TrackDrivingEnv, episode: dict) -> dict:
    """Track and randomization facts of one evaluated episode (re-drawn from its seed)."""
    env.reset(seed=episode["seed"])
    track, start = env.track, env.track_index
    n = len(track.points)
    end = start + int(episode["progress_m"] / SAMPLE_SPACING)
    before = np.arange(end - int(BEFORE_M / SAMPLE_SPACING), end + 1) % n
    params = env.params
    return {
        "kappa_before": float(np.max(np.abs(track.curvature[before]))),
        "kappa_p90": float(np.percentile(np.abs(track.curvature), 90)),
        "latency": float(params["dynamics"]["latency"]),
        "hfov": float(params["camera"]["hfov"]),
        "top_speed": float(params["dynamics"]["top_speed"]),
    }


def bench(
    source: str,
    episodes: int,
    throttle_scale: float = 1.0,
    steering_scale: float = 1.0,
    seed_start: int = HELD_OUT_SEED_START,
    strength: float = 1.0,
) -> dict:
    if source.endswith(".json"):
        result = json.loads(Path(source).read_text())
        result["wall_s"] = float("nan")
        result.setdefault("machine", machine_info())  # a saved result keeps its own
        size = tuple(result["settings"]["image_size"])
    else:
        model, card = load_checkpoint(source)
        if steering_scale != 1.0:  # scale_output refuses tanh heads (policies): only when asked
            scale_output(model, STEERING, steering_scale)
        size = camera_size_for(card)
        t0 = time.perf_counter()
        seeds = held_out_seeds(episodes, seed_start)
        result = evaluate_closed_loop(
            model, seeds=seeds, image_size=size, strength=strength, throttle_scale=throttle_scale
        )
        result["wall_s"], result["machine"] = time.perf_counter() - t0, machine_info()
    env = TrackDrivingEnv(image_size=size, strength=result["settings"]["strength"])
    try:
        for e in result["episodes"]:
            e.update(episode_context(env, e))
    finally:
        env.close()
    return result


def expert_laps(
    episodes: int, seed_start: int = HELD_OUT_SEED_START, strength: float = 1.0
) -> dict:
    """The expert (no perturbation) on the same held-out tracks, under the same episode
    rules (one lap, off-road, 2000 steps): the ceiling a cloned network can hope for."""
    env = TrackDrivingEnv(strength=strength)  # rendered: camera shake draws from the env's rng
    expert = ExpertDriver(env)
    outcomes = []
    try:
        for seed in held_out_seeds(episodes, seed_start):
            env.reset(seed=seed)
            expert.reset()
            outcome = "timeout"
            for _ in range(2000):
                _, _, terminated, _, info = env.step(expert.act())
                ended = episode_end(terminated, info)
                if ended is not None:
                    outcome = ended
                    break
            outcomes.append(outcome)
    finally:
        env.close()
    return {"seeds": held_out_seeds(episodes, seed_start), "outcomes": outcomes}


def print_result(name: str, result: dict) -> None:
    s = result["summary"]
    print(
        f"{name}: {s['episodes']} tracks, laps {100 * s['lap_completion_rate']:.0f}%, "
        f"lap fraction {s['mean_lap_fraction']:.2f}, |cte| {s['mean_abs_cte_m']:.3f} m, "
        f"speed {s['mean_speed_mps']:.2f} m/s; {result['wall_s']:.0f} s wall at load "
        f"{load_text(result['machine']['load_average'])}"
    )
    for group, keep in (("failed", False), ("lapped", True)):
        eps = [e for e in result["episodes"] if e["completed"] == keep]
        if not eps:
            continue
        mean = {k: np.mean([e[k] for e in eps]) for k in ("latency", "hfov", "top_speed")}
        print(
            f"  {group} {len(eps)}: mean latency {mean['latency']:.2f} steps, "
            f"hfov {mean['hfov']:.0f} deg, top speed {mean['top_speed']:.2f} m/s"
        )
    for e in result["episodes"]:
        if e["completed"]:
            continue
        sharp = e["kappa_before"] > e["kappa_p90"]
        print(
            f"    seed {e['seed']}: {e['outcome']} after {e['steps']} steps at "
            f"{e['lap_fraction']:.2f} of the lap, max |kappa| {e['kappa_before']:.2f} 1/m in the "
            f"last {BEFORE_M} m ({'sharp bend' if sharp else 'not the sharpest'}; "
            f"track p90 {e['kappa_p90']:.2f}), latency {e['latency']:.1f}, "
            f"hfov {e['hfov']:.0f}"
        )


def print_dagger(run: Path) -> None:
    results = json.loads((run / "dagger.json").read_text())
    print("| iteration | beta | new frames | laps | mean |cte| m | outcomes | train s | load |")
    print("|---|---|---|---|---|---|---|---|")
    for e in results["iterations"]:
        s = e["closed_loop"]
        load = e["load_average"]
        load = load.get("train", load.get("evaluate")) if isinstance(load, dict) else load
        print(
            f"| {e['iteration']} | {e.get('beta', '-')} | "
            f"{e.get('recording', {}).get('frames', 0)} | "
            f"{s['lap_completion_rate'] * s['episodes']:.0f}/{s['episodes']} | "
            f"{s['mean_abs_cte_m']:.3f} | {s['outcomes']} | "
            f"{e['seconds'].get('train', 0):.0f} | {load[0]:.1f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="*")
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument(
        "--seed-start",
        type=int,
        default=HELD_OUT_SEED_START,
        help="first held-out seed (a second set, e.g. 10020, confirms a knob chosen on the first)",
    )
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument(
        "--throttle-scale", type=float, default=1.0, help="scale the network's throttle (speed)"
    )
    parser.add_argument(
        "--steering-scale", type=float, default=1.0, help="scale the network's steering"
    )
    parser.add_argument(
        "--strength",
        type=float,
        nargs="+",
        default=[1.0],
        help="randomization strength(s): each checkpoint is driven at each (lap rate vs strength)",
    )
    parser.add_argument("--dagger", type=Path, help="print the table of a sim2real dagger run")
    parser.add_argument("--expert", action="store_true", help="also drive the expert (ceiling)")
    args = parser.parse_args()
    if args.dagger:
        print_dagger(args.dagger)
        return
    torch.set_num_threads(1)
    results = {}
    if args.expert:
        t0 = time.perf_counter()
        results["expert"] = expert_laps(args.episodes, args.seed_start, max(args.strength))
        laps = results["expert"]["outcomes"].count("lap")
        print(
            f"expert: {laps}/{args.episodes} laps, outcomes {results['expert']['outcomes']}; "
            f"{time.perf_counter() - t0:.0f} s wall at load {load_text()}"
        )
    for checkpoint in args.checkpoints:
        for strength in args.strength:
            key = checkpoint if args.strength == [1.0] else f"{checkpoint}@{strength}"
            results[key] = bench(
                checkpoint,
                args.episodes,
                args.throttle_scale,
                args.steering_scale,
                args.seed_start,
                strength,
            )
            print_result(f"{checkpoint} (strength {strength})", results[key])
    if args.json:
        atomic_write_text(args.json, json.dumps(results, indent=2))  # NaN wall_s: not strict JSON


if __name__ == "__main__":
    main()
