"""Offline evaluation of a checkpoint on recorded real frames, with honest intervals.

`evaluate_offline` runs the network over a time block of the recording and reports the
metrics of `sim2real.transfer.metrics` (moving-block bootstrap 95% intervals), raw and
scale-calibrated. Which frames:

- ``split="test"`` (default): the last block of every recording, cut exactly as
  `sim2real.transfer.finetune` cut it (the split fractions are read from the checkpoint's
  card when it was fine-tuned, else the fine-tuning defaults), so no frame the network trained
  or early-stopped on is scored. The calibration (truth ~ a * prediction + b) is fitted on
  the validation block before it.
- ``split="val"``: the validation block, cut the same way (the block to choose knobs on;
  fine-tuning early-stopped on it, so its figures flatter every early-stopped network alike);
  the calibration is cross-fitted on its halves, as for "all".
- ``split="all"``: every usable frame (e.g. zero-shot on data the network never saw); the
  calibration is cross-fitted: fitted on the first half of each recording and applied to the
  second, and the other way round, so no frame calibrates itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from sim2real.agents.checkpoint import ModelCard, override_mirror_average
from sim2real.agents.ensemble import Predictor, load_predictor
from sim2real.agents.model import STEERING, THROTTLE, predict, predict_rollout
from sim2real.agents.shipped import checkpoint_reference
from sim2real.agents.temporal import frame_inputs
from sim2real.common.splitspec import SplitSpec
from sim2real.transfer.metrics import (
    DEFAULT_BLOCK_LENGTH,
    AffineCalibration,
    Interval,
    driving_metrics,
)
from sim2real.transfer.records import run_starts
from sim2real.transfer.splits import REAL_SPLIT, split_records
from sim2real.transfer.temporal import attach_previous_frames

FINETUNE_STEP = "finetune"
"""history steps whose name starts with this fitted the card's data split on real frames"""


def card_split(card: ModelCard) -> SplitSpec:
    """The split `card`'s network was fine-tuned with (its `split`), else `REAL_SPLIT`: the
    test block of a network trained on other data (sim, a policy) is the fine-tuning one."""
    last = card.history[-1].get("step", "") if card.history else ""
    if card.split is not None and str(last).startswith(FINETUNE_STEP):
        return card.split
    return REAL_SPLIT


@dataclass
class Evaluation:
    """Offline metrics of one checkpoint on one set of frames."""

    metrics: dict[str, Interval]
    calibrated: dict[str, Interval]
    calibration: dict[str, AffineCalibration]
    n_frames: int
    n_calibration_frames: int
    info: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            **self.info,
            "n_frames": self.n_frames,
            "metrics": {k: v.as_dict() for k, v in self.metrics.items()},
            "calibrated": {
                "note": "truth ~ slope * prediction + intercept, fitted on "
                + self.info["calibrated_on"],
                "n_calibration_frames": self.n_calibration_frames,
                "fit": {k: v.as_dict() for k, v in self.calibration.items()},
                "metrics": {k: v.as_dict() for k, v in self.calibrated.items()},
            },
        }


def _labels(model: Predictor) -> list[str]:
    if STEERING not in model.spec.outputs:
        raise ValueError(
            f"the network predicts {model.spec.outputs}, not steering ({STEERING!r}): "
            "offline driving metrics need a steering output"
        )
    return [name for name in (STEERING, THROTTLE) if name in model.spec.outputs]


def _halves(records) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks (first half, second half) of every (source, session) stream."""
    first = np.zeros(len(records), bool)
    groups: dict[tuple[str, str], list[int]] = {}
    for i, record in enumerate(records):
        groups.setdefault((record.source, record.session), []).append(i)
    for idx in groups.values():
        first[idx[: len(idx) // 2]] = True
    return first, ~first


def evaluate_offline(
    checkpoint: str | Path,
    data: list[str | Path],
    *,
    split: Literal["test", "val", "all"] = "test",
    n_boot: int = 1000,
    block_length: int = DEFAULT_BLOCK_LENGTH,
    seed: int = 0,
    cache_dir: str | Path | None = None,
    progress: bool = True,
    mirror_average: bool | None = None,
) -> Evaluation:
    """Metrics with block-bootstrap intervals of `checkpoint` on the real frames of `data`;
    `mirror_average` overrides the card's `ModelSpec.mirror_average` (None: the card's)."""
    from sim2real.transfer.datasets import (
        DrivingDataset,
        check_colour_frames,
        check_source_sizes,
        open_records,
    )

    if split not in ("test", "val", "all"):
        raise ValueError(f"split must be 'test', 'val' or 'all', got {split!r}")
    if not data:
        raise ValueError("no data given: pass at least one tub path (--data)")
    model, card = load_predictor(checkpoint)  # one network or an ensemble
    override_mirror_average(model, mirror_average, checkpoint)
    labels = _labels(model)
    settings = card_split(card)
    # a network fine-tuned with --include-pilot had its blocks cut from the pilot's frames too
    pilot = split != "all" and settings is card.split and bool(card.trained_on.get("include_pilot"))
    record_set = open_records([str(p) for p in data], include_pilot=pilot)
    check_source_sizes(card, record_set.reports)
    records = record_set.records
    if split == "test":
        parts = split_records(records, settings, seed=seed)
        if not parts.test:
            raise ValueError(
                f"test_fraction {settings.test_fraction} leaves no test block; use --split all"
            )
        eval_records, calib_records = parts.test, parts.val
        calibrated_on = f"the validation block before the test block ({len(calib_records)} frames)"
    elif split == "val":
        eval_records, calib_records = split_records(records, settings, seed=seed).val, []
        if not eval_records:
            raise ValueError(f"val_fraction {settings.val_fraction} leaves no validation block")
        calibrated_on = "the other half of the validation block in each recording (cross-fitted)"
    else:
        eval_records, calib_records = records, []
        calibrated_on = "the other half of each recording (cross-fitted)"
    cache = Path(cache_dir) if cache_dir else None
    pre = model.spec.preprocessing

    def run(part):
        dataset = DrivingDataset(
            part, pre, labels, cache, progress=progress, report=record_set.report
        )
        check_colour_frames(dataset)
        if model.context_names:  # a temporal network, fed its own previous action as on the car
            preds = predict_rollout(model, dataset.images, run_starts(dataset.records))
        elif model.spec.temporal.previous_frame_gap:  # the earlier frame of the same session
            attach_previous_frames(dataset, model.spec.temporal.previous_frame_gap)
            preds = predict(model, frame_inputs(dataset, dataset.images))
        else:
            preds = predict(model, dataset.images)
        cols = [model.output_index(name) for name in labels]
        pred = {name: preds[:, c] for name, c in zip(labels, cols, strict=True)}
        truth = {name: dataset.targets[:, j].double().numpy() for j, name in enumerate(labels)}
        return pred, truth, dataset.records  # (records whose image did not decode dropped)

    pred, truth, eval_records = run(eval_records)
    generator = np.random.default_rng(seed)
    kwargs = {"n_boot": n_boot, "block_length": block_length, "generator": generator}
    metrics = driving_metrics(pred, truth, **kwargs)
    calibration: dict[str, AffineCalibration] = {}
    calibrated_pred: dict[str, np.ndarray] = {}
    if split == "test":
        if not calib_records:
            raise ValueError("no validation block to calibrate on (val_fraction is 0)")
        c_pred, c_truth, calib_records = run(calib_records)
        for name in labels:
            if np.isfinite(c_truth[name]).any():
                calibration[name] = AffineCalibration.fit(c_pred[name], c_truth[name])
                calibrated_pred[name] = calibration[name].apply(pred[name])
    else:
        first, second = _halves(eval_records)
        for name in labels:
            out = np.empty_like(pred[name])
            for fit_mask, apply_mask in ((first, second), (second, first)):
                cal = AffineCalibration.fit(pred[name][fit_mask], truth[name][fit_mask])
                out[apply_mask] = cal.apply(pred[name][apply_mask])
            calibration[name] = AffineCalibration.fit(pred[name], truth[name])  # reported only
            calibrated_pred[name] = out
        calib_records = eval_records
    calibrated = driving_metrics(calibrated_pred, {k: truth[k] for k in calibrated_pred}, **kwargs)
    trained_paths = set(card.trained_on.get("paths", [])) if card.trained_on else set()
    data_paths = [str(Path(p).expanduser().resolve()) for p in data]
    info = {
        "checkpoint": checkpoint_reference(checkpoint),
        "include_pilot": pilot,
        "kind": card.kind,
        "architecture": card.spec.architecture,
        "mirror_average": model.spec.mirror_average,
        "members": list(card.members),  # an ensemble's member folders ([]: one network)
        "outputs": card.spec.outputs,
        "data": data_paths,
        "split": split,
        "split_settings": settings.model_dump(mode="json"),
        "overlaps_training_data": bool(trained_paths & set(data_paths)),
        "block_length": block_length,
        "n_boot": n_boot,
        "seed": seed,
        "calibrated_on": calibrated_on,
        "read_report": record_set.report.to_dict(),
    }
    return Evaluation(metrics, calibrated, calibration, len(eval_records), len(calib_records), info)


def format_table(evaluation: Evaluation) -> str:
    """A terminal table: metric, raw value [95% interval], calibrated value [95% interval]."""

    def cell(interval: Interval | None) -> str:
        if interval is None or not np.isfinite(interval.value):
            return "-"
        if not np.isfinite(interval.low):
            return f"{interval.value:.3f}"
        return f"{interval.value:.3f} [{interval.low:.3f}, {interval.high:.3f}]"

    rows = [("metric", "raw [95% CI]", "scale-calibrated [95% CI]")]
    for name, interval in evaluation.metrics.items():
        rows.append((name, cell(interval), cell(evaluation.calibrated.get(name))))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
