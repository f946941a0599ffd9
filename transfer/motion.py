"""The car's own motion in a recording: optical-flow features and the motion teacher.

A steering command at frame t shows up as the car's yaw a few frames later (100-200 ms at
20 Hz): the image content shifts sideways. One frame cannot see that; the recording's next
frames can. `motion_features` summarises the dense optical flow (OpenCV) from each frame to
the next by a few robust statistics, `lagged` stacks them over frames t+first..t+last of the
same run, and `MotionTeacher` fits, on the N labelled frames, a ridge of a label on
[a network's prediction, those lagged features], so self-training's pseudo-labels can read
the future (privileged information the single-frame student never needs at run time).

Only the records a caller passes are ever read: flow never crosses a run boundary
(`transfer.records.run_ids`: a new source or session, a gap in the indexes, a block cut out),
so a training-part frame next to the validation block cannot see validation frames.
docs/selftrain.md ("The motion teacher") has the measurements.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
from pydantic import Field, model_validator

from sim2real.common.config import StrictModel
from sim2real.common.io import atomic_write
from sim2real.transfer.records import Record, run_ids, run_lengths

log = logging.getLogger(__name__)

FEATURES = (
    "dx_top",
    "dx_bottom",
    "dx_top_left",
    "dx_top_right",
    "dx_bottom_left",
    "dx_bottom_right",
    "dy_bottom",
    "speed_bottom",
)
"""per-frame flow statistics (pixels of the frame as read, per frame step): medians of the
horizontal flow over the top / bottom half and their left / right quarters, the median
vertical flow of the bottom half, the mean flow magnitude of the bottom half"""

MOTION_CACHE_VERSION = 1
"""bump when the features would change for the same files and config"""


class MotionConfig(StrictModel):
    """How the motion features of a recording are computed and stacked over time."""

    method: Literal["farneback", "dis"] = "dis"
    """OpenCV dense flow: DIS (fast preset) or Farneback (pyramid 0.5, 3 levels, window 15);
    DIS was far better on both validation blocks (docs/selftrain.md)"""
    scale: float = Field(0.5, gt=0.0, le=1.0)
    """frames are resized by this factor before the flow (1: as recorded; 0.5 chosen on the
    validation blocks)"""
    first_lag: int = -2
    """earliest flow step read, relative to the labelled frame t (negative: the past)"""
    last_lag: int = 6
    """latest flow step read (flow from t+last_lag to t+last_lag+1; 6 chosen on validation)"""
    min_run: int = Field(12, ge=2)
    """a run shorter than this many frames shows too little motion: when more than half the
    labelled frames sit in such runs, the network teacher labels instead"""

    @model_validator(mode="after")
    def _lags(self) -> MotionConfig:
        if self.last_lag < self.first_lag:
            raise ValueError(
                f"motion last_lag {self.last_lag} is before first_lag {self.first_lag}"
            )
        return self

    @property
    def lags(self) -> np.ndarray:
        return np.arange(self.first_lag, self.last_lag + 1)


def flow_statistics(prev: np.ndarray, nxt: np.ndarray, method: str = "farneback") -> np.ndarray:
    """(len(FEATURES),) float64 statistics of the dense flow from grey frame `prev` to `nxt`
    (both (H, W) uint8, same size)."""
    if method == "dis":
        flow = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST).calc(prev, nxt, None)
    else:
        flow = cv2.calcOpticalFlowFarneback(prev, nxt, None, 0.5, 3, 15, 3, 5, 1.2, 0)
    h, w = prev.shape
    fx, fy = flow[..., 0], flow[..., 1]
    top, bottom = slice(0, h // 2), slice(h // 2, h)
    left, right = slice(0, w // 2), slice(w // 2, w)
    return np.array(
        [
            np.median(fx[top]),
            np.median(fx[bottom]),
            np.median(fx[top, left]),
            np.median(fx[top, right]),
            np.median(fx[bottom, left]),
            np.median(fx[bottom, right]),
            np.median(fy[bottom]),
            np.mean(np.hypot(fx[bottom], fy[bottom])),
        ],
        dtype=np.float64,
    )


def _grey(path: Path, scale: float) -> np.ndarray | None:
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if image is None or scale == 1.0:
        return image
    return cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)


def motion_features(records: Sequence[Record], config: MotionConfig) -> np.ndarray:
    """(N, len(FEATURES)) flow statistics from each of `records` (in time order) to the next
    one in its run; NaN for a run's last frame and where either image does not decode.

    Reads the images of `records` only (each once)."""
    out = np.full((len(records), len(FEATURES)), np.nan)
    runs = run_ids(records)
    prev = None
    for i, record in enumerate(records):
        image = _grey(Path(record.image_path), config.scale)
        same_run = i > 0 and runs[i] == runs[i - 1]
        if same_run and prev is not None and image is not None and prev.shape == image.shape:
            out[i - 1] = flow_statistics(prev, image, config.method)
        prev = image
    return out


def lagged(features: np.ndarray, runs: np.ndarray, lags: Sequence[int]) -> np.ndarray:
    """(N, F * len(lags)) the rows of `features` (N, F) at t + lag for each lag, within the
    run of t (`runs` (N,)); a step outside the run, or NaN, reads as 0 (so centre first)."""
    n, f = features.shape
    out = np.zeros((n, f * len(lags)))
    index = np.arange(n)
    for j, lag in enumerate(lags):
        src = index + lag
        ok = (src >= 0) & (src < n)
        ok[ok] &= runs[src[ok]] == runs[index[ok]]
        block = np.zeros((n, f))
        block[ok] = features[src[ok]]
        out[:, j * f : (j + 1) * f] = np.nan_to_num(block, nan=0.0)
    return out


def motion_key(records: Sequence[Record], config: MotionConfig) -> str:
    """Hex digest of these image files (path, size, mtime) under this flow method and scale."""
    digest = hashlib.sha256()
    setting = {"v": MOTION_CACHE_VERSION, "method": config.method, "scale": config.scale}
    digest.update(json.dumps(setting, sort_keys=True).encode())
    for record in records:
        stat = os.stat(record.image_path)
        digest.update(f"{record.image_path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    # run boundaries are part of what the features mean (a cut-out block ends a run)
    digest.update(run_ids(records).tobytes())
    return digest.hexdigest()[:32]


def cached_motion_features(
    records: Sequence[Record], config: MotionConfig, cache_dir: Path | None
) -> np.ndarray:
    """`motion_features`, stored under ``cache_dir/motion`` so a second run reads them
    (`cache_dir` None: `sim2real.transfer.cache.default_cache_dir()`, as for the frames)."""
    from sim2real.transfer.cache import default_cache_dir

    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = root / "motion" / f"{motion_key(records, config)}.npy"
    if path.is_file():
        try:
            cached = np.load(path, allow_pickle=False)
            if cached.shape == (len(records), len(FEATURES)):
                return cached
        except (OSError, ValueError):
            pass
    features = motion_features(records, config)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda tmp: _save(tmp, features))
    except OSError as exc:  # a read-only cache costs time, not the run
        log.warning("motion features not cached in %s: %s", path.parent, exc)
    return features


def _save(tmp: Path, array: np.ndarray) -> None:
    with tmp.open("wb") as handle:
        np.save(handle, array, allow_pickle=False)


@dataclass
class MotionSpan:
    """Lagged, centred motion features of every allowed frame, by image path."""

    rows: dict[str, int]
    """image path -> row of `stack`"""
    stack: np.ndarray
    """(M, F * len(lags)) `lagged` features, centred on the allowed frames' means"""
    runs: np.ndarray
    """(M,) run ids of the allowed frames"""

    def of(self, records: Sequence[Record]) -> np.ndarray:
        """(len(records), F * len(lags)) rows for `records` (KeyError: a frame not allowed)."""
        return self.stack[[self.rows[str(Path(r.image_path))] for r in records]]

    def run_length(self, records: Sequence[Record]) -> np.ndarray:
        """(len(records),) length of the run each of `records` sits in."""
        return run_lengths(self.runs)[[self.rows[str(Path(r.image_path))] for r in records]]


def motion_span(
    records: Sequence[Record], config: MotionConfig, cache_dir: Path | None = None
) -> MotionSpan:
    """The `MotionSpan` of `records`: every frame the caller allows, in time order."""
    features = cached_motion_features(records, config, cache_dir)
    centred = features - np.nanmean(features, axis=0) if np.isfinite(features).any() else features
    runs = run_ids(records)
    stack = lagged(centred, runs, config.lags)
    rows = {str(Path(r.image_path)): i for i, r in enumerate(records)}
    return MotionSpan(rows, stack, runs)


ALPHAS = np.logspace(-2, 4, 13)
"""ridge penalties tried by cross-validation (on standardised features)"""


def cv_groups(groups: np.ndarray, folds: int) -> np.ndarray:
    """Fold groups for `groups` (N,) run ids of the labelled frames: the runs themselves when
    there are at least `folds`, else `folds` contiguous chunks in time order."""
    if len(np.unique(groups)) >= folds:
        return groups
    return np.arange(len(groups)) * folds // max(len(groups), 1)


@dataclass
class RidgeFit:
    """A ridge regression chosen by grouped K-fold CV, and its CV figures."""

    alpha: float
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float
    cv_r2: float
    cv_r: float

    def predict(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.mean) / self.scale) @ self.coef + self.intercept


def fit_ridge_cv(x: np.ndarray, y: np.ndarray, groups: np.ndarray, folds: int = 5) -> RidgeFit:
    """Ridge of `y` (N,) on `x` (N, D) (standardised), its penalty from `ALPHAS` by K-fold CV
    over `groups` (whole runs out, so 20 Hz near-twins do not leak into the held-out fold)."""
    from sklearn.linear_model import Ridge
    from sklearn.model_selection import GroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    groups = cv_groups(groups, folds)
    k = min(folds, len(np.unique(groups)))
    best: tuple[float, float, np.ndarray] | None = None
    for alpha in ALPHAS:
        pred = np.empty(len(y))
        for train, test in GroupKFold(n_splits=k).split(x, y, groups):
            model = make_pipeline(StandardScaler(), Ridge(alpha=alpha))
            pred[test] = model.fit(x[train], y[train]).predict(x[test])
        sse = float(np.sum((pred - y) ** 2))
        if best is None or sse < best[1]:
            best = (float(alpha), sse, pred)
    assert best is not None
    alpha, sse, pred = best
    scaler = StandardScaler().fit(x)
    ridge = Ridge(alpha=alpha).fit(scaler.transform(x), y)
    var = float(np.sum((y - y.mean()) ** 2))
    r = float(np.corrcoef(pred, y)[0, 1]) if np.std(pred) > 0 and np.std(y) > 0 else 0.0
    return RidgeFit(
        alpha=alpha,
        mean=scaler.mean_,
        scale=scaler.scale_,
        coef=ridge.coef_,
        intercept=float(ridge.intercept_),
        cv_r2=1.0 - sse / var if var > 0 else 0.0,
        cv_r=r,
    )


def teacher_inputs(network: np.ndarray, motion: np.ndarray) -> np.ndarray:
    """(N, 1 + D) the motion teacher's inputs: a network's prediction (N,) and the lagged
    motion features (N, D)."""
    return np.column_stack([network, motion])
