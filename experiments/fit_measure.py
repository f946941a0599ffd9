"""Geometry, style and colours of a set of frames (real or sim), read the same way on both
(experiments.scene_measures on each frame, k-means over the floor); used by fit_sim."""

from __future__ import annotations

from functools import cached_property
from typing import Any

import cv2
import numpy as np

from sim2real.experiments.board_band import fit_band
from sim2real.experiments.scene_measures import (
    ROAD_PATCH,
    Camera,
    floor_runs,
    horizon_row,
    kmeans_colours,
)


def lab(rgb: np.ndarray) -> np.ndarray:
    px = np.clip(np.asarray(rgb, np.float64).reshape(-1, 1, 3), 0, 255).astype(np.uint8)
    return cv2.cvtColor(px, cv2.COLOR_RGB2LAB).reshape(-1, 3).astype(np.float64)


def median_rgb(values: list[np.ndarray]) -> np.ndarray | None:
    return np.median(np.asarray(values), axis=0) if values else None


class Measure:
    """Geometry, style and colours of a set of frames (real or sim)."""

    def __init__(
        self, frames: np.ndarray, camera: Camera, seed: int = 0, use_vp: bool | None = None
    ) -> None:
        n, h, w, _ = frames.shape
        self.frames, self.camera = frames, camera
        grays = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]
        self.horizons = np.array([horizon_row(g) for g in grays])
        found = np.isfinite(self.horizons)
        self.found = int(found.sum())
        self.method, self.kind = "vanishing point of floor lines", "lines"
        self._set_horizon(self.horizons[found])
        use_vp = self.found >= 0.4 * n if use_vp is None else use_vp
        self.use_vp = use_vp
        start = self.horizon + 4 if use_vp and np.isfinite(self.horizon) else h / 3
        top = int(np.clip(start, 2, h - 10))
        self.floor_top = top
        # k-means over floor pixels of up to 200 frames (Lab)
        pick = frames[np.linspace(0, n - 1, min(n, 200)).round().astype(int)]
        floor = pick[:, top:, ::3].reshape(-1, 3)
        rng = np.random.default_rng(seed)
        floor = floor[rng.choice(len(floor), min(len(floor), 60000), replace=False)]
        centres = kmeans_colours(lab(floor), 6, seed)
        self.centres = centres
        # the road: the clusters covering the bottom-centre patch the car stands on
        c0, c1 = int(w * (0.5 - ROAD_PATCH / 2)), int(w * (0.5 + ROAD_PATCH / 2))
        patch = lab(pick[:, h - max(4, h // 10) :, c0:c1].reshape(-1, 3))
        patch_labels = np.argmin(((patch[:, None] - centres[None]) ** 2).sum(-1), axis=1)
        share = np.bincount(patch_labels, minlength=len(centres)) / len(patch_labels)
        main = int(np.argmax(share))
        # texture (carpet, grain) may split the floor into neighbouring clusters: keep those
        near = np.linalg.norm(centres - centres[main], axis=1) < 22.0
        self.road_clusters = np.flatnonzero(near | (np.arange(len(centres)) == main))
        self.road_share = float(share[self.road_clusters].sum())
        rows = np.unique(np.linspace(top + 0.3 * (h - top), h - 3, 8).round().astype(int))
        self.rows = rows  # the rows each frame's floor run is measured on
        self.runs, self.boundaries = [], []
        for frame, gray in zip(frames, grays, strict=True):
            lab_px = cv2.cvtColor(frame, cv2.COLOR_RGB2LAB).reshape(-1, 3).astype(np.float32)
            d = ((lab_px[:, None, :] - centres[None].astype(np.float32)) ** 2).sum(-1)
            mask = np.isin(np.argmin(d, axis=1), self.road_clusters).reshape(h, w)
            self.runs.append(floor_runs(frame, mask, rows, gray))
            self.boundaries.append(_floor_boundary(mask))
        self.board_ratio = float("nan")
        band = None if use_vp else fit_band(frames[np.linspace(0, n - 1, min(n, 300)).astype(int)])
        if band is not None:  # boards: where their feet and tops converge
            self.found, self.horizon, self.horizon_iqr = n, band.horizon, 0.0
            self.board_ratio, self.kind = band.board_ratio, "boards"
            self.method = (f"boards' feet and tops, one line through {band.pairs} columns, "
                           f"boards {band.board_ratio:.2f} x the camera's height")  # fmt: skip
            self.floor_top = int(np.clip(self.horizon + 4, 2, h - 10))
        elif not use_vp:  # lines rarely converge (low camera, walls): where the floor ends
            bounds = np.asarray(self.boundaries, np.float64)
            self.found = int(np.isfinite(bounds).sum())
            self.method, self.kind = "top of the floor region (few converging lines)", "floor"
            self._set_horizon(bounds[np.isfinite(bounds)])
            self.floor_top = int(np.clip(np.nan_to_num(self.horizon, nan=h / 3) + 4, 2, h - 10))

    def _set_horizon(self, rows: np.ndarray) -> None:
        self.horizon = float(np.median(rows)) if len(rows) else float("nan")
        q75, q25 = np.percentile(rows, [75, 25]) if len(rows) else (np.nan, np.nan)
        self.horizon_iqr = float(q75 - q25)

    def _upper_span(self) -> float:
        """Mean width (px) of the bridged floor run on the upper half of the measured rows,
        where the run rarely leaves the image (nan without runs)."""
        pairs = [(r, x) for run in self.runs for r, x in zip(run.rows, run.span, strict=True)]
        if not pairs:
            return float("nan")
        rows = np.array([r for r, _ in pairs])
        spans = np.array([x for _, x in pairs], np.float64)
        return float(spans[rows <= np.median(np.unique(rows))].mean())

    def summary(self) -> dict[str, Any]:
        """Shares of rows with lines, median colours (`scene`, read once) and the run's width
        in camera heights under the current `camera`."""
        return {**self.scene, **self.widths()}

    def widths(self) -> dict[str, Any]:
        """The floor run's width in camera heights (median over rows with both edges in view,
        read through `camera`) and how many rows had both edges in view."""
        cam = self.camera
        ratios = []
        for run in self.runs:
            for r, left, right in zip(run.rows, run.left, run.right, strict=True):
                if left > 2 and right < cam.width - 3:
                    _, lat = cam.ground(np.array([left, right]), np.array([r, r]))
                    if np.all(np.isfinite(lat)):
                        ratios.append(abs(lat[0] - lat[1]))
        return {
            "width_ratio": float(np.median(ratios)) if ratios else float("nan"),
            "width_rows": len(ratios),
        }

    @cached_property
    def scene(self) -> dict[str, Any]:
        """What does not depend on the camera: shares of measured rows with a centre line and
        with edge lines, the mean floor-run width (px), median colours of road, beyond its
        edges, lines and room."""
        rows = sum(len(r.rows) for r in self.runs)
        centre = sum(sum(r.centre_line) for r in self.runs) / max(1, rows)
        edge = sum(sum(r.edge_line) for r in self.runs) / max(1, rows)
        road = median_rgb([c for r in self.runs for c in r.road_rgb])
        outer = median_rgb([c for r in self.runs for c in r.outer_rgb])
        gap = float(np.linalg.norm(lab(road) - lab(outer))) if road is not None and (
            outer is not None) else 0.0  # fmt: skip
        # centre-line coverage along the run's middle: near 1 solid, dash / period when dashed
        above = self.frames[:, : max(2, self.floor_top - 6)].reshape(-1, 3)
        return {
            "rows": rows,
            "centre": float(centre),
            "edge": float(edge),
            # mean floor-run width (px), clipped at the image's sides the same way in sim
            "run_px": self._upper_span(),
            "road": road,
            "outer": outer,
            "outer_gap": gap,
            "centre_rgb": median_rgb([c for r in self.runs for c in r.centre_rgb]),
            "edge_rgb": median_rgb([c for r in self.runs for c in r.edge_rgb]),
            "room_rgb": np.median(above.astype(np.float64), axis=0),
        }


def _floor_boundary(mask: np.ndarray) -> float:
    """Median over the middle half of the columns of the row where the floor region that
    reaches the bottom of the frame ends (px); nan when the bottom is not floor."""
    h, w = mask.shape
    cols = mask[:, w // 4 : 3 * w // 4]
    tops = []
    for c in range(cols.shape[1]):
        column = cols[:, c]
        if not column[-3:].all():
            continue
        off = np.flatnonzero(~column)
        tops.append(float(off[-1] + 1) if len(off) else 0.0)
    return float(np.median(tops)) if len(tops) >= cols.shape[1] // 3 else float("nan")


def check_road_scene(m: Measure, n: int, height: int) -> None:
    """Refuse frames that are not road scenes (no consistent horizon, no floor run)."""
    if m.found < max(5, 0.3 * n):
        raise ValueError(
            f"these do not look like road scenes: a horizon ({m.method}) was found in only "
            f"{m.found} of {n} frames; no spec written"
        )
    if m.horizon_iqr > 0.3 * height:
        raise ValueError(
            f"these do not look like road scenes: the horizon jumps around (interquartile "
            f"range {m.horizon_iqr:.0f} px of {height}); no spec written"
        )
    if m.road_share < 0.5:
        raise ValueError(
            f"these do not look like road scenes: no floor colour under the car (the commonest "
            f"colour covers {m.road_share:.0%} of the patch below the camera); no spec written"
        )
    rows = sum(len(r.rows) for r in m.runs)
    expected = n * len(m.rows)
    if rows < 0.3 * expected:
        raise ValueError(
            f"these do not look like road scenes: a floor under the car was found on only "
            f"{rows} of {expected} measured rows; no spec written"
        )
