"""What machine a measurement ran on: CPUs, load, platform and versions, beside every timing."""

from __future__ import annotations

import os
import platform
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any


def load_average() -> list[float]:
    """The 1, 5 and 15-minute load averages, rounded to 0.01 ([] where the OS keeps none)."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return []


def load_text(loads: Sequence[float] | None = None) -> str:
    """Load averages (default: `load_average()` now) as "1.20 0.90 0.80", or "n/a"."""
    loads = load_average() if loads is None else loads
    return " ".join(f"{v:.2f}" for v in loads) or "n/a"


def machine_info(load_before: Sequence[float] | None = None) -> dict[str, Any]:
    """This machine now, the context a timing needs.

    Keys: cpus, processor, platform, python, torch (its version), threads (torch's intra-op
    threads), load_average ([1, 5, 15] minutes, see `load_average`) and utc (ISO, seconds).
    With `load_before` (a `load_average()` taken when the timed work began), the load is
    given as load_before and load_after (now) instead of load_average.
    """
    import torch

    info: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }
    if load_before is None:
        info["load_average"] = load_average()
    else:
        info["load_before"] = [round(float(v), 2) for v in load_before]
        info["load_after"] = load_average()
    info["utc"] = datetime.now(UTC).isoformat(timespec="seconds")
    return info


def describe_machine(info: dict[str, Any] | None = None) -> str:
    """`info` (a `machine_info()`; default: now) as one line for a log or a report."""
    info = machine_info() if info is None else info
    loads = {k: info[k] for k in ("load_average", "load_before", "load_after") if k in info}
    load = ", ".join(f"{k.replace('_', ' ')} {load_text(v)}" for k, v in loads.items())
    return (
        f"{info['cpus']} CPUs ({info['processor']}), {info['threads']} torch thread(s), "
        f"{load}; torch {info['torch']}, Python {info['python']}, {info['platform']}; "
        f"{info['utc']}"
    )
