"""The transfer-gap study: a declared grid of cached cells, run by an executor, then reported.

`StudyConfig` (YAML, validated) declares the upstream stages (sim recordings per
randomization strength, pretraining, an optional external policy checkpoint, domain gap)
and the grid of fine-tuning cells:

- learning curves: N real frames (0 = zero-shot) x arms {transfer with the recommended
  freeze, transfer without freezing, scratch} x seeds, from the main pretrained start;
- a freeze-depth sweep (k = 0 .. every stage) at a few N;
- the other pretraining strengths (e.g. randomization 0) and the policy checkpoint, as
  starts at a few N (zero-shot and recommended freeze);
- every network evaluated on the real test block (the later held-out time block, split as
  fine-tuning splits: train | val 15% | test 20%, with 20-frame gaps), offline on a held-out
  sim recording and, where configured, closed loop in sim.

`run_study` plans the cells stage by stage (the recommended freeze needs the measured gap),
runs what is not cached through an `Executor`, and writes the report.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator, model_validator

from sim2real.agents.model import ModelSpec
from sim2real.agents.pretrain import DEFAULT_OUTPUTS
from sim2real.agents.training import TrainConfig
from sim2real.common.config import StrictModel, load_config
from sim2real.experiments.domain_gap import FreezeRule
from sim2real.experiments.grid import Cell, CellOutcome, CellStore, Executor, LocalExecutor
from sim2real.experiments.grid import run_cells as _run_cells
from sim2real.transfer.adapter import AdapterConfig
from sim2real.transfer.evaluate import DEFAULT_SPLIT

if TYPE_CHECKING:
    from sim2real.transfer.splits import Split

log = logging.getLogger(__name__)

FrameCount = int | Literal["all"]
Arm = Literal[
    "transfer_recommended",
    "transfer_full",
    "scratch",
    "transfer_auto",
    "transfer_gain",
    "transfer_calibrate",
    "transfer_probe",
    "transfer_head",
    "transfer_top",
    "transfer_lpft",
]
LADDER_ARMS = {
    "transfer_auto": "auto",
    **{f"transfer_{rung}": rung for rung in ("gain", "calibrate", "probe", "head", "top", "lpft")},
}
"""arms fine-tuned with freeze "auto" (K-fold CV picks the rung) or one ladder rung"""
MAIN, SCRATCH, POLICY = "main", "scratch", "policy"
RUNTIME_TRAIN_FIELDS = {"progress", "tensorboard", "device", "num_threads"}
"""TrainConfig fields left out of cell keys (see RuntimeSettings on threads and device)"""
SPLIT = DEFAULT_SPLIT
"""the real split of every cell: fine-tuning's defaults, which evaluate assumes for cards
that do not record one (zero-shot), so every network is scored on the same test block"""


def _check_frames(values: list[int | str]) -> list[int | str]:
    for value in values:
        if value != "all" and (not isinstance(value, int) or value < 0 or value == 1):
            raise ValueError(f"frame counts are 0 (zero-shot), >= 2 or 'all', got {value!r}")
    if len(set(map(str, values))) != len(values):
        raise ValueError(f"duplicate frame counts in {values}")
    return values


class SimStage(StrictModel):
    """The expert recordings: one per pretraining strength, and a held-out one for sim error."""

    frames: int = Field(4000, ge=20)
    """frames per pretraining recording"""
    seed: int = Field(0, ge=0)
    test_frames: int = Field(400, ge=20)
    """frames of the held-out sim recording (offline sim error of every network)"""
    test_seed: int = Field(5000, ge=0)
    """seed of the held-out recording (must differ from `seed`)"""
    chunk_frames: int = Field(200, ge=1, le=1000)
    episode_steps: int = Field(1000, ge=1)
    perturbation: float = Field(0.02, ge=0.0)
    randomization: str | None = None
    """RandomizationSpec YAML (None: the envs package default)"""

    @model_validator(mode="after")
    def _seeds_differ(self) -> SimStage:
        if self.seed == self.test_seed:
            raise ValueError(f"test_seed must differ from seed (both {self.seed})")
        return self


class PretrainStage(StrictModel):
    """Supervised pretraining on sim, once per randomization strength."""

    strengths: list[float] = Field(default_factory=lambda: [1.0, 0.0])
    """randomization strengths; the first is the main start of the learning curves"""
    model: ModelSpec = Field(default_factory=lambda: ModelSpec(outputs=list(DEFAULT_OUTPUTS)))
    train: TrainConfig = Field(default_factory=TrainConfig)
    val_fraction: float = Field(0.15, gt=0.0, lt=1.0)
    split_gap: int = Field(20, ge=0)
    max_frames: int | None = Field(None, ge=10)

    @field_validator("strengths")
    @classmethod
    def _strengths(cls, value: list[float]) -> list[float]:
        if not value:
            raise ValueError("at least one randomization strength is needed")
        if any(s < 0 for s in value) or len(set(value)) != len(value):
            raise ValueError(f"strengths must be distinct and >= 0, got {value}")
        return value


def _default_finetune_train() -> TrainConfig:
    return TrainConfig(epochs=30, batch_size=64, lr=1e-3, weight_decay=1e-4, patience=5)


class FinetuneStage(StrictModel):
    """How every fine-tuning cell trains (freeze depth and seed come from the cell)."""

    adapter: AdapterConfig = Field(default_factory=AdapterConfig)
    """its `freeze` is replaced by each cell's freeze depth"""
    train: TrainConfig = Field(default_factory=_default_finetune_train)
    """its `seed` is replaced by each cell's seed"""
    cache_features: bool = True


class GapStage(StrictModel):
    """Domain-gap measurement of every start (and the freeze rule applied to it)."""

    max_frames: int = Field(500, ge=4)
    seed: int = 0
    rule: FreezeRule = Field(default_factory=FreezeRule)


class FreezeSweep(StrictModel):
    frames: list[FrameCount] = Field(default_factory=lambda: [100, "all"])
    """N at which every freeze depth k = 0 .. all is fine-tuned"""
    seeds: list[int] | None = None
    """None: the grid's seeds"""

    @field_validator("frames")
    @classmethod
    def _frames(cls, value: list[int | str]) -> list[int | str]:
        return _check_frames(value)


class GridSpec(StrictModel):
    frames: list[FrameCount] = Field(
        default_factory=lambda: [0, 50, 100, 200, 500, 1000, 2000, "all"]
    )
    """real training frames (0: zero-shot, "all": every training frame)"""
    arms: list[Arm] = Field(
        default_factory=lambda: ["transfer_recommended", "transfer_full", "scratch"]
    )
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2], min_length=1)
    freeze_sweep: FreezeSweep = Field(default_factory=FreezeSweep)
    other_starts_frames: list[FrameCount] = Field(default_factory=lambda: [0, 100])
    """N at which the other strengths' and the policy's starts are fine-tuned"""

    @field_validator("frames", "other_starts_frames")
    @classmethod
    def _frames(cls, value: list[int | str]) -> list[int | str]:
        return _check_frames(value)


class EvaluateStage(StrictModel):
    bootstrap: int = Field(1000, ge=0)
    """moving-block bootstrap resamples per metric (0: no intervals)"""
    closed_loop: Literal["none", "zero_shot", "all"] = "zero_shot"
    """which networks also drive in sim: none, the un-fine-tuned starts, or every network"""
    episodes: int = Field(3, ge=1)
    max_steps: int = Field(600, ge=1)
    strip_frames: int = Field(8, ge=1, le=32)
    """real test frames drawn with predicted and true steering in the report"""


class RuntimeSettings(StrictModel):
    """Settings left out of cell keys: how a cell runs, not what it computes. Threads and
    device change results through floating-point rounding only (seed-sized after training):
    compare numbers computed with the same settings."""

    workers: int = Field(1, ge=1, le=64)
    """simulation processes"""
    device: str = "auto"
    num_threads: int | None = Field(None, ge=1)
    cache_dir: str | None = None
    """frame cache folder (None: <out>/frame_cache)"""
    progress: bool = True


class StudyConfig(StrictModel):
    """A transfer-gap study; saved as config.yaml in its out dir."""

    name: str = "transfer_gap"
    real_data: list[str] | None = None
    """real tubs; None: the shipped sample (sim2real.transfer.sample_data)"""
    policy_checkpoint: str | None = None
    """a policy checkpoint folder (sim2real train-policy); None or missing: skipped, noted"""
    start_checkpoint: str | None = None
    """the main start: a checkpoint folder or a shipped name (`sim2real models`) used as is
    instead of pretraining at the first strength; scratch then trains its architecture.
    None: pretrain the main start (the first of `pretrain.strengths`)"""
    sim: SimStage = Field(default_factory=SimStage)
    pretrain: PretrainStage = Field(default_factory=PretrainStage)
    finetune: FinetuneStage = Field(default_factory=FinetuneStage)
    gap: GapStage = Field(default_factory=GapStage)
    grid: GridSpec = Field(default_factory=GridSpec)
    evaluate: EvaluateStage = Field(default_factory=EvaluateStage)
    runtime: RuntimeSettings = Field(default_factory=RuntimeSettings)

    @field_validator("real_data")
    @classmethod
    def _real(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and not value:
            raise ValueError("give at least one path, or null for the shipped sample")
        return value

    def real_paths(self) -> list[str]:
        """Resolved real data paths (the shipped sample when none are given)."""
        if self.real_data is None:
            from sim2real.transfer.sample_data import sample_path

            return [str(sample_path())]
        paths = []
        for path in self.real_data:
            resolved = Path(path).expanduser().resolve()
            if not resolved.exists():
                raise FileNotFoundError(f"real_data: {path}: no such file or folder")
            paths.append(str(resolved))
        return paths


def load_study_config(path: str | Path, **overrides: Any) -> StudyConfig:
    """A `StudyConfig` from YAML; overrides: real_data (list), policy_checkpoint (None: keep)."""
    config = load_config(StudyConfig, path)
    if overrides.get("real_data"):
        config.real_data = [str(p) for p in overrides["real_data"]]
    if overrides.get("policy_checkpoint"):
        config.policy_checkpoint = str(overrides["policy_checkpoint"])
    return config


def packaged_config(name: str) -> Path:
    """Path of a config shipped in sim2real/experiments/configs (e.g. "transfer_gap")."""
    path = Path(__file__).resolve().parent / "configs" / f"{name}.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no packaged config {name!r}")
    return path


# ----------------------------------------------------------------------------------------
# planning


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
    from sim2real.experiments.simulate import SimulateConfig

    sim = config.sim
    simulate = SimulateConfig(
        frames=frames,
        seed=seed,
        chunk_frames=sim.chunk_frames,
        strength=strength,
        perturbation=sim.perturbation,
        episode_steps=sim.episode_steps,
        randomization=sim.randomization,
    ).model_dump(mode="json", exclude={"workers"})
    spec = resolve_spec(sim.randomization).model_dump(mode="json")
    return Cell(
        "simulate",
        {"simulate": simulate, "spec": spec},
        runtime=runtime,
        label=f"simulate s={strength:g} seed={seed} ({frames} frames)",
    )


def _train_dump(train: TrainConfig) -> dict[str, Any]:
    return train.model_dump(mode="json", exclude=RUNTIME_TRAIN_FIELDS)


def study_split(paths: list[str]) -> Split:
    """The real data under `paths` cut into train | val | test blocks by the study's split."""
    from sim2real.transfer.datasets import open_records
    from sim2real.transfer.splits import time_block_split

    records = open_records(paths).records
    return time_block_split(
        records, SPLIT["val_fraction"], test_fraction=SPLIT["test_fraction"], gap=SPLIT["gap"]
    )


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
    real = {"paths": real_paths, "fingerprint": data_fingerprint(real_paths), "split": SPLIT}
    plan = Plan(config, real_paths, sizes["train"], len(stage_names), stage_names)
    plan.real, plan.runtime = real, runtime
    main_strength = config.pretrain.strengths[0]
    plan.sim_test = _sim_cell(
        config, main_strength, config.sim.test_frames, config.sim.test_seed, runtime
    )
    pretrain_base = {
        "model": config.pretrain.model.model_dump(mode="json"),
        "train": _train_dump(config.pretrain.train),
        "val_fraction": config.pretrain.val_fraction,
        "split_gap": config.pretrain.split_gap,
        "max_frames": config.pretrain.max_frames,
    }
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
    from sim2real.experiments.stages import file_sha256

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
        finetune = config.finetune
        cell_config |= {
            "frames": frames,
            "seed": seed,
            "freeze": freeze,
            "finetune": {
                "adapter": finetune.adapter.model_dump(mode="json", exclude={"freeze"}),
                "train": _train_dump(finetune.train.model_copy(update={"seed": 0})),
                "cache_features": finetune.cache_features,
            },
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


# ----------------------------------------------------------------------------------------
# running


@dataclass
class StudyRun:
    """What a study did: its plan, every cell's outcome, and where the report is."""

    plan: Plan
    outcomes: dict[str, CellOutcome]
    out: Path
    report: dict[str, Path] = field(default_factory=dict)

    @property
    def failures(self) -> list[CellOutcome]:
        return [o for o in self.outcomes.values() if not o.ok]

    @property
    def computed(self) -> list[CellOutcome]:
        """Cells computed in this run (not read from the cache)."""
        return [o for o in self.outcomes.values() if o.ok and not o.cached]

    @property
    def cached(self) -> list[CellOutcome]:
        """Cells read from the cache (finished by an earlier run)."""
        return [o for o in self.outcomes.values() if o.cached]


def run_study(
    config: StudyConfig,
    out: str | Path,
    *,
    executor: Executor | None = None,
    log_line: Callable[[str], None] = print,
    report: bool = True,
) -> StudyRun:
    """Run (or continue) the study `config` in `out` and write its report there.

    Finished cells under ``out/cells`` are reused, so a rerun after an interruption
    continues where it stopped. Failed cells are listed in the report and in
    `StudyRun.failures`; cells downstream of a failure are skipped.
    """
    from sim2real.common.runs import describe_run

    out = Path(out)
    executor = executor or LocalExecutor()
    describe_run(out, config)
    store = CellStore(out)
    plan = plan_upstream(config, out)
    outcomes: dict[str, CellOutcome] = {}

    def stage(name: str, cells: list[Cell]) -> None:
        log_line(f"== {name}: {len(cells)} cell(s)")
        outcomes.update(_run_cells(cells, store, executor, log=log_line))

    try:
        starts = plan.starts.values()
        stage(
            "recordings and starting points",
            [
                plan.sim_test,
                *(s.sim for s in starts),
                *(s.cell for s in starts if s.cell.kind != "pretrain"),
            ],
        )
        # the pretrain cells depend on the recordings: run them once these exist
        stage("pretraining", [s.cell for s in starts if s.cell.kind == "pretrain"])
        stage("domain gap", [s.gap for s in starts if s.gap is not None])
        gaps = {
            name: outcomes[s.gap.id].result
            for name, s in plan.starts.items()
            if s.gap is not None and outcomes[s.gap.id].ok
        }
        if MAIN not in gaps:
            raise RuntimeError(
                "the main start's domain gap did not finish, so the recommended freeze is "
                f"unknown: {outcomes[plan.starts[MAIN].gap.id].error}"
            )
        plan.runs = plan_runs(plan, gaps)
        stage("fine-tuning and evaluation", plan.runs)
        from sim2real.experiments.predictions_cell import predictions_cell

        predictions = predictions_cell(plan, outcomes)
        stage("predictions for the report", [predictions] if predictions else [])
    finally:
        executor.close()
    run = StudyRun(plan, outcomes, out)
    if report:
        from sim2real.experiments.study_results import report_run

        run.report = report_run(run)
    return run
