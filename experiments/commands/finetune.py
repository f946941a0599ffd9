"""`sim2real finetune`: adapt a pretrained checkpoint to real frames (or train from scratch)."""

from __future__ import annotations

import argparse
from pathlib import Path


def handler(args: argparse.Namespace) -> int:
    from sim2real.transfer.finetune import finetune, load_finetune_config

    config = load_finetune_config(
        args.config,
        checkpoint=args.checkpoint,
        data=args.data,
        frames=args.frames,
        from_scratch=args.from_scratch,
        freeze=args.freeze,
        epochs=args.epochs,
        seed=args.seed,
    )
    if args.device:
        config.train.device = args.device
    result = finetune(config, args.out, resume=args.resume)
    frames = result.card.trained_on["frames"]
    how = "from scratch" if config.from_scratch else f"frozen {', '.join(result.frozen) or 'none'}"
    if result.cached_features:
        how += ", head on cached features"
    metrics = result.card.metrics
    print(
        f"fine-tuned {config.adapter.outputs} on {frames['train']} real frames "
        f"(val {frames['val']}; {how}) in {result.seconds:.1f} s: best val loss "
        f"{metrics['best_val_loss']:.4f}; checkpoint {result.out_dir}"
    )
    for name, m in metrics["val"].items():
        print(f"  {name:20s} val RMSE {m['rmse']:.4f}  MAE {m['mae']:.4f}  (n={m['n']})")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "finetune",
        help="fine-tune a pretrained checkpoint on real frames",
        description="Adapt a sim-pretrained checkpoint to real DonkeyCar data: lower encoder "
        "stages frozen, augmentation (photometric, small geometric, mirror with steering "
        "negated), a later time block for validation and early stopping, the last block "
        "held out for `sim2real evaluate`. OUT becomes a checkpoint folder. --from-scratch "
        "trains the same architecture from random init with the same budget (the baseline).",
    )
    parser.add_argument(
        "--checkpoint",
        type=Path,
        help="pretrained checkpoint folder, or a shipped name (sim2real models)",
    )
    parser.add_argument("--data", nargs="+", metavar="REAL", help="real tub(s) or CSV folders")
    parser.add_argument("--out", required=True, type=Path, help="output checkpoint folder")
    parser.add_argument("--frames", type=int, help="train on N frames (default: all usable)")
    parser.add_argument("--freeze", help="stages frozen: K (the first K), all, none")
    parser.add_argument("--from-scratch", action="store_true", help="random init, all trainable")
    parser.add_argument("--epochs", type=int, help="override train.epochs")
    parser.add_argument("--seed", type=int, help="override train.seed")
    parser.add_argument("--config", type=Path, help="YAML FinetuneConfig (adapter, train, ...)")
    parser.add_argument("--device", help="override train.device (auto, cpu, cuda)")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted run in OUT")
    parser.set_defaults(func=handler)
