"""What is in a driving dataset: counts, label statistics, a steering histogram, a contact sheet.

Backs `sim2real data inspect`. Unlike `open_records`, inspection never fails on a high bad
fraction: it reports it. Images are decoded (check_images) so unreadable ones are counted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from sim2real.common.io import agg_pyplot, atomic_save_figure, atomic_write_bytes
from sim2real.transfer.csv_folder import CsvColumns
from sim2real.transfer.datasets import read_sources
from sim2real.transfer.records import Record, read_image_rgb

STEERING = "user/angle"


def label_statistics(records: Sequence[Record]) -> dict[str, dict[str, float]]:
    """Per label: count, mean, std, min, p05, median, p95, max and the share exactly 0."""
    names: dict[str, None] = {}
    for record in records:
        names.update(dict.fromkeys(record.labels))
    stats = {}
    for name in names:
        values = np.array([r.labels[name] for r in records if name in r.labels], np.float64)
        p05, p50, p95 = np.percentile(values, [5, 50, 95])
        stats[name] = {
            "count": int(values.size),
            "mean": float(values.mean()),
            "std": float(values.std()),
            "min": float(values.min()),
            "p05": float(p05),
            "median": float(p50),
            "p95": float(p95),
            "max": float(values.max()),
            "zero_fraction": float(np.mean(values == 0.0)),
        }
    return stats


def steering_counts(records: Sequence[Record], bins: int = 41) -> dict[str, list[float]]:
    """Histogram of `user/angle` over [-1, 1]: {"edges": bins + 1 floats, "counts": bins ints}."""
    values = [r.labels[STEERING] for r in records if STEERING in r.labels]
    counts, edges = np.histogram(values, bins=np.linspace(-1.0, 1.0, bins + 1))
    return {"edges": [round(float(e), 6) for e in edges], "counts": counts.tolist()}


def inspect_paths(
    paths: Sequence[str | Path],
    *,
    csv_columns: CsvColumns | Mapping[str, Any] | str | Path | None = None,
    check_images: bool = True,
    include_pilot: bool = False,
) -> tuple[dict[str, Any], list[Record]]:
    """Read every path and summarise it: (summary dict, usable records).

    The summary holds `counts` (all sources), `sources` (counts per source), `labels`
    (statistics), `sessions` and `duration_s` (timestamp span summed over sessions).
    """
    record_set = read_sources(
        paths, csv_columns=csv_columns, check_images=check_images, include_pilot=include_pilot
    )
    records = record_set.records
    sessions: dict[str, list[int]] = {}
    for record in records:
        if record.timestamp_ms is not None:
            sessions.setdefault(f"{record.source}:{record.session}", []).append(record.timestamp_ms)
    duration = sum((max(t) - min(t)) / 1000 for t in sessions.values())
    summary = {
        "paths": [str(p) for p in paths],
        "counts": record_set.report.to_dict(),
        "sources": {source: report.to_dict() for source, report in record_set.reports.items()},
        "sessions": sorted({r.session for r in records}),
        "duration_s": duration,
        "labels": label_statistics(records) if records else {},
        "steering_histogram": steering_counts(records),
        "images_checked": check_images,
    }
    return summary, records


def format_summary(summary: Mapping[str, Any]) -> str:
    """Human-readable lines for the terminal."""
    counts = summary["counts"]
    lines = [
        f"records {counts['total']}  deleted {counts['deleted']}  superseded "
        f"{counts['superseded']}  garbled {counts['bad_record']}  missing images "
        f"{counts['missing_image']}  unreadable images {counts['unreadable_image']}  "
        f"bad labels {counts['bad_label']}  usable {counts['usable']}",
        f"sessions {len(summary['sessions'])}  duration {summary['duration_s']:.0f} s",
    ]
    if counts.get("pilot_driven"):
        lines.append(
            f"pilot-driven frames skipped {counts['pilot_driven']} (user/mode local or "
            "local_angle: not a person's driving; --include-pilot keeps them)"
        )
    if counts.get("pilot_included"):
        lines.append(f"pilot-driven frames included {counts['pilot_included']}")
    if counts.get("mode_missing"):
        lines.append(
            f"no user/mode on {counts['mode_missing']} usable records: taken as driven by a person"
        )
    if counts.get("frame_sizes"):
        lines.append("frames " + ", ".join(f"{w}x{h}" for h, w in counts["frame_sizes"]))
    for name, s in summary["labels"].items():
        lines.append(
            f"  {name:<20} mean {s['mean']:+.3f}  std {s['std']:.3f}  min {s['min']:+.3f}  "
            f"median {s['median']:+.3f}  max {s['max']:+.3f}  zero {s['zero_fraction']:.0%}"
        )
    lines += [f"  e.g. {example}" for example in counts["examples"][:5]]
    return "\n".join(lines)


def steering_histogram(records: Sequence[Record], path: str | Path, label: str = STEERING) -> None:
    """PNG histogram of `label` over the records (41 bins over [-1, 1] for steering)."""
    values = np.array([r.labels[label] for r in records if label in r.labels])
    if values.size == 0:
        raise ValueError(f"no record has the label {label!r}")
    fig, ax = agg_pyplot().subplots(figsize=(6, 3.5))
    low, high = (-1.0, 1.0) if label == STEERING else (values.min(), values.max() + 1e-9)
    ax.hist(values, bins=np.linspace(low, high, 42), color="tab:blue")
    ax.set_xlabel(f"{label}" + (" (-1 = full left)" if label == STEERING else ""))
    ax.set_ylabel("frames")
    ax.set_title(f"{len(values)} frames, {np.mean(values == 0):.0%} exactly 0")
    fig.tight_layout()
    atomic_save_figure(fig, Path(path), dpi=100)


def contact_sheet(
    records: Sequence[Record], path: str | Path, *, count: int = 24, columns: int = 6
) -> None:
    """PNG grid of `count` frames evenly spaced over the records, each captioned with its
    index and steering; frames are shown at their own size (resized to the first frame's)."""
    if not records:
        raise ValueError("no records to show")
    picks = np.unique(np.linspace(0, len(records) - 1, min(count, len(records))).astype(int))
    first = read_image_rgb(records[picks[0]].image_path)
    height, width = first.shape[:2] if first is not None else (120, 160)
    caption = 16
    rows = int(np.ceil(len(picks) / columns))
    sheet = np.full((rows * (height + caption), columns * width, 3), 255, np.uint8)
    for slot, i in enumerate(picks):
        record = records[i]
        top, left = (slot // columns) * (height + caption), (slot % columns) * width
        image = read_image_rgb(record.image_path)
        if image is not None:
            image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
            sheet[top + caption : top + caption + height, left : left + width] = image
        angle = record.labels.get(STEERING)
        text = f"#{record.index}" + (f" {angle:+.2f}" if angle is not None else "")
        cv2.putText(sheet, text, (left + 3, top + 12), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0))
    ok, data = cv2.imencode(".png", cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError(f"{path}: PNG encoding failed")
    atomic_write_bytes(Path(path), data.tobytes())
