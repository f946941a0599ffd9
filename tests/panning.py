"""Synthetic camera pans for the motion tests: frames whose content moves sideways by known
amounts, as the car's yaw moves a real camera's view."""

from __future__ import annotations

import cv2
import numpy as np


def texture(height: int, width: int, seed: int = 0) -> np.ndarray:
    """(height, width) float32: a smooth random grey texture to pan across."""
    rng = np.random.default_rng(seed)
    noise = rng.uniform(0, 255, (height, width)).astype(np.float32)
    return cv2.GaussianBlur(noise, (0, 0), 2.0)


def frames_panning(
    height: int, width: int, shifts: np.ndarray, seed: int = 0, travel: int | None = None
) -> list[np.ndarray]:
    """len(shifts) + 1 (height, width, 3) uint8 frames: frame i+1's content sits `shifts[i]`
    pixels right of frame i's (sub-pixel shifts interpolated). `travel`: how far (pixels) the
    view may go either way (default: the shifts' total), so pans with equal `travel` and seed
    share their texture and their first frame."""
    travel = int(np.abs(shifts).sum()) if travel is None else travel
    canvas = texture(height, width + 2 * travel + 40, seed)
    positions = travel + 20 - np.r_[0, np.cumsum(shifts)]
    frames = []
    for x in positions:
        window = cv2.getRectSubPix(canvas, (width, height), (float(x) + width / 2, height / 2))
        grey = np.clip(window, 0, 255).astype(np.uint8)
        frames.append(np.repeat(grey[..., None], 3, axis=2))
    return frames
