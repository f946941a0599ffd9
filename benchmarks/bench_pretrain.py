"""Time per pretraining epoch for each encoder, extrapolated to 20,000 sim frames.

Target: pretraining on 20k sim frames within 10 minutes on a 2-core CPU. Uses synthetic
frames at the default preprocessing size (64x128) and the real `fit` loop (augmentation
on, validation pass included, TensorBoard and progress bar off).

    python benchmarks/bench_pretrain.py [--frames 1024] [--threads 2] [--epochs 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch
from torch.utils.data import TensorDataset

from sim2real.agents.encoders import ENCODERS
from sim2real.agents.model import DrivingNet, ModelSpec
from sim2real.agents.pretrain import DEFAULT_OUTPUTS
from sim2real.agents.training import TrainConfig, fit
from sim2real.common.machine import describe_machine

TARGET_FRAMES = 20_000
BUDGET_S = 600.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=1024, help="synthetic training frames")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=2, help="epochs timed (first is warm-up)")
    parser.add_argument("--batch-size", type=int, default=TrainConfig().batch_size)
    parser.add_argument("--architectures", nargs="+", default=sorted(ENCODERS))
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    spec0 = ModelSpec()
    n_val = args.frames // 4
    images = torch.randint(0, 256, (args.frames + n_val, *spec0.input_shape), generator=g)
    images = images.to(torch.uint8)
    targets = torch.rand(args.frames + n_val, len(DEFAULT_OUTPUTS), generator=g) * 2 - 1
    train = TensorDataset(images[: args.frames], targets[: args.frames])
    val = TensorDataset(images[args.frames :], targets[args.frames :])
    print(f"before: {describe_machine()}")
    print(
        f"{args.frames} train + {n_val} val frames {spec0.input_shape}, batch {args.batch_size}, "
        f"{args.threads} threads"
    )
    print(
        f"{'architecture':14s} {'params':>9s} {'s/epoch':>8s} {'ms/frame':>9s} "
        f"{'20k s/epoch':>12s} {'epochs in 10 min':>17s}"
    )
    for name in args.architectures:
        spec = ModelSpec(architecture=name, outputs=list(DEFAULT_OUTPUTS))
        torch.manual_seed(0)
        net = DrivingNet(spec)
        config = TrainConfig(
            epochs=args.epochs,
            batch_size=args.batch_size,
            patience=0,
            progress=False,
            tensorboard=False,
            num_threads=args.threads,
            device="cpu",
        )
        with tempfile.TemporaryDirectory() as out:
            t0, c0 = time.perf_counter(), time.process_time()
            result = fit(net, train, val, config, out)
            total, cpu = time.perf_counter() - t0, time.process_time() - c0
        per_epoch = min(h["seconds"] for h in result.history)
        # The val pass is a quarter of the frames and forward-only; the per-epoch figure
        # includes it, so the extrapolation is per 20k training frames + 5k validation frames.
        per_20k = per_epoch * TARGET_FRAMES / args.frames
        n_params = sum(p.numel() for p in net.parameters())
        print(
            f"{name:14s} {n_params:9d} {per_epoch:8.2f} {1000 * per_epoch / args.frames:9.2f} "
            f"{per_20k:12.1f} {BUDGET_S / per_20k:17.1f}   (total {total:.1f} s wall, "
            f"{cpu / args.epochs:.1f} CPU-s/epoch)"
        )


if __name__ == "__main__":
    main()
