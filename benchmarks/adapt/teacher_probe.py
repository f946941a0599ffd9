"""Diagnostic: how close do zero-label motion teachers' steering pseudo-labels come to the
person's steering on the frames `adapt` reads (the training part of the recording)? The
person's labels are read here, for this diagnostic only; `adapt` reads none. Prints Pearson r
(and R² as is) of each variant against the labels:

- `network`: the network's smoothed, mirror-averaged steering (the ridge's target);
- `all`: adapt's ridge on every lagged flow feature (components=None, match_spread off: the
  first round's teacher);
- `pcK`: the ridge on the top K principal components (components=K), and `pcK_spread` the
  same stretched to the network's spread (match_spread);
- `oracle`: a ridge of the labels themselves on every feature (run-grouped CV): the ceiling
  of any linear flow teacher.

usage: python benchmarks/adapt/teacher_probe.py TUB CHECKPOINT [CACHE_DIR]
"""

import sys
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import r2_score

from sim2real.agents.checkpoint import load_checkpoint
from sim2real.transfer.adapt import (
    AdaptConfig,
    allowed_records,
    principal_scores,
    steering_labels,
    zero_label_teacher,
)
from sim2real.transfer.motion import fit_ridge_cv, motion_span


def main(tub: str, checkpoint: str, cache: str | None) -> None:
    torch.set_num_threads(1)
    # the first round's teacher (every feature, unstretched): match_spread is on by default now
    config = AdaptConfig(
        checkpoint=checkpoint, real=[tub], cache_dir=cache, components=None, match_spread=False
    )
    records = allowed_records(config)
    network, _ = load_checkpoint(checkpoint)
    teacher = zero_label_teacher(network, records, config, config.train.augment)
    truth = np.array([r.labels["user/angle"] for r in teacher.records])
    net = teacher.network[:, list(network.spec.outputs).index("user/angle")]
    x = motion_span(records, config.motion, Path(cache) if cache else None).of(teacher.records)
    runs = teacher.runs
    rows = {"network": net, "all": teacher.motion_fit}
    for k in (1, 2, 3, 4, 6):
        scores, _ = principal_scores(x, k)
        rows[f"pc{k}"] = steering_labels(net, scores, runs, 1.0)[1]
        rows[f"pc{k}_spread"] = steering_labels(net, scores, runs, 1.0, match_spread=True)[1]
    oracle = fit_ridge_cv(x, truth, runs)
    print(f"{tub} {checkpoint}: {len(truth)} frames; oracle CV r {oracle.cv_r:.3f} R² "
          f"{oracle.cv_r2:.3f}")  # fmt: skip
    for name, pred in rows.items():
        r = np.corrcoef(pred, truth)[0, 1]
        print(f"  {name:12s} r {r:.3f}  R² {r2_score(truth, pred):.3f}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None)
