"""What a camera frame says about its world, measured the same way on real and sim frames:
the horizon (vanishing point of floor lines), the drivable floor run on each row, painted or
taped lines, the colours around them, and image statistics. Used by fit_sim.

Frames are (H, W, 3) uint8 RGB; rows count from the top; pixel coordinates are pixel centres.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass, field

import cv2
import numpy as np

from sim2real.envs.camera import Lens, rotation_matrix

ROAD_PATCH = 0.2  # fraction of the width: the bottom-centre patch the car stands on
LINE_CONTRAST = 28  # grey levels a line must stand out of its surroundings (top/black-hat)


def horizon_row(gray: np.ndarray) -> float:
    """Row (px, may lie above the image) where straight floor edges converge: the median
    intersection of pairs of Hough segments leaning at 12-80 degrees; nan if none."""
    h, w = gray.shape
    edges = cv2.Canny(cv2.GaussianBlur(gray, (5, 5), 0), 40, 120)
    lines = cv2.HoughLinesP(edges, 1, np.pi / 180, 16, minLineLength=max(8, w // 14), maxLineGap=3)
    if lines is None:
        return float("nan")
    segs = lines.reshape(-1, 4).astype(np.float64)
    x1, y1, x2, y2 = segs.T
    angle = np.degrees(np.arctan2(y2 - y1, x2 - x1))
    angle = (angle + 90.0) % 180.0 - 90.0
    # near the image centre, where a barrel lens bends straight lines least
    keep = (np.abs(angle) > 12) & (np.abs(angle) < 80) & (np.minimum(y1, y2) > 0.3 * h)
    keep &= (np.maximum(y1, y2) < 0.8 * h) & (np.minimum(x1, x2) > 0.15 * w)
    keep &= np.maximum(x1, x2) < 0.85 * w
    if keep.sum() < 2:
        return float("nan")
    x1, y1, x2, y2, angle = x1[keep], y1[keep], x2[keep], y2[keep], angle[keep]
    a, b = y2 - y1, x1 - x2  # a x + b y = c
    c = a * x1 + b * y1
    i, j = np.triu_indices(len(a), 1)
    ok = np.abs(angle[i] - angle[j]) > 10
    i, j = i[ok], j[ok]
    det = a[i] * b[j] - a[j] * b[i]
    ok = np.abs(det) > 1e-6
    i, j, det = i[ok], j[ok], det[ok]
    if len(i) == 0:
        return float("nan")
    x = (c[i] * b[j] - c[j] * b[i]) / det
    y = (a[i] * c[j] - a[j] * c[i]) / det
    top = np.minimum(np.minimum(y1[i], y2[i]), np.minimum(y1[j], y2[j]))
    ok = (x > -0.5 * w) & (x < 1.5 * w) & (y > -0.6 * h) & (y < top + 2) & (y < 0.8 * h)
    return float(np.median(y[ok])) if ok.any() else float("nan")


@dataclass
class Camera:
    """The lens (hfov deg, distortion) and pitch (deg down) used to read geometry off frames."""

    height: int
    width: int
    hfov: float
    distortion: float
    pitch: float = 0.0
    lens: Lens = field(init=False)

    def __post_init__(self) -> None:
        self.lens = Lens.create(self.height, self.width, self.hfov, self.distortion)

    def pitch_for_horizon(self, row: float) -> float:
        """Camera pitch (deg down) that puts the horizon of a level car on `row` (px)."""
        r = self.height / 2 - (row + 0.5)
        k, f = self.lens.distortion, self.lens.focal
        theta = np.linspace(-1.2, 1.2, 4001)
        radius = f * ((1 - k) * np.tan(theta) + k * theta)
        return float(np.degrees(np.interp(r, radius, theta)))

    def ground(self, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Floor points (forward, left) in units of the camera height seen at integer pixels
        (u, v) by a level car; nan above the horizon."""
        idx = np.clip(v, 0, self.height - 1) * self.width + np.clip(u, 0, self.width - 1)
        rays = self.lens.rays[:, idx].astype(np.float64)
        d = rotation_matrix(0.0, np.radians(self.pitch), 0.0) @ rays
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.where(d[2] < -1e-3, -1.0 / d[2], np.nan)
        return d[0] * t, d[1] * t


@dataclass
class RowRuns:
    """Per measured row of one frame: the floor run around the car [left, right] px, whether a
    line lies at its centre or at its edges, and sampled colours (RGB) of lines and outside."""

    rows: list[int] = field(default_factory=list)
    left: list[int] = field(default_factory=list)
    right: list[int] = field(default_factory=list)
    centre_line: list[bool] = field(default_factory=list)
    edge_line: list[bool] = field(default_factory=list)
    centre_rgb: list[np.ndarray] = field(default_factory=list)
    edge_rgb: list[np.ndarray] = field(default_factory=list)
    outer_rgb: list[np.ndarray] = field(default_factory=list)
    road_rgb: list[np.ndarray] = field(default_factory=list)
    span: list[int] = field(default_factory=list)  # px, the run with every line bridged


def floor_runs(
    frame: np.ndarray, road_mask: np.ndarray, rows: np.ndarray, gray: np.ndarray | None = None
) -> RowRuns:
    """Measure the floor run around the image's centre column on each of `rows`.

    road_mask: (H, W) bool, pixels of the floor colour the car stands on. Lines inside the
    road (a centre line) are bridged by a horizontal closing; lines at the edges stop the run.
    """
    h, w = road_mask.shape
    gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) if gray is None else gray
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (max(5, w // 10) | 1, 1))
    closed = cv2.morphologyEx(road_mask.astype(np.uint8), cv2.MORPH_CLOSE, kernel).astype(bool)
    line_kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (max(9, w // 6) | 1, 1))
    tophat = cv2.morphologyEx(gray, cv2.MORPH_TOPHAT, line_kernel)
    blackhat = cv2.morphologyEx(gray, cv2.MORPH_BLACKHAT, line_kernel)
    lines = (tophat > LINE_CONTRAST) | (blackhat > LINE_CONTRAST)
    # lines bridged too (a wide near dash splits the floor's colour run; the edge lines join it)
    bridged = cv2.morphologyEx((road_mask | lines).astype(np.uint8), cv2.MORPH_CLOSE, kernel)
    bridged = bridged.astype(bool)
    out = RowRuns()
    centre = w // 2
    for r in rows:
        row = closed[r]
        if not row[centre]:
            near = np.flatnonzero(row[w // 4 : 3 * w // 4])
            if len(near) == 0:
                continue
            c = w // 4 + int(near[np.argmin(np.abs(near + w // 4 - centre))])
        else:
            c = centre
        off = np.flatnonzero(~row)
        left_off, right_off = off[off < c], off[off > c]
        left = int(left_off[-1]) + 1 if len(left_off) else 0
        right = int(right_off[0]) - 1 if len(right_off) else w - 1
        if right - left < 4:
            continue
        out.rows.append(int(r))
        out.left.append(left)
        out.right.append(right)
        width = right - left
        mid = lines[r, left + int(0.3 * width) : right - int(0.3 * width) + 1]
        has_centre = bool(mid.any())
        out.centre_line.append(has_centre)
        if has_centre:
            cols = left + int(0.3 * width) + np.flatnonzero(mid)
            out.centre_rgb.append(frame[r, cols].astype(np.float64).mean(axis=0))
        edge_px = 0
        band = max(3, w // 40)
        for lo, hi, inside in ((left - band, left, left > 2), (right + 1, right + 1 + band,
                                                                  right < w - 3)):  # fmt: skip
            if not inside:
                continue
            lo, hi = max(0, lo), min(w, hi)
            seg = lines[r, lo:hi]
            if seg.any():
                edge_px += 1
                out.edge_rgb.append(frame[r, lo + np.flatnonzero(seg)].astype(np.float64).mean(0))
            # beyond the edge (and its line): what lies outside the run
            o_lo, o_hi = (max(0, lo - 3 * band), max(0, lo - band)) if lo < left else (
                min(w, hi + band), min(w, hi + 3 * band))  # fmt: skip
            other = frame[r, o_lo:o_hi][~closed[r, o_lo:o_hi]]  # not the floor's colour
            if len(other):
                out.outer_rgb.append(np.median(other.astype(np.float64), axis=0))
        out.edge_line.append(edge_px > 0)
        off = np.flatnonzero(~bridged[r])
        left_b, right_b = off[off < c], off[off > c]
        out.span.append((int(right_b[0]) if len(right_b) else w) - (
            int(left_b[-1]) + 1 if len(left_b) else 0))  # fmt: skip
        inner = frame[r, left + 1 : right][~lines[r, left + 1 : right]]
        if len(inner):
            out.road_rgb.append(np.median(inner.astype(np.float64), axis=0))
    return out


def image_stats(frames: np.ndarray, floor_from: int) -> dict[str, float]:
    """Statistics of (N, H, W, 3) uint8 frames: luma mean and std (grey levels), saturation
    mean (0-1), sharpness (variance of the Laplacian over the luma variance), noise (grey
    levels, std of the floor's residual to a 1 px Gaussian blur, clipped at 20), dark level
    (2nd percentile of luma), the share of near-white floor pixels (rows >= `floor_from`) and
    the floor's luma: the median grey level of the middle half of the columns on the rows from
    30% of the way below `floor_from` to 90% of the image's height (what the car drives on,
    without the walls and room that set most of the frame's mean, nor the car's shadow)."""
    h, w = frames.shape[1:3]
    r0 = int(min(floor_from + 0.3 * (h - floor_from), 0.9 * h - 2))
    luma, sat, sharp, noise, dark, bright, floor = [], [], [], [], [], [], []
    for frame in frames:
        gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        g = gray.astype(np.float32)
        luma.append((g.mean(), g.std()))
        floor.append(np.median(gray[r0 : int(0.9 * h), w // 4 : 3 * w // 4]))
        sat.append(cv2.cvtColor(frame, cv2.COLOR_RGB2HSV)[..., 1].mean() / 255.0)
        lap = cv2.Laplacian(g, cv2.CV_32F)
        sharp.append(lap.var() / max(1.0, g.var()))
        resid = (g - cv2.GaussianBlur(g, (0, 0), 1.0))[floor_from:]
        noise.append(float(np.clip(resid, -20, 20).std()))
        dark.append(np.percentile(g, 2))
        bright.append(float((gray[floor_from:] > 235).mean()))
    arr = np.asarray(luma)
    return {
        "luma_mean": float(np.median(arr[:, 0])),
        "luma_std": float(np.median(arr[:, 1])),
        "saturation": float(np.median(sat)),
        "sharpness": float(np.median(sharp)),
        "noise": float(np.median(noise)),
        "dark": float(np.median(dark)),
        "bright_floor": float(np.mean(bright)),
        "floor_luma": float(np.median(floor)),
    }


def dome(frames: np.ndarray) -> float:
    """How much lines above the image centre bow into a dome (barrel distortion): the median
    over (N, H, W, 3) frames of the difference between the median slope (dy/dx) of
    near-horizontal edges in the right third and in the left third of the upper half; 0 for a
    pinhole lens, growing with the barrel. nan when no frame has enough such edges."""
    out = []
    for frame in frames:
        g = cv2.GaussianBlur(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY).astype(np.float32), (3, 3), 0)
        h, w = g.shape
        gx, gy = cv2.Sobel(g, cv2.CV_32F, 1, 0), cv2.Sobel(g, cv2.CV_32F, 0, 1)
        sel = (np.abs(gy) > 2 * np.abs(gx)) & (np.hypot(gx, gy) > 60)
        sel[h // 2 :] = False
        slope = -gx / np.where(np.abs(gy) < 1e-3, 1e-3, gy)
        left, right = sel[:, : w // 3], sel[:, 2 * w // 3 :]
        if left.sum() >= 20 and right.sum() >= 20:
            r_slope = np.median(slope[:, 2 * w // 3 :][right])
            out.append(r_slope - np.median(slope[:, : w // 3][left]))
    return float(np.median(out)) if out else float("nan")


def rgb_to_hsv(rgb: np.ndarray) -> tuple[float, float, float]:
    """RGB (3,) in [0, 255] -> (hue deg, saturation, value) in the spec's convention."""
    r, g, b = (float(np.clip(v, 0, 255)) / 255.0 for v in rgb)
    hh, ss, vv = colorsys.rgb_to_hsv(r, g, b)
    return (round(hh * 360.0, 1), round(ss, 3), round(vv, 3))


def kmeans_colours(pixels: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """k-means (sklearn) of (N, 3) colours: the centres (k, 3)."""
    from sklearn.cluster import MiniBatchKMeans

    model = MiniBatchKMeans(n_clusters=k, random_state=seed, n_init=3, batch_size=4096)
    return model.fit(pixels.astype(np.float32)).cluster_centers_
