"""Pretrained checkpoints shipped inside the package, addressed by name.

A shipped network is an ordinary checkpoint folder (``model.safetensors`` + ``model.json``)
under ``agents/pretrained/<name>/`` with a ``README.md`` card: its first paragraph says what
the network is for, and it lists the exact commands that reproduce it. Nothing is downloaded:
the folders are package data.

`resolve_checkpoint` is the one place a ``--checkpoint`` value becomes a folder; every reader
of checkpoints (`sim2real.agents.checkpoint.read_card`, `read_weights`, `load_checkpoint`)
goes through it, so a name works wherever a folder does. An existing path always wins over a
shipped name of the same spelling.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PRETRAINED_DIR = Path(__file__).resolve().parent / "pretrained"
"""Where the shipped checkpoint folders live (package data)."""
CARD_README = "README.md"


def pretrained_dir() -> Path:
    """The folder of shipped checkpoints (``PRETRAINED_DIR``, read at call time so tests can
    point it at a temporary registry)."""
    return PRETRAINED_DIR


def shipped_names(root: Path | None = None) -> list[str]:
    """Names of the shipped checkpoints (sub-folders holding a model.json), sorted."""
    from sim2real.agents.checkpoint import CARD_FILE

    root = pretrained_dir() if root is None else root
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / CARD_FILE).is_file())


def _shipped_list(root: Path | None = None) -> str:
    names = shipped_names(root)
    return ", ".join(names) if names else "none ship with this installation"


def resolve_checkpoint(reference: str | os.PathLike[str]) -> Path:
    """The checkpoint folder `reference` names: an existing folder, or a shipped name.

    Raises ValueError when `reference` is a file (a checkpoint is a folder), and
    FileNotFoundError naming the shipped checkpoints when it is neither a folder nor a name.
    """
    path = Path(reference).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise ValueError(
            f"{path} is a file; a checkpoint is a folder holding model.json and "
            f"model.safetensors: pass {path.parent} (or a shipped name: {_shipped_list()})"
        )
    text = os.fspath(reference)
    is_name = bool(text) and os.sep not in text and "/" not in text and not text.startswith(".")
    if is_name:
        candidate = pretrained_dir() / text
        if text in shipped_names():
            return candidate
        raise FileNotFoundError(
            f"checkpoint {text!r} not found: it is neither a folder nor a shipped network "
            f"(shipped: {_shipped_list()}; `sim2real models` lists them)"
        )
    raise FileNotFoundError(
        f"checkpoint folder {path} not found (shipped networks, usable by name: {_shipped_list()})"
    )


def checkpoint_reference(reference: str | os.PathLike[str]) -> str:
    """How a card records the checkpoint `reference` names (a fine-tuned card's parent): a
    shipped network by its name, which `resolve_checkpoint` turns back into its folder in any
    installation (its package path differs between venvs and machines); any other folder by
    its absolute path. Raises as `resolve_checkpoint` does."""
    folder = resolve_checkpoint(reference).resolve()
    if folder.parent == pretrained_dir().resolve() and folder.name in shipped_names():
        return folder.name
    return str(folder)


@dataclass(frozen=True)
class ShippedModel:
    """One shipped checkpoint as `sim2real models` lists it."""

    name: str
    path: Path
    architecture: str
    input_shape: tuple[int, int, int]
    """(3, H, W) network input"""
    source_size: tuple[int, int] | None
    """(H, W) px of the camera frames it was trained on (None: not recorded)"""
    outputs: list[str]
    frames: int | None
    """training frames (sum of the recorded splits' train parts; None: not recorded)"""
    purpose: str
    """first paragraph of the card README"""


def _train_frames(trained_on: dict) -> int | None:
    frames = trained_on.get("frames")
    if isinstance(frames, int):
        return frames
    if isinstance(frames, dict) and isinstance(frames.get("train"), int):
        return int(frames["train"])
    return None


def read_purpose(folder: Path) -> str:
    """First paragraph (not a heading) of `folder`'s README.md, joined into one line."""
    path = folder / CARD_README
    if not path.is_file():
        return ""
    lines: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        text = line.strip()
        if text.startswith("#") and not lines:
            continue
        if not text:
            if lines:
                break
            continue
        lines.append(text)
    return " ".join(lines)


def describe_shipped(root: Path | None = None) -> list[ShippedModel]:
    """Every shipped checkpoint with its card's facts, sorted by name."""
    from sim2real.agents.checkpoint import read_card

    root = pretrained_dir() if root is None else root
    models = []
    for name in shipped_names(root):
        folder = root / name
        card = read_card(folder)
        models.append(
            ShippedModel(
                name=name,
                path=folder,
                architecture=card.spec.architecture,
                input_shape=card.spec.input_shape,
                source_size=card.source_size,
                outputs=list(card.spec.outputs),
                frames=_train_frames(card.trained_on),
                purpose=read_purpose(folder),
            )
        )
    return models
