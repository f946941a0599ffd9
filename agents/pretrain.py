"""Supervised pretraining of a perception network on sim recordings.

`pretrain(config, data, out_dir)` trains with augmentation and early stopping (`fit`) on a
split of sim frames and writes a checkpoint folder: model.safetensors + model.json whose card
records the data, its split, the randomization spec the sim tubs were recorded with (from
their manifests), metrics and code version (with `calibrate_steering`, also the steering gain
measured on the validation frames and applied to the weights). The folder also holds
config.yaml, run.json, tb/ and resume.pt, so an interrupted run resumes with ``resume=True``.
With ``init`` the network starts from a checkpoint's weights (a warm start: the shipped
network continued on new sim frames); the card's history then begins with that checkpoint's
and records its name and weights digest.
Reading tubs into datasets is done one layer up (``sim2real.experiments.pretraining``, with
``sim2real.transfer.training_data.open_training_data``): agents do not depend on transfer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from pydantic import Field, field_validator, model_validator
from torch.utils.data import Dataset

from sim2real.agents.alignment import AlignmentConfig, MixedBatchLoss, coral_stages
from sim2real.agents.calibration import calibrate_output
from sim2real.agents.checkpoint import (
    CARD_FILE,
    WEIGHTS_FILE,
    ModelCard,
    load_checkpoint,
    save_checkpoint,
)
from sim2real.agents.fourier_style import window_half_width
from sim2real.agents.initspec import WEIGHT_FIELDS, check_init_spec
from sim2real.agents.model import STEERING, THROTTLE, DrivingNet, ModelSpec, seeded_model
from sim2real.agents.shipped import resolve_checkpoint
from sim2real.agents.training import (
    RESUMABLE_CHANGES,
    RESUME_FILE,
    FitResult,
    TrainConfig,
    dataset_tensors,
    fit,
    read_resume_file,
)
from sim2real.common.config import StrictModel, load_config
from sim2real.common.digest import file_sha256
from sim2real.common.runs import check_run_dir, code_version, describe_run
from sim2real.common.splitspec import SplitSpec, fold_legacy_split

log = logging.getLogger(__name__)

DEFAULT_OUTPUTS = (STEERING, THROTTLE, "sim/cte", "sim/heading_error")
"""Steering and throttle, plus sim-only lane pose heads that help pretraining."""


class PretrainConfig(StrictModel):
    """Everything a pretraining run needs; saved as config.yaml in its out dir."""

    data: list[str] = Field(default_factory=list)
    """sim tubs (or folders of tubs) to train on"""
    model: ModelSpec = Field(default_factory=lambda: ModelSpec(outputs=list(DEFAULT_OUTPUTS)))
    train: TrainConfig = Field(default_factory=TrainConfig)
    split: SplitSpec = Field(default_factory=SplitSpec)
    """validation part for early stopping: kind time_block, the last `val_fraction` of every
    episode (after `gap` frames); kind episodes, a seed-drawn `val_fraction` of whole episodes
    (unseen tracks, no gap loss: better for recordings of many short episodes)"""
    max_frames: int | None = Field(None, ge=10)
    """train on a reproducible block subsample of this many frames (None: all)"""
    cache_dir: str | None = None
    """frame cache folder (None: sim2real's default cache)"""
    calibrate_steering: bool = False
    """after training, scale the steering output by 1 / its attenuation slope on the validation
    frames (`sim2real.agents.calibration`): a cloned network then under-steers less in closed
    loop. The card's validation metrics stay those of the uncorrected output."""
    init: str | None = None
    """checkpoint folder or shipped name (``pilotnet-recipe``) whose weights the network starts
    from (a warm start; None: seeded random weights). Its spec must match `model` in every
    field the weights depend on (`sim2real.agents.initspec.WEIGHT_FIELDS`); a resumed run
    continues from its own state instead"""
    align: AlignmentConfig | None = None
    """unlabeled real frames (`--real-unlabeled`): a CORAL term between sim and real batches
    while training, with `align.fda_beta` sim frames restyled toward them (Fourier domain
    adaptation) and, with `align.adabn`, BatchNorm statistics re-estimated on them after
    (the card's validation metrics are those of the sim statistics)"""

    @model_validator(mode="before")
    @classmethod
    def _split(cls, data: Any) -> Any:
        return fold_legacy_split(data, SplitSpec())

    @field_validator("model", mode="before")
    @classmethod
    def _default_outputs(cls, value: Any) -> Any:
        # A config naming only the architecture keeps the sim auxiliary heads.
        if isinstance(value, dict) and "outputs" not in value:
            return {**value, "outputs": list(DEFAULT_OUTPUTS)}
        return value

    @model_validator(mode="after")
    def _mirror_labels(self) -> PretrainConfig:
        if self.model.mirror_average and self.train.augment.mirror_mismatch():
            raise ValueError(f"model.{self.train.augment.mirror_mismatch()}")
        return self


@dataclass
class PretrainResult:
    """The checkpoint written and how training went."""

    out_dir: Path
    card: ModelCard
    fit: FitResult


def load_pretrain_config(
    path: str | Path | None, overrides: Mapping[str, Any] | None = None
) -> PretrainConfig:
    """A `PretrainConfig` from YAML (or the defaults) with overrides by dotted field path
    (``{"train.epochs": 3}``), as `sim2real.common.config.load_config`."""
    return load_config(PretrainConfig, path, overrides)


def check_out_dir(out_dir: Path, config: PretrainConfig, resume: bool) -> None:
    """Refuse to overwrite a run in `out_dir` unless resuming it with the same config."""
    check_run_dir(
        out_dir,
        config,
        started=(out_dir / RESUME_FILE).is_file() or (out_dir / CARD_FILE).is_file(),
        resume=resume,
        what="a pretraining run",
        may_change=RESUMABLE_CHANGES,
    )
    if resume and (out_dir / RESUME_FILE).is_file():
        read_resume_file(out_dir / RESUME_FILE)  # a bad one fails before the folder changes


@dataclass
class PretrainData:
    """Training and validation sets of (image uint8 (3, H, W), targets (L,)) for a spec's
    outputs, and a JSON-ready account of where they came from (goes into the card)."""

    train: Dataset
    val: Dataset
    trained_on: dict[str, Any]
    split: SplitSpec | None = None
    """how the frames were cut into train and val (goes into the card)"""
    randomization: dict[str, Any] | None = None
    """the randomization spec each sim tub was recorded with, by tub (goes into the card)"""
    unlabeled: torch.Tensor | None = None
    """unlabeled real frames (N, 3, H, W) uint8 for `config.align`"""


@dataclass
class InitWeights:
    """The network `config.init` names, checked against `config.model`."""

    model: DrivingNet
    card: ModelCard
    record: dict[str, Any]
    """what the card's history records: the name given, its folder and weights' SHA-256"""


def read_init(config: PretrainConfig) -> InitWeights | None:
    """Load `config.init` (None when unset); ValueError naming the spec field that differs."""
    if config.init is None:
        return None
    folder = resolve_checkpoint(config.init)
    model, card = load_checkpoint(folder)
    check_init_spec(
        card.spec, config.init, {field: getattr(config.model, field) for field in WEIGHT_FIELDS}
    )
    record = {
        "checkpoint": config.init,
        "path": str(folder.resolve()),
        "sha256": file_sha256(folder / WEIGHTS_FILE),
    }
    return InitWeights(model, card, record)


def check_fda_window(config: PretrainConfig) -> None:
    """ValueError when `config.align.fda_beta` gives no frequency window on the model's input
    (floor(beta * min(H, W)) = 0: the restyling would change nothing)."""
    beta = config.align.fda_beta if config.align is not None else None
    if beta is None:
        return
    height, width = config.model.input_shape[1:]
    if window_half_width(height, width, beta) == 0:
        side = min(height, width)
        raise ValueError(
            f"align.fda_beta {beta}: no frequency window on a {height}x{width} input "
            f"(floor({beta} x {side}) = 0); use at least {1 / side:.4f}"
        )


def initial_model(config: PretrainConfig, init: InitWeights | None) -> DrivingNet:
    """The network training starts from: `init`'s weights (`read_init`), else seeded random
    ones (``config.train.seed``)."""
    model = seeded_model(config.model, config.train.seed)
    if init is not None:
        model.load_state_dict(init.model.state_dict())
        log.info("network starts from %s (sha256 %s)", config.init, init.record["sha256"][:12])
    return model


def calibrate_steering(model: DrivingNet, val: Dataset, *, target: float = 1.0) -> dict[str, Any]:
    """`calibrate_output` for the steering output on validation set `val` (to slope `target`),
    in place; returns the card's record. A network whose steering does not rise with the label
    (one that learnt nothing) is kept as it is, with the reason recorded under "skipped"."""
    if STEERING not in model.outputs:
        raise ValueError(
            f"calibrate_steering needs output {STEERING!r}; the model has {model.outputs}"
        )
    if len(val) == 0:
        raise ValueError("calibrate_steering needs validation frames; the split left none")
    images, targets = dataset_tensors(val)
    try:
        context = getattr(val, "context", None)  # a temporal network's previous actions
        calibration = calibrate_output(model, images, targets, STEERING, context, target=target)
    except ValueError as exc:  # a network that learnt no steering: keep it, say why
        log.warning("steering not calibrated: %s", exc)
        return {"output": STEERING, "gain": 1.0, "skipped": str(exc)}
    log.info(
        "steering attenuation slope %.3f on %d validation frames: output scaled by %.3f",
        calibration["slope"],
        calibration["frames"],
        calibration["gain"],
    )
    return calibration


def pretrain(
    config: PretrainConfig,
    data: PretrainData,
    out_dir: str | Path,
    *,
    resume: bool = False,
    bn_adapt: Callable[[DrivingNet, torch.Tensor], int] | None = None,
) -> PretrainResult:
    """Pretrain `config.model` on `data`; write a checkpoint (and run files) to `out_dir`.

    Reading sim tubs into `data` is the transfer layer's job (agents do not depend on it):
    ``sim2real.experiments.pretraining.run_pretrain`` does it for the CLI. With
    `config.align`, `data.unlabeled` feeds a CORAL term and, with ``align.adabn``,
    ``bn_adapt(model, frames)`` (e.g. `sim2real.transfer.adapter.adabn`) after training.
    """
    out_dir = Path(out_dir)
    init = read_init(config)
    check_fda_window(config)
    check_out_dir(out_dir, config, resume)
    align = config.align
    if align is not None and data.unlabeled is None:
        raise ValueError("config.align is set but no unlabeled frames were read (--real-unlabeled)")
    if align is not None and align.adabn and bn_adapt is None:
        raise ValueError("align.adabn needs a BatchNorm re-estimation function (bn_adapt)")
    describe_run(out_dir, config)
    model = initial_model(config, init)  # (a resumed run's state replaces it in `fit`)
    loss = None
    if align is not None and (align.coral_weight > 0 or align.fda_beta is not None):
        use_coral = align.coral_weight > 0
        loss = MixedBatchLoss(
            model.outputs,
            config.train.loss_weights,
            target=data.unlabeled if use_coral else None,
            target_per_batch=max(2, round(config.train.batch_size * align.target_share)),
            coral_weight=align.coral_weight,
            coral_stages=coral_stages(model, align) if use_coral else (),
            style=data.unlabeled if align.fda_beta is not None else None,
            style_beta=align.fda_beta or 0.0,
            style_share=align.fda_share,
            augment=config.train.augment,
            seed=config.train.seed,
        )
    result = fit(model, data.train, data.val, config.train, out_dir, resume=resume, batch_loss=loss)
    metrics = result.card_metrics()
    if config.calibrate_steering:
        metrics["steering_calibration"] = calibrate_steering(model, data.val)
    if align is not None and align.adabn and bn_adapt is not None and data.unlabeled is not None:
        metrics["adabn"] = {
            "frames": len(data.unlabeled),
            "layers": bn_adapt(model, data.unlabeled),
        }
    card = ModelCard(
        kind="perception",
        spec=config.model,
        trained_on=data.trained_on,
        split=data.split,
        randomization=data.randomization,
        metrics=metrics,
        code_version=code_version(),
        history=[
            *(init.card.history if init is not None else []),
            {
                "step": "pretrain",
                **({"init": init.record} if init is not None else {}),
                "finished_utc": datetime.now(UTC).isoformat(timespec="seconds"),
                "train": config.train.model_dump(mode="json"),
                "epochs": [{k: v for k, v in h.items() if k != "val"} for h in result.history],
                "seconds": sum(h["seconds"] for h in result.history),
            },
        ],
    )
    save_checkpoint(out_dir, model, card)
    return PretrainResult(out_dir=out_dir, card=card, fit=result)
