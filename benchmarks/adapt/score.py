"""Steering of checkpoints on one real recording's validation and test blocks (cut as
`evaluate --split test` cuts them, REAL_SPLIT for a network that was not fine-tuned): Pearson r
and R² as saved on each block, and the calibrated R² of the test block (an affine map of the
prediction fitted on the validation block, scored on the test block: what a user who labels
the validation block could reach without training). Choose on the `val_*` columns only.

usage: python benchmarks/adapt/score.py OUT.json REAL_TUB CHECKPOINT...
With MIRROR=on (or off), every network is scored with mirror averaging on (off) instead of
as saved (`evaluate --mirror-average`).
"""

import json
import os
import sys
from pathlib import Path

import numpy as np
from scipy.stats import pearsonr
from sklearn.linear_model import LinearRegression
from sklearn.metrics import r2_score

from sim2real.agents.checkpoint import override_mirror_average
from sim2real.agents.ensemble import load_predictor
from sim2real.agents.model import predict
from sim2real.common.io import atomic_write_json
from sim2real.transfer.datasets import DrivingDataset, open_records
from sim2real.transfer.evaluate import card_split
from sim2real.transfer.splits import split_records


def main(out: str, tub: str, checkpoints: list[str]) -> None:
    """Scores of `checkpoints` into `out`; ones already in `out` are kept, not scored again
    (a finished checkpoint folder does not change)."""
    scores = json.loads(Path(out).read_text()) if Path(out).is_file() else {}
    records = open_records([tub])
    for checkpoint in checkpoints:
        if checkpoint in scores:
            continue
        try:
            model, card = load_predictor(checkpoint)
        except FileNotFoundError as error:
            print(f"{checkpoint}: not scored ({error})", flush=True)
            continue
        mirror = os.environ.get("MIRROR")
        override_mirror_average(model, None if mirror is None else mirror == "on", checkpoint)
        parts = split_records(records.records, card_split(card), seed=0)
        got = {}
        for name, part in (("val", parts.val), ("test", parts.test)):
            data = DrivingDataset(part, model.spec.preprocessing, ["user/angle"], None,
                                  progress=False, report=records.report)  # fmt: skip
            got[name] = (
                predict(model, data.images)[:, model.output_index("user/angle")],
                data.targets[:, 0].double().numpy(),
            )
        (pv, tv), (pt, tt) = got["val"], got["test"]
        affine = LinearRegression().fit(pv[:, None], tv)
        row = {
            "val_r": float(pearsonr(pv, tv)[0]),
            "val_r2": float(r2_score(tv, pv)),
            "test_r": float(pearsonr(pt, tt)[0]),
            "test_r2": float(r2_score(tt, pt)),
            "test_cal_r2": float(r2_score(tt, affine.predict(pt[:, None]))),
            "n_val": len(pv),
            "n_test": len(pt),
        }
        scores[checkpoint] = row
        print(checkpoint, " ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}"
                                   for k, v in row.items()), flush=True)  # fmt: skip
    atomic_write_json(out, scores)


if __name__ == "__main__":
    np.seterr(all="ignore")
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
