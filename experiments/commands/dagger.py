"""`sim2real dagger`: let a pretrained network drive, label with the expert, retrain (DAgger)."""

from __future__ import annotations

import argparse
from pathlib import Path


def handler(args: argparse.Namespace) -> int:
    from sim2real.agents.closed_loop import HELD_OUT_SEED_START
    from sim2real.experiments.config_options import config_from_args
    from sim2real.experiments.dagger import DaggerConfig, run_dagger

    config = config_from_args(DaggerConfig, args)
    results = run_dagger(config, args.out, resume=args.resume, progress=not args.no_progress)
    held_out = "held-out " if config.eval_seed_start == HELD_OUT_SEED_START else ""
    print(
        f"DAgger from {config.checkpoint}, {config.episodes} {held_out}tracks each "
        f"(seeds {config.eval_seed_start}-{config.eval_seed_start + config.episodes - 1}):"
    )
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
    from sim2real.experiments.config_options import add_set_option, add_shortcut

    parser = subparsers.add_parser(
        "dagger",
        help="DAgger: the network drives, the expert labels, retrain, evaluate closed-loop",
        description="Each iteration records --frames frames with the current network driving "
        "(the expert drives a step with probability beta) and the expert's clean command as "
        "label, continues training on the expert tubs plus every DAgger tub, and evaluates on "
        "--episodes held-out tracks. OUT gets dagger.json, iter_NN/ folders and the final "
        "checkpoint. --resume continues at the unfinished iteration.",
    )
    add_shortcut(
        parser, "--checkpoint", "checkpoint", type=Path, help="pretrained network to start from"
    )
    add_shortcut(parser, "--data", "data", nargs="+", metavar="SIM_TUB", help="its expert sim tubs")
    parser.add_argument("--out", type=Path, required=True, help="run folder")
    parser.add_argument("--config", type=Path, help="YAML DaggerConfig (train, perturbation, ...)")
    add_shortcut(
        parser, "--iterations", "iterations", type=int, help="DAgger iterations (default 3)"
    )
    add_shortcut(
        parser, "--frames", "frames", type=int, help="frames recorded per iteration (default 4000)"
    )
    add_shortcut(
        parser,
        "--beta",
        "beta",
        type=float,
        nargs="+",
        help="per-iteration probability the expert drives; the last repeats (default 0.5 0.25 0)",
    )
    add_shortcut(
        parser, "--episodes", "episodes", type=int, help="held-out evaluation tracks (default 20)"
    )
    add_shortcut(parser, "--epochs", "train.epochs", type=int, help="epochs per iteration")
    add_shortcut(
        parser, "--seed", "seed", type=int, help="recording seed of iteration 1 (default 1000)"
    )
    add_shortcut(parser, "--workers", "workers", type=int, help="recording processes (default 1)")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted run")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_set_option(parser)
    parser.set_defaults(func=handler)
