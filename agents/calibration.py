"""Steering calibration: undo the attenuation of a regression network's steering output.

A network that regresses steering from single frames cannot see everything the label depends
on, so its predictions are shrunk toward the mean: regressed on the label, they rise with slope
b < 1 (0.76-0.79 for the closed-loop PilotNet on an unseen sim recording). In closed loop that
is under-steering, and the car drifts out of bends. `calibrate_output` measures b on held-out
frames and scales the output by 1 / b in the last linear layer itself, so every consumer of the
checkpoint (closed-loop evaluation, ONNX export, the DonkeyCar pilot, fine-tuning) drives with
the corrected gain.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from scipy import stats
from torch import nn

from sim2real.agents.model import DrivingNet, predict

MAX_GAIN = 2.0
"""largest correction applied (a slope under 0.5 means the output is mostly noise)"""


def output_layer(model: DrivingNet, purpose: str) -> nn.Linear:
    """The network's last linear layer, whose rows are its outputs, for rewriting an output
    in place (`purpose` names the rewrite in the error); ValueError unless the output
    activation is identity (under tanh a rewritten pre-activation is not the rewritten output)
    and the head ends in a Linear layer."""
    if model.spec.output_activation != "identity":
        raise ValueError(
            f"{purpose} needs output_activation 'identity', "
            f"this network has {model.spec.output_activation!r}"
        )
    last = model.head[-1]
    if not isinstance(last, nn.Linear):
        raise ValueError(f"the head ends in {type(last).__name__}, not a Linear layer")
    return last


def scale_output(model: DrivingNet, name: str, gain: float) -> None:
    """Multiply the network's output `name` by `gain`, in its last linear layer (identity
    output activation only: `output_layer`)."""
    last = output_layer(model, f"scaling output {name!r}")
    i = model.output_index(name)
    with torch.no_grad():
        last.weight[i] *= gain
        last.bias[i] *= gain


def attenuation(prediction: np.ndarray, label: np.ndarray) -> dict[str, float]:
    """Least-squares line prediction = intercept + slope * label over frames with a label:
    slope (1 = no attenuation), intercept, r and the frame count."""
    keep = ~np.isnan(label)
    if keep.sum() < 10 or np.ptp(label[keep]) == 0:
        raise ValueError(
            f"calibration needs at least 10 labelled frames with varying labels, got {keep.sum()}"
        )
    fit = stats.linregress(label[keep], prediction[keep])
    return {
        "slope": float(fit.slope),
        "intercept": float(fit.intercept),
        "r": float(fit.rvalue),
        "frames": int(keep.sum()),
    }


def calibrate_output(
    model: DrivingNet,
    images: torch.Tensor,
    targets: torch.Tensor,
    name: str,
    context: torch.Tensor | None = None,
    *,
    target: float = 1.0,
    exact: bool = False,
) -> dict[str, Any]:
    """Measure output `name`'s attenuation on held-out frames (uint8 (N, 3, H, W), targets
    (N, L) in the model's output order) and scale it by target / slope: on these frames the
    output then rises with slope `target` on its label (1: no attenuation; above 1: a
    deliberately stronger steering, the same for every network calibrated on the same frames).
    The gain is clipped to [min(1, target), target * MAX_GAIN]: a network that already steers
    more strongly than `target` is not weakened (below 1: weakened to `target` at most), and a
    slope under 1 / MAX_GAIN (mostly noise) is corrected by MAX_GAIN only. ``exact=True``
    scales by target / slope unclipped, so that networks compared at one slope have it
    (benchmarks/fixed_slope.py): a stronger one is weakened, a weak one boosted without limit.

    Returns what the card records: output, slope, intercept, r, frames, gain, and the RMSE on
    those frames before and after (offline the uncorrected output has the lower RMSE: the gain
    is for driving, not for the frame-wise error).
    """
    if not 0.0 < target <= MAX_GAIN:
        raise ValueError(f"calibration target slope must be in (0, {MAX_GAIN}], got {target}")
    i = model.output_index(name)
    prediction = predict(model, images, context=context)[:, i]
    label = targets[:, i].double().numpy()
    measured = attenuation(prediction, label)
    if measured["slope"] <= 0:
        raise ValueError(
            f"output {name!r} does not rise with its label on {measured['frames']} held-out "
            f"frames (slope {measured['slope']:.3f}): nothing to calibrate"
        )
    gain = target / measured["slope"]
    if not exact:
        gain = float(np.clip(gain, min(1.0, target), target * MAX_GAIN))
    scale_output(model, name, gain)
    keep = ~np.isnan(label)
    error = prediction[keep] - label[keep]
    return {
        "output": name,
        **measured,
        "gain": gain,
        "target_slope": target,
        "rmse_before": float(np.sqrt(np.mean(error**2))),
        "rmse_after": float(np.sqrt(np.mean((gain * prediction[keep] - label[keep]) ** 2))),
    }


def fit_affine(
    prediction: np.ndarray, label: np.ndarray, *, offset: bool = True
) -> tuple[float, float]:
    """Least-squares (gain, offset) with label ~ gain * prediction + offset over frames with a
    label (NaN: none); ``offset=False`` fits the gain alone (a line through 0, so a driver's
    bias is not learned). Too few frames or a constant prediction: (1, 0), no change."""
    keep = ~(np.isnan(label) | np.isnan(prediction))
    p, y = prediction[keep].astype(np.float64), label[keep].astype(np.float64)
    if p.size < 2 or np.ptp(p) == 0:
        return 1.0, 0.0
    if offset:
        gain, intercept = np.polyfit(p, y, 1)
        return float(gain), float(intercept)
    return float(np.dot(p, y) / np.dot(p, p)), 0.0


def affine_output(model: DrivingNet, name: str, gain: float, offset: float = 0.0) -> None:
    """Replace output `name` by gain * output + offset, in the last linear layer itself, so
    export, ONNX and the pilot need nothing new (identity output activation only)."""
    scale_output(model, name, gain)
    with torch.no_grad():
        output_layer(model, f"offsetting output {name!r}").bias[model.output_index(name)] += offset
