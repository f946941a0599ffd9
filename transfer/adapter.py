"""The transfer adapter: take a sim-trained checkpoint and prepare it for real data.

Steps, each a function so that tests and sweeps can call them one by one:

1. `reheaded` - the network for the real label set (e.g. steering and throttle only), the
   encoder's weights unchanged; the head's hidden layer and the output rows of labels both
   sets share are kept (``heads="keep"``) or everything in the head starts afresh
   (``heads="reinit"``).
2. `adabn` - optionally re-estimate every BatchNorm's running statistics on real frames in
   one pass (Li et al. 2016); nothing else changes.
3. `apply_freezing` - freeze the lower stages (``requires_grad=False`` and frozen BatchNorm,
   via `sim2real.agents.freezing`); ``bn="train"`` leaves the BatchNorm layers of frozen stages
   trainable (statistics and affine), the cheap "BN-only" adaptation.
4. `param_groups` - AdamW groups over trainable parameters only (so weight decay never touches
   a frozen weight), with discriminative learning rates (ULMFiT): the head gets ``lr``, the
   top trainable stage ``lr * lr_decay``, the next one down ``lr * lr_decay**2``, ...
5. `unfreeze_phases` - gradual unfreezing: after the first phase, each later phase unfreezes
   the next frozen stage from the top and trains for its own number of epochs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, get_args

import torch
from pydantic import Field, field_validator
from torch import nn

from sim2real.agents.freezing import (
    FrozenBatchNorm2d,
    find_encoder,
    freeze_stages,
    resolve_stages,
)
from sim2real.agents.model import STEERING, THROTTLE, DrivingNet, seeded_model, unit_batches
from sim2real.common.config import StrictModel

BATCHNORM_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")


RungName = Literal["gain", "calibrate", "probe", "head", "top", "lpft", "full"]
"""the adaptation ladder's rungs, least to most capacity (see `sim2real.transfer.ladder`)"""
AUTO = "auto"


class AdapterConfig(StrictModel):
    """How a pretrained network is adapted to real data; recorded in the fine-tuned card."""

    freeze: int | Literal["auto", "all", "none"] | RungName | list[str] = AUTO
    """"auto": the ladder rung and epoch count picked by K-fold cross-validation on the
    training frames; a rung (gain, calibrate, probe, head, top, lpft, full: trained for the
    epochs CV picks); or encoder stages kept frozen, early stopping on the validation block:
    the first k, "all", "none", or stage names"""
    bn: Literal["frozen", "adabn", "train"] = "frozen"
    """BatchNorm of the frozen stages: fixed sim statistics ("frozen"), statistics of every
    BatchNorm re-estimated on the real training frames before training, then fixed in frozen
    stages ("adabn"), or left trainable, statistics and affine ("train"). BatchNorm of
    trainable stages always trains."""
    heads: Literal["keep", "reinit"] = "keep"
    """keep the pretrained head (rows of shared labels), or start the head from random init"""
    outputs: list[str] = Field(default_factory=lambda: [STEERING, THROTTLE])
    """label names the fine-tuned network predicts (the real data's labels)"""
    lr_decay: float = Field(1.0, gt=0.0, le=1.0)
    """discriminative lr: each stage further from the head gets lr times this once more"""
    unfreeze_epochs: list[int] = Field(default_factory=list)
    """gradual unfreezing: epochs of each later phase, each unfreezing one more stage from
    the top ([] = one phase, no unfreezing)"""

    @field_validator("outputs")
    @classmethod
    def _outputs(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one output is needed")
        if len(set(value)) != len(value):
            raise ValueError(f"duplicate outputs in {value}")
        return value

    @field_validator("unfreeze_epochs")
    @classmethod
    def _positive(cls, value: list[int]) -> list[int]:
        if any(e < 1 for e in value):
            raise ValueError(f"every phase needs at least 1 epoch, got {value}")
        return value


def _last_linear(head: nn.Module) -> nn.Linear:
    linears = [m for m in head.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError("the network's head has no linear layer")
    return linears[-1]


def reheaded(
    model: DrivingNet, outputs: Sequence[str], heads: str = "keep", *, seed: int = 0
) -> DrivingNet:
    """A new network for `outputs` with `model`'s encoder weights (BatchNorm statistics too).

    ``heads="keep"``: every head layer is copied except the output layer, whose rows are
    copied for labels in both output lists and freshly initialised for new labels.
    ``heads="reinit"``: the whole head is freshly initialised. New weights are drawn with
    torch's default init under `seed`, without touching the global random state. The new
    network is in `model`'s mode (train/eval) and on its device.
    """
    if heads not in ("keep", "reinit"):
        raise ValueError(f"heads must be 'keep' or 'reinit', got {heads!r}")
    spec = type(model.spec).model_validate({**model.spec.model_dump(), "outputs": list(outputs)})
    new = seeded_model(spec, seed)
    new.encoder.load_state_dict(model.encoder.state_dict())
    if heads == "keep":
        old_last, new_last = _last_linear(model.head), _last_linear(new.head)
        skip = {name for name, m in new.head.named_modules() if m is new_last}
        old_state = model.head.state_dict()
        kept = {
            k: v
            for k, v in old_state.items()
            if k.rsplit(".", 1)[0] not in skip and k in new.head.state_dict()
        }
        new.head.load_state_dict(kept, strict=False)
        with torch.no_grad():
            for i, name in enumerate(spec.outputs):
                if name in model.spec.outputs:
                    j = model.spec.outputs.index(name)
                    new_last.weight[i].copy_(old_last.weight[j])
                    new_last.bias[i].copy_(old_last.bias[j])
    new.train(model.training)
    return new.to(next(model.parameters()).device)


def batchnorm_layers(model: nn.Module) -> list[nn.BatchNorm2d]:
    """Every trainable-statistics BatchNorm2d of `model` (frozen ones are not included)."""
    return [m for m in model.modules() if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d)]


@torch.no_grad()
def adabn(model: DrivingNet, images: torch.Tensor, *, batch_size: int = 256) -> int:
    """Re-estimate every BatchNorm's running mean/var on `images` uint8 (N, 3, H, W).

    One pass in train mode with a cumulative average (momentum None), so the result is the
    mean over batches of per-batch statistics; weights, biases and every other buffer are
    unchanged, and the model is returned to eval mode. Returns the number of layers updated.
    Call before `apply_freezing` (frozen BatchNorm layers keep their statistics).
    """
    if images.dim() != 4 or images.dtype != torch.uint8 or images.shape[0] == 0:
        raise ValueError(f"AdaBN needs uint8 images (N, 3, H, W), got {tuple(images.shape)}")
    layers = batchnorm_layers(model.encoder)
    if not layers:
        return 0
    momenta = [bn.momentum for bn in layers]
    device = next(model.parameters()).device
    try:
        for bn in layers:
            bn.reset_running_stats()
            bn.momentum = None
            bn.train()
        for rows, x in unit_batches(images, batch_size, device):
            if x.shape[0] < 2 and rows.start > 0:
                break  # a single frame has no variance; skip a trailing batch of one
            model.encoder(model.normalize(x))
    finally:
        for bn, momentum in zip(layers, momenta, strict=True):
            bn.momentum = momentum
        model.eval()
    return len(layers)


def apply_freezing(model: DrivingNet, config: AdapterConfig) -> list[str]:
    """Freeze the stages `config.freeze` names; returns their names (from the input).

    With ``bn="train"`` the BatchNorm layers of frozen stages stay trainable.
    """
    if isinstance(config.freeze, str) and config.freeze in (AUTO, *get_args(RungName)):
        raise ValueError(
            f"freeze {config.freeze!r} is a ladder choice: sim2real.transfer.ladder applies it"
        )
    names = resolve_stages(model, config.freeze)
    freeze_stages(model, names)
    if config.bn == "train":
        encoder = find_encoder(model)
        for name in names:
            _thaw_batchnorm(encoder.stages[name])
    return names


def _thaw_batchnorm(module: nn.Module) -> None:
    for child_name, child in module.named_children():
        if isinstance(child, FrozenBatchNorm2d):
            setattr(module, child_name, child.to_batchnorm())
        else:
            _thaw_batchnorm(child)


def param_groups(
    model: DrivingNet, lr: float, lr_decay: float = 1.0, weight_decay: float | None = None
) -> list[dict[str, Any]]:
    """AdamW param groups over the trainable parameters only, with discriminative lrs.

    Head (and anything outside the encoder stages): `lr`; trainable encoder stages from the
    top: lr * lr_decay, lr * lr_decay**2, ... Each group is named ("head", "stage5", ...).
    """
    encoder = find_encoder(model)
    groups: list[dict[str, Any]] = []
    in_stages: set[int] = set()
    depth = 0
    for name in reversed(encoder.stage_names):
        stage_params = list(encoder.stages[name].parameters())
        in_stages.update(id(p) for p in stage_params)
        trainable = [p for p in stage_params if p.requires_grad]
        if not trainable:
            continue
        depth += 1
        groups.append({"name": name, "params": trainable, "lr": lr * lr_decay**depth})
    rest = [p for p in model.parameters() if p.requires_grad and id(p) not in in_stages]
    if rest:
        groups.insert(0, {"name": "head", "params": rest, "lr": lr})
    if weight_decay is not None:
        for group in groups:
            group["weight_decay"] = weight_decay
    return groups


def unfreeze_phases(frozen: Sequence[str], config: AdapterConfig) -> list[list[str]]:
    """Stages to unfreeze at the start of each phase: [] for the first, then one per phase
    from the top of the frozen stages down (as many phases as ``unfreeze_epochs``)."""
    if len(config.unfreeze_epochs) > len(frozen):
        raise ValueError(
            f"unfreeze_epochs has {len(config.unfreeze_epochs)} phases but only "
            f"{len(frozen)} stage(s) are frozen ({', '.join(frozen) or 'none'})"
        )
    top_down = list(reversed(frozen))
    return [[]] + [[top_down[i]] for i in range(len(config.unfreeze_epochs))]
