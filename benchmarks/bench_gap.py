"""How long the domain-gap measures take: per measure vs frames, and encoder activations.

Run by hand: `python benchmarks/bench_gap.py [--frames 250 500 1000 2000]`. Prints seconds
per call on synthetic (N, C) activations (C = 64, pilotnet's widest stage) and frames per
second of `stage_activations` for an untrained pilotnet at its default 64x128 input.
One thread, so figures are comparable on a shared machine.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from sim2real.experiments import gap_measures
from sim2real.experiments.domain_gap import random_model, stage_activations


def seconds(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, nargs="+", default=[250, 500, 1000, 2000])
    parser.add_argument("--channels", type=int, default=64)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    gap_measures.domain_classifier_error(rng.normal(size=(8, 2)), rng.normal(size=(8, 2)))
    print(f"measures on (N, {args.channels}) float64, N frames per domain, seconds per call")
    print(f"{'N':>6} {'mmd2':>8} {'frechet':>8} {'A-dist':>8} {'cka':>8}")
    for n in args.frames:
        x = rng.normal(size=(n, args.channels))
        y = rng.normal(size=(n, args.channels)) + 0.1
        times = [
            seconds(gap_measures.mmd2_unbiased, x, y),
            seconds(gap_measures.frechet_distance, x, y),
            seconds(gap_measures.proxy_a_distance, x, y),
            seconds(gap_measures.linear_cka, x, y),
        ]
        print(f"{n:>6} " + " ".join(f"{t:>8.3f}" for t in times))
    model = random_model("pilotnet", seed=0)
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (512, 3, 64, 128), generator=generator, dtype=torch.uint8)
    stage_activations(model, images[:64])
    elapsed = seconds(stage_activations, model, images)
    print(f"stage_activations, pilotnet 64x128, 1 thread: {len(images) / elapsed:.0f} frames/s")


if __name__ == "__main__":
    main()
