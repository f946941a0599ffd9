"""The lens (barrel distortion) fitted by analysis by synthesis: how much lines above the image
centre bow into a dome (scene_measures.dome) is measured on the real frames and on sim renders
of the fitted world through a path of candidate lenses: a narrow pinhole, widening to the prior
field of view, barrel from pinhole to equidistant, then wider (WIDER degrees more); the lens
whose renders bow as much as the real frames is interpolated along the path."""

from __future__ import annotations

import copy

import cv2
import numpy as np

from sim2real.common.config import validate_config
from sim2real.envs.randomization import RandomizationSpec
from sim2real.experiments.scene_measures import dome

CANDIDATES = (-1.0, 0.0, 0.5, 1.0, 2.0)  # path positions (lens_at)
NARROWER = 60.0  # degrees of field of view taken off at path position -1 (a pinhole)
WIDER = 30.0  # degrees of field of view added at path position 2
LENS_FRAMES = 16  # sim frames per candidate
REAL_FRAMES = 300  # real frames measured at most


def render(spec: dict, strength: float, n: int, seed: int, size: tuple[int, int]) -> np.ndarray:
    """(n, H, W, 3) uint8 RGB preview frames of the spec (a dict) at `strength`."""
    from sim2real.envs.preview import preview_frames

    checked = validate_config(RandomizationSpec, spec, "fitted spec")
    frames, _, _ = preview_frames(seed, n, strength=strength, randomization=checked,
                                  image_size=size)  # fmt: skip
    return np.stack(frames)


def lens_at(position: float, hfov: float) -> tuple[float, float]:
    """(hfov deg, distortion) at `position` on the candidate path: from -1 to 0 a pinhole
    narrowing by NARROWER degrees from the prior `hfov` at 0, distortion = position up to 1 at
    the prior `hfov`, then the field widens by WIDER degrees up to position 2."""
    if position < 0:
        return hfov + NARROWER * max(position, -1.0), 0.0
    return hfov + WIDER * float(np.clip(position - 1.0, 0.0, 1.0)), float(min(position, 1.0))


def with_lens(spec: dict, hfov: float, distortion: float) -> dict:
    """A copy of the spec whose nominal lens is (hfov, distortion), ranges widened to hold it."""
    trial = copy.deepcopy(spec)
    for name, value in (("hfov", hfov), ("distortion", distortion)):
        d = trial["camera"][name]
        d["nominal"] = float(value)
        d["low"], d["high"] = min(d["low"], value), max(d["high"], value)
    return trial


def fit_lens(frames: np.ndarray, spec: dict, seed: int) -> tuple[float, float, str]:
    """(hfov deg, distortion, note): the lens on the candidate path whose sim renders of `spec`
    at strength 0.3 bow as much as the real (N, H, W, 3) frames."""
    h, w = frames.shape[1:3]
    prior = spec["camera"]["hfov"]["nominal"]
    pick = frames[np.linspace(0, len(frames) - 1, min(len(frames), REAL_FRAMES)).astype(int)]
    real = dome(pick)
    if not np.isfinite(real):
        k = spec["camera"]["distortion"]["nominal"]
        return prior, k, "prior kept: too few near-horizontal edges above the centre"
    # the same seed for every candidate: only the lens differs between the renders
    sims = [dome(render(with_lens(spec, *lens_at(c, prior)), 0.3, LENS_FRAMES, seed + 7, (h, w)))
            for c in CANDIDATES]  # fmt: skip
    sims = np.maximum.accumulate(np.nan_to_num(sims, nan=-np.inf))
    hfov, k = lens_at(float(np.interp(real, sims, CANDIDATES)), prior)
    table = ", ".join(
        f"{lens_at(c, prior)[0]:g} deg/{lens_at(c, prior)[1]:g}: {d:.3f}"
        for c, d in zip(CANDIDATES, sims, strict=True)
    )
    edge = " (at the end of the path)" if real <= sims[0] or real >= sims[-1] else ""
    note = f"dome {real:.3f} of the real frames vs sim renders (hfov/distortion: {table}){edge}"
    return round(hfov, 1), round(k, 3), note


MIN_VERTICALS = 40  # near-vertical segments needed to read the focal length
MAX_BARREL = 0.3  # above this distortion, bent verticals bias the reading: the prior is kept


def vertical_nadir(frames: np.ndarray) -> tuple[float, int]:
    """Rows (px) below the image centre where near-vertical edges (board seams, legs, door
    frames: vertical in the world) converge, the median over their segments away from the
    centre column, and the number of segments; (nan, n) with fewer than MIN_VERTICALS."""
    h, w = frames.shape[1:3]
    cx, cy = w / 2 - 0.5, h / 2 - 0.5
    rows = []
    for frame in frames:
        gray = cv2.GaussianBlur(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), (3, 3), 0)
        lines = cv2.HoughLinesP(cv2.Canny(gray, 40, 120), 1, np.pi / 180, 14,
                                minLineLength=max(8, h // 12), maxLineGap=2)  # fmt: skip
        if lines is None:
            continue
        x1, y1, x2, y2 = lines.reshape(-1, 4).astype(np.float64).T
        dx, dy = x2 - x1, y2 - y1
        lean = np.degrees(np.arctan2(np.abs(dx), np.abs(dy)))
        ok = (lean < 20) & (np.abs((x1 + x2) / 2 - cx) > w / 8) & (dx != 0)
        y = y1[ok] + (cx - x1[ok]) * dy[ok] / dx[ok]
        rows.extend((y[y > cy + 5] - cy).tolist())
    if len(rows) < MIN_VERTICALS:
        return float("nan"), len(rows)
    return float(np.median(rows)), len(rows)


def hfov_from_verticals(
    frames: np.ndarray, horizon: float, distortion: float
) -> tuple[float | None, str]:
    """The horizontal field of view (deg) of a near-pinhole lens from the horizon row and the
    nadir of vertical edges (their product of distances to the centre is the focal length
    squared), or None with the reason when the lens bends too much or too few verticals."""
    h, w = frames.shape[1:3]
    if distortion > MAX_BARREL:
        return None, f"prior kept: distortion {distortion:.2f} bends the verticals"
    nadir, count = vertical_nadir(frames)
    above = h / 2 - 0.5 - horizon
    if not np.isfinite(nadir) or above <= 1:
        return None, f"prior kept: {count} vertical segments (need {MIN_VERTICALS})"
    focal = float(np.sqrt(above * nadir))
    half = np.arctan((w / 2) / focal)  # a pinhole; the small barrel is ignored here
    note = (
        f"verticals meet {nadir:.0f} px below the centre, the horizon {above:.0f} px above "
        f"({count} segments): focal {focal:.0f} px"
    )
    return float(np.degrees(2 * half)), note
