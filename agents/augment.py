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


NOISE_BANK = 8
"""Gaussian noise fields drawn per batch (each frame gets one of them)."""


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

    def mirror_mismatch(self) -> str:
        """ "" when `mirrored_labels` is the default set (what `ModelSpec.mirror_average`
        negates), else a one-line error saying so, for configs that turn the average on."""
        if set(self.mirrored_labels) == set(MIRRORED_LABELS):
            return ""
        return (
            f"mirror_average negates the default mirrored labels {list(MIRRORED_LABELS)}, but "
            f"train.augment.mirrored_labels is {self.mirrored_labels}: turn mirror_average off "
            "or keep the default list"
        )

    def mirror_signs(self, label_names: Sequence[str]) -> torch.Tensor:
        """(L,) float32: -1 for the labels a mirror negates, +1 for the others."""
        return torch.tensor([-1.0 if n in self.mirrored_labels else 1.0 for n in label_names])


def _uniform(n: int, half_width: float, generator: torch.Generator) -> torch.Tensor:
    """(n,) draws from U(-half_width, half_width)."""
    return (torch.rand(n, generator=generator) * 2.0 - 1.0) * half_width


def _geometric(
    x: torch.Tensor, config: Augmentation, flip: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    """Rotate, shift and mirror (where `flip`, (N,) bool) in one resampling pass."""
    n, _, h, w = x.shape
    angle = _uniform(n, math.radians(config.rotate_deg), generator)
    dx = _uniform(n, config.shift_px, generator)
    dy = _uniform(n, config.shift_px, generator)
    cos, sin = torch.cos(angle), torch.sin(angle)
    mirror = 1.0 - 2.0 * flip.float()  # -1: sample x from -x
    # A pixel-space rotation written in affine_grid's normalised [-1, 1] coordinates.
    theta = torch.stack(
        [
            torch.stack([mirror * cos, -mirror * sin * h / w, 2.0 * dx / w], dim=1),
            torch.stack([sin * w / h, cos, 2.0 * dy / h], dim=1),
        ],
        dim=1,
    ).to(x.device)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _photometric(x: torch.Tensor, config: Augmentation, generator: torch.Generator) -> torch.Tensor:
    """Saturation, contrast, channel gain and brightness as one per-frame affine colour map.

    saturation s: gray + s (x - gray) = M_s x with M_s = s I + (1 - s) 1 w^T (w: luma weights);
    contrast c around the frame mean m: c y + (1 - c) m; gain diag(g); brightness + b.
    """
    n, _, h, w = x.shape
    luma = torch.tensor([0.299, 0.587, 0.114])
    sat = 1.0 + _uniform(n, config.saturation, generator)
    contrast = 1.0 + _uniform(n, config.contrast, generator)
    gain = 1.0 + _uniform(3 * n, config.channel_gain, generator).view(n, 3)
    bright = _uniform(n, config.brightness, generator)
    eye = torch.eye(3).expand(n, 3, 3)
    m_sat = sat.view(n, 1, 1) * eye + (1.0 - sat).view(n, 1, 1) * luma.view(1, 1, 3)
    matrix = gain.view(n, 3, 1) * contrast.view(n, 1, 1) * m_sat
    channel_mean = x[:, :3].mean(dim=(2, 3)).unsqueeze(2)  # (n, 3, 1)
    mean_sat = torch.bmm(m_sat.to(x.device), channel_mean)  # (n, 3, 1)
    mean_luma = mean_sat.mean(dim=1, keepdim=True)  # one mean per frame: contrast keeps hue
    offset = gain.to(x.device).view(n, 3, 1) * (1.0 - contrast.to(x.device)).view(n, 1, 1)
    offset = (offset * mean_luma + bright.to(x.device).view(n, 1, 1)).view(n, 3, 1, 1)
    matrix = matrix.to(x.device).view(n, 3, 3, 1, 1)
    # Three broadcast multiply-adds: a batched 3x3 matmul over pixels is slower on CPU. Frames
    # stacked as channels (3k) get the same map (contrast around the first frame's mean).
    parts = []
    for c in range(0, x.shape[1], 3):
        out = offset + matrix[:, :, 0] * x[:, c : c + 1]
        out += matrix[:, :, 1] * x[:, c + 1 : c + 2]
        out += matrix[:, :, 2] * x[:, c + 2 : c + 3]
        parts.append(out)
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)


def _blur(x: torch.Tensor, config: Augmentation, generator: torch.Generator) -> torch.Tensor:
    chosen = torch.rand(x.shape[0], generator=generator) < config.blur_prob
    width = 3 if torch.rand(1, generator=generator).item() < 0.5 else 5
    if not chosen.any():
        return x
    idx = chosen.nonzero().squeeze(1).to(x.device)
    c = x.shape[1]
    kernel = torch.full((c, 1, 1, width), 1.0 / width, dtype=x.dtype, device=x.device)
    blurred = F.conv2d(
        F.pad(x[idx], (width // 2, width // 2, 0, 0), mode="replicate"), kernel, groups=c
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
    the inputs are not modified. `generator` is a CPU ``torch.Generator``. Frames stacked as
    channels, (N, 3k, H, W), are changed alike (one mirror, shift, blur and colour map per
    row; pixel noise drawn for each frame).
    """
    config = config or Augmentation()
    channels = images.shape[1] if images.dim() == 4 else 0
    if images.dtype != torch.uint8 or not channels or channels % 3:
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
    flip = torch.rand(x.shape[0], generator=generator) < config.flip_prob
    if flip.any():
        sign = config.mirror_signs(label_names).to(y.device)
        y = torch.where(flip.view(-1, 1).to(y.device), y * sign, y)
    if config.shift_px > 0 or config.rotate_deg > 0:
        x = _geometric(x, config, flip, generator)
    elif flip.any():
        x = torch.where(flip.view(-1, 1, 1, 1).to(x.device), x.flip(3), x)
    if config.blur_prob > 0:
        x = _blur(x, config, generator)
    x = _photometric(x, config, generator)
    if config.noise_std > 0:
        # A few noise fields per batch, one picked per frame: per-pixel draws for every frame
        # would cost more than the network's forward pass on a small CPU.
        bank = torch.randn((NOISE_BANK, *x.shape[1:]), generator=generator) * config.noise_std
        pick = torch.randint(0, NOISE_BANK, (x.shape[0],), generator=generator)
        x = x.add_(bank.to(x.device)[pick.to(x.device)])
    return x.clamp_(0.0, 1.0), y
