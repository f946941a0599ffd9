"""The horizon and the camera's height against the boards' height, read off the boards of a
walled track: a board of height B seen by a camera at height C has its foot at row
b = v + f C / d and its top at row t = v - f (B - C) / d (d its distance, v the horizon row),
so over all columns and distances t = v (1 + rho) - rho b, with rho = (B - C) / C. A line fitted
to the (foot, top) pairs gives v = intercept / (1 + rho) and B / C = 1 + rho, whether the
camera sits below the boards' tops (rho > 0) or above them (rho < 0).

Frames are (H, W, 3) uint8 RGB.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

BOARD_TOL = 30.0  # Lab distance of a board pixel to the boards' median colour
MIN_PAIRS = 200


@dataclass
class BandFit:
    """The horizon row (px), boards' height over the camera's, and the pairs the fit used."""

    horizon: float
    board_ratio: float
    pairs: int


FOOT_EDGE = 30.0  # Lab step (over 4 rows of a 5x5-blurred frame) at the foot of a board


def smooth_lab(frame: np.ndarray) -> np.ndarray:
    """(H, W, 3) float32 Lab of an RGB frame, box-blurred 5x5 (floor texture averaged out)."""
    return cv2.blur(cv2.cvtColor(frame, cv2.COLOR_RGB2LAB).astype(np.float32), (5, 5))


def column_feet(lab: np.ndarray) -> np.ndarray:
    """Per column (W,), the row just below the lowest strong colour step (the foot of what
    stands on the floor); -1 where the column has none."""
    h, w = lab.shape[:2]
    step = np.linalg.norm(lab[:-4] - lab[4:], axis=-1) > FOOT_EDGE  # (H-4, W)
    step[h - 8 :] = False  # the blur's border
    rows = np.where(step, np.arange(h - 4)[:, None], -1).max(axis=0)
    return np.where(rows >= 0, rows + 2, -1)  # the step's middle


def band_pairs(lab: np.ndarray, feet: np.ndarray, board: np.ndarray) -> np.ndarray:
    """(M, 2) (foot, top) rows of the board band standing on the floor in one (smoothed Lab)
    frame whose `column_feet` are `feet`: the pixels above each column's foot within
    BOARD_TOL of the `board` colour."""
    h, w = lab.shape[:2]
    near = np.linalg.norm(lab - board[None, None], axis=-1) < BOARD_TOL
    run = np.zeros((h + 1, w), np.int32)  # board pixels in a row ending at (r, c), going down
    for r in range(h):
        run[r + 1] = (run[r] + 1) * near[r]
    cols = np.flatnonzero((feet > 6) & (feet < h - 2))
    cols = cols[(cols > 4) & (cols < w - 5)]
    start = feet[cols] - 4  # the band's lowest row, clear of the blurred step
    length = run[start + 1, cols]  # board pixels in a row ending there
    top = start - length + 1
    keep = (length >= 2) & (top > 0)
    return np.stack([feet[cols][keep], top[keep]], axis=1)


def board_colour(labs: list[np.ndarray], feet_of: list[np.ndarray]) -> np.ndarray | None:
    """Median (smoothed) Lab colour 5-8 rows above the foot in every column (clear of the
    blurred step) of the frames `labs`, whose `column_feet` are `feet_of`."""
    px = []
    for lab, feet in zip(labs, feet_of, strict=True):
        cols = np.flatnonzero(feet > 9)
        for k in (5, 6, 7, 8):
            px.append(lab[feet[cols] - k, cols])
    px = np.concatenate(px) if px else np.zeros((0, 3))
    return np.median(px, axis=0) if len(px) >= MIN_PAIRS else None


def fit_band(frames: np.ndarray) -> BandFit | None:
    """The horizon and board-to-camera height ratio from the board bands of (N, H, W, 3) RGB
    frames; None when too few boards stand on the floor or the fit is degenerate."""
    labs = [smooth_lab(f) for f in frames]
    feet_of = [column_feet(lab) for lab in labs]
    board = board_colour(labs, feet_of)
    if board is None:
        return None
    pairs = np.concatenate(
        [band_pairs(lab, feet, board) for lab, feet in zip(labs, feet_of, strict=True)]
    )
    if len(pairs) < MIN_PAIRS:
        return None
    feet, tops = pairs[:, 0], pairs[:, 1]
    bins = np.unique(feet)
    counts = np.array([(feet == b).sum() for b in bins])
    ok = counts >= 10
    if ok.sum() < 5 or np.ptp(bins[ok]) < 10:
        return None
    # the band's full extent: its upper quartile of tops (seams and shading end it early)
    top = np.array([np.percentile(tops[feet == b], 25) for b in bins[ok]])
    slope, intercept = np.polyfit(bins[ok].astype(float), top, 1, w=np.sqrt(counts[ok]))
    rho = -slope
    if 1 + rho < 0.05:
        return None
    return BandFit(float(intercept / (1 + rho)), float(1 + rho), int(len(pairs)))
