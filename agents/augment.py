"""Training-time image augmentation on whole batches: photometric, small geometric, mirror.

Works on the network's input tensors (after `Preprocessing`), in torch, one batch at a time;
every random draw comes from the caller's ``torch.Generator``. A horizontal mirror negates
the labels that change sign with it (steering, cross-track error, heading error, curvature).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from pydantic import Field
from torch.nn import functional as F

from sim2real.common.config import StrictModel

MIRRORED_LABELS = (
    "user/angle",
    "pilot/angle",
    "sim/cte",
    "sim/heading_error",
    "sim/curvature",
)
"""Labels whose sign flips when the image is mirrored left-right (DonkeyCar + sim keys)."""


class Augmentation(StrictModel):
    """Random image changes during training; every range is symmetric around no change."""

    enabled: bool = True
    brightness: float = Field(0.2, ge=0.0, le=1.0)
    """max additive brightness offset, in [0, 1] intensity units"""
    contrast: float = Field(0.3, ge=0.0, lt=1.0)
    """contrast factor drawn from [1 - contrast, 1 + contrast]"""
    saturation: float = Field(0.3, ge=0.0, lt=1.0)
    """saturation factor drawn from [1 - saturation, 1 + saturation]"""
    channel_gain: float = Field(0.1, ge=0.0, lt=1.0)
    """per-channel gain drawn from [1 - channel_gain, 1 + channel_gain] (colour casts)"""
    noise_std: float = Field(0.02, ge=0.0, le=0.5)
    """std of additive Gaussian pixel noise, in [0, 1] intensity units"""
    blur_prob: float = Field(0.2, ge=0.0, le=1.0)
    """share of frames given a horizontal motion blur (3 or 5 px box)"""
    shift_px: float = Field(3.0, ge=0.0)
    """max translation along x and y, in input pixels"""
    rotate_deg: float = Field(3.0, ge=0.0, le=45.0)
    """max rotation (camera roll), in degrees"""
    flip_prob: float = Field(0.5, ge=0.0, le=1.0)
    """share of frames mirrored left-right (with `mirrored_labels` negated)"""
    mirrored_labels: list[str] = Field(default_factory=lambda: list(MIRRORED_LABELS))
    """labels negated by a mirror; any other label must be mirror-symmetric"""


def _uniform(n: int, half_width: float, generator: torch.Generator) -> torch.Tensor:
    """(n,) draws from U(-half_width, half_width)."""
    return (torch.rand(n, generator=generator) * 2.0 - 1.0) * half_width


def _geometric(x: torch.Tensor, config: Augmentation, generator: torch.Generator) -> torch.Tensor:
    n, _, h, w = x.shape
    angle = _uniform(n, math.radians(config.rotate_deg), generator)
    dx = _uniform(n, config.shift_px, generator)
    dy = _uniform(n, config.shift_px, generator)
    cos, sin = torch.cos(angle), torch.sin(angle)
    # A pixel-space rotation written in affine_grid's normalised [-1, 1] coordinates.
    theta = torch.stack(
        [
            torch.stack([cos, -sin * h / w, 2.0 * dx / w], dim=1),
            torch.stack([sin * w / h, cos, 2.0 * dy / h], dim=1),
        ],
        dim=1,
    ).to(x.device)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _photometric(x: torch.Tensor, config: Augmentation, generator: torch.Generator) -> torch.Tensor:
    n = x.shape[0]

    def factor(half_width: float, *shape: int) -> torch.Tensor:
        return (1.0 + _uniform(n * math.prod(shape), half_width, generator)).view(n, *shape)

    gray = (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]).to(x.dtype)
    sat = factor(config.saturation, 1, 1, 1).to(x.device)
    x = gray + (x - gray) * sat
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = mean + (x - mean) * factor(config.contrast, 1, 1, 1).to(x.device)
    x = x * factor(config.channel_gain, 3, 1, 1).to(x.device)
    x = x + _uniform(n, config.brightness, generator).view(n, 1, 1, 1).to(x.device)
    return x


def _blur(x: torch.Tensor, config: Augmentation, generator: torch.Generator) -> torch.Tensor:
    chosen = torch.rand(x.shape[0], generator=generator) < config.blur_prob
    width = 3 if torch.rand(1, generator=generator).item() < 0.5 else 5
    if not chosen.any():
        return x
    idx = chosen.nonzero().squeeze(1).to(x.device)
    kernel = torch.full((3, 1, 1, width), 1.0 / width, dtype=x.dtype, device=x.device)
    blurred = F.conv2d(
        F.pad(x[idx], (width // 2, width // 2, 0, 0), mode="replicate"), kernel, groups=3
    )
    x = x.clone()
    x[idx] = blurred
    return x


def augment_batch(
    images: torch.Tensor,
    targets: torch.Tensor,
    label_names: Sequence[str],
    generator: torch.Generator,
    config: Augmentation | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Augment a batch: uint8 (N, 3, H, W) images and (N, L) targets named by `label_names`.

    Returns (images (N, 3, H, W) float32 in [0, 1], targets (N, L) float32), new tensors;
    the inputs are not modified. `generator` is a CPU ``torch.Generator``.
    """
    config = config or Augmentation()
    if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(
            f"expected uint8 images (N, 3, H, W), got {tuple(images.shape)} {images.dtype}"
        )
    if targets.shape != (images.shape[0], len(label_names)):
        raise ValueError(
            f"targets {tuple(targets.shape)} do not match {images.shape[0]} images and "
            f"{len(label_names)} label names"
        )
    x = images.float() / 255.0
    y = targets.float().clone()
    if not config.enabled:
        return x, y
    if config.shift_px > 0 or config.rotate_deg > 0:
        x = _geometric(x, config, generator)
    if config.flip_prob > 0:
        flip = torch.rand(x.shape[0], generator=generator) < config.flip_prob
        if flip.any():
            idx = flip.nonzero().squeeze(1)
            x[idx.to(x.device)] = torch.flip(x[idx.to(x.device)], dims=[3])
            columns = [i for i, name in enumerate(label_names) if name in config.mirrored_labels]
            for column in columns:
                y[idx.to(y.device), column] = -y[idx.to(y.device), column]
    if config.blur_prob > 0:
        x = _blur(x, config, generator)
    x = _photometric(x, config, generator)
    if config.noise_std > 0:
        noise = torch.randn(x.shape, generator=generator).to(x.device)
        x = x + noise * config.noise_std
    return x.clamp_(0.0, 1.0), y
