"""SHA-256 fingerprints of files on disk (checkpoints, specs, weights), read in 1 MiB blocks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

BLOCK = 1 << 20
"""bytes read at a time, so a large file is never held in memory whole"""


def update_with_file(digest: Any, path: str | Path) -> None:
    """Feed the bytes of the file at `path` to `digest` (a `hashlib` object), block by block."""
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(BLOCK), b""):
            digest.update(block)


def file_sha256(path: str | Path) -> str:
    """SHA-256 (hex) of the bytes of the file at `path`."""
    import hashlib

    digest = hashlib.sha256()
    update_with_file(digest, path)
    return digest.hexdigest()
