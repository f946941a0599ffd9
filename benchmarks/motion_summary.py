"""Per arm of benchmarks/motion_teacher.sh's OUT: steering R² / r on the validation and test
blocks (mean over seeds, then per seed) and each run's CPU s / wall s.

usage: python benchmarks/motion_summary.py OUT
"""

import json
import re
import sys
from pathlib import Path

import numpy as np


def main(out: Path) -> None:
    val = {}
    for path in out.glob("*val.json"):
        for key, scores in json.loads(path.read_text()).items():
            checkpoint, tub = key.split("|")
            name = Path(checkpoint).name
            if name.startswith(tub):  # the network's own recording
                val[name] = scores
    arms: dict[tuple[str, str], list[dict]] = {}
    for run in sorted(p for p in out.iterdir() if re.fullmatch(r".+-n\d+-.+-s\d", p.name)):
        tub, n, arm, seed = re.fullmatch(r"(.+)-n(\d+)-(.+)-s(\d)", run.name).groups()
        test_json = run.with_name(run.name + "-test.json")
        test = None
        if test_json.is_file():
            m = json.loads(test_json.read_text())["metrics"]
            test = {"r2": m["steering_r2"]["value"], "r": m["steering_pearson_r"]["value"]}
        timing = run.with_name(run.name + ".time")
        cost = re.search(
            r"user ([\d.]+) s, system ([\d.]+) s, wall ([\d.]+)",
            timing.read_text() if timing.is_file() else "",
        )
        arms.setdefault((tub, f"n{n}-{arm}"), []).append(
            {"seed": seed, "val": val.get(run.name), "test": test, "cost": cost}
        )
    for (tub, arm), runs in arms.items():
        line = [tub, arm, "seeds " + ",".join(r["seed"] for r in runs)]
        for block in ("val", "test"):
            got = [r[block] for r in runs if r[block]]
            if got:
                r2, r = [g["r2"] for g in got], [g["r"] for g in got]
                each = " / ".join(f"{v:.2f}" for v in r2)
                line.append(f"{block} {np.mean(r2):.3f} / {np.mean(r):.3f} ({each})")
        costs = [r["cost"].groups() for r in runs if r["cost"]]
        line.append(
            "CPU/wall s "
            + ", ".join(f"{float(u) + float(s):.0f}/{float(w):.0f}" for u, s, w in costs)
        )
        print(" | ".join(line))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
