"""`sim2real pretrain`: supervised pretraining of a perception network on sim tubs."""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from sim2real.agents.pretrain import (
    PretrainConfig,
    PretrainData,
    PretrainResult,
    check_out_dir,
    load_pretrain_config,
    pretrain,
)


def open_sim_data(config: PretrainConfig) -> PretrainData:
    """Read `config.data` (sim tubs), split by time blocks, and build the frame datasets."""
    from sim2real.transfer.datasets import DrivingDataset, open_records
    from sim2real.transfer.splits import subsample, time_block_split

    if not config.data:
        raise ValueError("no sim data given: pass at least one tub path (--data)")
    for path in config.data:
        if not Path(path).expanduser().exists():
            raise FileNotFoundError(f"sim data {path}: no such file or folder")
    record_set = open_records(config.data)
    records = record_set.records
    if config.max_frames is not None:
        records = subsample(records, config.max_frames, seed=config.train.seed)
    spec = config.model
    counts = {name: sum(name in r.labels for r in records) for name in spec.outputs}
    missing = [name for name, n in counts.items() if n == 0]
    if missing:
        raise ValueError(
            f"{', '.join(config.data)}: no record has label(s) {missing}; labels present: "
            f"{record_set.label_names}; set model.outputs in the config to labels the data has"
        )
    split = time_block_split(records, config.val_fraction, gap=config.split_gap)
    if not split.val:
        raise ValueError(f"{', '.join(config.data)}: too few records for a validation block")
    cache_dir = Path(config.cache_dir) if config.cache_dir else None
    progress = config.train.progress
    train, val = (
        DrivingDataset(part, spec.preprocessing, spec.outputs, cache_dir, progress=progress)
        for part in (split.train, split.val)
    )
    trained_on = {
        "paths": [str(Path(p).expanduser().resolve()) for p in config.data],
        "frames": split.sizes(),
        "split": {
            "kind": "time_block",
            "val_fraction": config.val_fraction,
            "gap": config.split_gap,
        },
        "label_counts": counts,
        "read_report": record_set.report.to_dict(),
        "max_frames": config.max_frames,
    }
    return PretrainData(train=train, val=val, trained_on=trained_on)


def run_pretrain(
    config: PretrainConfig, out_dir: str | Path, *, resume: bool = False
) -> PretrainResult:
    """Open the sim data and pretrain: what `sim2real pretrain` does, for scripts and tests."""
    check_out_dir(Path(out_dir), config, resume)  # before minutes of frame decoding
    return pretrain(config, open_sim_data(config), out_dir, resume=resume)


def handler(args: argparse.Namespace) -> int:
    config = load_pretrain_config(args.config, data=args.data, epochs=args.epochs, seed=args.seed)
    if args.architecture:
        config.model.architecture = args.architecture
    if args.device:
        config.train.device = args.device
    if args.print_config:
        print(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False), end="")
        return 0
    if args.out is None:
        raise ValueError("--out DIR is required (the checkpoint folder to write)")
    result = run_pretrain(config, args.out, resume=args.resume)
    metrics = result.card.metrics
    frames = result.card.trained_on["frames"]
    print(
        f"pretrained {config.model.architecture} on {frames['train']} frames "
        f"(val {frames['val']}): best val loss {metrics['best_val_loss']:.4f} at epoch "
        f"{metrics['best_epoch']}/{metrics['epochs_run']}; checkpoint {result.out_dir}"
    )
    for name, m in metrics["val"].items():
        print(f"  {name:20s} val RMSE {m['rmse']:.4f}  MAE {m['mae']:.4f}  (n={m['n']})")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "pretrain",
        help="pretrain a perception network on sim tubs",
        description="Supervised pretraining on sim recordings (DonkeyCar tubs with sim/* "
        "labels): augmentation, time-block validation split, early stopping, TensorBoard "
        "logs in OUT/tb. OUT becomes a checkpoint folder (model.safetensors + model.json).",
    )
    parser.add_argument(
        "--data", nargs="+", metavar="SIM_TUB", help="sim tub(s) or folders of tubs"
    )
    parser.add_argument("--out", type=Path, help="output checkpoint folder (required)")
    parser.add_argument("--config", type=Path, help="YAML PretrainConfig (model, train, ...)")
    parser.add_argument("--epochs", type=int, help="override train.epochs")
    parser.add_argument("--seed", type=int, help="override train.seed")
    parser.add_argument("--architecture", help="override model.architecture")
    parser.add_argument("--device", help="override train.device (auto, cpu, cuda)")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted run in OUT")
    parser.add_argument(
        "--print-config",
        action="store_true",
        help="print the resolved config as YAML (a starting point for --config) and exit",
    )
    parser.set_defaults(func=handler)
