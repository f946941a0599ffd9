"""Specular highlights of ceiling lights on a glossy floor, moving with the camera.

A light at (x, y, z) seen in a mirror floor appears where the ray to its mirror image
(x, y, -z) crosses the floor, so each frame each light's reflection point is projected through
the lens and drawn as a soft blob stretched toward the viewer (a glossy, not mirror-flat, floor).
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
        self._layer: np.ndarray | None = None

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
        if self._layer is None or self._layer.shape != (h, w):
            self._layer = np.zeros((h, w), np.uint8)
        layer = self._layer
        layer[:] = 0
        peak = int(round(255 * min(1.0, self.gloss)))
        drawn = False
        for x, y, r, s in zip(u, v, radius, stretch, strict=True):
            if -4 * r * s < x < w + 4 * r * s and -4 * r * s < y < h + 4 * r * s:
                axes = (max(1, int(round(r))), max(1, int(round(r * s))))
                cv2.ellipse(layer, (int(round(x)), int(round(y))), axes, 0, 0, 360, peak, -1)
                drawn = True
        if not drawn:
            return
        blur = cv2.GaussianBlur(layer, (0, 0), max(1.0, float(np.median(radius)) * 0.6))
        cv2.add(image, cv2.merge([blur, blur, blur]), dst=image)
