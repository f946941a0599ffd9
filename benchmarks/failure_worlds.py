"""Which world parameters separate the tracks a network fails from those it laps?

    python benchmarks/failure_worlds.py SPEC.yaml DRIVES [DRIVES ...]

Each DRIVES is `PATH/episodes.jsonl[:SIDE]`: a `bench_policy_finetune.py` output (SIDE `start`
or `end`, default end) or an `oracle_split.py` output (SIDE: the arm, e.g. `network`). The
drives are pooled (one per line; a seed driven twice counts twice), each track's world is
drawn from SPEC as the env draws it (`dagger_table.world`, no rendering), and every parameter
of `dagger_table.WORLD` (plus |yaw|, |mount offset| and road width) is compared between failed
and lapped drives: the two means and a two-sided Mann-Whitney U test's p. One comparison per
parameter, so read small p's with that many tests in mind.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from dagger_table import WORLD, world
from scipy.stats import mannwhitneyu

EXTRA = (
    ("camera", "yaw", "|yaw| deg"),
    ("camera", "mount_offset", "|mount offset| m"),
    ("track", "road_width", "road width m"),
)


def drives(spec: str) -> list[tuple[int, bool]]:
    """(seed, lapped) of every drive PATH[:SIDE] lists; SystemExit (one line) on bad input."""
    path, _, side = spec.partition(":")
    if not Path(path).is_file():
        raise SystemExit(f"error: {spec}: no such file (give PATH/episodes.jsonl[:SIDE])")
    out = []
    for number, line in enumerate(Path(path).read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise SystemExit(f"error: {path}:{number}: not JSON ({exc.msg})") from None
        if "arm" in row:  # oracle_split.py
            if row["arm"] == (side or "network"):
                out.append((int(row["seed"]), bool(row["completed"])))
        else:  # bench_policy_finetune.py
            if side not in ("", "start", "end"):
                raise SystemExit(
                    f"error: {spec}: SIDE of a bench_policy_finetune drive is "
                    f"start or end, got {side!r}"
                )
            out.append((int(row["seed"]), bool(row[side or "end"]["completed"])))
    if not out:
        raise SystemExit(f"error: {spec}: no drives (wrong side or arm?)")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("spec", type=Path)
    parser.add_argument("drives", nargs="+")
    args = parser.parse_args()
    pooled = [d for spec in args.drives for d in drives(spec)]
    lapped = np.array([ok for _, ok in pooled])
    print(f"{len(pooled)} drives, {lapped.sum()} lapped, {(~lapped).sum()} failed")
    if lapped.all() or not lapped.any():
        raise SystemExit("error: comparing worlds needs both failed and lapped drives")
    params = [world(seed, args.spec) for seed, _ in pooled]
    columns = [(group, key, label) for group, key, label, _ in WORLD] + list(EXTRA)
    seen = set()
    for group, key, label in columns:
        if (group, key) in seen:
            continue
        seen.add((group, key))
        values = np.array(
            [np.abs(p[group][key]) if "|" in label else p[group][key] for p in params]
        )
        if values.ndim != 1:
            continue
        p = mannwhitneyu(values[~lapped], values[lapped]).pvalue
        print(
            f"{label:18s} failed {values[~lapped].mean():8.3f}  lapped {values[lapped].mean():8.3f}"
            f"  p = {p:.4f}"
        )


if __name__ == "__main__":
    main()
