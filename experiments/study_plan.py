"""How a study's cells are planned: its starts, their recordings and gaps, and the grid.

`plan_upstream` lays out the cells that need no measurement (recordings, pretraining, the
scratch init, external checkpoints, domain gaps); `plan_runs` then lays out every fine-tuning
and evaluation cell of the grid, once the gaps give the recommended freeze depths. A cell's
key is the part of the study's config that determines what it computes (see `grid.Cell`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sim2real.agents.model import ModelSpec
from sim2real.experiments.grid import Cell
from sim2real.experiments.study_config import (
    LADDER_ARMS,
    SPLIT,
    FrameCount,
    StudyConfig,
)

if TYPE_CHECKING:
    from sim2real.transfer.splits import Split

MAIN, SCRATCH, POLICY = "main", "scratch", "policy"
"""names of the main start, the scratch baseline and the policy checkpoint start"""


@dataclass
class Start:
    """A network fine-tuning starts from: a pretraining strength, the policy, or scratch."""

    name: str
    cell: Cell
    sim: Cell
    """the sim recording its domain gap is measured against"""
    strength: float | None
    kind: str
    gap: Cell | None = None


@dataclass
class Plan:
    """Cells of a study, by role, and what the report needs to read them."""

    config: StudyConfig
    real_paths: list[str]
    n_train: int
    """real training frames available (the part before the val and test blocks)"""
    n_stages: int
    stage_names: list[str]
    starts: dict[str, Start] = field(default_factory=dict)
    sim_test: Cell | None = None
    real: dict[str, Any] = field(default_factory=dict)
    """real data paths and fingerprint (part of every run cell's key)"""
    runtime: dict[str, Any] = field(default_factory=dict)
    runs: list[Cell] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _runtime(config: StudyConfig, cache_dir: Path) -> dict[str, Any]:
    runtime = config.runtime.model_dump()
    runtime["cache_dir"] = str(cache_dir)
    return runtime


def _sim_cell(config: StudyConfig, strength: float, frames: int, seed: int, runtime) -> Cell:
    from sim2real.envs.randomization import resolve_spec

    recording = config.sim.recording(strength, frames, seed)
    simulate = recording.model_dump(mode="json", exclude={"workers"})
    spec = resolve_spec(recording.randomization).model_dump(mode="json")
    return Cell(
        "simulate",
        {"simulate": simulate, "spec": spec},
        runtime=runtime,
        label=f"simulate s={strength:g} seed={seed} ({frames} frames)",
    )


def study_split(paths: list[str]) -> Split:
    """The real data under `paths` cut into train | val | test blocks by the study's split."""
    from sim2real.transfer.datasets import open_records
    from sim2real.transfer.splits import split_records

    return split_records(open_records(paths).records, SPLIT, seed=0)


def real_split_sizes(paths: list[str]) -> dict[str, int]:
    """Frames in the train, val and test blocks of the real data under the study's split."""
    return study_split(paths).sizes()


def plan_upstream(config: StudyConfig, out: Path) -> Plan:
    """Recordings, pretraining, the scratch init, the policy copy and gap cells."""
    from sim2real.agents.encoders import build_encoder
    from sim2real.experiments.stages import data_fingerprint

    cache_dir = Path(config.runtime.cache_dir or out / "frame_cache")
    runtime = _runtime(config, cache_dir)
    real_paths = config.real_paths()
    sizes = real_split_sizes(real_paths)
    model = config.pretrain.model
    if config.start_checkpoint is not None:
        from sim2real.agents.checkpoint import read_card

        model = read_card(config.start_checkpoint).spec
    stage_names = list(build_encoder(model.architecture, model.input_shape).stage_names)
    split = SPLIT.model_dump(exclude={"kind"})  # (the keys cells were hashed with)
    real = {"paths": real_paths, "fingerprint": data_fingerprint(real_paths), "split": split}
    plan = Plan(config, real_paths, sizes["train"], len(stage_names), stage_names)
    plan.real, plan.runtime = real, runtime
    main_strength = config.pretrain.strengths[0]
    plan.sim_test = _sim_cell(
        config, main_strength, config.sim.test_frames, config.sim.test_seed, runtime
    )
    pretrain_base = config.pretrain.cell_config()
    for i, strength in enumerate(config.pretrain.strengths):
        sim = _sim_cell(config, strength, config.sim.frames, config.sim.seed, runtime)
        if i == 0 and config.start_checkpoint is not None:
            cell = _external_cell(config.start_checkpoint, runtime, "start checkpoint")
            plan.starts[MAIN] = Start(MAIN, cell, sim, strength, "checkpoint")
            continue
        cell = Cell(
            "pretrain",
            {"pretrain": pretrain_base, "strength": strength},
            deps=(("sim", sim.id),),
            runtime=runtime,
            label=f"pretrain {config.pretrain.model.architecture} s={strength:g}",
        )
        name = MAIN if i == 0 else f"strength_{strength:g}"
        plan.starts[name] = Start(name, cell, sim, strength, "perception")
    finetune_outputs = config.finetune.adapter.outputs
    init_spec = ModelSpec.model_validate({**model.model_dump(), "outputs": finetune_outputs})
    init = Cell(
        "init",
        {"model": init_spec.model_dump(mode="json")},
        runtime=runtime,
        label=f"init {model.architecture}",
    )
    plan.starts[SCRATCH] = Start(SCRATCH, init, plan.starts[MAIN].sim, None, "scratch")
    if config.policy_checkpoint:
        path = Path(config.policy_checkpoint).expanduser().resolve()
        if (path / "model.safetensors").is_file() and (path / "model.json").is_file():
            cell = _external_cell(path, runtime, "policy checkpoint")
            plan.starts[POLICY] = Start(POLICY, cell, plan.starts[MAIN].sim, None, "policy")
        else:
            plan.notes.append(
                f"policy_checkpoint {config.policy_checkpoint}: no model.safetensors + "
                "model.json there; the perception-vs-policy comparison is skipped"
            )
    else:
        plan.notes.append(
            "no policy_checkpoint given: the perception-vs-policy comparison is skipped "
            "(train one with `sim2real train-policy` and set policy_checkpoint)"
        )
    for start in plan.starts.values():
        if start.name == SCRATCH:
            continue
        start.gap = Cell(
            "gap",
            {"max_frames": config.gap.max_frames, "seed": config.gap.seed, "real": real},
            deps=(("model", start.cell.id), ("sim", start.sim.id)),
            runtime=runtime,
            label=f"gap {start.name}",
        )
    return plan


def _external_cell(reference: str | Path, runtime: dict[str, Any], label: str) -> Cell:
    """A cell that copies a checkpoint made elsewhere (a folder or a shipped name), keyed by
    its resolved folder and its weights' digest."""
    from sim2real.agents.shipped import resolve_checkpoint
    from sim2real.common.digest import file_sha256

    path = resolve_checkpoint(reference).resolve()
    weights = path / "model.safetensors"
    return Cell(
        "external",
        {"path": str(path), "weights_sha256": file_sha256(weights)},
        runtime=runtime,
        label=label,
    )


def resolve_frames(value: FrameCount, n_train: int) -> int | None:
    """A grid frame count as the cell's `frames`: None for "all" or >= the training part."""
    if value == "all" or int(value) >= n_train:
        return None
    return int(value)


def frames_count(frames: int | None, n_train: int) -> int:
    return n_train if frames is None else frames


def frame_counts(values: list[FrameCount], n_train: int) -> set[int]:
    """The distinct real-frame counts the grid values `values` train on (0 left out)."""
    return {frames_count(resolve_frames(v, n_train), n_train) for v in values if v != 0}


def recommended_freeze(plan: Plan, start: str, frames: int | None, gaps: dict) -> int:
    """The GAP rule's freeze depth for `start` fine-tuned on `frames` real frames."""
    from sim2real.experiments.domain_gap import recommend_freeze

    gap = gaps[start]["stages"]
    n = frames_count(frames, plan.n_train)
    return recommend_freeze(n, gap, plan.config.gap.rule).freeze


def run_cell(
    plan: Plan, start: str, mode: str, frames: int | None, seed: int, freeze: int | str | None
) -> Cell:
    """The cell that fine-tunes `start` (or evaluates it as is: mode "zero_shot")."""
    config = plan.config
    evaluate = config.evaluate
    closed = evaluate.closed_loop == "all" or (
        evaluate.closed_loop == "zero_shot" and mode == "zero_shot"
    )
    eval_config = {
        "bootstrap": evaluate.bootstrap,
        "closed_loop": closed,
        "episodes": evaluate.episodes if closed else None,
        "max_steps": evaluate.max_steps if closed else None,
        "strength": config.pretrain.strengths[0] if closed else None,
    }
    cell_config: dict[str, Any] = {
        "mode": mode,
        "real": plan.real,
        "evaluate": eval_config,
    }
    label = f"{start} zero-shot"
    if mode != "zero_shot":
        cell_config |= {
            "frames": frames,
            "seed": seed,
            "freeze": freeze,
            "finetune": config.finetune.cell_config(),
        }
        n = "all" if frames is None else frames
        label = f"{start} {mode}" + (f" k={freeze}" if mode == "transfer" else "")
        label += f" N={n} seed={seed}"
    return Cell(
        "run",
        cell_config,
        deps=(("start", plan.starts[start].cell.id), ("sim_test", plan.sim_test.id)),
        runtime=plan.runtime,
        label=label,
    )


def plan_runs(plan: Plan, gaps: dict[str, dict]) -> list[Cell]:
    """Every fine-tuning / evaluation cell of the grid (duplicates removed, order kept)."""
    grid = plan.config.grid
    cells: list[Cell] = []

    def frames_of(values: list[FrameCount]) -> list[int | None]:
        seen: list[int | None] = []
        for value in values:
            if value == 0:
                continue
            frames = resolve_frames(value, plan.n_train)
            if frames not in seen:
                seen.append(frames)
        return seen

    for start in plan.starts:
        zero = grid.frames if start == MAIN else grid.other_starts_frames
        if start != SCRATCH and 0 in zero:
            cells.append(run_cell(plan, start, "zero_shot", None, 0, None))
    for frames in frames_of(grid.frames):
        for seed in grid.seeds:
            for arm in grid.arms:
                if arm == "scratch":
                    cells.append(run_cell(plan, SCRATCH, "scratch", frames, seed, None))
                elif arm in LADDER_ARMS:
                    ladder = LADDER_ARMS[arm]
                    cells.append(run_cell(plan, MAIN, "transfer", frames, seed, ladder))
                else:
                    full = arm == "transfer_full"
                    k = 0 if full else recommended_freeze(plan, MAIN, frames, gaps)
                    cells.append(run_cell(plan, MAIN, "transfer", frames, seed, k))
    for frames in frames_of(grid.freeze_sweep.frames):
        for seed in grid.freeze_sweep.seeds or grid.seeds:
            for k in range(plan.n_stages + 1):
                cells.append(run_cell(plan, MAIN, "transfer", frames, seed, k))
    for start in plan.starts:
        if start in (MAIN, SCRATCH) or start not in gaps:
            continue
        for frames in frames_of(grid.other_starts_frames):
            for seed in grid.seeds:
                k = recommended_freeze(plan, start, frames, gaps)
                cells.append(run_cell(plan, start, "transfer", frames, seed, k))
    unique: dict[str, Cell] = {}
    for cell in cells:
        unique.setdefault(cell.id, cell)
    return list(unique.values())
