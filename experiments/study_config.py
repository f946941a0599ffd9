"""What a transfer-gap study declares: `StudyConfig` and its stages, validated on load.

The three stages that train or record are the commands' own configs, so each setting has one
default (its command's) and a study runs any recipe a single command can:

- `sim` is a `SimulateConfig` (`sim2real simulate`) plus the held-out sim test recording;
- `pretrain` is a `PretrainConfig` (`sim2real pretrain`) plus the randomization strengths;
- `finetune` is a `FinetuneConfig` (`sim2real finetune`), the recipe of every fine-tuning cell.

Each is written inline, or as ``config: PATH`` (that command's YAML; a relative path is read
from the working directory, as `real_data` and the commands' ``--config`` are), e.g.
``pretrain: {config: experiments/configs/pretrain_closed_loop.yaml}``, with inline keys
merged on top, key by key.
What the study sets per cell (each recording's strength, the data, the start, the frame
count, the freeze depth, the seed, the real split) must stay at its default: a value there
would be ignored, so it is an error naming the field that sets it instead. How a cell runs
(workers, device, threads, frame cache, progress bars) comes from `runtime`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from sim2real.agents.pretrain import PretrainConfig
from sim2real.common.config import (
    StrictModel,
    load_config,
    load_yaml_mapping,
    set_field,
    validate_config,
)
from sim2real.experiments.domain_gap import FreezeRule
from sim2real.experiments.simulate import SimulateConfig
from sim2real.transfer.finetune import FinetuneConfig
from sim2real.transfer.splits import REAL_SPLIT

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
RUNTIME_TRAIN_FIELDS = {"progress", "tensorboard", "device", "num_threads"}
"""TrainConfig fields left out of cell keys (see RuntimeSettings on threads and device)"""
SPLIT = REAL_SPLIT
"""the real split of every cell: fine-tuning's defaults, which evaluate assumes for cards
that do not record one (zero-shot), so every network is scored on the same test block"""
FINETUNE_CELL_FIELDS = {
    "checkpoint": "the start: start_checkpoint or pretraining",
    "data": "real_data",
    "frames": "grid.frames",
    "from_scratch": "the scratch arm",
    "adapter.freeze": "grid.arms and grid.freeze_sweep",
    "train.seed": "grid.seeds",
    "split": "one real split, so every network meets the same test block",
}
"""FinetuneConfig fields each run cell sets (dotted path -> what sets it); left out of the
stage (an error otherwise) and of cell keys, as `cache_dir` (from the runtime) is"""
STAGE_FILE_KEY = "config"
"""a stage's key naming its command's YAML"""


def _check_frames(values: list[int | str]) -> list[int | str]:
    for value in values:
        if value != "all" and (not isinstance(value, int) or value < 0 or value == 1):
            raise ValueError(f"frame counts are 0 (zero-shot), >= 2 or 'all', got {value!r}")
    if len(set(map(str, values))) != len(values):
        raise ValueError(f"duplicate frame counts in {values}")
    return values


def _with_command_file(data: Any, command: type[BaseModel]) -> Any:
    """A stage's raw mapping with its ``config: PATH`` (the command's YAML) read in below it.

    The file is validated on its own first, so a bad field in it is named with its path."""
    if not isinstance(data, dict) or STAGE_FILE_KEY not in data:
        return data
    path = Path(str(data[STAGE_FILE_KEY])).expanduser()
    base = load_yaml_mapping(path)
    validate_config(command, base, source=str(path))
    for key, value in data.items():
        if key != STAGE_FILE_KEY:
            set_field(base, key, value)  # mappings merge key by key, as --set does
    return base


def _check_left_default(model: BaseModel, fields: dict[str, str]) -> None:
    """ValueError if a field the study sets per cell (dotted name -> what sets it) was given."""
    for dotted, setter in fields.items():
        *parents, name = dotted.split(".")
        owner = model
        for parent in parents:
            owner = getattr(owner, parent)
        default = type(owner).model_fields[name].get_default(call_default_factory=True)
        if getattr(owner, name) != default:
            raise ValueError(
                f"{dotted} is set by the study for each cell ({setter}); leave it out "
                f"(got {getattr(owner, name)!r})"
            )


def train_runtime(runtime: dict[str, Any]) -> dict[str, Any]:
    """The `TrainConfig` runtime fields from a cell's runtime settings."""
    return {
        "device": runtime.get("device", "auto"),
        "num_threads": runtime.get("num_threads"),
        "progress": bool(runtime.get("progress", True)),
        "tensorboard": bool(runtime.get("tensorboard", False)),
    }


class SimStage(SimulateConfig):
    """The expert recordings: a `sim2real simulate` config, recorded once per pretraining
    strength (`strength` is each of `pretrain.strengths`; `workers` is `runtime.workers`),
    and a held-out recording at the main strength for the sim error of every network."""

    test_frames: int = Field(400, ge=20)
    """frames of the held-out sim recording (offline sim error of every network)"""
    test_seed: int = Field(5000, ge=0)
    """seed of the held-out recording (must differ from `seed`)"""

    @model_validator(mode="before")
    @classmethod
    def _command_file(cls, data: Any) -> Any:
        return _with_command_file(data, SimulateConfig)

    @model_validator(mode="after")
    def _study_fields(self) -> SimStage:
        if self.seed == self.test_seed:
            raise ValueError(f"test_seed must differ from seed (both {self.seed})")
        _check_left_default(self, {"strength": "pretrain.strengths"})
        return self

    def recording(self, strength: float, frames: int, seed: int) -> SimulateConfig:
        """The `simulate` config of one recording of this stage."""
        data = self.model_dump(include=set(SimulateConfig.model_fields))
        return SimulateConfig.model_validate(
            {**data, "strength": strength, "frames": frames, "seed": seed}
        )


class PretrainStage(PretrainConfig):
    """Supervised pretraining on sim: a `sim2real pretrain` config, trained once per
    randomization strength on that strength's recording (`data`; `cache_dir` and the train
    runtime fields come from `runtime`)."""

    strengths: list[float] = Field(default_factory=lambda: [1.0, 0.0])
    """randomization strengths; the first is the main start of the learning curves"""

    @model_validator(mode="before")
    @classmethod
    def _command_file(cls, data: Any) -> Any:
        return _with_command_file(data, PretrainConfig)

    @field_validator("strengths")
    @classmethod
    def _strengths(cls, value: list[float]) -> list[float]:
        if not value:
            raise ValueError("at least one randomization strength is needed")
        if any(s < 0 for s in value) or len(set(value)) != len(value):
            raise ValueError(f"strengths must be distinct and >= 0, got {value}")
        return value

    @model_validator(mode="after")
    def _study_fields(self) -> PretrainStage:
        _check_left_default(self, {"data": "each strength's sim recording"})
        return self

    def cell_config(self) -> dict[str, Any]:
        """The pretraining settings of a cell's key: everything but data and runtime."""
        exclude = {"strengths": True, "data": True, "cache_dir": True}
        return self.model_dump(mode="json", exclude={**exclude, "train": RUNTIME_TRAIN_FIELDS})


def cell_pretrain_config(
    settings: dict[str, Any], tub: str, runtime: dict[str, Any]
) -> PretrainConfig:
    """The `PretrainConfig` a pretrain cell runs: its key's `settings`
    (`PretrainStage.cell_config`) on the recording `tub`, with the cell's `runtime`."""
    train = {**settings["train"], **train_runtime(runtime)}
    data = {**settings, "train": train, "data": [tub], "cache_dir": runtime.get("cache_dir")}
    return PretrainConfig.model_validate(data)


class FinetuneStage(FinetuneConfig):
    """How every fine-tuning cell trains: a `sim2real finetune` config. Each cell sets the
    start, the real data and its frame count, scratch or not, the freeze depth and the seed;
    the real split is the study's one (`SPLIT`), so every network meets the same test block."""

    @model_validator(mode="before")
    @classmethod
    def _command_file(cls, data: Any) -> Any:
        return _with_command_file(data, FinetuneConfig)

    @model_validator(mode="after")
    def _study_fields(self) -> FinetuneStage:
        _check_left_default(self, FINETUNE_CELL_FIELDS)
        return self

    def cell_config(self) -> dict[str, Any]:
        """The fine-tuning settings of a cell's key: everything the cell does not set."""
        exclude: dict[str, Any] = {"cache_dir": True, "train": set(RUNTIME_TRAIN_FIELDS)}
        for dotted in FINETUNE_CELL_FIELDS:
            parent, _, name = dotted.rpartition(".")
            if parent:
                exclude.setdefault(parent, set()).add(name)
            else:
                exclude[name] = True
        return self.model_dump(mode="json", exclude=exclude)


def cell_finetune_config(
    cell: dict[str, Any], start: str, runtime: dict[str, Any]
) -> FinetuneConfig:
    """The `FinetuneConfig` a run cell (modes "transfer", "scratch") trains with: its key
    `cell` (`FinetuneStage.cell_config` under "finetune", mode, frames, freeze, seed, real
    data) from the checkpoint `start`, with the cell's `runtime`."""
    settings = cell["finetune"]
    adapter = dict(settings["adapter"])
    if cell["mode"] == "transfer":
        freeze = cell["freeze"]  # stages frozen, or "auto" / a ladder rung
        adapter["freeze"] = freeze if isinstance(freeze, str) else int(freeze)
    train = {**settings["train"], **train_runtime(runtime), "seed": int(cell["seed"])}
    return FinetuneConfig.model_validate(
        {
            **settings,
            "checkpoint": start,
            "data": list(cell["real"]["paths"]),
            "frames": cell["frames"],
            "from_scratch": cell["mode"] == "scratch",
            # an ensemble fine-tunes pretrained starts: the scratch arm stays one network
            "ensemble_with": [] if cell["mode"] == "scratch" else settings.get("ensemble_with"),
            "adapter": adapter,
            "train": train,
            "cache_dir": runtime.get("cache_dir"),
            "split": SPLIT,
        }
    )


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
    """A transfer-gap study; saved as config.yaml in its out dir (command files read in)."""

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


def load_study_config(path: str | Path, overrides: Mapping[str, Any] | None = None) -> StudyConfig:
    """A `StudyConfig` from YAML with overrides by dotted field path (``{"real_data": [...]}``),
    as `sim2real.common.config.load_config`."""
    return load_config(StudyConfig, path, overrides)


def packaged_config(name: str) -> Path:
    """Path of a config shipped in sim2real/experiments/configs (e.g. "transfer_gap")."""
    path = Path(__file__).resolve().parent / "configs" / f"{name}.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no packaged config {name!r}")
    return path
