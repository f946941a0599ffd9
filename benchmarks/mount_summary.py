"""Tables of benchmarks/mount_measure.sh's scores (docs/transfer.md, "Another camera mount").

    python benchmarks/mount_summary.py OUT [ORIGINALS_JSON...]

One row per tub and arm (zero-shot, adapt, ft, scratch): mean over the seeds present of val r /
val R² and test r / test R² (as scored by benchmarks/adapt/score.py), and the seeds. Extra
score files (e.g. docs/adapt.md's runs on the original tubs) are read the same way; a run's
arm is read from its folder name (`-adapt-`/`-pc2ms-`: adapt, `-ft-`/`-one6ke4-`: ft,
`-scratch-`: scratch, `-ftcrop0-` / `-scratchcrop0-` /
`-adaptcrop0-`: the same from a copy of
`pilotnet-recipe` whose card says crop_top 0, `pilotnet-recipe`: zero-shot).
"""

from __future__ import annotations

import json
import re
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

ARMS = {
    "zero-shot": r"^pilotnet-recipe$",
    "adapt": r"-(adapt|pc2ms)-s\d+$",
    "ft": r"-(ft|n100-one6ke4)-s\d+$",
    "scratch": r"-scratch-s\d+$",
    "ft, crop_top 0": r"-ftcrop0-s\d+$",
    "scratch, crop_top 0": r"-scratchcrop0-s\d+$",
    "adapt, crop_top 0": r"-adaptcrop0-s\d+$",
}


def arm_of(run: str) -> str | None:
    name = Path(run).name
    for arm, pattern in ARMS.items():
        if re.search(pattern, name):
            return arm
    return None


def main(out: str, extra: list[str]) -> None:
    rows: dict[tuple[str, str], list[tuple[str, dict]]] = defaultdict(list)
    for path in [*sorted(Path(out).glob("*-scores.json")), *map(Path, extra)]:
        tub = re.sub(r"-(zs|ft)?-?scores\.json$", "", path.name)
        for run, score in json.loads(path.read_text()).items():
            arm = arm_of(run)
            if arm is not None:
                seed = re.search(r"-s(\d+)$", run)
                rows[(tub, arm)].append((seed.group(1) if seed else "-", score))
    print("| tub | arm | seeds | val r / R² | test r / R² |")
    print("|---|---|---|---|---|")
    for (tub, arm), got in sorted(rows.items()):
        keys = ("val_r", "val_r2", "test_r", "test_r2")
        mean = {k: np.mean([s[k] for _, s in got]) for k in keys}
        seeds = ",".join(sorted({s for s, _ in got}))
        print(
            f"| {tub} | {arm} | {seeds} | {mean['val_r']:.3f} / {mean['val_r2']:.3f} | "
            f"{mean['test_r']:.3f} / {mean['test_r2']:.3f} |"
        )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
