"""`sim2real dagger`: let a pretrained network drive, label with the expert, retrain (DAgger)."""

from __future__ import annotations

import argparse
from pathlib import Path


def handler(args: argparse.Namespace) -> int:
    from sim2real.common.config import load_config, validate_config
    from sim2real.experiments.dagger import DaggerConfig, run_dagger

    overrides = {
        "checkpoint": str(args.checkpoint) if args.checkpoint else None,
        "data": [str(p) for p in args.data] if args.data else None,
        "iterations": args.iterations,
        "frames": args.frames,
        "beta": args.beta,
        "episodes": args.episodes,
        "seed": args.seed,
        "workers": args.workers,
    }
    if args.config:
        config = load_config(DaggerConfig, args.config, **overrides)
    else:
        given = {k: v for k, v in overrides.items() if v is not None}
        config = validate_config(DaggerConfig, given, "command line")
    if args.epochs is not None:
        config.train.epochs = args.epochs
    results = run_dagger(config, args.out, resume=args.resume, progress=not args.no_progress)
    print(f"DAgger from {config.checkpoint}, {config.episodes} held-out tracks each:")
    for entry in results["iterations"]:
        s = entry["closed_loop"]
        recorded = entry.get("recording", {}).get("frames", 0)
        beta = entry.get("beta")
        print(
            f"  iteration {entry['iteration']}: beta {'-' if beta is None else beta}, "
            f"{recorded} new frames; lap completion {100 * s['lap_completion_rate']:.0f}%, "
            f"mean |cte| {s['mean_abs_cte_m']:.3f} m, outcomes {s['outcomes']}"
        )
    print(f"final checkpoint {args.out}; per-iteration results {args.out / 'dagger.json'}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "dagger",
        help="DAgger: the network drives, the expert labels, retrain, evaluate closed-loop",
        description="Each iteration records --frames frames with the current network driving "
        "(the expert drives a step with probability beta) and the expert's clean command as "
        "label, continues training on the expert tubs plus every DAgger tub, and evaluates on "
        "--episodes held-out tracks. OUT gets dagger.json, iter_NN/ folders and the final "
        "checkpoint. --resume continues at the unfinished iteration.",
    )
    parser.add_argument("--checkpoint", type=Path, help="pretrained network to start from")
    parser.add_argument("--data", nargs="+", metavar="SIM_TUB", help="its expert sim tubs")
    parser.add_argument("--out", type=Path, required=True, help="run folder")
    parser.add_argument("--config", type=Path, help="YAML DaggerConfig (train, perturbation, ...)")
    parser.add_argument("--iterations", type=int, help="DAgger iterations (default 3)")
    parser.add_argument("--frames", type=int, help="frames recorded per iteration (default 4000)")
    parser.add_argument(
        "--beta",
        type=float,
        nargs="+",
        help="per-iteration probability the expert drives; the last repeats (default 0.5 0.25 0)",
    )
    parser.add_argument("--episodes", type=int, help="held-out evaluation tracks (default 20)")
    parser.add_argument("--epochs", type=int, help="override train.epochs per iteration")
    parser.add_argument("--seed", type=int, help="recording seed of iteration 1 (default 1000)")
    parser.add_argument("--workers", type=int, help="recording processes (default 1)")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted run")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(func=handler)
