"""Probes of the motion teacher outside `finetune` (docs/selftrain.md, "The motion teacher").

    python benchmarks/motion_probe.py flow TUB METHOD:SCALE:FIRST:LAST ...
        the flow method, scale and lags: a ridge of steering on the lagged motion features
        alone, fitted on the training part (every frame, and finetune's 100-frame block
        subsample for seeds 0-2), scored on the validation block
    python benchmarks/motion_probe.py inputs TUB
        the teacher's inputs at N = 100 (seeds 0-2): motion alone, [parent network, motion],
        the network alone; fitted on the 100 frames, scored on the validation block
    python benchmarks/motion_probe.py zero-shot TUB [CHECKPOINT]
        issue 16, no label: a ridge of the network's steering on the motion features over the
        training part; the network, that ridge and their average, each calibrated (gain and
        offset) on the validation block, scored on the test block
    python benchmarks/motion_probe.py causal TUB CHECKPOINT
        what a pilot that also sees the past could gain (issues 15, 20): a ridge of steering on
        the network's prediction and the PAST flow only (lags -K..-1, what a car can compute),
        fitted on the validation block, scored on the test block, beside the prediction alone
        calibrated the same way

Cut as `finetune` cuts (the real split, seed 0); motion features of each block from that block
alone. $MOTION_CACHE (default ./motion-cache) holds frames and features.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from sim2real.agents.augment import Augmentation
from sim2real.agents.checkpoint import load_checkpoint
from sim2real.transfer.datasets import DrivingDataset, open_records
from sim2real.transfer.finetune import REAL_SPLIT
from sim2real.transfer.motion import (
    FEATURES,
    MotionConfig,
    fit_ridge_cv,
    motion_span,
    teacher_inputs,
)
from sim2real.transfer.records import run_ids
from sim2real.transfer.selftrain import mirrored_prediction
from sim2real.transfer.splits import split_records, subsample

CACHE = Path(os.environ.get("MOTION_CACHE", "motion-cache"))


def score(pred: np.ndarray, truth: np.ndarray) -> str:
    r2 = 1 - np.mean((pred - truth) ** 2) / np.var(truth)
    return f"R2 {r2:.3f} r {np.corrcoef(pred, truth)[0, 1]:.3f}"


def steering(records) -> np.ndarray:
    return np.array([r.labels["user/angle"] for r in records])


def flow(tub: str, settings: list[str]) -> None:
    parts = split_records(open_records([tub]).records, REAL_SPLIT, seed=0)
    y_val = steering(parts.val)
    for setting in settings:
        method, scale, first, last = setting.split(":")
        config = MotionConfig(
            method=method, scale=float(scale), first_lag=int(first), last_lag=int(last)
        )
        t0, c0 = time.perf_counter(), time.process_time()
        train = motion_span(parts.train, config, CACHE)
        x_val = motion_span(parts.val, config, CACHE).of(parts.val)
        seconds = f"{time.perf_counter() - t0:.1f} s wall, {time.process_time() - c0:.1f} CPU s"
        chunks = np.arange(len(parts.train)) // 200
        fit = fit_ridge_cv(train.of(parts.train), steering(parts.train), chunks)
        line = [f"all {score(fit.predict(x_val), y_val)}"]
        for seed in range(3):
            sub = subsample(parts.train, 100, seed)
            fit = fit_ridge_cv(train.of(sub), steering(sub), run_ids(sub))
            line.append(f"s{seed} {score(fit.predict(x_val), y_val)} (CV R2 {fit.cv_r2:.2f})")
        print(Path(tub).name, setting, seconds, "|", " | ".join(line), flush=True)


def network_and_motion(net, records, config: MotionConfig):
    """(mirror-averaged network steering, lagged motion features, steering labels, records
    as decoded) of `records`, their motion read from `records` alone."""
    data = DrivingDataset(records, net.spec.preprocessing, ["user/angle"], CACHE, progress=False)
    k = list(net.spec.outputs).index("user/angle")
    pred = mirrored_prediction(net, data.images, Augmentation())[:, k]
    motion = motion_span(data.records, config, CACHE).of(data.records)
    return pred, motion, data.targets[:, 0].double().numpy(), data.records


def inputs(tub: str) -> None:
    net, _ = load_checkpoint("pilotnet-recipe")
    net.spec.mirror_average = False
    parts = split_records(open_records([tub]).records, REAL_SPLIT, seed=0)
    config = MotionConfig()
    span = motion_span(parts.train, config, CACHE)
    p_val, m_val, y_val, _ = network_and_motion(net, parts.val, config)
    for seed in range(3):
        p, _, y, records = network_and_motion(net, subsample(parts.train, 100, seed), config)
        m, groups = span.of(records), run_ids(records)
        motion = fit_ridge_cv(m, y, groups)
        both = fit_ridge_cv(teacher_inputs(p, m), y, groups)
        alone = fit_ridge_cv(p[:, None], y, groups)
        print(
            Path(tub).name,
            f"seed {seed}: motion {score(motion.predict(m_val), y_val)} (CV {motion.cv_r2:.2f})",
            f"| network + motion {score(both.predict(teacher_inputs(p_val, m_val)), y_val)}",
            f"(CV {both.cv_r2:.2f}) | network {score(alone.predict(p_val[:, None]), y_val)}",
            flush=True,
        )


def zero_shot(tub: str, checkpoint: str) -> None:
    net, _ = load_checkpoint(checkpoint)
    net.spec.mirror_average = False
    parts = split_records(open_records([tub]).records, REAL_SPLIT, seed=0)
    config = MotionConfig()
    p_train, m_train, _, _ = network_and_motion(net, parts.train, config)
    p_val, m_val, y_val, _ = network_and_motion(net, parts.val, config)
    p_test, m_test, y_test, _ = network_and_motion(net, parts.test, config)
    fit = fit_ridge_cv(m_train, p_train, np.arange(len(p_train)) // 200)
    print(f"{Path(tub).name}: network ~ motion over {len(p_train)} training-part frames, CV R2 "
          f"{fit.cv_r2:.3f} r {fit.cv_r:.3f}")  # fmt: skip
    arms = {
        "network": (p_val, p_test),
        "motion": (fit.predict(m_val), fit.predict(m_test)),
        "average": ((p_val + fit.predict(m_val)) / 2, (p_test + fit.predict(m_test)) / 2),
    }
    for name, (val, test) in arms.items():
        gain, offset = np.polyfit(val, y_val, 1)
        print(
            f"{Path(tub).name} {name}: test uncalibrated {score(test, y_test)} | calibrated on "
            f"val ({len(y_val)}): val {score(gain * val + offset, y_val)}, test "
            f"{score(gain * test + offset, y_test)} ({len(y_test)} frames)",
            flush=True,
        )


def causal(tub: str, checkpoint: str) -> None:
    net, _ = load_checkpoint(checkpoint)
    net.spec.mirror_average = False
    parts = split_records(open_records([tub]).records, REAL_SPLIT, seed=0)
    config = MotionConfig(first_lag=-8, last_lag=-1)  # lag blocks -8..-1, in that order
    p_val, m_val, y_val, _ = network_and_motion(net, parts.val, config)
    p_test, m_test, y_test, _ = network_and_motion(net, parts.test, config)
    gain, offset = np.polyfit(p_val, y_val, 1)
    print(f"{Path(tub).name} network alone, calibrated on val: test "
          f"{score(gain * p_test + offset, y_test)}")  # fmt: skip
    groups = np.arange(len(y_val)) // 200
    for k in (1, 2, 4, 8):  # lags -k..-1: the last k blocks of FEATURES columns
        cols = slice(m_val.shape[1] - k * len(FEATURES), None)
        fit = fit_ridge_cv(teacher_inputs(p_val, m_val[:, cols]), y_val, groups)
        print(
            f"{Path(tub).name} network + past flow lags -{k}..-1, fitted on val: test "
            f"{score(fit.predict(teacher_inputs(p_test, m_test[:, cols])), y_test)}",
            flush=True,
        )


if __name__ == "__main__":
    torch.set_num_threads(1)
    command, tub, *rest = sys.argv[1:]
    if command == "flow":
        flow(tub, rest)
    elif command == "inputs":
        inputs(tub)
    elif command == "causal":
        causal(tub, rest[0])
    else:
        zero_shot(tub, rest[0] if rest else "pilotnet-recipe")
