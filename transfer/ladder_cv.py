"""The ladder's ``auto``: a rung and its epoch count picked by K-fold cross-validation.

K-fold cross-validation over contiguous time blocks of the N training frames (`kfold_blocks`,
a gap at each cut); each rung trains on K-1 blocks (`transfer.ladder.train_rung`) and scores
the held-out block every epoch; the per-epoch validation loss is averaged over folds, each
rung's best epoch found, and the simplest rung within one standard error of the best is
picked (the 1-SE rule), with its epoch count. The picked rung then trains on all N frames for
that many epochs.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from sim2real.agents.model import DrivingNet
from sim2real.agents.training import TrainConfig
from sim2real.transfer.ladder import (
    CLOSED_FORM,
    RUNGS,
    ActivationCache,
    LadderConfig,
    check_rung,
    train_rung,
)
from sim2real.transfer.splits import kfold_blocks

__all__ = ["LadderSearch", "RungScore", "cross_validate", "pick_rung", "score_rung"]


@dataclass
class RungScore:
    """One row of the cross-validation table."""

    rung: str
    mean: float
    """mean over folds of the held-out loss at the best epoch"""
    se: float
    """its standard error over folds (std / sqrt(K))"""
    epochs: int
    """best epoch of the fold-averaged curve (0: closed form)"""
    seconds: float
    """wall-clock seconds of this rung's cross-validation"""
    curve: list[float]
    """fold-averaged held-out loss per epoch (a fold that stopped early keeps its last value)"""
    probe_epochs: int | None = None
    cpu_seconds: float = 0.0
    """CPU seconds of this process (every thread) during the rung's cross-validation"""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class LadderSearch:
    """The cross-validation table and the pick."""

    scores: list[RungScore]
    pick: str
    epochs: int
    probe_epochs: int | None
    best: str
    folds: int
    gap: int
    frames: int
    rule: str
    seconds: float
    cache_seconds: float

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["scores"] = [s.to_dict() for s in self.scores]
        return out

    def table(self) -> str:
        """The table as text: rung, mean +- SE of the held-out loss, epochs, seconds."""
        lines = [
            f"{self.folds}-fold CV over {self.frames} frames (contiguous blocks, gap "
            f"{self.gap}); {self.rule}",
            f"  {'rung':10s} {'val loss':>10s} {'SE':>8s} {'epochs':>7s} {'seconds':>8s} "
            f"{'CPU s':>7s}",
        ]
        for s in self.scores:
            mark = "  <- picked" if s.rung == self.pick else ""
            mark += "  (lowest)" if s.rung == self.best and s.rung != self.pick else ""
            lines.append(
                f"  {s.rung:10s} {s.mean:10.4f} {s.se:8.4f} {s.epochs:7d} {s.seconds:8.1f} "
                f"{s.cpu_seconds:7.1f}{mark}"
            )
        return "\n".join(lines)


def _fold_curves(curves: Sequence[Sequence[float]]) -> np.ndarray:
    """(folds, epochs) array; a fold that stopped early keeps its last value."""
    width = max(len(c) for c in curves)
    return np.array([list(c) + [c[-1]] * (width - len(c)) for c in curves], dtype=np.float64)


def score_rung(
    model: DrivingNet,
    rung: str,
    cache: ActivationCache,
    folds: list[tuple[np.ndarray, np.ndarray]],
    train: TrainConfig,
    ladder: LadderConfig,
    *,
    probe_epochs: int | None = None,
    lr_decay: float = 1.0,
) -> RungScore:
    """Cross-validate `rung`: train a copy of `model` on each fold, average the held-out
    loss per epoch over folds, and find the best epoch."""
    started, cpu = time.perf_counter(), time.process_time()
    quiet = train.model_copy(update={"progress": False, "tensorboard": False})
    curves = []
    for train_idx, val_idx in folds:
        run = train_rung(
            copy.deepcopy(model),
            rung,
            cache,
            train_idx,
            val_idx,
            quiet,
            ladder,
            probe_epochs=probe_epochs,
            lr_decay=lr_decay,
        )
        curves.append([h["val_loss"] for h in run.fits[-1].history])
    table = _fold_curves(curves)
    mean = table.mean(axis=0)
    best = int(np.argmin(mean))
    se = float(table[:, best].std(ddof=1) / math.sqrt(len(folds)))
    return RungScore(
        rung=rung,
        mean=float(mean[best]),
        se=se,
        epochs=0 if rung in CLOSED_FORM else best + 1,
        seconds=time.perf_counter() - started,
        curve=[float(v) for v in mean],
        probe_epochs=probe_epochs,
        cpu_seconds=time.process_time() - cpu,
    )


def pick_rung(scores: Sequence[RungScore], *, one_se: bool = True) -> RungScore:
    """The lowest mean held-out loss, or with `one_se` the first (simplest) rung in `scores`
    whose mean is within one standard error of that lowest one (Hastie et al.'s 1-SE rule:
    with about 100 frames, differences under one SE are noise, and less capacity is safer)."""
    if not scores:
        raise ValueError("no rung was scored")
    best = min(scores, key=lambda s: s.mean)
    if not one_se:
        return best
    return next(s for s in scores if s.mean <= best.mean + best.se)


def cross_validate(
    model: DrivingNet,
    cache: ActivationCache,
    train: TrainConfig,
    ladder: LadderConfig,
    *,
    rungs: Sequence[str] | None = None,
    lr_decay: float = 1.0,
    log_line=None,
) -> LadderSearch:
    """Score `rungs` (default: the ladder's) by K-fold CV over contiguous time blocks of the
    cached frames and pick one with its epoch count (the 1-SE rule with at most
    ladder.one_se_max_frames frames, unless ladder.one_se is off; else the lowest).

    `model` is the adapted (re-headed, AdaBN'd) network; it is not changed. ValueError (how
    many frames are needed) when there are too few frames for the folds.
    """
    started = time.perf_counter()
    rungs = [r for r in RUNGS if r in set(rungs or ladder.rungs)]
    for rung in rungs:
        check_rung(model, rung)
    try:
        folds = kfold_blocks(len(cache), ladder.folds, gap=ladder.gap)
    except ValueError as exc:
        raise ValueError(
            f"--freeze auto: {exc}; give more frames (--frames), fewer --folds, or name a rung"
        ) from None
    old_threads = torch.get_num_threads()
    if train.num_threads is not None:
        torch.set_num_threads(train.num_threads)
    scores: list[RungScore] = []
    probe_epochs = None
    try:
        for rung in rungs:
            if rung == "lpft":
                probe = next((s for s in scores if s.rung == "probe"), None)
                if probe is None:
                    probe = score_rung(model, "probe", cache, folds, train, ladder)
                probe_epochs = probe.epochs
            score = score_rung(
                model,
                rung,
                cache,
                folds,
                train,
                ladder,
                probe_epochs=probe_epochs if rung == "lpft" else None,
                lr_decay=lr_decay,
            )
            scores.append(score)
            if log_line is not None:
                log_line(
                    f"  cv {rung:10s} val loss {score.mean:.4f} +- {score.se:.4f} "
                    f"at {score.epochs} epochs ({score.seconds:.1f} s)"
                )
    finally:
        torch.set_num_threads(old_threads)
    best = min(scores, key=lambda s: s.mean)
    one_se = ladder.uses_one_se(len(cache))
    pick = pick_rung(scores, one_se=one_se)
    rule = (
        "picked: the simplest rung within one SE of the lowest (1-SE rule)"
        if one_se
        else "picked: the lowest mean held-out loss"
    )
    return LadderSearch(
        scores=scores,
        pick=pick.rung,
        epochs=pick.epochs,
        probe_epochs=pick.probe_epochs,
        best=best.rung,
        folds=ladder.folds,
        gap=ladder.gap,
        frames=len(cache),
        rule=rule,
        seconds=time.perf_counter() - started,
        cache_seconds=cache.seconds,
    )
