"""PPO learning curves: encoder (and actor) from a perception pretrain vs random init.

Run by hand; prints tables and writes OUT/curves.json, OUT/curves.csv and OUT/curves.png:

    python benchmarks/bench_policy_curves.py --pretrained CKPT --out DIR \
        [--config experiments/configs/policy_ppo_curves.yaml] [--seeds 0 1] [--timesteps N] \
        [--arms pretrained random] [--laps 0.1 0.5] [--fraction 0.1 0.6]

Every run is `sim2real.agents.policy.train_policy` (the `train-policy` machinery: its closed-loop
evaluation callback writes the curve to evals.json) on the same config. The arms differ only in
the encoder init: "pretrained" sets `init_checkpoint` (encoder, head hidden layer and the
steering/throttle rows of the output layer are copied, so at step 0 the policy's mean action
is the perception network's output), "random" leaves it null (the config's seeded init).
"random-unfrozen" (optional) is random init with nothing frozen, the usual from-scratch PPO.
Each run folder OUT/ARM/seedS resumes when re-run; finished runs are only read.

"Steps to reach" is the first evaluated env step at which a run's lap completion rate (or
mean lap fraction) is at least the threshold; None when never within the budget.

Measured 2026-11-26 on the shared 2-core CPU box (load 6.7-8.8, 1 torch thread, runs one after
another), policy_ppo_curves.yaml (pilotnet 64x128 from the 120x160 camera, encoder frozen,
n_envs 2 in-process, lr 5e-5, clip 0.1, target_kl 0.02, std e^-2), 10,240 steps, seeds 0 and 1,
eval every 1k steps on held-out seeds 10000-10009 (randomized, max 600 steps), pretrained from
/work/notes/runs/pre20k (PilotNet, 20k sim frames, 8 epochs). Lap completion % / lap fraction,
mean of the 2 seeds, at 0 / 2k / 4k / 6k / 8k / 10k / 10.24k steps:
  pretrained       50 45 40 50 50 65 40 %  0.60 0.59 0.64 0.63 0.63 0.71 0.55
  random (frozen)   0  0  0  0  0  0  0 %  0.00 0.03 0.04 0.07 0.08 0.08 0.08
  random-unfrozen   0  0  0  0  0  0  0 %  0.00 0.01 0.06 0.07 0.09 0.09 0.09
Steps to 50% laps: pretrained 0 (both seeds; the copied perception actor), random arms never;
to 60% laps: pretrained seed 1 at 5k, seed 0 never. The perception net alone: 40% / 0.55 on
the same seeds; the step-0 policy (same weights, outputs within 1.2e-7) 50% / 0.60: the closed
loop is chaotic, so +-1-2 laps of 10 between evaluations is noise, not learning. Wall per run
385-655 s, 60-70% of it evaluation; training 54-72 env steps/s frozen, 41 unfrozen.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from sim2real.agents.checkpoint import load_checkpoint
from sim2real.agents.closed_loop import evaluate_closed_loop, held_out_seeds
from sim2real.agents.policy import EVALS_FILE, PolicyConfig, load_policy_config, train_policy
from sim2real.common.io import (
    agg_pyplot,
    atomic_save_figure,
    atomic_write_json,
    atomic_write_text,
)
from sim2real.common.machine import load_text

DEFAULT_CONFIG = (
    Path(__file__).resolve().parent.parent / "experiments/configs/policy_ppo_curves.yaml"
)
ARMS = ("pretrained", "random", "random-unfrozen")
COLUMNS = (
    "timesteps",
    "lap_completion_rate",
    "mean_lap_fraction",
    "mean_abs_cte_m",
    "mean_speed_mps",
    "off_road_per_km",
)


def arm_config(args: argparse.Namespace, arm: str, seed: int) -> PolicyConfig:
    """The config of one run: the file's, with the seed, budget and the arm's init."""
    budget = {"total_timesteps": args.timesteps} if args.timesteps is not None else {}
    config = load_policy_config(args.config, {**budget, "seed": seed})
    if arm == "pretrained":
        config.init_checkpoint = str(args.pretrained)
    else:
        config.init_checkpoint = None
    if arm == "random-unfrozen":
        config.freeze = 0
    return config


def read_runs(out: Path, arms, seeds) -> dict[str, dict[int, list[dict]]]:
    """{arm: {seed: evals}} for the runs that have an evals.json."""
    runs: dict[str, dict[int, list[dict]]] = {}
    for arm in arms:
        for seed in seeds:
            path = out / arm / f"seed{seed}" / EVALS_FILE
            if path.is_file():
                runs.setdefault(arm, {})[seed] = json.loads(path.read_text(encoding="utf-8"))
    return runs


def steps_to_reach(evals: list[dict], key: str, threshold: float) -> int | None:
    """First evaluated step whose `key` is at least `threshold` (None: never)."""
    return next((e["timesteps"] for e in evals if e[key] >= threshold - 1e-9), None)


def pooled(evals_by_seed: dict[int, list[dict]]) -> list[dict]:
    """Per eval step (common to every seed): mean over seeds of the per-run lap completion and
    lap fraction, and the standard error over all episodes pooled across seeds."""
    steps = sorted(set.intersection(*({e["timesteps"] for e in v} for v in evals_by_seed.values())))
    rows = []
    for step in steps:
        entries = [next(e for e in v if e["timesteps"] == step) for v in evals_by_seed.values()]
        episodes = [ep for e in entries for ep in e["episodes_detail"]]
        laps = np.array([ep["completed"] for ep in episodes], float)
        frac = np.array([ep["lap_fraction"] for ep in episodes], float)
        n = len(episodes)
        rows.append(
            {
                "timesteps": step,
                "lap_completion_rate": float(laps.mean()),
                "lap_completion_se": float(np.sqrt(laps.mean() * (1 - laps.mean()) / n)),
                "mean_lap_fraction": float(frac.mean()),
                "lap_fraction_se": float(frac.std(ddof=1) / np.sqrt(n)) if n > 1 else 0.0,
                "episodes": n,
            }
        )
    return rows


def reference(args: argparse.Namespace, config: PolicyConfig) -> dict:
    """The perception checkpoint driving the same held-out seeds by itself (no RL)."""
    net, _ = load_checkpoint(args.pretrained)
    cfg = config.eval
    result = evaluate_closed_loop(
        net,
        seeds=held_out_seeds(cfg.episodes, cfg.seed_start),
        nominal=cfg.nominal,
        strength=config.env.strength,
        image_size=config.env.image_size,
        max_steps=cfg.max_steps,
        randomization=config.env.randomization,
        stall_steps=cfg.stall_steps,
    )
    return result["summary"]


def write_csv(path: Path, runs: dict) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["arm", "seed", *COLUMNS, "eval_seconds"])
    for arm, by_seed in runs.items():
        for seed, evals in by_seed.items():
            for e in evals:
                writer.writerow([arm, seed, *(e[k] for k in COLUMNS), round(e["seconds"], 1)])
    atomic_write_text(path, buffer.getvalue())


def plot(runs: dict, summary: dict, ref: dict | None, title: str, path: Path) -> None:
    plt = agg_pyplot()

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    panels = (
        ("lap_completion_rate", "lap_completion_se", "lap completion rate"),
        ("mean_lap_fraction", "lap_fraction_se", "mean lap fraction"),
    )
    for i, arm in enumerate(runs):
        color = f"C{i}"
        rows = summary[arm]["pooled"]
        steps = np.array([r["timesteps"] for r in rows])
        for ax, (key, se, _) in zip(axes, panels, strict=True):
            mean = np.array([r[key] for r in rows])
            err = np.array([r[se] for r in rows])
            n_seeds = len(runs[arm])
            ax.plot(steps, mean, "o-", color=color, lw=2, ms=3, label=f"{arm} ({n_seeds} seeds)")
            ax.fill_between(steps, mean - err, mean + err, color=color, alpha=0.2)
            for evals in runs[arm].values():
                ax.plot(
                    [e["timesteps"] for e in evals],
                    [e[key] for e in evals],
                    "-",
                    color=color,
                    lw=0.7,
                    alpha=0.5,
                )
    for ax, (key, _, label) in zip(axes, panels, strict=True):
        if ref is not None:
            ax.axhline(ref[key], color="k", ls="--", lw=1, label="perception net alone")
        ax.set(xlabel="env steps", ylabel=label, ylim=(-0.05, 1.05))
    axes[0].legend(fontsize=8)
    fig.suptitle(f"{title}: mean over seeds (+-1 s.e. over episodes), each seed thin", fontsize=10)
    fig.tight_layout()
    atomic_save_figure(fig, path, dpi=100)


def main() -> None:
    torch.set_num_threads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--pretrained", type=Path, help="perception checkpoint folder")
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--timesteps", type=int, help="override total_timesteps")
    parser.add_argument("--arms", nargs="+", choices=ARMS, default=["pretrained", "random"])
    parser.add_argument(
        "--laps", type=float, nargs="+", default=[0.1, 0.5], help="lap completion thresholds"
    )
    parser.add_argument(
        "--fraction", type=float, nargs="+", default=[0.1, 0.6], help="lap fraction thresholds"
    )
    parser.add_argument("--report-only", action="store_true", help="train nothing, summarise")
    args = parser.parse_args()
    if "pretrained" in args.arms and args.pretrained is None:
        parser.error("--pretrained CHECKPOINT is needed for the pretrained arm")

    for seed in args.seeds:  # seed-major, so an interrupted benchmark leaves comparable arms
        for arm in args.arms:
            if args.report_only:
                continue
            config = arm_config(args, arm, seed)
            t0 = time.perf_counter()
            result = train_policy(config, args.out / arm / f"seed{seed}", resume=True)
            print(
                f"{arm} seed {seed}: {result.evals[-1]['timesteps']} steps, "
                f"{time.perf_counter() - t0:.0f} s, load {load_text()}",
                flush=True,
            )

    runs = read_runs(args.out, args.arms, args.seeds)
    ref = None
    if args.pretrained is not None:
        ref_path = args.out / "perception_alone.json"
        if not ref_path.is_file():
            atomic_write_json(ref_path, reference(args, arm_config(args, "pretrained", 0)))
        ref = json.loads(ref_path.read_text(encoding="utf-8"))
    thresholds = [("lap_completion_rate", t) for t in args.laps] + [
        ("mean_lap_fraction", t) for t in args.fraction
    ]
    summary = {}
    for arm, by_seed in runs.items():
        p = pooled(by_seed)
        summary[arm] = {
            "pooled": p,
            "steps_to": [
                {
                    "metric": key,
                    "threshold": t,
                    "per_seed": {s: steps_to_reach(v, key, t) for s, v in by_seed.items()},
                    "pooled": steps_to_reach(p, key, t),
                }
                for key, t in thresholds
            ],
        }
    table = {
        "config": str(args.config),
        "pretrained": str(args.pretrained) if args.pretrained else None,
        "perception_alone": ref,
        "runs": {a: {s: [{k: e[k] for k in COLUMNS} for e in v] for s, v in r.items()}
                 for a, r in runs.items()},
        "summary": summary,
    }  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out / "curves.json", table)
    write_csv(args.out / "curves.csv", runs)
    if runs:
        freezes = {arm: arm_config(args, arm, args.seeds[0]).freeze for arm in runs}
        algorithm = arm_config(args, "random", args.seeds[0]).algorithm.upper()
        frozen = ", ".join(f"{a} {f!r}" for a, f in freezes.items())
        title = f"{algorithm}, encoder freeze {frozen}"
        plot(runs, summary, ref, title, args.out / "curves.png")

    if ref is not None:
        print(
            f"perception net alone: laps {100 * ref['lap_completion_rate']:.0f}%, "
            f"lap fraction {ref['mean_lap_fraction']:.2f}"
        )
    for arm, by_seed in runs.items():
        print(f"\n{arm}: steps  laps% per seed (pooled)  lap fraction per seed (pooled)")
        pooled_rows = {r["timesteps"]: r for r in summary[arm]["pooled"]}
        steps = sorted({e["timesteps"] for v in by_seed.values() for e in v})
        for step in steps:
            per = [next((e for e in v if e["timesteps"] == step), None) for v in by_seed.values()]
            laps = " ".join(f"{100 * e['lap_completion_rate']:4.0f}" if e else "   -" for e in per)
            frac = " ".join(f"{e['mean_lap_fraction']:.2f}" if e else "   -" for e in per)
            p = pooled_rows.get(step)
            pl = f"({100 * p['lap_completion_rate']:3.0f})" if p else ""
            pf = f"({p['mean_lap_fraction']:.2f})" if p else ""
            print(f"  {step:6d}  {laps} {pl:6s}  {frac} {pf}")
        for row in summary[arm]["steps_to"]:
            name = "laps" if row["metric"] == "lap_completion_rate" else "lap fraction"
            print(
                f"  steps to {name} >= {row['threshold']}: per seed {row['per_seed']}, "
                f"pooled {row['pooled']}"
            )


if __name__ == "__main__":
    main()
