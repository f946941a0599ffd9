"""Sim-and-real co-training, and fine-tuning aligned with unlabeled real frames.

With about 100 real frames, whatever is fitted on top of frozen sim features keeps their
correlation with real steering. Co-training (Maddukuri et al. 2025; Wei et al. 2025) trains
the encoder on the N real frames while it keeps training on sim frames, mixed in every batch
at a ratio, so the features move toward the real domain without collapsing onto 100 images:

- the sim frames come from `CotrainConfig.sim`, or by default from the sim data the parent
  checkpoint was pretrained on (its card's ``trained_on.paths``), a block subsample of at most
  `max_sim_frames`;
- each batch holds ``ratio`` real frames and the rest sim frames; the loss weighs the real part
  by ``ratio`` and the sim part by ``1 - ratio``, whatever the counts, so 100 real frames count
  as much as the ratio says (an epoch is one pass over the real frames);
- a sim expert steers with another scale than a human's joystick (FINDINGS.md): the sim part
  is scored through a learnt per-output gain and offset (``domain_affine``), so the network's
  own output keeps the real labels' scale;
- only the fine-tuned network's outputs are trained (sim-only labels such as ``sim/cte`` are
  not read).

`AlignmentConfig` (`sim2real.agents.alignment`) adds unlabeled real frames: AdaBN statistics
from them before freezing, and a CORAL term between the source frames and them.
`finetune_mixed` runs either or both; `sim2real.transfer.finetune.finetune` calls it when the
config has ``cotrain`` or ``align``.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field
from torch.utils.data import TensorDataset

from sim2real.agents.alignment import (
    LabelledStream,
    MixedBatchLoss,
    coral_stages,
)
from sim2real.agents.checkpoint import ModelCard, save_adapted
from sim2real.agents.freezing import find_encoder
from sim2real.agents.model import DrivingNet
from sim2real.agents.preprocessing import Preprocessing
from sim2real.agents.shipped import checkpoint_reference
from sim2real.agents.training import dataset_tensors, fit
from sim2real.common.config import StrictModel
from sim2real.transfer.adapter import adabn, apply_freezing, param_groups
from sim2real.transfer.alignment import open_unlabeled

if TYPE_CHECKING:
    from sim2real.transfer.finetune import FinetuneConfig, FinetuneResult
    from sim2real.transfer.training_data import TrainingData

log = logging.getLogger(__name__)


class CotrainConfig(StrictModel):
    """Sim frames trained alongside the real ones (`finetune --cotrain-sim/--cotrain-ratio`)."""

    sim: list[str] = Field(default_factory=list)
    """sim tubs (or folders of tubs); [] = the parent checkpoint's pretraining data"""
    ratio: float = Field(0.5, gt=0.0, lt=1.0)
    """real share of each batch and of its loss (the rest: sim frames)"""
    max_sim_frames: int = Field(3000, ge=10)
    """use a reproducible block subsample of at most this many sim frames"""
    domain_affine: bool = True
    """score sim frames through a learnt per-output gain and offset (sim label scale)"""
    freeze: int | list[str] = 0
    """encoder stages kept frozen while co-training: the first k, or stage names"""
    refit_head: bool = False
    """after co-training, freeze every stage and refit the head on the real frames alone (on
    cached features): co-trained features, a head fitted to the real labels' scale"""
    final_adabn: bool = False
    """after co-training, re-estimate BatchNorm statistics on real frames only (the unlabeled
    ones when given, else the labelled training frames): training leaves them a sim/real mix"""


def sim_paths(config: CotrainConfig, parent_card: ModelCard) -> list[str]:
    """The sim data to co-train on: `config.sim`, else the parent's pretraining paths; a
    ValueError naming --cotrain-sim when there is none, or it is gone from disk."""
    if config.sim:
        paths = list(config.sim)
    else:
        recorded = parent_card.trained_on.get("paths") if parent_card.trained_on else None
        paths = [str(p) for p in recorded or []]
        if not paths:
            raise ValueError(
                "co-training needs sim frames: the parent checkpoint's card records no "
                "pretraining data (trained_on.paths); pass --cotrain-sim PATH"
            )
        missing = [p for p in paths if not Path(p).exists()]
        if missing:
            raise ValueError(
                f"co-training needs sim frames: the parent's pretraining data {missing} is not "
                "on this machine; pass --cotrain-sim PATH"
            )
    return paths


def open_sim_frames(
    config: CotrainConfig,
    paths: list[str],
    outputs: list[str],
    preprocessing: Preprocessing,
    *,
    seed: int = 0,
    cache_dir: Path | None = None,
    progress: bool = True,
) -> LabelledStream:
    """At most `config.max_sim_frames` sim frames of `paths` (block subsample by `seed`) with
    the labels `outputs` (NaN where a frame lacks one); at least one output must be present."""
    from sim2real.transfer.datasets import DrivingDataset, open_records
    from sim2real.transfer.splits import subsample

    for path in paths:
        if not Path(path).expanduser().exists():
            raise FileNotFoundError(f"--cotrain-sim {path}: no such file or folder")
    record_set = open_records(paths)
    records = subsample(record_set.records, config.max_sim_frames, seed)
    if not any(name in r.labels for r in records for name in outputs):
        raise ValueError(
            f"--cotrain-sim {', '.join(paths)}: no frame has any of the outputs {outputs}; "
            f"labels present: {record_set.label_names}"
        )
    dataset = DrivingDataset(records, preprocessing, outputs, cache_dir, progress=progress)
    return LabelledStream(images=dataset.images, targets=dataset.targets)


def held_out_images(config: FinetuneConfig) -> list[Path]:
    """Image paths of every frame of `config.data` outside the training part (validation,
    test and the gaps between): never used as unlabeled frames either. The split is cut from
    the records `finetune` cuts it from (pilot-driven frames too with `include_pilot`)."""
    from sim2real.transfer.datasets import open_records
    from sim2real.transfer.splits import split_records

    records = open_records(config.data, include_pilot=config.include_pilot).records
    split = split_records(records, config.split, seed=config.train.seed)
    train = {Path(r.image_path) for r in split.train}
    return [Path(r.image_path) for r in records if Path(r.image_path) not in train]


def finetune_mixed(
    config: FinetuneConfig,
    out_dir: Path,
    model: DrivingNet,
    parent_card: ModelCard,
    data: TrainingData,
    *,
    resume: bool = False,
    started: float | None = None,
) -> FinetuneResult:
    """Co-train and/or align `model` (re-headed, not yet frozen) and write the checkpoint.

    Order: unlabeled frames' AdaBN (or the adapter's AdaBN on the real training frames),
    freezing (`cotrain.freeze`, else `adapter.freeze`), one `fit` whose batch loss mixes in
    sim frames and a CORAL term (`MixedBatchLoss`), then the card.
    """
    from sim2real.transfer.finetune import (
        FinetuneResult,
        fit_head_on_features,
        frozen_digests,
        scored_as_saved,
    )

    started = time.perf_counter() if started is None else started
    if config.from_scratch:
        raise ValueError("from_scratch trains the baseline: it takes no cotrain or align settings")
    cot, align, adapter, train_cfg = config.cotrain, config.align, config.adapter, config.train
    outputs, pre = list(adapter.outputs), model.spec.preprocessing
    cache_dir = Path(config.cache_dir) if config.cache_dir else None
    progress, seed = train_cfg.progress, train_cfg.seed
    record: dict[str, Any] = {}

    sim = None
    if cot is not None:
        paths = sim_paths(cot, parent_card)
        sim = open_sim_frames(
            cot, paths, outputs, pre, seed=seed, cache_dir=cache_dir, progress=progress
        )
        record["cotrain"] = {
            **cot.model_dump(mode="json"),
            "sim_paths": [str(Path(p).expanduser().resolve()) for p in paths],
            "sim_frames": len(sim.images),
        }
    unlabeled = None
    if align is not None:
        unlabeled = open_unlabeled(
            align,
            pre,
            seed=seed,
            exclude=held_out_images(config) if config.data else (),
            cache_dir=cache_dir,
            progress=progress,
        )
        record["align"] = {**align.model_dump(mode="json"), "unlabeled_frames": len(unlabeled)}

    if unlabeled is not None and align is not None and align.adabn:
        adabn(model, unlabeled)
    elif adapter.bn == "adabn":
        adabn(model, data.train.images)
    freeze = cot.freeze if cot is not None else adapter.freeze
    if isinstance(freeze, str) and freeze not in ("all", "none") and not freeze.isdigit():
        raise ValueError(
            f"freeze {freeze!r} is not supported with --real-unlabeled alone: name the frozen "
            "stages (--freeze K, all or none) or co-train (--cotrain-sim)"
        )
    frozen = apply_freezing(model, adapter.model_copy(update={"freeze": freeze}))
    all_frozen = set(frozen) == set(find_encoder(model).stage_names)
    before = frozen_digests(model)

    if all_frozen and cot is None and adapter.bn != "train":
        if align is not None and align.coral_weight > 0:
            log.warning("every stage is frozen: CORAL has nothing to align (AdaBN only)")
        result = fit_head_on_features(model, data.train, data.val, train_cfg)
        loss = None
    else:
        images, targets = dataset_tensors(data.train)
        n_real = (
            train_cfg.batch_size if cot is None else max(2, round(train_cfg.batch_size * cot.ratio))
        )
        stages = coral_stages(model, align) if align is not None and align.coral_weight > 0 else []
        loss = MixedBatchLoss(
            outputs,
            train_cfg.loss_weights,
            extra=sim,
            extra_per_batch=max(1, train_cfg.batch_size - n_real) if cot is not None else 0,
            share=cot.ratio if cot is not None else 1.0,
            domain_affine=cot.domain_affine if cot is not None else False,
            target=unlabeled if stages else None,
            target_per_batch=max(2, round(n_real * align.target_share)) if align else 0,
            coral_weight=align.coral_weight if align else 0.0,
            coral_stages=stages,
            augment=train_cfg.augment,
            seed=seed,
        )
        device = next(model.parameters()).device
        loss.to(device)
        groups = param_groups(model, train_cfg.lr, adapter.lr_decay)
        affine = [p for p in (loss.gain, loss.offset) if p.requires_grad]
        if affine:
            groups.append({"name": "domain_affine", "params": affine, "weight_decay": 0.0})
        result = fit(
            model,
            TensorDataset(images, targets),
            data.val,
            train_cfg.model_copy(update={"batch_size": n_real}),
            out_dir,
            param_groups=groups,
            resume=resume,
            batch_loss=loss,
        )
        loss.to("cpu")
        if affine:
            record["domain_affine"] = {
                name: {"gain": g.item(), "offset": o.item()}
                for name, g, o in zip(outputs, loss.gain, loss.offset, strict=True)
            }
    if cot is not None and cot.final_adabn:
        frames = unlabeled if unlabeled is not None else data.train.images
        adabn(model, frames)
        record["final_adabn_frames"] = len(frames)
    if cot is not None and cot.refit_head:
        record["co_training_fit"] = {
            "epochs_run": result.epochs_run,
            "best_epoch": result.best_epoch,
        }
        frozen = apply_freezing(model, adapter.model_copy(update={"freeze": "all", "bn": "frozen"}))
        result = fit_head_on_features(model, data.train, data.val, train_cfg)
    cached = loss is None or (cot is not None and cot.refit_head)
    changed = [n for n, d in frozen_digests(model).items() if n in before and before[n] != d]
    if changed:  # a bug, never a user error
        raise RuntimeError(f"frozen parameters changed during fine-tuning: {changed[:5]}")

    result = scored_as_saved(model, config.mirror_for(None), data.val, train_cfg, result)
    seconds = time.perf_counter() - started
    parent = checkpoint_reference(str(config.checkpoint))
    step = {
        "step": "finetune_cotrain" if cot is not None else "finetune_aligned",
        "finished_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "parent": parent,
        "adapter": adapter.model_dump(mode="json"),
        "frozen_stages": frozen,
        "cached_features": cached,
        "train": train_cfg.model_dump(mode="json"),
        **record,
        "epochs_run": result.epochs_run,
        "best_epoch": result.best_epoch,
        "data": data.trained_on,
        "seconds": seconds,
    }
    card = save_adapted(
        out_dir,
        model,
        parent_card,
        trained_on={**data.trained_on, "parent_checkpoint": parent, **record},
        split=data.split,
        metrics=result.card_metrics(),
        step=step,
        mirror_average=config.mirror_for(None),
    )
    return FinetuneResult(out_dir, card, [result], frozen, cached, seconds)
