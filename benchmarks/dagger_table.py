"""The selection table of `sim2real dagger` runs: each iteration's closed-loop drive
(DIR/iter_NN/eval.json) paired with the run's start (iter_00) on the same tracks.

    python benchmarks/dagger_table.py RUN [RUN ...] [--spec SPEC.yaml]

One Markdown row per iteration: laps, mean lap fraction, mean |cte|, mean speed, the tracks
only the start laps / only this iteration laps, and McNemar's exact p on those (a two-sided
binomial test, as benchmarks/bench_policy_finetune.py). With --spec (the worlds' spec), a
second table: every track some network failed, with the world the seed draws (the env's
own draw at reset, without rendering) -- the looks and dynamics the closed-loop page names as
the hard ones.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from scipy.stats import binomtest


def laps(path: Path) -> tuple[dict[int, dict], dict]:
    """{seed: episode} and the summary (`closed_loop.summarize`) of an eval.json."""
    result = json.loads(path.read_text(encoding="utf-8"))
    return {e["seed"]: e for e in result["episodes"]}, result["summary"]


def rows(run: Path) -> list[str]:
    start = laps(run / "iter_00" / "eval.json")[0]
    out = []
    for folder in sorted(run.glob("iter_*")):
        if not (folder / "eval.json").is_file():
            continue
        now, summary = laps(folder / "eval.json")
        seeds = sorted(set(now) & set(start))
        only_start = [s for s in seeds if start[s]["completed"] and not now[s]["completed"]]
        only_now = [s for s in seeds if now[s]["completed"] and not start[s]["completed"]]
        flips = len(only_start) + len(only_now)
        p = binomtest(len(only_now), flips).pvalue if flips else 1.0
        eps = [now[s] for s in seeds]
        done = sum(e["completed"] for e in eps)
        out.append(
            f"| {run.name} {folder.name} | {done} / {len(eps)} = {100 * done / len(eps):.1f}% "
            f"| {np.mean([e['lap_fraction'] for e in eps]):.3f} "
            f"| {summary['mean_abs_cte_m']:.3f} m | {summary['mean_speed_mps']:.2f} m/s "
            f"| {len(only_start)} {only_start} | {len(only_now)} {only_now} | {p:.2f} |"
        )
    return out


WORLD = (
    ("track", "road_width", "road m", "{:.2f}"),
    ("camera", "height", "cam h m", "{:.2f}"),
    ("camera", "pitch", "pitch deg", "{:.0f}"),
    ("camera", "hfov", "hfov deg", "{:.0f}"),
    ("image", "contrast", "contrast", "{:.2f}"),
    ("image", "brightness", "bright", "{:.2f}"),
    ("dynamics", "steering_gain", "steer gain", "{:.2f}"),
    ("dynamics", "latency", "latency", "{:.0f}"),
    ("dynamics", "top_speed", "top m/s", "{:.1f}"),
)


def world(seed: int, spec: Path) -> dict:
    """The randomized world `TrackDrivingEnv.reset(seed=seed)` draws at strength 1."""
    from gymnasium.utils import seeding

    from sim2real.envs.randomization import resolve_spec

    return resolve_spec(spec).sample(seeding.np_random(seed)[0], 1.0)


def failures(runs: list[Path], spec: Path) -> list[str]:
    """One row per track that the start or any iteration of `runs` did not lap."""
    drives = {"start": laps(runs[0] / "iter_00" / "eval.json")[0]}
    for run in runs:
        for folder in sorted(run.glob("iter_*"))[1:]:
            if (folder / "eval.json").is_file():
                drives[f"{run.name}/{folder.name[5:]}"] = laps(folder / "eval.json")[0]
    seeds = sorted(
        s for s in drives["start"] if any(not d[s]["completed"] for d in drives.values())
    )
    names = list(drives)
    out = [
        "| seed | " + " | ".join(names) + " | " + " | ".join(w[2] for w in WORLD) + " |",
        "|---" * (1 + len(names) + len(WORLD)) + "|",
    ]
    for seed in seeds:
        params = world(seed, spec)
        fractions = [
            "lap" if drives[n][seed]["completed"] else f"{drives[n][seed]['lap_fraction']:.2f}"
            for n in names
        ]
        looks = [fmt.format(params[group][key]) for group, key, _, fmt in WORLD]
        out.append(f"| {seed} | " + " | ".join(fractions + looks) + " |")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--spec", type=Path, help="the worlds' spec: also list failed tracks")
    args = parser.parse_args()
    print(
        "| run, iteration | laps | mean lap fraction | mean abs cte | mean speed "
        "| only the start laps | only this laps | McNemar p |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for run in args.runs:
        print("\n".join(rows(run)))
    if args.spec is not None:
        print()
        print("\n".join(failures(args.runs, args.spec)))


if __name__ == "__main__":
    main()
