"""One undecodable image in 1,000 real frames: what it costs a run (one frame, not the run).

    python benchmarks/bench_bad_image.py [PATH] [--frames 1000] [--epochs 1]

Copies the first FRAMES usable records of PATH (default ../shared/data/real/usi-track-a, the
shipped sample when absent) into a new tub in a temporary folder (the dataset itself is never
touched), overwrites one image there with bytes that do not decode, and then:

1. builds the frame dataset of the clean and of the damaged copy (seconds, frames kept);
2. runs `sim2real finetune --from-scratch` on the damaged copy (a fresh pilotnet, EPOCHS
   epochs) and prints the read report its model card keeps.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from sim2real.agents.checkpoint import ModelCard, save_checkpoint
from sim2real.agents.model import DrivingNet, ModelSpec
from sim2real.agents.preprocessing import Preprocessing
from sim2real.experiments.cli import main as cli
from sim2real.transfer.datasets import DrivingDataset, open_records
from sim2real.transfer.sample_data import sample_path
from sim2real.transfer.tub import TubWriter

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real" / "usi-track-a"
LABELS = ["user/angle", "user/throttle"]


def copy_tub(source: Path, out: Path, frames: int) -> Path:
    """A new tub at `out` with the first `frames` usable records of `source` (JPEG bytes)."""
    records = open_records([source]).records[:frames]
    with TubWriter(out, ["cam/image_array", *LABELS], ["image_array", "float", "float"]) as w:
        for r in records:
            w.write({k: r.labels[k] for k in LABELS}, r.image_path.read_bytes())
    return out


def dataset_seconds(tub: Path, cache: Path) -> tuple[float, DrivingDataset]:
    records = open_records([tub])
    start = time.perf_counter()
    data = DrivingDataset(
        records.records, Preprocessing(), LABELS, cache, progress=False, report=records.report
    )
    return time.perf_counter() - start, data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", type=Path, default=REAL if REAL.is_dir() else None)
    parser.add_argument("--frames", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        clean = copy_tub(args.path or sample_path(), tmp / "clean", args.frames)
        damaged = copy_tub(args.path or sample_path(), tmp / "damaged", args.frames)
        bad = sorted((damaged / "images").glob("*.jpg"))[args.frames // 2]
        bad.write_bytes(b"\xff\xd8\xff\xe0 not a whole jpeg")
        for name, tub in (("clean", clean), ("one bad image", damaged)):
            seconds, data = dataset_seconds(tub, tmp / f"cache-{name}")
            print(f"{name:14s} dataset: {len(data)} frames of {args.frames} in {seconds:.2f} s")
        spec = ModelSpec(architecture="pilotnet", outputs=LABELS)
        save_checkpoint(tmp / "init", DrivingNet(spec), ModelCard(spec=spec))
        argv = ["finetune", "--checkpoint", str(tmp / "init"), "--data", str(damaged)]
        argv += ["--out", str(tmp / "run"), "--from-scratch", "--epochs", str(args.epochs)]
        start = time.perf_counter()
        code = cli(argv)
        print(f"finetune exit code {code} in {time.perf_counter() - start:.1f} s")
        card = json.loads((tmp / "run" / "model.json").read_text())
        report = card["trained_on"]["read_report"]
        counts = {k: v for k, v in report.items() if k not in ("examples", "bad_fraction")}
        print(f"model card read report: {counts}")
        print(f"frames trained / validated: {card['trained_on']['frames']}")
        print(f"example: {report['examples'][-1]}")


if __name__ == "__main__":
    main()
