"""Lap rates of several arms over the same held-out tracks, from `evaluate --sim --json` files.

    python benchmarks/summarize_closed_loop.py DIR ARM [ARM ...] [--seeds 10000 10119]

Reads DIR/ARM-sim-*.json (blocks of seeds, as benchmarks/temporal/runs.sh writes them), keeps
the seeds in --seeds (inclusive range), and prints per arm: laps / tracks with a Wilson 95%
interval, mean lap fraction, off-road events per km; then, for each pair of arms, the tracks
only one of them laps and the exact two-sided sign (McNemar) test on them.
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

from scipy import stats


def episodes(folder: Path, arm: str, low: int, high: int) -> dict[int, dict]:
    """Seed -> episode result of `arm` over every DIR/ARM-sim-*.json, seeds in [low, high]."""
    found: dict[int, dict] = {}
    for path in sorted(folder.glob(f"{arm}-sim-*.json")):
        for episode in json.loads(path.read_text())["episodes"]:
            if low <= episode["seed"] <= high:
                found[episode["seed"]] = episode
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("arms", nargs="+")
    parser.add_argument("--seeds", nargs=2, type=int, default=(10000, 10119))
    args = parser.parse_args()
    runs = {arm: episodes(args.folder, arm, *args.seeds) for arm in args.arms}
    common = sorted(set.intersection(*(set(r) for r in runs.values())))
    if not common:
        raise SystemExit("error: the arms share no seeds in that range")
    print(f"{len(common)} tracks driven by every arm, seeds {common[0]}..{common[-1]}")
    for arm, run in runs.items():
        laps = sum(run[s]["completed"] for s in common)
        low, high = stats.binomtest(laps, len(common)).proportion_ci(method="wilson")
        km = sum(run[s]["distance_m"] for s in common) / 1000.0
        off = sum(run[s]["off_road_events"] for s in common)
        fraction = sum(run[s]["lap_fraction"] for s in common) / len(common)
        print(
            f"  {arm:12s} {laps}/{len(common)} laps = {100 * laps / len(common):.1f}% "
            f"[{100 * low:.0f}, {100 * high:.0f}], lap fraction {fraction:.2f}, "
            f"off-road {off / km:.1f}/km"
        )
    for a, b in itertools.combinations(args.arms, 2):
        only_a = sum(runs[a][s]["completed"] and not runs[b][s]["completed"] for s in common)
        only_b = sum(runs[b][s]["completed"] and not runs[a][s]["completed"] for s in common)
        n = only_a + only_b
        p = stats.binomtest(only_a, n).pvalue if n else 1.0
        print(f"  {a} vs {b}: only {a} laps {only_a}, only {b} {only_b}; sign test p={p:.2f}")


if __name__ == "__main__":
    main()
