"""Fine-tune a pretrained checkpoint on real frames (or train the same network from scratch).

`finetune(config, out_dir)`:

- reads the real data (`open_training_data`), holds out the last `split.test_fraction` of
  every recording as the test block (for `sim2real evaluate`), the block before it for
  validation (early stopping), and trains on the earlier part, subsampled to `frames`
  (reproducible contiguous blocks);
- adapts the network with `sim2real.transfer.adapter` (re-head, AdaBN, freezing,
  discriminative learning rates, gradual unfreezing as phases of `agents.training.fit`);
- with every encoder stage frozen (and BatchNorm frozen), computes the encoder's features once
  and trains only the head on them (`fit_head_on_features`): the same result at a fraction
  of the cost; augmentation is then limited to the mirror (features of mirrored frames with
  steering negated are cached too), since photometric and geometric changes would need the
  encoder again;
- checks that frozen parameters come out bit-identical, and writes a checkpoint folder in
  the one format, whose card records the adapter config, the parent checkpoint, the real
  data used, its split and the validation metrics.

``from_scratch=True`` trains the same architecture from random init with the same data,
split and budget (every stage trainable): the baseline every transfer claim is measured
against.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import Field, model_validator

from sim2real.agents.alignment import AlignmentConfig
from sim2real.agents.checkpoint import CARD_FILE, ModelCard, load_checkpoint, save_adapted
from sim2real.agents.ensemble import Predictor
from sim2real.agents.freezing import find_encoder, unfreeze_stages
from sim2real.agents.model import DrivingNet, seeded_model
from sim2real.agents.preprocessing import Preprocessing
from sim2real.agents.shipped import checkpoint_reference
from sim2real.agents.training import (
    RESUMABLE_CHANGES,
    RESUME_FILE,
    FitResult,
    TrainConfig,
    dataset_tensors,
    evaluate_loss,
    fit,
    fit_tensors,
    loss_weights,
    read_resume_file,
)
from sim2real.common.config import StrictModel, load_config
from sim2real.common.runs import check_run_dir, describe_run
from sim2real.common.splitspec import SplitSpec, fold_legacy_split
from sim2real.transfer.adapter import (
    AdapterConfig,
    adabn,
    apply_freezing,
    param_groups,
    reheaded,
    unfreeze_phases,
)
from sim2real.transfer.cotrain import CotrainConfig
from sim2real.transfer.datasets import check_colour_frames, check_source_sizes
from sim2real.transfer.ladder import (
    AUTO,
    RUNGS,
    ActivationCache,
    LadderConfig,
    RungRun,
    Suffix,
    is_rung,
    train_rung,
)
from sim2real.transfer.ladder_cv import LadderSearch, cross_validate
from sim2real.transfer.selftrain import SelfTrainConfig, recalibrate
from sim2real.transfer.splits import REAL_SPLIT
from sim2real.transfer.training_data import TrainingData, open_training_data

log = logging.getLogger(__name__)


def _default_train() -> TrainConfig:
    return TrainConfig(epochs=30, batch_size=64, lr=1e-3, weight_decay=1e-4, patience=5)


class FinetuneConfig(StrictModel):
    """Everything a fine-tuning run needs; saved as config.yaml in its out dir."""

    checkpoint: str | None = None
    """pretrained checkpoint folder (from scratch: only its architecture and input are used)"""
    data: list[str] = Field(default_factory=list)
    """real tubs (or folders of tubs, CSV folders)"""
    include_pilot: bool = False
    """also train on frames the pilot drove (DonkeyCar user/mode local, local_angle)"""
    frames: int | None = Field(None, ge=2)
    """train on a reproducible block subsample of this many frames (None: all usable)"""
    from_scratch: bool = False
    """same architecture from random init, every stage trainable (the baseline)"""
    crop_top: int | None = Field(None, ge=0)
    """rows (px of the camera frame) cut off the top before the network looks; None: the
    checkpoint's own. Set it when your camera shows its cue where the checkpoint crops, e.g. a
    camera pitched down with the walls in the top rows (docs/transfer.md, "Another camera
    mount: stand-ins"); the saved card, `evaluate`, the ONNX export and the pilot use it"""
    adapter: AdapterConfig = Field(default_factory=AdapterConfig)
    ladder: LadderConfig = Field(default_factory=LadderConfig)
    """how freeze "auto" (and a named rung) picks the rung and epoch count by K-fold CV"""
    train: TrainConfig = Field(default_factory=_default_train)
    split: SplitSpec = Field(default_factory=lambda: REAL_SPLIT.model_copy())
    """train | val (early stopping) | test (never trained on: evaluate --split test) blocks
    of every recording"""
    cache_features: bool = True
    """with every stage frozen, train the head on cached encoder features"""
    cache_dir: str | None = None
    """frame cache folder (None: sim2real's default)"""
    cotrain: CotrainConfig | None = None
    """train on sim frames too, mixed into every batch (`sim2real.transfer.cotrain`)"""
    align: AlignmentConfig | None = None
    """unlabeled real frames: AdaBN and CORAL (`sim2real.agents.alignment`)"""
    selftrain: SelfTrainConfig | None = None
    """unlabeled real frames: a teacher's pseudo-labels train a student
    (`sim2real.transfer.selftrain`)"""
    mirror_average: bool | None = None
    """the saved network predicts (f(x) + s * f(mirror x)) / 2 (`ModelSpec.mirror_average`,
    s = -1 for steering); training, early stopping and the ladder's CV use f alone, the
    card's validation metrics the network as saved, on every path (`scored_as_saved`). None
    (default): on, except for the `calibrate` rung, whose steering offset the average cancels,
    and a run whose `train.augment.mirrored_labels` is not the default (on: an error).
    Chosen on the validation blocks of two real recordings (docs/ensembles.md)"""
    ensemble_with: list[str] | None = None
    """more pretrained starts (folders or shipped names): each is fine-tuned like
    `checkpoint`, on the same frames, and the saved checkpoint averages them all
    (`sim2real.transfer.ensemble_finetune`). None or []: one network (None: not chosen; the
    `finetune` command then fills in its default, `commands.finetune.ENSEMBLE_DEFAULT`)"""

    @model_validator(mode="before")
    @classmethod
    def _split(cls, data: Any) -> Any:
        return fold_legacy_split(data, REAL_SPLIT)

    @model_validator(mode="after")
    def _mirror_keeps_offsets(self) -> FinetuneConfig:
        if self.mirror_average and self.adapter.freeze == "calibrate":
            raise ValueError(
                "mirror_average cancels the steering offset that --freeze calibrate fits: "
                "pass --mirror-average off with it, or name another rung"
            )
        if self.mirror_average and self.train.augment.mirror_mismatch():
            raise ValueError(self.train.augment.mirror_mismatch())
        return self

    def mirror_for(self, rung: str | None) -> bool:
        """Whether the network trained with `rung` (None: not a ladder rung) is saved
        mirror-averaged: `mirror_average`, else on for every rung but `calibrate` (and off
        when `train.augment.mirrored_labels` is not the default list the average negates)."""
        if self.mirror_average is not None:
            return self.mirror_average
        return rung != "calibrate" and not self.train.augment.mirror_mismatch()

    def ensemble_starts(self) -> list[str]:
        """Every start of the saved network: [] for one network, else `checkpoint` then
        `ensemble_with` (None: none)."""
        others = self.ensemble_with or []
        return [str(self.checkpoint), *others] if others else []

    @model_validator(mode="after")
    def _selftrain_alone(self) -> FinetuneConfig:
        if self.selftrain is not None and (
            self.from_scratch or self.cotrain is not None or self.align is not None
        ):
            raise ValueError(
                "self-training (--pseudo-label) does not combine with --from-scratch, "
                "--cotrain-sim or --real-unlabeled alignment: drop one"
            )
        return self

    @model_validator(mode="after")
    def _no_fda(self) -> FinetuneConfig:
        if self.align is not None and self.align.fda_beta is not None:
            raise ValueError(
                f"align.fda_beta {self.align.fda_beta}: Fourier domain adaptation restyles "
                "pretraining's sim frames (sim2real pretrain); finetune does not use it"
            )
        return self


FREEZE_CHOICES = (
    f"{AUTO} (the ladder rung and epochs chosen by K-fold CV), a rung ({', '.join(RUNGS)}), "
    "K (freeze the first K stages), all, none, or stage names (stage1,stage2)"
)


def parse_freeze(value: int | str | list[str]) -> int | str | list[str]:
    """A `--freeze` value as AdapterConfig takes it; ValueError (one line) for anything else."""
    if isinstance(value, int | list):
        return value
    text = str(value).strip()
    if text.isdigit():
        return int(text)
    if text in (AUTO, "all", "none", *RUNGS):
        return text
    names = [n.strip() for n in text.split(",") if n.strip()]
    if names and all(re.fullmatch(r"stage\d+", n) for n in names):
        return names
    raise ValueError(f"--freeze {text!r} is not known: use {FREEZE_CHOICES}")


def load_finetune_config(
    path: str | Path | None, overrides: Mapping[str, Any] | None = None
) -> FinetuneConfig:
    """A `FinetuneConfig` from YAML (or the defaults) with overrides by dotted field path
    (``{"train.epochs": 3}``), as `sim2real.common.config.load_config`."""
    return load_config(FinetuneConfig, path, overrides)


def open_finetune_data(
    config: FinetuneConfig, preprocessing: Preprocessing, *, progress: bool | None = None
) -> TrainingData:
    """`open_training_data` with `config`'s data, split, frame budget and seed, for its
    adapter's outputs: the frames `finetune` trains and early-stops on (pass them back as
    `finetune(..., data=)` to read them once for several runs)."""
    if not config.data:
        raise ValueError("no real data given: pass at least one tub path (--data)")
    return open_training_data(
        config.data,
        config.adapter.outputs,
        preprocessing,
        config.split,
        config.frames,
        config.train.seed,
        include_pilot=config.include_pilot,
        cache_dir=config.cache_dir,
        progress=config.train.progress if progress is None else progress,
    )


def _digest(tensor: torch.Tensor) -> str:
    return hashlib.sha256(tensor.detach().cpu().contiguous().numpy().tobytes()).hexdigest()


def frozen_digests(model: torch.nn.Module) -> dict[str, str]:
    """sha256 of every parameter that does not require grad, by name."""
    return {n: _digest(p) for n, p in model.named_parameters() if not p.requires_grad}


def fit_head_on_features(model: DrivingNet, train_set, val_set, config: TrainConfig) -> FitResult:
    """Train `model.head` only, on encoder features computed once (every stage frozen).

    Mirrored frames (steering and other signed labels negated) are added when the config's
    augmentation mirrors; `agents.training.fit_tensors` trains the head with early stopping
    on `val_set`, restores the best head and measures it there. Deterministic per seed.
    """
    started = time.perf_counter()
    names = list(model.spec.outputs)
    images, targets = dataset_tensors(train_set)
    val_images, val_targets = dataset_tensors(val_set)
    n = images.shape[0]
    both = ActivationCache(
        model, torch.cat([images, val_images]), torch.cat([targets, val_targets]), config.augment
    )
    depth = len(find_encoder(model).stage_names)
    x, y = both.rows(np.arange(n), depth)
    val = both.rows(np.arange(n, len(both)), depth, mirror=False)
    # (its val_metrics are the whole network's on `val_set`: the head on the cached features)
    result = fit_tensors(Suffix(model, depth), x, y, val, config, names, desc="head (cached)")
    result.seconds = time.perf_counter() - started
    return result


@dataclass
class FinetuneResult:
    """The checkpoint written and how training went (one FitResult per phase)."""

    out_dir: Path
    card: ModelCard
    fits: list[FitResult]
    frozen: list[str]
    cached_features: bool
    seconds: float
    ladder: LadderSearch | None = None
    """the cross-validation table and pick (freeze "auto" or a rung name)"""


def check_out_dir(out_dir: Path, config: FinetuneConfig, resume: bool) -> None:
    """Refuse to overwrite a run in `out_dir` unless resuming it with the same config."""
    check_run_dir(
        out_dir,
        config,
        started=(out_dir / CARD_FILE).is_file() or any(out_dir.glob(f"**/{RESUME_FILE}")),
        resume=resume,
        what="a fine-tuning run",
        may_change=RESUMABLE_CHANGES,
    )
    for path in sorted(out_dir.glob(f"**/{RESUME_FILE}")) if resume else []:
        read_resume_file(path)  # a bad one fails before the folder changes


def check_cv_resume(out_dir: Path, config: FinetuneConfig, n_train: int) -> None:
    """Refuse to resume, with another ``train.epochs`` or ``train.patience``, a run whose rung
    or epoch count the ladder's cross-validation picks (a rung, or ``auto`` with at most
    ``ladder.cv_max_frames`` of `n_train` training frames): its folds run at most ``epochs``
    and stop early by ``patience``, so the search would pick anew and the saved state would go
    on under another pick. (Elsewhere both only decide when training stops.)"""
    saved_path = out_dir / "config.yaml"
    freeze = config.adapter.freeze
    by_cv = is_rung(freeze) or (freeze == AUTO and n_train <= config.ladder.cv_max_frames)
    plain = config.cotrain is None and config.align is None and not config.from_scratch
    if not (plain and by_cv and saved_path.is_file()):
        return
    saved = load_config(FinetuneConfig, saved_path).train
    for name in ("epochs", "patience"):
        before, now = getattr(saved, name), getattr(config.train, name)
        if before != now:
            raise ValueError(
                f"cannot resume {out_dir}: train.{name} {before} -> {now}, but the ladder's "
                f"cross-validation (--freeze {freeze}) picks the rung and epochs with it; "
                f"resume with train.{name}={before} or choose another out dir"
            )


def input_preprocessing(config: FinetuneConfig, preprocessing: Preprocessing) -> Preprocessing:
    """A checkpoint's `preprocessing` as this run feeds the network: with `config.crop_top`
    in place of its crop where set."""
    return preprocessing.with_crop_top(config.crop_top)


def build_model(config: FinetuneConfig) -> tuple[DrivingNet, ModelCard]:
    """(network ready to adapt, parent card): re-headed pretrained, or fresh for scratch;
    its input cropped as `input_preprocessing` says."""
    if config.checkpoint is None:
        raise ValueError("no checkpoint given (--checkpoint): it names the architecture too")
    parent, card = load_checkpoint(config.checkpoint)
    parent.spec.preprocessing = input_preprocessing(config, parent.spec.preprocessing)
    if parent.spec.temporal.enabled:
        raise ValueError(
            f"{config.checkpoint}: a temporal network (model.temporal: "
            f"{parent.spec.temporal.model_dump()}) cannot be fine-tuned yet; start from a "
            "single-frame network such as pilotnet-recipe"
        )
    outputs = config.adapter.outputs
    parent.spec.mirror_average = False  # set on the saved network (`save_adapted`), not here
    if config.from_scratch:
        spec = type(parent.spec).model_validate({**parent.spec.model_dump(), "outputs": outputs})
        return seeded_model(spec, config.train.seed), card
    return reheaded(parent, outputs, config.adapter.heads, seed=config.train.seed), card


def _ladder_fit(
    model: DrivingNet,
    config: FinetuneConfig,
    data: TrainingData,
    out_dir: Path,
    resume: bool,
    log_line: Callable[[str], None] | None,
) -> tuple[RungRun, LadderSearch, FitResult]:
    """`auto` or a named rung: cross-validate (the ladder, or the one rung for its epoch
    count), then train the pick on every training frame; returns (run, search, the fit whose
    val metrics, on the validation block, the card reports)."""
    adapter, train = config.adapter, config.train
    images, targets = dataset_tensors(data.train)
    cache = ActivationCache(model, images, targets, train.augment)
    rungs = None if adapter.freeze == AUTO else [str(adapter.freeze)]
    search = cross_validate(
        model,
        cache,
        train,
        config.ladder,
        rungs=rungs,
        lr_decay=adapter.lr_decay,
        log_line=log_line,
    )
    run = train_rung(
        model,
        search.pick,
        cache,
        np.arange(len(cache)),
        None,
        train,
        config.ladder,
        epochs=max(search.epochs, 1),
        probe_epochs=search.probe_epochs,
        lr_decay=adapter.lr_decay,
        out_dir=str(out_dir),
        resume=resume,
    )
    if search.pick == "gain" and config.mirror_for("gain"):
        # the rung fitted its gain on the plain network: refit it on the one saved
        model.spec.mirror_average = True
        refit = {c["output"]: c["gain"] for c in recalibrate(model, (images, targets))}
        for c in run.calibration:
            c["gain"] *= refit.get(c["output"], 1.0)
    last = run.fits[-1]
    report = FitResult(
        best_epoch=search.epochs,
        best_val_loss=None,  # `scored_as_saved` scores the validation block
        epochs_run=sum(f.epochs_run for f in run.fits),
        stopped_early=False,
        val_metrics={},
        history=last.history,
        seconds=sum(f.seconds for f in run.fits),
    )
    return run, search, report


def scored_as_saved(
    model: DrivingNet, mirror: bool, val: Any, train: TrainConfig, report: FitResult
) -> FitResult:
    """`report` with the validation loss and metrics of `model` as `save_adapted` will save
    it: `ModelSpec.mirror_average` set to `mirror` first, then the validation block `val`
    scored (what the card reports on every fine-tuning path). An empty block leaves
    `report`'s figures."""
    model.spec.mirror_average = mirror
    if len(val) == 0:
        return report
    val_loss, metrics = validation_scores(model, val, train)
    return replace(report, best_val_loss=val_loss, val_metrics=metrics)


def validation_scores(model: Predictor, val: Any, train: TrainConfig) -> tuple[float, dict]:
    """(loss, per-output metrics) of `model` as it predicts now (one network or an ensemble)
    on the validation block `val`, weighted as `train` weights the loss: what a card reports.
    (NaN, {}) for an empty block."""
    if len(val) == 0:
        return float("nan"), {}
    names = list(model.spec.outputs)
    weights = loss_weights(names, train.loss_weights)
    device = next(model.parameters()).device
    images, targets = dataset_tensors(val)
    return evaluate_loss(model, images, targets, names, weights.to(device), device)


def finetune(
    config: FinetuneConfig,
    out_dir: str | Path,
    *,
    resume: bool = False,
    data: TrainingData | None = None,
    log_line: Callable[[str], None] | None = None,
) -> FinetuneResult:
    """Adapt `config.checkpoint` to `config.data` and write a checkpoint to `out_dir`.

    `data` (train/val datasets for the adapter's outputs) may be passed in to skip reading.
    With freeze "auto" or a rung name, the ladder's cross-validation picks the rung and/or the
    epoch count (`log_line` gets a line per scored rung) and the card's step records it.
    """
    started = time.perf_counter()
    out_dir = Path(out_dir)
    if config.selftrain is not None:  # a mistyped --pseudo-label path fails before any write
        from sim2real.transfer.selftrain import check_sources

        check_sources(config.selftrain.unlabeled)
    if starts := config.ensemble_starts():
        from sim2real.transfer.ensemble_finetune import finetune_ensemble

        return finetune_ensemble(
            config, out_dir, starts, resume=resume, data=data, log_line=log_line
        )
    check_out_dir(out_dir, config, resume)
    model, parent_card = build_model(config)
    adapter = config.adapter
    if data is None:
        data = open_finetune_data(config, model.spec.preprocessing)
    read_report = data.trained_on.get("read_report") or {}
    check_source_sizes(parent_card, {", ".join(map(str, config.data)): read_report})
    check_colour_frames(data.train)
    if resume:
        check_cv_resume(out_dir, config, len(data.train))
    if config.selftrain is not None:  # too few unlabeled frames fails before the teacher trains
        from sim2real.transfer.selftrain import check_unlabeled

        check_unlabeled(config, data)
    describe_run(out_dir, config)
    if config.cotrain is not None or config.align is not None:
        from sim2real.transfer.cotrain import finetune_mixed

        return finetune_mixed(
            config, out_dir, model, parent_card, data, resume=resume, started=started
        )
    if config.selftrain is not None:
        from sim2real.transfer.selftrain import finetune_selftrain

        return finetune_selftrain(
            config, out_dir, data, resume=resume, started=started, log_line=log_line
        )

    plentiful = adapter.freeze == AUTO and len(data.train) > config.ladder.cv_max_frames
    if plentiful:
        adapter = adapter.model_copy(update={"freeze": "none"})
        if log_line is not None:
            log_line(
                f"freeze auto: {len(data.train)} training frames > ladder.cv_max_frames "
                f"{config.ladder.cv_max_frames}: every stage trains, early stopping on the "
                f"{len(data.val)}-frame validation block"
            )
    ladder = not config.from_scratch and (adapter.freeze == AUTO or is_rung(adapter.freeze))
    search: LadderSearch | None = None
    calibration: list[dict[str, float]] = []
    if config.from_scratch:
        frozen: list[str] = []
        phases: list[list[str]] = [[]]
    else:
        if adapter.bn == "adabn":
            adabn(model, data.train.images)
        frozen = [] if ladder else apply_freezing(model, adapter)
        phases = [[]] if ladder else unfreeze_phases(frozen, adapter)
    all_frozen = set(frozen) == set(find_encoder(model).stage_names)
    cached = (
        not ladder
        and config.cache_features
        and all_frozen
        and adapter.bn != "train"
        and len(phases) == 1
    )
    # the ladder freezes inside its search: digest everything, check what ends up frozen
    before = (
        {n: _digest(p) for n, p in model.named_parameters()} if ladder else frozen_digests(model)
    )
    fits: list[FitResult] = []
    if ladder:
        run, search, report = _ladder_fit(model, config, data, out_dir, resume, log_line)
        frozen, calibration, cached = run.frozen, run.calibration, run.rung != "full"
        fits.append(report)
    elif cached:
        fits.append(fit_head_on_features(model, data.train, data.val, config.train))
    else:
        epochs = [config.train.epochs, *adapter.unfreeze_epochs]
        for i, (unfreeze, n_epochs) in enumerate(zip(phases, epochs, strict=True)):
            if unfreeze:
                unfreeze_stages(model, unfreeze)
            train = config.train.model_copy(update={"epochs": n_epochs})
            groups = param_groups(model, train.lr, adapter.lr_decay)
            phase_dir = out_dir if len(phases) == 1 else out_dir / f"phase{i + 1}"
            fits.append(
                fit(
                    model,
                    data.train,
                    data.val,
                    train,
                    phase_dir,
                    param_groups=groups,
                    resume=resume,
                )
            )
    still_frozen = frozen_digests(model)
    changed = [n for n, d in still_frozen.items() if n in before and before[n] != d]
    if changed:  # a bug in the adapter or in fit, never a user error
        raise RuntimeError(f"frozen parameters changed during fine-tuning: {changed[:5]}")

    mirror = config.mirror_for(search.pick if search is not None else None)
    fits[-1] = last = scored_as_saved(model, mirror, data.val, config.train, fits[-1])
    seconds = time.perf_counter() - started
    step = {
        "step": "finetune_from_scratch" if config.from_scratch else "finetune",
        "finished_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "parent": checkpoint_reference(config.checkpoint),
        "adapter": adapter.model_dump(mode="json"),
        "auto_plentiful": plentiful,
        "frozen_stages": frozen,
        "cached_features": cached,
        "train": config.train.model_dump(mode="json"),
        "phases": [
            {
                "unfreeze": unfreeze,
                "epochs_run": f.epochs_run,
                "best_epoch": f.best_epoch,
                "seconds": f.seconds,
            }
            for unfreeze, f in zip(phases, fits, strict=False)
        ],
        "data": data.trained_on,
        "seconds": seconds,
    }
    if search is not None:
        step["ladder"] = {
            "config": config.ladder.model_dump(mode="json"),
            **search.to_dict(),
            "calibration": calibration,
        }
    card = save_adapted(
        out_dir,
        model,
        parent_card,
        trained_on={**data.trained_on, "parent_checkpoint": step["parent"]},
        split=data.split,
        metrics=last.card_metrics(epochs_run=sum(f.epochs_run for f in fits)),
        step=step,
        from_scratch=config.from_scratch,
        mirror_average=mirror,
    )
    return FinetuneResult(out_dir, card, fits, frozen, cached, seconds, search)
