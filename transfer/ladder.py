"""The adaptation ladder: what is trainable on top of `agents.freezing`, least to most capacity.

Rungs (each nameable as ``--freeze NAME``):

- ``gain``: a per-label output gain, every weight frozen (closed-form least squares);
- ``calibrate``: a per-label gain and offset, every weight frozen (closed form);
- ``probe``: the head's last linear layer only (features cached);
- ``head``: the whole head, every encoder stage frozen (features cached; = freeze "all");
- ``top``: the head and the top `top_stages` encoder stages (the lower stages' maps cached);
- ``lpft``: probe first, then everything at `lpft_lr_scale` times the rate (Kumar et al. 2022);
- ``full``: everything (no stage frozen; the same as ``--freeze none``, epochs chosen by CV).

Gains and offsets are folded into the last linear layer, so export, ONNX and the pilot need
nothing new. A rung with frozen lower stages trains on their output computed once
(`ActivationCache`, shared by every rung and fold that freezes the same prefix), with the mirror
as its only augmentation; ``full`` and ``lpft``'s second phase train on images with the full
augmentation through `agents.training.fit`.

``auto`` is a search over this list, not a second mechanism: `sim2real.transfer.ladder_cv`
picks a rung and its epoch count by cross-validation, training each with `train_rung`.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, get_args

import numpy as np
import torch
from pydantic import Field, field_validator
from torch import nn
from torch.utils.data import TensorDataset

from sim2real.agents.augment import Augmentation
from sim2real.agents.calibration import affine_output, fit_affine
from sim2real.agents.freezing import find_encoder, freeze_stages, unfreeze_stages
from sim2real.agents.losses import loss_weights, masked_loss
from sim2real.agents.model import DrivingNet, unit_batches
from sim2real.agents.training import FitResult, TrainConfig, fit, fit_tensors
from sim2real.common.config import StrictModel
from sim2real.transfer.adapter import AUTO, RungName, param_groups

__all__ = ["AUTO", "RUNGS", "LadderConfig", "train_rung"]

RUNGS: tuple[str, ...] = get_args(RungName)
"""every rung, least to most capacity (the 1-SE rule prefers the earlier)"""

RUNG_TEXT = {
    "gain": "per-label output gain, every weight frozen (closed form)",
    "calibrate": "per-label output gain and offset, every weight frozen (closed form)",
    "probe": "the head's last linear layer (features cached)",
    "head": "the whole head, every encoder stage frozen (features cached)",
    "top": "the head and the top encoder stage(s)",
    "lpft": "probe, then everything at a lower rate (LP-FT)",
    "full": "everything, no stage frozen",
}
CLOSED_FORM = ("gain", "calibrate")


def is_rung(freeze: object) -> bool:
    """Whether an adapter's `freeze` value names a ladder rung."""
    return isinstance(freeze, str) and freeze in RUNGS


class LadderConfig(StrictModel):
    """How ``--freeze auto`` searches the ladder (and a named rung picks its epoch count)."""

    rungs: list[RungName] = Field(default_factory=lambda: ["gain", "probe", "head", "top", "full"])
    """rungs `auto` compares (scored in ladder order whatever the order here). `calibrate`
    (gain and offset) is left out by default, though it can be named: an offset fitted on a
    few frames learns that driver's bias (FINDINGS: it hurt across sessions), and CV blocks cut
    from the same frames share that bias, so CV cannot see the cost"""
    cv_max_frames: int = Field(2000, ge=10)
    """above this many training frames, `auto` trains every stage (`--freeze none`) with early
    stopping on the validation block, which is then large: cross-validating every rung would
    cost K full trainings, and the ladder exists for scarce frames"""
    folds: int = Field(5, ge=2)
    """K of the K-fold cross-validation over contiguous time blocks of the training frames"""
    gap: int = Field(2, ge=0)
    """training frames dropped on each side of a held-out block (20 Hz neighbours are twins)"""
    top_stages: int = Field(2, ge=1)
    """encoder stages the ``top`` rung trains (from the top)"""
    lpft_lr_scale: float = Field(0.1, gt=0.0, le=1.0)
    """``lpft``'s second phase trains everything at train.lr times this"""
    one_se: bool = True
    """pick the simplest rung within one standard error of the best (False: the best), with at
    most `one_se_max_frames` training frames"""
    one_se_max_frames: int = Field(200, ge=0)
    """with more training frames than this, `auto` takes the rung with the lowest CV loss: on
    the validation blocks of both real recordings the lowest rung was as good or better at
    500 and 1,000 frames, while at 100 and 200 the 1-SE pick won on one of the two
    (docs/ladder.md, "The 1-SE rule by N")"""

    def uses_one_se(self, frames: int) -> bool:
        """Whether the 1-SE rule picks the rung for a CV over `frames` training frames."""
        return self.one_se and frames <= self.one_se_max_frames

    @field_validator("rungs")
    @classmethod
    def _rungs(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("the ladder needs at least one rung")
        return [r for r in RUNGS if r in set(value)]


def stages_frozen(model: nn.Module, rung: str, config: LadderConfig) -> int:
    """How many encoder stages (from the input) `rung` keeps frozen while it trains."""
    k = len(find_encoder(model).stage_names)
    if rung == "top":
        return max(0, k - config.top_stages)
    return 0 if rung == "full" else k


def check_rung(model: DrivingNet, rung: str) -> None:
    """ValueError unless `rung` is a rung this network can take."""
    if rung not in RUNGS:
        raise ValueError(f"unknown rung {rung!r}; rungs: {', '.join(RUNGS)}")
    if rung in CLOSED_FORM and model.spec.output_activation != "identity":
        raise ValueError(
            f"rung {rung!r} scales outputs, which needs output_activation 'identity'; this "
            f"network has {model.spec.output_activation!r}"
        )


def freeze_for(model: DrivingNet, rung: str, config: LadderConfig) -> list[str]:
    """Freeze what `rung` keeps fixed (stages via `agents.freezing`; for gain, calibrate and
    probe also every head layer but the last linear one); returns the frozen stage names."""
    check_rung(model, rung)
    depth = stages_frozen(model, "probe" if rung == "lpft" else rung, config)
    names = freeze_stages(model, depth)
    if rung in (*CLOSED_FORM, "probe", "lpft"):
        for module in list(model.head)[:-1]:
            for p in module.parameters():
                p.requires_grad_(False)
    return names


class Suffix(nn.Module):
    """The trainable top of a DrivingNet above a frozen prefix: stages after `depth`, then
    pooling and flattening, then the head (its last dropout + linear only with `probe`).
    Shares its parameters with the network, so training it trains the network in place."""

    def __init__(self, model: DrivingNet, depth: int, probe: bool = False) -> None:
        super().__init__()
        encoder = find_encoder(model)
        self.stages = nn.ModuleList(list(encoder.stages.values())[depth:])
        self.pool = encoder.pool
        self.flatten = depth < len(encoder.stage_names)
        self.head = model.head[-2:] if probe and len(model.head) > 2 else model.head
        self.tanh = model.spec.output_activation == "tanh"

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        for stage in self.stages:
            h = stage(h)
        if self.flatten:
            h = torch.flatten(self.pool(h), start_dim=1)
        out = self.head(h)
        return torch.tanh(out) if self.tanh else out


@torch.no_grad()
def prefix_forward(model: DrivingNet, x: torch.Tensor, depth: int, probe: bool) -> torch.Tensor:
    """The frozen prefix's output for images (N, 3, H, W) float32 in [0, 1], eval mode."""
    encoder = find_encoder(model)
    h = model.normalize(x)
    for stage in list(encoder.stages.values())[:depth]:
        h = stage(h)
    if depth == len(encoder.stage_names):
        h = torch.flatten(encoder.pool(h), start_dim=1)
        if probe and len(model.head) > 2:
            h = model.head[:-2](h)
    return h


class ActivationCache:
    """The training frames and, per frozen prefix, its output on them computed once.

    `images` uint8 (N, 3, H, W) and `targets` (N, L) in the model's output order; with the
    augmentation's mirror on, the mirrored frames (signed labels negated) are cached too and
    every training selection gets both. Built on the adapted network before any rung trains,
    so every rung and fold that freezes the same prefix shares one computation.
    """

    def __init__(
        self,
        model: DrivingNet,
        images: torch.Tensor,
        targets: torch.Tensor,
        augment: Augmentation,
        batch_size: int = 256,
    ) -> None:
        self.model = model
        self.images = images
        self.targets = targets.float()
        self.batch_size = batch_size
        names = list(model.spec.outputs)
        self.mirror = augment.enabled and augment.flip_prob > 0
        self.mirrored_targets = self.targets * augment.mirror_signs(names)
        self._cache: dict[tuple[int, bool, bool], torch.Tensor] = {}
        self.seconds = 0.0

    def __len__(self) -> int:
        return self.images.shape[0]

    def _compute(self, depth: int, probe: bool, mirrored: bool) -> torch.Tensor:
        key = (depth, probe, mirrored)
        if key not in self._cache:
            t0 = time.perf_counter()
            self.model.eval()
            device = next(self.model.parameters()).device
            images = self.images.flip(3) if mirrored else self.images
            chunks = [
                prefix_forward(self.model, x, depth, probe)
                for _, x in unit_batches(images, self.batch_size, device)
            ]
            self._cache[key] = torch.cat(chunks)
            self.seconds += time.perf_counter() - t0
        return self._cache[key]

    def rows(
        self, index: np.ndarray, depth: int, probe: bool = False, *, mirror: bool | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(prefix outputs, targets) of the frames `index`, mirrored copies appended when the
        augmentation mirrors (and `mirror` is not False)."""
        idx = torch.as_tensor(index, dtype=torch.long)
        x = [self._compute(depth, probe, False)[idx]]
        y = [self.targets[idx]]
        if self.mirror if mirror is None else mirror:
            x.append(self._compute(depth, probe, True)[idx])
            y.append(self.mirrored_targets[idx])
        device = x[0].device
        return torch.cat(x), torch.cat(y).to(device)


def _closed_form(
    model: DrivingNet,
    cache: ActivationCache,
    train_idx: np.ndarray,
    val_idx: np.ndarray | None,
    offset: bool,
    train: TrainConfig,
) -> tuple[FitResult, list[dict[str, float]]]:
    """Fit gain (and offset) per output on the frames `train_idx` and fold them into the last
    linear layer; the val loss (if `val_idx`) is scored after. No epochs."""
    started = time.perf_counter()
    depth = len(find_encoder(model).stage_names)
    full = Suffix(model, depth).eval()
    names = list(model.spec.outputs)
    x, y = cache.rows(train_idx, depth, mirror=False)
    with torch.no_grad():
        pred = full(x).cpu().double().numpy()
    label = y.cpu().double().numpy()
    fitted = []
    for i, name in enumerate(names):
        gain, bias = fit_affine(pred[:, i], label[:, i], offset=offset)
        affine_output(model, name, gain, bias)
        fitted.append({"output": name, "gain": gain, "offset": bias})
    history: list[dict[str, Any]] = []
    val_loss = None
    if val_idx is not None:
        vx, vy = cache.rows(val_idx, depth, mirror=False)
        with torch.no_grad():
            val_loss = float(masked_loss(full(vx), vy, loss_weights(names, train.loss_weights)))
        history.append({"epoch": 0, "val_loss": val_loss})
    result = FitResult(
        best_epoch=0,
        best_val_loss=val_loss,
        epochs_run=0,
        stopped_early=False,
        val_metrics={},
        history=history,
        seconds=time.perf_counter() - started,
    )
    return result, fitted


def _image_fit(
    model: DrivingNet,
    cache: ActivationCache,
    train_idx: np.ndarray,
    val_idx: np.ndarray | None,
    train: TrainConfig,
    lr: float,
    lr_decay: float,
    out_dir: str | None,
    resume: bool,
) -> FitResult:
    """`agents.training.fit` on the frames `train_idx` (full augmentation), scored on
    `val_idx` each epoch when given (then the best epoch's weights are kept)."""
    idx = torch.as_tensor(train_idx, dtype=torch.long)
    train_set = TensorDataset(cache.images[idx], cache.targets[idx])
    val_set = None
    if val_idx is not None:
        v = torch.as_tensor(val_idx, dtype=torch.long)
        val_set = TensorDataset(cache.images[v], cache.targets[v])
    groups = param_groups(model, lr, lr_decay)
    config = train.model_copy(update={"lr": lr})
    if out_dir is not None:
        return fit(model, train_set, val_set, config, out_dir, param_groups=groups, resume=resume)
    config = config.model_copy(update={"tensorboard": False, "progress": False})
    with tempfile.TemporaryDirectory(prefix="sim2real-cv-") as tmp:
        return fit(model, train_set, val_set, config, tmp, param_groups=groups)


@dataclass
class RungRun:
    """What training one rung did: its phases' FitResults and any fitted gains/offsets."""

    rung: str
    frozen: list[str]
    fits: list[FitResult]
    calibration: list[dict[str, float]] = field(default_factory=list)


def train_rung(
    model: DrivingNet,
    rung: str,
    cache: ActivationCache,
    train_idx: np.ndarray,
    val_idx: np.ndarray | None,
    train: TrainConfig,
    ladder: LadderConfig,
    *,
    epochs: int | None = None,
    probe_epochs: int | None = None,
    lr_decay: float = 1.0,
    out_dir: str | None = None,
    resume: bool = False,
) -> RungRun:
    """Freeze `model` for `rung` and train it in place on the frames `train_idx` of `cache`.

    `epochs` (default train.epochs) bounds training; with `val_idx` each epoch is scored on
    those frames and training stops early by train.patience (the history holds the per-epoch
    validation loss), without it every epoch runs and the last weights stay. ``lpft`` probes
    for `probe_epochs` (default `epochs`) first. `out_dir` (image rungs only) gets `fit`'s
    resume file and TensorBoard scalars; None trains in a temporary folder.
    """
    frozen = freeze_for(model, rung, ladder)
    train = train.model_copy(update={"epochs": epochs or train.epochs})
    if val_idx is None:
        train = train.model_copy(update={"patience": 0})
    if rung in CLOSED_FORM:
        result, fitted = _closed_form(model, cache, train_idx, val_idx, rung == "calibrate", train)
        return RungRun(rung, frozen, [result], fitted)
    names = list(model.spec.outputs)
    depth = stages_frozen(model, "probe" if rung == "lpft" else rung, ladder)
    fits: list[FitResult] = []
    if rung in ("probe", "head", "top", "lpft") and (rung != "top" or depth > 0):
        probe = rung in ("probe", "lpft")
        suffix = Suffix(model, depth, probe=probe)
        x, y = cache.rows(train_idx, depth, probe)
        val = cache.rows(val_idx, depth, probe, mirror=False) if val_idx is not None else None
        phase = train
        if rung == "lpft":  # the probe phase is fixed, not scored
            phase = train.model_copy(update={"epochs": probe_epochs or train.epochs, "patience": 0})
            val = None
        fits.append(fit_tensors(suffix, x, y, val, phase, names, desc=f"{rung} (cached)"))
        if rung != "lpft":
            return RungRun(rung, frozen, fits)
        unfreeze_stages(model, "all")
        for p in model.head.parameters():
            p.requires_grad_(True)
        frozen = []
    lr = train.lr * (ladder.lpft_lr_scale if rung == "lpft" else 1.0)
    fits.append(_image_fit(model, cache, train_idx, val_idx, train, lr, lr_decay, out_dir, resume))
    return RungRun(rung, frozen, fits)
