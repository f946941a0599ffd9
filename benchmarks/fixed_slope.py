"""A copy of a checkpoint whose steering is scaled to a fixed slope on fixed frames.

    python benchmarks/fixed_slope.py CHECKPOINT CALIBRATION_TUB SLOPE OUT

Networks compared in closed loop must steer equally strongly, or the lap rates compare their
steering gains (docs/closed-loop.md, "DAgger at the network's own speed"). This measures the
steering's slope on its label over every frame of CALIBRATION_TUB and scales the steering row
so that the slope there is SLOPE (`calibrate_output(target=SLOPE)`, the fixed calibration
`sim2real dagger` uses with `calibration_data` and `steering_slope`). pilotnet-recipe at steering
gain 2.00 has slope 1.65 on /work/data/dagger2/calib5k (a 5,000-frame expert recording of the
two-lane worlds, seed 32).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from sim2real.agents.calibration import calibrate_output
from sim2real.agents.checkpoint import load_checkpoint, save_checkpoint
from sim2real.agents.pretrain import dataset_tensors
from sim2real.agents.shipped import checkpoint_reference
from sim2real.transfer.datasets import DrivingDataset, open_records

STEERING = "user/angle"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="folder or shipped name")
    parser.add_argument("calibration", help="a sim tub whose frames set the slope")
    parser.add_argument("slope", type=float)
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(1)
    model, card = load_checkpoint(args.checkpoint)
    records = open_records([args.calibration]).records
    frames = DrivingDataset(records, model.spec.preprocessing, model.spec.outputs, progress=False)
    images, targets = dataset_tensors(frames)
    result = calibrate_output(model, images, targets, STEERING, target=args.slope)
    before = (card.metrics.get("steering_calibration") or {}).get("gain", 1.0)
    card.metrics["steering_calibration"] = {**result, "gain": before * result["gain"]}
    card.history = [
        *card.history,
        {
            "step": "fixed steering slope",
            "from": checkpoint_reference(args.checkpoint),
            "calibration_data": str(Path(args.calibration).resolve()),
            **result,
        },
    ]
    save_checkpoint(args.out, model, card)
    print(f"{args.out}: slope {result['slope']:.3f} -> {args.slope:g} (x {result['gain']:.3f})")


if __name__ == "__main__":
    main()
