"""`sim2real adapt`: adapt a sim network to the user's unlabeled real frames, with no label.

A recording is a video. The steering a person gives at frame t shows up as the car's yaw
2-4 frames later: the image content shifts sideways. The recording's optical flow
(`sim2real.transfer.motion`) therefore carries a steering signal of its own, but in pixels,
not in steering units, and with an unknown sign and mix of image regions. The sim network
knows the units and the sign, but errs on real frames (the transfer gap). Their errors are
nearly independent, so one can teach the other:

1. the network predicts every allowed frame and its mirror image (signed outputs negated
   back; the mean), smoothed along time within each run (`selftrain.pseudo_label`);
2. the motion teacher: a ridge of that smoothed steering on the frames' scores on the top
   `components` principal components of their lagged flow features (penalty by run-grouped
   CV, `motion.fit_ridge_cv`), stretched to the network's spread (`match_spread`). The flow
   gets the network's scale and sign; no label is read. The dominant flow components are the
   car's yaw: a ridge on all the features also learns the network's errors back wherever
   some flow statistic follows them;
3. pseudo-label of steering: ``weight * motion_fit + (1 - weight) * network``; the other
   outputs the network has a label for (throttle) keep its smoothed prediction, outputs a
   real tub has no label for (sim-only heads) are left out of the loss (NaN);
4. student: a copy of the network trains on (at most `max_frames` of) those frames, as
   contiguous blocks, with the usual augmentation. Only the single-frame student ships: at run
   time the car needs nothing new.

Only the frames in `span` of each recording are read (default: the training part of
`finetune`'s split, `REAL_SPLIT`, so the recording's own validation and test blocks stay out
of the adaptation when the user later fine-tunes or evaluates on the same tub). A labelled
tub is fine: its labels are discarded unread by anything here (the card says so).
docs/adapt.md has the measurements.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import Field, field_validator
from torch.utils.data import TensorDataset

from sim2real.agents.augment import Augmentation
from sim2real.agents.checkpoint import CARD_FILE, load_checkpoint, save_adapted
from sim2real.agents.model import DrivingNet
from sim2real.agents.shipped import checkpoint_reference
from sim2real.agents.training import RESUME_FILE, FitResult, TrainConfig, fit
from sim2real.common.config import StrictModel
from sim2real.common.runs import check_run_dir, describe_run
from sim2real.transfer.adapter import param_groups
from sim2real.transfer.motion import MotionConfig, RidgeFit, fit_ridge_cv, motion_span
from sim2real.transfer.records import Record, run_ids, run_lengths
from sim2real.transfer.selftrain import (
    OddWidth,
    SelfTrainConfig,
    pseudo_label,
    stretched_about_mean,
    teacher_copy,
)

STEERING = "user/angle"
"""the output the motion teacher labels"""
REAL_LABELS = ("user/angle", "user/throttle")
"""outputs a real recording has: they keep the network's own (smoothed) prediction as their
pseudo-label; any other output (a sim-only head) is left out of the student's loss"""
MIN_FRAMES = 200
"""fewer allowed frames than this are too few to fit the motion teacher"""

STEP = "adapt_zero_label"
"""the card's history step (not a `finetune*` step: `evaluate` keeps `REAL_SPLIT`'s blocks)"""


def _default_train() -> TrainConfig:
    return TrainConfig(epochs=8, lr=3e-4, patience=0)  # 8: docs/adapt.md, seeds 0-2


class AdaptConfig(StrictModel):
    """Zero-label adaptation of a network to real frames (`sim2real adapt`)."""

    checkpoint: str = "pilotnet-recipe"
    """the sim network to adapt (a checkpoint folder or a shipped name)"""
    real: list[str] = Field(default_factory=list)
    """real tubs, folders of tubs or CSV folders with timestamps (any labels are not read)"""
    crop_top: int | None = Field(None, ge=0)
    """rows (px of the camera frame) cut off the top before the network looks; None: the
    checkpoint's own (as `finetune --crop-top`: docs/transfer.md, "Another camera mount")"""
    span: tuple[float, float] | None = None
    """fraction (start, end) of each recording (per session, in time order) read; None: the
    training part of `finetune`'s split (REAL_SPLIT: never its validation or test blocks)"""
    weight: float = Field(1.0, ge=0.0, le=1.0)
    """share of the motion teacher in the steering pseudo-label (the rest: the network's
    smoothed prediction); 1 (the motion fit alone, which the network scaled) had the higher
    validation r on every seed of both recordings against 0.7 and 0.5 (docs/adapt.md)"""
    components: int | None = Field(2, ge=1)
    """the motion fit reads only the frames' scores on this many principal components of the
    standardised lagged flow features (None: every feature). The flow's dominant directions
    are the car's yaw; a ridge on all 72 features also fits the network's own errors wherever
    they correlate with some flow statistic. 2 of 1, 2, 3, 4, 6 made the pseudo-labels closest
    to the person's steering on both recordings' training parts (a diagnostic that read those
    labels; adapt reads none); its students had the higher validation r than every
    feature's on both recordings (R² as saved wants `match_spread`; docs/adapt.md)"""
    match_spread: bool = True
    """stretch the motion fit about its mean to the spread (standard deviation) of the
    network's smoothed steering: a fit on a few flow components is shrunk towards its mean (the
    flow explains part of the steering, the network's ordering part of that), so the student
    under-steers; the sim network's spread of steering is kept, its frame-by-frame ordering is
    not. On both validation blocks this raised R² as saved by 0.09-0.13 and r by 0.00-0.03
    (docs/adapt.md)"""
    window: OddWidth = 21
    """Savitzky-Golay width (frames, odd) smoothing the network's predictions within runs"""
    max_frames: int | None = Field(20000, ge=10)
    """at most this many frames for the student, as contiguous blocks (None: all). Every
    frame read (7,515 and 11,448) beat 4,000 and 2,000 on both validation blocks; the cap
    bounds the student's time and its copy of the frames on longer recordings (not measured
    beyond 11,448), not the teacher's: it decodes every frame in the span (`span` bounds that)"""
    block_frames: int = Field(100, ge=1)
    """length of those blocks in frames"""
    motion: MotionConfig = Field(default_factory=MotionConfig)
    """the optical-flow features the motion teacher reads"""
    train: TrainConfig = Field(default_factory=_default_train)
    """the student's training (every epoch runs; no validation frames are read)"""
    mirror_average: bool = True
    """the student is saved mirror-averaged (it predicts each frame and its mirror image,
    steering negated back, and takes the mean): on the validation blocks this was as good
    (carpet-walls) or better (usi-track-a) than one pass; docs/adapt.md"""
    cache_dir: str | None = None
    """frame and motion-feature cache (None: no cache)"""
    include_pilot: bool = False
    """also read frames the pilot drove (DonkeyCar user/mode local, local_angle)"""

    @field_validator("span")
    @classmethod
    def _span(cls, value: tuple[float, float] | None) -> tuple[float, float] | None:
        if value is not None and not 0.0 <= value[0] < value[1] <= 1.0:
            raise ValueError(f"span must be 0 <= start < end <= 1, got {list(value)}")
        return value


RESUMABLE = {"train": {"epochs", "device", "progress"}, "cache_dir": True}
PREDATING = {"components": None, "match_spread": False}
"""what a config saved before these fields was made with (every flow feature, no stretch):
a resumed run or a ``--config`` file that does not name them keeps that teacher"""


@dataclass
class Teacher:
    """The zero-label pseudo-labels of the allowed frames and how they were made."""

    records: list[Record]
    """the allowed frames that decoded, in time order"""
    images: torch.Tensor
    """(N, 3, H, W) uint8"""
    network: np.ndarray
    """(N, L) the network's mirror-averaged, smoothed predictions"""
    motion_fit: np.ndarray
    """(N,) the motion teacher's steering"""
    labels: np.ndarray
    """(N, L) pseudo-labels (NaN: an output left out of the loss)"""
    ridge: RidgeFit
    runs: np.ndarray
    """(N,) run ids"""

    components: int | None = None
    """principal components of the flow features the fit read (None: every feature; at most
    the features' count, whatever `AdaptConfig.components` asked for)"""
    explained: float | None = None
    """share of the standardised features' variance those components hold"""
    stretch: float = 1.0
    """factor the motion fit was stretched by about its mean (`match_spread`)"""

    def summary(self, weight: float) -> dict[str, Any]:
        return {
            "frames": len(self.records),
            "runs": int(len(np.unique(self.runs))),
            "weight": weight,
            "components": self.components,
            "explained_variance": self.explained,
            "stretch": self.stretch,
            "network_on_motion_cv_r2": self.ridge.cv_r2,
            "network_on_motion_cv_r": self.ridge.cv_r,
            "alpha": self.ridge.alpha,
        }


def held_out_paths(path: str) -> set[Path]:
    """Image paths of `path`'s frames outside the training part of `REAL_SPLIT`, cut from the
    person's frames alone and from every frame, the pilot's included: a later `finetune` or
    `evaluate` of the recording keeps its validation and test blocks whichever
    ``--include-pilot`` it takes (the pilot's frames move the cut)."""
    from sim2real.transfer.datasets import open_records
    from sim2real.transfer.splits import REAL_SPLIT, split_records

    held: set[Path] = set()
    for include_pilot in (False, True):
        try:
            records = open_records([path], include_pilot=include_pilot).records
        except ValueError:  # (no frame of the person's: nothing to keep out)
            continue
        train = {r.image_path for r in split_records(records, REAL_SPLIT, seed=0).train}
        held |= {r.image_path for r in records if r.image_path not in train}
    return held


def allowed_records(config: AdaptConfig) -> list[Record]:
    """The records of `config.real` that adaptation may read, in time order per stream: the
    span, else the training part of `REAL_SPLIT` less `held_out_paths`.

    ValueError naming the path: no frames, no timestamps, too few frames in the span, or runs
    too short for the motion lags."""
    from sim2real.transfer.datasets import open_records
    from sim2real.transfer.real_frames import span_records
    from sim2real.transfer.splits import REAL_SPLIT, split_records, streams

    if not config.real:
        raise ValueError("adapt needs real frames: pass --real PATH...")
    kept: list[Record] = []
    seen: set[Path] = set()
    for path in config.real:
        if not Path(path).expanduser().exists():
            raise FileNotFoundError(f"{path}: no such file or folder")
        records = open_records([path], include_pilot=config.include_pilot).records
        if all(r.timestamp_ms is None for r in records):
            raise ValueError(
                f"{path}: its frames have no timestamps; adapt reads the car's motion between "
                "consecutive frames of a recording"
            )
        if config.span is None:
            held = held_out_paths(path)
            part = [
                r
                for r in split_records(records, REAL_SPLIT, seed=0).train
                if r.image_path not in held
            ]
        else:
            part = span_records(records, config.span, len(records))
        part = [r for stream in streams(part) for r in stream]
        window = config.motion.last_lag - config.motion.first_lag + 2
        long_enough = int((run_lengths(run_ids(part)) >= max(window, config.motion.min_run)).sum())
        if len(part) < MIN_FRAMES:
            raise ValueError(
                f"{path}: {len(part)} frames in the span read (of {len(records)}); adapt needs "
                f"at least {MIN_FRAMES}"
            )
        if long_enough < len(part) / 2:
            raise ValueError(
                f"{path}: {len(part) - long_enough} of {len(part)} frames sit in runs shorter "
                f"than {max(window, config.motion.min_run)} frames, too short for motion lags "
                f"{config.motion.first_lag}..{config.motion.last_lag}"
            )
        kept += [r for r in part if r.image_path not in seen]  # (a path named twice)
        seen |= {r.image_path for r in part}
    return kept


def zero_label_teacher(
    network: DrivingNet,
    records: list[Record],
    config: AdaptConfig,
    augment: Augmentation,
    *,
    progress: bool = False,
) -> Teacher:
    """Pseudo-labels of `records` (time order) from `network` and the recording's motion."""
    from sim2real.transfer.datasets import DrivingDataset

    cache = Path(config.cache_dir) if config.cache_dir else None
    outputs = list(network.spec.outputs)
    if STEERING not in outputs:
        raise ValueError(f"{config.checkpoint}: the network has no {STEERING} output to adapt")
    dataset = DrivingDataset(records, network.spec.preprocessing, outputs, cache, progress=progress)
    kept = list(dataset.records)  # undecodable frames are dropped (and end a run)
    images = dataset.images
    del dataset  # its targets (labels, where the files have them) are never used
    span = motion_span(records, config.motion, cache)  # flow only between allowed frames
    runs = run_ids(kept)
    mirror = network.spec.mirror_average
    network.spec.mirror_average = False  # pseudo_label averages f and its mirror itself
    try:
        smoothing = SelfTrainConfig(smooth="savgol", window=config.window)
        smoothed = pseudo_label(network, images, runs, smoothing, augment).labels
    finally:
        network.spec.mirror_average = mirror
    column = outputs.index(STEERING)
    motion = span.of(kept)
    if not np.any(np.ptp(motion, axis=0) > 0):  # (PCA's explained share would be 0 / 0)
        raise ValueError(
            f"{', '.join(map(str, config.real))}: the optical flow between the frames read never "
            "changes (a still view, or no two consecutive frames decode); the motion teacher "
            "has nothing to fit"
        )
    components, explained = None, None
    if config.components is not None:  # (fewer than asked where the flow has fewer features)
        motion, explained = principal_scores(motion, config.components)
        components = motion.shape[1]
    mixed, motion_fit, ridge, stretch = steering_labels(
        smoothed[:, column], motion, runs, config.weight, match_spread=config.match_spread
    )
    labels = np.full_like(smoothed, np.nan)
    for j, name in enumerate(outputs):
        if name in REAL_LABELS:
            labels[:, j] = smoothed[:, j]
    labels[:, column] = mixed
    return Teacher(
        kept,
        images,
        smoothed,
        motion_fit,
        labels,
        ridge,
        runs,
        components,
        explained,
        stretch,
    )


def principal_scores(motion: np.ndarray, components: int) -> tuple[np.ndarray, float]:
    """((N, k) scores of the frames on the top k = min(`components`, N, D) principal
    components of the standardised features `motion` (N, D), the share of variance they hold)."""
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    k = min(components, *motion.shape)
    pca = PCA(n_components=k, svd_solver="full")
    scores = pca.fit_transform(StandardScaler().fit_transform(motion))
    return scores, float(pca.explained_variance_ratio_.sum())


def steering_labels(
    network: np.ndarray,
    motion: np.ndarray,
    runs: np.ndarray,
    weight: float,
    *,
    match_spread: bool = False,
) -> tuple[np.ndarray, np.ndarray, RidgeFit, float]:
    """(pseudo-labels (N,), motion fit (N,), the ridge, the stretch): the ridge of the
    network's steering `network` (N,) on the lagged motion features `motion` (N, D) of the
    same frames (penalty by CV over `runs` (N,)), mixed as ``weight * fit + (1 - weight) *
    network``. No label. `match_spread`: the fit is first stretched about its mean to the
    network's standard deviation, by the factor returned (1 without)."""
    ridge = fit_ridge_cv(motion, network, runs)
    motion_fit, stretch = ridge.predict(motion), 1.0
    if match_spread:
        motion_fit, stretch = stretched_about_mean(motion_fit, float(np.std(network)))
    return weight * motion_fit + (1.0 - weight) * network, motion_fit, ridge, stretch


def student_frames(teacher: Teacher, config: AdaptConfig, seed: int) -> np.ndarray:
    """Indexes into `teacher`'s frames the student trains on: at most `max_frames`, as
    contiguous blocks of `block_frames` spread over the frames (`splits.subsample`)."""
    from sim2real.transfer.splits import subsample

    n = config.max_frames
    if n is None or n >= len(teacher.records):
        return np.arange(len(teacher.records))
    row = {id(r): i for i, r in enumerate(teacher.records)}
    picked = subsample(teacher.records, n, seed, block_len=config.block_frames)
    return np.array(sorted(row[id(r)] for r in picked), dtype=np.int64)


@dataclass
class AdaptResult:
    out_dir: Path
    teacher: dict[str, Any]
    frames: int
    seconds: float


def adapt(config: AdaptConfig, out_dir: str | Path, *, resume: bool = False) -> AdaptResult:
    """Adapt `config.checkpoint` to `config.real` without labels; a checkpoint in `out_dir`.

    Bad input fails before anything is written."""
    started = time.perf_counter()
    out_dir = Path(out_dir)
    check_run_dir(
        out_dir,
        config,
        started=(out_dir / CARD_FILE).is_file() or (out_dir / RESUME_FILE).is_file(),
        resume=resume,
        what="an adapt run",
        may_change=RESUMABLE,
        predating=PREDATING,
    )
    records = allowed_records(config)
    network, parent_card = load_checkpoint(config.checkpoint)
    network.spec.preprocessing = network.spec.preprocessing.with_crop_top(config.crop_top)
    if STEERING not in network.spec.outputs:
        raise ValueError(f"{config.checkpoint}: the network has no {STEERING} output to adapt")
    torch.manual_seed(config.train.seed)
    t0 = time.perf_counter()
    teacher = zero_label_teacher(
        network, records, config, config.train.augment, progress=config.train.progress
    )
    teacher_seconds = time.perf_counter() - t0
    pick = student_frames(teacher, config, config.train.seed)
    describe_run(out_dir, config)
    student = teacher_copy(network)
    groups = param_groups(student, config.train.lr)
    data = TensorDataset(
        teacher.images[torch.as_tensor(pick)],
        torch.as_tensor(teacher.labels[pick], dtype=torch.float32),
    )
    result: FitResult = fit(
        student, data, None, config.train, out_dir, param_groups=groups, resume=resume
    )
    summary = teacher.summary(config.weight)
    seconds = time.perf_counter() - started
    parent = checkpoint_reference(config.checkpoint)
    sources = [str(Path(p).expanduser().resolve()) for p in config.real]
    step = {
        "step": STEP,
        "finished_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "parent": parent,
        "labels_used": False,
        "real_sources": sources,
        "span": list(config.span) if config.span is not None else "finetune training part",
        "teacher": {**summary, "seconds": teacher_seconds},
        "student_frames": len(pick),
        "motion": config.motion.model_dump(mode="json"),
        "train": config.train.model_dump(mode="json"),
        "epochs_run": result.epochs_run,
        "seconds": seconds,
    }
    save_adapted(
        out_dir,
        student,
        parent_card,
        trained_on={  # the parent's sim data stay (finetune --freeze rule measures against them)
            **parent_card.trained_on,
            "real_unlabeled": sources,
            "real_unlabeled_frames": len(pick),
            "labels_used": False,
            "parent_checkpoint": parent,
        },
        split=None,
        metrics={"epochs_run": result.epochs_run, "teacher": summary},
        step=step,
        mirror_average=config.mirror_average,
    )
    return AdaptResult(out_dir, summary, len(pick), seconds)
