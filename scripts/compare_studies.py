"""Compare two runs of a study (e.g. the quickstart before and after a change), cell by cell.

    python scripts/compare_studies.py OLD_OUT NEW_OUT > table.md

Reads each out dir's results.json and prints a markdown table with one row per run cell label:
steering R² and Pearson r on the real test block, steering MAE on the held-out sim recording,
and which cells only one side has; then each start's recommended freeze per N.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def _runs(out: Path) -> tuple[dict[str, dict], dict]:
    results = json.loads((out / "results.json").read_text())
    return {r["label"]: r for r in results["runs"]}, results


def _value(record: dict | None, part: str, metric: str) -> str:
    if record is None:
        return "-"
    value = record[part].get(metric, {}).get("value")
    return "-" if value is None else f"{value:.3f}"


def main(old_dir: str, new_dir: str) -> None:
    (old, old_results), (new, new_results) = _runs(Path(old_dir)), _runs(Path(new_dir))
    print("| cell | real R² old / new | real r old / new | sim MAE old / new |")
    print("|---|---|---|---|")
    for label in sorted(set(old) | set(new)):
        a, b = old.get(label), new.get(label)
        cells = [
            f"{_value(a, part, metric)} / {_value(b, part, metric)}"
            for part, metric in (
                ("real", "steering_r2"),
                ("real", "steering_pearson_r"),
                ("sim", "steering_mae"),
            )
        ]
        print(f"| {label} | " + " | ".join(cells) + " |")
    print()
    print(f"cells: old {old_results['cells']['total']}, new {new_results['cells']['total']}")
    for name, start in new_results["starts"].items():
        before = old_results["starts"].get(name, {}).get("recommendation", {})
        after = start.get("recommendation", {})
        for n in sorted(set(before) | set(after), key=int):
            k_old = before.get(n, {}).get("freeze", "-")
            k_new = after.get(n, {}).get("freeze", "-")
            print(f"{name}: recommended freeze at N={n}: old {k_old}, new {k_new}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
