"""Train/validation/test splits by contiguous time blocks or whole sessions, and subsampling.

Adjacent frames at 20 Hz are near-duplicates: a random frame split puts the twin of almost
every validation frame in training and inflates every score. So splits here never cut a
sequence into random frames: each stream (records of one source and session, in order) is
cut into a leading training block and trailing held-out blocks, or whole sessions are held
out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from sim2real.common.splitspec import SplitSpec
from sim2real.transfer.records import Record

REAL_SPLIT = SplitSpec(kind="time_block", val_fraction=0.15, test_fraction=0.2, gap=20)
"""the split of real recordings: fine-tuning's default, and the one `evaluate` assumes for a
checkpoint whose card records no fine-tuning split (so every network of a study is scored on
the same test block)"""


@dataclass(frozen=True)
class Split:
    """Three disjoint lists of records, each in time order."""

    train: list[Record]
    val: list[Record]
    test: list[Record] = field(default_factory=list)

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}


def streams(records: Sequence[Record]) -> list[list[Record]]:
    """Group records into runs of one (source, session), keeping their order."""
    groups: dict[tuple[str, str], list[Record]] = {}
    for record in records:
        groups.setdefault((record.source, record.session), []).append(record)
    return list(groups.values())


def _check_fractions(val_fraction: float, test_fraction: float) -> None:
    if val_fraction < 0 or test_fraction < 0 or val_fraction + test_fraction >= 1:
        raise ValueError(
            f"val_fraction ({val_fraction}) and test_fraction ({test_fraction}) must be "
            "non-negative and sum to less than 1"
        )


def time_block_split(
    records: Sequence[Record],
    val_fraction: float = 0.2,
    *,
    test_fraction: float = 0.0,
    gap: int = 0,
) -> Split:
    """Hold out the later part of every stream: [train | gap | val | gap | test].

    Each (source, session) stream is cut in time order: its first part trains, the next
    `val_fraction` validates, the last `test_fraction` tests. `gap` frames are dropped at each
    cut so the frames on either side of a boundary are not near-duplicates (20 = 1 s). A
    stream too short to cut goes whole to training; ValueError when a requested part would
    be empty.
    """
    _check_fractions(val_fraction, test_fraction)
    if gap < 0:
        raise ValueError(f"gap must be >= 0, got {gap}")
    train: list[Record] = []
    val: list[Record] = []
    test: list[Record] = []
    for stream in streams(records):
        n = len(stream)
        n_test = round(n * test_fraction)
        n_val = round(n * val_fraction)
        test_start = n - n_test
        val_start = test_start - (gap if n_test else 0) - n_val
        train_end = val_start - (gap if n_val else 0)
        if train_end <= 0:
            train += stream  # too short to cut (a sim episode that ended at once): train whole
            continue
        train += stream[:train_end]
        val += stream[val_start : val_start + n_val]
        test += stream[test_start:]
    for name, fraction, part in (("val", val_fraction, val), ("test", test_fraction, test)):
        if fraction > 0 and not part:
            raise ValueError(
                f"time_block_split: {len(records)} records in {len(streams(records))} streams are "
                f"too few for {name}_fraction {fraction} with gap {gap}"
            )
    return Split(train=train, val=val, test=test)


def session_split(
    records: Sequence[Record],
    val_sessions: Sequence[str],
    test_sessions: Sequence[str] = (),
) -> Split:
    """Hold out whole sessions by name; every other session trains."""
    val_set, test_set = set(val_sessions), set(test_sessions)
    held_out = val_set | test_set
    known = {record.session for record in records}
    unknown = sorted(held_out - known)
    if unknown:
        raise ValueError(f"sessions {unknown} not found; known sessions: {sorted(known)}")
    overlap = val_set & test_set
    if overlap:
        raise ValueError(f"sessions {sorted(overlap)} are both validation and test")
    val = [r for r in records if r.session in val_set]
    test = [r for r in records if r.session in test_set]
    train = [r for r in records if r.session not in held_out]
    if not train:
        raise ValueError("session_split: every session is held out, none left to train on")
    return Split(train=train, val=val, test=test)


def episode_split(records: Sequence[Record], val_fraction: float, *, seed: int) -> Split:
    """Hold out a seed-drawn `val_fraction` of whole (source, session) streams for validation.

    For sim recordings of many short randomized episodes: validation then scores unseen
    tracks and appearances, and no frames are lost to gaps at cuts. ValueError when there are
    fewer than two streams.
    """
    _check_fractions(val_fraction, 0.0)
    groups = streams(records)
    if len(groups) < 2:
        raise ValueError(
            f"episode_split: {len(records)} records form {len(groups)} stream(s); holding out "
            "whole episodes needs at least 2 (use the time-block split)"
        )
    n_val = min(max(1, round(len(groups) * val_fraction)), len(groups) - 1)
    held_out = set(np.random.default_rng(seed).choice(len(groups), n_val, replace=False).tolist())
    train = [r for i, g in enumerate(groups) if i not in held_out for r in g]
    val = [r for i, g in enumerate(groups) if i in held_out for r in g]
    return Split(train=train, val=val)


def split_records(records: Sequence[Record], spec: SplitSpec, *, seed: int) -> Split:
    """Cut `records` as `spec` says: `time_block_split`, or `episode_split` drawn with `seed`."""
    if spec.kind == "episodes":
        return episode_split(records, spec.val_fraction, seed=seed)
    return time_block_split(
        records, spec.val_fraction, test_fraction=spec.test_fraction, gap=spec.gap
    )


def subsample(records: Sequence[Record], n: int, seed: int, *, block_len: int = 10) -> list[Record]:
    """`n` records as short contiguous blocks spread over the sequence, reproducible by seed.

    Why blocks: single random frames of a 20 Hz recording would look like more data than
    they are, and one long block would see one stretch of track. The sequence is divided
    into k = ceil(n / block_len) equal strata; each stratum gives one contiguous block (sizes
    differ by at most one frame) at a seed-drawn position, so the sample covers the whole
    recording (straights and turns) and keeps temporal context. n >= len(records) returns
    every record. The result is in the input order.
    """
    if n < 1:
        raise ValueError(f"subsample: n must be >= 1, got {n}")
    if block_len < 1:
        raise ValueError(f"subsample: block_len must be >= 1, got {block_len}")
    total = len(records)
    if n >= total:
        return list(records)
    rng = np.random.default_rng(seed)
    k = math.ceil(n / block_len)
    block_sizes = [n // k + (1 if j < n % k else 0) for j in range(k)]
    stratum_sizes = [total // k + (1 if j < total % k else 0) for j in range(k)]
    chosen: list[Record] = []
    start = 0
    for size, stratum in zip(block_sizes, stratum_sizes, strict=True):
        offset = int(rng.integers(0, stratum - size + 1))
        chosen += records[start + offset : start + offset + size]
        start += stratum
    return chosen


def min_frames_for_folds(folds: int, gap: int = 0) -> int:
    """Fewest frames `kfold_blocks` accepts: two held-out frames per fold, and two training
    frames left in every fold after the gaps."""
    n = 2 * folds
    while n - math.ceil(n / folds) - 2 * gap < 2:
        n += 1
    return n


def kfold_blocks(n: int, folds: int, *, gap: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """K-fold cross-validation over `n` frames in time order, by contiguous blocks.

    Fold k holds out the k-th of `folds` equal contiguous blocks (sizes differ by at most
    one) and trains on the rest minus `gap` frames on each side of the held-out block (20 Hz
    neighbours are near-twins). Returns (train indices, held-out indices) per fold, each
    sorted. ValueError (saying how many are needed) when `n` is too small.
    """
    if folds < 2:
        raise ValueError(f"cross-validation needs at least 2 folds, got {folds}")
    if gap < 0:
        raise ValueError(f"gap must be >= 0, got {gap}")
    need = min_frames_for_folds(folds, gap)
    if n < need:
        raise ValueError(
            f"{folds}-fold cross-validation (gap {gap}) needs at least {need} frames, got {n}"
        )
    bounds = np.linspace(0, n, folds + 1).round().astype(int)
    out = []
    for start, stop in zip(bounds[:-1], bounds[1:], strict=True):
        index = np.arange(n)
        held = index[start:stop]
        train = index[(index < start - gap) | (index >= stop + gap)]
        out.append((train, held))
    return out
