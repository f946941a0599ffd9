"""Device choice: CUDA when present, else CPU; every entry point takes an explicit override."""

from __future__ import annotations

import torch


def resolve_device(name: str = "auto") -> torch.device:
    """`auto`: CUDA when available, else CPU; `cpu`, `cuda`, `cuda:1` are taken as given."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available on this machine")
    return device
