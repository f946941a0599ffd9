"""Low boards along both sides of a corridor track (the `walls` style), as static boxes.

The boards are Distractor boxes, so the raster renderer draws them (bent by the lens, lit by the
episode's light), the floor gets their shadows, and the PyBullet reference renderer sees them
too. They are visual only: the car's episode ends on leaving the corridor (|cte| > width / 2),
which is where the boards' inner faces stand.
"""

from __future__ import annotations

import numpy as np

from sim2real.envs.tracks import Track
from sim2real.envs.world import Distractor

SAGITTA = 0.02  # m: the largest gap between a straight board and the curved corridor edge
MAX_BOARD = 1.2  # m, longest board


def corridor_boards(
    track: Track, height: float, thickness: float, color: tuple[float, float, float]
) -> list[Distractor]:
    """Boards `height` m tall and `thickness` m thick whose inner faces follow both edges of
    the track (width / 2 from the centreline); RGB `color` in [0, 1]. Boards are shorter where
    the track bends (each stays within SAGITTA of the curve) and overlap a little at joints."""
    boards: list[Distractor] = []
    n = len(track.points)
    spacing = track.length / n
    for side in (1.0, -1.0):
        offset = track.width / 2 + thickness / 2
        i = 0
        while i < n:
            # board length from the tightest radius over the next stretch (of this edge)
            probe = (i + np.arange(int(MAX_BOARD / spacing) + 1)) % n
            radius = 1.0 / max(np.abs(track.curvature[probe]).max(), 1e-3) - offset  # inner edge
            length = float(np.clip(np.sqrt(8 * max(radius, 0.2) * SAGITTA), 0.15, MAX_BOARD))
            steps = max(1, int(round(length / spacing)))
            a, b = track.points[i], track.points[(i + steps) % n]
            na, nb = track.normals[i], track.normals[(i + steps) % n]
            pa, pb = a + side * offset * na, b + side * offset * nb
            chord = pb - pa
            span = float(np.linalg.norm(chord))
            centre = (pa + pb) / 2
            yaw = float(np.arctan2(chord[1], chord[0]))
            half = np.array([span / 2 + thickness, thickness / 2, height / 2])
            boards.append(
                Distractor(np.array([centre[0], centre[1], height / 2]), half, yaw, color, False)
            )
            i += steps
    return boards
