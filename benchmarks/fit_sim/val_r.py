"""Pearson r and R² of checkpoints' steering (one network or an ensemble, as saved) on the
validation block (the 15% before the test block, cut as `evaluate --split test` cuts it) of
both real recordings, for choosing between arms without touching the test block.

usage: python benchmarks/fit_sim/val_r.py OUT.json REAL_DIR CHECKPOINT...
"""

import sys
from pathlib import Path

from scipy.stats import pearsonr
from sklearn.metrics import r2_score

from sim2real.agents.ensemble import load_predictor
from sim2real.agents.model import predict
from sim2real.common.io import atomic_write_json
from sim2real.transfer.datasets import DrivingDataset, open_records
from sim2real.transfer.evaluate import card_split
from sim2real.transfer.splits import split_records

TUBS = ("usi-track-a", "carpet-walls")


def main(out: str, real: str, checkpoints: list[str]) -> None:
    scores = {}
    for checkpoint in checkpoints:
        model, card = load_predictor(checkpoint)  # one network or an ensemble, as saved
        for tub in TUBS:
            records = open_records([str(Path(real) / tub)])
            parts = split_records(records.records, card_split(card), seed=0)
            data = DrivingDataset(parts.val, model.spec.preprocessing, ["user/angle"], None,
                                  progress=False, report=records.report)  # fmt: skip
            steering = predict(model, data.images)[:, model.output_index("user/angle")]
            truth = data.targets[:, 0].double().numpy()
            r = float(pearsonr(steering, truth)[0])
            r2 = float(r2_score(truth, steering))
            scores[f"{checkpoint}|{tub}"] = {"r": r, "r2": r2, "n": len(steering)}
            print(checkpoint, tub, "validation r", round(r, 3), "R2", round(r2, 3),
                  "n", len(steering), flush=True)  # fmt: skip
    atomic_write_json(out, scores)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
