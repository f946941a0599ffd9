"""How recorded frames are cut into training, validation and test parts: one typed setting.

`SplitSpec` is what pretraining, fine-tuning, evaluation and the study configure, and what a
model card records; `sim2real.transfer.splits.split_records` applies it. It lives here, below
agents, because the agents' configs and model cards hold it.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from sim2real.common.config import StrictModel

LEGACY_KEYS = {"val_fraction": "val_fraction", "test_fraction": "test_fraction", "split_gap": "gap"}
"""flat config keys of earlier versions (PretrainConfig, FinetuneConfig, DaggerConfig) -> the
SplitSpec field each now sets"""


class SplitSpec(StrictModel):
    """Which frames train, validate and test (sim2real.transfer.splits).

    time_block: every (source, session) stream is cut in time order into
    [train | gap | val | gap | test]; episodes: a seed-drawn `val_fraction` of whole streams
    validates (unseen tracks, nothing lost to gaps; no test part).
    """

    kind: Literal["time_block", "episodes"] = "time_block"
    val_fraction: float = Field(0.15, gt=0.0, lt=1.0)
    """share of every stream (time_block) or of the streams (episodes) that validates"""
    test_fraction: float = Field(0.0, ge=0.0, lt=1.0)
    """the last share of every stream, never trained on (time_block only)"""
    gap: int = Field(20, ge=0)
    """frames dropped at each cut (20 = 1 s at 20 Hz) so no near-twins straddle it"""

    @model_validator(mode="after")
    def _fractions(self) -> SplitSpec:
        if self.val_fraction + self.test_fraction >= 1.0:
            raise ValueError(
                f"val_fraction {self.val_fraction} + test_fraction {self.test_fraction} "
                "leaves nothing to train on"
            )
        if self.kind == "episodes" and self.test_fraction > 0:
            raise ValueError("an episodes split has no test part: set test_fraction to 0")
        return self


def fold_legacy_split(data: Any, default: SplitSpec) -> Any:
    """A config mapping whose split settings are completed from `default`, the config's own
    default split: a partial `split` mapping overrides only the fields it names, and the flat
    keys of earlier versions (`val_fraction`, `test_fraction`, `split_gap`, and `split` as the
    kind's name) are folded into `split`.

    For the `mode="before"` validator of a config with a `split: SplitSpec` field, so YAML
    files and saved run configs of earlier versions still load (and resume)."""
    if not isinstance(data, dict):
        return data
    flat = {new: data[old] for old, new in LEGACY_KEYS.items() if old in data}
    split = data.get("split")
    if isinstance(split, SplitSpec) or (split is None and not flat):
        return data
    if split is None or isinstance(split, str):
        split = {} if split is None else {"kind": split}
    if not isinstance(split, dict):
        return data  # pydantic names the bad value
    data = {k: v for k, v in data.items() if k not in LEGACY_KEYS}
    data["split"] = {**default.model_dump(), **split, **flat}
    return data
