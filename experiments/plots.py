"""The study report's figures (matplotlib, Agg backend): each function writes one PNG.

Inputs are the plain aggregates of `sim2real.experiments.report_results` (lists of dicts),
so the figures can be redrawn from results.json alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

ARM_STYLE = {
    "transfer_recommended": ("tab:orange", "transfer, recommended freeze"),
    "transfer_full": ("tab:green", "transfer, no freezing"),
    "scratch": ("tab:blue", "scratch"),
    "transfer_auto": ("tab:red", "transfer, auto (CV-picked rung)"),
    "transfer_gain": ("tab:olive", "transfer, output gain"),
    "transfer_calibrate": ("tab:purple", "transfer, calibrate (gain + offset)"),
    "transfer_probe": ("tab:brown", "transfer, linear probe"),
    "transfer_head": ("tab:pink", "transfer, head"),
    "transfer_top": ("tab:gray", "transfer, head + top stages"),
    "transfer_lpft": ("tab:cyan", "transfer, LP-FT"),
}


def _pyplot():
    from sim2real.common.io import agg_pyplot

    return agg_pyplot()


def _save(fig, path: Path) -> Path:
    from sim2real.common.io import atomic_save_figure

    _pyplot()  # the Agg backend
    return atomic_save_figure(fig, path, dpi=110, bbox_inches="tight")


def _band(ax, xs, points: Sequence[Mapping[str, Any]], key: str, color: str, label: str) -> None:
    mean = np.array([p[key]["mean"] for p in points], float)
    lo = np.array([p[key]["seed_low"] for p in points], float)
    hi = np.array([p[key]["seed_high"] for p in points], float)
    blo = np.array([p[key]["boot_low"] for p in points], float)
    bhi = np.array([p[key]["boot_high"] for p in points], float)
    ax.plot(xs, mean, "o-", color=color, label=label)
    if np.isfinite(lo).any():
        ax.fill_between(xs, lo, hi, color=color, alpha=0.2, linewidth=0)
    ok = np.isfinite(blo) & np.isfinite(bhi)
    if ok.any():
        err = np.vstack([mean[ok] - blo[ok], bhi[ok] - mean[ok]])
        ax.errorbar(
            np.asarray(xs)[ok],
            mean[ok],
            yerr=np.abs(err),
            fmt="none",
            color=color,
            capsize=3,
            alpha=0.7,
        )


def learning_curves(
    curves: Mapping[str, Sequence[Mapping[str, Any]]],
    zero_shot: Mapping[str, Any] | None,
    path: Path,
) -> Path:
    """Steering R^2 and MAE on the real test block vs real training frames, per arm.

    Shaded: 95% interval across seeds (t); error bars: mean of the cells' block-bootstrap
    95% intervals. Dashed lines: the un-fine-tuned (zero-shot) network, raw and calibrated.
    """
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, key, title in (
        (axes[0], "steering_r2", "steering R$^2$ (higher is better)"),
        (axes[1], "steering_mae", "steering MAE (lower is better)"),
    ):
        for arm, points in curves.items():
            if not points:
                continue
            color, label = ARM_STYLE.get(arm, ("black", arm))
            _band(ax, [p["frames"] for p in points], points, key, color, label)
        if zero_shot:
            for variant, style in (("raw", "--"), ("calibrated", ":")):
                value = zero_shot.get(variant, {}).get(key, {}).get("value")
                if value is not None:
                    ax.axhline(value, color="gray", linestyle=style, label=f"zero-shot ({variant})")
        ax.set_xscale("log")
        ticks = sorted({p["frames"] for points in curves.values() for p in points})
        if ticks:
            from matplotlib.ticker import NullFormatter, ScalarFormatter

            ax.set_xticks(ticks)
            ax.xaxis.set_major_formatter(ScalarFormatter())
            ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("real training frames")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    return _save(fig, path)


def freeze_depth(
    sweeps: Mapping[str, Sequence[Mapping[str, Any]]],
    recommended: Mapping[str, int],
    stage_names: Sequence[str],
    path: Path,
) -> Path:
    """Steering R^2 on the real test block vs the number of frozen stages, one line per N."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    colors = plt.cm.viridis(np.linspace(0.1, 0.85, max(1, len(sweeps))))
    for color, (frames, points) in zip(colors, sweeps.items(), strict=False):
        _band(ax, [p["freeze"] for p in points], points, "steering_r2", color, f"N = {frames}")
        k = recommended.get(frames)
        if k is not None:
            match = [p for p in points if p["freeze"] == k]
            if match:
                ax.plot(
                    [k],
                    [match[0]["steering_r2"]["mean"]],
                    "*",
                    color=color,
                    markersize=16,
                    markeredgecolor="black",
                )
    ax.set_xticks(range(len(stage_names) + 1))
    ax.set_xticklabels(["0"] + [f"{i + 1}\n{n}" for i, n in enumerate(stage_names)], fontsize=8)
    ax.set_xlabel("stages frozen (from the input); star: the recommended depth")
    ax.set_ylabel("steering R$^2$ (real test block)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def domain_gap(gaps: Mapping[str, Mapping[str, Mapping[str, float]]], path: Path) -> Path:
    """Proxy A-distance and MMD^2 per encoder stage, one bar group per start network."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    names = list(gaps)
    stages = list(next(iter(gaps.values()))) if gaps else []
    width = 0.8 / max(1, len(names))
    x = np.arange(len(stages))
    for ax, key, title in (
        (axes[0], "proxy_a_distance", "proxy A-distance (0: indistinguishable, 2: separable)"),
        (axes[1], "mmd2", "MMD$^2$ (RBF, unbiased)"),
    ):
        for i, name in enumerate(names):
            values = [gaps[name][s].get(key, np.nan) for s in stages]
            ax.bar(x + (i - (len(names) - 1) / 2) * width, values, width, label=name)
        ax.set_xticks(x)
        ax.set_xticklabels(stages)
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3, axis="y")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(
        handles, labels, loc="upper center", ncol=len(names), fontsize=8, bbox_to_anchor=(0.5, 1.08)
    )
    return _save(fig, path)


def paired_bars(
    rows: Sequence[Mapping[str, Any]],
    series: Sequence[tuple[str, str]],
    ylabel: str,
    path: Path,
) -> Path:
    """Grouped bars with interval whiskers: rows have "name" and, per series key, an
    interval dict {value, low, high}; `series` is [(key, legend label)]."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(6.0, 1.3 * len(rows) + 2), 4.2))
    x = np.arange(len(rows))
    width = 0.8 / max(1, len(series))
    for i, (key, label) in enumerate(series):
        values = np.array([_get(r, key, "value") for r in rows], float)
        low = np.array([_get(r, key, "low") for r in rows], float)
        high = np.array([_get(r, key, "high") for r in rows], float)
        err = np.vstack([values - low, high - values])
        err = np.where(np.isfinite(err), np.abs(err), 0.0)
        ax.bar(
            x + (i - (len(series) - 1) / 2) * width,
            np.nan_to_num(values),
            width,
            yerr=err,
            capsize=3,
            label=label,
        )
    ax.set_xticks(x)
    ax.set_xticklabels([r["name"] for r in rows], rotation=20, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)
    ax.axhline(0, color="black", linewidth=0.6)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8)
    return _save(fig, path)


def _get(row: Mapping[str, Any], key: str, field: str) -> float:
    value = (row.get(key) or {}).get(field)
    return np.nan if value is None else float(value)


def _steering_line(image: np.ndarray, steering: float, color: tuple[int, int, int], length: float):
    h, w = image.shape[:2]
    angle = np.deg2rad(float(np.clip(steering, -1.0, 1.0)) * 45.0)
    start = (w // 2, h - 4)
    end = (int(start[0] + length * np.sin(angle)), int(start[1] - length * np.cos(angle)))
    cv2.arrowedLine(image, start, end, color, 3, cv2.LINE_AA, tipLength=0.2)


def frame_strip(
    images: Sequence[np.ndarray],
    truth: Sequence[float],
    predictions: Mapping[str, Sequence[float]],
    path: Path,
    *,
    per_row: int = 4,
    scale: int = 2,
) -> Path:
    """Real frames (H, W, 3) uint8 RGB with true steering (white) and each network's
    prediction drawn as arrows from the bottom centre (full lock = 45 degrees), values
    written below; `predictions` maps a legend name to one value per frame."""
    palette = [(255, 140, 0), (30, 144, 255), (50, 205, 50), (220, 20, 60)]
    tiles = []
    for i, image in enumerate(images):
        tile = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
        tile = np.ascontiguousarray(tile)
        length = tile.shape[0] * 0.45
        _steering_line(tile, truth[i], (255, 255, 255), length)
        for color, values in zip(palette, predictions.values(), strict=False):
            _steering_line(tile, values[i], color, length * 0.8)
        text = np.full((18 * (1 + len(predictions)), tile.shape[1], 3), 255, np.uint8)
        cv2.putText(
            text,
            f"true {truth[i]:+.2f}",
            (4, 13),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.45,
            (0, 0, 0),
            1,
            cv2.LINE_AA,
        )
        for j, (color, (name, values)) in enumerate(
            zip(palette, predictions.items(), strict=False)
        ):
            cv2.putText(
                text,
                f"{name} {values[i]:+.2f}",
                (4, 13 + 18 * (j + 1)),
                cv2.FONT_HERSHEY_SIMPLEX,
                0.45,
                color,
                1,
                cv2.LINE_AA,
            )
        tiles.append(np.vstack([tile, text]))
    while len(tiles) % per_row:
        tiles.append(np.full_like(tiles[0], 255))
    rows = [np.hstack(tiles[i : i + per_row]) for i in range(0, len(tiles), per_row)]
    sheet = np.vstack(rows)
    from sim2real.common.io import atomic_write_bytes

    ok, png = cv2.imencode(".png", cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError("PNG encoding of the frame strip failed")
    atomic_write_bytes(path, png.tobytes())
    return path
