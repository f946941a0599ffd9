"""A copy of a checkpoint whose steering row is scaled to a given total gain over the
uncalibrated network (the card's `steering_calibration.gain` is the gain it has now).

    python benchmarks/steering_gain.py pilotnet-recipe 2.0 OUT

The control of docs/closed-loop.md's DAgger section: is a DAgger iteration's lap rate its
weights, or the steering gain its recalibration happened to measure? The copy's card records
the scaling in its history and its new total gain under metrics.steering_calibration.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from sim2real.agents.calibration import scale_output
from sim2real.agents.checkpoint import load_checkpoint, save_checkpoint
from sim2real.agents.shipped import checkpoint_reference

STEERING = "user/angle"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="folder or shipped name")
    parser.add_argument("gain", type=float, help="total steering gain over the uncalibrated net")
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    if args.gain <= 0:
        raise SystemExit(f"error: gain must be positive, got {args.gain}")
    model, card = load_checkpoint(args.checkpoint)
    calibration = dict(card.metrics.get("steering_calibration") or {"gain": 1.0})
    factor = args.gain / calibration["gain"]
    scale_output(model, STEERING, factor)
    card.metrics["steering_calibration"] = {**calibration, "gain": args.gain}
    card.history = [
        *card.history,
        {
            "step": "steering gain",
            "from": checkpoint_reference(args.checkpoint),
            "scaled_by": factor,
            "total_gain": args.gain,
        },
    ]
    save_checkpoint(args.out, model, card)
    print(f"{args.out}: steering x {factor:.3f} (total gain {args.gain:g})")


if __name__ == "__main__":
    main()
