"""Freeze the lower stages of an encoder, so that they stay frozen whatever the caller does.

Two traps, both handled here: (1) weight decay moves parameters that have no gradient when an
optimizer is handed all parameters, so optimizers get `trainable_parameters` only; (2) SB3 calls
``policy.set_training_mode(True)`` before each update, which undoes a plain ``.eval()`` on
BatchNorm layers, so frozen stages get `FrozenBatchNorm2d` modules that use their stored
statistics in train mode too (as timm's ``freeze`` does).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from sim2real.agents.encoders import Encoder


class FrozenBatchNorm2d(nn.Module):
    """BatchNorm2d with fixed statistics and affine parameters, in train and eval mode alike.

    Everything is a buffer (nothing is trained); the state-dict keys are those of
    ``nn.BatchNorm2d`` (weight, bias, running_mean, running_var, num_batches_tracked), so
    checkpoints of frozen and unfrozen networks are interchangeable.
    """

    def __init__(self, num_features: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

    @classmethod
    def from_batchnorm(cls, bn: nn.BatchNorm2d) -> FrozenBatchNorm2d:
        """A frozen copy of `bn` (its current affine parameters and running statistics)."""
        frozen = cls(bn.num_features, bn.eps)
        with torch.no_grad():
            if bn.affine:
                frozen.weight.copy_(bn.weight)
                frozen.bias.copy_(bn.bias)
            if bn.running_mean is not None and bn.running_var is not None:
                frozen.running_mean.copy_(bn.running_mean)
                frozen.running_var.copy_(bn.running_var)
            if bn.num_batches_tracked is not None:
                frozen.num_batches_tracked.copy_(bn.num_batches_tracked)
        return frozen.to(bn.running_mean.device if bn.running_mean is not None else "cpu")

    def to_batchnorm(self) -> nn.BatchNorm2d:
        """A trainable BatchNorm2d with this module's parameters and statistics."""
        bn = nn.BatchNorm2d(self.num_features, self.eps).to(self.running_mean.device)
        with torch.no_grad():
            bn.weight.copy_(self.weight)
            bn.bias.copy_(self.bias)
            bn.running_mean.copy_(self.running_mean)
            bn.running_var.copy_(self.running_var)
            bn.num_batches_tracked.copy_(self.num_batches_tracked)
        return bn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # training=False: the stored statistics are used and never updated, whatever the mode.
        return F.batch_norm(
            x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps
        )

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}"


def find_encoder(obj: nn.Module) -> Encoder:
    """The `Encoder` of a DrivingNet, an SB3 extractor/policy, or the encoder itself."""
    if isinstance(obj, Encoder):
        return obj
    encoder = getattr(obj, "encoder", None)
    if isinstance(encoder, Encoder):
        return encoder
    for module in obj.modules():
        if isinstance(module, Encoder):
            return module
    raise ValueError(f"{type(obj).__name__} holds no sim2real Encoder")


def resolve_stages(model: nn.Module, freeze: int | str | Sequence[str]) -> list[str]:
    """Stage names selected by `freeze`, in order from the input.

    `freeze`: an int k (the first k stages; 0 = none; a digit string works too), "all", "none",
    or a sequence of stage names. Unknown names and k beyond the stage count are errors.
    """
    names = list(find_encoder(model).stage_names)
    if isinstance(freeze, str):
        if freeze == "all":
            return names
        if freeze == "none":
            return []
        freeze = int(freeze) if freeze.isdigit() else [freeze]
    if isinstance(freeze, bool):
        raise ValueError(f"freeze must be an int, 'all', 'none' or stage names, got {freeze!r}")
    if isinstance(freeze, int):
        if not 0 <= freeze <= len(names):
            raise ValueError(
                f"cannot freeze {freeze} stages: the encoder has {len(names)} ({', '.join(names)})"
            )
        return names[:freeze]
    unknown = [name for name in freeze if name not in names]
    if unknown:
        raise ValueError(f"unknown stage(s) {unknown}; this encoder has {', '.join(names)}")
    return [name for name in names if name in set(freeze)]


def _swap_batchnorm(module: nn.Module, freeze: bool) -> None:
    for child_name, child in module.named_children():
        if freeze and isinstance(child, nn.BatchNorm2d):
            setattr(module, child_name, FrozenBatchNorm2d.from_batchnorm(child))
        elif not freeze and isinstance(child, FrozenBatchNorm2d):
            setattr(module, child_name, child.to_batchnorm())
        else:
            _swap_batchnorm(child, freeze)


def freeze_stages(model: nn.Module, names: int | str | Sequence[str]) -> list[str]:
    """Freeze the named encoder stages of `model` in place; returns the frozen stage names.

    `names` is anything `resolve_stages` takes (2, "all", ["stage1"]). Their parameters get
    ``requires_grad=False`` and their BatchNorm layers become
    `FrozenBatchNorm2d` (statistics fixed in train mode too). Build optimizers afterwards,
    over `trainable_parameters(model)`.
    """
    return _set_frozen(model, names, frozen=True)


def unfreeze_stages(model: nn.Module, names: int | str | Sequence[str]) -> list[str]:
    """Undo `freeze_stages` for the named stages (gradual unfreezing); returns their names."""
    return _set_frozen(model, names, frozen=False)


def _set_frozen(model: nn.Module, names: int | str | Sequence[str], frozen: bool) -> list[str]:
    encoder = find_encoder(model)
    names = resolve_stages(encoder, names if isinstance(names, int | str) else list(names))
    for name in names:
        stage = encoder.stages[name]
        _swap_batchnorm(stage, freeze=frozen)
        for param in stage.parameters():
            param.requires_grad_(not frozen)
    return names


def frozen_stages(model: nn.Module) -> list[str]:
    """Names of the encoder stages whose parameters are all frozen."""
    encoder = find_encoder(model)
    return [
        name
        for name, stage in encoder.stages.items()
        if all(not p.requires_grad for p in stage.parameters())
    ]


def trainable_parameters(model: nn.Module) -> list[nn.Parameter]:
    """Parameters with ``requires_grad``: what an optimizer should be given."""
    return [p for p in model.parameters() if p.requires_grad]
