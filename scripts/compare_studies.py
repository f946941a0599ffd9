"""Compare two runs of a study (e.g. the quickstart before and after a change), cell by cell.

    python scripts/compare_studies.py OLD_OUT NEW_OUT > table.md

Reads the finished cells under each out dir's ``cells/`` (so an interrupted run compares too)
and prints markdown: one row per run cell label with steering R² and Pearson r on the real
test block and steering MAE on the held-out sim recording ("-": that side lacks the cell),
then the main start's per-stage domain gap (proxy A-distance) and the gap cell's recommendation.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

METRICS = (("real", "steering_r2"), ("real", "steering_pearson_r"), ("sim", "steering_mae"))


def finished_cells(out: Path, kind: str) -> dict[str, dict]:
    """The finished cells of `kind` in the study `out`, by label."""
    cells = {}
    for path in sorted((out / "cells").glob(f"{kind}-*/result.json")):
        cell = json.loads(path.read_text())
        cells[cell["label"]] = cell
    return cells


def _metric(cell: dict | None, part: str, name: str) -> str:
    if cell is None:
        return "-"
    return f"{cell['result'][part]['metrics'][name]['value']:.3f}"


def _gap(out: Path) -> dict:
    gaps = finished_cells(out, "gap")
    return gaps.get("gap main", {}).get("result", {})


def main(old_dir: str, new_dir: str) -> None:
    old, new = Path(old_dir), Path(new_dir)
    runs_old, runs_new = finished_cells(old, "run"), finished_cells(new, "run")
    print("| cell | real R² old / new | real r old / new | sim MAE old / new |")
    print("|---|---|---|---|")
    for label in sorted(set(runs_old) | set(runs_new)):
        a, b = runs_old.get(label), runs_new.get(label)
        pairs = [f"{_metric(a, part, name)} / {_metric(b, part, name)}" for part, name in METRICS]
        print(f"| {label} | " + " | ".join(pairs) + " |")
    gap_old, gap_new = _gap(old), _gap(new)
    print("\n| main start's stage | proxy A-distance old / new |")
    print("|---|---|")
    for stage, measured in gap_new.get("stages", {}).items():
        before = gap_old.get("stages", {}).get(stage, {}).get("proxy_a_distance")
        shown = "-" if before is None else f"{before:.3f}"
        print(f"| {stage} | {shown} / {measured['proxy_a_distance']:.3f} |")
    for name, gap in (("old", gap_old), ("new", gap_new)):
        rec = gap.get("recommendation", {})
        print(
            f"\n{name}: stages with proxy A-distance <= 1 from the first: "
            f"{rec.get('similar_prefix')}; freeze {rec.get('freeze')} at N={rec.get('n_real')}"
        )


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
