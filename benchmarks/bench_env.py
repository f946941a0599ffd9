"""Env steps per second, one process, randomization on (full strength), at 64x64 and 160x120.

Usage: python benchmarks/bench_env.py [--steps N] [--renderer raster|pybullet] [--profile]

The expert drives (episodes are long, as when recording); its own time is excluded, resets are
included. OpenCV runs single-threaded (one core). Three figures per size, because the machine
this was written on is shared: steps/s by wall clock, by this process's CPU time, and the best
100-step batch (closest to what an idle core gives).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time

import cv2

from sim2real.envs.expert import ExpertDriver
from sim2real.envs.track_env import TrackDrivingEnv

BATCH = 100


def bench(image_size: tuple[int, int], steps: int, renderer: str, seed: int = 0) -> dict:
    env = TrackDrivingEnv(image_size=image_size, strength=1.0, renderer=renderer)
    expert = ExpertDriver(env, perturbation=0.0, seed=seed)
    wall = cpu = batch_wall = 0.0
    best_batch = float("inf")
    w0, c0 = time.perf_counter(), time.process_time()
    env.reset(seed=seed)
    wall += time.perf_counter() - w0
    cpu += time.process_time() - c0
    resets = 1
    for k in range(steps):
        action = expert.act()
        w0, c0 = time.perf_counter(), time.process_time()
        _, _, terminated, _, info = env.step(action)
        if terminated or info["laps"] >= 2:
            env.reset()
            expert.reset()
            resets += 1
        dw = time.perf_counter() - w0
        wall += dw
        cpu += time.process_time() - c0
        batch_wall += dw
        if (k + 1) % BATCH == 0:
            best_batch = min(best_batch, batch_wall)
            batch_wall = 0.0
    env.close()
    return {
        "wall": steps / wall,
        "cpu": steps / cpu,
        "best": BATCH / best_batch if best_batch < float("inf") else float("nan"),
        "resets": resets,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--renderer", default="raster", choices=["raster", "pybullet"])
    parser.add_argument("--profile", action="store_true", help="cProfile the 160x120 run")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    for size in ((64, 64), (120, 160)):
        prof = cProfile.Profile() if args.profile and size == (120, 160) else None
        if prof:
            prof.enable()
        r = bench(size, args.steps, args.renderer)
        if prof:
            prof.disable()
        print(
            f"{size[1]}x{size[0]}: {r['wall']:.0f} steps/s wall-clock, {r['cpu']:.0f} steps/s "
            f"per CPU-second, best {BATCH}-step batch {r['best']:.0f} steps/s "
            f"({args.steps} steps, {r['resets']} episodes, strength 1.0, renderer {args.renderer})"
        )
        if prof:
            pstats.Stats(prof).sort_stats("tottime").print_stats(15)


if __name__ == "__main__":
    main()
