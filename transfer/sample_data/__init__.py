"""A small real DonkeyCar tub shipped with the package (see its README.md for source/licence)."""

from __future__ import annotations

from pathlib import Path

SAMPLE_NAME = "usi-track-a-sample"


def sample_path() -> Path:
    """Folder of the shipped real sample tub (DonkeyCar tub v2, from usi-track-a)."""
    path = Path(__file__).resolve().parent / SAMPLE_NAME
    if not (path / "manifest.json").is_file():
        raise FileNotFoundError(f"{path}: the shipped sample tub is missing from this install")
    return path
