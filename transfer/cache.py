"""Disk cache of decoded, preprocessed frames: one `.npy` of (N, 3, H, W) uint8 per dataset.

The key hashes every image file's path, size and modification time plus the geometric part
of the preprocessing (crop, size), so a changed file or a different crop gets a new entry;
mean/std do not change the uint8 pixels and are only recorded. A `.json` beside each array
records the preprocessing, the frame count and the sources. The cache lives outside the
input datasets (default `~/.cache/sim2real/frames`, or `$SIM2REAL_CACHE/frames`).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from sim2real.agents.preprocessing import Preprocessing
from sim2real.common.io import atomic_write, atomic_write_json
from sim2real.transfer.records import Record

CACHE_VERSION = 1
"""Bump when the cached pixels would change for the same key (decoder, resize rule)."""


def default_cache_dir() -> Path:
    """`$SIM2REAL_CACHE`, else `$XDG_CACHE_HOME/sim2real`, else `~/.cache/sim2real`."""
    if os.environ.get("SIM2REAL_CACHE"):
        return Path(os.environ["SIM2REAL_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "sim2real"


def frames_key(records: Sequence[Record], preprocessing: Preprocessing) -> str:
    """Hex digest identifying these image files (path, size, mtime) under this preprocessing."""
    digest = hashlib.sha256()
    geometry = preprocessing.model_dump(include={"crop_top", "crop_bottom", "height", "width"})
    digest.update(json.dumps({"v": CACHE_VERSION, **geometry}, sort_keys=True).encode())
    for record in records:
        stat = os.stat(record.image_path)
        digest.update(f"{record.image_path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:32]


def cache_paths(cache_dir: Path, key: str) -> tuple[Path, Path]:
    """(array path, metadata path) of a cache entry."""
    folder = cache_dir / "frames"
    return folder / f"{key}.npy", folder / f"{key}.json"


def load_frames(cache_dir: Path, key: str, expected_shape: tuple[int, ...]) -> np.ndarray | None:
    """The cached (N, 3, H, W) uint8 array, or None when absent or not the expected shape."""
    array_path, _ = cache_paths(cache_dir, key)
    if not array_path.is_file():
        return None
    try:
        # Copy-on-write map: pages are read on first touch, and the array stays writable.
        frames = np.load(array_path, mmap_mode="c", allow_pickle=False)
    except (OSError, ValueError):
        return None
    if frames.shape != expected_shape or frames.dtype != np.uint8:
        return None
    return frames


def load_undecodable(cache_dir: Path, key: str) -> list[int]:
    """Indices of the records whose image did not decode when entry `key` was made ([] when
    there is no such entry: its array then holds one frame per record)."""
    _, meta_path = cache_paths(cache_dir, key)
    try:
        bad = json.loads(meta_path.read_text(encoding="utf-8")).get("undecodable", [])
    except (OSError, ValueError, AttributeError):
        return []
    return [int(i) for i in bad] if isinstance(bad, list) else []


def save_frames(
    cache_dir: Path,
    key: str,
    frames: np.ndarray,
    preprocessing: Preprocessing,
    sources: Sequence[str],
    undecodable: Sequence[int] = (),
) -> Path:
    """Store `frames` (and its metadata) atomically; returns the array's path.

    `undecodable`: indices of the records left out of `frames` (image not decodable)."""
    array_path, meta_path = cache_paths(cache_dir, key)
    atomic_write(array_path, lambda tmp: _save_npy(tmp, frames))
    atomic_write_json(
        meta_path,
        {
            "version": CACHE_VERSION,
            "key": key,
            "shape": list(frames.shape),
            "layout": "(N, 3, H, W) uint8 RGB",
            "preprocessing": preprocessing.model_dump(mode="json"),
            "sources": sorted(set(sources)),
            "undecodable": [int(i) for i in undecodable],
            "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        },
    )
    return array_path


def _save_npy(tmp: Path, frames: np.ndarray) -> None:
    with tmp.open("wb") as handle:
        np.save(handle, frames, allow_pickle=False)
