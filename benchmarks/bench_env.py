"""Env steps per second, one process, randomization on (full strength), at 64x64 and 160x120.

Usage: python benchmarks/bench_env.py [--steps N] [--profile]
The expert drives (so episodes are long, as in recording); its own time is excluded, resets
are included. Prints one line per image size: steps/s by wall clock, and by this process's CPU time
(the figure that matters on a shared machine where other processes compete for the cores).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time

import numpy as np

from sim2real.envs.expert import ExpertDriver
from sim2real.envs.track_env import TrackDrivingEnv


def bench(image_size: tuple[int, int], steps: int, seed: int = 0) -> dict[str, float]:
    env = TrackDrivingEnv(image_size=image_size, strength=1.0)
    expert = ExpertDriver(env, perturbation=0.0, seed=seed)
    wall = cpu = 0.0
    w0, c0 = time.perf_counter(), time.process_time()
    env.reset(seed=seed)
    wall += time.perf_counter() - w0
    cpu += time.process_time() - c0
    resets = 1
    for _ in range(steps):
        action = expert.act()
        w0, c0 = time.perf_counter(), time.process_time()
        _, _, terminated, _, info = env.step(action)
        if terminated or info["laps"] >= 2:
            env.reset()
            expert.reset()
            resets += 1
        wall += time.perf_counter() - w0
        cpu += time.process_time() - c0
    env.close()
    return {
        "steps_per_s": steps / wall,
        "cpu_steps_per_s": steps / cpu,
        "ms_per_step": 1000 * wall / steps,
        "resets": resets,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--profile", action="store_true", help="cProfile the 160x120 run")
    args = parser.parse_args()
    for size in ((64, 64), (120, 160)):
        if args.profile and size == (120, 160):
            prof = cProfile.Profile()
            prof.enable()
        result = bench(size, args.steps)
        print(
            f"{size[1]}x{size[0]}: {result['steps_per_s']:.0f} steps/s wall-clock, "
            f"{result['cpu_steps_per_s']:.0f} steps/s of process CPU time "
            f"({result['ms_per_step']:.2f} ms/step, {result['resets']} resets, "
            f"{args.steps} steps, randomization strength 1.0)"
        )
        if args.profile and size == (120, 160):
            prof.disable()
            pstats.Stats(prof).sort_stats("tottime").print_stats(15)
    np.set_printoptions()


if __name__ == "__main__":
    main()
