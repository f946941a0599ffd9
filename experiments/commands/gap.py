"""`sim2real gap`: per-stage sim-vs-real domain gap of a network, and how many stages to freeze."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "gap",
        help="measure the sim-vs-real gap per encoder stage and recommend a freeze depth",
        description="Runs sim and real frames through a network's encoder, pools each stage "
        "to (N, C) and reports proxy A-distance, MMD^2 and Frechet distance per stage, then "
        "recommends how many stages to freeze for fine-tuning on the real frames.",
    )
    model = parser.add_mutually_exclusive_group(required=True)
    model.add_argument("--checkpoint", type=Path, help="checkpoint folder, or a shipped name")
    model.add_argument(
        "--architecture", help="measure an untrained network of this architecture instead"
    )
    parser.add_argument("--sim", nargs="+", required=True, help="sim dataset path(s)")
    parser.add_argument("--real", nargs="+", required=True, help="real dataset path(s)")
    parser.add_argument(
        "--frames", type=int, default=1000, help="at most this many frames per domain (1000)"
    )
    parser.add_argument(
        "--n-real",
        type=int,
        help="real frames you will fine-tune on (default: usable records under --real)",
    )
    parser.add_argument(
        "--reference",
        type=Path,
        help="second checkpoint (e.g. before fine-tuning): adds per-stage linear CKA between "
        "the two networks on the same real frames",
    )
    parser.add_argument("--seed", type=int, default=0, help="frame sampling / init seed (0)")
    parser.add_argument("--json", type=Path, help="write the measurements to this JSON file")
    parser.add_argument("--cache-dir", type=Path, help="frame cache folder")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from sim2real.agents.checkpoint import load_checkpoint
    from sim2real.common.io import atomic_write_json
    from sim2real.experiments.domain_gap import (
        FreezeAdvice,
        format_gap_table,
        measure_gap,
        random_model,
    )

    if args.frames < 4:
        raise ValueError(f"--frames must be at least 4, got {args.frames}")
    if args.n_real is not None and args.n_real < 0:
        raise ValueError(f"--n-real must be >= 0, got {args.n_real}")
    torch.set_num_threads(max(1, min(torch.get_num_threads(), 4)))
    if args.checkpoint is not None:
        model, _ = load_checkpoint(args.checkpoint)
        source = str(args.checkpoint)
    else:
        model = random_model(args.architecture, args.seed)
        source = f"untrained {args.architecture} (seed {args.seed})"
    reference = None
    if args.reference is not None:
        reference, _ = load_checkpoint(args.reference, input_shape=model.spec.input_shape)
    result = measure_gap(
        model,
        args.sim,
        args.real,
        max_frames=args.frames,
        seed=args.seed,
        reference=reference,
        n_real=args.n_real,
        cache_dir=args.cache_dir,
        progress=not args.no_progress,
    )
    result["model"] = source
    result["reference"] = None if args.reference is None else str(args.reference)
    frames = result["frames"]
    print(
        f"{source}: {frames['sim_used']} sim frames vs {frames['real_used']} real frames, "
        "activations average-pooled per stage"
    )
    print(format_gap_table(result["stages"], FreezeAdvice(**result["recommendation"])))
    if args.json is not None:
        atomic_write_json(args.json, result)
        print(f"wrote {args.json}")
    return 0
