"""Per-stage sim-vs-real gap before and after a fine-tuning run (`finetune --real-unlabeled`).

The parent checkpoint and the fine-tuned one see the same sim frames and the same unlabeled
real frames; `sim2real.experiments.domain_gap.domain_gap` measures each stage for both, so a
user sees whether the features moved toward the real domain (proxy A-distance and MMD^2
falling) or not.
"""

from __future__ import annotations

from typing import Any

import torch

from sim2real.agents.model import DrivingNet
from sim2real.experiments.domain_gap import domain_gap

MEASURES = ("proxy_a_distance", "mmd2")


def gap_before_after(
    parent: DrivingNet,
    tuned: DrivingNet,
    sim_images: torch.Tensor,
    real_images: torch.Tensor,
    *,
    max_frames: int = 500,
    seed: int = 0,
) -> dict[str, dict[str, Any]]:
    """{stage: {"before": {...}, "after": {...}}} of `domain_gap` (sim vs real, uint8 frames
    (N, 3, H, W) and (M, 3, H, W)) for the parent and the fine-tuned network."""
    before = domain_gap(parent, sim_images, real_images, max_frames=max_frames, seed=seed)
    after = domain_gap(tuned, sim_images, real_images, max_frames=max_frames, seed=seed)
    return {name: {"before": before[name], "after": after[name]} for name in before}


def format_before_after(gap: dict[str, dict[str, Any]]) -> str:
    """One line per stage: proxy A-distance and MMD^2, before -> after."""
    lines = ["stage    A-dist before -> after    MMD^2 before -> after"]
    for name, entry in gap.items():
        b, a = entry["before"], entry["after"]
        lines.append(
            f"{name:8s} {b['proxy_a_distance']:6.3f} -> {a['proxy_a_distance']:6.3f}       "
            f"{b['mmd2']:8.4f} -> {a['mmd2']:8.4f}"
        )
    lines.append("A-dist: proxy A-distance of a linear domain classifier (0 chance .. 2 separable)")
    return "\n".join(lines)
