"""Offline driving metrics with moving-block bootstrap 95% intervals.

Steering: MAE, RMSE, R^2, Pearson r and sign agreement on turns (|true angle| > 0.1);
throttle: MAE when both prediction and truth have it.

Adjacent frames at 20 Hz are near-duplicates, so an i.i.d. bootstrap would give intervals
that are far too narrow. We resample contiguous blocks instead (moving-block bootstrap,
Kuensch 1989): `DEFAULT_BLOCK_LENGTH` = 20 frames = 1 s of driving at 20 Hz, about the
length of one steering manoeuvre, so the dependence inside a block is kept and blocks are
roughly independent of each other.

A scale-calibrated variant fits `truth ~ a * prediction + b` by least squares on a separate
calibration block and reports the metrics of the calibrated prediction beside the raw ones:
a network that follows the road but steers with another scale than this driver (a sim
expert's smooth steering vs a person's saturated joystick) scores badly on MAE and R^2
while Pearson r is unchanged; the calibrated figures separate "sees the road" from "has the
scale of this driver" (see FINDINGS.md).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy import stats
from sklearn.metrics import mean_absolute_error, r2_score, root_mean_squared_error

DEFAULT_BLOCK_LENGTH = 20
"""frames per bootstrap block: 1 s at the DonkeyCar's 20 Hz"""

TURN_THRESHOLD = 0.1
"""|true steering| above which a frame counts as a turn for sign agreement"""

STEERING_METRICS = ("mae", "rmse", "r2", "pearson_r", "sign_agreement")


def _as_2d(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    return values[None, :] if values.ndim == 1 else values


def mae(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Mean absolute error along the last axis (one value per row of 2-D input)."""
    return mean_absolute_error(_as_2d(truth).T, _as_2d(pred).T, multioutput="raw_values")


def rmse(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Root mean squared error along the last axis."""
    return root_mean_squared_error(_as_2d(truth).T, _as_2d(pred).T, multioutput="raw_values")


def r2(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Coefficient of determination 1 - SS_res / SS_tot (NaN when the truth is constant)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        scores = r2_score(
            _as_2d(truth).T, _as_2d(pred).T, multioutput="raw_values", force_finite=False
        )
    return np.where(np.isfinite(scores), scores, np.nan)


def pearson_r(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Pearson correlation along the last axis (NaN when either side is constant)."""
    pred, truth = _as_2d(pred), _as_2d(truth)
    if pred.shape[-1] < 2:
        return np.full(pred.shape[0], np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.ConstantInputWarning)
        return np.atleast_1d(stats.pearsonr(pred, truth, axis=-1).statistic)


def sign_agreement(
    pred: np.ndarray, truth: np.ndarray, threshold: float = TURN_THRESHOLD
) -> np.ndarray:
    """Fraction of turn frames (|truth| > threshold) whose predicted sign matches (NaN: no turns).

    A prediction of exactly 0 on a turn counts as a disagreement.
    """
    pred, truth = _as_2d(pred), _as_2d(truth)
    turns = np.abs(truth) > threshold
    agree = (np.sign(pred) == np.sign(truth)) & turns
    n_turns = turns.sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(n_turns > 0, agree.sum(axis=-1) / np.maximum(n_turns, 1), np.nan)


_STEERING_FUNCS = {
    "mae": mae,
    "rmse": rmse,
    "r2": r2,
    "pearson_r": pearson_r,
    "sign_agreement": sign_agreement,
}


def moving_block_indices(
    n: int, block_length: int, n_boot: int, generator: np.random.Generator
) -> np.ndarray:
    """(n_boot, n) int indices: each row concatenates random contiguous blocks, cut to n.

    Block starts are uniform over the n - block_length + 1 possible positions; a series
    shorter than one block is resampled as a whole block (every row is arange(n)).
    """
    if n <= 0:
        raise ValueError("cannot bootstrap an empty series")
    if block_length < 1:
        raise ValueError(f"block_length must be >= 1, got {block_length}")
    length = min(block_length, n)
    n_blocks = -(-n // length)
    starts = generator.integers(0, n - length + 1, size=(n_boot, n_blocks))
    idx = starts[:, :, None] + np.arange(length)[None, None, :]
    return idx.reshape(n_boot, n_blocks * length)[:, :n]


@dataclass(frozen=True)
class Interval:
    """A point estimate with a bootstrap percentile interval."""

    value: float
    low: float
    high: float

    def as_dict(self) -> dict[str, float | None]:
        def clean(x: float) -> float | None:
            return None if not np.isfinite(x) else float(x)

        return {"value": clean(self.value), "low": clean(self.low), "high": clean(self.high)}


def driving_metrics(
    pred: Mapping[str, np.ndarray],
    truth: Mapping[str, np.ndarray],
    *,
    steering: str = "user/angle",
    throttle: str = "user/throttle",
    n_boot: int = 1000,
    block_length: int = DEFAULT_BLOCK_LENGTH,
    confidence: float = 0.95,
    generator: np.random.Generator | None = None,
) -> dict[str, Interval]:
    """Metrics of time-ordered predictions vs truth, each with a block-bootstrap interval.

    `pred` and `truth` map label names to (N,) arrays in time order. Frames whose truth is
    NaN are dropped per label. Keys: steering_mae, steering_rmse, steering_r2,
    steering_pearson_r, steering_sign_agreement and, when both sides have `throttle`,
    throttle_mae. `n_boot=0` gives point estimates with NaN bounds.
    """
    if steering not in pred or steering not in truth:
        raise ValueError(
            f"steering label {steering!r} missing: predictions have {sorted(pred)}, "
            f"truth has {sorted(truth)}"
        )
    generator = generator if generator is not None else np.random.default_rng(0)
    alpha = (1.0 - confidence) / 2.0
    out: dict[str, Interval] = {}

    def add(prefix: str, names: tuple[str, ...], p: np.ndarray, t: np.ndarray) -> None:
        p, t = np.asarray(p, np.float64).reshape(-1), np.asarray(t, np.float64).reshape(-1)
        if p.shape != t.shape:
            raise ValueError(f"{prefix}: {p.shape[0]} predictions for {t.shape[0]} labels")
        keep = np.isfinite(t)
        if not np.all(np.isfinite(p[keep])):
            raise ValueError(f"{prefix}: predictions contain NaN or inf")
        p, t = p[keep], t[keep]
        if p.size == 0:
            raise ValueError(f"{prefix}: no frames with a label to evaluate")
        if n_boot > 0:
            idx = moving_block_indices(p.size, block_length, n_boot, generator)
        for name in names:
            func = _STEERING_FUNCS[name]
            value = float(func(p, t)[0])
            low = high = float("nan")
            if n_boot > 0:
                # chunked so that 1000 x 11k resamples stay small in memory
                stats = np.concatenate(
                    [func(p[chunk], t[chunk]) for chunk in np.array_split(idx, 10)]
                )
                if np.isfinite(stats).any():
                    low, high = np.nanquantile(stats, [alpha, 1.0 - alpha])
            out[f"{prefix}_{name}"] = Interval(value, float(low), float(high))

    add("steering", STEERING_METRICS, pred[steering], truth[steering])
    if throttle in pred and throttle in truth and np.isfinite(truth[throttle]).any():
        add("throttle", ("mae",), pred[throttle], truth[throttle])
    return out


@dataclass(frozen=True)
class AffineCalibration:
    """calibrated = slope * prediction + intercept, fitted by least squares."""

    slope: float
    intercept: float

    @classmethod
    def fit(cls, pred: np.ndarray, truth: np.ndarray) -> AffineCalibration:
        """Least-squares fit of truth on prediction; frames with NaN truth are ignored.

        A constant prediction cannot be scaled: it gets slope 0 and the mean truth.
        """
        p = np.asarray(pred, np.float64).reshape(-1)
        t = np.asarray(truth, np.float64).reshape(-1)
        keep = np.isfinite(t) & np.isfinite(p)
        p, t = p[keep], t[keep]
        if p.size == 0:
            raise ValueError("calibration needs at least one labelled frame")
        if np.ptp(p) == 0:
            return cls(0.0, float(t.mean()))
        design = np.stack([p, np.ones_like(p)], axis=1)
        (slope, intercept), *_ = np.linalg.lstsq(design, t, rcond=None)
        return cls(float(slope), float(intercept))

    def apply(self, pred: np.ndarray) -> np.ndarray:
        return self.slope * np.asarray(pred, np.float64) + self.intercept

    def as_dict(self) -> dict[str, float]:
        return {"slope": self.slope, "intercept": self.intercept}
