"""The step functions of a study's cells (see `sim2real.experiments.grid`).

Each step reads its cell's config (plain JSON data), the folders of the cells it depends on,
and writes its outputs into its work folder; the dict it returns becomes the cell's result
(paths in it are relative to the study root). Kinds:

- ``simulate``: an expert recording (a sim tub) from a `SimulateConfig`;
- ``init``: an untrained checkpoint of a model spec (the scratch baseline's starting point);
- ``external``: a copy of a checkpoint made elsewhere (e.g. an SB3 policy);
- ``pretrain``: supervised pretraining on a sim tub;
- ``gap``: per-stage sim-vs-real domain gap of a checkpoint (GAP's `measure_gap`);
- ``run``: fine-tune (or not: zero-shot) a start checkpoint on N real frames, then evaluate
  it on the held-out real test block, offline on a held-out sim recording and, optionally,
  closed loop in sim.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path
from typing import Any

import torch

from sim2real.experiments.grid import StepContext, register_step

CHECKPOINT = "checkpoint"
TUB = "tub"


def data_fingerprint(paths: list[str]) -> str:
    """sha256 (16 hex) over the relative name and size of every file under `paths`.

    Cheap (no file is read) and enough to notice a dataset that grew, shrank or was swapped.
    """
    digest = hashlib.sha256()
    for path in paths:
        root = Path(path).expanduser().resolve()
        digest.update(str(path).encode())
        if root.is_file():
            digest.update(f"{root.name}:{root.stat().st_size}".encode())
            continue
        for folder, dirs, files in os.walk(root):
            dirs.sort()
            for name in sorted(files):
                full = Path(folder) / name
                digest.update(f"{full.relative_to(root)}:{full.stat().st_size};".encode())
    return digest.hexdigest()[:16]


def set_threads(ctx: StepContext) -> None:
    """torch's intra-op threads for a cell's step, from its runtime settings (None: leave)."""
    threads = ctx.cell.runtime.get("num_threads")
    if threads:
        torch.set_num_threads(int(threads))


@register_step("simulate")
def simulate_step(ctx: StepContext) -> dict[str, Any]:
    from sim2real.experiments.simulate import SimulateConfig, simulate

    config = SimulateConfig.model_validate(
        {**ctx.cell.config["simulate"], "workers": ctx.cell.runtime.get("workers", 1)}
    )
    tub = ctx.work / TUB
    simulate(
        tub,
        config,
        resume=(tub / "manifest.json").is_file(),
        progress=bool(ctx.cell.runtime.get("progress", True)),
    )
    return {"tub": ctx.store.relative(ctx.final_path() / TUB), "frames": config.frames}


@register_step("init")
def init_step(ctx: StepContext) -> dict[str, Any]:
    from sim2real.agents.checkpoint import ModelCard, save_checkpoint
    from sim2real.agents.model import ModelSpec, seeded_model
    from sim2real.common.runs import code_version

    spec = ModelSpec.model_validate(ctx.cell.config["model"])
    model = seeded_model(spec, int(ctx.cell.config.get("seed", 0)))
    card = ModelCard(
        kind="perception",
        spec=spec,
        trained_on={"init": "random (untrained): the scratch baseline's architecture"},
        code_version=code_version(),
    )
    save_checkpoint(ctx.work / CHECKPOINT, model.eval(), card)
    return {"checkpoint": ctx.store.relative(ctx.final_path() / CHECKPOINT)}


@register_step("external")
def external_step(ctx: StepContext) -> dict[str, Any]:
    from sim2real.agents.checkpoint import read_card
    from sim2real.agents.shipped import resolve_checkpoint

    source = resolve_checkpoint(ctx.cell.config["path"])
    target = ctx.work / CHECKPOINT
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target)
    card = read_card(target)
    return {
        "checkpoint": ctx.store.relative(ctx.final_path() / CHECKPOINT),
        "source": str(source),
        "kind": card.kind,
        "architecture": card.spec.architecture,
    }


def _started(out: Path) -> bool:
    """Whether an interrupted attempt left a training run in `out` (resume it)."""
    return out.exists() and any(out.iterdir())


@register_step("pretrain")
def pretrain_step(ctx: StepContext) -> dict[str, Any]:
    from sim2real.experiments.pretraining import run_pretrain
    from sim2real.experiments.study_config import cell_pretrain_config

    set_threads(ctx)
    tub = str(ctx.store.root / ctx.dep_result("sim")["tub"])
    config = cell_pretrain_config(ctx.cell.config["pretrain"], tub, ctx.cell.runtime)
    out = ctx.work / CHECKPOINT
    result = run_pretrain(config, out, resume=_started(out))
    return {
        "checkpoint": ctx.store.relative(ctx.final_path() / CHECKPOINT),
        "metrics": result.card.metrics,
        "frames": result.card.trained_on.get("frames"),
        "randomization_strength": ctx.cell.config.get("strength"),
    }


@register_step("gap")
def gap_step(ctx: StepContext) -> dict[str, Any]:
    from sim2real.agents.checkpoint import load_checkpoint
    from sim2real.experiments.domain_gap import measure_gap

    set_threads(ctx)
    config = ctx.cell.config
    model, _ = load_checkpoint(ctx.store.root / ctx.dep_result("model")["checkpoint"])
    cache = ctx.cell.runtime.get("cache_dir")
    result = measure_gap(
        model,
        [str(ctx.store.root / ctx.dep_result("sim")["tub"])],
        list(config["real"]["paths"]),
        max_frames=int(config["max_frames"]),
        seed=int(config["seed"]),
        cache_dir=Path(cache) if cache else None,
        progress=bool(ctx.cell.runtime.get("progress", True)),
    )
    result["sim"] = [ctx.store.relative(Path(p)) for p in result["sim"]]
    return result


@register_step("run")
def run_step(ctx: StepContext) -> dict[str, Any]:
    """Fine-tune (modes "transfer", "scratch") or not ("zero_shot"), then evaluate."""
    from sim2real.transfer.evaluate import evaluate_offline

    set_threads(ctx)
    config = ctx.cell.config
    runtime = ctx.cell.runtime
    cache = runtime.get("cache_dir")
    progress = bool(runtime.get("progress", True))
    real_paths = list(config["real"]["paths"])
    start = ctx.store.root / ctx.dep_result("start")["checkpoint"]
    trained: dict[str, Any] = {"frames_used": 0, "frozen": None, "seconds": 0.0}
    if config["mode"] == "zero_shot":
        checkpoint, final_checkpoint = start, start
    else:
        checkpoint = ctx.work / CHECKPOINT
        final_checkpoint = ctx.final_path() / CHECKPOINT
        trained = _finetune(ctx, start, checkpoint)
    evaluation = config["evaluate"]
    real = evaluate_offline(
        checkpoint,
        real_paths,
        split="test",
        n_boot=int(evaluation["bootstrap"]),
        cache_dir=cache,
        progress=progress,
    ).to_json()
    sim_tub = ctx.store.root / ctx.dep_result("sim_test")["tub"]
    sim = evaluate_offline(
        checkpoint,
        [sim_tub],
        split="all",
        n_boot=int(evaluation["bootstrap"]),
        cache_dir=cache,
        progress=progress,
    ).to_json()
    for part in (real, sim):
        part["checkpoint"] = ctx.store.relative(final_checkpoint)
    sim["data"] = [ctx.store.relative(sim_tub)]
    closed_loop = None
    if evaluation.get("closed_loop"):
        from sim2real.agents.closed_loop import evaluate_closed_loop
        from sim2real.agents.ensemble import load_predictor

        model, _ = load_predictor(checkpoint)  # one network or an ensemble
        closed_loop = evaluate_closed_loop(
            model,
            episodes=int(evaluation["episodes"]),
            max_steps=int(evaluation["max_steps"]),
            strength=float(evaluation.get("strength", 1.0)),
        )
    return {
        "checkpoint": ctx.store.relative(final_checkpoint),
        **trained,
        "real": real,
        "sim": sim,
        "closed_loop": closed_loop,
    }


def _finetune(ctx: StepContext, start: Path, out: Path) -> dict[str, Any]:
    from sim2real.experiments.study_config import cell_finetune_config
    from sim2real.transfer.finetune import finetune

    finetune_config = cell_finetune_config(ctx.cell.config, str(start), ctx.cell.runtime)
    result = finetune(finetune_config, out, resume=_started(out))
    return {
        "frames_used": int(result.card.trained_on["frames"]["train"]),
        "val_frames": int(result.card.trained_on["frames"]["val"]),
        "frozen": result.frozen,
        "cached_features": result.cached_features,
        "epochs_run": int(result.card.metrics.get("epochs_run", 0)),
        "seconds": round(result.seconds, 3),
        "ladder_pick": None if result.ladder is None else result.ladder.pick,
    }


import sim2real.experiments.predictions_cell  # noqa: E402, F401  (registers "predictions")
