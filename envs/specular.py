"""Specular highlights of ceiling lights on a glossy floor, moving with the camera.

A light at (x, y, z) seen in a mirror floor appears where the ray to its mirror image
(x, y, -z) crosses the floor, so each frame each light's reflection point is projected through
the lens and added as a Gaussian blob stretched toward the viewer (a glossy, not mirror-flat,
floor); only the blob's own pixels are touched, so a frame costs microseconds per light.
Boxes and boards are drawn after the highlights, so they hide them.
"""

from __future__ import annotations

import cv2
import numpy as np

LIGHT_RADIUS = 0.15  # m, radius of a ceiling light


class Highlights:
    """`lights` (K, 3) m world positions of ceiling lights; `gloss` in [0, 1] the highlight's
    peak brightness (1 = +255 grey levels); floor bounds (xmin, ymin, xmax, ymax) m."""

    def __init__(self, lights: np.ndarray, gloss: float, bounds: tuple[float, ...]) -> None:
        self.lights = np.asarray(lights, np.float64).reshape(-1, 3)
        self.gloss = float(gloss)
        self.bounds = bounds

    @property
    def active(self) -> bool:
        return self.gloss > 0.01 and len(self.lights) > 0

    def draw(self, image: np.ndarray, position: np.ndarray, rotation: np.ndarray, lens) -> None:
        """Add the highlights seen from camera `position` (3,) m, camera->world `rotation`
        (3, 3) through `lens` to `image` (H, W, 3) uint8 in place."""
        if not self.active:
            return
        c = np.asarray(position, np.float64)
        mirror = self.lights * np.array([1.0, 1.0, -1.0])
        t = c[2] / (c[2] + self.lights[:, 2])
        floor = c + (mirror - c) * t[:, None]  # (K, 3) reflection points, z = 0
        xmin, ymin, xmax, ymax = self.bounds
        inside = (floor[:, 0] > xmin) & (floor[:, 0] < xmax)
        inside &= (floor[:, 1] > ymin) & (floor[:, 1] < ymax)
        rel = (floor - c) @ rotation  # camera frame
        dist = np.linalg.norm(rel, axis=1)
        ahead = rel[:, 2] > dist * np.cos(min(lens.max_theta, 1.5))
        keep = inside & ahead
        if not keep.any():
            return
        u, v = lens.project(rel[keep])
        path = np.linalg.norm(mirror[keep] - c, axis=1)  # m from the camera to the mirror image
        radius = lens.focal * LIGHT_RADIUS / path  # px
        grazing = c[2] / np.maximum(dist[keep], 1e-6)  # sine of the ray's angle to the floor
        stretch = np.clip(0.6 / np.maximum(grazing, 1e-3), 1.0, 4.0)
        h, w = image.shape[:2]
        peak = 255.0 * min(1.0, self.gloss)
        for x, y, r, s in zip(u, v, radius, stretch, strict=True):
            sx, sy = max(0.7, float(r)), max(0.7, float(r * s))  # Gaussian sigmas, px
            x0, x1 = max(0, int(x - 3 * sx)), min(w, int(x + 3 * sx) + 2)
            y0, y1 = max(0, int(y - 3 * sy)), min(h, int(y + 3 * sy) + 2)
            if x1 <= x0 or y1 <= y0:
                continue
            gx = np.exp(-0.5 * ((np.arange(x0, x1) + 0.5 - x) / sx) ** 2)
            gy = np.exp(-0.5 * ((np.arange(y0, y1) + 0.5 - y) / sy) ** 2)
            blob = (peak * np.outer(gy, gx)).astype(np.uint8)
            roi = image[y0:y1, x0:x1]
            cv2.add(roi, cv2.merge([blob, blob, blob]), dst=roi)
