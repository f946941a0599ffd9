"""The lens (barrel distortion) fitted by analysis by synthesis: how much lines above the image
centre bow into a dome (scene_measures.dome) is measured on the real frames and on sim renders
of the fitted world through a path of candidate lenses, from pinhole to equidistant at the
prior field of view, then wider (WIDER degrees more) at full barrel; the lens whose renders bow
as much as the real frames is interpolated along the path."""

from __future__ import annotations

import copy

import numpy as np

from sim2real.common.config import validate_config
from sim2real.envs.randomization import RandomizationSpec
from sim2real.experiments.scene_measures import dome

CANDIDATES = (0.0, 0.5, 1.0, 2.0)  # path position: distortion up to 1, then wider fields
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
    """(hfov deg, distortion) at `position` on the candidate path: distortion = position up to
    1 at the prior `hfov`, then the field widens by WIDER degrees up to position 2."""
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
