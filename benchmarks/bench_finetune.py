"""Fine-tuning speed on real frames: default adapter, full fine-tuning, all-frozen with and
without cached features. Run by hand; prints figures.

    python benchmarks/bench_finetune.py [--checkpoint DIR] [--data TUB] [--frames 500]

Without --checkpoint a randomly initialised pilotnet checkpoint stands in for a sim-pretrained
one (the timings do not depend on the weights; convergence does, and the output says which was
used). Data defaults to ../shared/data/real/usi-track-a when present, else the shipped sample.
One torch thread, so that figures are comparable on a shared machine; both wall-clock and
process CPU seconds are printed (on a busy machine the CPU seconds are the better guide to
what an idle one would take).

Measured 2026-11-26 on the shared 2-core CPU box (load average 10-13 from other work), 500
usi-track-a frames, 1 thread (wall s / CPU s; epochs run incl. early-stopping patience 5):
- a small sim checkpoint (3,000 sim frames, 10 epochs): default adapter 70.8 / 28.2 (19
  epochs), full fine-tuning 53.7 / 21.1 (8), all frozen uncached 17.9 / 7.0 (6), all frozen
  with cached features 6.8 / 2.7 (6); CPU s per epoch 1.49 / 2.64 / 1.17 / 0.45.
- random init: default 65.6 / 13.8 (9), full 44.3 / 15.2 (7), all frozen uncached
  48.4 / 12.9 (12), cached 12.9 / 4.2 (27); CPU s per epoch 1.54 / 2.17 / 1.08 / 0.16, so
  13.9x faster than full fine-tuning per epoch (5.9x with the sim checkpoint, where 6 epochs
  carry the one-off feature pass).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from sim2real.agents.checkpoint import ModelCard, save_checkpoint
from sim2real.agents.model import DrivingNet, ModelSpec
from sim2real.agents.training import TrainConfig
from sim2real.transfer.adapter import AdapterConfig
from sim2real.transfer.finetune import FinetuneConfig, finetune, open_finetune_data
from sim2real.transfer.sample_data import sample_path

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real" / "usi-track-a"


def random_checkpoint(folder: Path) -> Path:
    spec = ModelSpec(architecture="pilotnet")
    torch.manual_seed(0)
    save_checkpoint(folder, DrivingNet(spec), ModelCard(spec=spec, trained_on={"random": True}))
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path)
    parser.add_argument("--data", type=Path, default=REAL if REAL.is_dir() else sample_path())
    parser.add_argument("--frames", type=int, default=500)
    parser.add_argument("--epochs", type=int, default=30)
    args = parser.parse_args()
    torch.set_num_threads(1)
    work = Path(tempfile.mkdtemp(prefix="bench_finetune_"))
    checkpoint = args.checkpoint or random_checkpoint(work / "random")
    print(f"checkpoint: {checkpoint} ({'given' if args.checkpoint else 'RANDOM INIT stand-in'})")
    print(f"data: {args.data}, {args.frames} training frames, 1 torch thread, CPU")

    train = TrainConfig(
        epochs=args.epochs,
        batch_size=64,
        patience=5,
        num_threads=1,
        progress=False,
        tensorboard=False,
    )
    base = FinetuneConfig(
        checkpoint=str(checkpoint),
        data=[str(args.data)],
        frames=args.frames,
        train=train,
        cache_dir=str(work / "cache"),
    )
    t0 = time.perf_counter()
    data = open_finetune_data(base, ModelSpec().preprocessing, progress=False)
    print(
        f"reading + decoding {args.frames} + {len(data.val)} val frames: "
        f"{time.perf_counter() - t0:.1f} s (first time; cached afterwards)"
    )

    runs = {
        "default (freeze 3, BN frozen)": AdapterConfig(freeze=3),
        "full fine-tuning (freeze none)": AdapterConfig(freeze="none"),
        "all frozen, no feature cache": AdapterConfig(freeze="all"),
        "all frozen, cached features": AdapterConfig(freeze="all"),
    }
    print(
        f"{'run':34s} {'wall s':>7s} {'CPU s':>7s} {'epochs':>6s} {'CPU s/ep':>8s} {'best':>5s} "
        f"{'val loss':>9s} {'stopped early':>13s}"
    )
    per_epoch = {}
    for i, (name, adapter) in enumerate(runs.items()):
        config = base.model_copy(
            update={"adapter": adapter, "cache_features": "no feature cache" not in name}
        )
        started, cpu_started = time.perf_counter(), time.process_time()
        result = finetune(config, work / f"run{i}", data=data)
        seconds = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
        fit = result.fits[-1]
        per_epoch[name] = cpu / fit.epochs_run
        print(
            f"{name:34s} {seconds:7.1f} {cpu:7.1f} {fit.epochs_run:6d} {per_epoch[name]:8.2f} "
            f"{fit.best_epoch:5d} {fit.best_val_loss:9.4f} {str(fit.stopped_early):>13s}"
        )
    full = per_epoch["full fine-tuning (freeze none)"]
    cached = per_epoch["all frozen, cached features"]
    uncached = per_epoch["all frozen, no feature cache"]
    print(
        f"per-epoch (CPU s) speed-up of cached features: {full / cached:.1f}x vs full fine-tuning, "
        f"{uncached / cached:.1f}x vs all-frozen without the cache"
    )


if __name__ == "__main__":
    main()
