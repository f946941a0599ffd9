"""The one checkpoint format of the project: a folder with model.safetensors + model.json.

``model.json`` is a `ModelCard`: the `ModelSpec` that rebuilds the network (architecture,
input size, preprocessing, output names) plus what it was trained on, the randomization spec,
metrics, code version and a history of training steps (pretrain, fine-tune, ...).
``model.safetensors`` holds the state dict. Nothing is ever unpickled, so loading a checkpoint
from someone else is safe.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch
from pydantic import Field, field_validator, model_validator
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from sim2real.agents.model import DrivingNet, ModelSpec
from sim2real.agents.shipped import resolve_checkpoint
from sim2real.common.config import StrictModel, validate_config
from sim2real.common.io import atomic_write_json
from sim2real.common.runs import code_version
from sim2real.common.splitspec import SplitSpec
from sim2real.common.tensorfile import save_tensors

if TYPE_CHECKING:
    from sim2real.agents.ensemble import Predictor

FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
CARD_FILE = "model.json"


class ModelCard(StrictModel):
    """What a checkpoint is and where it came from (saved as model.json)."""

    format_version: int = FORMAT_VERSION
    kind: Literal["perception", "policy"] = "perception"
    spec: ModelSpec = Field(default_factory=ModelSpec)
    trained_on: dict[str, Any] = Field(default_factory=dict)
    """data the weights were fitted on: paths, frame counts, subsample, read report"""
    split: SplitSpec | None = None
    """how that data was cut into train / val / test (None: unknown, or not a recording)"""
    randomization: dict[str, Any] | None = None
    """domain randomization spec of the sim data, when known"""
    metrics: dict[str, Any] = Field(default_factory=dict)
    code_version: dict[str, Any] = Field(default_factory=dict)
    history: list[dict[str, Any]] = Field(default_factory=list)
    """one entry per training step that produced these weights, oldest first"""
    source_size: tuple[int, int] | None = None
    """(height, width) px of the camera frames the weights were fitted on, before the crop
    and resize; filled from ``trained_on`` (its read report's one frame size, its
    ``source_size``, or a policy's camera ``env_config.image_size``) when not given;
    None: unknown"""
    members: list[str] = Field(default_factory=list)
    """an ensemble's member checkpoints, sub-folders of this one, whose outputs it averages
    (`sim2real.agents.ensemble`; such a folder holds no weights of its own); empty: one
    network"""

    @field_validator("members")
    @classmethod
    def _plain_member_names(cls, value: list[str]) -> list[str]:
        bad = [n for n in value if not re.fullmatch(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*", n)]
        if bad:
            raise ValueError(f"members must be sub-folder names, got {bad}")
        if len(set(value)) != len(value):
            raise ValueError(f"members listed twice: {value}")
        if len(value) == 1:
            raise ValueError(f"an ensemble needs at least two members, got {value}")
        return value

    @model_validator(mode="before")
    @classmethod
    def _split_from_trained_on(cls, data: Any) -> Any:
        # cards written before `split` existed kept it as a dict in trained_on, the
        # fine-tuning one with its subsample settings beside the split settings
        if not isinstance(data, dict) or data.get("split") is not None:
            return data
        trained_on = data.get("trained_on")
        old = trained_on.get("split") if isinstance(trained_on, dict) else None
        if not isinstance(old, dict):
            return data
        trained_on = {k: v for k, v in trained_on.items() if k != "split"}
        if "subsample_frames" in old or "subsample_seed" in old:
            subsample = {"frames": old.get("subsample_frames"), "seed": old.get("subsample_seed")}
            trained_on.setdefault("subsample", subsample)
        fields = {k: v for k, v in old.items() if k in SplitSpec.model_fields}
        return {**data, "trained_on": trained_on, "split": fields}

    @model_validator(mode="before")
    @classmethod
    def _source_size_from_data(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("source_size") is None:
            trained_on = data.get("trained_on")
            trained_on = trained_on if isinstance(trained_on, dict) else {}
            report = trained_on.get("read_report")
            sizes = report.get("frame_sizes") if isinstance(report, dict) else None
            env = trained_on.get("env_config")
            if isinstance(sizes, list) and len(sizes) == 1:
                data = {**data, "source_size": sizes[0]}
            elif trained_on.get("source_size") is not None:
                data = {**data, "source_size": trained_on["source_size"]}
            elif isinstance(env, dict) and env.get("image_size") is not None:
                data = {**data, "source_size": env["image_size"]}  # a policy's camera
        return data

    def check_source_size(self, size: tuple[int, int], what: str) -> None:
        """Raise ValueError when frames of `size` (H, W) are not what these weights saw.

        `what` names the frames in the message (a tub path). Crops are in source pixels, so
        a frame of another size would be cut and scaled differently from training.
        """
        if self.source_size is not None and tuple(size) != tuple(self.source_size):
            h, w = self.source_size
            raise ValueError(
                f"{what}: frames are {size[1]}x{size[0]} (WxH) but the network was trained on "
                f"{w}x{h} frames; its crop ({self.spec.preprocessing.crop_top} rows) would cut "
                f"a different part of the view. Record at {w}x{h} (DonkeyCar: IMAGE_W = {w}, "
                f"IMAGE_H = {h} in myconfig.py) or resize the frames first"
            )


def override_mirror_average(model: Predictor, value: bool | None, checkpoint: Any) -> None:
    """Set `model`'s `ModelSpec.mirror_average` to `value` (None: keep the card's); a
    temporal network refuses it in one line naming `checkpoint` and ``--mirror-average``."""
    if value is None:
        return
    if value and model.spec.temporal.enabled:
        raise ValueError(
            f"{checkpoint}: --mirror-average on is for single-frame networks; this one reads "
            f"{model.spec.temporal.setting}"
        )
    model.spec.mirror_average = value
    if hasattr(model, "set_mirror_average"):  # an ensemble (`agents.ensemble`): every member
        model.set_mirror_average(value)


def save_adapted(
    directory: str | Path,
    model: DrivingNet,
    parent: ModelCard,
    *,
    trained_on: dict[str, Any],
    split: SplitSpec | None,
    metrics: dict[str, Any],
    step: dict[str, Any],
    from_scratch: bool = False,
    mirror_average: bool | None = None,
) -> ModelCard:
    """Save `model` (put in eval mode) as adapted from the network `parent` describes: its card
    keeps the parent's kind, randomization and history and appends `step`; `from_scratch` (a
    new network of the parent's architecture) carries neither randomization nor history.
    `mirror_average` (None: the model's own) sets `ModelSpec.mirror_average` first."""
    if mirror_average is not None:
        model.spec.mirror_average = mirror_average
    card = ModelCard(
        kind=parent.kind,
        spec=model.spec,
        trained_on=trained_on,
        split=split,
        randomization=None if from_scratch else parent.randomization,
        metrics=metrics,
        code_version=code_version(),
        history=[*([] if from_scratch else parent.history), step],
    )
    model.eval()
    save_checkpoint(directory, model, card)
    return card


def save_checkpoint(directory: str | Path, model: DrivingNet, card: ModelCard) -> Path:
    """Write `model`'s weights and `card` into `directory` (each file atomically)."""
    directory = Path(directory)
    if model.spec != card.spec:
        raise ValueError("card.spec differs from the model's spec; save the model's own spec")
    directory.mkdir(parents=True, exist_ok=True)
    metadata = {"format": "sim2real", "format_version": str(card.format_version)}
    # save_tensors: the same weights give the same bytes (md5 comparisons mean something)
    save_tensors(directory / WEIGHTS_FILE, model.state_dict(), metadata)
    atomic_write_json(directory / CARD_FILE, card.model_dump(mode="json"))
    return directory


def read_card(directory: str | Path) -> ModelCard:
    """The validated `ModelCard` of checkpoint folder (or shipped name) `directory`."""
    directory = resolve_checkpoint(directory)
    path = directory / CARD_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: {directory} is not a sim2real checkpoint")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(data).__name__}")
    version = data.get("format_version")
    if isinstance(version, int) and version > FORMAT_VERSION:
        raise ValueError(
            f"{path}: format_version {version} is newer than this sim2real reads "
            f"({FORMAT_VERSION}); upgrade sim2real"
        )
    return validate_config(ModelCard, data, source=str(path))


def read_weights(directory: str | Path) -> dict[str, torch.Tensor]:
    """The state dict stored in checkpoint folder `directory` (CPU tensors)."""
    directory = resolve_checkpoint(directory)
    path = directory / WEIGHTS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: checkpoint {directory} has no weights")
    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise ValueError(
            f"{path}: not a readable safetensors file ({exc}); copy the checkpoint folder again "
            "or point at another one"
        ) from None


def check_state_dict(
    model: nn.Module, tensors: dict[str, torch.Tensor], source: str, *, strict: bool = True
) -> None:
    """Raise ValueError naming `source` when `tensors` does not fit `model` by name and shape."""
    expected = model.state_dict()
    problems = []
    if strict:
        # BatchNorm fills a missing num_batches_tracked itself; nothing else may be missing
        missing = [
            k for k in expected if k not in tensors and not k.endswith("num_batches_tracked")
        ]
        if missing:
            problems.append(f"missing {len(missing)} tensor(s), e.g. {missing[:3]}")
    unexpected = [k for k in tensors if k not in expected]
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected tensor(s), e.g. {unexpected[:3]}")
    mismatched = [
        f"{k}: stored {tuple(v.shape)}, model {tuple(expected[k].shape)}"
        for k, v in tensors.items()
        if k in expected and v.shape != expected[k].shape
    ]
    if mismatched:
        problems.append(f"{len(mismatched)} shape mismatch(es), e.g. {mismatched[:3]}")
    if problems:
        raise ValueError(f"{source} does not match the network: " + "; ".join(problems))


def check_one_network(directory: Path, card: ModelCard) -> None:
    """ValueError (one line, naming a member folder) when `card`, the card of checkpoint
    folder `directory`, is an ensemble's: what needs one network cannot take it."""
    if card.members:
        raise ValueError(
            f"{directory} is an ensemble of {len(card.members)} networks ({', '.join(card.members)}"
            f"); this needs one network: pass a member folder, e.g. {directory / card.members[0]}"
        )


def load_checkpoint(
    directory: str | Path,
    *,
    architecture: str | None = None,
    input_shape: tuple[int, int, int] | None = None,
    device: str | torch.device = "cpu",
) -> tuple[DrivingNet, ModelCard]:
    """Rebuild the network of checkpoint `directory` and load its weights; returns (model, card).

    `architecture` / `input_shape` (3, H, W), when given, must match the card, else ValueError.
    The model is returned in eval mode on `device`.
    """
    directory = resolve_checkpoint(directory)
    card = read_card(directory)
    check_one_network(directory, card)
    if architecture is not None and card.spec.architecture != architecture:
        raise ValueError(
            f"checkpoint {directory} is a {card.spec.architecture!r} network, "
            f"expected {architecture!r}"
        )
    if input_shape is not None and tuple(input_shape) != card.spec.input_shape:
        raise ValueError(
            f"checkpoint {directory} takes input {card.spec.input_shape}, "
            f"expected {tuple(input_shape)}"
        )
    tensors = read_weights(directory)
    model = DrivingNet(card.spec)
    check_state_dict(model, tensors, str(directory / WEIGHTS_FILE))
    model.load_state_dict(tensors, strict=False)
    return model.to(device).eval(), card
