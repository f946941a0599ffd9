"""Lap counts of two networks' closed-loop drives of the same tracks, paired.

    python benchmarks/paired_laps.py A=DIR[:start|end] B=DIR[:start|end] [...]

Each DIR is a `benchmarks/bench_policy_finetune.py` output (episodes.jsonl: one line per
track with the `start` and `end` network's drive); `:start` / `:end` (default end) picks the
network. Prints laps with Wilson 95% intervals for each, then for every later one against the
first: tracks only the first laps, only this one laps, and McNemar's exact p (two-sided
binomial test on those). So drives saved by different runs pair up (e.g. a DAgger iteration
and the steering-gain start, each run against pilotnet-recipe's reused drives).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from scipy.stats import binomtest


def completed(spec: str) -> tuple[str, dict[int, bool]]:
    """NAME=DIR[:side] -> (NAME, {seed: lapped})."""
    name, _, where = spec.partition("=")
    if not where:
        raise SystemExit(f"error: {spec!r}: expected NAME=DIR[:start|end]")
    folder, _, side = where.partition(":")
    side = side or "end"
    if side not in ("start", "end"):
        raise SystemExit(f"error: {spec!r}: side must be start or end, got {side!r}")
    path = Path(folder) / "episodes.jsonl"
    if not path.is_file():
        raise SystemExit(f"error: {path}: no such file")
    out = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        try:
            row = json.loads(line)
            out[int(row["seed"])] = bool(row[side]["completed"])
        except (ValueError, KeyError, TypeError) as exc:
            what = f"no {exc}" if isinstance(exc, KeyError) else str(exc).splitlines()[0]
            raise SystemExit(
                f"error: {path}:{number}: not an episode with seed and {side}: {what}"
            ) from None
    return name, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("drives", nargs="+", help="NAME=DIR[:start|end]; the first is the base")
    args = parser.parse_args()
    runs = [completed(spec) for spec in args.drives]
    seeds = sorted(set.intersection(*(set(laps) for _, laps in runs)))
    if not seeds:
        raise SystemExit("error: the drives share no track")
    base_name, base = runs[0]
    print(f"{len(seeds)} tracks, seeds {seeds[0]}-{seeds[-1]}")
    for name, laps in runs:
        k = sum(laps[s] for s in seeds)
        ci = binomtest(k, len(seeds)).proportion_ci(method="wilson")
        line = (
            f"{name}: {k} / {len(seeds)} = {k / len(seeds):.1%} [Wilson {ci.low:.0%}-{ci.high:.0%}]"
        )
        if name != base_name:
            lost = sum(base[s] and not laps[s] for s in seeds)
            won = sum(laps[s] and not base[s] for s in seeds)
            p = binomtest(won, won + lost).pvalue if won + lost else 1.0
            line += f"; vs {base_name}: {won} won, {lost} lost, McNemar p = {p:.2f}"
        print(line)


if __name__ == "__main__":
    main()
