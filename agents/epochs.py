"""The pieces of an epoch every training loop here shares: per-epoch seeds, shuffled batches,
the learning-rate schedule, one optimisation pass, and early stopping on a validation loss.

`agents.training.fit` (images, augmentation, resume files) and `agents.training.fit_tensors`
(cached features) are both built from these, so the two loops cannot drift apart: the same
seed and data give the same batches, dropout masks, learning rates and stopping epoch.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import nn


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of epoch `epoch` (0-based) of a run seeded `seed`: its shuffle and
    augmentation draw from it, its dropout from it + 1."""
    return (seed * 1_000_003 + epoch * 7_919 + 17) % (2**63)


def cuda_indices(device: torch.device) -> list[int]:
    """The CUDA device indices whose generators `seeded_epoch` forks for work on `device`."""
    return [device.index or 0] if device.type == "cuda" else []


@contextlib.contextmanager
def seeded_epoch(seed: int, epoch: int, cuda: Sequence[int] = ()) -> Iterator[torch.Generator]:
    """Yield the epoch's generator (shuffling, augmentation); inside, torch's global generator
    (dropout) is forked and seeded for the epoch, and restored after; `cuda`: the CUDA device
    indices whose generators are forked too."""
    generator = torch.Generator().manual_seed(epoch_seed(seed, epoch))
    with torch.random.fork_rng(devices=list(cuda)):
        torch.manual_seed(epoch_seed(seed, epoch) + 1)
        yield generator


def epoch_batches(n: int, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    """Row indices of `n` rows, shuffled by `generator`, in batches of `batch_size`; a last
    batch of one row is dropped (BatchNorm cannot train on a single frame)."""
    order = torch.randperm(n, generator=generator)
    batches = [order[i : i + batch_size] for i in range(0, n, batch_size)]
    if len(batches) > 1 and len(batches[-1]) < 2:
        batches.pop()
    return batches


def lr_factor(schedule: str, step: int, total_steps: int) -> float:
    """Multiplier of the start learning rate at batch `step` (0-based) of `total_steps`."""
    if schedule == "constant":
        return 1.0
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * min(step / max(total_steps, 1), 1.0)))
    raise ValueError(f"unknown lr_schedule {schedule!r}: use 'constant' or 'cosine'")


def train_pass(
    optimizer: torch.optim.Optimizer,
    batches: Sequence[torch.Tensor],
    loss_of: Callable[[torch.Tensor], torch.Tensor],
    *,
    schedule: str,
    epoch: int,
    epochs: int,
    start_lrs: Sequence[float],
    shown: Iterable[torch.Tensor] | None = None,
) -> float:
    """One epoch of optimisation: for each batch of row indices set every group's rate by the
    schedule (`epoch` of `epochs`, groups starting at `start_lrs`), step on ``loss_of(rows)``.
    `shown` iterates the same batches with a progress bar (its postfix shows the loss).
    Returns the mean training loss per row."""
    total, seen = 0.0, 0
    steps = len(batches)
    for b, rows in enumerate(batches if shown is None else shown):
        factor = lr_factor(schedule, epoch * steps + b, epochs * steps)
        for group, start_lr in zip(optimizer.param_groups, start_lrs, strict=True):
            group["lr"] = start_lr * factor
        loss = loss_of(rows)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        value = loss.item()
        total += value * len(rows)
        seen += len(rows)
        if shown is not None and hasattr(shown, "set_postfix"):
            shown.set_postfix(loss=f"{value:.4f}")
    return total / max(seen, 1)


def state_copy(model: nn.Module) -> dict[str, torch.Tensor]:
    """A detached copy of `model`'s state dict (to restore the best epoch's weights)."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@dataclass
class EarlyStopping:
    """The best validation loss so far, its epoch and weights, and when to stop.

    An epoch is better when its loss beats the best by more than `min_delta`; after
    `patience` epochs in a row that are not (0: never), training stops. Without a validation
    loss every epoch counts as the best and no weights are kept (the last ones stay).
    """

    patience: int
    min_delta: float = 0.0
    best_val: float = math.inf
    best_epoch: int = 0
    """1-based; 0 before the first epoch"""
    bad_epochs: int = 0
    best_state: dict[str, torch.Tensor] | None = None

    def update(self, epoch: int, val_loss: float | None, model: nn.Module) -> bool:
        """Record epoch `epoch` (1-based) ending with `val_loss`; True: stop training now."""
        if val_loss is None or val_loss < self.best_val - self.min_delta:
            self.best_val = math.inf if val_loss is None else val_loss
            self.best_epoch = epoch
            self.bad_epochs = 0
            self.best_state = None if val_loss is None else state_copy(model)
        else:
            self.bad_epochs += 1
        return self.stop

    @property
    def stop(self) -> bool:
        """Whether `patience` epochs in a row were not better."""
        return bool(self.patience and self.bad_epochs >= self.patience)

    def restore(self, model: nn.Module) -> None:
        """Load the best epoch's weights into `model` (when any were kept)."""
        if self.best_state is not None:
            model.load_state_dict(self.best_state)
