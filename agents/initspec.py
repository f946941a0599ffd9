"""Starting a network from a checkpoint's weights: one check that the config's spec fits them.

`pretrain --init` and a policy's ``init_checkpoint`` both load someone else's weights into a
network built from their own config; `check_init_spec` says, in one line, which spec field
differs (down to e.g. ``model.preprocessing.normalization``), so a mismatch never trains a
network on inputs its weights were not fitted to.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from sim2real.agents.model import ModelSpec

WEIGHT_FIELDS = (
    "architecture",
    "preprocessing",
    "outputs",
    "hidden",
    "output_activation",
    "temporal",
)
"""`ModelSpec` fields that fix the weights' shapes or what they mean (``dropout`` and
``mirror_average`` change training or inference only, so they may differ)"""


def _plain(value: Any) -> Any:
    return value.model_dump(mode="json") if isinstance(value, BaseModel) else value


def _difference(there: Any, here: Any, path: str) -> tuple[str, Any, Any] | None:
    """The first (dotted path, checkpoint value, config value) where `there` and `here` differ."""
    if isinstance(there, dict) and isinstance(here, dict):
        for key in list(there) + [k for k in here if k not in there]:
            found = _difference(there.get(key), here.get(key), f"{path}.{key}")
            if found is not None:
                return found
        return None
    return None if there == here else (path, there, here)


def check_init_spec(
    init: ModelSpec, source: str, wanted: Mapping[str, Any], option: str = "init"
) -> None:
    """Raise ValueError when a `wanted` spec field (name -> value, e.g. ``{"architecture":
    "pilotnet"}``) differs from checkpoint spec `init`; the message names `option`, the
    checkpoint `source` and the field path, e.g. ``model.preprocessing.normalization``."""
    for field, value in wanted.items():
        found = _difference(_plain(getattr(init, field)), _plain(value), f"model.{field}")
        if found is not None:
            path, there, here = found
            raise ValueError(
                f"{option} {source}: {path} is {there!r} in the checkpoint but {here!r} in the "
                f"config; the weights only fit the spec they were trained with (set {path} "
                "to the checkpoint's value, or start from another checkpoint)"
            )
