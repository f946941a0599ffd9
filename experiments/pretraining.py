"""Pretraining on sim tubs: open the recordings (transfer layer), then `agents.pretrain`.

This is where the data layer and the networks meet, so it lives in experiments:
agents do not depend on transfer.
"""

from __future__ import annotations

import logging
from pathlib import Path

from sim2real.agents.pretrain import (
    PretrainConfig,
    PretrainData,
    PretrainResult,
    check_fda_window,
    check_out_dir,
    pretrain,
    read_init,
)

log = logging.getLogger(__name__)


def with_init_spec(config: PretrainConfig) -> PretrainConfig:
    """`config` with the model spec of its `init` checkpoint when the config names no `model`
    itself (so ``pretrain --init pilotnet-recipe`` needs nothing else): architecture,
    preprocessing, outputs and head as the weights were trained, ``mirror_average`` off."""
    if config.init is None or "model" in config.model_fields_set:
        return config
    from sim2real.agents.checkpoint import read_card

    spec = read_card(config.init).spec.model_copy(update={"mirror_average": False})
    data = config.model_dump(mode="json", exclude_unset=True)
    return PretrainConfig.model_validate({**data, "model": spec.model_dump(mode="json")})


def open_sim_data(config: PretrainConfig) -> PretrainData:
    """Read `config.data` (sim tubs), cap them at `config.max_frames`, split them as
    `config.split` says (`open_training_data`), and build the frame datasets."""
    from sim2real.transfer.training_data import open_training_data

    if not config.data:
        raise ValueError("no sim data given: pass at least one tub path (--data)")
    data = open_training_data(
        config.data,
        config.model.outputs,
        config.model.preprocessing,
        config.split,
        seed=config.train.seed,
        max_frames=config.max_frames,
        cache_dir=config.cache_dir,
        progress=config.train.progress,
        temporal=config.model.temporal,
    )
    if data.randomization is None:
        log.warning(
            "%s: no randomization recorded in the tub manifest (not recorded by sim2real "
            "simulate, or by a version before the spec travelled in the manifest): the "
            "checkpoint's card will name none",
            ", ".join(config.data),
        )
    return PretrainData(
        train=data.train,
        val=data.val,
        trained_on=data.trained_on,
        split=data.split,
        randomization=data.randomization,
    )


def run_pretrain(
    config: PretrainConfig, out_dir: str | Path, *, resume: bool = False
) -> PretrainResult:
    """Open the sim data (and `config.align`'s unlabeled real frames) and pretrain: what
    `sim2real pretrain` does, for scripts and tests."""
    from sim2real.transfer.adapter import adabn
    from sim2real.transfer.alignment import open_unlabeled

    config = with_init_spec(config)
    read_init(config)  # a spec mismatch fails before minutes of frame decoding
    check_fda_window(config)
    check_out_dir(Path(out_dir), config, resume)
    data = open_sim_data(config)
    if config.align is not None:
        folder = Path(config.cache_dir) if config.cache_dir else None
        data.unlabeled = open_unlabeled(
            config.align,
            config.model.preprocessing,
            seed=config.train.seed,
            cache_dir=folder,
            progress=config.train.progress,
        )
        data.trained_on["unlabeled_real"] = {
            "paths": [str(Path(p).expanduser().resolve()) for p in config.align.unlabeled],
            "frames": len(data.unlabeled),
        }
    return pretrain(config, data, out_dir, resume=resume, bn_adapt=adabn)
