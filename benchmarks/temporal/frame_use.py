"""How much a frame-stacking network's outputs depend on the earlier frame it is given.

    python benchmarks/temporal/frame_use.py SIM_TUB CHECKPOINT [CHECKPOINT ...]

Over the last 600 frames of SIM_TUB: the mean |change| of the (calibrated) steering and of
the throttle output when the true earlier frame (``model.temporal.previous_frame_gap`` back)
is replaced by the current frame itself (no motion, as at a run's first frame), beside each
output's std over the frames: 0 means the network ignores the earlier frame. Then what the
steering change follows: its Pearson r with the steering the car applied at the earlier frame
(``sim/applied_steering``: the motion between the frames shows it, as the previous-action input
did) and with what the still prediction missed (label - still prediction).
"""

from __future__ import annotations

import sys

import numpy as np
import torch

from sim2real.agents.checkpoint import load_checkpoint
from sim2real.agents.model import STEERING, THROTTLE, predict
from sim2real.agents.temporal import FramePairs
from sim2real.transfer.datasets import DrivingDataset, open_records
from sim2real.transfer.temporal import previous_frames


def main() -> None:
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    torch.set_num_threads(1)
    records = open_records([sys.argv[1]]).records[-600:]
    for checkpoint in sys.argv[2:]:
        model, _ = load_checkpoint(checkpoint)
        gap = model.spec.temporal.previous_frame_gap
        if not gap:
            raise SystemExit(f"{checkpoint}: not a frame-stacking network")
        data = DrivingDataset(records, model.spec.preprocessing, [STEERING], progress=False)
        index, _ = previous_frames(data.records, gap)
        moving = predict(model, FramePairs(data.images, index))
        still = predict(model, FramePairs(data.images, torch.arange(len(data))))
        parts = []
        for name in (STEERING, THROTTLE):
            col = model.output_index(name)
            change = abs(moving[:, col] - still[:, col]).mean()
            parts.append(
                f"{name} mean |change| {change:.3f} (output std {moving[:, col].std():.3f})"
            )
        print(f"{checkpoint}: " + "; ".join(parts))
        col = model.output_index(STEERING)
        change = moving[:, col] - still[:, col]
        moved = index.numpy() != np.arange(len(data))
        applied = np.array([data.records[j].labels["sim/applied_steering"] for j in index.numpy()])
        missed = data.targets[:, 0].double().numpy() - still[:, col]
        r_applied = np.corrcoef(change[moved], applied[moved])[0, 1]
        r_missed = np.corrcoef(change[moved], missed[moved])[0, 1]
        print(
            f"  steering change vs the earlier frame's applied steering r {r_applied:.3f}; "
            f"vs what the still prediction missed r {r_missed:.3f} ({moved.sum()} frames)"
        )


if __name__ == "__main__":
    main()
