"""Device choice: CUDA when present, else CPU; every entry point takes an explicit override."""

from __future__ import annotations

from typing import Annotated

import torch
from pydantic import AfterValidator

DEVICE_HELP = "use auto, cpu, cuda or cuda:N"


def check_device_name(name: str) -> str:
    """`name` when torch can parse it as a device (`auto` included), else ValueError."""
    if name == "auto":
        return name
    try:
        torch.device(name)
    except (RuntimeError, ValueError, TypeError):
        raise ValueError(f"device {name!r} is not a device torch knows; {DEVICE_HELP}") from None
    return name


DeviceName = Annotated[str, AfterValidator(check_device_name)]
"""A config field holding a device name (`auto`, `cpu`, `cuda`, `cuda:1`), checked on load."""


def resolve_device(name: str = "auto") -> torch.device:
    """`auto`: CUDA when available, else CPU; `cpu`, `cuda`, `cuda:1` are taken as given."""
    if check_device_name(name) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device {name!r} requested but CUDA is not available on this machine; use cpu"
        )
    return device
