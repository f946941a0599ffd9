"""Mean (and per-seed) scores of `adapt_zero_label.sh`'s arms, and their cost from the .time
files: one table per recording.

usage: python benchmarks/adapt/summary.py OUT TUB...
With SUFFIX=-mirror, reads OUT/TUB-scores-mirror.json (score.py with MIRROR=on).
"""

import json
import os
import re
import sys
from collections import defaultdict
from pathlib import Path

COLUMNS = ("val_r", "val_r2", "test_r", "test_r2", "test_cal_r2")


def cost(path: Path) -> str:
    if not path.is_file():
        return ""
    text = path.read_text()
    times = re.search(r"user ([\d.]+) s, system ([\d.]+) s, wall ([\d.]+) s", text)
    loads = re.findall(r"load average: ([\d.]+)", text)
    if not times:
        return ""
    cpu = float(times[1]) + float(times[2])
    return f"{float(times[3]):.0f} s wall, {cpu:.0f} CPU s, load {'-'.join(loads)}"


def main(out: str, tubs: list[str]) -> None:
    for tub in tubs:
        suffix = os.environ.get("SUFFIX", "")
        scores = json.loads((Path(out) / f"{tub}-scores{suffix}.json").read_text())
        arms = defaultdict(dict)
        for checkpoint, row in scores.items():
            match = re.search(rf"{re.escape(tub)}-(.+)-s(\d+)$", checkpoint)
            arm, seed = (match[1], int(match[2])) if match else (checkpoint, 0)
            arms[arm][seed] = row
        print(f"\n{tub}")
        print("| arm | seeds | " + " | ".join(COLUMNS) + " | cost (seed 0) |")
        for arm, by_seed in arms.items():
            means = [sum(r[c] for r in by_seed.values()) / len(by_seed) for c in COLUMNS]
            spent = cost(Path(out) / f"{tub}-{arm}-s0.time")
            seeds = ",".join(map(str, sorted(by_seed)))
            print(f"| {arm} | {seeds} | " + " | ".join(f"{m:.3f}" for m in means) + f" | {spent} |")
            if len(by_seed) > 1:
                for seed, row in sorted(by_seed.items()):
                    cells = " | ".join(f"{row[c]:.3f}" for c in COLUMNS)
                    print(f"|   s{seed} | | {cells} | |")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
