"""Feature alignment with unlabeled target frames: the config, a CORAL loss, mixed batches.

Users hold far more unlabeled real frames (any recording, the rest of a tub) than labelled
ones. Two ways to use them, each optional (`AlignmentConfig`):

- AdaBN (Li et al. 2016): every BatchNorm's running statistics re-estimated on the unlabeled
  frames (`sim2real.transfer.adapter.adabn`; fine-tuning does it before any stage is frozen,
  pretraining after training);
- CORAL (Sun and Saenko, "Deep CORAL", 2016): an extra loss term, the distance between the
  feature covariances of source frames (sim, or labelled real) and unlabeled real frames, on
  the output of every chosen encoder stage (`Encoder.forward_stages`), each stage's map
  average-pooled over h and w first, as `sim2real gap` measures it (`agents.encoders.pool_stage`).

`MixedBatchLoss` is the `agents.training.BatchLoss` that puts it together in one forward pass
per batch: the training batch, optionally a batch of extra labelled frames from another domain
(co-training's sim frames, with a learnt per-domain output gain and offset, see
`sim2real.transfer.cotrain`), and optionally a batch of unlabeled target frames for CORAL.
One forward pass keeps BatchNorm's batch statistics those of the mixed batch. This lives in
agents because pretraining uses it too; reading the frames is `sim2real.transfer.alignment`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from pydantic import Field, field_validator
from torch import nn

from sim2real.agents.augment import Augmentation, augment_batch
from sim2real.agents.encoders import pool_stage
from sim2real.agents.fourier_style import MAX_BETA, restyle
from sim2real.agents.freezing import frozen_stages
from sim2real.agents.losses import loss_weights as weight_vector
from sim2real.agents.losses import masked_loss
from sim2real.agents.model import DrivingNet
from sim2real.common.config import StrictModel


class AlignmentConfig(StrictModel):
    """Unlabeled real frames and how they align the features; saved with the run."""

    unlabeled: list[str] = Field(default_factory=list, validate_default=True)
    """real tubs, folders of tubs or CSV folders (labels, if any, are ignored; at least one)"""
    max_frames: int | None = Field(3000, ge=4)
    """use a reproducible block subsample of at most this many unlabeled frames (None: all)"""
    adabn: bool = True
    """re-estimate every BatchNorm's statistics on the unlabeled frames before training"""
    coral_weight: float = Field(1.0, ge=0.0)
    """weight of the CORAL term in the loss (0: AdaBN only)"""
    coral_stages: list[str] | None = None
    """encoder stages whose (pooled) outputs CORAL aligns (None: every trainable stage)"""
    target_share: float = Field(0.5, gt=0.0, le=1.0)
    """unlabeled frames per batch, as a share of the source batch size"""
    span: tuple[float, float] = (0.0, 1.0)
    """the fraction (start, end) of each recording (per session, in time order) read as
    unlabeled frames: (0, 0.6) keeps out fine-tuning's validation and test blocks (REAL_SPLIT)
    of a session of 800+ frames; (0, 0.65) keeps out the test block only, as the validation
    block starts at n - 0.35 n - 40 (its first 19 of 1,743 frames on usi-track-a are in)"""
    fda_beta: float | None = Field(None, ge=0.0, le=MAX_BETA)
    """pretraining only: Fourier domain adaptation (`sim2real.agents.fourier_style`) of
    `fda_share` of the sim training frames toward random unlabeled frames, the amplitude swapped
    at |k| < floor(fda_beta * min(H, W)) cycles per image (None: off; the paper's 0.01-0.09)"""
    fda_share: float = Field(0.5, gt=0.0, le=1.0)
    """share of each batch's sim frames restyled when `fda_beta` is set (drawn per frame)"""

    @field_validator("unlabeled")
    @classmethod
    def _some(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("alignment needs at least one unlabeled real path (--real-unlabeled)")
        return value

    @field_validator("span")
    @classmethod
    def _span(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not 0.0 <= value[0] < value[1] <= 1.0:
            raise ValueError(f"span must be 0 <= start < end <= 1, got {list(value)}")
        return value


def coral(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Deep CORAL loss of features source (N, d) and target (M, d): the squared Frobenius
    distance of their sample covariances over 4 d^2 (Sun and Saenko 2016, eq. 1). N, M >= 2."""
    if source.dim() != 2 or target.dim() != 2 or source.shape[1] != target.shape[1]:
        raise ValueError(
            f"CORAL needs (N, d) and (M, d) features, got {tuple(source.shape)} and "
            f"{tuple(target.shape)}"
        )
    if source.shape[0] < 2 or target.shape[0] < 2:
        raise ValueError("CORAL needs at least 2 frames per domain")
    d = source.shape[1]
    diff = torch.cov(source.T.float()) - torch.cov(target.T.float())
    return diff.pow(2).sum() / (4.0 * d * d)


def forward_with_stages(
    model: DrivingNet, x: torch.Tensor
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """(predictions (N, L), {stage: output}) of images x (N, 3, H, W) float in [0, 1], in one
    pass: the same predictions as ``model(x)``."""
    model.check_input(x)
    stages = model.encoder.forward_stages(model.normalize(x))
    last = stages[model.encoder.stage_names[-1]]
    out = model.head(torch.flatten(model.encoder.pool(last), start_dim=1))
    if model.spec.output_activation == "tanh":
        out = torch.tanh(out)
    return out, stages


@dataclass
class LabelledStream:
    """Extra labelled frames drawn in shuffled passes: images (N, 3, H, W) uint8, targets
    (N, L) float32 in the model's output order (NaN: no label)."""

    images: torch.Tensor
    targets: torch.Tensor


class FrameSampler:
    """Endless shuffled passes over N frames with a seeded generator: `take(k)` -> indices."""

    def __init__(self, n: int, seed: int) -> None:
        if n < 1:
            raise ValueError("no frames to sample from")
        self.n = n
        self.generator = torch.Generator().manual_seed(seed)
        self.order = torch.randperm(n, generator=self.generator)
        self.position = 0

    def take(self, k: int) -> torch.Tensor:
        parts, left = [], k
        while left > 0:
            if self.position >= self.n:
                self.order = torch.randperm(self.n, generator=self.generator)
                self.position = 0
            part = self.order[self.position : self.position + left]
            self.position += len(part)
            left -= len(part)
            parts.append(part)
        return torch.cat(parts)

    def state(self) -> dict[str, Any]:
        """Where the passes stand (for a resume file: tensors and ints only)."""
        return {
            "generator": self.generator.get_state(),
            "order": self.order.clone(),
            "position": self.position,
        }

    def load_state(self, state: dict[str, Any]) -> None:
        """Go on from `state` (`state()` of a sampler over the same N frames)."""
        if len(state["order"]) != self.n:
            raise ValueError(f"a sampler over {len(state['order'])} frames, not {self.n}")
        self.generator.set_state(state["generator"])
        self.order, self.position = state["order"].clone(), int(state["position"])


class MixedBatchLoss(nn.Module):
    """A training batch's loss with frames of other domains mixed into the same forward pass.

    loss = share * MSE(batch) + (1 - share) * MSE(gain * pred + offset on extra frames)
           + coral_weight * sum over `coral_stages` of CORAL(source rows, target rows)

    - `extra` (co-training): `extra_per_batch` labelled frames of another domain per batch
      (augmented as the batch is), scored through a learnt per-output gain and offset
      (`domain_affine`; starts at 1, 0) so the network's own output keeps the scale of the
      batch's labels (a human's joystick) while the other domain (an expert's steering) may
      have its own; `share` is the batch's weight in the loss.
    - `target` (alignment): `target_per_batch` unlabeled frames per batch; CORAL between the
      source rows (batch and extra frames) and these, on each named stage's pooled output.
    - `style` (Fourier domain adaptation, `sim2real.agents.fourier_style`): each batch frame
      is, with probability `style_share`, given the low-frequency amplitude (window
      `style_beta`) of a style frame drawn in shuffled passes and augmented as the batch is
      (so the batch's colour jitter survives the swap), before the forward pass.

    The module's parameters (the affine) must be given to the optimizer.
    """

    def __init__(
        self,
        outputs: Sequence[str],
        loss_weights: dict[str, float],
        *,
        extra: LabelledStream | None = None,
        extra_per_batch: int = 0,
        share: float = 1.0,
        domain_affine: bool = True,
        target: torch.Tensor | None = None,
        target_per_batch: int = 0,
        coral_weight: float = 0.0,
        coral_stages: Sequence[str] = (),
        style: torch.Tensor | None = None,
        style_beta: float = 0.0,
        style_share: float = 0.0,
        augment: Augmentation | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if not 0.0 < share <= 1.0:
            raise ValueError(f"share must be in (0, 1], got {share}")
        if extra is not None and (extra_per_batch < 1 or share >= 1.0):
            raise ValueError("extra frames need extra_per_batch >= 1 and share < 1")
        if target is not None and target_per_batch < 2:
            raise ValueError("CORAL needs target_per_batch >= 2")
        self.outputs = list(outputs)
        self.register_buffer("weights", weight_vector(self.outputs, loss_weights))
        self.extra, self.extra_per_batch, self.share = extra, extra_per_batch, share
        n_out = len(self.outputs)
        self.gain = nn.Parameter(torch.ones(n_out), requires_grad=domain_affine)
        self.offset = nn.Parameter(torch.zeros(n_out), requires_grad=domain_affine)
        self.target, self.target_per_batch = target, target_per_batch
        self.coral_weight, self.coral_stages = coral_weight, list(coral_stages)
        if style is not None and not 0.0 < style_share <= 1.0:
            raise ValueError(f"style_share must be in (0, 1], got {style_share}")
        self.style, self.style_beta, self.style_share = style, style_beta, style_share
        self.augment = augment or Augmentation()
        self.generator = torch.Generator().manual_seed(seed + 7)
        self.extra_sampler = FrameSampler(len(extra.images), seed + 1) if extra else None
        self.target_sampler = FrameSampler(len(target), seed + 2) if target is not None else None
        self.style_sampler = FrameSampler(len(style), seed + 3) if style is not None else None
        self.last_terms: dict[str, float] = {}
        """the latest batch's loss terms (for logs and tests)"""

    def _samplers(self) -> dict[str, FrameSampler]:
        named = {
            "extra": self.extra_sampler,
            "target": self.target_sampler,
            "style": self.style_sampler,
        }
        return {name: sampler for name, sampler in named.items() if sampler is not None}

    def resume_state(self) -> dict[str, Any]:
        """What a resumed run needs to go on as the interrupted one would have (`fit` saves
        it in its resume file): the domain affine and where every random draw stands."""
        return {
            "affine": {k: v.detach().cpu().clone() for k, v in self.state_dict().items()},
            "generator": self.generator.get_state(),
            "samplers": {name: s.state() for name, s in self._samplers().items()},
        }

    def load_resume_state(self, state: dict[str, Any]) -> None:
        """Continue from `resume_state()` of the same loss (same frames, same seed)."""
        samplers = self._samplers()
        if set(state["samplers"]) != set(samplers):
            raise ValueError(
                f"the saved loss drew {sorted(state['samplers'])} frames, this one "
                f"{sorted(samplers)}"
            )
        with torch.no_grad():
            self.load_state_dict(state["affine"])
        self.generator.set_state(state["generator"])
        for name, sampler in samplers.items():
            sampler.load_state(state["samplers"][name])

    def restyle(self, x: torch.Tensor) -> torch.Tensor:
        """Batch x (B, 3, H, W) in [0, 1] with a `style_share` of its rows restyled toward
        style frames (`fourier_style.restyle`), clamped to [0, 1]; a new tensor."""
        if self.style is None or self.style_sampler is None:
            return x
        chosen = torch.rand(x.shape[0], generator=self.generator) < self.style_share
        k = int(chosen.sum())
        if k == 0:
            return x
        idx = self.style_sampler.take(k)
        xs, _ = augment_batch(
            self.style[idx],
            torch.zeros(k, len(self.outputs)),
            self.outputs,
            self.generator,
            self.augment,
        )
        rows = chosen.nonzero().squeeze(1).to(x.device)
        out = x.clone()
        out[rows] = restyle(x[rows], xs.to(x.device), self.style_beta).clamp_(0.0, 1.0)
        return out

    def forward(self, model: DrivingNet, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        device = x.device
        if self.gain.device != device:
            self.to(device)  # in place: the optimizer keeps the same parameters
        if self.style is not None:
            x = self.restyle(x)
        parts, n_batch = [x], x.shape[0]
        n_extra = n_target = 0
        if self.extra is not None and self.extra_sampler is not None:
            idx = self.extra_sampler.take(self.extra_per_batch)
            xe, ye = augment_batch(
                self.extra.images[idx],
                self.extra.targets[idx],
                self.outputs,
                self.generator,
                self.augment,
            )
            parts.append(xe.to(device))
            n_extra = len(idx)
        use_coral = self.target is not None and self.coral_weight > 0 and self.coral_stages
        if use_coral and self.target_sampler is not None:
            idx = self.target_sampler.take(self.target_per_batch)
            xt, _ = augment_batch(
                self.target[idx],
                torch.zeros(len(idx), len(self.outputs)),
                self.outputs,
                self.generator,
                self.augment,
            )
            parts.append(xt.to(device))
            n_target = len(idx)
        if len(parts) == 1:
            return masked_loss(model(x), y, self.weights)
        pred, stages = forward_with_stages(model, torch.cat(parts))
        loss = masked_loss(pred[:n_batch], y, self.weights)
        terms = {"batch": loss.item()}
        if n_extra:
            pe = pred[n_batch : n_batch + n_extra] * self.gain + self.offset
            extra_loss = masked_loss(pe, ye.to(device), self.weights)
            terms["extra"] = extra_loss.item()
            loss = self.share * loss + (1.0 - self.share) * extra_loss
        if n_target:
            n_source = n_batch + n_extra
            align = sum(
                coral(pool_stage(stages[s][:n_source]), pool_stage(stages[s][n_source:]))
                for s in self.coral_stages
            )
            terms["coral"] = float(align.detach())
            loss = loss + self.coral_weight * align
        self.last_terms = terms
        return loss


def trainable_stages(model: DrivingNet) -> list[str]:
    """Encoder stages with at least one trainable parameter, from the input: those
    `agents.freezing.frozen_stages` does not list."""
    frozen = set(frozen_stages(model))
    return [name for name in model.encoder.stage_names if name not in frozen]


def coral_stages(model: DrivingNet, config: AlignmentConfig) -> list[str]:
    """The stages CORAL aligns: `config.coral_stages` (checked), or every trainable stage."""
    names = list(model.encoder.stage_names)
    if config.coral_stages is None:
        return trainable_stages(model)
    unknown = [s for s in config.coral_stages if s not in names]
    if unknown:
        raise ValueError(f"coral_stages {unknown} unknown; this encoder has {', '.join(names)}")
    return list(config.coral_stages)
