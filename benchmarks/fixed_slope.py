"""A copy of a checkpoint whose steering is scaled to a fixed slope on fixed frames.

    python benchmarks/fixed_slope.py CHECKPOINT CALIBRATION_TUB SLOPE OUT

Networks compared in closed loop must steer equally strongly, or the lap rates compare their
steering gains (docs/closed-loop.md, "DAgger at the network's own speed"). This measures the
steering's slope on its label over every frame of CALIBRATION_TUB and scales the steering row
so that the slope there is SLOPE (`calibrate_output(target=SLOPE, exact=True)`: the fixed
calibration `sim2real dagger` uses with `calibration_data` and `steering_slope`, but unclipped,
so that a network steering more strongly than SLOPE is weakened to it too). pilotnet-recipe at
steering gain 2.00 has slope 1.65 on /work/data/dagger2/calib5k (a 5,000-frame expert recording
of the two-lane worlds, seed 32).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from sim2real.agents.calibration import MAX_GAIN, calibrate_output
from sim2real.agents.checkpoint import load_checkpoint, save_checkpoint
from sim2real.agents.pretrain import dataset_tensors
from sim2real.agents.shipped import checkpoint_reference
from sim2real.transfer.datasets import DrivingDataset, open_records

STEERING = "user/angle"


def fixed_slope(checkpoint: str, calibration: str, slope: float, out: Path) -> dict:
    """Write `checkpoint` scaled to steering slope `slope` on `calibration`'s frames to `out`.
    Returns `calibrate_output`'s record (gain: this step's factor) with total_gain, the
    card's new steering_calibration.gain (the total over the raw network, as
    benchmarks/steering_gain.py reads it). ValueError / KeyError / FileNotFoundError (one
    line) before anything is written."""
    if not 0.0 < slope <= MAX_GAIN:
        raise ValueError(f"SLOPE must be in (0, {MAX_GAIN}], got {slope}")
    model, card = load_checkpoint(checkpoint)
    records = open_records([calibration]).records
    frames = DrivingDataset(records, model.spec.preprocessing, model.spec.outputs, progress=False)
    images, targets = dataset_tensors(frames)
    result = calibrate_output(model, images, targets, STEERING, target=slope, exact=True)
    before = (card.metrics.get("steering_calibration") or {}).get("gain", 1.0)
    source = str(Path(calibration).resolve())
    total = before * result["gain"]
    card.metrics["steering_calibration"] = {**result, "gain": total, "frames_from": source}
    card.history = [
        *card.history,
        {
            "step": "fixed steering slope",
            "from": checkpoint_reference(checkpoint),
            "calibration_data": source,
            **result,
        },
    ]
    save_checkpoint(out, model, card)
    return {**result, "total_gain": total}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="folder or shipped name")
    parser.add_argument("calibration", help="a sim tub whose frames set the slope")
    parser.add_argument("slope", type=float)
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(1)
    try:
        result = fixed_slope(args.checkpoint, args.calibration, args.slope, args.out)
    except (ValueError, KeyError, FileNotFoundError) as exc:
        raise SystemExit(f"error: {exc.args[0] if exc.args else exc}") from None
    print(
        f"{args.out}: slope {result['slope']:.3f} -> {args.slope:g} (x {result['gain']:.3f}, "
        f"total gain {result['total_gain']:.3f})"
    )


if __name__ == "__main__":
    main()
