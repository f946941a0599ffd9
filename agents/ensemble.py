"""An ensemble checkpoint: K single-frame networks whose outputs are averaged.

On disk an ensemble is an ordinary checkpoint folder whose ``model.json`` lists its members
(`ModelCard.members`) and holds no weights of its own; each member is a normal checkpoint in
a sub-folder (``member-0/``, ``member-1/``, ... with their own cards, histories and ladder
tables)::

    ensemble/
        model.json        the ensemble's card: members, shared spec, metrics, history
        member-0/         model.safetensors + model.json (e.g. fine-tuned from pilotnet-recipe)
        member-1/         ... (fine-tuned from pilotnet-styles)

`EnsembleNet` takes the images every member takes (the members share their crop and input
size; each normalises in its own way inside its network) and returns the mean of the members'
predictions (N, len(outputs)). Each member averages with its mirror image first where its
``spec.mirror_average`` says so, as a single network does: the ensemble card's flag sets every
member's, unless the members' own cards differ (a `calibrate` member, whose offset the average
would cancel, beside mirror-averaged ones), in which case each keeps its own, as it was
fine-tuned and validated; ``--mirror-average on|off`` sets every member's. Everything that predicts
through ``forward`` runs it: ``evaluate`` (offline and ``--sim``), the ONNX export (one graph
running every member) and so the DonkeyCar pilot. `load_predictor` loads a folder as a single
network or an ensemble; `load_checkpoint` (what fine-tuning and ``gap`` use) refuses an
ensemble in one line.

Not supported (one-line errors): temporal members, members with different outputs (names or
order), crop or input size, or camera frame size, and an ensemble as a member.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from sim2real.agents.checkpoint import CARD_FILE, ModelCard, load_checkpoint, read_card
from sim2real.agents.model import DrivingNet, ModelSpec
from sim2real.agents.shipped import resolve_checkpoint
from sim2real.common.io import atomic_write_json

MEMBER_DIR = "member-{}"
"""sub-folder name of member i"""
GEOMETRY = ("crop_top", "crop_bottom", "height", "width")
"""the `Preprocessing` fields members must share (normalisation is inside each network)"""


def member_folder(i: int) -> str:
    """The sub-folder name of member `i` (``member-0``, ...)."""
    return MEMBER_DIR.format(i)


def geometry(spec: ModelSpec) -> dict[str, int]:
    """The `GEOMETRY` fields of `spec`'s preprocessing: what members must share."""
    return {k: getattr(spec.preprocessing, k) for k in GEOMETRY}


def check_members(specs: Sequence[ModelSpec], names: Sequence[str]) -> None:
    """ValueError (one line, naming the member) unless the specs can be averaged: at least
    two, none temporal, the same outputs in the same order, the same crop and input size."""
    if len(specs) < 2:
        raise ValueError(f"an ensemble needs at least two members, got {len(specs)}")
    first, first_name = specs[0], names[0]
    for spec, name in zip(specs, names, strict=True):
        if spec.temporal.enabled:
            raise ValueError(
                f"{name}: a temporal network ({spec.temporal.setting}) cannot be an ensemble "
                "member; members must be single-frame networks"
            )
        if list(spec.outputs) != list(first.outputs):
            raise ValueError(
                f"{name} predicts {spec.outputs} but {first_name} predicts {first.outputs}: "
                "ensemble members must have the same outputs in the same order"
            )
        if geometry(spec) != geometry(first):
            raise ValueError(
                f"{name} crops and resizes frames as {geometry(spec)} but {first_name} as "
                f"{geometry(first)}: ensemble members must take the same input"
            )


class EnsembleNet(nn.Module):
    """Images (N, 3, H, W) float32 in [0, 1] -> the mean of the members' predictions
    (N, len(outputs)); in eval mode each member whose ``spec.mirror_average`` is on predicts
    its mirror average. `mirror_average` sets every member's flag (None: each keeps its own);
    later, set it with `set_mirror_average` (or `checkpoint.override_mirror_average`): the
    flag on ``spec`` only reports. ``spec`` is the first member's, with ``mirror_average`` on
    when every member's is; it gives the input (preprocessing geometry) and outputs, like a
    `DrivingNet`'s."""

    def __init__(self, members: Sequence[DrivingNet], mirror_average: bool | None = None):
        super().__init__()
        check_members([m.spec for m in members], [f"member {i}" for i in range(len(members))])
        self.members = nn.ModuleList(members)
        self.spec = members[0].spec.model_copy(deep=True)
        self.set_mirror_average(mirror_average)

    def set_mirror_average(self, value: bool | None) -> None:
        """Set every member's ``spec.mirror_average`` to `value` (None: keep their own), and
        ``spec.mirror_average`` to whether all of them average."""
        for member in self.members:
            if value is not None:
                member.spec.mirror_average = value
        self.spec.mirror_average = all(m.spec.mirror_average for m in self.members)

    @property
    def outputs(self) -> list[str]:
        return list(self.spec.outputs)

    @property
    def context_names(self) -> list[str]:
        """[]: members are single-frame networks."""
        return []

    def output_index(self, name: str) -> int:
        """Column of output `name` in the predictions."""
        return self.members[0].output_index(name)

    def check_input(self, images: torch.Tensor) -> None:
        self.members[0].check_input(images)

    def forward(self, images: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """Images (N, 3, H, W) float32 in [0, 1] -> mean prediction (N, len(outputs))."""
        if context is not None:
            raise ValueError("an ensemble of single-frame networks takes no context")
        self.check_input(images)
        return torch.stack([m(images) for m in self.members]).mean(dim=0)  # (each its mirror)


Predictor = DrivingNet | EnsembleNet
"""what `load_predictor` returns: anything that predicts through ``forward``"""


def save_ensemble(directory: str | Path, card: ModelCard) -> ModelCard:
    """Write the ensemble `card` as `directory`/model.json, after checking that every member
    it lists is a checkpoint there and that they can be averaged (its members were saved
    first, each with the normal format). Returns the card."""
    directory = Path(directory)
    load_ensemble(directory, card)  # the members load and agree with the card
    atomic_write_json(directory / CARD_FILE, card.model_dump(mode="json"))
    return card


def load_ensemble(directory: Path, card: ModelCard) -> EnsembleNet:
    """The `EnsembleNet` of ensemble folder `directory` whose card is `card` (eval mode).
    ValueError (one line) unless the members and the card agree: outputs, crop and input
    size, and the camera frame size their cards record."""
    members = []
    sizes: dict[str, tuple[int, ...]] = {}  # folder -> camera frame size (H, W) its card gives
    for name in card.members:
        folder = directory / name
        if not (folder / CARD_FILE).is_file():
            raise FileNotFoundError(
                f"{folder}: member {name!r} of the ensemble {directory} is missing (its "
                f"model.json lists {card.members}); copy the whole ensemble folder"
            )
        if read_card(folder).members:
            raise ValueError(f"{folder}: an ensemble cannot be a member of another ensemble")
        model, member_card = load_checkpoint(folder)
        members.append(model)
        if member_card.source_size is not None:
            sizes[str(folder)] = tuple(member_card.source_size)
    check_members([m.spec for m in members], [str(directory / n) for n in card.members])
    if list(card.spec.outputs) != list(members[0].spec.outputs):
        raise ValueError(
            f"{directory / CARD_FILE}: spec.outputs {card.spec.outputs} differ from its "
            f"members' {members[0].spec.outputs}"
        )
    if geometry(card.spec) != geometry(members[0].spec):
        raise ValueError(
            f"{directory / CARD_FILE}: spec.preprocessing {geometry(card.spec)} differs from "
            f"its members' {geometry(members[0].spec)}"
        )
    if card.source_size is not None:
        sizes[str(directory)] = tuple(card.source_size)
    if len(set(sizes.values())) > 1:
        seen = ", ".join(f"{f}: {w}x{h}" for f, (h, w) in sizes.items())
        raise ValueError(
            f"{directory}: an ensemble's networks must see camera frames of one size (WxH), "
            f"its cards say {seen}"
        )
    flags = {m.spec.mirror_average for m in members}
    mirror = card.spec.mirror_average if len(flags) == 1 else None  # differ: each its own
    return EnsembleNet(members, mirror_average=mirror).eval()


def load_predictor(
    directory: str | Path, *, device: str | torch.device = "cpu"
) -> tuple[Predictor, ModelCard]:
    """(network, card) of checkpoint folder (or shipped name) `directory`: a `DrivingNet`,
    or an `EnsembleNet` when its card lists members; eval mode, on `device`."""
    folder = resolve_checkpoint(directory)
    card = read_card(folder)
    if not card.members:
        return load_checkpoint(folder, device=device)
    return load_ensemble(folder, card).to(device), card
