"""The driving network: a registered encoder plus a small head, normalisation inside.

A `DrivingNet` takes camera images as (N, 3, H, W) float32 in [0, 1] (what SB3's
``preprocess_obs`` gives for uint8 image spaces, and ``uint8 / 255``) and returns one value
per named output (with ``model.temporal``, also the previous action: see
`sim2real.agents.temporal`): steering and throttle (``user/angle``, ``user/throttle``, the DonkeyCar
tub keys) and optionally sim-only auxiliary targets such as ``sim/cte`` and
``sim/heading_error`` that help pretraining. Normalisation with the spec's mean/std happens
inside the network, so a checkpoint needs nothing but its card to be used.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Literal

import numpy as np
import torch
from pydantic import Field, field_validator, model_validator
from torch import nn

from sim2real.agents.augment import Augmentation
from sim2real.agents.encoders import Encoder, build_encoder, check_architecture
from sim2real.agents.preprocessing import NORMALIZATIONS, Preprocessing
from sim2real.agents.temporal import Temporal, check_context, drop_actions
from sim2real.common.config import StrictModel

STEERING = "user/angle"
THROTTLE = "user/throttle"


class ModelSpec(StrictModel):
    """Everything needed to rebuild a network's structure (weights live in safetensors)."""

    architecture: str = "pilotnet"
    """registered encoder name (see sim2real.agents.encoders.ENCODERS)"""
    preprocessing: Preprocessing = Field(default_factory=Preprocessing)
    """crop/resize/normalisation; its height and width are the network's input size"""
    outputs: list[str] = Field(default_factory=lambda: [STEERING, THROTTLE])
    """label names predicted by the head, in order"""
    hidden: int = Field(100, ge=0)
    """width of the head's hidden layer (0: a single linear layer)"""
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    """dropout before each linear layer of the head"""
    output_activation: Literal["identity", "tanh"] = "identity"
    """applied to every output after the head (tanh: a SAC policy's squashed actions)"""
    temporal: Temporal = Field(default_factory=Temporal)
    """inputs beside the image (default none: the single-frame network)"""
    mirror_average: bool = False
    """at inference (eval mode), predict (f(x) + s * f(mirror x)) / 2, with s = -1 for the
    outputs a left-right mirror negates (`mirror_signs`: steering, cross-track error, ...) and
    +1 for the others: the prediction is exactly mirror-equivariant, for 2x the inference.
    Inside `forward`, so evaluate, predict, the ONNX export and the pilot all run it; training
    (train mode) does not"""

    @field_validator("architecture")
    @classmethod
    def _known_architecture(cls, value: str) -> str:
        return check_architecture(value)

    @field_validator("outputs")
    @classmethod
    def _unique_outputs(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one output is needed")
        duplicates = sorted({name for name in value if value.count(name) > 1})
        if duplicates:
            raise ValueError(f"duplicate outputs: {duplicates}")
        return value

    @model_validator(mode="after")
    def _mirror_single_frame(self) -> ModelSpec:
        if self.mirror_average and self.temporal.enabled:
            raise ValueError(
                f"mirror_average is for single-frame networks; this one reads "
                f"{self.temporal.setting}: turn one of them off"
            )
        return self

    @model_validator(mode="after")
    def _previous_action_is_an_output(self) -> ModelSpec:
        # the network is fed its own previous [steering, throttle] (rollouts, the pilot)
        if self.temporal.previous_action and not {STEERING, THROTTLE} <= set(self.outputs):
            raise ValueError(
                f"temporal.previous_action feeds the network its own previous [steering, "
                f"throttle]: outputs must include {STEERING!r} and {THROTTLE!r}, not {self.outputs}"
            )
        return self

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """The network's input shape (3, height, width); (6, height, width) with an earlier
        frame stacked (`temporal.previous_frame_gap`)."""
        c, h, w = self.preprocessing.input_shape
        return (c * self.temporal.frames, h, w)

    def mirror_signs(self) -> torch.Tensor:
        """(len(outputs),) float32: -1 for the outputs a left-right mirror negates, else +1
        (the default `Augmentation`'s `mirrored_labels`, what training mirrors with)."""
        return Augmentation().mirror_signs(self.outputs)


PER_IMAGE_MIN_STD = 0.02
"""Floor of a frame's own std under per-image normalisation ([0, 1] units, about 5 grey
levels), so a uniform frame is not blown up into noise."""


class InputNormalization(nn.Module):
    """Images (N, 3, H, W) float32 in [0, 1] -> the encoder's input: minus the per-channel
    `mean`, over `std` ("fixed"), or minus each frame's own mean, over its own std
    ("per_image"); the three are a `Preprocessing`'s fields of those names."""

    def __init__(
        self, mean: Sequence[float], std: Sequence[float], normalization: str = "fixed"
    ) -> None:
        super().__init__()
        if normalization not in NORMALIZATIONS:
            allowed = " or ".join(map(repr, NORMALIZATIONS))
            raise ValueError(f"normalization must be {allowed}, got {normalization!r}")
        self.per_image = normalization == "per_image"
        # Not persistent: the card is the one source of truth for normalisation.
        mean_t = torch.tensor(tuple(mean), dtype=torch.float32).view(1, 3, 1, 1)
        std_t = torch.tensor(tuple(std), dtype=torch.float32).view(1, 3, 1, 1)
        self.register_buffer("mean", mean_t, persistent=False)
        self.register_buffer("std", std_t, persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if not self.per_image:
            return (images - self.mean) / self.std
        var, mean = torch.var_mean(images, dim=(1, 2, 3), correction=0, keepdim=True)
        return (images - mean) / var.sqrt().clamp_min(PER_IMAGE_MIN_STD)


def build_head(feature_dim: int, n_outputs: int, hidden: int, dropout: float) -> nn.Sequential:
    """Features (N, feature_dim) -> outputs (N, n_outputs): [dropout, linear, ReLU] + linear."""
    layers: list[nn.Module] = []
    width = feature_dim
    if hidden > 0:
        layers += [nn.Dropout(dropout), nn.Linear(width, hidden), nn.ReLU(inplace=True)]
        width = hidden
    layers += [nn.Dropout(dropout), nn.Linear(width, n_outputs)]
    return nn.Sequential(*layers)


class DrivingNet(nn.Module):
    """Images (N, 3, H, W) float32 in [0, 1] (and, with `spec.temporal`, context (N, C)
    float32, or the earlier frame stacked: (N, 6, H, W)) -> predictions (N, len(outputs))."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.spec = spec.model_copy(deep=True)
        self.encoder: Encoder = build_encoder(spec.architecture, spec.input_shape)
        n_context = len(spec.temporal.context_names)
        self.head = build_head(
            self.encoder.feature_dim + n_context, len(spec.outputs), spec.hidden, spec.dropout
        )
        pre = spec.preprocessing
        self.input_norm = InputNormalization(pre.mean, pre.std, pre.normalization)
        # not persistent: rebuilt from the card's outputs, like the normalisation
        self.register_buffer("mirror_sign", spec.mirror_signs().view(1, -1), persistent=False)

    @property
    def outputs(self) -> list[str]:
        return list(self.spec.outputs)

    @property
    def context_names(self) -> list[str]:
        """Names of the context columns `forward` takes ([] for a single-frame network)."""
        return self.spec.temporal.context_names

    def output_index(self, name: str) -> int:
        """Column of output `name` in the network's predictions."""
        try:
            return self.spec.outputs.index(name)
        except ValueError:
            known = self.spec.outputs
            raise KeyError(f"output {name!r} not in this network's outputs {known}") from None

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) float32 in [0, 1] -> normalised as the spec's preprocessing says.
        With an earlier frame, (N, 6, H, W) [current, earlier] -> each frame normalised, then
        [current, earlier] or [current, current - earlier] (`temporal.frame_input`)."""
        if self.spec.temporal.frames == 1:
            return self.input_norm(images)
        current, earlier = self.input_norm(images[:, :3]), self.input_norm(images[:, 3:])
        if self.spec.temporal.frame_input == "difference":
            earlier = current - earlier
        return torch.cat([current, earlier], dim=1)

    def check_input(self, images: torch.Tensor) -> None:
        """Fail clearly when `images` is not (N, C, H, W) at this network's input shape."""
        expected = self.spec.input_shape
        if images.dim() != 4 or tuple(images.shape[1:]) != expected:
            raise ValueError(
                f"expected images of shape (N, {expected[0]}, {expected[1]}, {expected[2]}), "
                f"got {tuple(images.shape)}"
            )

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Images (N, 3, H, W) float32 in [0, 1] -> encoder features (N, feature_dim)."""
        return self.encoder(self.normalize(images))

    def forward(self, images: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """Images (N, 3, H, W) float32 in [0, 1] -> predictions (N, len(outputs)).

        context: (N, len(context_names)) float32, the previous action for a temporal network
        (in training, rows are dropped to the fallback with `temporal.action_dropout`); None
        for a single-frame one. ValueError otherwise."""
        self.check_input(images)
        context = check_context(self.spec.temporal, context, images.shape[0])
        if self.spec.mirror_average and not self.training:
            return self.mirror_averaged(images)
        return self.head_outputs(self.features(images), context)

    def mirror_averaged(self, images: torch.Tensor) -> torch.Tensor:
        """(f(x) + s * f(mirror x)) / 2 for images (N, 3, H, W): one encoder pass over the
        2N frames; s: `ModelSpec.mirror_signs`. A mirrored frame gives exactly s times the
        prediction of the frame itself."""
        n = images.shape[0]
        both = self.head_outputs(self.features(torch.cat([images, images.flip(3)])), None)
        return (both[:n] + both[n:] * self.mirror_sign) * 0.5

    def head_outputs(self, features: torch.Tensor, context: torch.Tensor | None) -> torch.Tensor:
        """Encoder features (N, feature_dim) and checked context (N, C) or None -> outputs."""
        if context is not None:
            if self.training:
                context = drop_actions(context, self.spec.temporal.action_dropout)
            features = torch.cat([features, context.to(features.dtype)], dim=1)
        out = self.head(features)
        return torch.tanh(out) if self.spec.output_activation == "tanh" else out


def seeded_model(spec: ModelSpec, seed: int) -> DrivingNet:
    """A fresh `DrivingNet(spec)` whose weight init is drawn from `seed`, leaving torch's
    global random state untouched (the same seed always gives the same weights)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return DrivingNet(spec)


def check_driving_outputs(outputs: Sequence[str], what: str) -> None:
    """ValueError naming `what` ("a rollout", "closed-loop driving") unless `outputs` hold both
    STEERING and THROTTLE, which anything that drives the car needs."""
    if STEERING not in outputs or THROTTLE not in outputs:
        raise ValueError(
            f"{what} needs outputs {STEERING!r} and {THROTTLE!r}; this network has {list(outputs)}"
        )


@torch.no_grad()
def predict_rollout(
    model: DrivingNet, images: torch.Tensor, starts: np.ndarray, batch_size: int = 256
) -> np.ndarray:
    """A temporal network's predictions (N, len(outputs)) float64 over consecutive uint8
    frames (N, 3, H, W), each fed the network's own previous [steering, throttle] (clipped to
    [-1, 1]), as the pilot part and the closed-loop driver do; FALLBACK_ACTION where
    `starts` (N,) bool marks a session's first frame (or one after a gap). Offline scores
    with the *recorded* previous action would leak the label (the copycat problem)."""
    from sim2real.agents.temporal import FALLBACK_ACTION

    names = model.spec.outputs
    check_driving_outputs(names, "a rollout")
    if len(starts) != images.shape[0]:
        raise ValueError(f"starts has {len(starts)} entries for {images.shape[0]} frames")
    model.eval()
    if images.shape[0] == 0:
        return np.zeros((0, len(names)))
    device = next(model.parameters()).device
    features = torch.cat([model.features(x) for _, x in unit_batches(images, batch_size, device)])
    columns = [names.index(STEERING), names.index(THROTTLE)]
    fallback = torch.tensor([FALLBACK_ACTION], dtype=torch.float32, device=device)
    previous, out = fallback, []
    for i in range(features.shape[0]):
        row = model.head_outputs(features[i : i + 1], fallback if starts[i] else previous)
        previous = row[:, columns].float().clamp(-1.0, 1.0)
        out.append(row.double().cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, len(names)))


def unit_batches(
    images: torch.Tensor, batch_size: int, device: torch.device | str
) -> Iterator[tuple[slice, torch.Tensor]]:
    """Batches of uint8 images (N, 3, H, W) as the network takes them: (rows, x) with
    `rows` the slice of `images` and x (B, 3, H, W) float32 in [0, 1] on `device`."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    for start in range(0, images.shape[0], batch_size):
        rows = slice(start, start + batch_size)
        yield rows, images[rows].to(device).float() / 255.0


@torch.no_grad()
def predict(
    model: DrivingNet,
    images: torch.Tensor,
    batch_size: int = 256,
    context: torch.Tensor | None = None,
) -> np.ndarray:
    """Predictions (N, len(outputs)) float64 for uint8 images (N, 3, H, W), eval mode;
    `context` (N, C): a temporal network's other inputs, row for row (see `forward`)."""
    model.eval()
    device = next(model.parameters()).device
    out = [
        model(x, None if context is None else context[rows].to(device)).double().cpu()
        for rows, x in unit_batches(images, batch_size, device)
    ]
    return torch.cat(out).numpy() if out else np.zeros((0, len(model.spec.outputs)))
