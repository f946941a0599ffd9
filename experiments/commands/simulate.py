"""`sim2real simulate --out DIR --frames N`: record the expert on randomized tracks as a tub."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    from sim2real.experiments.config_options import add_set_option, add_shortcut
    from sim2real.experiments.ray_executor import add_executor_arguments

    parser = subparsers.add_parser(
        "simulate",
        help="record the expert driving randomized tracks into a DonkeyCar tub v2",
        description="Same seed, same recording, whatever --workers. The folder becomes a tub "
        "with config.yaml and run.json beside the manifest, which records the randomization.",
    )
    parser.add_argument("--out", type=Path, required=True, help="new tub folder")
    add_shortcut(parser, "--frames", "frames", type=int, help="frames to record (default 1000)")
    add_shortcut(parser, "--seed", "seed", type=int, help="base seed (default 0)")
    parser.add_argument("--config", type=Path, help="YAML of SimulateConfig fields")
    add_shortcut(parser, "--workers", "workers", type=int, help="processes (default 1)")
    add_shortcut(
        parser,
        "--randomization",
        "randomization",
        help="RandomizationSpec YAML (default: envs default)",
    )
    add_shortcut(
        parser,
        "--driver",
        "driver",
        help="checkpoint folder of a network that drives while the expert labels (DAgger)",
    )
    add_shortcut(
        parser,
        "--beta",
        "beta",
        type=float,
        help="with --driver: probability the expert drives (default 0.5)",
    )
    parser.add_argument("--resume", action="store_true", help="continue an interrupted recording")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_executor_arguments(parser, cells=False)
    add_set_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sim2real.experiments.config_options import config_from_args
    from sim2real.experiments.ray_executor import ray_map, session_from_args
    from sim2real.experiments.simulate import SimulateConfig, simulate

    config = config_from_args(SimulateConfig, args)
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
