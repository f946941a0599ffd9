"""Open driving datasets of any kind and serve them to torch with a disk cache of frames.

`open_records(paths)` detects each path's format (DonkeyCar tub v2, a folder of tubs, an image
folder with a CSV), reads it with bad records skipped and counted, and fails clearly when
nothing usable remains or too large a share is bad. `DrivingDataset` turns records into
(image, targets) pairs through the one `Preprocessing`, decoding each JPEG once per cache.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from sim2real.agents.checkpoint import ModelCard
from sim2real.agents.preprocessing import Preprocessing
from sim2real.transfer import cache
from sim2real.transfer.csv_folder import CsvColumns, find_csv, read_csv_folder, resolve_columns
from sim2real.transfer.records import ReadReport, Record, decode_threads, read_image_rgb
from sim2real.transfer.tub import is_tub, read_tub

log = logging.getLogger(__name__)


@dataclass
class RecordSet:
    """Usable records of one or more sources, in time order, and what was skipped."""

    records: list[Record]
    report: ReadReport
    reports: dict[str, ReadReport] = field(default_factory=dict)
    """one report per source read (tub folder or CSV file)"""

    def __len__(self) -> int:
        return len(self.records)

    @property
    def label_names(self) -> list[str]:
        """Every label name present in some record, in first-seen order."""
        names: dict[str, None] = {}
        for record in self.records:
            names.update(dict.fromkeys(record.labels))
        return list(names)


def dataset_kind(path: Path, csv_columns: CsvColumns | None = None) -> str:
    """ "tub", "tubs" (a folder of tubs), "csv"; ValueError/FileNotFoundError otherwise."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder")
    if path.is_file():
        if path.name == "manifest.json" and is_tub(path.parent):
            return "tub"
        if path.suffix.lower() == ".csv":
            return "csv"
        raise ValueError(f"{path}: not a dataset (expected a tub folder, a folder or a .csv file)")
    if is_tub(path):
        return "tub"
    if (path / "meta.json").is_file() and any(path.glob("record_*.json")):
        raise ValueError(f"{path}: DonkeyCar tub v1 is not supported; convert it to tub v2")
    if any(is_tub(child) for child in path.iterdir()):
        return "tubs"
    if find_csv(path, csv_columns or CsvColumns()) is not None:
        return "csv"
    if any(path.glob("catalog_*.catalog")):
        raise ValueError(f"{path}: tub catalogs found but manifest.json is missing")
    raise ValueError(
        f"{path}: not a dataset: no manifest.json (DonkeyCar tub v2), no sub-folders with "
        "tubs, no CSV file of labels"
    )


def read_source(
    path: str | Path,
    *,
    csv_columns: CsvColumns | Mapping[str, Any] | str | Path | None = None,
    check_images: bool = False,
    include_pilot: bool = False,
) -> list[tuple[str, list[Record], ReadReport]]:
    """Read one path (tub, folder of tubs, CSV folder) into (source, records, report) triples.

    `include_pilot`: keep tub records whose `user/mode` says the pilot drove (see `read_tub`).
    """
    path = Path(path).expanduser()
    columns = resolve_columns(csv_columns) if csv_columns is not None else None
    kind = dataset_kind(path, columns)
    check, pilot = check_images, include_pilot
    if kind == "tub" and path.is_file():
        path = path.parent  # the tub's manifest.json was named
    if kind == "tub":
        return [(str(path.resolve()), *read_tub(path, check_images=check, include_pilot=pilot))]
    if kind == "tubs":
        tubs = sorted((child for child in path.iterdir() if is_tub(child)), key=lambda p: p.name)
        return [
            (str(t.resolve()), *read_tub(t, check_images=check, include_pilot=pilot)) for t in tubs
        ]
    records, report = read_csv_folder(path, columns, check_images=check_images)
    return [(str(path.resolve()), records, report)]


def read_sources(
    paths: Sequence[str | Path],
    *,
    csv_columns: CsvColumns | Mapping[str, Any] | str | Path | None = None,
    check_images: bool = False,
    include_pilot: bool = False,
) -> RecordSet:
    """Read every path and concatenate their usable records (path order, then time order).

    No judgement of the result (see `open_records`): an empty or mostly bad set is returned.
    """
    records: list[Record] = []
    total = ReadReport()
    reports: dict[str, ReadReport] = {}
    for path in paths:
        for source, source_records, report in read_source(
            path, csv_columns=csv_columns, check_images=check_images, include_pilot=include_pilot
        ):
            records.extend(source_records)
            total.merge(report)
            reports[source] = report
    return RecordSet(records=records, report=total, reports=reports)


def open_records(
    paths: Sequence[str | Path] | str | Path,
    *,
    csv_columns: CsvColumns | Mapping[str, Any] | str | Path | None = None,
    max_bad_fraction: float = 0.5,
    check_images: bool = False,
    include_pilot: bool = False,
) -> RecordSet:
    """Read every path and concatenate their usable records (path order, then time order).

    Raises ValueError naming the paths when nothing usable remains, or when the share of bad
    records (bad / (bad + usable), deleted ones not counted) exceeds `max_bad_fraction`.
    `check_images` decodes every image to count unreadable ones (slower: about 0.3 ms each).
    `include_pilot` keeps frames the pilot drove (DonkeyCar `user/mode` local or local_angle),
    which are otherwise skipped and counted as `pilot_driven`: they are not a person's steering.
    """
    if isinstance(paths, str | Path):
        paths = [paths]
    if not paths:
        raise ValueError("open_records: no dataset path given")
    if not 0.0 <= max_bad_fraction <= 1.0:
        raise ValueError(f"max_bad_fraction must be in [0, 1], got {max_bad_fraction}")
    record_set = read_sources(
        paths, csv_columns=csv_columns, check_images=check_images, include_pilot=include_pilot
    )
    records, total = record_set.records, record_set.report
    names = ", ".join(str(p) for p in paths)
    details = "".join(f"; e.g. {example}" for example in total.examples[:2])
    if not records:
        raise ValueError(
            f"{names}: no usable records ({total.summary()}){details}; check the data with "
            "sim2real data inspect"
        )
    if total.bad_fraction > max_bad_fraction:
        raise ValueError(
            f"{names}: {total.bad_fraction:.0%} of records are bad, more than max_bad_fraction "
            f"{max_bad_fraction:.0%} ({total.summary()}){details}; repair or remove the bad "
            "files (sim2real data inspect lists them)"
        )
    if total.bad:
        log.warning("%s: skipped %d bad records (%s)", names, total.bad, total.summary())
    if total.pilot_driven:
        log.warning(
            "%s: skipped %d frames the pilot drove (user/mode local or local_angle: not a "
            "person's steering); include_pilot keeps them",
            names,
            total.pilot_driven,
        )
    if total.mode_missing:
        log.warning(
            "%s: %d records have no user/mode; taken as driven by a person",
            names,
            total.mode_missing,
        )
    return record_set


def check_source_sizes(card: ModelCard, reports: Mapping[str, ReadReport | dict]) -> None:
    """Raise ValueError naming the source when its frames differ in size from the frames
    `card`'s network was trained on (see `ModelCard.check_source_size`).

    `reports`: read report (or its `to_dict()`) by source, e.g. `RecordSet.reports`.
    """
    for source, report in reports.items():
        sizes = report.frame_sizes if isinstance(report, ReadReport) else report.get("frame_sizes")
        for size in sizes or []:
            card.check_source_size((int(size[0]), int(size[1])), source)


def decode_frames(
    records: Sequence[Record], preprocessing: Preprocessing, *, progress: bool = True
) -> tuple[np.ndarray, list[int]]:
    """Decode and preprocess every record's image: ((N, 3, H, W) uint8 RGB, bad indices).

    An image that is missing or does not decode leaves its row zero and its index in the
    returned list (in order), so one bad file costs one frame, not the run.
    """
    frames = np.zeros((len(records), *preprocessing.input_shape), dtype=np.uint8)

    def work(i: int) -> bool:
        image = read_image_rgb(records[i].image_path)
        if image is None:
            return False
        frames[i] = preprocessing.apply(image).transpose(2, 0, 1)
        return True

    with ThreadPoolExecutor(decode_threads()) as pool:
        decoded = list(
            tqdm(
                pool.map(work, range(len(records))),
                total=len(records),
                desc="decoding frames",
                unit="frame",
                disable=not progress,
                leave=False,
            )
        )
    return frames, [i for i, ok in enumerate(decoded) if not ok]


def count_undecodable(
    report: ReadReport, records: Sequence[Record], bad: Sequence[int], max_bad_fraction: float
) -> None:
    """Move the records at `bad` (images found not to decode) from usable to unreadable in
    `report`; ValueError naming the sources when the bad share then exceeds
    `max_bad_fraction`."""
    for i in bad:
        record = records[i]
        report.usable -= 1
        report.unreadable_image += 1
        report.note(
            f"{record.source}: record {record.index}: image {record.image_path} not decodable"
        )
    if report.bad_fraction > max_bad_fraction:
        names = ", ".join(sorted({r.source for r in records}))
        details = "".join(f"; e.g. {example}" for example in report.examples[:2])
        raise ValueError(
            f"{names}: {report.bad_fraction:.0%} of records are bad, more than "
            f"max_bad_fraction {max_bad_fraction:.0%} ({report.summary()}){details}; repair or "
            "remove the bad files (sim2real data inspect lists them)"
        )


def check_colour_frames(dataset: DrivingDataset) -> None:
    """ValueError naming the data when its frames are grayscale: the network takes colour.
    (Their size is checked against the card from the read report, `check_source_sizes`.)"""
    shape, path = dataset.source_shape, dataset.records[0].image_path
    if len(shape) == 2 or shape[2] == 1:
        raise ValueError(
            f"{path}: frames are grayscale ({shape[1]}x{shape[0]}, one channel); the network "
            "takes colour (RGB) frames: record or convert the data in colour"
        )


class DrivingDataset(Dataset):
    """Frames and labels as tensors: item i = (image (3, H, W) uint8, targets (L,) float32).

    A label a record lacks is NaN (the training loss masks it), so real data without sim
    labels goes through the same heads. Preprocessed frames are cached on disk in
    `cache_dir` (default `sim2real.transfer.cache.default_cache_dir()`) keyed by the image
    files and the preprocessing, so later epochs and runs skip JPEG decoding.

    Records whose image does not decode are dropped (listed in `undecodable`) and counted
    in `report` (the read report of the record set, which model cards keep) when given;
    ValueError when the share of bad records then exceeds `max_bad_fraction` (of `report`,
    else of `records`).
    """

    def __init__(
        self,
        records: Sequence[Record],
        preprocessing: Preprocessing,
        label_names: Sequence[str],
        cache_dir: Path | None = None,
        *,
        progress: bool = True,
        report: ReadReport | None = None,
        max_bad_fraction: float = 0.5,
    ) -> None:
        self.records = list(records)
        if not self.records:
            raise ValueError("DrivingDataset: no records")
        self.report = report if report is not None else ReadReport(usable=len(self.records))
        self.max_bad_fraction = max_bad_fraction
        self.undecodable: list[str] = []
        """image paths dropped because they did not decode"""
        if not label_names:
            raise ValueError("DrivingDataset: label_names is empty")
        self.preprocessing = preprocessing
        self.label_names = list(label_names)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else cache.default_cache_dir()
        self.cache_path: Path | None = None
        frames = self._load_frames(progress)
        self._images = torch.from_numpy(frames)
        targets = np.full((len(self.records), len(self.label_names)), math.nan, np.float32)
        for i, record in enumerate(self.records):
            for j, name in enumerate(self.label_names):
                if name in record.labels:
                    targets[i, j] = record.labels[name]
        self._targets = torch.from_numpy(targets)
        self.context: torch.Tensor | None = None
        """(N, C) float32 inputs beside the image for a temporal network, row for row (the
        previous action, `sim2real.transfer.temporal`); None for a single-frame one"""
        self.previous_index: torch.Tensor | None = None
        """(N,) int64 row of each frame's earlier frame for a frame-stacking network
        (`sim2real.transfer.temporal.attach_previous_frames`); None otherwise"""

    def _load_frames(self, progress: bool) -> np.ndarray:
        """The frames of the decodable records (cached); drops the others from `records`."""
        key = cache.frames_key(self.records, self.preprocessing)
        bad = cache.load_undecodable(self.cache_dir, key)
        shape = (len(self.records) - len(bad), *self.preprocessing.input_shape)
        frames = cache.load_frames(self.cache_dir, key, shape)
        if frames is None:
            frames, bad = decode_frames(self.records, self.preprocessing, progress=progress)
            frames = np.delete(frames, bad, axis=0) if bad else frames
            try:
                self.cache_path = cache.save_frames(
                    self.cache_dir,
                    key,
                    frames,
                    self.preprocessing,
                    [r.source for r in self.records],
                    undecodable=bad,
                )
            except OSError as exc:
                log.warning("frame cache not written to %s: %s", self.cache_dir, exc)
        else:
            self.cache_path = cache.cache_paths(self.cache_dir, key)[0]
        if bad:
            self.undecodable = [str(self.records[i].image_path) for i in bad]
            count_undecodable(self.report, self.records, bad, self.max_bad_fraction)
            dropped = set(bad)
            self.records = [r for i, r in enumerate(self.records) if i not in dropped]
            log.warning(
                "skipped %d image(s) that do not decode, e.g. %s", len(bad), self.undecodable[0]
            )
        if not self.records:
            raise ValueError(
                f"none of the {len(bad)} images of this part of the data decode, e.g. "
                f"{self.undecodable[0]}; repair or remove the bad files (sim2real data inspect "
                "lists them)"
            )
        return frames

    def __len__(self) -> int:
        return len(self.records)

    @property
    def source_shape(self) -> tuple[int, ...]:
        """(H, W, C) of the first record's image as stored ((H, W) when grayscale)."""
        image = cv2.imread(str(self.records[0].image_path), cv2.IMREAD_UNCHANGED)
        if image is None:
            raise ValueError(f"{self.records[0].image_path}: image no longer decodes")
        return tuple(image.shape)

    def describe(self) -> dict[str, Any]:
        """What the dataset holds, for model cards' `trained_on` (JSON-ready)."""
        return {
            "frames": len(self.records),
            "source_size": list(self.source_shape[:2]),
            "sources": sorted({r.source for r in self.records}),
            "sessions": len({(r.source, r.session) for r in self.records}),
            "label_names": self.label_names,
            "preprocessing": self.preprocessing.model_dump(mode="json"),
        }

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self._images[index], self._targets[index]

    @property
    def images(self) -> torch.Tensor:
        """All frames: (N, 3, H, W) uint8 RGB."""
        return self._images

    @property
    def targets(self) -> torch.Tensor:
        """All targets: (N, L) float32, NaN where a record lacks the label."""
        return self._targets
