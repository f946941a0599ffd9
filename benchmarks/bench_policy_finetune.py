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
OUT/episodes.jsonl as they finish (the file is rewritten atomically), and a re-run skips the
seeds already there (resumable); OUT/settings.json, written with a run's first episode, holds
what the drives depend on (the two checkpoints' fingerprints, the worlds' spec and its hash,
strength, step limit), and a re-run, or a `--reuse-start` of another OUT, with other settings
is refused once OUT holds an episode. OUT/summary.json holds the
totals. `--curves NAME=RUN ...` also plots the runs' evals.json
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
from sim2real.agents.dagger import checkpoint_fingerprint
from sim2real.agents.policy import EVALS_FILE
from sim2real.agents.sb3_env import PreprocessObservation
from sim2real.common.digest import file_sha256
from sim2real.common.io import (
    agg_pyplot,
    atomic_save_figure,
    atomic_write_json,
    atomic_write_text,
)
from sim2real.envs.track_env import TrackDrivingEnv

ARMS = ("start", "end")
EPISODES_FILE = "episodes.jsonl"
SETTINGS_FILE = "settings.json"
WORLD_KEYS = ("strength", "max_steps", "throttle_scale")
"""settings besides the networks and the spec that a drive depends on"""


def read_done(path: Path) -> dict[int, dict[str, Any]]:
    """{seed: {"start": episode, "end": episode}} already in the JSONL file.

    A last line cut short (an append interrupted before this file was rewritten atomically) is
    dropped, as its seed was not finished; any other unreadable line is a ValueError."""
    done: dict[int, dict[str, Any]] = {}
    if not path.is_file():
        return done
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines) and not text.endswith("\n"):
                break
            raise ValueError(f"{path}: line {number} is not a JSON episode row") from None
        done[int(row["seed"])] = row
    return done


def write_done(path: Path, done: dict[int, dict[str, Any]]) -> None:
    """The rows of `done` as JSONL at `path`, atomically (a reader sees all or none of a row)."""
    atomic_write_text(path, "".join(json.dumps(row) + "\n" for row in done.values()))


def run_settings(args: argparse.Namespace) -> dict[str, Any]:
    """What the drives of this run depend on: both networks (path and fingerprint), the worlds'
    spec (path and SHA-256; None: the envs' default), strength, step limit, throttle scale."""
    spec = args.randomization
    return {
        "start": str(args.start),
        "start_fingerprint": checkpoint_fingerprint(args.start),
        "end": str(args.end),
        "end_fingerprint": checkpoint_fingerprint(args.end),
        "randomization": None if spec is None else str(spec),
        "randomization_sha256": None if spec is None else file_sha256(Path(spec)),
        "strength": args.strength,
        "max_steps": args.max_steps,
        "throttle_scale": 1.0,
    }


def saved_settings(out: Path) -> dict[str, Any] | None:
    """OUT's settings.json; for a run from before it was written, its summary.json's settings
    (paths only, no fingerprints); None if OUT has neither."""
    for path, key in ((out / SETTINGS_FILE, None), (out / "summary.json", "settings")):
        if path.is_file():
            saved = json.loads(path.read_text(encoding="utf-8"))
            return saved if key is None else saved[key]
    return None


def setting_differences(
    saved: dict[str, Any], now: dict[str, Any], arms: tuple[str, ...]
) -> list[str]:
    """How `saved` differs from `now` for drives of `arms`, one phrase each ([]: the same).

    A network or the spec is compared by its fingerprint where both have one, else by path."""
    differ = []
    for name in (*arms, "randomization"):
        key = f"{name}_fingerprint" if name in ARMS else f"{name}_sha256"
        if key in saved:
            if saved[key] != now[key]:
                differ.append(f"{name} {saved[name]} there vs {now[name]} now (other contents)")
        elif _resolved(saved.get(name)) != _resolved(now[name]):
            differ.append(f"{name} {saved.get(name)} there vs {now[name]} now")
    for key in WORLD_KEYS:
        if key in saved and saved[key] != now[key]:
            differ.append(f"{key} {saved[key]} there vs {now[key]} now")
    return differ


def _resolved(path: str | None) -> str | None:
    return None if path is None else str(Path(path).resolve())


def check_settings(folder: Path, now: dict[str, Any], arms: tuple[str, ...], what: str) -> None:
    """SystemExit with one line when `folder`'s episodes were driven with other settings (for
    `arms`), or cannot be checked (episodes but no settings saved). A folder without episodes
    passes whatever settings it holds: they describe no drive."""
    if not read_done(folder / EPISODES_FILE):
        return  # nothing driven there yet (a run that stopped before its first seed)
    saved = saved_settings(folder)
    if saved is None:
        raise SystemExit(
            f"error: {what} {folder} has episodes but no {SETTINGS_FILE} or summary.json, "
            "so its settings cannot be checked; use a fresh --out"
        )
    differ = setting_differences(saved, now, arms)
    if differ:
        raise SystemExit(
            f"error: {what} {folder} was driven with other settings: {'; '.join(differ)}"
        )


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
    plt = agg_pyplot()

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
    atomic_save_figure(fig, path, dpi=100)


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
    episodes_path = args.out / EPISODES_FILE
    settings = run_settings(args)
    check_settings(args.out, settings, ARMS, "--out")
    if args.reuse_start:
        if not (args.reuse_start / EPISODES_FILE).is_file():
            raise SystemExit(f"error: --reuse-start {args.reuse_start} has no {EPISODES_FILE}")
        check_settings(args.reuse_start, settings, ("start",), "--reuse-start")
    done = read_done(episodes_path)
    seeds = range(args.seed_start, args.seed_start + args.episodes)
    envs = {
        arm: PreprocessObservation(
            TrackDrivingEnv(sizes.copy().pop(), args.randomization, args.strength),
            nets[arm][0].spec.preprocessing,
        )
        for arm in ARMS
    }
    earlier = read_done(args.reuse_start / EPISODES_FILE) if args.reuse_start else {}
    settings_written = False
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
        done[seed] = row
        if not settings_written:  # with this run's first episode, so they describe a drive
            atomic_write_json(args.out / SETTINGS_FILE, settings)
            settings_written = True
        write_done(episodes_path, done)  # after every seed: resumable
        print(
            f"seed {seed}: start {row['start']['outcome']}, end {row['end']['outcome']}",
            flush=True,
        )
    rows = [done[s] for s in seeds if s in done]
    summary = {
        **paired_summary(rows),
        "settings": settings,
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
