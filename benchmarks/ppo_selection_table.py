"""Selection-track table of PPO runs: each run's closed-loop evaluations against its start,
paired on the same tracks.

    python benchmarks/ppo_selection_table.py NAME=SOURCE [NAME=SOURCE ...] [--episodes 80]

SOURCE is a `sim2real train-policy` run folder (every entry of its evals.json with `episodes`
tracks is a row: "NAME @ STEPS"; the entry at step 0 is the start) or a `sim2real evaluate
--sim --json` file (one row). The start is the first run's step-0 entry; every row is paired
with it on the seeds both drove: laps with a Wilson 95% interval, mean speed, the tracks only
the start laps and only the row laps, and McNemar's exact p (two-sided binomial test on
those). Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from scipy.stats import binomtest

EVALS = "evals.json"


def rows_of(name: str, source: Path, episodes: int) -> list[tuple[str, int, list[dict[str, Any]]]]:
    """[(label, steps, per-episode dicts)] of `source` (a run folder or an evaluate JSON)."""
    if not (source / EVALS).is_file() and not source.is_file():
        raise SystemExit(f"error: {name}={source}: neither a run folder with {EVALS} nor a file")
    if source.is_dir():
        evals = json.loads((source / EVALS).read_text(encoding="utf-8"))
        return [
            (f"{name} @ {e['timesteps']:,}", int(e["timesteps"]), e["episodes_detail"])
            for e in evals
            if e["episodes"] == episodes
        ]
    data = json.loads(source.read_text(encoding="utf-8"))
    if len(data["episodes"]) != episodes:
        return []
    return [(name, -1, data["episodes"])]


def laps(detail: list[dict[str, Any]]) -> dict[int, bool]:
    return {int(e["seed"]): bool(e["completed"]) for e in detail}


def p_value(p: float) -> str:
    """`p` to two decimals, or three below 0.01 (so that 0.001 does not print as 0.00)."""
    return f"{p:.2f}" if p >= 0.01 else f"{p:.3f}" if p >= 0.001 else "< 0.001"


def table(specs: list[str], episodes: int) -> str:
    rows: list[tuple[str, int, list[dict[str, Any]]]] = []
    for spec in specs:
        name, _, where = spec.partition("=")
        if not where:
            raise SystemExit(f"error: {spec!r}: expected NAME=SOURCE")
        rows += rows_of(name, Path(where), episodes)
    starts = [r for r in rows if r[1] == 0]
    if not starts:
        raise SystemExit(f"error: no run has a step-0 evaluation of {episodes} tracks")
    start = laps(starts[0][2])
    out = [
        "| network | laps [Wilson 95%] | mean of track speeds | only the start laps "
        "| only this laps | p |",
        "|---|---|---|---|---|---|",
    ]
    seen_start = False
    for label, steps, detail in rows:
        if steps == 0:
            if seen_start:
                continue  # the same start, driven again by another run: identical
            seen_start, label = True, "start (step 0)"
        mine = laps(detail)
        seeds = sorted(set(mine) & set(start))
        k = sum(mine[s] for s in seeds)
        ci = binomtest(k, len(seeds)).proportion_ci(method="wilson")
        speed = sum(e["mean_speed_mps"] for e in detail) / len(detail)
        only_start = sum(start[s] and not mine[s] for s in seeds)
        only_this = sum(mine[s] and not start[s] for s in seeds)
        n = only_start + only_this
        p = binomtest(only_this, n, 0.5).pvalue if n else 1.0
        rate = f"{k} / {len(seeds)} = {100 * k / len(seeds):.1f}%"
        cells = (
            f"{rate} [{100 * ci.low:.0f}-{100 * ci.high:.0f}%]",
            f"{speed:.2f} m/s",
            *((str(only_start), str(only_this), p_value(p)) if steps else ("", "", "")),
        )
        out.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sources", nargs="+", metavar="NAME=SOURCE")
    parser.add_argument("--episodes", type=int, default=80)
    args = parser.parse_args(argv)
    print(table(args.sources, args.episodes))


if __name__ == "__main__":
    main()
