"""The adaptation ladder on real data: zero-shot, every rung, `auto` and scratch, by N.

    python benchmarks/bench_ladder.py --checkpoint SIM_CKPT --data TUB --name NAME
        [--frames 50 100 200 500 1000 all] [--seeds 0 1 2] [--scratch-frames 100 all]
        [--rungs gain calibrate probe head top full] [--epochs 30] [--out docs/ladder-bench]

For each N and seed, the same N training frames (a block subsample of the earlier part of
the recording, as `finetune --frames N` takes them) train every rung named with
`finetune --freeze RUNG` (its epoch count picked by K-fold CV on those N frames, as `auto`
picks it); `auto`'s pick is then `pick_rung` over those same CV scores (auto runs exactly
this CV over every rung and trains the pick, so its network is that rung's, bit for bit);
scratch (`--from-scratch`, early stopping on the validation block, as the CLI does) runs at
`--scratch-frames`. Every network is scored on the held-out TEST block (the last 20% of the
recording, `sim2real evaluate --split test`): steering R², Pearson r and sign agreement. The
zero-shot checkpoint is scored raw and scale-calibrated (fitted on the validation block, so
on more real frames than N). Validation data made every choice; the test block made none.
Results go to OUT/NAME.json after every cell (a rerun skips finished cells) and a markdown
table to OUT/NAME.md, with the machine, its load and this command.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch

from sim2real.agents.checkpoint import load_checkpoint
from sim2real.agents.training import TrainConfig
from sim2real.common.io import atomic_write_json, atomic_write_text
from sim2real.common.machine import load_average, machine_info
from sim2real.transfer.evaluate import evaluate_offline
from sim2real.transfer.finetune import FinetuneConfig, finetune, open_finetune_data
from sim2real.transfer.ladder import LadderConfig
from sim2real.transfer.ladder_cv import RungScore, pick_rung

SHOWN = {"steering_r2": "R²", "steering_pearson_r": "r", "steering_sign_agreement": "sign"}


def load(path: Path) -> dict:
    import json

    return json.loads(path.read_text()) if path.is_file() else {"cells": {}}


def scores_of(result) -> dict:
    ev = result.to_json()
    return {k: ev["metrics"][k]["value"] for k in SHOWN}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--name", required=True, help="output file stem, e.g. usi-track-a")
    parser.add_argument("--frames", nargs="*", default=["100"])
    parser.add_argument("--scratch-frames", nargs="*", default=["100", "all"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--scratch-seeds", type=int, nargs="+", default=None)
    parser.add_argument(
        "--rungs", nargs="*", default=["gain", "calibrate", "probe", "head", "top", "full"]
    )
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--scratch-epochs", type=int, default=30)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--n-boot", type=int, default=200)
    parser.add_argument("--out", type=Path, default=Path("docs/ladder-bench"))
    parser.add_argument(
        "--report-only", action="store_true", help="rewrite OUT/NAME.md from OUT/NAME.json"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    json_path = args.out / f"{args.name}.json"
    results = load(json_path)
    if args.report_only:  # a run still going (or killed) has no machine entry yet
        results.setdefault("checkpoint", str(args.checkpoint.resolve()))
        results.setdefault("data", str(args.data.resolve()))
        results.setdefault("command", "(run interrupted; cells so far)")
        results.setdefault("machine", {**machine_info(load_before=[]), "load_before": "?"})
        atomic_write_text(args.out / f"{args.name}.md", markdown(results, args))
        return
    cells: dict = results["cells"]
    work = Path(tempfile.mkdtemp(prefix="bench_ladder_"))
    started = time.perf_counter()
    load_before = load_average()

    def save() -> None:
        atomic_write_json(json_path, results)

    def evaluate(checkpoint: Path) -> dict:
        ev = evaluate_offline(checkpoint, [args.data], n_boot=args.n_boot, progress=False)
        return {
            "raw": scores_of(ev),
            "calibrated": {k: ev.to_json()["calibrated"]["metrics"][k]["value"] for k in SHOWN},
        }

    if "zero_shot" not in cells:
        cells["zero_shot"] = evaluate(args.checkpoint)
        save()
    _, card = load_checkpoint(args.checkpoint)

    def train(seed: int, epochs: int) -> TrainConfig:
        """finetune's default training, at `epochs`, quiet and on `args.threads`."""
        update = {"epochs": epochs, "seed": seed, "num_threads": args.threads}
        return FinetuneConfig().train.model_copy(
            update={**update, "progress": False, "tensorboard": False}
        )

    def frames_of(value: str) -> int | None:
        return None if value == "all" else int(value)

    for value in args.frames:
        frames = frames_of(value)
        for seed in args.seeds:
            data = None
            for rung in args.rungs:
                key = f"{value}|{seed}|{rung}"
                if key in cells:
                    continue
                config = FinetuneConfig(
                    checkpoint=str(args.checkpoint),
                    data=[str(args.data)],
                    frames=frames,
                    train=train(seed, args.epochs),
                    ladder=LadderConfig(folds=args.folds),
                )
                config.adapter.freeze = rung
                if data is None:
                    data = open_finetune_data(config, card.spec.preprocessing, progress=False)
                t0, cpu0 = time.perf_counter(), time.process_time()
                out = work / key.replace("|", "_")
                result = finetune(config, out, data=data)
                seconds = time.perf_counter() - t0
                score = result.ladder.scores[-1]
                cells[key] = {
                    "score": score.to_dict(),
                    "seconds": seconds,
                    "cpu_seconds": time.process_time() - cpu0,
                    "cv_seconds": result.ladder.seconds,
                    "frames": result.card.trained_on["frames"]["train"],
                    **evaluate(out),
                }
                print(
                    f"{args.name} N={value} seed {seed} {rung:9s}: {cells[key]['raw']} "
                    f"({seconds:.0f} s)",
                    flush=True,
                )
                save()
    for value in args.scratch_frames:
        for seed in args.scratch_seeds or args.seeds:
            key = f"{value}|{seed}|scratch"
            if key in cells:
                continue
            config = FinetuneConfig(
                checkpoint=str(args.checkpoint),
                data=[str(args.data)],
                frames=frames_of(value),
                train=train(seed, args.scratch_epochs),
                from_scratch=True,
            )
            t0 = time.perf_counter()
            out = work / key.replace("|", "_")
            result = finetune(config, out)
            cells[key] = {
                "seconds": time.perf_counter() - t0,
                "frames": result.card.trained_on["frames"]["train"],
                "epochs_run": result.card.metrics["epochs_run"],
                **evaluate(out),
            }
            print(f"{args.name} N={value} seed {seed} scratch: {cells[key]['raw']}", flush=True)
            save()
    results["machine"] = {
        **machine_info(load_before),
        "seconds_this_run": round(time.perf_counter() - started, 1),
    }
    results["command"] = " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv])
    results["checkpoint"] = str(args.checkpoint.resolve())
    results["data"] = str(args.data.resolve())
    save()
    atomic_write_text(args.out / f"{args.name}.md", markdown(results, args))
    print(f"wrote {args.out / (args.name + '.md')}")


def _fmt(values: list[float]) -> str:
    if not values:
        return "-"
    each = " / ".join(f"{v:.2f}" for v in values)
    return f"**{np.mean(values):.2f}** ({each})" if len(values) > 1 else f"{values[0]:.2f}"


def markdown(results: dict, args) -> str:
    cells = results["cells"]
    zs = cells["zero_shot"]
    ns = list(dict.fromkeys([*args.frames, *args.scratch_frames]))
    lines = [
        f"# Adaptation ladder on {args.name} ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)",
        "",
        f"- checkpoint: `{results['checkpoint']}`; data: `{results['data']}`",
        f"- scored on the held-out test block (last 20%); seeds {args.seeds}; "
        f"{args.folds}-fold CV picks epochs (and auto's rung) on the N training frames only",
        f"- machine: {results['machine']['cpus']} CPUs, {results['machine']['threads']} torch "
        f"thread(s), load average before {results['machine']['load_before']}, after "
        f"{results['machine']['load_after']}; {results['machine']['platform']}",
        f"- command: `{results['command']}`",
        "",
    ]
    for metric, label in SHOWN.items():
        lines += [f"## steering {label} (mean over seeds, per seed in brackets)", ""]
        lines += ["| arm | " + " | ".join(f"N={n}" for n in ns) + " |"]
        lines += ["|---|" + "---|" * len(ns)]
        lines += [
            f"| zero-shot raw | {zs['raw'][metric]:.2f} |" + " |" * (len(ns) - 1),
            f"| zero-shot calibrated (on the val block) | {zs['calibrated'][metric]:.2f} |"
            + " |" * (len(ns) - 1),
        ]
        for arm in [*args.rungs, "auto", "scratch"]:
            row = []
            for n in ns:
                values = []
                for seed in args.seeds if arm != "scratch" else (args.scratch_seeds or args.seeds):
                    cell = pick_cell(cells, n, seed, arm, auto_rungs(args.rungs))
                    if cell is not None:
                        values.append(cell["raw"][metric])
                row.append(_fmt(values))
            lines.append(f"| {arm} | " + " | ".join(row) + " |")
        lines.append("")
    lines += ["## what auto picked, and CV seconds per N", ""]
    for n in args.frames:
        picks, secs, cpus = [], [], []
        for seed in args.seeds:
            scores = [
                RungScore(**cells[f"{n}|{seed}|{r}"]["score"])
                for r in auto_rungs(args.rungs)
                if f"{n}|{seed}|{r}" in cells
            ]
            if len(scores) == len(auto_rungs(args.rungs)):
                pick = pick_rung(scores, one_se=auto_one_se(n))
                picks.append(f"{pick.rung} ({pick.epochs} ep)")
                secs.append(sum(cells[f"{n}|{seed}|{r}"]["cv_seconds"] for r in args.rungs))
                cpus.append(
                    sum(cells[f"{n}|{seed}|{r}"]["score"]["cpu_seconds"] for r in args.rungs)
                )
        if picks:
            lines.append(
                f"- N={n}: {', '.join(picks)}; CV over every rung "
                f"{np.mean(secs):.0f} s wall, {np.mean(cpus):.0f} CPU s per seed (sum of the "
                "per-rung CVs)"
            )
    lines += ["", "CV table (mean held-out loss +- SE, best epoch) per N and seed:", ""]
    for n in args.frames:
        for seed in args.seeds:
            row = [
                f"{r} {c['score']['mean']:.3f}±{c['score']['se']:.3f}@{c['score']['epochs']}"
                for r in args.rungs
                if (c := cells.get(f"{n}|{seed}|{r}")) is not None
            ]
            if row:
                lines.append(f"- N={n} seed {seed}: " + ", ".join(row))
    return "\n".join(lines) + "\n"


def auto_rungs(rungs: list[str]) -> list[str]:
    """The measured rungs `--freeze auto` compares (LadderConfig's default list)."""
    return [r for r in rungs if r in LadderConfig().rungs]


def auto_one_se(n: str) -> bool:
    """Whether `auto` picks by the 1-SE rule at N = `n` training frames (LadderConfig's)."""
    return n != "all" and LadderConfig().uses_one_se(int(n))


def pick_cell(cells: dict, n: str, seed: int, arm: str, rungs: list[str]) -> dict | None:
    if arm != "auto":
        return cells.get(f"{n}|{seed}|{arm}")
    keys = [f"{n}|{seed}|{r}" for r in rungs]
    if not keys or not all(k in cells for k in keys):
        return None
    pick = pick_rung([RungScore(**cells[k]["score"]) for k in keys], one_se=auto_one_se(n))
    return cells[f"{n}|{seed}|{pick.rung}"]


if __name__ == "__main__":
    main()
