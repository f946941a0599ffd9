"""Read and cache speed: one epoch over usi-track-a decoding JPEGs vs from the frame cache.

    python benchmarks/bench_data.py [PATH] [--workers N]

PATH defaults to ../shared/data/real/usi-track-a (the shipped sample when absent). Prints
seconds and frames/s for: reading the tub, decoding + preprocessing every frame (a cache
miss, what an epoch would cost without the cache), loading the cached array, and iterating
one epoch through a DataLoader (batch 64) from the cache.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from sim2real.agents.preprocessing import Preprocessing
from sim2real.transfer.datasets import DrivingDataset, open_records
from sim2real.transfer.sample_data import sample_path

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real" / "usi-track-a"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", type=Path, default=REAL if REAL.is_dir() else None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    path = args.path or sample_path()
    pre = Preprocessing()
    labels = ["user/angle", "user/throttle"]

    start = time.perf_counter()
    records = open_records([path]).records
    read_s = time.perf_counter() - start
    n = len(records)
    print(f"{path}: {n} usable frames, preprocessing {pre.input_shape}")
    print(f"read tub (manifest, catalogs, image listing): {read_s:.2f} s")

    with tempfile.TemporaryDirectory() as cache_dir:
        start = time.perf_counter()
        DrivingDataset(records, pre, labels, Path(cache_dir), progress=False)
        miss_s = time.perf_counter() - start
        start = time.perf_counter()
        data = DrivingDataset(records, pre, labels, Path(cache_dir), progress=False)
        hit_s = time.perf_counter() - start
        size_mb = data.cache_path.stat().st_size / 1e6
        start = time.perf_counter()
        for images, _targets in DataLoader(data, batch_size=64, shuffle=True):
            images.float().div_(255)
        epoch_s = time.perf_counter() - start
    print(f"decode, preprocess, write cache (miss): {miss_s:.2f} s ({n / miss_s:.0f} frames/s)")
    print(f"open from cache ({size_mb:.0f} MB .npy): {hit_s:.2f} s ({n / hit_s:.0f} frames/s)")
    print(
        f"one epoch from cache, DataLoader batch 64: {epoch_s:.2f} s ({n / epoch_s:.0f} frames/s)"
    )
    print(f"epoch speed-up vs decoding every epoch: {miss_s / (hit_s + epoch_s):.1f}x")


if __name__ == "__main__":
    main()
