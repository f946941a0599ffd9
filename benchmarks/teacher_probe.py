"""Variants of the motion teacher's ridge, fitted as `finetune --frames N` fits it (issue 15,
docs/selftrain.md "The student, round two"): the labelled frames, unlabeled frames, motion
features and parent predictions of `finetune --checkpoint pilotnet-recipe --data TUB --frames
N --seed S` with the command's default self-training (6,000 unlabeled frames), rebuilt
without training anything. Per variant: the ridge's CV R² on the labelled frames and its
pseudo-labels (raw, and Savitzky-Golay smoothed as the student gets them) scored against the
unlabeled frames' TRUE labels (a diagnostic: `finetune` never reads them), and the teacher
applied to the validation block (its motion from that block alone; for choosing), each raw and
smoothed along time with Savitzky-Golay filters of several widths.

    python benchmarks/teacher_probe.py REAL_DIR TUB [SEED...]
    python benchmarks/teacher_probe.py REAL_DIR TUB truth   (the recorded steering, smoothed)

Variants: `base` the default ([parent, 72 lagged flow features], penalty from ALPHAS by
grouped CV); `wide` the same with penalties up to 1e6; `se1` the strongest penalty whose CV
error is within one standard error of the lowest; `motion` the flow features alone; `pcK`
the parent's prediction and the frames' scores on the top K principal components of the
standardised flow features (PCA over every training-part frame the teacher reads: no label).
"""

from __future__ import annotations

import sys

import numpy as np
import torch

from sim2real.agents.checkpoint import load_checkpoint
from sim2real.agents.training import dataset_tensors
from sim2real.transfer import metrics
from sim2real.transfer.datasets import DrivingDataset, open_records
from sim2real.transfer.finetune import load_finetune_config, open_finetune_data
from sim2real.transfer.motion import ALPHAS, cv_groups, fit_ridge_cv, motion_span
from sim2real.transfer.records import run_ids
from sim2real.transfer.selftrain import (
    SelfTrainConfig,
    mirrored_prediction,
    motion_records,
    selftrain_sources,
    smooth_labels,
    unlabeled_records,
)
from sim2real.transfer.splits import split_records

WIDE = np.logspace(-2, 6, 17)
WINDOWS = (1, 5, 9, 15, 21)
"""Savitzky-Golay widths (1: raw)"""


def score(pred: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    ok = np.isfinite(truth)
    pred, truth = pred[ok], truth[ok]
    return float(metrics.r2(pred, truth)[0]), float(metrics.pearson_r(pred, truth)[0])


def ridge_se1(x: np.ndarray, y: np.ndarray, groups: np.ndarray, alphas=WIDE):
    """(predict function, alpha, CV R²): the strongest penalty within one SE of the best."""
    from sklearn.linear_model import Ridge
    from sklearn.model_selection import GroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    g = cv_groups(groups, 5)
    k = min(5, len(np.unique(g)))
    rows = []
    for alpha in alphas:
        fold_mse = []
        sse = 0.0
        for train, test in GroupKFold(n_splits=k).split(x, y, g):
            m = make_pipeline(StandardScaler(), Ridge(alpha=alpha)).fit(x[train], y[train])
            err = (m.predict(x[test]) - y[test]) ** 2
            fold_mse.append(err.mean())
            sse += err.sum()
        rows.append((alpha, sse / len(y), np.std(fold_mse, ddof=1) / np.sqrt(k)))
    best = min(rows, key=lambda r: r[1])
    alpha = max(r[0] for r in rows if r[1] <= best[1] + best[2])
    mse = next(r[1] for r in rows if r[0] == alpha)
    model = make_pipeline(StandardScaler(), Ridge(alpha=alpha)).fit(x, y)
    return model.predict, alpha, 1 - mse / np.var(y)


def main(real: str, tub: str, seeds: list[int]) -> None:
    torch.set_num_threads(1)
    parent, _ = load_checkpoint("pilotnet-recipe")
    parent.spec.mirror_average = False
    k = list(parent.spec.outputs).index("user/angle")
    for seed in seeds:
        config = load_finetune_config(
            None,
            {
                "checkpoint": "pilotnet-recipe",
                "data": [f"{real}/{tub}"],
                "frames": 100,
                "train.seed": seed,
                "train.progress": False,
            },
        )
        st = SelfTrainConfig(teacher="motion", max_frames=6000, epochs=4)
        config = config.model_copy(update={"selftrain": st})
        data = open_finetune_data(config, parent.spec.preprocessing)
        sources, exclude = selftrain_sources(config, data)
        unl = unlabeled_records(st, sources, exclude=exclude, seed=seed)
        unl_data = DrivingDataset(unl, parent.spec.preprocessing, ["user/angle"], progress=False)
        unl = list(unl_data.records)
        lab_records = data.train.records
        span = motion_span(motion_records(config, sources), st.motion)
        m_lab, m_unl = span.of(lab_records), span.of(unl)
        labelled_images, lab_targets = dataset_tensors(data.train)
        y_lab = lab_targets[:, list(config.adapter.outputs).index("user/angle")].double().numpy()
        y_unl = np.array([r.labels.get("user/angle", np.nan) for r in unl], dtype=float)
        p_lab = mirrored_prediction(parent, labelled_images, config.train.augment)[:, k]
        p_unl = mirrored_prediction(parent, unl_data.images, config.train.augment)[:, k]
        # the validation block, its motion from that block alone
        parts = split_records(open_records([f"{real}/{tub}"]).records, config.split, seed=0)
        val_data = DrivingDataset(
            parts.val, parent.spec.preprocessing, ["user/angle"], progress=False
        )
        val = list(val_data.records)
        p_val = mirrored_prediction(parent, val_data.images, config.train.augment)[:, k]
        m_val = motion_span(val, st.motion).of(val)
        y_val = val_data.targets[:, 0].double().numpy()
        groups = run_ids(lab_records)
        segments = run_ids(unl)
        all_motion = span.stack
        variants = {}
        fit = fit_ridge_cv(np.column_stack([p_lab, m_lab]), y_lab, groups)
        variants["base"] = (
            lambda p, m, f=fit: f.predict(np.column_stack([p, m])),
            fit.alpha,
            fit.cv_r2,
        )
        x = np.column_stack([p_lab, m_lab])
        pred_fn, alpha, cv = ridge_se1(x, y_lab, groups, alphas=ALPHAS)
        variants["se1"] = (lambda p, m, f=pred_fn: f(np.column_stack([p, m])), alpha, cv)
        fit = fit_ridge_cv(m_lab, y_lab, groups)
        variants["motion"] = (lambda p, m, f=fit: f.predict(m), fit.alpha, fit.cv_r2)
        from sklearn.decomposition import PCA
        from sklearn.preprocessing import StandardScaler

        scaler = StandardScaler().fit(all_motion)
        for comps in (2, 4, 8, 16):
            pca = PCA(n_components=comps, svd_solver="full").fit(scaler.transform(all_motion))

            def proj(m, pca=pca, scaler=scaler):
                return pca.transform(scaler.transform(m))

            fit = fit_ridge_cv(np.column_stack([p_lab, proj(m_lab)]), y_lab, groups)
            variants[f"pc{comps}"] = (
                lambda p, m, f=fit, proj=proj: f.predict(np.column_stack([p, proj(m)])),
                fit.alpha,
                fit.cv_r2,
            )
        val_segments = run_ids(val)
        for name, (fn, alpha, cv) in variants.items():
            raw, raw_val = fn(p_unl, m_unl), fn(p_val, m_val)
            cells = []
            for window in WINDOWS:
                smooth = smooth_labels(raw[:, None], segments, "savgol", window)[:, 0]
                smooth_val = smooth_labels(raw_val[:, None], val_segments, "savgol", window)[:, 0]
                (r2, r), (r2v, rv) = score(smooth, y_unl), score(smooth_val, y_val)
                cells.append(f"w{window} {r2:.3f} / {r:.3f}, val {r2v:.3f} / {rv:.3f}")
            print(
                f"{tub} s{seed} {name:7s} alpha {alpha:9.2f} CV R2 {cv:.3f} | pseudo "
                f"({len(raw)} frames) | " + " | ".join(cells),
                flush=True,
            )


def truth(real: str, tub: str) -> None:
    """The recorded steering of the training part and the validation block, smoothed as the
    pseudo-labels are (over runs), scored against itself: how much of it is slower than the
    filter."""
    parts = split_records(
        open_records([f"{real}/{tub}"]).records, load_finetune_config(None).split, seed=0
    )
    for name, records in (("train", parts.train), ("val", parts.val)):
        y = np.array([r.labels["user/angle"] for r in records], dtype=np.float64)
        cells = []
        for window in WINDOWS[1:]:
            smooth = smooth_labels(y[:, None], run_ids(records), "savgol", window)[:, 0]
            r2, r = score(smooth, y)
            cells.append(f"w{window} {r2:.3f} / {r:.3f}")
        print(f"{tub} {name} ({len(y)} frames): " + " | ".join(cells), flush=True)


if __name__ == "__main__":
    if sys.argv[3:] == ["truth"]:
        truth(sys.argv[1], sys.argv[2])
    else:
        main(sys.argv[1], sys.argv[2], [int(s) for s in sys.argv[3:]] or [0, 1, 2])
