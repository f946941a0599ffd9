"""`sim2real pretrain`: supervised pretraining of a perception network on sim tubs."""

from __future__ import annotations

import argparse
from pathlib import Path


def handler(args: argparse.Namespace) -> int:
    from sim2real.agents.pretrain import PretrainConfig
    from sim2real.experiments.commands.finetune import print_val_metrics
    from sim2real.experiments.config_options import config_from_args, printed_config
    from sim2real.experiments.pretraining import run_pretrain, with_init_spec

    config = with_init_spec(config_from_args(PretrainConfig, args))
    if printed_config(args, config):
        return 0
    result = run_pretrain(config, args.out, resume=args.resume)
    metrics = result.card.metrics
    frames = result.card.trained_on["frames"]
    print(
        f"pretrained {config.model.architecture} on {frames['train']} frames "
        f"(val {frames['val']}): best val loss {metrics['best_val_loss']:.4f} at epoch "
        f"{metrics['best_epoch']}/{metrics['epochs_run']}; checkpoint {result.out_dir}"
    )
    print_val_metrics(metrics)
    if "adabn" in metrics:
        print(f"  BatchNorm statistics re-estimated on {metrics['adabn']['frames']} real frames")
    calibration = metrics.get("steering_calibration")
    if calibration and "skipped" in calibration:
        print(f"  steering not calibrated: {calibration['skipped']}")
    elif calibration:
        print(
            f"  steering calibrated: attenuation slope {calibration['slope']:.3f} on "
            f"{calibration['frames']} val frames, output scaled by {calibration['gain']:.3f} "
            f"(val RMSE {calibration['rmse_before']:.4f} -> {calibration['rmse_after']:.4f})"
        )
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    from sim2real.experiments.config_options import (
        add_print_config,
        add_set_option,
        add_shortcut,
    )

    parser = subparsers.add_parser(
        "pretrain",
        help="pretrain a perception network on sim tubs",
        description="Supervised pretraining on sim recordings (DonkeyCar tubs with sim/* "
        "labels): augmentation, time-block validation split, early stopping, TensorBoard "
        "logs in OUT/tb. OUT becomes a checkpoint folder (model.safetensors + model.json).",
    )
    add_shortcut(
        parser, "--data", "data", nargs="+", metavar="SIM_TUB", help="sim tub(s) or folders of tubs"
    )
    parser.add_argument("--out", type=Path, help="output checkpoint folder (required)")
    parser.add_argument("--config", type=Path, help="YAML PretrainConfig (model, train, ...)")
    add_shortcut(parser, "--epochs", "train.epochs", type=int, help="maximum epochs")
    add_shortcut(parser, "--seed", "train.seed", type=int, help="training seed")
    add_shortcut(parser, "--architecture", "model.architecture", help="encoder architecture")
    add_shortcut(parser, "--device", "train.device", help="auto, cpu, cuda")
    add_shortcut(
        parser,
        "--init",
        "init",
        metavar="CKPT",
        help="start from this checkpoint's weights (folder or shipped name, e.g. "
        "pilotnet-recipe; its spec must match the model's, which it fills when the config "
        "names none): continue a network on new sim frames",
    )
    parser.add_argument("--resume", action="store_true", help="continue an interrupted run in OUT")
    add_shortcut(
        parser,
        "--real-unlabeled",
        "align.unlabeled",
        nargs="+",
        metavar="REAL",
        help="unlabeled real frames (labels ignored): a CORAL loss between sim and real "
        "batches, then AdaBN statistics from them",
    )
    add_shortcut(
        parser,
        "--fda-beta",
        "align.fda_beta",
        type=float,
        metavar="BETA",
        help="with --real-unlabeled: restyle sim frames toward them by Fourier domain "
        "adaptation, amplitude window BETA x the shorter side (e.g. 0.01-0.09); add --set "
        "align.coral_weight=0 --set align.adabn=false for FDA alone",
    )
    add_set_option(parser)
    add_print_config(parser)
    parser.set_defaults(func=handler)
