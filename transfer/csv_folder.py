"""An image folder with a CSV of labels: configurable columns, Udacity's `driving_log.csv` preset.

A `CsvColumns` (YAML-loadable) says which column holds the image path and which columns are
labels, and under which of our names (`steering` -> `user/angle`). Image paths are taken
relative to the CSV's folder; when a path does not exist as written (Udacity logs hold the
recording machine's absolute paths, often with backslashes), its file name is looked up in
`image_dir`.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping
from pathlib import Path, PureWindowsPath
from typing import Any

from pydantic import Field

from sim2real.common.config import StrictModel, load_config, validate_config
from sim2real.transfer.records import (
    ReadReport,
    Record,
    keep_with_images,
    note_frame_size,
    parse_labels,
)


class CsvColumns(StrictModel):
    """How to read a CSV of labels (one row a frame, in time order)."""

    file: str | None = Field(None, description="CSV file in the folder; None: the only *.csv")
    header: bool = Field(True, description="the first row names the columns")
    names: list[str] | None = Field(None, description="column names when there is no header")
    image: str = Field("image", description="column holding the image path")
    labels: dict[str, str] | None = Field(
        None,
        description="CSV column -> label name (e.g. steering: user/angle); None: every other "
        "column except timestamp/session, under its own name",
    )
    timestamp_ms: str | None = Field(None, description="column of timestamps in milliseconds")
    session: str | None = Field(None, description="column naming the session")
    image_dir: str | None = Field(
        None, description="folder (relative to the CSV) searched for image file names"
    )
    delimiter: str = Field(",", min_length=1, max_length=1)

    @classmethod
    def udacity(cls) -> CsvColumns:
        """Udacity self-driving simulator's `driving_log.csv` (no header, IMG/ folder)."""
        return cls(
            file="driving_log.csv",
            header=False,
            names=["center", "left", "right", "steering", "throttle", "brake", "speed"],
            image="center",
            labels={"steering": "user/angle", "throttle": "user/throttle"},
            image_dir="IMG",
        )


PRESETS = {"udacity": CsvColumns.udacity}


def resolve_columns(spec: CsvColumns | Mapping[str, Any] | str | Path | None) -> CsvColumns:
    """A CsvColumns from itself, a mapping, a preset name ("udacity") or a YAML file path."""
    if spec is None:
        return CsvColumns()
    if isinstance(spec, CsvColumns):
        return spec
    if isinstance(spec, Mapping):
        return validate_config(CsvColumns, dict(spec), source="csv_columns")
    if str(spec) in PRESETS:
        return PRESETS[str(spec)]()
    if Path(spec).is_file():
        return load_config(CsvColumns, spec)
    raise ValueError(
        f"csv_columns: {spec!r} is neither a preset ({', '.join(PRESETS)}) nor a YAML file"
    )


def find_csv(folder: Path, columns: CsvColumns) -> Path | None:
    """The CSV file of `folder` (None when there is none); ValueError when ambiguous."""
    if columns.file:
        path = folder / columns.file
        return path if path.is_file() else None
    candidates = sorted(folder.glob("*.csv"))
    if not candidates:
        return None
    if len(candidates) > 1:
        names = ", ".join(p.name for p in candidates)
        raise ValueError(f"{folder}: several CSV files ({names}); name one with csv_columns.file")
    return candidates[0]


def _guess_columns(csv_path: Path, columns: CsvColumns, explicit: bool) -> CsvColumns:
    """Without an explicit column spec, a header-less `driving_log.csv` is Udacity's."""
    if explicit or csv_path.name != "driving_log.csv":
        return columns
    with csv_path.open(newline="", encoding="utf-8-sig", errors="replace") as handle:
        first = next(csv.reader(handle), [])
    if first and first[0].strip().lower().endswith((".jpg", ".jpeg", ".png")):
        return CsvColumns.udacity()
    return columns


def read_csv_folder(
    path: str | Path,
    columns: CsvColumns | Mapping[str, Any] | str | Path | None = None,
    *,
    check_images: bool = False,
) -> tuple[list[Record], ReadReport]:
    """Read a folder (or a CSV file) of frames into records in row order.

    Rows with the wrong number of fields are bad records; labels that are empty, not numbers,
    not finite or out of range are bad labels; missing (or, with `check_images`, undecodable)
    images are counted and skipped.
    """
    path = Path(path).resolve()
    spec = resolve_columns(columns)
    if path.is_file():
        csv_path = path
        spec = spec.model_copy(update={"file": path.name})
    else:
        csv_path = find_csv(path, spec)
        if csv_path is None:
            raise ValueError(f"{path}: no CSV file found (expected {spec.file or '*.csv'})")
    spec = _guess_columns(csv_path, spec, explicit=columns is not None)
    folder = csv_path.parent
    image_dir = folder / spec.image_dir if spec.image_dir else folder
    report = ReadReport()
    with csv_path.open(newline="", encoding="utf-8-sig", errors="replace") as handle:
        rows = list(csv.reader(handle, delimiter=spec.delimiter))
    if spec.header:
        if not rows:
            raise ValueError(f"{csv_path}: empty CSV (a header row was expected)")
        names, rows = [c.strip() for c in rows[0]], rows[1:]
        first_row = 2
    else:
        if not spec.names:
            raise ValueError(f"{csv_path}: csv_columns.names is required when header is false")
        names, first_row = list(spec.names), 1
        if rows and [c.strip() for c in rows[0]][: len(names)] == names:
            rows, first_row = rows[1:], 2  # a header row after all
    if spec.image not in names:
        raise ValueError(f"{csv_path}: no image column {spec.image!r} among columns {names}")
    label_map = spec.labels
    if label_map is None:
        skip = {spec.image, spec.timestamp_ms, spec.session}
        label_map = {name: name for name in names if name not in skip}
    missing = [c for c in [*label_map, spec.timestamp_ms, spec.session] if c and c not in names]
    if missing:
        raise ValueError(f"{csv_path}: columns {missing} not found among {names}")
    column = {name: i for i, name in enumerate(names)}

    records = []
    for offset, row in enumerate(rows):
        number = first_row + offset
        if not any(cell.strip() for cell in row):
            continue
        report.total += 1
        if len(row) != len(names):
            report.bad_record += 1
            report.note(f"{csv_path}:{number}: {len(row)} fields, expected {len(names)}")
            continue
        labels, problem = parse_labels(
            (label, _number(row[column[csv_name]].strip())) for csv_name, label in label_map.items()
        )
        if problem:
            report.bad_label += 1
            report.note(f"{csv_path}:{number}: {problem}")
            continue
        timestamp = None
        if spec.timestamp_ms:
            try:
                timestamp = int(float(row[column[spec.timestamp_ms]]))
            except ValueError:
                report.bad_record += 1
                report.note(f"{csv_path}:{number}: timestamp {row[column[spec.timestamp_ms]]!r}")
                continue
        session = row[column[spec.session]].strip() if spec.session else csv_path.stem
        records.append(
            Record(
                index=offset,
                session=session,
                timestamp_ms=timestamp,
                image_path=_image_path(row[column[spec.image]].strip(), folder, image_dir),
                labels=labels,
                source=str(csv_path),
            )
        )
    records = keep_with_images(records, report, check_images=check_images, existing=None)
    report.usable = len(records)
    note_frame_size(records, report)
    return records, report


def _number(text: str) -> float | str:
    """`text` as a float, or the text itself when it is not a number (a bad label)."""
    try:
        return float(text)
    except ValueError:
        return text


def _image_path(text: str, folder: Path, image_dir: Path) -> Path:
    """The path as written (relative to the CSV's folder), else its file name in image_dir.

    When neither exists, the path the CSV names (so a "missing" message points at it), unless
    that is a bare file name or a Windows path, which live in image_dir."""
    as_written = folder / text
    if os.path.isfile(as_written):
        return as_written
    name = PureWindowsPath(text).name if "\\" in text else Path(text).name
    in_image_dir = image_dir / name
    if os.path.isfile(in_image_dir) or "\\" in text or name == text:
        return in_image_dir
    return as_written
