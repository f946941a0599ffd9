"""The study's predictions cell: the inference the report shows, done once, cached.

After the fine-tuning stage the study plans one ``predictions`` cell (`predictions_cell`)
that depends on the networks the report draws: the best transfer and scratch network at the
largest N (by real test R^2) and the zero-shot main network. Its step (`predictions_step`)

- predicts steering on `strip_frames` real test frames, evenly spaced through the test block,
  and writes them with the true steering to ``strip.npz`` (images (n, H, W, 3) uint8 RGB,
  truth (n,), predictions (k, n) float32, in the order of ``result["strip"]["networks"]``);
- re-drives the worst and the best closed-loop episode of the zero-shot main network, when it
  drove, into WebP clips (`sim2real.experiments.drive_video.drive_clips`).

Its result (paths relative to the study root) goes into results.json under "predictions", so
the report draws the frame strip and embeds the clips without loading a checkpoint.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sim2real.common.io import atomic_write_bytes
from sim2real.experiments.grid import Cell, StepContext, register_step
from sim2real.experiments.report_results import STRIP_FILE, or_minus_inf
from sim2real.experiments.study_results import PREDICTIONS_KIND, run_records

if TYPE_CHECKING:
    from sim2real.experiments.grid import CellOutcome
    from sim2real.experiments.study_plan import Plan

DRIVE_ROLE = "drive"
"""dependency role of the run cell whose closed-loop episodes are re-driven"""


def chosen_networks(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The run records the frame strip shows, by legend name: the best (real test R^2)
    transfer network of the main start and the best scratch network at their largest N,
    then the zero-shot main network."""
    chosen: dict[str, dict[str, Any]] = {}
    for mode, start in (("transfer", "main"), ("scratch", "scratch")):
        group = [r for r in records if r["mode"] == mode and r["start"] == start]
        if group:
            top = max(r["frames"] for r in group)
            at_top = [r for r in group if r["frames"] == top]
            best = max(at_top, key=lambda r: or_minus_inf(r["real"]["steering_r2"]["value"]))
            chosen[f"{mode} N={top}"] = best
    zero = next((r for r in records if r["mode"] == "zero_shot" and r["start"] == "main"), None)
    if zero is not None:
        chosen["zero-shot"] = zero
    return chosen


def predictions_cell(plan: Plan, outcomes: dict[str, CellOutcome]) -> Cell | None:
    """The predictions cell of a study whose run cells finished (None: nothing to show)."""
    records = run_records(plan, outcomes)
    chosen = chosen_networks(records)
    if not chosen:
        return None
    deps = [(name, record["id"]) for name, record in chosen.items()]
    zero = chosen.get("zero-shot")
    if zero is not None and zero["closed_loop"]:
        deps.append((DRIVE_ROLE, zero["id"]))
    return Cell(
        PREDICTIONS_KIND,
        {
            "real": plan.real,
            "strip_frames": plan.config.evaluate.strip_frames,
            "networks": list(chosen),
        },
        deps=tuple(deps),
        runtime=plan.runtime,
        label="predictions for the report",
    )


def _save_npz(path: Path, **arrays: np.ndarray) -> None:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    atomic_write_bytes(path, buffer.getvalue())


def _strip(ctx: StepContext) -> dict[str, Any]:
    """Steering of every chosen network on evenly spaced real test frames -> strip.npz."""
    import torch

    from sim2real.agents.ensemble import load_predictor
    from sim2real.agents.model import STEERING, predict
    from sim2real.experiments.study_plan import study_split
    from sim2real.transfer.datasets import DrivingDataset
    from sim2real.transfer.records import read_image_rgb

    config = ctx.cell.config
    test = study_split(list(config["real"]["paths"])).test
    n = min(int(config["strip_frames"]), len(test))
    picks = [test[i] for i in np.linspace(0, len(test) - 1, n).round().astype(int)]
    images = [read_image_rgb(r.image_path) for r in picks]
    picks = [r for r, image in zip(picks, images, strict=True) if image is not None]
    images = [image for image in images if image is not None]
    truth = [r.labels.get(STEERING, float("nan")) for r in picks]
    cache = ctx.cell.runtime.get("cache_dir")
    predictions: dict[str, list[float]] = {}
    for name in config["networks"]:
        model, _ = load_predictor(ctx.store.root / ctx.dep_result(name)["checkpoint"])
        dataset = DrivingDataset(
            picks,
            model.spec.preprocessing,
            [STEERING],
            Path(cache) if cache else None,
            progress=False,
        )
        with torch.no_grad():
            out = predict(model, dataset.images)
        predictions[name] = [float(v) for v in out[:, model.output_index(STEERING)]]
    _save_npz(
        ctx.work / STRIP_FILE,
        images=np.stack(images).astype(np.uint8),
        truth=np.asarray(truth, np.float32),
        predictions=np.asarray([predictions[k] for k in config["networks"]], np.float32),
    )
    return {
        "file": ctx.store.relative(ctx.final_path() / STRIP_FILE),
        "frames": [r.index for r in picks],
        "truth": truth,
        "predictions": predictions,
        "networks": {name: ctx.cell.dep(name) for name in config["networks"]},
    }


def _clips(ctx: StepContext) -> list[dict[str, Any]]:
    """WebP clips of the worst and the best closed-loop episode of the drive network."""
    from sim2real.experiments.drive_video import drive_clips

    if DRIVE_ROLE not in dict(ctx.cell.deps):
        return []
    drive = ctx.dep_result(DRIVE_ROLE)
    clips = drive_clips(ctx.store.root / drive["checkpoint"], drive["closed_loop"], ctx.work)
    for clip in clips:
        clip["path"] = ctx.store.relative(ctx.final_path() / Path(clip["path"]).name)
    return clips


@register_step(PREDICTIONS_KIND)
def predictions_step(ctx: StepContext) -> dict[str, Any]:
    """Run the predictions cell: the frame strip's steering, then the drive clips."""
    from sim2real.experiments.stages import set_threads

    set_threads(ctx)
    return {"strip": _strip(ctx), "clips": _clips(ctx)}
