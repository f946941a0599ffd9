"""Self-training on unlabeled real frames (`finetune --pseudo-label`) against its teacher.

    python benchmarks/bench_selftrain.py --checkpoint CKPT --data TUB --name NAME
        [--frames 100] [--seeds 0 1 2] [--score val|test]
        [--variant NAME key=value ...] ... [--labelled-span 0.5 1 --unlabeled-span 0 0.5]
        [--out docs/selftrain-bench]

For each seed: the N labelled frames `finetune --frames N` takes (block subsample of the
training part), the teacher (`finetune` with `--freeze auto`, the default), the unlabeled
frames (the rest of the training part, never the validation or test block), then one student
per variant (SelfTrainConfig fields, e.g. ``--variant wide window=21``; ``labels_only=true``:
the same student trained on the labelled frames alone, the control), each scored with and
without the final gain (``recalibrate``, fitted on the labelled frames) on the chosen block:
``val`` (the 65-80% block, for choosing knobs) or ``test`` (the last 20%, reporting only):
steering R² and Pearson r over every frame of the block. The pseudo-labels' own steering R²
and r against the recording's labels (which the method never reads) are recorded as a
diagnostic. ``--labelled-span A B`` takes the N labelled frames from that fraction of the
training part only, ``--unlabeled-span`` the unlabeled ones (another stretch of driving).
Results go to OUT/NAME.json after every cell (a rerun skips finished cells) and OUT/NAME.md.
"""

from __future__ import annotations

import argparse
import copy
import json
import shlex
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch

from sim2real.agents.checkpoint import load_checkpoint
from sim2real.agents.model import predict
from sim2real.agents.training import dataset_tensors
from sim2real.common.io import atomic_write_json, atomic_write_text
from sim2real.common.machine import load_average, machine_info
from sim2real.transfer.datasets import DrivingDataset, open_records
from sim2real.transfer.finetune import FinetuneConfig, finetune, open_finetune_data
from sim2real.transfer.metrics import pearson_r, r2
from sim2real.transfer.selftrain import (
    SelfTrainConfig,
    pseudo_label,
    recalibrate,
    selftrain_sources,
    teacher_copy,
    train_student,
    unlabeled_frames,
)
from sim2real.transfer.splits import split_records, subsample


def steering(pred: np.ndarray, truth: np.ndarray) -> dict:
    """Steering R² and Pearson r (None when undefined) over frames with a label."""
    ok = np.isfinite(truth[:, 0])
    p, t = pred[ok, 0], truth[ok, 0]

    def value(x) -> float | None:
        v = float(np.ravel(x)[0]) if ok.sum() > 1 else float("nan")
        return v if np.isfinite(v) else None

    return {"r2": value(r2(p, t)), "r": value(pearson_r(p, t)), "n": int(ok.sum())}


def parse_variants(items: list[list[str]]) -> dict[str, dict]:
    variants = {}
    for item in items or [["default"]]:
        name, *pairs = item
        fields = {}
        for pair in pairs:
            key, value = pair.split("=", 1)
            try:
                fields[key] = json.loads(value)
            except json.JSONDecodeError:
                fields[key] = value
        SelfTrainConfig(**{k: v for k, v in fields.items() if k != "labels_only"})
        variants[name] = fields
    return variants


def span_of(records: list, span: tuple[float, float]) -> list:
    n = len(records)
    return records[int(span[0] * n) : int(span[1] * n)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--score", choices=["val", "test"], default="val")
    parser.add_argument("--variant", nargs="+", action="append", metavar="NAME K=V")
    parser.add_argument("--labelled-span", type=float, nargs=2, default=None)
    parser.add_argument("--unlabeled-span", type=float, nargs=2, default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--teachers",
        type=Path,
        default=Path(tempfile.gettempdir()) / "bench_selftrain_teachers",
        help="teacher checkpoints by start network, data, N and seed, reused by later runs",
    )
    parser.add_argument("--out", type=Path, default=Path("docs/selftrain-bench"))
    parser.add_argument("--report-only", action="store_true", help="rewrite NAME.md from NAME.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    variants = parse_variants(args.variant)
    args.out.mkdir(parents=True, exist_ok=True)
    json_path = args.out / f"{args.name}.json"
    results = json.loads(json_path.read_text()) if json_path.is_file() else {"cells": {}}
    cells = results["cells"]
    results.setdefault("variants", {}).update(variants)
    if args.report_only:  # a run still going (or stopped) has no machine entry yet
        results.setdefault("command", "(run interrupted; cells so far)")
        results.setdefault("machine", {"load_now": load_average()})
        results.setdefault("score", args.score)
        atomic_write_text(args.out / f"{args.name}.md", markdown(results))
        return
    work = Path(tempfile.mkdtemp(prefix="bench_selftrain_"))
    load_before = load_average()
    started = time.perf_counter()
    parent, card = load_checkpoint(args.checkpoint)
    pre = card.spec.preprocessing

    def save() -> None:
        atomic_write_json(json_path, results)

    base = FinetuneConfig(checkpoint=str(args.checkpoint), data=[str(args.data)])
    outputs = base.adapter.outputs
    records = open_records([str(args.data)]).records
    parts = split_records(records, base.split, seed=0)
    block = getattr(parts, args.score)
    scored = DrivingDataset(block, pre, outputs, progress=False)
    score_images, score_targets = dataset_tensors(scored)
    score_truth = score_targets.double().numpy()
    print(f"scoring on the {args.score} block: {len(scored)} frames", flush=True)

    for seed in args.seeds:
        quiet = {"num_threads": args.threads, "progress": False, "tensorboard": False}
        train = base.train.model_copy(update={"seed": seed, **quiet})  # finetune's defaults
        config = base.model_copy(update={"frames": args.frames, "train": train})
        data = open_finetune_data(config, pre, progress=False)
        if args.labelled_span is not None:  # the N labelled frames from one stretch only
            chosen = subsample(span_of(parts.train, args.labelled_span), args.frames, seed)
            train_set = DrivingDataset(chosen, pre, outputs, progress=False)
            data = replace(data, train=train_set, parts=replace(data.parts, train=chosen))
        t0, cpu0 = time.perf_counter(), time.process_time()
        span = "" if args.labelled_span is None else "_" + "-".join(map(str, args.labelled_span))
        start = Path(str(args.checkpoint)).name  # a teacher belongs to its start network
        teacher_dir = args.teachers / f"{start}_{args.data.name}_n{args.frames}_s{seed}{span}"
        if (teacher_dir / "model.json").is_file():  # the same seed's teacher, from another run
            teacher, teacher_card = load_checkpoint(teacher_dir)
            ladder = teacher_card.history[-1].get("ladder") or {}
            rung, teacher_cpu = ladder.get("pick"), None
        else:
            teacher_run = finetune(config, teacher_dir, data=data)
            teacher_cpu = time.process_time() - cpu0
            teacher, _ = load_checkpoint(teacher_dir)
            rung = teacher_run.ladder.pick if teacher_run.ladder else None
        key = f"{seed}|teacher"
        cells[key] = cells.get(key) or {
            **steering(predict(teacher, score_images), score_truth),
            "rung": rung,
            "seconds": time.perf_counter() - t0,
            "cpu_seconds": teacher_cpu,
            "labelled": len(data.train),
        }
        print(f"{args.name} seed {seed} teacher: {cells[key]}", flush=True)
        save()
        teacher.spec.mirror_average = False  # as finetune_selftrain: pseudo_label averages
        st_config = config.model_copy(update={"selftrain": SelfTrainConfig()})
        sources, exclude = selftrain_sources(st_config, data)
        if args.unlabeled_span is not None:
            allowed = {str(r.image_path) for r in span_of(parts.train, args.unlabeled_span)}
            exclude = [Path(r.image_path) for r in records if str(r.image_path) not in allowed]
            exclude += [Path(r.image_path) for r in data.parts.train]
        labelled = dataset_tensors(data.train)
        frames_by_key: dict = {}
        for name, fields in variants.items():
            key = f"{seed}|{name}"
            if key in cells:
                continue
            st = SelfTrainConfig(**{k: v for k, v in fields.items() if k != "labels_only"})
            fkey = (st.max_frames, st.block_frames)
            if fkey not in frames_by_key:
                t0 = time.perf_counter()
                frames_by_key[fkey] = (
                    *unlabeled_frames(
                        st, sources, outputs, pre, exclude=exclude, seed=seed, progress=False
                    )[:3],
                    time.perf_counter() - t0,
                )
            images, segments, truth, read_s = frames_by_key[fkey]
            t0, cpu0 = time.perf_counter(), time.process_time()
            student = teacher
            for r in range(st.rounds):
                pseudo = pseudo_label(student, images, segments, st, train.augment)
                if r == 0:
                    diag = {
                        "raw": steering(pseudo.raw, truth),
                        "smoothed": steering(pseudo.labels, truth),
                        "kept": steering(pseudo.labels[pseudo.kept], truth[pseudo.kept]),
                        **pseudo.summary(),
                    }
                if fields.get("labels_only"):  # the control: same student, no pseudo-labels
                    pseudo.kept[:] = False
                student = teacher_copy(teacher)
                if st.init == "parent":
                    from sim2real.transfer.finetune import build_model

                    student = build_model(config)[0]
                fit_dir = work / f"student{seed}_{name}_{r}"
                train_student(student, labelled, pseudo, st, train, fit_dir)
            student.spec.mirror_average = config.mirror_for(None)  # as finetune saves it
            seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
            plain = steering(predict(student, score_images), score_truth)
            calibrated_model = copy.deepcopy(student)
            gains = recalibrate(calibrated_model, labelled)
            cal = steering(predict(calibrated_model, score_images), score_truth)
            cells[key] = {
                "plain": plain,
                "recalibrated": cal,
                "gains": gains,
                "pseudo": diag,
                "seconds": seconds,
                "cpu_seconds": cpu,
                "read_seconds": read_s,
            }
            print(
                f"{args.name} seed {seed} {name}: plain {plain} recal {cal} "
                f"pseudo {diag['smoothed']} ({seconds:.0f} s, {cpu:.0f} CPU s)",
                flush=True,
            )
            save()
    results["machine"] = {
        **machine_info(load_before),  # its utc is when the run finished
        "seconds_this_run": round(time.perf_counter() - started, 1),
    }
    results["command"] = " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv])
    results["score"] = args.score
    save()
    atomic_write_text(args.out / f"{args.name}.md", markdown(results))
    print(f"wrote {args.out / (args.name + '.md')}")


def markdown(results: dict) -> str:
    cells = results["cells"]
    seeds = sorted({int(k.split("|")[0]) for k in cells})
    names = ["teacher", *results["variants"]]
    lines = [
        f"# Self-training ({results['score']} block, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC)",
        "",
        f"- command: `{results['command']}`",
        f"- machine: {results['machine']}",
        f"- variants: {json.dumps(results['variants'])}",
        "",
        "| arm | R² (per seed) | mean R² | mean r | pseudo-label r (smoothed) | CPU s |",
        "|---|---|---|---|---|---|",
    ]
    for name in names:
        for mode in ("plain", "recalibrated") if name != "teacher" else ("",):
            got = [cells.get(f"{s}|{name}") for s in seeds]
            got = [c if name == "teacher" else c[mode] for c in got if c is not None]
            full = [c for s in seeds if (c := cells.get(f"{s}|{name}")) is not None]
            if not got:
                continue
            r2s = [c["r2"] for c in got]
            pr = [c["pseudo"]["smoothed"]["r"] for c in full if "pseudo" in c]
            label = name if name == "teacher" else f"{name} ({mode})"
            lines.append(
                f"| {label} | {' / '.join(f'{v:.2f}' for v in r2s)} | {np.mean(r2s):.3f} | "
                f"{np.mean([c['r'] for c in got]):.3f} | "
                f"{np.mean(pr):.3f} | {np.mean([c['cpu_seconds'] or np.nan for c in full]):.0f} |"
                if pr
                else f"| {label} | {' / '.join(f'{v:.2f}' for v in r2s)} | {np.mean(r2s):.3f} | "
                f"{np.mean([c['r'] for c in got]):.3f} | - | "
                f"{np.mean([c['cpu_seconds'] or np.nan for c in full]):.0f} |"
            )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
