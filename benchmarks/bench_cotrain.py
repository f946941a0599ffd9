"""Co-training and unlabeled-frame alignment vs head-only fine-tuning, N real frames.

    python benchmarks/bench_cotrain.py --checkpoint SIM_CKPT --data REAL_TUB [--frames 100]
        [--seeds 0 1 2] [--arms head cotrain ...] [--split val|test] [--ratio 0.5]
        [--epochs 30] [--sim SIM_TUB] [--json FILE]

For each seed, the same N training frames (`finetune`'s block subsample of the earlier part
of the recording) train every arm:

- ``zero``: the checkpoint as it is (zero-shot), no training;
- ``head``: every stage frozen, head only (the freeze rule's pick under 300 frames);
- ``adabn_head``: BatchNorm statistics from the unlabeled frames (the rest of the training
  part), then head only;
- ``cotrain``: every stage from `--cotrain-freeze` up trained on the N real frames and on sim
  frames (the checkpoint's pretraining data, or --sim), real share `--ratio`;
- ``cotrain_align``: co-training plus AdaBN and CORAL toward the unlabeled frames;
- ``align``: AdaBN + CORAL, no sim frames, stages from `--align-freeze` up trained.

Scored on `--split`: ``val`` (the whole validation block before the test block: choose knobs
here) or ``test`` (the last 20%: report only). Steering R^2 and Pearson r, point estimates.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from sim2real.agents.alignment import AlignmentConfig
from sim2real.agents.checkpoint import load_checkpoint
from sim2real.agents.model import STEERING, predict
from sim2real.agents.training import TrainConfig
from sim2real.common.io import atomic_write_json
from sim2real.common.machine import machine_info
from sim2real.transfer.adapter import AdapterConfig, reheaded
from sim2real.transfer.cotrain import CotrainConfig
from sim2real.transfer.datasets import DrivingDataset
from sim2real.transfer.finetune import FinetuneConfig, finetune, open_finetune_data
from sim2real.transfer.metrics import driving_metrics
from sim2real.transfer.splits import split_records

ARMS = ("zero", "head", "adabn_head", "cotrain", "cotrain_align", "align")


def unlabeled_tub(config: FinetuneConfig) -> list[str]:
    """The unlabeled frames: the labelled tub itself (finetune keeps only its training part)."""
    return list(config.data)


def arm_config(arm: str, base: FinetuneConfig, args: argparse.Namespace) -> FinetuneConfig:
    cfg = base.model_copy(deep=True)
    cotrain = CotrainConfig(
        ratio=args.ratio,
        freeze=args.cotrain_freeze,
        max_sim_frames=args.sim_frames,
        sim=args.sim or [],
        domain_affine=not args.no_affine,
        final_adabn=args.final_adabn,
        refit_head=args.refit_head,
    )
    align = AlignmentConfig(
        unlabeled=unlabeled_tub(cfg),
        max_frames=args.unlabeled_frames,
        coral_weight=args.coral_weight,
    )
    if arm == "head":
        cfg.adapter.freeze = "all"
    elif arm == "adabn_head":
        cfg.adapter.freeze = "all"
        cfg.align = align.model_copy(update={"coral_weight": 0.0})
    elif arm == "cotrain":
        cfg.cotrain = cotrain
        cfg.train = cfg.train.model_copy(update={"lr": args.lr})
    elif arm == "cotrain_align":
        cfg.cotrain, cfg.align = cotrain, align
        cfg.train = cfg.train.model_copy(update={"lr": args.lr})
    elif arm == "align":
        cfg.adapter.freeze = args.align_freeze
        cfg.align = align
        cfg.train = cfg.train.model_copy(update={"lr": args.lr})
    return cfg


def score(model, images: torch.Tensor, truth: np.ndarray) -> dict[str, float]:
    pred = predict(model, images)[:, model.output_index(STEERING)]
    m = driving_metrics({STEERING: pred}, {STEERING: truth}, n_boot=0)
    return {"r2": m["steering_r2"].value, "r": m["steering_pearson_r"].value}


def memoize_open_records() -> None:
    """Read each dataset once per process (an 80,000-frame sim tub takes about a minute to
    list on a loaded 2-core box; every arm and seed would read it again)."""
    import sim2real.transfer.datasets as datasets

    original, memo = datasets.open_records, {}

    def cached(paths, **kwargs):
        key = tuple(str(p) for p in ([paths] if isinstance(paths, str | Path) else paths))
        if kwargs:
            return original(paths, **kwargs)
        if key not in memo:
            memo[key] = original(paths)
        return memo[key]

    datasets.open_records = cached


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS)
    parser.add_argument("--split", choices=("val", "test"), default="val")
    parser.add_argument("--ratio", type=float, default=0.5)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--patience", type=int, default=5)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--cotrain-freeze", type=int, default=0)
    parser.add_argument("--align-freeze", type=int, default=2)
    parser.add_argument("--coral-weight", type=float, default=1.0)
    parser.add_argument("--sim", nargs="*")
    parser.add_argument("--sim-frames", type=int, default=3000)
    parser.add_argument("--unlabeled-frames", type=int, default=3000)
    parser.add_argument("--no-affine", action="store_true")
    parser.add_argument("--final-adabn", action="store_true")
    parser.add_argument("--refit-head", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(1)
    memoize_open_records()

    model, card = load_checkpoint(args.checkpoint)
    pre = model.spec.preprocessing
    train = TrainConfig(
        epochs=args.epochs,
        batch_size=64,
        lr=1e-3,
        weight_decay=1e-4,
        patience=args.patience,
        progress=False,
        tensorboard=False,
        num_threads=1,
    )
    base = FinetuneConfig(
        checkpoint=args.checkpoint,
        data=[args.data],
        frames=args.frames,
        train=train,
        adapter=AdapterConfig(),
    )
    import sim2real.transfer.datasets as datasets

    records = datasets.open_records(base.data).records
    split = split_records(records, base.split, seed=0)
    part = split.val if args.split == "val" else split.test
    scored = DrivingDataset(part, pre, [STEERING], progress=False)
    truth = scored.targets[:, 0].double().numpy()
    results: dict[str, list[dict]] = {arm: [] for arm in args.arms}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            seeded = base.model_copy(deep=True)
            seeded.train.seed = seed
            data = open_finetune_data(seeded, pre, progress=False)
            for arm in args.arms:
                t0 = time.perf_counter()
                if arm == "zero":
                    net = reheaded(model, seeded.adapter.outputs)
                    entry = score(net, scored.images, truth)
                else:
                    cfg = arm_config(arm, seeded, args)
                    out = Path(tmp) / f"{arm}-{seed}"
                    result = finetune(cfg, out, data=data)
                    net, _ = load_checkpoint(out)
                    entry = score(net, scored.images, truth)
                    entry["epochs_run"] = sum(f.epochs_run for f in result.fits)
                    entry["best_epoch"] = result.fits[-1].best_epoch
                entry["seed"], entry["seconds"] = seed, time.perf_counter() - t0
                results[arm].append(entry)
                print(
                    f"seed {seed} {arm:14s} R2 {entry['r2']:.3f}  r {entry['r']:.3f}  "
                    f"({entry['seconds']:.0f} s, best epoch {entry.get('best_epoch', '-')})",
                    flush=True,
                )
    print(f"\n{args.split} block of {args.data} ({len(part)} frames), {args.frames} frames")
    for arm, rows in results.items():
        r2 = [e["r2"] for e in rows]
        r = [e["r"] for e in rows]
        print(
            f"{arm:14s} R2 {' / '.join(f'{v:.2f}' for v in r2)} (mean {np.mean(r2):.3f})  "
            f"r mean {np.mean(r):.3f}"
        )
    if args.json:
        atomic_write_json(
            args.json,
            {
                "args": {k: v for k, v in vars(args).items() if k != "json"},
                "checkpoint_trained_on": card.trained_on.get("paths"),
                "split": args.split,
                "scored_frames": len(part),
                "machine": machine_info(),
                "results": results,
            },
        )


if __name__ == "__main__":
    main()
