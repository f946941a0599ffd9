"""What `selftrain.recalibrate` (a steering gain through 0 fitted on the labelled frames after
the student trains) would have given saved self-training runs (issue 15, docs/selftrain.md
"The student, round two"), without training again: the run's labelled frames are rebuilt from
its config.yaml, the gain fitted on the network as saved (mirror-averaged), and the
validation block scored with and without it, beside the gain that block itself would want
(truth ~ prediction, a diagnostic of the student's spread).

    python benchmarks/recalibrate_probe.py REAL_DIR RUN...
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from sim2real.agents.calibration import fit_affine
from sim2real.agents.checkpoint import load_checkpoint
from sim2real.agents.model import predict
from sim2real.agents.training import dataset_tensors
from sim2real.common.config import load_config
from sim2real.transfer import metrics
from sim2real.transfer.datasets import DrivingDataset, open_records
from sim2real.transfer.finetune import FinetuneConfig, open_finetune_data
from sim2real.transfer.splits import split_records


def score(pred: np.ndarray, truth: np.ndarray) -> str:
    """ "R² / r" of `pred` (N,) against `truth` (N,)."""
    return f"{metrics.r2(pred, truth)[0]:.3f} / {metrics.pearson_r(pred, truth)[0]:.3f}"


def main(real: str, runs: list[str]) -> None:
    torch.set_num_threads(1)
    for run in runs:
        config = load_config(FinetuneConfig, Path(run) / "config.yaml")
        model, card = load_checkpoint(run)  # as saved (mirror-averaged)
        k = list(model.spec.outputs).index("user/angle")
        data = open_finetune_data(config, model.spec.preprocessing, progress=False)
        images, targets = dataset_tensors(data.train)
        j = list(config.adapter.outputs).index("user/angle")
        gain, _ = fit_affine(
            predict(model, images)[:, k], targets[:, j].double().numpy(), offset=False
        )
        tub = Path(config.data[0])
        parts = split_records(open_records([str(tub)]).records, config.split, seed=0)
        val = DrivingDataset(parts.val, model.spec.preprocessing, ["user/angle"], progress=False)
        pred, truth = predict(model, val.images)[:, k], val.targets[:, 0].double().numpy()
        wanted = float(np.dot(pred, truth) / np.dot(pred, pred))
        print(
            f"{Path(run).name}: val as saved {score(pred, truth)} | gain {gain:.3f} from the "
            f"{len(images)} labelled frames: val {score(gain * pred, truth)} | the val block's "
            f"own gain {wanted:.3f}",
            flush=True,
        )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
