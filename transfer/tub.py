"""DonkeyCar tub v2: read one into `Record`s, write one that DonkeyCar's own tools accept.

Layout of a tub folder (as DonkeyCar's `datastore_v2` writes it):

- `manifest.json`: five JSON lines: input keys, input types, user metadata, manifest metadata
  (`created_at`, `sessions`), catalog metadata `{paths, current_index, max_len, deleted_indexes}`.
- `catalog_N.catalog`: one JSON record a line (keys sorted), `max_len` records a file.
- `catalog_N.catalog_manifest`: one JSON line `{created_at, line_lengths, path, start_index}`.
- `images/<index>_cam_image_array_.jpg`.

Reading never writes into the tub. Writing is crash-safe: images first, then catalog lines,
then the catalog sidecar, then the manifest (each replaced atomically), so the manifest never
lists a record whose line and image are not on disk; `TubWriter(..., resume=True)` continues
an interrupted tub from the manifest's `current_index`.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from sim2real.common.io import atomic_write_bytes, atomic_write_text
from sim2real.transfer.records import (
    OPTIONAL_LABELS,
    PILOT_MODES,
    USER_MODE,
    ReadReport,
    Record,
    keep_with_images,
    note_frame_size,
    parse_labels,
    pilot_drove,
)

MANIFEST = "manifest.json"
IMAGES = "images"
IMAGE_TYPES = ("image_array",)
NUMERIC_TYPES = ("float", "int")
KNOWN_TYPES = ("float", "int", "str", "boolean", "image_array", "list", "vector", "nparray")
RANDOMIZATION_KEY = "randomization"
"""user-metadata key (manifest line 3) under which `sim2real simulate` records the
randomization a sim tub was recorded with: {spec, strength, seed, image_size, spec_path}"""


def is_tub(path: Path) -> bool:
    """A folder with a `manifest.json` is taken for a tub v2."""
    return path.is_dir() and (path / MANIFEST).is_file()


def catalog_sidecar(catalog: Path) -> Path:
    """`catalog_3.catalog` -> `catalog_3.catalog_manifest`."""
    return catalog.with_name(f"{catalog.stem}.catalog_manifest")


def image_file_name(index: int, key: str) -> str:
    """DonkeyCar's image name: (12, "cam/image_array") -> "12_cam_image_array_.jpg"."""
    return f"{index}_{key.replace('/', '_')}_.jpg"


def encode_jpeg(image: np.ndarray, quality: int) -> bytes | None:
    """(H, W, 3) uint8 RGB as JPEG bytes at `quality` (OpenCV); None when encoding fails."""
    ok, data = cv2.imencode(
        ".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality]
    )
    return data.tobytes() if ok else None


def read_manifest(tub: Path) -> dict[str, Any]:
    """Parse `manifest.json` into {inputs, types, metadata, manifest_metadata, catalog}.

    Raises ValueError naming the file and line when it is missing pieces or not JSON.
    """
    path = tub / MANIFEST
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not a DonkeyCar tub v2 manifest (not UTF-8 text)") from exc
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) < 5:
        raise ValueError(
            f"{path}: a tub v2 manifest has 5 JSON lines (inputs, types, metadata, "
            f"manifest metadata, catalog metadata), found {len(lines)}"
        )
    parsed = []
    for number, line in enumerate(lines[:5], start=1):
        try:
            parsed.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: line {number} is not valid JSON: {exc.msg}") from None
    inputs, types, metadata, manifest_metadata, catalog = parsed
    if not (isinstance(inputs, list) and isinstance(types, list) and len(inputs) == len(types)):
        raise ValueError(
            f"{path}: lines 1-2 must be equal-length JSON lists of input keys and types, "
            f"got {inputs!r} and {types!r}"
        )
    if not isinstance(catalog, dict):
        raise ValueError(f"{path}: line 5 must be a JSON object, got {catalog!r}")
    for key, kind in (("paths", list), ("current_index", int), ("deleted_indexes", list)):
        if not isinstance(catalog.get(key), kind):
            raise ValueError(
                f"{path}: line 5: field {key!r} missing or not a {kind.__name__} "
                f"(got {catalog.get(key)!r})"
            )
    if not all(isinstance(i, int) and not isinstance(i, bool) for i in catalog["deleted_indexes"]):
        raise ValueError(f"{path}: line 5: deleted_indexes must be a list of integers")
    return {
        "inputs": inputs,
        "types": types,
        "metadata": metadata,
        "manifest_metadata": manifest_metadata if isinstance(manifest_metadata, dict) else {},
        "catalog": catalog,
    }


def read_tub(
    path: str | Path, *, check_images: bool = False, include_pilot: bool = False
) -> tuple[list[Record], ReadReport]:
    """Read one tub v2 into records in `_index` order, skipping and counting bad ones.

    Skipped: indexes in `deleted_indexes`; earlier copies of an index written again later
    (DonkeyCar appends when a session restarts at an index); records whose `user/mode` says
    the pilot drove (`local`, `local_angle`), unless `include_pilot`; garbled lines; records
    with a missing, non-numeric, non-finite or out-of-range label (`pilot/angle` and
    `pilot/throttle` may be absent: DonkeyCar writes them only while the pilot runs); missing
    images; with `check_images`, images that do not decode. A record without `user/mode` is
    taken as driven by a person (counted in `mode_missing`). Raises ValueError when the
    manifest is bad.
    """
    tub = Path(path).resolve()
    manifest = read_manifest(tub)
    inputs, types = manifest["inputs"], manifest["types"]
    image_keys = [key for key, kind in zip(inputs, types, strict=True) if kind in IMAGE_TYPES]
    if not image_keys:
        raise ValueError(f"{tub / MANIFEST}: no input of type image_array in {inputs}")
    image_key = image_keys[0]
    label_keys = [key for key, kind in zip(inputs, types, strict=True) if kind in NUMERIC_TYPES]
    deleted = {int(i) for i in manifest["catalog"]["deleted_indexes"]}
    sessions = manifest["manifest_metadata"].get("sessions") or {}
    default_session = str(sessions.get("last_full_id") or tub.name)

    report = ReadReport()
    latest: dict[int, tuple[str, dict[str, Any]]] = {}
    for name in manifest["catalog"]["paths"]:
        catalog = tub / str(name)
        if not catalog.is_file():
            report.note(f"{catalog}: catalog listed in the manifest is missing")
            continue
        with catalog.open("r", encoding="utf-8", errors="replace") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                report.total += 1
                where = f"{catalog.name}:{number}"
                try:
                    raw = json.loads(line)
                    index = int(raw["_index"])
                    str(raw[image_key])
                except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                    report.bad_record += 1
                    report.note(f"{tub}: {where}: garbled record {line.strip()[:80]!r}")
                    continue
                if index in latest:
                    report.superseded += 1
                latest[index] = (where, raw)

    images_dir = tub / IMAGES
    records = []
    for index in sorted(latest):
        where, raw = latest[index]
        if index in deleted:
            report.deleted += 1
            continue
        drove = pilot_drove(raw)
        if drove and not include_pilot:
            report.pilot_driven += 1
            continue
        labels, problem = parse_labels(
            (key, raw.get(key))
            for key in label_keys
            if not (key in OPTIONAL_LABELS and raw.get(key) is None)
        )
        if problem:
            report.bad_label += 1
            report.note(f"{tub}: {where}: record {index}: {problem}")
            continue
        timestamp = raw.get("_timestamp_ms")
        records.append(
            Record(
                index=index,
                session=str(raw.get("_session_id") or default_session),
                timestamp_ms=int(timestamp) if isinstance(timestamp, int | float) else None,
                image_path=images_dir / str(raw[image_key]),
                labels=labels,
                source=str(tub),
                mode=None if drove is None else str(raw[USER_MODE]),
            )
        )
    names = os.listdir(images_dir) if images_dir.is_dir() else []
    existing = {os.path.join(images_dir, name) for name in names}
    records = keep_with_images(records, report, check_images=check_images, existing=existing)
    report.usable = len(records)
    report.pilot_included = sum(r.mode in PILOT_MODES for r in records)
    report.mode_missing = sum(r.mode is None for r in records)
    note_frame_size(records, report)
    return records, report


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python number it holds (JSON cannot write numpy scalars)."""
    return value.item() if isinstance(value, np.generic) else value


def tub_value(value: Any, kind: str) -> Any:
    """`value` as DonkeyCar's `Tub.write_record` stores an input of type `kind`.

    float -> float, int -> int, boolean -> bool, str as is, nparray -> nested lists
    (``tolist``), list / vector -> a list of its items; numpy scalars become Python numbers
    so the line is JSON. None stays None (DonkeyCar then leaves the key out).
    """
    if value is None:
        return None
    if kind == "float":
        return float(value)
    if kind == "int":
        return int(value)
    if kind == "boolean":
        return bool(value)
    if kind == "nparray":
        return np.asarray(value).tolist()
    if kind in ("list", "vector"):
        return [_plain(item) for item in value]
    return _plain(value)


class TubWriter:
    """Write a DonkeyCar tub v2, crash-safe and resumable.

    `inputs`/`types` are DonkeyCar's (e.g. ["cam/image_array", "user/angle"], ["image_array",
    "float"]). `write(record, image)` takes the non-image inputs by key (optionally
    `_timestamp_ms` and `_session_id`) and the frame as (H, W, 3) uint8 RGB or encoded JPEG
    bytes (stored byte for byte). Values are converted as DonkeyCar converts them
    (`tub_value`: numpy arrays, vectors, booleans), and a None value is left out of the line.
    Records are flushed every `flush_every` writes and on close;
    an interrupted writer leaves a valid tub holding every flushed record.
    """

    def __init__(
        self,
        path: str | Path,
        inputs: Sequence[str],
        types: Sequence[str],
        *,
        metadata: Mapping[str, Any] | None = None,
        max_len: int = 1000,
        flush_every: int = 100,
        jpeg_quality: int = 90,
        resume: bool = False,
        session_id: str | None = None,
    ) -> None:
        self.path = Path(path)
        self.inputs, self.types = list(inputs), list(types)
        if len(self.inputs) != len(self.types):
            raise ValueError(f"inputs {self.inputs} and types {self.types} differ in length")
        unknown = [kind for kind in self.types if kind not in KNOWN_TYPES]
        if unknown:
            raise ValueError(f"unknown tub types {unknown}; known: {KNOWN_TYPES}")
        if max_len < 1 or flush_every < 1:
            raise ValueError(f"max_len and flush_every must be >= 1, got {max_len}, {flush_every}")
        image_keys = [k for k, t in zip(self.inputs, self.types, strict=True) if t in IMAGE_TYPES]
        if len(image_keys) > 1:
            raise ValueError(f"at most one image_array input is supported, got {image_keys}")
        self.image_key = image_keys[0] if image_keys else None
        self.flush_every = flush_every
        self.jpeg_quality = jpeg_quality
        self._pending: list[tuple[int, str]] = []
        self._sessions_written: list[str] = []
        self._closed = False
        if is_tub(self.path):
            if not resume:
                raise ValueError(
                    f"{self.path}: a tub already exists here; pass resume=True to continue it "
                    "or choose another folder"
                )
            self._open_existing()
        elif self.path.exists() and any(self.path.iterdir()):
            raise ValueError(f"{self.path}: folder exists, is not empty and holds no tub")
        else:
            self._create(dict(metadata or {}), max_len)
        last_id = self._sessions.get("last_id")
        new_id = last_id + 1 if isinstance(last_id, int) else 0
        self._session_counter = new_id
        self.session_id = session_id or f"{time.strftime('%y-%m-%d')}_{new_id}"

    # -- setup -----------------------------------------------------------------------------

    def _create(self, metadata: dict[str, Any], max_len: int) -> None:
        (self.path / IMAGES).mkdir(parents=True, exist_ok=True)
        self.metadata = metadata
        self.manifest_metadata: dict[str, Any] = {"created_at": time.time()}
        self._sessions: dict[str, Any] = {}
        self.max_len = max_len
        self.deleted: set[int] = set()
        self.paths: list[str] = []
        self.current_index = 0
        self._start_catalog()

    def _open_existing(self) -> None:
        manifest = read_manifest(self.path)
        if manifest["inputs"] != self.inputs or manifest["types"] != self.types:
            raise ValueError(
                f"{self.path}: cannot resume: the tub has inputs {manifest['inputs']} / types "
                f"{manifest['types']}, the writer {self.inputs} / {self.types}"
            )
        catalog = manifest["catalog"]
        self.metadata = manifest["metadata"]
        self.manifest_metadata = manifest["manifest_metadata"]
        self._sessions = dict(self.manifest_metadata.get("sessions") or {})
        self.max_len = int(catalog.get("max_len", 1000))
        self.deleted = {int(i) for i in catalog["deleted_indexes"]}
        self.paths = [str(p) for p in catalog["paths"]]
        self.current_index = int(catalog["current_index"])
        (self.path / IMAGES).mkdir(exist_ok=True)
        if not self.paths:
            self._start_catalog()
            return
        # Cut the last catalog back to what the manifest vouches for (a crash may have left
        # lines after the last manifest update); those records are written again.
        name = self.paths[-1]
        sidecar = self._read_sidecar(name)
        keep = self.current_index - int(sidecar["start_index"])
        catalog_path = self.path / name
        lines = catalog_path.read_text(encoding="utf-8").splitlines(keepends=True)
        if keep < 0 or keep > len(lines):
            raise ValueError(
                f"{catalog_path}: cannot resume: the manifest's current_index "
                f"{self.current_index} does not match the catalog's {len(lines)} lines"
            )
        lines = lines[:keep]
        atomic_write_text(catalog_path, "".join(lines))
        sidecar["line_lengths"] = [len(line) for line in lines]
        self._sidecars = {name: sidecar}
        self._write_sidecar(name)

    def _read_sidecar(self, name: str) -> dict[str, Any]:
        path = catalog_sidecar(self.path / name)
        try:
            return json.loads(path.read_text(encoding="utf-8").splitlines()[0])
        except (OSError, IndexError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path}: missing or garbled catalog manifest ({exc})") from None

    def _start_catalog(self) -> None:
        name = f"catalog_{len(self.paths)}.catalog"
        self.paths.append(name)
        (self.path / name).touch()
        self._sidecars = {
            name: {
                "path": catalog_sidecar(self.path / name).name,
                "created_at": time.time(),
                "start_index": self.current_index,
                "line_lengths": [],
            }
        }
        self._write_sidecar(name)
        self._write_manifest(self.current_index)

    # -- files -----------------------------------------------------------------------------

    def _write_sidecar(self, name: str) -> None:
        text = json.dumps(self._sidecars[name], allow_nan=False, sort_keys=True) + "\n"
        atomic_write_text(catalog_sidecar(self.path / name), text)

    def _write_manifest(self, current_index: int) -> None:
        sessions = dict(self._sessions)
        for session in self._sessions_written:
            sessions.setdefault("all_full_ids", [])
            if session not in sessions["all_full_ids"]:
                sessions["all_full_ids"] = [*sessions["all_full_ids"], session]
        if self._sessions_written:
            sessions["last_id"] = self._session_counter
            sessions["last_full_id"] = self._sessions_written[-1]
        manifest_metadata = dict(self.manifest_metadata)
        if sessions:
            manifest_metadata["sessions"] = sessions
        catalog = {
            "paths": self.paths,
            "current_index": current_index,
            "max_len": self.max_len,
            "deleted_indexes": sorted(self.deleted),
        }
        lines = [self.inputs, self.types, self.metadata, manifest_metadata, catalog]
        atomic_write_text(self.path / MANIFEST, "".join(json.dumps(x) + "\n" for x in lines))

    # -- writing ---------------------------------------------------------------------------

    def write(self, record: Mapping[str, Any], image: np.ndarray | bytes | None = None) -> int:
        """Add one record (and its frame); returns its index. Raises ValueError on bad input."""
        if self._closed:
            raise ValueError(f"{self.path}: writer is closed")
        allowed = set(self.inputs) | {"_timestamp_ms", "_session_id"}
        unknown = sorted(set(record) - allowed)
        if unknown:
            raise ValueError(f"{self.path}: record keys {unknown} are not tub inputs {self.inputs}")
        index = self.current_index + len(self._pending)
        line: dict[str, Any] = {}
        for key, kind in zip(self.inputs, self.types, strict=True):
            if kind in IMAGE_TYPES:
                continue
            if key not in record:
                raise ValueError(f"{self.path}: record {index} lacks input {key!r}")
            try:
                value = tub_value(record[key], kind)
            except (TypeError, ValueError) as exc:
                raise ValueError(
                    f"{self.path}: record {index}: {key}={record[key]!r} is not a {kind} ({exc})"
                ) from None
            if value is None:
                continue  # DonkeyCar leaves None values out of the record line
            if kind == "float" and not np.isfinite(value):
                raise ValueError(f"{self.path}: record {index}: {key}={value} is not finite")
            line[key] = value
        if self.image_key is not None:
            if image is None:
                raise ValueError(f"{self.path}: record {index} needs an image")
            name = image_file_name(index, self.image_key)
            atomic_write_bytes(self.path / IMAGES / name, self._encode(image, index))
            line[self.image_key] = name
        session = str(record.get("_session_id") or self.session_id)
        if session not in self._sessions_written:
            self._sessions_written.append(session)
        line["_index"] = index
        line["_session_id"] = session
        line["_timestamp_ms"] = int(record.get("_timestamp_ms", time.time() * 1000))
        self._pending.append((index, json.dumps(line, allow_nan=False, sort_keys=True) + "\n"))
        if len(self._pending) >= self.flush_every:
            self.flush()
        return index

    def _encode(self, image: np.ndarray | bytes, index: int) -> bytes:
        if isinstance(image, bytes | bytearray):
            return bytes(image)
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(
                f"{self.path}: record {index}: image must be (H, W, 3) uint8 RGB, "
                f"got {image.shape} {image.dtype}"
            )
        data = encode_jpeg(image, self.jpeg_quality)
        if data is None:
            raise ValueError(f"{self.path}: record {index}: JPEG encoding failed")
        return data

    def delete(self, indexes: int | Sequence[int]) -> None:
        """Mark records deleted (DonkeyCar keeps them on disk and lists them in the manifest)."""
        self.deleted.update([indexes] if isinstance(indexes, int) else [int(i) for i in indexes])
        self._write_manifest(self.current_index)

    def flush(self) -> None:
        """Append pending lines to their catalogs, then update sidecars, then the manifest."""
        for index, text in self._pending:
            if index > 0 and index % self.max_len == 0 and index != self._current_start():
                self._write_manifest(self.current_index)
                self._start_catalog()
            name = self.paths[-1]
            with (self.path / name).open("a", encoding="utf-8", newline="\n") as handle:
                handle.write(text)
            self._sidecars[name]["line_lengths"].append(len(text))
            self.current_index = index + 1
            if index % self.max_len == self.max_len - 1:
                self._write_sidecar(name)
        if self._pending:
            self._write_sidecar(self.paths[-1])
            self._write_manifest(self.current_index)
        self._pending.clear()

    def discard(self) -> None:
        """Drop records written since the last flush (their image files stay, unreferenced,
        and are overwritten when the tub is resumed)."""
        self._pending.clear()

    def _current_start(self) -> int:
        return int(self._sidecars[self.paths[-1]]["start_index"])

    def close(self) -> None:
        """Flush what is pending; the tub is complete and valid afterwards."""
        if not self._closed:
            self.flush()
            self._write_manifest(self.current_index)
            self._closed = True

    def __enter__(self) -> TubWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
