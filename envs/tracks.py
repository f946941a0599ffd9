"""Seeded closed tracks: a smooth periodic spline centreline sampled by arc length.

World frame: metres, z up, the track lies in the z = 0 plane. A track is accepted only if its
tightest bend is drivable and the road never overlaps itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.interpolate import CubicSpline

SAMPLE_SPACING = 0.05  # m between centreline samples
MIN_RADIUS = 1.1  # m, tightest allowed bend (the racecar turns down to about 0.7 m)


@dataclass(frozen=True)
class Track:
    """A closed centreline: `points` (N, 2) m, `tangents` (N, 2) unit, `curvature` (N,) 1/m
    (positive = bending left), `s` (N,) arc length m of each sample; `length` m; `width` m."""

    points: np.ndarray
    tangents: np.ndarray
    curvature: np.ndarray
    s: np.ndarray
    length: float
    width: float

    @property
    def normals(self) -> np.ndarray:
        """(N, 2) unit normals pointing to the left of the driving direction."""
        return np.stack([-self.tangents[:, 1], self.tangents[:, 0]], axis=1)

    def bounds(self, margin: float = 0.0) -> tuple[float, float, float, float]:
        """(xmin, ymin, xmax, ymax) m of the centreline, grown by `margin` m."""
        lo = self.points.min(axis=0) - margin
        hi = self.points.max(axis=0) + margin
        return float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])

    def nearest(self, xy: np.ndarray, hint: int | None = None, window: int = 60) -> int:
        """Index of the centreline sample nearest to `xy` (2,); searches +-window around `hint`."""
        n = len(self.points)
        if hint is None:
            d = np.sum((self.points - xy) ** 2, axis=1)
            return int(np.argmin(d))
        idx = (np.arange(hint - window, hint + window + 1)) % n
        d = np.sum((self.points[idx] - xy) ** 2, axis=1)
        best = int(idx[np.argmin(d)])
        if best in (idx[0], idx[-1]):  # moved further than the window: search everything
            return self.nearest(xy)
        return best

    def frenet(
        self, xy: np.ndarray, yaw: float, hint: int | None = None, index: int | None = None
    ) -> tuple[int, float, float]:
        """(index, cte m signed positive to the left, heading error rad in (-pi, pi]) of the
        nearest sample (or of sample `index` when the caller already knows it)."""
        i = index if index is not None else self.nearest(xy, hint)
        offset = xy - self.points[i]
        t = self.tangents[i]
        cte = float(t[0] * offset[1] - t[1] * offset[0])
        track_yaw = np.arctan2(t[1], t[0])
        err = float((yaw - track_yaw + np.pi) % (2 * np.pi) - np.pi)
        return i, cte, err

    def arc_delta(self, i_from: int, i_to: int) -> float:
        """Signed arc length m from sample i_from to i_to, the short way round the loop."""
        d = self.s[i_to] - self.s[i_from]
        half = self.length / 2
        return float((d + half) % self.length - half)

    def lookahead(self, i: int, distance: float) -> np.ndarray:
        """The centreline point `distance` m ahead of sample i, (2,)."""
        steps = int(round(distance / SAMPLE_SPACING))
        return self.points[(i + steps) % len(self.points)]


def generate_track(
    rng: np.random.Generator,
    length: float = 22.0,
    width: float = 0.85,
    curviness: float = 0.5,
    control_points: int = 10,
    max_tries: int = 200,
) -> Track:
    """A random closed track of about `length` m (centreline), seeded by `rng`.

    Control points sit at equal angles around a circle with radii jittered by `curviness`
    (0 = a circle, 1 = strong wiggles and hairpins); a periodic cubic spline joins them.
    """
    k = int(np.clip(round(control_points), 4, max(4, length / 2.0)))
    for attempt in range(max_tries):
        if attempt and attempt % 20 == 0:  # too wiggly for this length: calm down gradually
            curviness *= 0.8
        angles = np.linspace(0, 2 * np.pi, k, endpoint=False)
        angles = angles + rng.uniform(-0.35, 0.35, k) * (2 * np.pi / k)
        radii = 1.0 + curviness * rng.uniform(-0.6, 0.6, k)
        pts = np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)
        pts[:, 0] *= rng.uniform(0.7, 1.3)  # stretch into an oval of either orientation
        track = _spline_track(pts, length, width)
        if track is not None:
            return track
    raise RuntimeError(f"no valid track after {max_tries} tries (length {length}, width {width})")


def _spline_track(ctrl: np.ndarray, length: float, width: float) -> Track | None:
    closed = np.vstack([ctrl, ctrl[:1]])
    chord = np.r_[0.0, np.cumsum(np.linalg.norm(np.diff(closed, axis=0), axis=1))]
    spline = CubicSpline(chord, closed, bc_type="periodic")
    dense_u = np.linspace(0, chord[-1], 1500, endpoint=False)
    dense = spline(dense_u)
    seg = np.linalg.norm(np.diff(np.vstack([dense, dense[:1]]), axis=0), axis=1)
    raw_length = float(seg.sum())
    scale = length / raw_length
    # reject too-tight bends before resampling (most rejected candidates fail here)
    d1, d2 = spline(dense_u, 1), spline(dense_u, 2)
    kappa = np.abs(d1[:, 0] * d2[:, 1] - d1[:, 1] * d2[:, 0]) / np.linalg.norm(d1, axis=1) ** 3
    if kappa.max() / scale > 1.0 / MIN_RADIUS:
        return None
    # resample uniformly by arc length
    s_dense = np.r_[0.0, np.cumsum(seg)[:-1]] * scale
    n = max(64, int(round(length / SAMPLE_SPACING)))
    s = np.linspace(0, length, n, endpoint=False)
    u = np.interp(s, s_dense, dense_u)
    points = spline(u) * scale
    d1 = spline(u, 1) * scale
    d2 = spline(u, 2) * scale
    speed = np.linalg.norm(d1, axis=1)
    tangents = d1 / speed[:, None]
    curvature = (d1[:, 0] * d2[:, 1] - d1[:, 1] * d2[:, 0]) / speed**3
    if np.any(np.abs(curvature) > 1.0 / MIN_RADIUS):
        return None
    if _self_overlaps(points, s, length, width):
        return None
    return Track(points, tangents, curvature, s, float(length), float(width))


def _self_overlaps(points: np.ndarray, s: np.ndarray, length: float, width: float) -> bool:
    """True if two parts of the road that are far apart along the loop come closer than
    one road width plus a verge margin."""
    from scipy.spatial import cKDTree

    clearance = width + 0.6
    pairs = cKDTree(points).query_pairs(clearance, output_type="ndarray")
    if len(pairs) == 0:
        return False
    ds = np.abs(s[pairs[:, 0]] - s[pairs[:, 1]])
    ds = np.minimum(ds, length - ds)
    return bool(np.any(ds > 2.5 * clearance))
