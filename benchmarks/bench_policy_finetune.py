"""Paired closed-loop comparison: a start network and its PPO fine-tune on the same tracks.

Run by hand (after `sim2real train-policy --config experiments/configs/policy_ppo_finetune.yaml
--out RUN`):

    python benchmarks/bench_policy_finetune.py --start agents/pretrained/pilotnet-recipe \
        --end RUN/checkpoint --out OUT [--seed-start 10000] [--episodes 120] \
        [--randomization experiments/configs/policy_two_lane_worlds.yaml]

Both networks drive each seed in turn (start, then end), at their own speed (no throttle
scale), through `sim2real.agents.closed_loop.drive_episode` (what `sim2real evaluate --sim` does,
with the same stall rule), so a run stopped early
still holds paired results for the seeds it reached. Every seed's two episodes are appended to
OUT/episodes.jsonl as they finish, and a re-run skips the seeds already there (resumable);
OUT/summary.json holds the totals. `--curves NAME=RUN ...` also plots the runs' evals.json
(lap rate and mean speed on their selection seeds against env steps) to OUT/curves.png.
The paired test is McNemar's exact test: a two-sided
binomial test on the tracks that exactly one of the two networks laps.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import torch
from scipy.stats import binomtest

from sim2real.agents.checkpoint import load_checkpoint
from sim2real.agents.closed_loop import camera_size_for, drive_episode, summarize
from sim2real.agents.policy import EVALS_FILE
from sim2real.agents.sb3_env import PreprocessObservation
from sim2real.common.io import atomic_write, atomic_write_json
from sim2real.envs.track_env import TrackDrivingEnv

ARMS = ("start", "end")


def read_done(path: Path) -> dict[int, dict[str, Any]]:
    """{seed: {"start": episode, "end": episode}} already in the JSONL file."""
    done: dict[int, dict[str, Any]] = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                done[int(row["seed"])] = row
    return done


def paired_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Lap counts of both arms, the discordant pairs and McNemar's exact p-value."""
    start = [r["start"]["completed"] for r in rows]
    end = [r["end"]["completed"] for r in rows]
    only_start = sum(s and not e for s, e in zip(start, end, strict=True))
    only_end = sum(e and not s for s, e in zip(start, end, strict=True))
    discordant = only_start + only_end
    p = binomtest(only_end, discordant, 0.5).pvalue if discordant else 1.0
    return {
        "tracks": len(rows),
        "seeds": [r["seed"] for r in rows],
        "start": summarize([r["start"] for r in rows]),
        "end": summarize([r["end"] for r in rows]),
        "both_lap": sum(s and e for s, e in zip(start, end, strict=True)),
        "only_start_laps": only_start,
        "only_end_laps": only_end,
        "mcnemar_p": float(p),
    }


def plot_curves(runs: dict[str, Path], path: Path) -> None:
    """Lap completion rate and mean speed of each run's evals.json against env steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for name, run in runs.items():
        evals = json.loads((run / EVALS_FILE).read_text(encoding="utf-8"))
        steps = [e["timesteps"] for e in evals]
        n = evals[0]["episodes"]
        axes[0].plot(steps, [e["lap_completion_rate"] for e in evals], "o-", label=name)
        axes[1].plot(steps, [e["mean_speed_mps"] for e in evals], "o-", label=name)
    axes[0].set(xlabel="env steps", ylabel=f"lap completion ({n} selection tracks)", ylim=(0, 1.02))
    axes[1].set(xlabel="env steps", ylabel="mean speed (m/s)")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    atomic_write(path, lambda p: fig.savefig(p, dpi=100, format="png"))


def main() -> None:
    torch.set_num_threads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--start", type=Path, help="checkpoint before PPO")
    parser.add_argument("--end", type=Path, help="checkpoint after PPO")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--seed-start", type=int, default=10_000)
    parser.add_argument("--episodes", type=int, default=120)
    parser.add_argument("--randomization", type=Path, help="spec YAML (default: the envs')")
    parser.add_argument("--strength", type=float, default=1.0)
    parser.add_argument("--max-steps", type=int, default=2000)
    parser.add_argument(
        "--reuse-start",
        type=Path,
        metavar="OUT",
        help="take the start's episodes from an earlier OUT of the same --start, seeds and "
        "worlds (drives are deterministic) and drive only --end",
    )
    parser.add_argument("--curves", nargs="+", default=[], metavar="NAME=RUN", help="plot runs")
    args = parser.parse_args()
    if args.curves:
        args.out.mkdir(parents=True, exist_ok=True)
        runs = {name: Path(run) for name, run in (c.split("=", 1) for c in args.curves)}
        plot_curves(runs, args.out / "curves.png")
    if args.start is None or args.end is None:
        if not args.curves:
            parser.error("give --start and --end (or only --curves)")
        return

    nets = {arm: load_checkpoint(getattr(args, arm)) for arm in ARMS}
    sizes = {camera_size_for(card) for _, card in nets.values()}
    if len(sizes) != 1:
        raise SystemExit(f"error: the two checkpoints use different cameras {sorted(sizes)}")
    args.out.mkdir(parents=True, exist_ok=True)
    episodes_path = args.out / "episodes.jsonl"
    done = read_done(episodes_path)
    seeds = range(args.seed_start, args.seed_start + args.episodes)
    envs = {
        arm: PreprocessObservation(
            TrackDrivingEnv(sizes.copy().pop(), args.randomization, args.strength),
            nets[arm][0].spec.preprocessing,
        )
        for arm in ARMS
    }
    earlier = read_done(args.reuse_start / "episodes.jsonl") if args.reuse_start else {}
    for seed in seeds:
        if seed in done:
            continue
        row: dict[str, Any] = {"seed": seed}
        if seed in earlier:
            row["start"] = {**earlier[seed]["start"], "reused_from": str(args.reuse_start)}
        for arm in (a for a in ARMS if a not in row):
            t0 = time.perf_counter()
            episode = drive_episode(nets[arm][0], envs[arm], seed, max_steps=args.max_steps)
            row[arm] = {**episode, "seconds": time.perf_counter() - t0}
        with episodes_path.open("a", encoding="utf-8") as f:  # one line per seed: resumable
            f.write(json.dumps(row) + "\n")
        done[seed] = row
        print(
            f"seed {seed}: start {row['start']['outcome']}, end {row['end']['outcome']}",
            flush=True,
        )
    rows = [done[s] for s in seeds if s in done]
    summary = {
        **paired_summary(rows),
        "settings": {
            "start": str(args.start),
            "end": str(args.end),
            "randomization": None if args.randomization is None else str(args.randomization),
            "strength": args.strength,
            "max_steps": args.max_steps,
            "throttle_scale": 1.0,
        },
    }
    atomic_write_json(args.out / "summary.json", summary)
    s = summary
    print(
        f"{s['tracks']} tracks: start laps {round(s['start']['lap_completion_rate'] * s['tracks'])}"
        f", end laps {round(s['end']['lap_completion_rate'] * s['tracks'])}; only start "
        f"{s['only_start_laps']}, only end {s['only_end_laps']}, McNemar p {s['mcnemar_p']:.3g}; "
        f"speed {s['start']['mean_speed_mps']:.2f} -> {s['end']['mean_speed_mps']:.2f} m/s"
    )


if __name__ == "__main__":
    main()
