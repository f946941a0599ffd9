"""`sim2real adapt`: adapt a sim network to the user's real frames with no label
(`sim2real.transfer.adapt`)."""

from __future__ import annotations

import argparse
from pathlib import Path


def handler(args: argparse.Namespace) -> int:
    from sim2real.common.runs import with_predating
    from sim2real.experiments.config_options import (
        config_from_args,
        config_mentions,
        printed_config,
    )
    from sim2real.transfer.adapt import PREDATING, AdaptConfig, adapt

    config = config_from_args(AdaptConfig, args)
    if args.config is not None:  # a config saved before a field reproduces its run
        unnamed = {k: v for k, v in PREDATING.items() if not config_mentions(args, k)}
        config = with_predating(config, args.config, unnamed)
    if args.resume and args.out is not None:
        config = _saved_epochs(args, config)
    if printed_config(args, config):
        return 0
    result = adapt(config, args.out, resume=args.resume)
    t = result.teacher
    print(
        f"adapted {config.checkpoint} with no label: motion teacher on {t['frames']} frames "
        f"({t['runs']} runs), network-on-motion CV R2 {t['network_on_motion_cv_r2']:.3f} "
        f"(r {t['network_on_motion_cv_r']:.3f}), weight {t['weight']}; student on "
        f"{result.frames} frames, {result.seconds:.0f} s; checkpoint {result.out_dir}"
    )
    return 0


def _saved_epochs(args: argparse.Namespace, config):  # noqa: ANN001 (AdaptConfig)
    """`config` with the resumed run's own `train.epochs` unless the command line or its
    --config names the epochs: the default changed (4 -> 8, 2026-12-01), and a resume may
    change the epochs, so an interrupted run made before would otherwise train on to 8."""
    from sim2real.common.config import load_yaml_mapping
    from sim2real.experiments.config_options import config_mentions

    if config_mentions(args, "train.epochs"):
        return config
    saved = Path(args.out) / "config.yaml"
    if not saved.is_file():
        return config
    epochs = (load_yaml_mapping(saved).get("train") or {}).get("epochs")
    if not isinstance(epochs, int):
        return config
    return config.model_copy(update={"train": config.train.model_copy(update={"epochs": epochs})})


def register(subparsers: argparse._SubParsersAction) -> None:
    from sim2real.experiments.config_options import (
        add_crop_top,
        add_print_config,
        add_set_option,
        add_shortcut,
    )

    parser = subparsers.add_parser(
        "adapt",
        help="adapt a sim network to unlabeled real frames (no label read)",
        description="Zero-label adaptation: the network's own time-smoothed steering on the "
        "real frames is regressed on the recording's optical flow (the car's motion in the "
        "next frames); the pseudo-label mixes that fit with the network, and a copy of the "
        "network trains on it. Only the training part of finetune's split of each recording "
        "is read unless --span says otherwise. OUT becomes a checkpoint folder that finetune "
        "and evaluate take like any other (docs/adapt.md).",
    )
    add_shortcut(parser, "--checkpoint", "checkpoint", metavar="CKPT", help="network to adapt")
    add_shortcut(
        parser,
        "--real",
        "real",
        nargs="+",
        metavar="REAL",
        help="real tubs, folders of tubs or CSV folders (labels are not read)",
    )
    parser.add_argument("--out", type=Path, help="output checkpoint folder (required)")
    parser.add_argument("--config", type=Path, help="YAML AdaptConfig")
    add_shortcut(
        parser,
        "--span",
        "span",
        nargs=2,
        type=float,
        metavar=("START", "END"),
        help="fraction of each recording read (default: finetune's training part, never "
        "its validation or test blocks)",
    )
    add_shortcut(
        parser, "--weight", "weight", type=float, help="motion teacher's share of steering (1.0)"
    )
    add_shortcut(
        parser,
        "--components",
        "components",
        type=int,
        help="principal components of the flow features the motion fit reads (2; "
        "--set components=null: every feature)",
    )
    add_shortcut(
        parser,
        "--frames",
        "max_frames",
        type=int,
        help="at most this many frames for the student, as 100-frame blocks (20000)",
    )
    add_crop_top(parser)
    add_shortcut(parser, "--epochs", "train.epochs", type=int, help="student epochs (8)")
    add_shortcut(parser, "--lr", "train.lr", type=float, help="student learning rate (3e-4)")
    add_shortcut(parser, "--seed", "train.seed", type=int, help="training seed")
    add_shortcut(parser, "--cache-dir", "cache_dir", help="frame and motion-feature cache")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted run in OUT")
    add_set_option(parser)
    add_print_config(parser)
    parser.set_defaults(func=handler)
