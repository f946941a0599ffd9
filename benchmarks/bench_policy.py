"""Policy benchmarks (run by hand; figures go in the report, not in tests).

Closed-loop lap completion of a checkpoint on held-out randomized tracks:

    python benchmarks/bench_policy.py drive --checkpoint /tmp/pre [--episodes 20] [--nominal]

The PPO learning curves (pretrained vs random init) are benchmarks/bench_policy_curves.py.

Measured 2026-11-26 on the shared 2-core CPU box (load ~11), policy_ppo.yaml (pilotnet, 64x128,
n_envs 2, lr 3e-4, log_std_init -1), seed 0, eval on seeds 10000-10004 (randomized):
- perception pretrain (/tmp/pre: 17k sim frames, 2 epochs, val loss 0.169), `drive`, 20 seeds:
  laps 30%, lap fraction 0.45, |cte| 0.122 m, off-road 56/km, 1.36 m/s (the expert: 95%).
- PPO, 30k steps, mean lap fraction at 0/4k/8k/12k/16k/20k/24k/28k/30.2k steps:
  random init     0.00 0.08 0.11 0.21 0.23 0.08 0.11 0.07 0.07 (laps 0% throughout)
  pretrained init 0.60 0.22 0.14 0.15 0.14 0.06 0.27 0.15 0.22 (laps 20% at 0, then 0%)
  PPO's exploration and untrained critic undo the pretrained actor within 4k steps; neither
  arm completes a lap in 30k steps. 10-20 env steps/s, ~35-45 min wall per arm at that load.
- pretrained init with policy_ppo_frozen.yaml (encoder frozen, lr 1e-4, log_std_init -2), at
  0/4k/8k/8.2k/12k/16k/16.4k steps: laps 20 40 0 40 20 40 20 %, lap fraction 0.60 0.67 0.49
  0.67 0.59 0.66 0.63: the init is kept (5 eval episodes: +-1 lap is noise, not a trend).
"""

from __future__ import annotations

import argparse
import time

import torch

from sim2real.agents.checkpoint import load_checkpoint
from sim2real.agents.closed_loop import evaluate_closed_loop, held_out_seeds
from sim2real.common.io import atomic_write_json


def drive(args: argparse.Namespace) -> None:
    net, card = load_checkpoint(args.checkpoint)
    t0 = time.perf_counter()
    result = evaluate_closed_loop(
        net,
        seeds=held_out_seeds(args.episodes, args.seed_start),
        nominal=args.nominal,
        strength=args.strength,
        max_steps=args.max_steps,
    )
    seconds = time.perf_counter() - t0
    s = result["summary"]
    world = "nominal" if args.nominal else f"randomized (strength {args.strength})"
    print(
        f"{args.checkpoint} ({card.kind}, {card.spec.architecture}) on {s['episodes']} held-out "
        f"{world} tracks, seeds {args.seed_start}..: laps {100 * s['lap_completion_rate']:.0f}%, "
        f"lap fraction {s['mean_lap_fraction']:.2f}, |cte| {s['mean_abs_cte_m']:.3f} m, "
        f"off-road {s['off_road_per_km']:.1f}/km, speed {s['mean_speed_mps']:.2f} m/s "
        f"({s['steps']} steps, {seconds:.0f} s)"
    )
    for e in result["episodes"]:
        print(
            f"  seed {e['seed']}: {e['outcome']:8s} {e['steps']:5d} steps, "
            f"lap {e['lap_fraction']:.2f} of {e['track_length_m']:.1f} m"
        )
    if args.json:
        atomic_write_json(args.json, result)


def main() -> None:
    torch.set_num_threads(1)
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    d = sub.add_parser("drive")
    d.add_argument("--checkpoint", required=True)
    d.add_argument("--episodes", type=int, default=20)
    d.add_argument("--seed-start", type=int, default=10_000)
    d.add_argument("--nominal", action="store_true")
    d.add_argument("--strength", type=float, default=1.0)
    d.add_argument("--max-steps", type=int, default=2000)
    d.add_argument("--json")
    d.set_defaults(func=drive)
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
