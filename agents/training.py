"""Generic supervised training of a DrivingNet: sim pretraining and real fine-tuning alike.

`fit` runs AdamW over the trainable parameters only (frozen stages stay bit-identical), a
masked MSE per output (NaN targets are ignored, so real frames without sim labels train the
same heads), early stopping on validation loss with the best weights restored, TensorBoard
scalars in ``out_dir/tb``, a tqdm bar, and a ``out_dir/resume.pt`` after every epoch so an
interrupted run continues where it stopped. Two runs with the same seed, data and thread
count give identical weights (on a GPU too: cuDNN is held to deterministic kernels).
`fit_tensors` is the same loop on cached feature tensors; both are built from the epoch
pieces of `agents.epochs` (seeds, batches, schedule, early stopping) and the loss of
`agents.losses`.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import Field
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset
from tqdm.auto import tqdm

from sim2real.agents.augment import Augmentation, augment_batch
from sim2real.agents.epochs import (
    EarlyStopping,
    cuda_indices,
    epoch_batches,
    seeded_epoch,
    state_copy,
    train_pass,
)
from sim2real.agents.freezing import trainable_parameters
from sim2real.agents.losses import (
    evaluate_loss,
    loss_weights,
    masked_loss,
    tensor_metrics,
)
from sim2real.agents.model import DrivingNet
from sim2real.agents.temporal import augment_with_context, dataset_context, frame_inputs
from sim2real.common.config import StrictModel
from sim2real.common.device import DeviceName, resolve_device
from sim2real.common.io import atomic_write

log = logging.getLogger(__name__)

RESUME_FILE = "resume.pt"
RESUMABLE_CHANGES = {"train": {"epochs", "patience", "progress", "tensorboard", "device"}}
"""Config fields a resumed training run may change (pydantic `exclude` form): more epochs,
another early-stopping patience (it decides only when training stops, never a step), another
device, logging; anything else makes the saved state meaningless."""


class TrainConfig(StrictModel):
    """How `fit` trains; saved with every run."""

    epochs: int = Field(6, ge=1)
    """maximum number of passes over the training set"""
    batch_size: int = Field(128, ge=2)
    lr: float = Field(1e-3, gt=0.0)
    """AdamW learning rate (param groups may set their own)"""
    lr_schedule: Literal["constant", "cosine"] = "constant"
    """"cosine": every group's rate falls from its start value to 0 along a half cosine over
    all batches of `epochs` (raising `epochs` on resume stretches what is left)"""
    weight_decay: float = Field(1e-4, ge=0.0)
    patience: int = Field(3, ge=0)
    """stop after this many epochs without a better validation loss (0: never stop early)"""
    min_delta: float = Field(0.0, ge=0.0)
    """a validation loss must beat the best by more than this to count as better"""
    loss_weights: dict[str, float] = Field(default_factory=dict)
    """weight of each output's MSE in the loss, by output name (unlisted: 1.0)"""
    seed: int = 0
    device: DeviceName = "auto"
    """"auto" (CUDA when present), "cpu", "cuda", "cuda:1" ..."""
    num_threads: int | None = Field(None, ge=1)
    """torch CPU threads while training (None: leave torch's setting)"""
    augment: Augmentation = Field(default_factory=Augmentation)
    tensorboard: bool = True
    """write scalars to out_dir/tb"""
    progress: bool = True
    """show a tqdm progress bar"""


@dataclass
class FitResult:
    """What `fit` did; the model holds the best weights when it returns."""

    best_epoch: int
    """1-based epoch whose weights the model holds"""
    best_val_loss: float | None
    epochs_run: int
    stopped_early: bool
    val_metrics: dict[str, dict[str, float]]
    """per output at the best epoch: mse, rmse, mae, n (frames with a label)"""
    history: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    def card_metrics(self, epochs_run: int | None = None) -> dict[str, Any]:
        """The model card's ``metrics``: val metrics at the best epoch and how training went
        (`epochs_run` overrides this fit's count, e.g. summed over fine-tuning phases)."""
        return {
            "val": self.val_metrics,
            "best_val_loss": self.best_val_loss,
            "best_epoch": self.best_epoch,
            "epochs_run": self.epochs_run if epochs_run is None else epochs_run,
            "stopped_early": self.stopped_early,
        }


def dataset_tensors(dataset: Dataset) -> tuple[torch.Tensor, torch.Tensor]:
    """All of `dataset` as (images (N, 3, H, W) uint8, targets (N, L) float32) tensors.

    Uses a dataset's ``.images`` / ``.targets`` (DrivingDataset) or a TensorDataset's tensors
    directly; otherwise reads every item once. A dataset with earlier frames attached
    (``previous_index``) gives its images as `FramePairs`, (N, 6, H, W) on indexing.
    """
    images = getattr(dataset, "images", None)
    targets = getattr(dataset, "targets", None)
    if isinstance(images, torch.Tensor) and isinstance(targets, torch.Tensor):
        pass
    elif isinstance(dataset, TensorDataset) and len(dataset.tensors) == 2:
        images, targets = dataset.tensors
    else:
        batches = list(DataLoader(dataset, batch_size=256, shuffle=False))
        if not batches:
            raise ValueError("dataset is empty")
        images = torch.cat([b[0] for b in batches])
        targets = torch.cat([b[1] for b in batches])
    if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(
            f"dataset images must be uint8 (N, 3, H, W), got {tuple(images.shape)} {images.dtype}"
        )
    if targets.dim() != 2 or targets.shape[0] != images.shape[0]:
        raise ValueError(
            f"dataset targets must be (N, L) for {images.shape[0]} images, "
            f"got {tuple(targets.shape)}"
        )
    return frame_inputs(dataset, images), targets.float()


BatchLoss = Callable[[DrivingNet, torch.Tensor, torch.Tensor], torch.Tensor]
"""A training batch's loss: (model in train mode, images (B, 3, H, W) float32 in [0, 1] on the
device after augmentation, targets (B, L) float32 with NaN for missing labels) -> scalar."""


def deterministic_cudnn() -> contextlib.AbstractContextManager:
    """cuDNN limited to deterministic kernels, no autotuning (TF32 left as configured): the
    same seed then gives the same weights on a GPU too, at some speed."""
    return torch.backends.cudnn.flags(
        enabled=True,
        benchmark=False,
        deterministic=True,
        allow_tf32=torch.backends.cudnn.allow_tf32,
    )


RESUME_KEYS = (
    *("config", "model", "optimizer", "best_state", "history", "stopped_early"),
    *("epoch", "best_val", "best_epoch", "bad_epochs", "finished"),
)


def read_resume_file(path: Path) -> dict[str, Any]:
    """The training state in `path`, read with torch's restricted (weights-only) unpickler;
    ValueError naming `path` when it is truncated, not torch's format or holds anything but
    tensors and plain values (never retried with the unsafe full unpickler)."""
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError, ...
        reason = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else type(exc).__name__
        raise ValueError(
            f"{path}: not a training state sim2real can read safely ({reason}); delete it to "
            "restart training from scratch, or choose another out dir"
        ) from None
    missing = [key for key in RESUME_KEYS if not isinstance(saved, dict) or key not in saved]
    if missing:
        raise ValueError(
            f"{path}: not a sim2real training state (missing {missing}); delete it to restart "
            "training from scratch, or choose another out dir"
        )
    return saved


def _resume_identity(config: TrainConfig | dict[str, Any]) -> dict[str, Any]:
    """Config fields a resumed run must share with the interrupted one (of a config, or of
    the identity a resume file saved, which may hold fields made resumable since)."""
    if isinstance(config, dict):
        return {k: v for k, v in config.items() if k not in RESUMABLE_CHANGES["train"]}
    return config.model_dump(mode="json", exclude=RESUMABLE_CHANGES["train"])


def fit(
    model: DrivingNet,
    train_set: Dataset,
    val_set: Dataset | None,
    config: TrainConfig,
    out_dir: str | Path,
    *,
    param_groups: list[dict[str, Any]] | None = None,
    on_epoch_start: Callable[[int, nn.Module], None] | None = None,
    resume: bool = False,
    batch_loss: BatchLoss | None = None,
) -> FitResult:
    """Train `model` in place on (image uint8 (3, H, W), targets (L,)) datasets.

    Target columns are the model's outputs in order. `param_groups` (AdamW groups) default
    to one group of `trainable_parameters(model)`. `on_epoch_start(epoch, model)` (0-based)
    runs before each epoch, e.g. for gradual unfreezing. `batch_loss(model, x, y)` replaces
    the masked MSE of ``model(x)`` as each training batch's loss (e.g. to mix in other
    domains' frames); validation always uses the masked MSE. With `resume`, training continues
    from ``out_dir/resume.pt`` when it exists (same config apart from `RESUMABLE_CHANGES`: a
    run that stopped early goes on when the new patience would not have stopped it; a
    `batch_loss` with ``resume_state()`` / ``load_resume_state()``, such as `MixedBatchLoss`,
    goes on from its saved draws). Returns
    with the best validation epoch's weights in `model` (the last epoch's without val_set).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    names = list(model.spec.outputs)
    weights = loss_weights(names, config.loss_weights)
    images, targets = dataset_tensors(train_set)
    if targets.shape[1] != len(names):
        raise ValueError(f"targets have {targets.shape[1]} columns; the model outputs {names}")
    expected = model.spec.input_shape
    if tuple(images.shape[1:]) != expected:
        raise ValueError(
            f"dataset images are {tuple(images.shape[1:])}; the model takes {expected}"
        )
    val = dataset_tensors(val_set) if val_set is not None and len(val_set) > 0 else None
    if val is not None and tuple(val[0].shape[1:]) != expected:
        raise ValueError(f"validation images are {tuple(val[0].shape[1:])}; model takes {expected}")
    context = dataset_context(model.context_names, train_set, "training")
    val_context = None if val is None else dataset_context(model.context_names, val_set, "val")
    if (context is not None or model.spec.temporal.frames > 1) and batch_loss is not None:
        raise ValueError("a batch_loss (CORAL, co-training) cannot train a temporal network yet")

    device = resolve_device(config.device)
    model.to(device)
    weights = weights.to(device)
    groups = param_groups if param_groups is not None else [{"params": trainable_parameters(model)}]
    if not any(p.requires_grad for group in groups for p in group["params"]):
        raise ValueError("nothing to train: every parameter is frozen")
    optimizer = torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay)
    start_lrs = [group["lr"] for group in optimizer.param_groups]

    state = {"epoch": 0, "finished": False}
    stopper = EarlyStopping(config.patience, config.min_delta)
    history: list[dict[str, Any]] = []
    resume_path = out_dir / RESUME_FILE
    if resume and resume_path.is_file():
        saved = read_resume_file(resume_path)
        if _resume_identity(saved["config"]) != _resume_identity(config):
            raise ValueError(
                f"{resume_path} was written with a different training config; resume with the "
                f"same config (only {', '.join(sorted(RESUMABLE_CHANGES['train']))} may change) "
                "or start a new out dir"
            )
        try:
            model.load_state_dict(saved["model"])
            optimizer.load_state_dict(saved["optimizer"])
        except (RuntimeError, ValueError, KeyError) as exc:
            raise ValueError(
                f"{resume_path} does not fit this model and its trainable parameters (same "
                f"architecture, outputs and frozen stages needed): {exc}"
            ) from None
        stopper = EarlyStopping(
            config.patience,
            config.min_delta,
            best_val=saved["best_val"],
            best_epoch=saved["best_epoch"],
            bad_epochs=saved["bad_epochs"],
            best_state=saved["best_state"],
        )
        history = list(saved["history"])
        state = {k: saved[k] for k in state}
        load_loss_state = getattr(batch_loss, "load_resume_state", None)
        if "batch_loss" in saved and load_loss_state is not None:
            try:  # the loss's own draws (e.g. CORAL's and FDA's frames) go on where they were
                load_loss_state(saved["batch_loss"])
            except (RuntimeError, ValueError, KeyError) as exc:
                raise ValueError(
                    f"{resume_path} does not fit this run's batch loss: {exc}"
                ) from None
        if state["finished"] and state["epoch"] < config.epochs and not stopper.stop:
            state["finished"] = False  # more epochs, or a patience that would not have stopped
        elif not state["finished"] and stopper.stop and history:
            # a shorter patience that the epochs already run have met: stop where it would have
            state["finished"] = True
            history[-1] = {**history[-1], "stopped_early": True}
        log.info("resuming from %s after epoch %d", resume_path, state["epoch"])

    old_threads = torch.get_num_threads()
    if config.num_threads is not None:
        torch.set_num_threads(config.num_threads)
    writer = None
    if config.tensorboard:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(out_dir / "tb"), purge_step=state["epoch"] + 1)
    started = time.perf_counter()
    stopped_early = bool(history and history[-1].get("stopped_early"))
    n = images.shape[0]

    def step_loss(rows: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """A training batch's loss: augmented frames `rows`, on the device."""
        if context is not None:  # a temporal network: the previous action rides along
            x, y, c = augment_with_context(
                images[rows], targets[rows], context[rows], names, generator, config.augment
            )
            return masked_loss(model(x.to(device), c.to(device)), y.to(device), weights)
        x, y = augment_batch(images[rows], targets[rows], names, generator, config.augment)
        x, y = x.to(device), y.to(device)
        if batch_loss is None:
            return masked_loss(model(x), y, weights)
        return batch_loss(model, x, y)

    exit_stack = contextlib.ExitStack()
    if device.type == "cuda":  # cuDNN's fastest kernels are not reproducible run to run
        exit_stack.enter_context(deterministic_cudnn())
    try:
        while not state["finished"] and state["epoch"] < config.epochs:
            epoch = state["epoch"]
            if on_epoch_start is not None:
                on_epoch_start(epoch, model)
            t0 = time.perf_counter()
            model.train()
            cuda = cuda_indices(device)
            with seeded_epoch(config.seed, epoch, cuda) as generator:
                batches = epoch_batches(n, config.batch_size, generator)
                bar = tqdm(
                    batches,
                    desc=f"epoch {epoch + 1}/{config.epochs}",
                    unit="batch",
                    leave=False,
                    disable=None if config.progress else True,  # None: off when not a TTY
                )

                train_loss = train_pass(
                    optimizer,
                    batches,
                    functools.partial(step_loss, generator=generator),
                    schedule=config.lr_schedule,
                    epoch=epoch,
                    epochs=config.epochs,
                    start_lrs=start_lrs,
                    shown=bar,
                )
            entry: dict[str, Any] = {
                "epoch": epoch + 1,
                "train_loss": train_loss,
                "lr": optimizer.param_groups[0]["lr"],
            }
            if val is not None:
                val_loss, metrics = evaluate_loss(
                    model, *val, names, weights, device, context=val_context
                )
                entry["val_loss"] = val_loss
                entry["val"] = metrics
            else:
                val_loss = None
            stopped_early = stopper.update(epoch + 1, val_loss, model)
            state["epoch"] = epoch + 1
            entry["seconds"] = time.perf_counter() - t0
            entry["stopped_early"] = stopped_early
            history.append(entry)
            if writer is not None:
                writer.add_scalar("loss/train", train_loss, epoch + 1)
                if val_loss is not None:
                    writer.add_scalar("loss/val", val_loss, epoch + 1)
                    for name, m in entry["val"].items():
                        writer.add_scalar(f"val_rmse/{name}", m["rmse"], epoch + 1)
                writer.flush()
            if config.progress:
                shown = "-" if val_loss is None else f"{val_loss:.4f}"
                tqdm.write(
                    f"epoch {epoch + 1}/{config.epochs}: train {train_loss:.4f}, val {shown}, "
                    f"{entry['seconds']:.1f} s"
                )
            state["finished"] = stopped_early or state["epoch"] >= config.epochs
            _save_resume(resume_path, model, optimizer, stopper, history, state, config, batch_loss)
            if stopped_early:
                break
    finally:
        exit_stack.close()
        if writer is not None:
            writer.close()
        torch.set_num_threads(old_threads)

    stopper.restore(model)
    val_metrics: dict[str, dict[str, float]] = {}
    best_val: float | None = None
    if val is not None and stopper.best_epoch:
        best_val = stopper.best_val
        val_metrics = history[stopper.best_epoch - 1]["val"]
    model.eval()
    return FitResult(
        best_epoch=stopper.best_epoch,
        best_val_loss=best_val,
        epochs_run=state["epoch"],
        stopped_early=stopped_early,
        val_metrics=val_metrics,
        history=history,
        seconds=time.perf_counter() - started,
    )


def _save_resume(
    path: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    stopper: EarlyStopping,
    history: list[dict[str, Any]],
    state: dict[str, Any],
    config: TrainConfig,
    batch_loss: BatchLoss | None = None,
) -> None:
    payload = {
        **state,
        "best_val": stopper.best_val,
        "best_epoch": stopper.best_epoch,
        "bad_epochs": stopper.bad_epochs,
        "model": state_copy(model),
        "optimizer": copy.deepcopy(optimizer.state_dict()),
        "best_state": stopper.best_state,
        "history": history,
        "stopped_early": bool(history and history[-1]["stopped_early"]),
        "config": _resume_identity(config),
    }
    loss_state = getattr(batch_loss, "resume_state", None)
    if loss_state is not None:  # e.g. `MixedBatchLoss`: where its random draws stand
        payload["batch_loss"] = loss_state()
    atomic_write(path, lambda tmp: torch.save(payload, tmp))


def fit_tensors(
    module: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    val: tuple[torch.Tensor, torch.Tensor] | None,
    config: TrainConfig,
    names: Sequence[str],
    *,
    desc: str = "cached features",
) -> FitResult:
    """Train `module` (inputs (N, ...) float32 -> predictions (N, L)) in place on tensors.

    The loop of `fit` without images: AdamW over the module's trainable parameters, the same
    masked weighted MSE, lr schedule, per-epoch seeds and dropout seeding, early stopping on
    `val` (inputs, targets) with the best weights restored; no augmentation (the caller adds
    e.g. mirrored rows to `x`), no files. It trains whatever sits on top of a frozen, cached
    part of a network (a head on encoder features, the top stages on a lower stage's maps).
    Without `val` every epoch runs and the last weights stay. Deterministic per seed.
    """
    started = time.perf_counter()
    weights = loss_weights(names, config.loss_weights)
    params = trainable_parameters(module)
    if not params:
        raise ValueError("nothing to train: every parameter is frozen")
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    stopper = EarlyStopping(config.patience, config.min_delta)
    history: list[dict[str, Any]] = []
    cuda = cuda_indices(x.device)  # dropout seeded, cuDNN deterministic, as in `fit`
    with deterministic_cudnn() if cuda else contextlib.nullcontext():
        for epoch in tqdm(range(config.epochs), desc=desc, disable=not config.progress):
            t0 = time.perf_counter()
            module.train()
            with seeded_epoch(config.seed, epoch, cuda) as generator:
                train_loss = train_pass(
                    optimizer,
                    epoch_batches(x.shape[0], config.batch_size, generator),
                    lambda rows: masked_loss(module(x[rows]), y[rows], weights),
                    schedule=config.lr_schedule,
                    epoch=epoch,
                    epochs=config.epochs,
                    start_lrs=[config.lr],
                )
            entry: dict[str, Any] = {"epoch": epoch + 1, "train_loss": train_loss}
            if val is not None:
                module.eval()
                with torch.no_grad():
                    entry["val_loss"] = float(masked_loss(module(val[0]), val[1], weights))
            stop = stopper.update(epoch + 1, entry.get("val_loss"), module)
            entry["seconds"] = time.perf_counter() - t0
            history.append(entry)
            if stop:
                break
    stopper.restore(module)
    module.eval()
    metrics: dict[str, dict[str, float]] = {}
    if val is not None:
        with torch.no_grad():
            metrics = tensor_metrics(module(val[0]), val[1], names)
    return FitResult(
        best_epoch=stopper.best_epoch,
        best_val_loss=stopper.best_val if val is not None else None,
        epochs_run=len(history),
        stopped_early=stopper.stop,
        val_metrics=metrics,
        history=history,
        seconds=time.perf_counter() - started,
    )
