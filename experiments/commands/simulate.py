"""`sim2real simulate --out DIR --frames N`: record the expert on randomized tracks as a tub."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    from sim2real.experiments.ray_executor import add_executor_arguments

    parser = subparsers.add_parser(
        "simulate",
        help="record the expert driving randomized tracks into a DonkeyCar tub v2",
        description="Same seed, same recording, whatever --workers. The folder becomes a tub "
        "with config.yaml and run.json beside the manifest, which records the randomization.",
    )
    parser.add_argument("--out", type=Path, required=True, help="new tub folder")
    parser.add_argument("--frames", type=int, help="frames to record (default 1000)")
    parser.add_argument("--seed", type=int, help="base seed (default 0)")
    parser.add_argument("--config", type=Path, help="YAML of SimulateConfig fields")
    parser.add_argument("--workers", type=int, help="processes (default 1)")
    parser.add_argument("--randomization", help="RandomizationSpec YAML (default: envs default)")
    parser.add_argument(
        "--driver",
        help="checkpoint folder of a network that drives while the expert labels (DAgger)",
    )
    parser.add_argument(
        "--beta", type=float, help="with --driver: probability the expert drives (default 0.5)"
    )
    parser.add_argument("--resume", action="store_true", help="continue an interrupted recording")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_executor_arguments(parser, cells=False)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sim2real.common.config import load_config, validate_config
    from sim2real.experiments.ray_executor import ray_map, session_from_args
    from sim2real.experiments.simulate import SimulateConfig, simulate

    overrides = {
        "frames": args.frames,
        "seed": args.seed,
        "workers": args.workers,
        "randomization": args.randomization,
        "driver": args.driver,
        "beta": args.beta,
    }
    if args.config:
        config = load_config(SimulateConfig, args.config, **overrides)
    else:
        given = {k: v for k, v in overrides.items() if v is not None}
        config = validate_config(SimulateConfig, given, "command line")
    session = session_from_args(args)
    try:
        out = simulate(
            args.out,
            config,
            resume=args.resume,
            progress=not args.no_progress,
            map_chunks=ray_map if session else None,
        )
    finally:
        if session:
            session.close()
    print(f"recorded {config.frames} frames into {out}")
    return 0
