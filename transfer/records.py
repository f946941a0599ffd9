"""One labelled camera frame (`Record`) and the account of what a reader skipped (`ReadReport`).

Every reader (DonkeyCar tub v2, image folder + CSV) yields `Record`s in time order and fills a
`ReadReport`; `sim2real.transfer.datasets.open_records` is the entry point that picks the reader.
`run_key` is the one definition of an unbroken run of frames (same source and session,
consecutive indexes) that temporal inputs, rollouts and self-training's smoothing share.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import cv2
import numpy as np

# Labels a record may lack (DonkeyCar writes pilot/* only on frames where the pilot ran, with
# RECORD_DURING_AI = True); any other label a tub declares must be present.
OPTIONAL_LABELS = ("pilot/angle", "pilot/throttle")

# Labels with a known valid range; a value outside it makes the record a bad record.
# DonkeyCar convention: steering -1 = full left, +1 = full right; throttle in [-1, 1].
LABEL_RANGES: dict[str, tuple[float, float]] = {
    "user/angle": (-1.0, 1.0),
    "user/throttle": (-1.0, 1.0),
    "pilot/angle": (-1.0, 1.0),
    "pilot/throttle": (-1.0, 1.0),
}

MAX_EXAMPLES = 10
"""How many example problems a `ReadReport` keeps (the counts are always complete)."""


@dataclass(frozen=True)
class Record:
    """One camera frame with its labels.

    `index` is the frame's index within its source (a tub's `_index`, a CSV's row number),
    `timestamp_ms` wall-clock (or simulated) milliseconds when known, `labels` every numeric
    label by name (`user/angle`, `user/throttle`, `sim/cte`, ...), `source` the dataset path,
    `mode` DonkeyCar's `user/mode` (`user`, `local_angle`, `local`) when recorded.
    """

    index: int
    session: str
    timestamp_ms: int | None
    image_path: Path
    labels: dict[str, float]
    source: str
    mode: str | None = None


@dataclass
class ReadReport:
    """Counts of what a reader found; `usable` records are the ones returned.

    total = deleted + superseded + pilot_driven + bad_record + missing_image + unreadable_image
    + bad_label + usable, where `total` counts every record line (or CSV row) read.
    """

    total: int = 0
    deleted: int = 0
    """records whose index is listed in the tub's `deleted_indexes`"""
    superseded: int = 0
    """earlier records whose index was written again later (the later one counts)"""
    pilot_driven: int = 0
    """records whose `user/mode` says the pilot drove (`local`, `local_angle`): their
    `user/*` values are not a person's driving, so they are no labels (unless included)"""
    bad_record: int = 0
    """garbled catalog lines / CSV rows, records without an index or image name"""
    missing_image: int = 0
    unreadable_image: int = 0
    """image file present but not decodable (only checked with check_images=True)"""
    bad_label: int = 0
    """a label is missing, not a number, not finite, or outside its range (LABEL_RANGES)"""
    usable: int = 0
    pilot_included: int = 0
    """of the usable records, those the pilot drove (kept because they were asked for)"""
    mode_missing: int = 0
    """of the usable records, those without `user/mode` (taken as driven by a person)"""
    frame_sizes: list[list[int]] = field(default_factory=list)
    """distinct [height, width] px of the frames (the first usable frame of each source)"""
    examples: list[str] = field(default_factory=list)

    @property
    def bad(self) -> int:
        """Records skipped for a problem (not counting deleted or superseded ones)."""
        return self.bad_record + self.missing_image + self.unreadable_image + self.bad_label

    @property
    def bad_fraction(self) -> float:
        """bad / (bad + usable): the share of candidate records that had a problem."""
        candidates = self.bad + self.usable
        return self.bad / candidates if candidates else 0.0

    def note(self, message: str) -> None:
        """Keep `message` as an example problem (only the first MAX_EXAMPLES are kept)."""
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(message)

    def merge(self, other: ReadReport) -> None:
        """Add `other`'s counts and examples to this report."""
        for f in fields(self):
            if f.name == "examples":
                for message in other.examples:
                    self.note(message)
            elif f.name == "frame_sizes":
                for size in other.frame_sizes:
                    self.add_frame_size(size)
            else:
                setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of the counts, `bad_fraction` and the examples (JSON-ready)."""
        data = asdict(self)
        data["bad_fraction"] = self.bad_fraction
        return data

    def add_frame_size(self, size: Iterable[int]) -> None:
        """Note a frame size [height, width] (kept once)."""
        size = [int(v) for v in size]
        if size not in self.frame_sizes:
            self.frame_sizes.append(size)

    def summary(self) -> str:
        """One line of counts, e.g. `total 120, deleted 10, ..., usable 100`."""
        skip = ("examples", "frame_sizes", "pilot_included", "mode_missing")
        names = [f.name for f in fields(self) if f.name not in skip]
        text = ", ".join(f"{name.replace('_', ' ')} {getattr(self, name)}" for name in names)
        if self.pilot_included:
            text += f" (of which {self.pilot_included} pilot-driven, included)"
        if self.mode_missing:
            text += (
                f"; {self.mode_missing} usable record(s) have no user/mode and are taken as "
                "driven by a person"
            )
        if self.frame_sizes:
            text += "; frames " + ", ".join(f"{w}x{h}" for h, w in self.frame_sizes)
        return text


RunKey = tuple[str, str, int]
"""(source, session, index): where a frame stands in its recording."""


def run_key(record: Record, back: int = 0) -> RunKey:
    """The key of the frame `back` steps before `record` in its unbroken run of frames.

    An unbroken run is the records of one source and session with consecutive indexes (a
    tub's `_index`, a CSV's row number): a new session, a deleted record or one a reader
    skipped ends it. This is the one definition every temporal use shares (`earlier_positions`,
    `run_starts`, `run_ids`)."""
    return record.source, record.session, record.index - back


def earlier_positions(
    records: Sequence[Record], back: int = 1, among: Sequence[Record] | None = None
) -> np.ndarray:
    """(N,) int64: for each of `records`, the position in `among` (default `records`) of the
    frame `back` steps before it in its run (`run_key`), -1 where `among` lacks it (a run's
    first `back` frames, after a gap in the indexes, or at the edge of a block cut out).

    Where the predecessor is looked up is the one thing callers choose: among every record
    read when only its labels are needed (the previous action), among the records served when
    its image or prediction is (the previous frame, a rollout)."""
    pool = records if among is None else among
    where = {run_key(r): i for i, r in enumerate(pool)}
    return np.fromiter((where.get(run_key(r, back), -1) for r in records), np.int64, len(records))


def run_starts(records: Sequence[Record]) -> np.ndarray:
    """(N,) bool: True where a record does not directly follow the one before it in `records`
    in its run (`run_key`): a list's first record, a new source or session, a gap in the
    indexes, or the edge of a block cut out. Where a pilot starts from rest."""
    starts = np.ones(len(records), bool)
    for i in range(1, len(records)):
        starts[i] = run_key(records[i - 1]) != run_key(records[i], 1)
    return starts


def run_ids(records: Sequence[Record]) -> np.ndarray:
    """(N,) int64 id of the unbroken run (`run_starts`) each of `records` is in: 0, 0, 1, ..."""
    return np.cumsum(run_starts(records), dtype=np.int64) - 1


def run_lengths(runs: np.ndarray) -> np.ndarray:
    """(N,) the length in frames of the run each frame is in, from run ids `runs` (N,)."""
    _, inverse, counts = np.unique(runs, return_inverse=True, return_counts=True)
    return counts[inverse]


PILOT_MODES = ("local", "local_angle")
"""DonkeyCar `user/mode` values where the pilot steered (`local_angle`) or drove (`local`)."""
USER_MODE = "user/mode"


def pilot_drove(raw: dict[str, Any]) -> bool | None:
    """True when record `raw`'s `user/mode` says the pilot drove, False for `user`, None when
    the record has no `user/mode`."""
    mode = raw.get(USER_MODE)
    if mode is None:
        return None
    return str(mode) in PILOT_MODES


def note_frame_size(records: list[Record], report: ReadReport) -> None:
    """Record the size of the first decodable frame of `records` in `report` (one decode)."""
    for record in records[:5]:
        image = read_image_rgb(record.image_path)
        if image is not None:
            report.add_frame_size(image.shape[:2])
            return


def check_label(name: str, value: Any) -> str | None:
    """None when `value` is a valid label value for `name`, else the problem in words."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"{name}={value!r} is not a number"
    if not math.isfinite(value):
        return f"{name}={value!r} is not finite"
    low, high = LABEL_RANGES.get(name, (-math.inf, math.inf))
    if not low <= value <= high:
        return f"{name}={value!r} outside [{low}, {high}]"
    return None


def parse_labels(values: Iterable[tuple[str, Any]]) -> tuple[dict[str, float], str | None]:
    """(labels by name as floats, None), or ({}, the first problem found by `check_label`)."""
    labels = {}
    for name, value in values:
        problem = check_label(name, value)
        if problem:
            return {}, problem
        labels[name] = float(value)
    return labels, None


def read_image_rgb(path: str | Path) -> np.ndarray | None:
    """Decode an image file to (H, W, 3) uint8 RGB; None when it is missing or not decodable."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        return None
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def decode_threads() -> int:
    """Threads for decoding images (OpenCV drops the GIL): the CPU count, at most 4."""
    return max(1, min(4, os.cpu_count() or 1))


def keep_with_images(
    records: list[Record], report: ReadReport, *, check_images: bool, existing: set[str] | None
) -> list[Record]:
    """Drop records whose image is missing (or, with `check_images`, not decodable).

    `existing`: the image paths (as str) known to exist (a directory listing, cheaper than a
    stat per file); None means stat each file. Decoding runs on a few threads (OpenCV drops
    the GIL).
    """
    present = []
    for record in records:
        found = (
            str(record.image_path) in existing
            if existing is not None
            else record.image_path.is_file()
        )
        if found:
            present.append(record)
        else:
            report.missing_image += 1
            report.note(
                f"{record.source}: record {record.index}: image {record.image_path} missing"
            )
    if not check_images:
        return present
    with ThreadPoolExecutor(decode_threads()) as pool:
        readable = list(pool.map(lambda r: read_image_rgb(r.image_path) is not None, present))
    kept = []
    for record, ok in zip(present, readable, strict=True):
        if ok:
            kept.append(record)
        else:
            report.unreadable_image += 1
            report.note(
                f"{record.source}: record {record.index}: image {record.image_path} not decodable"
            )
    return kept
