"""`sim2real evaluate`: how well a checkpoint drives.

Two branches: offline on recorded (real) frames with `--data`, and closed-loop on held-out
simulator tracks with `--sim` (`sim2real.agents.closed_loop`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from sim2real.experiments.cli import UserError


def _offline(args: argparse.Namespace) -> int:
    from sim2real.common.io import atomic_write_json
    from sim2real.transfer.evaluate import evaluate_offline, format_table

    if args.video:
        raise UserError("--video records closed-loop drives: use it with --sim")
    if args.randomization is not None:
        raise UserError("--randomization draws closed-loop worlds: use it with --sim")
    if not args.data:
        raise UserError("offline evaluation needs recorded frames: pass --data REAL...")
    evaluation = evaluate_offline(
        args.checkpoint,
        args.data,
        split=args.split,
        n_boot=args.n_boot,
        block_length=args.block_length,
        seed=args.seed,
        mirror_average=mirror_value(args.mirror_average),
    )
    print(
        f"{evaluation.info['architecture']} ({evaluation.info['kind']}) on {evaluation.n_frames} "
        f"frames, split {args.split}; intervals: moving-block bootstrap, "
        f"{args.block_length}-frame blocks, {args.n_boot} resamples"
    )
    if evaluation.info["overlaps_training_data"] and args.split == "all":
        print("note: this data includes frames the checkpoint was trained on")
    print(format_table(evaluation))
    if args.json:
        atomic_write_json(args.json, evaluation.to_json())
        print(f"wrote {args.json}")
    return 0


def _closed_loop(args: argparse.Namespace) -> int:
    from sim2real.agents.closed_loop import (
        HELD_OUT_SEED_START,
        evaluate_checkpoint,
        format_result,
    )
    from sim2real.common.io import atomic_write_json

    seed_start = HELD_OUT_SEED_START if args.seed_start is None else args.seed_start
    if seed_start < HELD_OUT_SEED_START:
        raise UserError(
            f"--seed-start {seed_start} could drive training tracks: held-out seeds start at "
            f"{HELD_OUT_SEED_START}"
        )
    if args.nominal and args.strength is not None:
        raise UserError("--nominal is the un-randomized world: leave out --strength")
    strength = 1.0 if args.strength is None else args.strength
    if not 0.0 <= strength <= 1.0:
        raise UserError(f"--strength must lie in [0, 1], got {strength}")
    if args.randomization is not None and args.nominal:
        raise UserError("--nominal is the un-randomized world: leave out --randomization")
    if args.randomization is not None:
        from sim2real.envs.randomization import RandomizationSpec

        RandomizationSpec.from_yaml(args.randomization)  # a bad spec fails before driving
    recorder = None
    if args.video:
        from sim2real.experiments.drive_video import DriveVideoRecorder

        recorder = DriveVideoRecorder(args.video)  # fails here, before driving, if unwritable
    import torch

    # The network sees one frame at a time: more threads only contend with the simulator
    # (two 2-thread evaluations beside a training job ran over 10x slower than with 1).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = evaluate_checkpoint(
            args.checkpoint,
            episodes=args.episodes,
            nominal=args.nominal,
            strength=strength,
            seed_start=seed_start,
            throttle_scale=args.throttle_scale,
            recorder=recorder,
            randomization=args.randomization,
            mirror_average=mirror_value(args.mirror_average),
        )
    finally:
        torch.set_num_threads(threads)
        if recorder is not None:
            recorder.abort()
    print(f"{result['checkpoint']['architecture']} ({result['checkpoint']['kind']}) driving:")
    print(format_result(result))
    if recorder is not None:
        print(f"videos: {recorder.recorded} in {args.video} (index {args.video}/videos.jsonl)")
    if result["checkpoint"]["mirror_average"]:
        print("mirror-averaged: each frame and its mirror image (steering negated back)")
    if args.json:
        atomic_write_json(args.json, result)
        print(f"wrote {args.json}")
    return 0


def add_mirror_option(parser: argparse.ArgumentParser, verb: str) -> None:
    """``--mirror-average on|off``: override the checkpoint's `ModelSpec.mirror_average`."""
    parser.add_argument(
        "--mirror-average",
        choices=["on", "off"],
        help=f"{verb} the network averaged with its mirror image (steering negated back), or "
        "not (default: what the checkpoint's card says)",
    )


def mirror_value(text: str | None) -> bool | None:
    """``--mirror-average`` as a bool (None: not given)."""
    return None if text is None else text == "on"


def handler(args: argparse.Namespace) -> int:
    if args.sim:
        return _closed_loop(args)
    return _offline(args)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="evaluate a checkpoint on recorded real frames",
        description="Offline driving metrics on recorded frames (steering MAE, RMSE, R^2, "
        "Pearson r, sign agreement on turns, throttle MAE) with moving-block bootstrap 95% "
        "intervals, raw and scale-calibrated. --split test scores only the held-out last "
        "block of each recording (as fine-tuning cut it).",
    )
    parser.add_argument(
        "--checkpoint",
        required=True,
        type=Path,
        help="checkpoint folder, or a shipped name (sim2real models)",
    )
    parser.add_argument("--data", nargs="+", metavar="REAL", help="real tub(s) or CSV folders")
    parser.add_argument("--json", type=Path, help="write the metrics to this JSON file")
    parser.add_argument(
        "--split",
        choices=["test", "val", "all"],
        default="test",
        help="frames scored: the test block (default), the validation block before it (choose "
        "knobs on it), or every frame",
    )
    parser.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples (1000)")
    parser.add_argument(
        "--block-length", type=int, default=20, help="bootstrap block, frames (20 = 1 s)"
    )
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    add_mirror_option(parser, "score")
    parser.add_argument(
        "--sim", action="store_true", help="closed-loop evaluation in the simulator"
    )
    parser.add_argument(
        "--episodes", type=int, default=10, help="--sim: held-out tracks to drive (10)"
    )
    parser.add_argument("--nominal", action="store_true", help="--sim: the un-randomized world")
    parser.add_argument(
        "--strength",
        type=float,
        help="--sim: randomization strength in [0, 1] (1: the full spec, the default)",
    )
    parser.add_argument(
        "--seed-start",
        type=int,
        help="--sim: first held-out track seed (default 10000, the first held-out one)",
    )
    parser.add_argument(
        "--throttle-scale",
        type=float,
        default=1.0,
        help="--sim: multiply the network's throttle, like DonkeyCar's AI_THROTTLE_MULT (1.0)",
    )
    parser.add_argument(
        "--randomization",
        type=Path,
        metavar="SPEC",
        help="--sim: randomization spec YAML to draw the worlds from (default: the envs "
        "package's spec)",
    )
    parser.add_argument(
        "--video",
        type=Path,
        metavar="DIR",
        help="--sim: write one MP4 per episode here (camera, track map, expert vs network "
        "actions) and an index DIR/videos.jsonl",
    )
    parser.set_defaults(func=handler)
