"""Temporal context for the driving network: the previous action as an input to the head, or
the previous frame stacked with the current one.

A single frame shows where the car is, not what it is already doing: the steering command in
flight (the car acts on it after its latency), how fast it goes (the throttle it was given).
With ``model.temporal.previous_action`` the network also reads the action the car applied
at the previous step, (N, 2) [steering, throttle] in [-1, 1], concatenated with the encoder's
features before the head.

The copycat problem (Wen et al. 2020; Codevilla et al. 2019): consecutive labels are nearly
equal, so a network that reads the previous action can learn to repeat it and ignore the
image. Two things work against it here: the input is the *applied* action, which under the
recording's noise injection differs from the clean label by 0.2-0.6 on about half the frames
(``sim/applied_steering``), and `action_dropout` replaces it in training by the fallback, the
action of a car at rest (0, 0), which is also what the first frame of a session gets.

With ``model.temporal.previous_frame_gap: k`` the network instead sees the frame k steps back
(sim and car both run at 20 Hz, so k steps are k * 50 ms on both) beside the current one: its
input is (N, 6, H, W), the current frame's 3 channels then the earlier frame's, and it forms
either both normalised frames or the current one and the difference (`frame_input`) in its
first step. Motion (speed, yaw rate) then comes from the images alone, with no fed-back
output. A run's first k frames use themselves as the earlier frame (zero difference).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
from pydantic import Field, model_validator

from sim2real.agents.augment import Augmentation, augment_batch
from sim2real.common.config import StrictModel

PREVIOUS_ACTION = ("previous/user/angle", "previous/user/throttle")
"""Names of the context columns: the applied [steering, throttle] of the previous step."""
PREVIOUS_STEERING = PREVIOUS_ACTION[0]
"""The context column that changes sign when a frame is mirrored left-right."""
FALLBACK_ACTION = (0.0, 0.0)
"""The previous action where there is none (a session's first frame): a car at rest."""


class Temporal(StrictModel):
    """Temporal inputs of the network; the defaults are the single-frame network."""

    previous_action: bool = False
    """read the previous step's applied [steering, throttle] (N, 2) beside the image"""
    action_dropout: float = Field(0.3, ge=0.0, le=1.0)
    """training only: share of frames whose previous action is replaced by FALLBACK_ACTION,
    against copying it (see the module doc)"""
    previous_frame_gap: int = Field(0, ge=0, le=20)
    """read also the frame this many steps back (20 Hz: k * 50 ms), stacked as channels; 0: no
    earlier frame"""
    frame_input: Literal["stack", "difference"] = "stack"
    """with previous_frame_gap: the encoder sees [current, earlier] ("stack") or [current,
    current - earlier] ("difference"), each normalised as the preprocessing says (stack was
    chosen on sim validation, docs/temporal.md; the two drove alike)"""

    @model_validator(mode="after")
    def _one_kind(self) -> Temporal:
        if self.previous_action and self.previous_frame_gap:
            raise ValueError(
                "model.temporal: previous_action and previous_frame_gap cannot both be on; "
                "choose one"
            )
        return self

    @property
    def enabled(self) -> bool:
        """True when the network takes any input besides the current image."""
        return self.previous_action or self.previous_frame_gap > 0

    @property
    def setting(self) -> str:
        """The temporal field set, for messages: "model.temporal.previous_action" or
        "model.temporal.previous_frame_gap = k" ("" when single-frame)."""
        if self.previous_frame_gap > 0:
            return f"model.temporal.previous_frame_gap = {self.previous_frame_gap}"
        return "model.temporal.previous_action" if self.previous_action else ""

    @property
    def frames(self) -> int:
        """Frames the network's image input stacks: 1, or 2 with previous_frame_gap."""
        return 2 if self.previous_frame_gap > 0 else 1

    @property
    def context_names(self) -> list[str]:
        """Names of the context columns the network takes, in order ([] when single-frame)."""
        return list(PREVIOUS_ACTION) if self.previous_action else []


def check_context(
    temporal: Temporal, context: torch.Tensor | None, batch: int
) -> torch.Tensor | None:
    """`context` checked against what `temporal` needs: None for a single-frame network,
    else (batch, len(context_names)); ValueError with one line saying what is wrong."""
    names = temporal.context_names
    if not names:
        if context is not None:
            raise ValueError(
                "this network is single-frame (model.temporal off) but was given a previous "
                "action; drop it, or use a checkpoint trained with model.temporal.previous_action"
            )
        return None
    if context is None:
        raise ValueError(
            f"this network reads the previous action {names} (model.temporal.previous_action); "
            "pass it as context (N, 2) [steering, throttle], (0, 0) at a session's first frame"
        )
    if context.dim() != 2 or tuple(context.shape) != (batch, len(names)):
        raise ValueError(
            f"context must be ({batch}, {len(names)}) {names}, got {tuple(context.shape)}"
        )
    return context


def drop_actions(context: torch.Tensor, p: float) -> torch.Tensor:
    """`context` (N, C) with each row replaced by FALLBACK_ACTION with probability `p` (a new
    tensor; draws from torch's global generator, as nn.Dropout does)."""
    if p <= 0.0:
        return context
    keep = torch.rand(context.shape[0], 1, device=context.device) >= p
    fallback = torch.tensor(FALLBACK_ACTION, dtype=context.dtype, device=context.device)
    return torch.where(keep, context, fallback)


def dataset_context(names: Sequence[str], dataset: Any, part: str) -> torch.Tensor | None:
    """The context (N, len(names)) float32 of `dataset` (its `.context`, as
    `open_training_data(temporal=...)` sets it) for a network taking context `names`; None
    for a single-frame network. ValueError naming the `part` ("training", "validation")
    when the dataset lacks it."""
    if not names:
        return None
    context = getattr(dataset, "context", None)
    if context is None:
        raise ValueError(
            f"the {part} data carries no previous action {list(names)} for this temporal "
            "network (open it with open_training_data(..., temporal=model.temporal))"
        )
    if context.dim() != 2 or tuple(context.shape) != (len(dataset), len(names)):
        raise ValueError(
            f"the {part} data's context is {tuple(context.shape)}, expected "
            f"({len(dataset)}, {len(names)})"
        )
    return context.float()


def augment_with_context(
    images: torch.Tensor,
    targets: torch.Tensor,
    context: torch.Tensor,
    label_names: Sequence[str],
    generator: torch.Generator,
    config: Augmentation,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`augment_batch` with the context (B, C) riding along as extra label columns, so a
    mirrored frame's previous steering changes sign with its label: (x, targets, context)."""
    names = [*label_names, *PREVIOUS_ACTION[: context.shape[1]]]
    mirrored = [*config.mirrored_labels, PREVIOUS_STEERING]
    config = config.model_copy(update={"mirrored_labels": mirrored})
    joined = torch.cat([targets.float(), context.to(targets.device).float()], dim=1)
    x, y = augment_batch(images, joined, names, generator, config)
    n = len(label_names)
    return x, y[:, :n], y[:, n:]


class FramePairs:
    """Frames (N, 3, H, W) uint8 and each one's earlier frame, served stacked as channels:
    ``pairs[rows]`` is (B, 6, H, W) uint8 [current, earlier], made on demand (no copy of the
    frames is kept). Indexable like the image tensor it stands in for (`shape`, `len`)."""

    def __init__(self, images: torch.Tensor, previous: torch.Tensor) -> None:
        if previous.shape != (images.shape[0],):
            raise ValueError(
                f"previous indexes {tuple(previous.shape)} do not match {images.shape[0]} frames"
            )
        if len(previous) and (previous.min() < 0 or previous.max() >= images.shape[0]):
            raise ValueError("previous indexes must point at frames of the same set")
        self.images = images
        self.previous = previous.long()

    @property
    def shape(self) -> torch.Size:
        n, c, h, w = self.images.shape
        return torch.Size((n, 2 * c, h, w))

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, rows: Any) -> torch.Tensor:
        return torch.cat([self.images[rows], self.images[self.previous[rows]]], dim=1)


def frame_inputs(dataset: Any, images: torch.Tensor) -> torch.Tensor | FramePairs:
    """`images` (N, 3, H, W) of `dataset`, paired with their earlier frames where the dataset
    carries ``previous_index`` (N,) (set by `sim2real.transfer.temporal.attach_previous_frames`
    for a network with `previous_frame_gap`); else `images` unchanged."""
    previous = getattr(dataset, "previous_index", None)
    return images if previous is None else FramePairs(images, previous)
