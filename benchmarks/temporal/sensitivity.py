"""How much a temporal network's steering follows the previous steering it is fed.

    python benchmarks/temporal/sensitivity.py SIM_TUB CHECKPOINT [CHECKPOINT ...]

Over the last 600 frames of SIM_TUB, the mean change of the (calibrated) steering output when
the previous steering input goes from -0.5 to +0.5 (previous throttle 0.5), per unit of
input: 0 ignores it, 1 copies it. In closed loop the network's own output is fed back, so a
value k makes its steering a first-order lag with pole k on top of the car's latency.
"""

from __future__ import annotations

import sys

import torch

from sim2real.agents.checkpoint import load_checkpoint
from sim2real.agents.model import STEERING, predict
from sim2real.transfer.datasets import DrivingDataset, open_records


def main() -> None:
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    torch.set_num_threads(1)
    records = open_records([sys.argv[1]]).records[-600:]
    for checkpoint in sys.argv[2:]:
        model, _ = load_checkpoint(checkpoint)
        data = DrivingDataset(records, model.spec.preprocessing, [STEERING], progress=False)
        col = model.output_index(STEERING)
        out = {
            s: predict(model, data.images, context=torch.tensor([[s, 0.5]] * len(data)))[:, col]
            for s in (-0.5, 0.5)
        }
        print(f"{checkpoint}: d steering / d previous steering {(out[0.5] - out[-0.5]).mean():.3f}")


if __name__ == "__main__":
    main()
