"""Pretraining on sim tubs: open the recordings (transfer layer), then `agents.pretrain`.

This is where the data layer and the networks meet, so it lives in experiments:
agents do not depend on transfer.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from sim2real.agents.model import ModelSpec
from sim2real.agents.pretrain import (
    PretrainConfig,
    PretrainData,
    PretrainResult,
    check_out_dir,
    pretrain,
)

if TYPE_CHECKING:
    from sim2real.agents.training import TrainConfig
    from sim2real.transfer.datasets import DrivingDataset
    from sim2real.transfer.records import ReadReport, Record
    from sim2real.transfer.splits import Split


class SplitSettings(Protocol):
    """The data-split fields a PretrainConfig and a DaggerConfig share."""

    val_fraction: float
    split_gap: int
    split: str
    cache_dir: str | None
    train: TrainConfig


def split_datasets(
    records: Sequence[Record],
    spec: ModelSpec,
    settings: SplitSettings,
    *,
    source: str,
    seed: int,
    report: ReadReport | None = None,
) -> tuple[Split, DrivingDataset, DrivingDataset, dict[str, object]]:
    """Split `records` as `settings.split` says ("time_block", or "episodes" held out whole,
    drawn with `seed`) and build the frame datasets (train, val) for `spec`; also returns
    the split's description for the model card. `source` names the data in errors; images
    that do not decode are dropped and counted in `report`."""
    from sim2real.transfer.datasets import DrivingDataset
    from sim2real.transfer.splits import episode_split, time_block_split

    if settings.split == "episodes":
        try:
            split = episode_split(records, settings.val_fraction, seed=seed)
        except ValueError as exc:
            raise ValueError(f"{source}: {exc}") from exc
        described: dict[str, object] = {"kind": "episodes", "val_fraction": settings.val_fraction}
    else:
        split = time_block_split(records, settings.val_fraction, gap=settings.split_gap)
        described = {
            "kind": "time_block",
            "val_fraction": settings.val_fraction,
            "gap": settings.split_gap,
        }
    if not split.val:
        raise ValueError(f"{source}: too few records for a validation block")
    folder = Path(settings.cache_dir) if settings.cache_dir else None
    progress = settings.train.progress
    train, val = (
        DrivingDataset(
            part, spec.preprocessing, spec.outputs, folder, progress=progress, report=report
        )
        for part in (split.train, split.val)
    )
    return split, train, val, described


def open_sim_data(config: PretrainConfig) -> PretrainData:
    """Read `config.data` (sim tubs), split them as `config.split` says, and build the frame
    datasets."""
    from sim2real.transfer.datasets import open_records
    from sim2real.transfer.splits import subsample

    if not config.data:
        raise ValueError("no sim data given: pass at least one tub path (--data)")
    for path in config.data:
        if not Path(path).expanduser().exists():
            raise FileNotFoundError(f"sim data {path}: no such file or folder")
    record_set = open_records(config.data)
    records = record_set.records
    if config.max_frames is not None:
        records = subsample(records, config.max_frames, seed=config.train.seed)
    spec = config.model
    counts = {name: sum(name in r.labels for r in records) for name in spec.outputs}
    missing = [name for name, n in counts.items() if n == 0]
    if missing:
        raise ValueError(
            f"{', '.join(config.data)}: no record has label(s) {missing}; labels present: "
            f"{record_set.label_names}; set model.outputs in the config to labels the data has"
        )
    split, train, val, described = split_datasets(
        records,
        spec,
        config,
        source=", ".join(config.data),
        seed=config.train.seed,
        report=record_set.report,
    )
    trained_on = {
        "paths": [str(Path(p).expanduser().resolve()) for p in config.data],
        "frames": split.sizes(),
        "split": described,
        "label_counts": counts,
        "read_report": record_set.report.to_dict(),
        "source_size": list(train.source_shape[:2]),
        "max_frames": config.max_frames,
    }
    return PretrainData(train=train, val=val, trained_on=trained_on)


def run_pretrain(
    config: PretrainConfig, out_dir: str | Path, *, resume: bool = False
) -> PretrainResult:
    """Open the sim data (and `config.align`'s unlabeled real frames) and pretrain: what
    `sim2real pretrain` does, for scripts and tests."""
    from sim2real.transfer.adapter import adabn
    from sim2real.transfer.alignment import open_unlabeled

    check_out_dir(Path(out_dir), config, resume)  # before minutes of frame decoding
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
