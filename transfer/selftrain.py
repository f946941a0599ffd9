"""Self-training on unlabeled real frames (`finetune --pseudo-label`): teacher, pseudo-labels,
student.

Users hold far more unlabeled real frames (the rest of a tub, any other recording) than
labelled ones. Noisy-student style (Xie et al. 2020) pseudo-labelling, with what a 20 Hz
driving recording offers on top:

1. teacher: the network `finetune` would make from the N labelled frames (`--freeze auto`
   or whatever `adapter.freeze` says), written to ``OUT/teacher``;
2. pseudo-labels: the teacher predicts every unlabeled frame and its mirror image (signed
   labels negated back) and takes the mean; the labels are smoothed along time within each
   contiguous run of frames (steering is smooth at 20 Hz; Savitzky-Golay or median filter
   from scipy); optionally only the frames whose two predictions agree best are kept;
3. student: the teacher's network (or the re-headed parent) trains its top encoder stages and
   head on the labelled frames (repeated ``label_repeat`` times an epoch, so they keep their
   weight) plus the pseudo-labelled ones, with the full augmentation, for a fixed number of
   epochs (no early stopping on the ~20-frame validation subsample);
4. optionally again with the student as teacher (``rounds``), and optionally a final
   per-output gain fitted on the labelled frames (``recalibrate``).

Unlabeled frames of the labelled recording never include its validation or test blocks (nor
the labelled frames themselves). `auto` does not consider this: see docs/selftrain.md for why
cross-validation on the N labelled frames cannot judge it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import numpy as np
import torch
from pydantic import AfterValidator, Field
from torch.utils.data import TensorDataset

from sim2real.agents.augment import Augmentation
from sim2real.agents.calibration import affine_output, fit_affine
from sim2real.agents.checkpoint import load_checkpoint, read_card, save_adapted
from sim2real.agents.freezing import freeze_stages, frozen_stages
from sim2real.agents.model import DrivingNet, predict
from sim2real.agents.preprocessing import Preprocessing
from sim2real.agents.shipped import checkpoint_reference
from sim2real.agents.training import (
    FitResult,
    TrainConfig,
    dataset_tensors,
    fit,
)
from sim2real.common.config import StrictModel
from sim2real.transfer.adapter import param_groups
from sim2real.transfer.motion import MotionConfig, fit_ridge_cv, motion_span, teacher_inputs
from sim2real.transfer.records import Record, run_ids

if TYPE_CHECKING:
    from sim2real.transfer.finetune import FinetuneConfig, FinetuneResult
    from sim2real.transfer.training_data import TrainingData

log = logging.getLogger(__name__)

SMOOTHERS = ("none", "median", "savgol")


def _odd(value: int) -> int:
    if value % 2 == 0:
        raise ValueError(f"window must be odd (a centred filter), got {value}")
    return value


OddWidth = Annotated[int, Field(ge=1), AfterValidator(_odd)]
"""a centred filter's width in frames: odd, at least 1"""


class SelfTrainConfig(StrictModel):
    """Pseudo-labelling of unlabeled real frames and the student trained on them."""

    unlabeled: list[str] = Field(default_factory=list)
    """unlabeled real tubs, folders of tubs or CSV folders (labels ignored); [] = the rest of
    the training part of `data` (never its validation or test blocks)"""
    max_frames: int | None = Field(2000, ge=10)
    """at most this many unlabeled frames, as long contiguous blocks (None: all)"""
    block_frames: int = Field(100, ge=1)
    """length of those blocks in frames (long, so the smoothing has neighbours)"""
    smooth: Literal["none", "median", "savgol"] = "savgol"
    """filter applied to the pseudo-labels along time within each contiguous run"""
    window: OddWidth = 21
    """filter width in frames (odd; 21 frames = 1.05 s at 20 Hz; chosen on validation blocks)"""
    keep: float = Field(1.0, gt=0.0, le=1.0)
    """share of pseudo-labelled frames kept: those whose prediction and mirrored prediction
    agree best (1: all)"""
    label_repeat: int = Field(5, ge=1)
    """the labelled frames appear this many times in each student epoch"""
    init: Literal["teacher", "parent"] = "teacher"
    """the student starts from the teacher's weights, or from the re-headed parent"""
    freeze: int = Field(0, ge=0)
    """encoder stages (from the input) the student keeps frozen (0: every stage trains)"""
    epochs: int = Field(6, ge=1)
    """student epochs (fixed: every epoch runs, the last weights stay)"""
    lr_scale: float = Field(1.0, gt=0.0)
    """the student trains at train.lr times this"""
    rounds: int = Field(1, ge=1, le=5)
    """teacher -> student rounds (the student of one round labels the frames for the next)"""
    recalibrate: bool = False
    """fit a per-output gain on the labelled frames after the last round"""
    keep_spread: bool = False
    """after the smoothing, stretch each label's pseudo-labels about their mean back to the
    standard deviation they had before it (the smoothing shrinks them, and the student's
    predictions with them: docs/selftrain.md, "The student, round two")"""
    teacher: Literal["network", "motion"] = "network"
    """who labels `motion_labels`: the network teacher alone, or the motion teacher (a ridge,
    fitted on the labelled frames, of the label on the parent network's prediction and the
    recording's future optical flow; `transfer.motion`); other labels keep the network's"""
    motion: MotionConfig = Field(default_factory=MotionConfig)
    """the motion features the motion teacher reads"""
    motion_labels: list[str] = Field(default_factory=lambda: ["user/angle"])
    """labels the motion teacher labels (the car's yaw follows steering)"""


def smooth_labels(labels: np.ndarray, segments: np.ndarray, method: str, window: int) -> np.ndarray:
    """`labels` (N, L) filtered along axis 0 within each run of equal `segments` (N,) ids.

    Runs shorter than `window` use the largest odd width that fits (median filter for them
    when Savitzky-Golay would have fewer than 5 points); a column with NaN in a run is left
    as it is there.
    """
    from scipy.ndimage import median_filter
    from scipy.signal import savgol_filter

    if method not in SMOOTHERS:
        raise ValueError(f"smoothing must be one of {SMOOTHERS}, got {method!r}")
    out = np.array(labels, dtype=np.float64, copy=True)
    for rows, width in _smoothed_runs(segments, method, window):
        for j in range(out.shape[1]):
            column = out[rows, j]
            if not np.isfinite(column).all():
                continue
            if method == "savgol" and width >= 5:
                out[rows, j] = savgol_filter(column, width, polyorder=2, mode="interp")
            else:
                out[rows, j] = median_filter(column, size=width, mode="nearest")
    return out


def _smoothed_runs(segments: np.ndarray, method: str, window: int) -> list[tuple[np.ndarray, int]]:
    """(rows, filter width) of each run of equal `segments` ids that `smooth_labels` filters
    (a run too short for a width of 3 is not)."""
    if method == "none" or window <= 1 or len(segments) == 0:
        return []
    cuts = np.flatnonzero(np.diff(segments) != 0) + 1
    runs = []
    for rows in np.split(np.arange(len(segments)), cuts):
        width = min(window, len(rows) if len(rows) % 2 else len(rows) - 1)
        if width >= 3:
            runs.append((rows, width))
    return runs


def stretched_about_mean(values: np.ndarray, std: float) -> tuple[np.ndarray, float]:
    """(`values` (N,) stretched about their mean to standard deviation `std`, the factor they
    were stretched by); constant `values` are returned as they are, with factor 1."""
    spread = float(np.std(values))
    if spread <= 0:
        return values, 1.0
    centre = float(np.mean(values))
    return centre + (values - centre) * (std / spread), std / spread


def smoothed(raw: np.ndarray, segments: np.ndarray, config: SelfTrainConfig) -> np.ndarray:
    """`raw` (N, L) smoothed as `config` says (`smooth_labels`), and with `keep_spread` each
    column's smoothed values (the runs `smooth_labels` filtered: not those with a NaN in the
    column, nor runs too short to filter) stretched about their mean to the standard deviation
    the raw values of those frames have (a constant column stays as it is)."""
    labels = smooth_labels(raw, segments, config.smooth, config.window)
    if not config.keep_spread:
        return labels
    runs = _smoothed_runs(segments, config.smooth, config.window)
    for j in range(labels.shape[1]):
        touched = [rows for rows, _ in runs if np.isfinite(raw[rows, j]).all()]
        if not touched:
            continue
        rows = np.concatenate(touched)
        labels[rows, j] = stretched_about_mean(labels[rows, j], float(np.std(raw[rows, j])))[0]
    return labels


@dataclass
class PseudoLabels:
    """The teacher's labels of the unlabeled frames, and how far to trust each."""

    images: torch.Tensor
    """(N, 3, H, W) uint8, in time order"""
    raw: np.ndarray
    """(N, L) mean of the prediction and the (sign-corrected) mirrored prediction"""
    labels: np.ndarray
    """(N, L) `raw` smoothed along time"""
    disagreement: np.ndarray
    """(N,) |prediction - mirrored prediction| summed over the mirrored labels"""
    segments: np.ndarray
    """(N,) id of the contiguous run each frame is in"""
    kept: np.ndarray
    """(N,) bool: frames the student trains on"""

    def summary(self) -> dict[str, Any]:
        return {
            "frames": len(self.raw),
            "kept": int(self.kept.sum()),
            "runs": int(len(np.unique(self.segments))),
            "mean_disagreement": float(self.disagreement.mean()) if len(self.raw) else None,
        }


def direct_and_mirrored(
    network: DrivingNet, images: torch.Tensor, augment: Augmentation
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """((N, L) `network`'s prediction of `images`, (N, L) its prediction of their mirror
    images with the signed labels negated back, (L,) those signs)."""
    signs = augment.mirror_signs(network.spec.outputs).double().numpy()
    return predict(network, images), predict(network, images.flip(3)) * signs, signs


def pseudo_label(
    teacher: DrivingNet,
    images: torch.Tensor,
    segments: np.ndarray,
    config: SelfTrainConfig,
    augment: Augmentation,
) -> PseudoLabels:
    """Label `images` (N, 3, H, W) uint8 in time order with `teacher` (mirror-averaged),
    smooth along time within `segments`, and mark the most mirror-consistent `keep` share."""
    direct, mirrored, signs = direct_and_mirrored(teacher, images, augment)
    raw = (direct + mirrored) / 2.0
    flipped = signs < 0
    disagreement = (
        np.abs(direct - mirrored)[:, flipped].sum(axis=1) if flipped.any() else np.zeros(len(raw))
    )
    labels = smoothed(raw, segments, config)
    kept = np.ones(len(raw), dtype=bool)
    if config.keep < 1.0 and len(raw):
        n = max(1, round(config.keep * len(raw)))
        kept[:] = False
        kept[np.argsort(disagreement, kind="stable")[:n]] = True
    return PseudoLabels(images, raw, labels, disagreement, segments, kept)


def recorded_agreement(
    pseudo: PseudoLabels,
    truth: np.ndarray,
    outputs: Sequence[str],
    records: Sequence[Record] | None = None,
) -> dict[str, dict[str, float]]:
    """Per output recorded on at least 10 of the kept pseudo-labelled frames (`truth` (N, L),
    NaN: not recorded), R² and Pearson r of the teacher's labels before (`raw`) and after the
    smoothing (`smoothed`, what the student trains on) against the recorded labels, and the
    frame count. A diagnostic the card keeps: nothing trains on the recorded labels, and an
    unlabeled recording without them gives {} (docs/selftrain.md, "The student, round two").
    `records` (the frames' records, in order): frames the pilot drove (`include_pilot`) are
    left out, their recorded user/ labels being the idle joystick's, not a person's."""
    from sklearn.metrics import r2_score

    from sim2real.transfer.records import PILOT_MODES

    person = np.ones(len(truth), dtype=bool)
    if records is not None:
        person = np.array([r.mode not in PILOT_MODES for r in records], dtype=bool)
    out: dict[str, dict[str, float]] = {}
    for j, name in enumerate(outputs):
        y = truth[:, j]
        ok = pseudo.kept & person & np.isfinite(y) & np.isfinite(pseudo.raw[:, j])
        ok &= np.isfinite(pseudo.labels[:, j])
        if ok.sum() < 10 or np.ptp(y[ok]) == 0:
            continue
        scores: dict[str, float] = {"frames": int(ok.sum())}
        for key, pred in (("raw", pseudo.raw[ok, j]), ("smoothed", pseudo.labels[ok, j])):
            scores[f"{key}_r2"] = float(r2_score(y[ok], pred))
            scores[f"{key}_r"] = float(np.corrcoef(pred, y[ok])[0, 1]) if np.ptp(pred) else 0.0
        out[name] = scores
    return out


def check_sources(sources: Sequence[str]) -> None:
    """FileNotFoundError naming the first of `sources` that does not exist."""
    for path in sources:
        if not Path(path).expanduser().exists():
            raise FileNotFoundError(f"--pseudo-label {path}: no such file or folder")


def unlabeled_records(
    config: SelfTrainConfig,
    sources: Sequence[str],
    *,
    exclude: Sequence[Path] = (),
    seed: int = 0,
    include_pilot: bool = False,
) -> list[Record]:
    """The records `unlabeled_frames` reads (before decoding), in time order; its ValueError
    when fewer than 10 are left. Cheap (no image is read): `finetune` calls it before it
    writes anything or trains the teacher."""
    from sim2real.transfer.datasets import open_records
    from sim2real.transfer.splits import streams, subsample

    names = ", ".join(map(str, sources))
    check_sources(sources)
    records = open_records(list(sources), include_pilot=include_pilot).records
    skip = {str(Path(p)) for p in exclude}
    kept = [r for stream in streams(records) for r in stream if str(Path(r.image_path)) not in skip]
    if len(kept) < 10:
        raise ValueError(
            f"--pseudo-label {names}: {len(kept)} usable frame(s) after leaving out "
            f"{len(records) - len(kept)} held-out or labelled frame(s); 10 are needed"
        )
    if config.max_frames is not None and len(kept) > config.max_frames:
        kept = subsample(kept, config.max_frames, seed, block_len=config.block_frames)
    return kept


def unlabeled_frames(
    config: SelfTrainConfig,
    sources: Sequence[str],
    outputs: Sequence[str],
    preprocessing: Preprocessing,
    *,
    exclude: Sequence[Path] = (),
    seed: int = 0,
    include_pilot: bool = False,
    cache_dir: Path | None = None,
    progress: bool = True,
) -> tuple[torch.Tensor, np.ndarray, np.ndarray, list[Record]]:
    """(images (N, 3, H, W) uint8, run ids (N,), labels (N, L) if the files have them, else
    NaN: for diagnostics only, the N records: for their motion features) of the unlabeled
    frames of `sources`, in time order.

    Records whose image is in `exclude` are dropped first (the labelled data's validation and
    test blocks and its labelled frames; frames the pilot drove are read with
    `include_pilot`, as `--include-pilot` reads the labelled data), then at most
    `config.max_frames` are kept as blocks of `config.block_frames`. ValueError as `--data`
    gives for a path without frames, and when fewer than 10 frames are left.
    """
    from sim2real.transfer.datasets import DrivingDataset

    kept = unlabeled_records(
        config, sources, exclude=exclude, seed=seed, include_pilot=include_pilot
    )
    dataset = DrivingDataset(kept, preprocessing, list(outputs), cache_dir, progress=progress)
    images, targets = dataset_tensors(dataset)  # (undecodable frames are dropped)
    segments = run_ids(dataset.records)  # a left-out, deleted or undecodable frame ends a run
    return images, segments, targets.numpy().astype(np.float64), list(dataset.records)


def train_student(
    student: DrivingNet,
    labelled: tuple[torch.Tensor, torch.Tensor],
    pseudo: PseudoLabels,
    config: SelfTrainConfig,
    train: TrainConfig,
    out_dir: Path,
    *,
    resume: bool = False,
) -> FitResult:
    """Train `student` in place: its first `config.freeze` stages frozen, the rest and the
    head on the labelled frames (x `label_repeat`) and the kept pseudo-labelled ones, with
    `train`'s augmentation, for `config.epochs` epochs (no early stopping)."""
    freeze_stages(student, config.freeze)
    images, targets = labelled
    keep = torch.as_tensor(np.flatnonzero(pseudo.kept), dtype=torch.long)
    x = torch.cat([images.repeat(config.label_repeat, 1, 1, 1), pseudo.images[keep]])
    y = torch.cat(
        [
            targets.float().repeat(config.label_repeat, 1),
            torch.as_tensor(pseudo.labels[pseudo.kept], dtype=torch.float32),
        ]
    )
    lr = train.lr * config.lr_scale
    cfg = train.model_copy(update={"epochs": config.epochs, "patience": 0, "lr": lr})
    groups = param_groups(student, lr)
    return fit(student, TensorDataset(x, y), None, cfg, out_dir, param_groups=groups, resume=resume)


def recalibrate(model: DrivingNet, labelled: tuple[torch.Tensor, torch.Tensor]) -> list[dict]:
    """Fit one gain per output (through 0) on the labelled frames; fold it into the model."""
    images, targets = labelled
    pred = predict(model, images)
    truth = targets.double().numpy()
    fitted = []
    for i, name in enumerate(model.spec.outputs):
        ok = np.isfinite(truth[:, i])
        if ok.sum() < 2:
            continue
        gain, offset = fit_affine(pred[ok, i], truth[ok, i], offset=False)
        affine_output(model, name, gain, offset)
        fitted.append({"output": name, "gain": gain})
    return fitted


def mirrored_prediction(
    network: DrivingNet, images: torch.Tensor, augment: Augmentation
) -> np.ndarray:
    """(N, L) mean of `network`'s prediction of `images` and of their mirror images (signed
    labels negated back)."""
    direct, mirrored, _ = direct_and_mirrored(network, images, augment)
    return (direct + mirrored) / 2.0


def motion_records(config: FinetuneConfig, sources: Sequence[str]) -> list[Record]:
    """Every frame the motion features may read, in time order: the frames of `sources` and
    of `config.data`, never `config.data`'s validation or test blocks (nor the gaps before
    them), so flow from a training frame stops at the training part's end."""
    from sim2real.transfer.cotrain import held_out_images
    from sim2real.transfer.datasets import open_records
    from sim2real.transfer.splits import streams

    held = {str(p) for p in held_out_images(config)} if config.data else set()
    paths = list(dict.fromkeys([*map(str, sources), *map(str, config.data)]))
    records = open_records(paths, include_pilot=config.include_pilot).records
    seen: set[str] = set()
    allowed = []
    for stream in streams(records):
        for record in stream:
            key = str(Path(record.image_path))
            if key not in held and key not in seen:
                seen.add(key)
                allowed.append(record)
    return allowed


@dataclass
class MotionLabels:
    """The motion teacher's labels of the unlabeled frames (or why there are none)."""

    raw: np.ndarray | None
    """(N, L) like `PseudoLabels.raw`, NaN in the labels it does not give; None: not used"""
    report: dict[str, Any]
    """what the card records: per label the ridge's CV R² / r and penalty, next to the parent
    network's alone; or `fallback`, the reason it was not used"""


def motion_labels(
    config: FinetuneConfig,
    sources: Sequence[str],
    labelled: tuple[torch.Tensor, torch.Tensor],
    labelled_records: Sequence[Record],
    unlabeled: torch.Tensor,
    unl_records: Sequence[Record],
    outputs: Sequence[str],
) -> MotionLabels:
    """Fit, on the labelled frames, a ridge of each of `selftrain.motion_labels` on [the
    parent network's mirror-averaged prediction, the lagged motion features] (penalty by
    K-fold CV over the labelled runs) and label the unlabeled frames with it.

    The network input is the parent's (the checkpoint fine-tuned from), not the teacher's:
    the teacher has been fitted on these very labelled frames, so its in-sample predictions
    would look better than they are and take the ridge's weight from the motion."""
    st = config.selftrain
    assert st is not None
    wanted = [name for name in st.motion_labels if name in outputs]
    if not wanted:
        return MotionLabels(None, {"fallback": f"none of {st.motion_labels} among {outputs}"})
    images, targets = labelled
    if len(images) < 10:
        return MotionLabels(None, {"fallback": f"{len(images)} labelled frames, 10 needed"})
    cache_dir = Path(config.cache_dir) if config.cache_dir else None  # None: the default cache
    span = motion_span(motion_records(config, sources), st.motion, cache_dir)
    long_enough = span.run_length(labelled_records) >= st.motion.min_run
    if long_enough.mean() < 0.5:
        return MotionLabels(
            None,
            {
                "fallback": f"{int((~long_enough).sum())} of {len(images)} labelled frames sit "
                f"in runs shorter than {st.motion.min_run} frames (no order or too short to "
                "see the car's motion)"
            },
        )
    parent, _ = load_checkpoint(config.checkpoint)
    parent.spec.mirror_average = False
    augment = config.train.augment
    motion_lab, motion_unl = span.of(labelled_records), span.of(unl_records)
    groups = run_ids(labelled_records)
    raw = np.full((len(unlabeled), len(outputs)), np.nan)
    fits: dict[str, Any] = {}
    net_lab = mirrored_prediction(parent, images, augment)
    net_unl = mirrored_prediction(parent, unlabeled, augment)
    parent_outputs = list(parent.spec.outputs)
    for name in wanted:
        j = list(outputs).index(name)
        y = targets[:, j].double().numpy()
        ok = np.isfinite(y)
        if ok.sum() < 10:
            continue
        if name in parent_outputs:
            k = parent_outputs.index(name)
            x_lab = teacher_inputs(net_lab[:, k], motion_lab)
            x_unl = teacher_inputs(net_unl[:, k], motion_unl)
            alone = fit_ridge_cv(net_lab[ok, k : k + 1], y[ok], groups[ok])
        else:
            x_lab, x_unl, alone = motion_lab, motion_unl, None
        fit = fit_ridge_cv(x_lab[ok], y[ok], groups[ok])
        raw[:, j] = fit.predict(x_unl)
        fits[name] = {
            "cv_r2": fit.cv_r2,
            "cv_r": fit.cv_r,
            "alpha": fit.alpha,
            "network_alone_cv_r2": None if alone is None else alone.cv_r2,
            "network_alone_cv_r": None if alone is None else alone.cv_r,
        }
    if not fits:
        return MotionLabels(None, {"fallback": "fewer than 10 labelled values to fit"})
    report = {
        "motion": st.motion.model_dump(mode="json"),
        "frames_read": len(span.runs),
        "labels": fits,
    }
    return MotionLabels(raw, report)


def with_motion(
    pseudo: PseudoLabels, motion: MotionLabels, config: SelfTrainConfig
) -> PseudoLabels:
    """`pseudo` with the motion teacher's labels where it gives them, smoothed the same way."""
    if motion.raw is None:
        return pseudo
    raw = np.where(np.isfinite(motion.raw), motion.raw, pseudo.raw)
    labels = smoothed(raw, pseudo.segments, config)
    return PseudoLabels(
        pseudo.images, raw, labels, pseudo.disagreement, pseudo.segments, pseudo.kept
    )


def selftrain_sources(config: FinetuneConfig, data: TrainingData) -> tuple[list[str], list[Path]]:
    """(unlabeled sources, images to leave out): `selftrain.unlabeled` or the labelled data;
    never the labelled data's validation/test blocks nor its labelled training frames."""
    from sim2real.transfer.cotrain import held_out_images

    st = config.selftrain
    assert st is not None
    sources = list(st.unlabeled) or [str(p) for p in config.data]
    check_sources(sources)
    exclude = held_out_images(config) if config.data else []
    exclude += [Path(r.image_path) for r in data.parts.train]
    return sources, exclude


def check_unlabeled(config: FinetuneConfig, data: TrainingData) -> None:
    """`unlabeled_records`' ValueError (one line) when `config.selftrain` would have fewer
    than 10 unlabeled frames beside `data`'s labelled ones (e.g. every training frame is
    labelled): `finetune` calls it before it writes anything or trains a teacher."""
    st = config.selftrain
    assert st is not None
    sources, exclude = selftrain_sources(config, data)
    unlabeled_records(
        st, sources, exclude=exclude, seed=config.train.seed, include_pilot=config.include_pilot
    )


def finetune_selftrain(
    config: FinetuneConfig,
    out_dir: Path,
    data: TrainingData,
    *,
    resume: bool = False,
    started: float | None = None,
    log_line: Callable[[str], None] | None = None,
) -> FinetuneResult:
    """`finetune` with `config.selftrain`: teacher (in ``out_dir/teacher``), pseudo-labels,
    student (this run's checkpoint); the card's last step records all three."""
    from sim2real.transfer.finetune import (
        FinetuneResult,
        build_model,
        finetune,
        scored_as_saved,
    )

    started = time.perf_counter() if started is None else started
    st = config.selftrain
    assert st is not None
    say = log_line or (lambda line: log.info(line))
    sources, exclude = selftrain_sources(config, data)  # a bad path fails before training
    teacher_cfg = config.model_copy(update={"selftrain": None})
    t0 = time.perf_counter()
    teacher_run = finetune(
        teacher_cfg, out_dir / "teacher", resume=resume, data=data, log_line=log_line
    )
    teacher_seconds = time.perf_counter() - t0
    teacher, _ = load_checkpoint(out_dir / "teacher")
    teacher.spec.mirror_average = False  # pseudo_label averages f and its mirror itself
    cache_dir = Path(config.cache_dir) if config.cache_dir else None
    t0 = time.perf_counter()
    images, segments, recorded, unl_records = unlabeled_frames(
        st,
        sources,
        teacher.spec.outputs,
        teacher.spec.preprocessing,
        exclude=exclude,
        seed=config.train.seed,
        include_pilot=config.include_pilot,
        cache_dir=cache_dir,
        progress=config.train.progress,
    )
    read_seconds = time.perf_counter() - t0
    labelled = dataset_tensors(data.train)
    motion = MotionLabels(None, {})
    if st.teacher == "motion":
        t0 = time.perf_counter()
        motion = motion_labels(
            config,
            sources,
            labelled,
            data.train.records,
            images,
            unl_records,
            teacher.spec.outputs,
        )
        motion.report["seconds"] = time.perf_counter() - t0
        if motion.raw is None:
            say(f"motion teacher off, the network teacher labels: {motion.report['fallback']}")
        else:
            fitted = ", ".join(
                f"{name} CV R² {f['cv_r2']:.2f} (network alone {f['network_alone_cv_r2']:.2f})"
                if f["network_alone_cv_r2"] is not None
                else f"{name} CV R² {f['cv_r2']:.2f}"
                for name, f in motion.report["labels"].items()
            )
            say(f"motion teacher: {fitted}, {motion.report['seconds']:.1f} s")
    rounds: list[dict[str, Any]] = []
    fits: list[FitResult] = []
    student = teacher
    for r in range(st.rounds):
        t0 = time.perf_counter()
        pseudo = pseudo_label(student, images, segments, st, config.train.augment)
        pseudo = with_motion(pseudo, motion, st)
        student = teacher_copy(teacher) if st.init == "teacher" else build_model(config)[0]
        fit_dir = out_dir if st.rounds == 1 else out_dir / f"round{r + 1}"
        fits.append(
            train_student(student, labelled, pseudo, st, config.train, fit_dir, resume=resume)
        )
        rounds.append(
            {
                **pseudo.summary(),
                "seconds": time.perf_counter() - t0,
                "recorded": recorded_agreement(pseudo, recorded, teacher.spec.outputs, unl_records),
            }
        )
        say(
            f"self-training round {r + 1}: {pseudo.summary()['kept']} pseudo-labelled + "
            f"{len(labelled[0])} labelled frames (x{st.label_repeat}), {st.epochs} epochs, "
            f"{rounds[-1]['seconds']:.1f} s"
        )
    student.spec.mirror_average = config.mirror_for(None)  # the gain: of the network as saved
    calibration = recalibrate(student, labelled) if st.recalibrate else []
    last = fits[-1]
    report = FitResult(
        best_epoch=last.epochs_run,
        best_val_loss=None,
        epochs_run=sum(f.epochs_run for f in fits),
        stopped_early=False,
        val_metrics={},
        history=last.history,
        seconds=sum(f.seconds for f in fits),
    )
    report = scored_as_saved(student, config.mirror_for(None), data.val, config.train, report)
    frozen = frozen_stages(student)
    seconds = time.perf_counter() - started
    teacher_step = teacher_run.card.history[-1]
    parent = checkpoint_reference(str(config.checkpoint))
    step = {
        "step": "finetune_selftrain",
        "finished_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "parent": parent,
        "selftrain": st.model_dump(mode="json"),
        "unlabeled_sources": [str(Path(p).expanduser().resolve()) for p in sources],
        "teacher": {
            "checkpoint": str((out_dir / "teacher").resolve()),
            "adapter": teacher_step.get("adapter"),
            "rung": teacher_run.ladder.pick if teacher_run.ladder is not None else None,
            "ladder": teacher_step.get("ladder"),
            "seconds": teacher_seconds,
        },
        "unlabeled_read_seconds": read_seconds,
        "motion_teacher": motion.report or None,
        "rounds": rounds,
        "calibration": calibration,
        "frozen_stages": frozen,
        "train": config.train.model_dump(mode="json"),
        "data": data.trained_on,
        "seconds": seconds,
    }
    card = save_adapted(
        out_dir,
        student,
        read_card(config.checkpoint),
        trained_on={
            **data.trained_on,
            "parent_checkpoint": parent,
            "pseudo_labelled": rounds[-1]["kept"],
        },
        split=data.split,
        metrics=report.card_metrics(),
        step=step,
        mirror_average=config.mirror_for(None),
    )
    return FinetuneResult(out_dir, card, [report], frozen, False, seconds, teacher_run.ladder)


def teacher_copy(teacher: DrivingNet) -> DrivingNet:
    """A trainable copy of `teacher` (every parameter thawed, BatchNorm back to train)."""
    import copy

    from sim2real.agents.freezing import unfreeze_stages

    student = copy.deepcopy(teacher)
    unfreeze_stages(student, "all")
    for p in student.parameters():
        p.requires_grad_(True)
    return student
