"""`sim2real quickstart`: the whole pipeline on the shipped real sample in about 10 minutes.

Simulate, pretrain (randomization 1 and 0), measure the domain gap, fine-tune at a few sizes
with the recommended freeze, train the scratch baseline, evaluate every network on the
sample's held-out later block (and the starts closed loop in sim), and write the report:
the study of `experiments/configs/quickstart.yaml`, run like any other experiment, so it is
resumable too. The wall time and the machine's load are written to ``OUT/timing.json``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from sim2real.common.io import atomic_write_json
from sim2real.common.machine import machine_info
from sim2real.experiments.grid import Executor
from sim2real.experiments.study import StudyRun, load_study_config, packaged_config, run_study

QUICKSTART_CONFIG = "quickstart"
"""fine-tunes the shipped network"""
QUICKSTART_PRETRAIN_CONFIG = "quickstart_pretrain"
"""pretrains its own small network first"""


def run_quickstart(
    out: str | Path,
    *,
    config_path: str | Path | None = None,
    pretrain: bool = False,
    executor: Executor | None = None,
    log_line: Callable[[str], None] = print,
) -> StudyRun:
    """Run (or continue) the quickstart study in `out`; returns the `StudyRun`.

    `config_path` (another study YAML) wins over `pretrain` (the packaged config that
    pretrains its own small network instead of fine-tuning the shipped one).
    """
    out = Path(out)
    name = QUICKSTART_PRETRAIN_CONFIG if pretrain else QUICKSTART_CONFIG
    config = load_study_config(config_path or packaged_config(name))
    before = machine_info()
    started = time.perf_counter()
    run = run_study(config, out, executor=executor, log_line=log_line)
    seconds = time.perf_counter() - started
    atomic_write_json(
        out / "timing.json",
        {
            "wall_seconds": round(seconds, 1),
            "cells_computed": len(run.computed),
            "cells_cached": len(run.cached),
            "machine_before": before,
            "machine_after": machine_info(),
        },
    )
    return run
