"""Unlabeled real frames for feature alignment (`--real-unlabeled`): reading them.

The config, the CORAL loss and the mixed-batch loss are `sim2real.agents.alignment` (pretraining
uses them too); AdaBN is `sim2real.transfer.adapter.adabn`. Here: turn the paths a user gives
into frames, with the same errors as `--data`, labels ignored, held-out frames left out.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import torch

from sim2real.agents.alignment import AlignmentConfig
from sim2real.agents.preprocessing import Preprocessing

log = logging.getLogger(__name__)


def open_unlabeled(
    config: AlignmentConfig,
    preprocessing: Preprocessing,
    *,
    seed: int = 0,
    exclude: Sequence[Path] = (),
    cache_dir: Path | None = None,
    progress: bool = True,
) -> torch.Tensor:
    """The unlabeled frames of `config.unlabeled`: (N, 3, H, W) uint8, in time order.

    Paths are read as `--data` is (the same errors for a path without images); labels are
    ignored. Only `config.span` of each recording (session) is read. Records whose image is
    in `exclude` (e.g. the validation and test blocks of the labelled data, when the same tub
    is given as unlabeled) are dropped first, then at most `config.max_frames` are kept as a
    reproducible block subsample drawn with `seed`.
    """
    from sim2real.transfer.datasets import DrivingDataset, open_records
    from sim2real.transfer.real_frames import span_records
    from sim2real.transfer.splits import subsample

    names = ", ".join(config.unlabeled)
    records = open_records(config.unlabeled).records
    if config.span != (0.0, 1.0):
        records = span_records(records, config.span, len(records))
    skip = {Path(p) for p in exclude}
    kept = [r for r in records if Path(r.image_path) not in skip]
    if len(kept) < 4:
        raise ValueError(
            f"--real-unlabeled {names}: {len(kept)} usable frame(s) after leaving out "
            f"{len(records) - len(kept)} held-out frame(s) of the labelled data; 4 are needed"
        )
    if config.max_frames is not None and len(kept) > config.max_frames:
        kept = subsample(kept, config.max_frames, seed)
    dataset = DrivingDataset(kept, preprocessing, ["user/angle"], cache_dir, progress=progress)
    log.info("%d unlabeled real frames from %s", len(dataset), names)
    return dataset.images
