"""Unlabeled real camera frames for fitting the simulator: a span of each recording, evenly
subsampled and decoded to a common size."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from sim2real.transfer.datasets import read_sources
from sim2real.transfer.records import Record, decode_threads, read_image_rgb
from sim2real.transfer.splits import streams


def span_records(
    records: Sequence[Record], span: tuple[float, float], max_frames: int
) -> list[Record]:
    """The records in fraction `span` (start, end) of each (source, session) stream, in time
    order, then at most `max_frames` of them evenly spaced."""
    start, end = span
    if not 0.0 <= start < end <= 1.0:
        raise ValueError(f"span must be 0 <= start < end <= 1, got {span}")
    kept: list[Record] = []
    for stream in streams(records):
        n = len(stream)
        kept.extend(stream[int(np.floor(start * n)) : int(np.floor(end * n))])
    if len(kept) > max_frames:
        idx = np.linspace(0, len(kept) - 1, max_frames).round().astype(int)
        kept = [kept[i] for i in idx]
    return kept


def load_real_frames(
    paths: Sequence[str | Path],
    *,
    max_frames: int = 1000,
    span: tuple[float, float] = (0.0, 1.0),
    size: tuple[int, int] = (120, 160),
) -> np.ndarray:
    """Frames (N, H, W, 3) uint8 RGB resized to `size` (H, W) from tubs, folders of tubs or
    CSV folders; labels are not needed. Unreadable images are skipped. Raises ValueError when
    a path holds no records."""
    if not paths:
        raise ValueError("no real dataset path given")
    record_set = read_sources(paths)
    if not record_set.records:
        names = ", ".join(str(p) for p in paths)
        raise ValueError(f"{names}: no usable frames ({record_set.report.summary()})")
    records = span_records(record_set.records, span, max_frames)
    height, width = size

    def load(record: Record) -> np.ndarray | None:
        image = read_image_rgb(record.image_path)
        if image is None:
            return None
        if image.shape[:2] != (height, width):
            image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
        return image

    with ThreadPoolExecutor(decode_threads()) as pool:
        images = [im for im in pool.map(load, records) if im is not None]
    if not images:
        return np.zeros((0, height, width, 3), np.uint8)
    return np.stack(images)
