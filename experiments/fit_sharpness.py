"""The sim's sharpness matched to the real frames': one signed knob, blur or sharpening.

The sharpness statistic (scene_measures.image_stats: Laplacian variance over luma variance) of
sim renders at strength 0 is read along a signed path: p < 0 is a Gaussian blur of sigma -p px
(`image.blur`), p >= 0 the camera's unsharp mask of amount p (`image.sharpen`). Sharpness grows
monotonically along it, so four renders (p = 0, a first guess, two secant steps) find the p whose
renders read the real frames' sharpness. A blur alone could never reach the real frames: the
renderer magnifies 2 cm floor texels over several px near the car, and on carpet-walls its
renders read 0.10-0.14 with blur, motion blur and JPEG all off, against 0.39 for the real camera.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np

from sim2real.envs.randomization import ImageRanges
from sim2real.experiments.fit_lens import render
from sim2real.experiments.scene_measures import image_stats

SIM_FRAMES = 16  # renders per point of the path
BLUR_MAX = 3.0  # px: the most blur the path tries (the spec allows up to 5)
SHARPEN_LIMITS = ImageRanges.LIMITS["sharpen"]
STEPS = 2  # secant steps after the first guess


@dataclass
class SharpnessFit:
    """`position` on the signed path (unclipped: may lie beyond the sharpen limit), the blur
    sigma px and sharpen amount it gives (clipped), the real target and the sim's sharpness at
    each tried position (position -> sharpness)."""

    position: float
    blur: float
    sharpen: float
    target: float
    tried: dict[float, float]

    @property
    def achieved(self) -> float:
        """The sim's sharpness at the position applied (clipped to the path's ends)."""
        return self.tried.get(_clip(self.position), float("nan"))

    @property
    def note(self) -> str:
        return (
            f"sharpness {self.target:.3f} of the real frames; sim renders at strength 0 read "
            f"{self.tried[0.0]:.3f} with neither blur nor sharpening, {self.achieved:.3f} with this"
        )


def _clip(position: float) -> float:
    return float(np.clip(position, -BLUR_MAX, SHARPEN_LIMITS[1]))


def with_softness(spec: dict, position: float) -> dict:
    """A copy of the spec (a dict) whose nominal blur and sharpening are path `position`'s
    (p < 0: blur -p px, else sharpen p), ranges widened to hold them."""
    trial = copy.deepcopy(spec)
    p = _clip(position)
    blur, sharpen = max(0.0, -p), max(0.0, p)
    image = trial["image"]
    image.setdefault("sharpen", {"low": 0.0, "high": 0.0, "nominal": 0.0, "unit": "1"})
    for name, value in (("blur", blur), ("sharpen", sharpen)):
        entry = image[name]
        entry["nominal"] = value
        entry["low"], entry["high"] = min(entry["low"], value), max(entry["high"], value)
    return trial


def fit_sharpness(
    spec: dict, target: float, size: tuple[int, int], floor_top: int, seed: int
) -> SharpnessFit:
    """The path position whose strength-0 renders of `spec` (H, W = `size`) read the real
    frames' sharpness `target` (image_stats, floor from row `floor_top`)."""
    if not np.isfinite(target) or target <= 0:
        raise ValueError(f"target sharpness must be a positive number, got {target}")
    tried: dict[float, float] = {}

    def measure(p: float) -> float:
        p = _clip(p)
        if p not in tried:
            sim = render(with_softness(spec, p), 0.0, SIM_FRAMES, seed + 7000, size)
            tried[p] = image_stats(sim, floor_top)["sharpness"]
        return tried[p]

    s0 = measure(0.0)
    ratio = target / max(s0, 1e-6)
    # first guess: an unsharp mask of amount a multiplies fine detail's Laplacian by ~(1 + a),
    # its variance by (1 + a)^2; a blur of sigma s takes ~0.6 px per halving
    position = float(np.sqrt(ratio) - 1.0) if ratio >= 1 else 0.6 * float(np.log2(ratio))
    measure(position)
    for _ in range(STEPS):  # secants in log sharpness, through the pair that brackets the target
        p, q = _pair(tried, target)
        lp, lq = (float(np.log(max(tried[x], 1e-9))) for x in (p, q))
        lt = float(np.log(target))
        if abs(lq - lp) < 1e-9:
            break
        position = p + (q - p) * (lt - lp) / (lq - lp)
        if _clip(position) in tried:
            break
        measure(position)
    # keep the tried point nearest the target, unless the target lies beyond the path's end
    if abs(position - _clip(position)) < 1e-9 or not _beyond(tried, target, position):
        position = min(tried, key=lambda x: abs(np.log(tried[x] / target)))
    p = _clip(position)
    return SharpnessFit(position, max(0.0, -p), max(0.0, p), target, tried)


def _pair(tried: dict[float, float], target: float) -> tuple[float, float]:
    """Two tried positions to interpolate between: the nearest on each side of the target
    when there are both, else the two nearest it."""
    below = [p for p, s in tried.items() if s < target]
    above = [p for p, s in tried.items() if s >= target]
    if below and above:
        return max(below), min(above)
    near = sorted(tried, key=lambda p: abs(np.log(tried[p] / target)))
    return near[0], near[1]


def _beyond(tried: dict[float, float], target: float, position: float) -> bool:
    """Whether the path's end nearest `position` was tried and still falls short of the target."""
    end = _clip(position)
    return end in tried and (tried[end] < target if position > end else tried[end] > target)
