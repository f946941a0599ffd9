"""The one way training data is opened: read, check labels, split, subsample, build datasets.

`open_training_data` serves pretraining on sim tubs, DAgger, fine-tuning on real tubs and
co-training; `sim2real.transfer.splits.split_records` (which it calls) also serves evaluation
and the study, so every command cuts a recording the same way for the same `SplitSpec`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sim2real.agents.preprocessing import Preprocessing
from sim2real.agents.temporal import Temporal
from sim2real.common.splitspec import SplitSpec
from sim2real.transfer.datasets import DrivingDataset, RecordSet, open_records
from sim2real.transfer.splits import Split, split_records, subsample
from sim2real.transfer.tub import RANDOMIZATION_KEY, is_tub, read_manifest

log = logging.getLogger(__name__)

MIN_VAL_FRAMES = 20
"""fewest validation frames kept when `frames` subsamples the validation block too"""


@dataclass
class TrainingData:
    """Training and validation frame sets for one label list, and where they came from."""

    train: DrivingDataset
    val: DrivingDataset
    split: SplitSpec
    parts: Split
    """the records of each part: train and val as served (subsampled), test held out"""
    trained_on: dict[str, Any]
    """JSON-ready account of the data, for the model card's `trained_on`"""
    randomization: dict[str, Any] | None = None
    """the randomization each sim tub was recorded with (from its manifest), by tub path"""


def recorded_randomization(sources: Sequence[str | Path]) -> dict[str, Any] | None:
    """The randomization each tub among `sources` was recorded with, by source, from its
    manifest's user metadata (`RANDOMIZATION_KEY`); None when none records one (real tubs,
    CSV folders, and sim tubs recorded before the spec travelled in the manifest)."""
    found: dict[str, Any] = {}
    for source in sources:
        path = Path(source)
        if not is_tub(path):
            continue
        metadata = read_manifest(path)["metadata"]
        entry = metadata.get(RANDOMIZATION_KEY) if isinstance(metadata, dict) else None
        if isinstance(entry, dict):
            found[str(source)] = entry
    return found or None


def _check_labels(records, outputs: Sequence[str], names: str, present: list[str]) -> dict:
    counts = {name: sum(name in r.labels for r in records) for name in outputs}
    missing = [name for name, n in counts.items() if n == 0]
    if missing:
        raise ValueError(
            f"{names}: no record has label(s) {missing}; labels present: {present}; choose "
            "outputs (model.outputs, adapter.outputs) the data has"
        )
    return counts


def _subsample_parts(parts: Split, split: SplitSpec, frames: int, seed: int) -> tuple[list, list]:
    """`frames` training records as blocks (seed), and the validation block in proportion
    to them (at least MIN_VAL_FRAMES, seed + 1): the data a user with `frames` would have."""
    if frames > len(parts.train):
        log.warning(
            "asked for %d frames, the training part has %d: using all", frames, len(parts.train)
        )
    train = subsample(parts.train, frames, seed)
    train_share = 1.0 - split.val_fraction - split.test_fraction
    n_val = max(MIN_VAL_FRAMES, round(frames * split.val_fraction / train_share))
    val = subsample(parts.val, n_val, seed + 1) if n_val < len(parts.val) else parts.val
    return train, val


def open_training_data(
    paths: Sequence[str | Path] | RecordSet,
    outputs: Sequence[str],
    preprocessing: Preprocessing,
    split: SplitSpec,
    frames: int | None = None,
    seed: int = 0,
    *,
    max_frames: int | None = None,
    include_pilot: bool = False,
    cache_dir: str | Path | None = None,
    progress: bool = True,
    temporal: Temporal | None = None,
) -> TrainingData:
    """Read `paths` (tubs, folders of tubs, CSV folders; or records already read), split them
    as `split` says, subsample, and build the (train, val) frame datasets for `outputs`.

    `max_frames`: first a block subsample of this many of all records (seed `seed`), then the
    split (a pretraining budget). `frames`: after the split, a block subsample of this many
    training frames (seed `seed`) and of the validation block in proportion (seed `seed` + 1);
    the test block is never touched, so it stays the same for every `frames` (a fine-tuning
    budget). The episodes split is drawn with `seed`. ValueError, naming the data, when a
    label is absent from every record, or too few records are left for a part.
    `temporal`: with its inputs on, each dataset also gets its `context` (the previous
    action, looked up among every record read: `sim2real.transfer.temporal`), or its
    `previous_index` (the earlier frame's row, for `previous_frame_gap`).
    """
    if isinstance(paths, RecordSet):
        record_set, sources = paths, list(paths.reports)
        names = ", ".join(sources)
    else:
        if not paths:
            raise ValueError("no data given: pass at least one tub path (--data)")
        record_set = open_records(paths, include_pilot=include_pilot)
        sources = [str(Path(p).expanduser().resolve()) for p in paths]
        names = ", ".join(str(p) for p in paths)
    records = record_set.records
    if max_frames is not None:
        records = subsample(records, max_frames, seed=seed)
    counts = _check_labels(records, outputs, names, record_set.label_names)
    try:
        parts = split_records(records, split, seed=seed)
    except ValueError as exc:
        raise ValueError(f"{names}: {exc}") from exc
    train, val = parts.train, parts.val
    if frames is not None:
        train, val = _subsample_parts(parts, split, frames, seed)
    if len(train) < 2:
        raise ValueError(f"{names}: only {len(train)} training frame(s)")
    if not val:
        raise ValueError(f"{names}: too few records for a validation block")
    folder = Path(cache_dir) if cache_dir else None
    train_set, val_set = (
        DrivingDataset(
            part, preprocessing, list(outputs), folder, progress=progress, report=record_set.report
        )
        for part in (train, val)
    )
    if temporal is not None and temporal.previous_action:
        from sim2real.transfer.temporal import previous_actions

        for dataset in (train_set, val_set):
            dataset.context, _ = previous_actions(dataset.records, record_set.records)
    if temporal is not None and temporal.previous_frame_gap:
        from sim2real.transfer.temporal import attach_previous_frames

        for dataset in (train_set, val_set):
            attach_previous_frames(dataset, temporal.previous_frame_gap)
    trained_on = {
        "paths": sources,
        "frames": {  # (frames whose image did not decode are not counted)
            "train": len(train_set),
            "val": len(val_set),
            "test": len(parts.test),
        },
        "subsample": {"max_frames": max_frames, "frames": frames, "seed": seed},
        "label_counts": counts,
        "read_report": record_set.report.to_dict(),
        "source_size": list(train_set.source_shape[:2]),
    }
    if include_pilot:  # the split was cut from the pilot's frames too: evaluate cuts it so
        trained_on["include_pilot"] = True
    return TrainingData(
        train=train_set,
        val=val_set,
        split=split,
        parts=Split(train=train, val=val, test=parts.test),
        trained_on=trained_on,
        randomization=recorded_randomization(list(record_set.reports)),
    )
