"""Mirror test-time averaging and ensembles of 100-frame fine-tunes, on real data (issue 15).

    python benchmarks/bench_ensemble.py --data TUB --name NAME --starts CKPT [CKPT ...]
        [--frames 100] [--seeds 0 1 2] [--extra CKPT ...] [--models DIR]
        [--out docs/ensemble-bench]

For each start network (a pretrained checkpoint) and seed: `finetune --frames N --seed S`
with the defaults (`--freeze auto`; the N frames are the seed's block subsample of the
training part, the same for every start), kept under --models and reused by later runs.
Every network, and every start zero-shot, predicts steering on the validation block (65-80%
of the recording) and the test block (last 20%), on each frame and on its left-right mirror,
so every arm below is scored from the same predictions:

- ``plain``: f(x); ``mirror``: (f(x) - f(mirror x)) / 2 (`model.mirror_average`);
- ``ensemble of k``: the mean of the fine-tunes of the first k starts (same seed, same frames),
  plain and mirror-averaged;
- zero-shot: raw, and with truth ~ a * prediction + b fitted on the validation block (on the
  test block only; on the validation block that fit would be in-sample).

``--pilot-cost``: the first seed's fine-tunes of the first 1 and 2 starts, saved as one
network and as an ensemble checkpoint (`sim2real.agents.ensemble`), exported to ONNX
(onnxruntime checked against torch), timed in the DonkeyCar pilot part (`DonkeyPilot`, one
onnxruntime thread) per raw validation frame; the ensemble checkpoint's own predictions are
checked against the mean of its members' cached ones.

``--extra CKPT ...``: checkpoints trained elsewhere (e.g. `finetune --pseudo-label` runs),
scored plain and mirror-averaged on both blocks. Figures: steering R² and Pearson r over
every frame of the block. Predictions are cached in MODELS/preds; results go to OUT/NAME.json
(rewritten after each network) and OUT/NAME.md with the machine, its load and this command.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch

from sim2real.agents.checkpoint import (
    CARD_FILE,
    WEIGHTS_FILE,
    load_checkpoint,
    override_mirror_average,
)
from sim2real.agents.ensemble import load_predictor, member_folder, save_ensemble
from sim2real.agents.model import STEERING, predict
from sim2real.agents.shipped import resolve_checkpoint
from sim2real.agents.training import dataset_tensors
from sim2real.common.digest import file_sha256
from sim2real.common.io import atomic_write, atomic_write_json, atomic_write_text
from sim2real.common.machine import load_average, machine_info
from sim2real.transfer.datasets import DrivingDataset, open_records
from sim2real.transfer.export import load_frames
from sim2real.transfer.finetune import FinetuneConfig, finetune, open_finetune_data
from sim2real.transfer.metrics import AffineCalibration, pearson_r, r2
from sim2real.transfer.splits import split_records

BLOCKS = ("val", "test")


def ensemble_folder(folders: list[Path], out: Path) -> Path:
    """An ensemble checkpoint in `out` whose members are copies of checkpoint `folders`."""
    if not (out / CARD_FILE).is_file():
        names = [member_folder(i) for i in range(len(folders))]
        for name, folder in zip(names, folders, strict=True):
            (out / name).mkdir(parents=True, exist_ok=True)
            for file in (WEIGHTS_FILE, CARD_FILE):
                shutil.copy2(folder / file, out / name / file)
        card = load_checkpoint(folders[0])[1]
        save_ensemble(out, card.model_copy(update={"members": names, "history": []}))
    return out


def pilot_cost(folder: Path, onnx_path: Path, frames: np.ndarray, repeats: int = 3) -> dict:
    """Export checkpoint `folder` to `onnx_path` (checked on 8 of `frames` against torch) and
    time `DonkeyPilot.run` over raw `frames` (N, H, W, 3) uint8: median of `repeats` passes,
    ms per frame, one onnxruntime thread."""
    from sim2real.transfer.export import export_onnx
    from sim2real.transfer.pilot import DonkeyPilot

    result = export_onnx(folder, onnx_path, check_frames=frames[:8], source_size=frames.shape[1:3])
    pilot = DonkeyPilot(onnx_path, image_size=frames.shape[1:3], num_threads=1)
    for frame in frames[:20]:  # warm up
        pilot.run(frame)
    passes = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for frame in frames:
            pilot.run(frame)
        passes.append((time.perf_counter() - t0) / len(frames) * 1000.0)
    return {
        "ms_per_frame": float(np.median(passes)),
        "passes_ms": passes,
        "frames": len(frames),
        "onnx_vs_torch_max_abs_diff": result.max_abs_diff,
        "onnx_bytes": onnx_path.stat().st_size,
    }


def score(pred: np.ndarray, truth: np.ndarray) -> dict:
    """Steering R² and Pearson r of (N,) predictions against (N,) labels (NaN: unlabelled)."""
    ok = np.isfinite(truth)
    return {
        "r2": float(np.ravel(r2(pred[ok], truth[ok]))[0]),
        "r": float(np.ravel(pearson_r(pred[ok], truth[ok]))[0]),
    }


def steering_predictions(checkpoint: Path | str, blocks: dict, cache: Path) -> dict:
    """{block: (plain (N,), mirrored (N,))} steering of `checkpoint` on each block's frames
    and on their mirror images (sign-corrected back), cached in `cache` (.npz)."""
    if cache.is_file():
        with np.load(cache) as got:
            return {b: (got[f"{b}_plain"], got[f"{b}_mirror"]) for b in BLOCKS}
    model, _ = load_predictor(checkpoint)  # one network or an ensemble
    override_mirror_average(model, False, checkpoint)  # plain: every member of an ensemble
    col = model.output_index(STEERING)
    out = {}
    for b in BLOCKS:
        images = blocks[b][0]
        out[b] = (predict(model, images)[:, col], -predict(model, images.flip(3))[:, col])
    arrays = {
        f"{b}_{k}": v for b in BLOCKS for k, v in zip(("plain", "mirror"), out[b], strict=True)
    }

    def write(tmp: Path) -> None:
        with tmp.open("wb") as handle:  # a file object: np.savez would add ".npz" to a path
            np.savez(handle, **arrays)

    atomic_write(cache, write)  # an interrupted run leaves no half-written cache
    return out


def arm_scores(preds: dict, truth: dict) -> dict:
    """{"plain"|"mirror": {block: score}} from `steering_predictions`' output."""
    return {
        "plain": {b: score(preds[b][0], truth[b]) for b in BLOCKS},
        "mirror": {b: score((preds[b][0] + preds[b][1]) / 2, truth[b]) for b in BLOCKS},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--starts", nargs="+", required=True, help="pretrained checkpoints")
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--extra", nargs="*", default=[], help="other checkpoints to score")
    parser.add_argument(
        "--pilot-cost", action="store_true", help="time the pilot part, 1 vs 2 members (ONNX)"
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--models", type=Path, default=Path("/tmp/bench_ensemble"))
    parser.add_argument("--out", type=Path, default=Path("docs/ensemble-bench"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    started, load_before = time.perf_counter(), load_average()
    json_path = args.out / f"{args.name}.json"
    results: dict = {"zero_shot": {}, "finetunes": {}, "ensembles": {}, "extra": {}}

    def save() -> None:
        atomic_write_json(json_path, results)

    # each start alone (`finetune`'s ensemble default, if any, off): the script averages them
    base = FinetuneConfig(checkpoint=str(args.starts[0]), data=[str(args.data)], ensemble_with=[])
    _, card = load_checkpoint(args.starts[0])
    pre = card.spec.preprocessing
    parts = split_records(open_records([str(args.data)]).records, base.split, seed=0)
    blocks, truth = {}, {}
    for b in BLOCKS:
        images, targets = dataset_tensors(
            DrivingDataset(getattr(parts, b), pre, [STEERING], progress=False)
        )
        blocks[b], truth[b] = (images,), targets[:, 0].double().numpy()
    results["frames"] = {b: len(truth[b]) for b in BLOCKS}
    print(f"{args.name}: blocks {results['frames']}", flush=True)

    # each start's fine-tunes and prediction caches are named by its folder and its weights'
    # digest: two folders of the same name, or a start retrained in place, never share them
    tags: dict[str, str] = {}
    for start in args.starts:
        _, start_card = load_checkpoint(start)
        if start_card.spec.preprocessing != pre:
            raise ValueError(f"{start}: preprocessing differs from {args.starts[0]}'s")
        digest = file_sha256(resolve_checkpoint(start) / WEIGHTS_FILE)
        same = [s for s, t in tags.items() if t.endswith(digest[:12])]
        if same:  # e.g. a shipped network and its source folder
            raise ValueError(f"{start} has the same weights as {same[0]}")
        p = Path(start)
        readable = p.name if p.name != "pre20k" else f"{p.parent.name}-pre20k"
        tags[start] = f"{readable}-{digest[:12]}"

    def tag(path: str) -> str:
        return tags[path]

    for start in args.starts:
        preds = steering_predictions(
            start, blocks, args.models / "preds" / f"zs_{tag(start)}_{args.data.name}.npz"
        )
        cal = AffineCalibration.fit(preds["val"][0], truth["val"])
        both = AffineCalibration.fit((preds["val"][0] + preds["val"][1]) / 2, truth["val"])
        results["zero_shot"][tag(start)] = {
            **arm_scores(preds, truth),
            "calibrated_test": {
                "plain": score(cal.apply(preds["test"][0]), truth["test"]),
                "mirror": score(
                    both.apply((preds["test"][0] + preds["test"][1]) / 2), truth["test"]
                ),
            },
        }
        save()
    quiet = {"num_threads": args.threads, "progress": False, "tensorboard": False}
    for seed in args.seeds:
        members = []
        data = None
        for start in args.starts:
            name = f"{tag(start)}_{args.data.name}_n{args.frames}_s{seed}"
            folder = args.models / name
            cell: dict = {"start": tag(start), "seed": seed}
            if not (folder / "model.json").is_file():
                train = base.train.model_copy(update={"seed": seed, **quiet})
                config = base.model_copy(
                    update={"checkpoint": str(start), "frames": args.frames, "train": train}
                )
                if data is None:  # the seed's N frames: the same for every start
                    data = open_finetune_data(config, pre, progress=False)
                t0, cpu0 = time.perf_counter(), time.process_time()
                finetune(config, folder, data=data)
                cell |= {
                    "seconds": time.perf_counter() - t0,
                    "cpu_seconds": time.process_time() - cpu0,
                }
                atomic_write_json(folder / "bench_timing.json", cell)
            elif (folder / "bench_timing.json").is_file():
                cell = json.loads((folder / "bench_timing.json").read_text())
            ladder = load_checkpoint(folder)[1].history[-1].get("ladder") or {}
            cell["rung"] = ladder.get("pick")
            cpu0 = time.process_time()
            preds = steering_predictions(folder, blocks, args.models / "preds" / f"{name}.npz")
            cell["predict_cpu_seconds"] = time.process_time() - cpu0
            cell |= arm_scores(preds, truth)
            results["finetunes"][name] = cell
            members.append(preds)
            print(
                f"{name}: {cell['rung']} plain {cell['plain']} mirror {cell['mirror']}", flush=True
            )
            if len(members) > 1:
                mean = {
                    b: tuple(np.mean([m[b][i] for m in members], axis=0) for i in (0, 1))
                    for b in BLOCKS
                }
                results["ensembles"][f"k{len(members)}_s{seed}"] = {
                    "members": [tag(s) for s in args.starts[: len(members)]],
                    "seed": seed,
                    **arm_scores(mean, truth),
                }
            save()
    if args.pilot_cost and len(args.starts) > 1:
        seed = args.seeds[0]
        folders = [
            args.models / f"{tag(start)}_{args.data.name}_n{args.frames}_s{seed}"
            for start in args.starts[:2]
        ]
        ens = ensemble_folder(folders, args.models / f"ensemble2_{args.data.name}_s{seed}")
        model, _ = load_predictor(ens)
        got = predict(model, blocks["val"][0])[:, model.output_index(STEERING)]
        member_preds = [
            steering_predictions(f, blocks, args.models / "preds" / f"{f.name}.npz")["val"]
            for f in folders
        ]
        script = np.mean([(plain + mirror) / 2 for plain, mirror in member_preds], axis=0)
        raw = load_frames([r.image_path for r in parts.val[:300]])
        results["pilot"] = {
            "ensemble_checkpoint": str(ens),
            # the checkpoint as saved (mirror-averaged) against the script's own average
            "val_checkpoint": score(got, truth["val"]),
            "val_script": score(script, truth["val"]),
            "val_max_abs_diff": float(np.max(np.abs(got - script))),
            "1": pilot_cost(folders[0], args.models / "pilot1.onnx", raw),
            "2": pilot_cost(ens, args.models / "pilot2.onnx", raw),
        }
        print(f"pilot: {results['pilot']}", flush=True)
        save()
    for extra in args.extra:
        folder = resolve_checkpoint(extra)
        weights = folder / WEIGHTS_FILE  # an ensemble has none: its card names it
        digest = file_sha256(weights if weights.is_file() else folder / CARD_FILE)[:12]
        name = f"extra_{Path(extra).parent.name}_{Path(extra).name}-{digest}"
        preds = steering_predictions(extra, blocks, args.models / "preds" / f"{name}.npz")
        results["extra"][str(extra)] = arm_scores(preds, truth)
        save()
    results["machine"] = {
        **machine_info(load_before),  # its utc is when the run finished
        "seconds_this_run": round(time.perf_counter() - started, 1),
    }
    results["command"] = " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv])
    save()
    atomic_write_text(args.out / f"{args.name}.md", markdown(results, args))
    print(f"wrote {args.out / (args.name + '.md')}")


def _cell(scores: list[dict], block: str) -> str:
    r2s = [s[block]["r2"] for s in scores]
    rs = [s[block]["r"] for s in scores]
    each = " / ".join(f"{v:.2f}" for v in r2s)
    return f"{np.mean(r2s):.3f} / {np.mean(rs):.3f} ({each})"


def markdown(results: dict, args) -> str:
    lines = [
        f"# Mirror averaging and ensembles on {args.name} ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)",
        "",
        f"- command: `{results['command']}`",
        f"- machine: {results['machine']}",
        f"- frames scored: {results['frames']}; N = {args.frames} labelled frames, seeds "
        f"{args.seeds}; cells: mean R² / mean r (R² per seed)",
        "",
        "| arm | val plain | val mirror | test plain | test mirror |",
        "|---|---|---|---|---|",
    ]
    for start, zs in results["zero_shot"].items():
        row = [_cell([zs[m]], b) for b in BLOCKS for m in ("plain", "mirror")]
        lines.append(f"| zero-shot {start} (raw) | " + " | ".join(row) + " |")
        cal = {m: _cell([{"test": v}], "test") for m, v in zs["calibrated_test"].items()}
        lines.append(
            f"| zero-shot {start} (calibrated on val) | - | - | {cal['plain']} | {cal['mirror']} |"
        )
    fts = results["finetunes"]
    for start in dict.fromkeys(c["start"] for c in fts.values()):
        cells = [c for c in fts.values() if c["start"] == start]
        rungs = ", ".join(str(c["rung"]) for c in cells)
        row = [_cell([c[m] for c in cells], b) for b in BLOCKS for m in ("plain", "mirror")]
        lines.append(f"| auto from {start} ({rungs}) | " + " | ".join(row) + " |")
    ens = results["ensembles"]
    for k in sorted({int(key.split("_")[0][1:]) for key in ens}):
        cells = [c for key, c in ens.items() if key.startswith(f"k{k}_")]
        row = [_cell([c[m] for c in cells], b) for b in BLOCKS for m in ("plain", "mirror")]
        lines.append(
            f"| ensemble of {k}: {' + '.join(cells[0]['members'])} | " + " | ".join(row) + " |"
        )
    for extra, c in results["extra"].items():
        row = [_cell([c[m]], b) for b in BLOCKS for m in ("plain", "mirror")]
        lines.append(f"| {extra} | " + " | ".join(row) + " |")
    pilot = results.get("pilot")
    if pilot:
        lines += [
            "",
            f"ensemble checkpoint {pilot['ensemble_checkpoint']}: val R² / r as saved "
            f"{pilot['val_checkpoint']['r2']:.4f} / {pilot['val_checkpoint']['r']:.4f}, the "
            f"script's average {pilot['val_script']['r2']:.4f} / {pilot['val_script']['r']:.4f} "
            f"(max |difference| {pilot['val_max_abs_diff']:.2g})",
        ]
        for k in ("1", "2"):
            p = pilot[k]
            lines.append(
                f"- pilot part, {k} member(s): {p['ms_per_frame']:.2f} ms per frame (median of "
                f"{len(p['passes_ms'])} passes over {p['frames']} raw frames, 1 onnxruntime "
                f"thread); ONNX {p['onnx_bytes'] / 1e6:.1f} MB, max |onnx - torch| "
                f"{p['onnx_vs_torch_max_abs_diff']:.2g}"
            )
    cpu = [c["cpu_seconds"] for c in fts.values() if c.get("cpu_seconds")]
    if cpu:
        lines += [
            "",
            f"finetune CPU s per network: mean {np.mean(cpu):.0f} "
            f"(min {min(cpu):.0f}, max {max(cpu):.0f})",
        ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
