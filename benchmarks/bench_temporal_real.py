"""A temporal network on real frames: its own previous action (as on the car) vs the recorded one.

    python benchmarks/bench_temporal_real.py CHECKPOINT [REAL_TUB] [--split test] [--json OUT]

Scores the steering of CHECKPOINT (trained with ``model.temporal.previous_action``) on the
test block of REAL_TUB (default ../shared/data/real/usi-track-a), cut as `sim2real evaluate`
cuts it, three ways: fed its own previous output frame after frame (`predict_rollout`, what
`evaluate --data`, the pilot and the sim driver do), fed the person's recorded previous
command (teacher forcing: the label of the frame before, nearly the label itself, so the
copycat problem shows as an inflated score), and fed the fallback (0, 0) everywhere (the
image alone). Pearson r and R^2 of the raw steering against the person's.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from scipy import stats

from sim2real.agents.checkpoint import load_checkpoint
from sim2real.agents.model import STEERING, predict, predict_rollout
from sim2real.common.io import atomic_write_text
from sim2real.transfer.datasets import DrivingDataset, open_records
from sim2real.transfer.records import run_starts
from sim2real.transfer.splits import split_records
from sim2real.transfer.temporal import previous_actions

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real" / "usi-track-a"


def scores(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Pearson r and R^2 of `pred` against `truth` (both (N,))."""
    r2 = 1.0 - np.sum((pred - truth) ** 2) / np.sum((truth - truth.mean()) ** 2)
    return {"pearson_r": float(stats.pearsonr(pred, truth)[0]), "r2": float(r2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("data", nargs="?", default=str(REAL))
    parser.add_argument("--split", choices=["test", "all"], default="test")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(1)
    model, card = load_checkpoint(args.checkpoint)
    if not model.context_names:
        raise SystemExit(f"error: {args.checkpoint} is a single-frame network")
    records = open_records([args.data]).records
    part = records
    if args.split == "test":
        from sim2real.transfer.evaluate import card_split

        part = split_records(records, card_split(card), seed=0).test
    dataset = DrivingDataset(part, model.spec.preprocessing, [STEERING], progress=False)
    truth = dataset.targets[:, 0].double().numpy()
    col = model.output_index(STEERING)
    recorded, _ = previous_actions(dataset.records, records)
    arms = {
        "own_previous_action": predict_rollout(model, dataset.images, run_starts(dataset.records)),
        "recorded_previous_action": predict(model, dataset.images, context=recorded),
        "fallback_only": predict(
            model, dataset.images, context=torch.zeros(len(dataset), len(model.context_names))
        ),
    }
    result = {
        "checkpoint": str(Path(args.checkpoint).resolve()),
        "data": args.data,
        "split": args.split,
        "frames": len(dataset),
        **{name: scores(pred[:, col], truth) for name, pred in arms.items()},
    }
    print(json.dumps(result, indent=2))
    if args.json:
        atomic_write_text(args.json, json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
