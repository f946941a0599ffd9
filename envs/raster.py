"""Distractor boxes drawn straight into the camera image with OpenCV.

Each box face's outline is subdivided in the world, projected through the lens (so edges bend
with the barrel distortion), and filled with a flat colour lit by the episode's light; boxes are
drawn far to near (painter's algorithm) and only faces turned toward the camera. The boxes stand
inside the room, so nothing of the room can hide them. This costs a fraction of a millisecond,
where PyBullet's TinyRenderer costs milliseconds per frame (see camera.Renderer's `pybullet` mode).
"""

from __future__ import annotations

import cv2
import numpy as np

from sim2real.envs.world import Distractor

SUBDIV = 4  # points per face edge
NEAR = 0.03  # m: faces with a corner closer than this (or behind the camera) are skipped
SHIFT = 2

# unit-cube faces: (normal, 4 corners in order), corners as signs of the half extents
_FACES = [
    ((1, 0, 0), [(1, -1, -1), (1, 1, -1), (1, 1, 1), (1, -1, 1)]),
    ((-1, 0, 0), [(-1, 1, -1), (-1, -1, -1), (-1, -1, 1), (-1, 1, 1)]),
    ((0, 1, 0), [(1, 1, -1), (-1, 1, -1), (-1, 1, 1), (1, 1, 1)]),
    ((0, -1, 0), [(-1, -1, -1), (1, -1, -1), (1, -1, 1), (-1, -1, 1)]),
    ((0, 0, 1), [(-1, -1, 1), (1, -1, 1), (1, 1, 1), (-1, 1, 1)]),
]  # the bottom face lies on the floor and is never seen


class BoxRaster:
    """The episode's distractors, ready to draw: (K, 5, 4*SUBDIV, 3) face outlines m, face
    centres and outward normals (K, 5, 3), colours (K, 5, 3) RGB 0-255 with lighting baked."""

    def __init__(self, boxes: list[Distractor], light: dict) -> None:
        self.count = len(boxes)
        outlines, centres, normals, colours = [], [], [], []
        direction = np.asarray(light["direction"], np.float64)
        direction = direction / np.linalg.norm(direction)
        steps = np.arange(SUBDIV) / SUBDIV
        for box in boxes:
            c, s = np.cos(box.yaw), np.sin(box.yaw)
            rot = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
            he = np.asarray(box.half_extents, np.float64)
            rgb = np.asarray(box.color, np.float64) * 255.0
            for normal, corners in _FACES:
                pts = (np.asarray(corners, np.float64) * he) @ rot.T + box.center
                nxt = np.roll(pts, -1, axis=0)
                ring = pts[:, None, :] + (nxt - pts)[:, None, :] * steps[None, :, None]
                outlines.append(ring.reshape(-1, 3))
                centres.append(pts.mean(axis=0))
                n = rot @ np.asarray(normal, np.float64)
                normals.append(n)
                lit = light["ambient"] + light["diffuse"] * max(0.0, float(n @ direction))
                colours.append(np.clip(rgb * lit, 0, 255))
        k = self.count
        self.outlines = np.asarray(outlines).reshape(k, 5, 4 * SUBDIV, 3)
        self.centres = np.asarray(centres).reshape(k, 5, 3)
        self.normals = np.asarray(normals).reshape(k, 5, 3)
        self.colours = np.asarray(colours).reshape(k, 5, 3)
        self.drawn = np.ones((k, 5), bool)  # faces that may be drawn
        for i, box in enumerate(boxes):
            if not box.ends:
                self.drawn[i, :2] = False
        self.box_centres = np.array([b.center for b in boxes]).reshape(k, 3)
        self.radii = np.array([np.linalg.norm(b.half_extents) for b in boxes]).reshape(k)

    def draw(self, image: np.ndarray, position: np.ndarray, rotation: np.ndarray, lens) -> None:
        """Draw the boxes into `image` (H, W, 3) uint8 in place, seen from camera `position`
        (3,) m with camera->world `rotation` (3, 3) through `lens`."""
        if self.count == 0:
            return
        # cull whole boxes behind the camera or outside the lens's cone
        rel = (self.box_centres - position) @ rotation
        dist = np.sqrt(np.einsum("ki,ki->k", rel, rel))
        visible = rel[:, 2] > dist * np.cos(lens.max_theta) - self.radii
        facing = np.einsum("kfi,kfi->kf", self.centres - position, self.normals) < 0
        facing &= visible[:, None] & self.drawn
        if not facing.any():
            return
        ks, fs = np.nonzero(facing)
        cam = (self.outlines[ks, fs] - position) @ rotation  # (M, P, 3) camera frame
        norm = np.sqrt(np.einsum("mpi,mpi->mp", cam, cam))
        ok = np.all(cam[..., 2] > np.maximum(NEAR, norm * np.cos(lens.max_theta)), axis=1)
        if not ok.any():
            return
        ks, fs, cam = ks[ok], fs[ok], cam[ok]
        u, v = lens.project(cam)
        pts = np.round(np.stack([u, v], axis=-1) * (1 << SHIFT)).astype(np.int32)
        # far boxes first; faces of one box never overlap (boxes are convex)
        order = np.argsort(-dist[ks], kind="stable")
        for m in order:
            cv2.fillPoly(image, [pts[m]], self.colours[ks[m], fs[m]].tolist(), cv2.LINE_AA, SHIFT)
