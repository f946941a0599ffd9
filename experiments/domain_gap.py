"""Per-stage domain gap between sim and real frames as one network sees them, and a freeze advice.

`domain_gap(model, sim_images, real_images)` runs both image sets through the network's
encoder (eval mode, no grad, uint8 / 255 then the model's own normalisation) and reduces each
stage's output (N, C, h, w) to (N, C) by global average pooling over h and w (a stage that
already outputs (N, C), such as nature_cnn's linear stage, is used as is). Pooling keeps the
measures' cost independent of image size and compares which channels fire, not where; it
discards spatial layout, so two domains that differ only in where things are look alike.

Per stage it reports, sim vs real (unpaired frames, see `sim2real.experiments.gap_measures`):
``mmd2`` (unbiased RBF MMD^2, median-heuristic bandwidth), ``frechet`` (Frechet distance of
fitted Gaussians, in the stage's squared activation units, so not comparable across stages),
``proxy_a_distance`` and ``domain_error`` (held-out balanced error of a linear domain
classifier). Linear CKA needs two representations of the same images, so it is only
reported when a `reference` network is given: ``cka_vs_reference`` compares the reference's
and the model's activations on the same real frames (e.g. sim-pretrained vs fine-tuned: how
much fine-tuning changed each stage).

`recommend_freeze(n_real, gap)` turns the real-data size and the per-stage proxy A-distance
into a number of stages to freeze with a small explicit rule (`FreezeRule`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field, model_validator

from sim2real.agents.encoders import pool_stage
from sim2real.agents.model import DrivingNet, unit_batches
from sim2real.common.config import StrictModel
from sim2real.experiments import gap_measures


def stage_activations(
    model: DrivingNet, images: torch.Tensor, *, batch_size: int = 128
) -> dict[str, np.ndarray]:
    """Pooled activations of every encoder stage: {stage name: (N, C) float64}.

    `images` is (N, 3, H, W) uint8 at the model's input size; fed as float / 255 through the
    model's normalisation, in eval mode (the model's mode is restored after), without grad.
    """
    if images.dtype != torch.uint8:
        raise ValueError(f"expected uint8 images (N, 3, H, W), got dtype {images.dtype}")
    model.check_input(images)
    if images.shape[0] == 0:
        raise ValueError("no images")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    chunks: dict[str, list[np.ndarray]] = {name: [] for name in model.encoder.stage_names}
    try:
        with torch.no_grad():
            for _, x in unit_batches(images, batch_size, device):
                outputs = model.encoder.forward_stages(model.normalize(x))
                for name, output in outputs.items():
                    chunks[name].append(pool_stage(output).double().cpu().numpy())
    finally:
        model.train(was_training)
    return {name: np.concatenate(parts) for name, parts in chunks.items()}


def pick_indices(n_total: int, n: int | None, rng: np.random.Generator) -> np.ndarray:
    """`n` distinct indices of range(n_total) drawn with `rng`, sorted (time order kept).

    All indices when `n` is None or at least `n_total`.
    """
    if n is None or n >= n_total:
        return np.arange(n_total)
    if n < 1:
        raise ValueError(f"the number of frames must be >= 1, got {n}")
    return np.sort(rng.choice(n_total, size=n, replace=False))


def domain_gap(
    model: DrivingNet,
    sim_images: torch.Tensor,
    real_images: torch.Tensor,
    *,
    max_frames: int | None = 1000,
    seed: int = 0,
    reference: DrivingNet | None = None,
    batch_size: int = 128,
) -> dict[str, dict[str, float]]:
    """Per-stage sim-vs-real gap: {stage: {"channels", "mmd2", "frechet", "proxy_a_distance",
    "domain_error"[, "cka_vs_reference"]}}.

    `sim_images` (N, 3, H, W) and `real_images` (M, 3, H, W) are uint8 in time order (e.g.
    `DrivingDataset.images`); at most `max_frames` of each are used, drawn with a generator
    seeded by `seed` and kept in time order (the domain classifier trains on the earlier half
    and tests on the later half of each set). Memory grows as (2 max_frames)^2 for the MMD.
    With `reference` (a network with the same stage names), ``cka_vs_reference`` is linear
    CKA between the reference's and the model's activations on the same real frames.
    """
    rng = np.random.default_rng(seed)
    sim_idx = torch.from_numpy(pick_indices(sim_images.shape[0], max_frames, rng))
    real_idx = torch.from_numpy(pick_indices(real_images.shape[0], max_frames, rng))
    if len(sim_idx) < 4 or len(real_idx) < 4:
        raise ValueError(
            f"domain gap needs at least 4 frames per domain, got {len(sim_idx)} sim and "
            f"{len(real_idx)} real"
        )
    sim = stage_activations(model, sim_images[sim_idx], batch_size=batch_size)
    real = stage_activations(model, real_images[real_idx], batch_size=batch_size)
    ref: dict[str, np.ndarray] | None = None
    if reference is not None:
        if tuple(reference.encoder.stage_names) != tuple(model.encoder.stage_names):
            raise ValueError(
                f"reference stages {reference.encoder.stage_names} differ from the model's "
                f"{model.encoder.stage_names}"
            )
        ref = stage_activations(reference, real_images[real_idx], batch_size=batch_size)
    gap: dict[str, dict[str, float]] = {}
    for name in model.encoder.stage_names:
        x, y = sim[name], real[name]
        error = gap_measures.domain_classifier_error(x, y)
        entry = {
            "channels": int(x.shape[1]),
            "mmd2": gap_measures.mmd2_unbiased(x, y),
            "frechet": gap_measures.frechet_distance(x, y),
            "proxy_a_distance": gap_measures.pad_from_error(error),
            "domain_error": error,
        }
        if ref is not None:
            entry["cka_vs_reference"] = gap_measures.linear_cka(ref[name], y)
        gap[name] = entry
    return gap


class FreezeRule(StrictModel):
    """The freeze rule's thresholds (defaults are the documented rule; a sweep can tune them)."""

    scarce_frames: int = Field(300, ge=1, description="fewer real frames than this: scarce")
    plentiful_frames: int = Field(3000, ge=1, description="at least this many: plentiful")
    scarce_freeze: Literal["all", "half"] = Field(
        "all",
        description="scarce data: freeze every stage and fit the head only ('all'), or "
        "max(p, ceil(K/2)) stages ('half', the rule before the usi-track-a study)",
    )
    max_similar_pad: float = Field(
        1.0,
        ge=0.0,
        le=2.0,
        description="a stage is 'similar' when its proxy A-distance is at most this (1.0: the "
        "linear domain classifier still errs on 1 frame in 4)",
    )

    @model_validator(mode="after")
    def _ordered(self) -> FreezeRule:
        if self.plentiful_frames <= self.scarce_frames:
            raise ValueError(
                f"plentiful_frames ({self.plentiful_frames}) must exceed scarce_frames "
                f"({self.scarce_frames})"
            )
        return self


@dataclass(frozen=True)
class FreezeAdvice:
    """How many stages to freeze, and why."""

    freeze: int
    """number of stages to freeze, from the input"""
    stages: list[str]
    """their names"""
    regime: str
    """"scarce", "moderate" or "plentiful" real data"""
    similar_prefix: int
    """leading stages whose proxy A-distance is at most the rule's threshold"""
    n_real: int
    rule: str
    """the rule applied, in words with its numbers"""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


RULE_TEXT = (
    "p = number of leading stages with proxy A-distance <= {pad:g} (domains similar there); "
    "scarce real data (< {scarce} frames): {scarce_text}; "
    "moderate ({scarce}..{plentiful_m1}): freeze p -- fine-tune from the first stage "
    "where the domains differ; plentiful (>= {plentiful}): freeze 0 -- enough real data to "
    "fine-tune everything, pretraining serves as initialisation"
)

SCARCE_TEXT = {
    "all": "freeze all K stages and fit the head only -- a linear probe is what so few frames "
    "can fit (Kumar et al. 2022); on usi-track-a at N=100 it beat freezing 3 of 5 stages",
    "half": "freeze max(p, ceil(K/2)) -- too few frames to retrain the lower half, and every "
    "stage that transfers stays frozen",
}


def recommend_freeze(
    n_real: int, gap: Mapping[str, Mapping[str, float]], rule: FreezeRule | None = None
) -> FreezeAdvice:
    """Stages to freeze for fine-tuning on `n_real` real frames, given `domain_gap`'s output.

    The classic advice (freeze more when real data is scarce and the domains are similar,
    fine-tune deeper when they differ), made explicit in `RULE_TEXT` with `rule`'s thresholds.
    `gap` must list the stages from the input, as `domain_gap` does.
    """
    rule = rule or FreezeRule()
    if n_real < 0:
        raise ValueError(f"n_real must be >= 0, got {n_real}")
    names = list(gap)
    if not names:
        raise ValueError("no stages in the gap measurements")
    k_total = len(names)
    prefix = 0
    for name in names:
        if gap[name]["proxy_a_distance"] > rule.max_similar_pad:
            break
        prefix += 1
    if n_real < rule.scarce_frames:
        half = max(prefix, math.ceil(k_total / 2))
        regime, freeze = "scarce", k_total if rule.scarce_freeze == "all" else half
    elif n_real < rule.plentiful_frames:
        regime, freeze = "moderate", prefix
    else:
        regime, freeze = "plentiful", 0
    text = RULE_TEXT.format(
        scarce_text=SCARCE_TEXT[rule.scarce_freeze],
        pad=rule.max_similar_pad,
        scarce=rule.scarce_frames,
        plentiful=rule.plentiful_frames,
        plentiful_m1=rule.plentiful_frames - 1,
    )
    return FreezeAdvice(
        freeze=freeze,
        stages=names[:freeze],
        regime=regime,
        similar_prefix=prefix,
        n_real=int(n_real),
        rule=text,
    )


COLUMNS = (
    ("channels", "ch", "{:d}"),
    ("proxy_a_distance", "A-dist", "{:.3f}"),
    ("domain_error", "dom.err", "{:.3f}"),
    ("mmd2", "MMD^2", "{:.4f}"),
    ("frechet", "Frechet", "{:.4g}"),
    ("cka_vs_reference", "CKA(ref)", "{:.3f}"),
)


def format_gap_table(gap: Mapping[str, Mapping[str, float]], advice: FreezeAdvice | None) -> str:
    """A plain-text table: one row per stage, then the recommendation and its rule."""
    present = [c for c in COLUMNS if any(c[0] in entry for entry in gap.values())]
    header = ["stage", *(label for _, label, _ in present)]
    if advice is not None:
        header.append("similar")
    rows = [header]
    for i, (name, entry) in enumerate(gap.items()):
        row = [name]
        for key, _, fmt in present:
            value = entry.get(key)
            row.append("-" if value is None else fmt.format(value))
        if advice is not None:
            row.append("yes" if i < advice.similar_prefix else "")
        rows.append(row)
    widths = [max(len(r[j]) for r in rows) for j in range(len(header))]
    lines = ["  ".join(cell.rjust(w) for cell, w in zip(r, widths, strict=True)) for r in rows]
    lines.append(
        "A-dist: proxy A-distance (0 chance .. 2 separable), dom.err: held-out balanced error "
        "of a linear domain classifier; Frechet is in each stage's squared activation units "
        "(compare runs, not stages)"
    )
    if advice is not None:
        frozen = ", ".join(advice.stages) if advice.stages else "none"
        lines += [
            "",
            f"recommendation: freeze {advice.freeze} of {len(gap)} stages ({frozen}) -- "
            f"{advice.regime} real data ({advice.n_real} frames), similar prefix "
            f"{advice.similar_prefix}",
            f"rule: {advice.rule}",
        ]
    return "\n".join(lines)


def load_images(
    paths: Sequence[str | Path],
    model: DrivingNet,
    *,
    max_frames: int | None,
    seed: int | Sequence[int],
    cache_dir: Path | None = None,
    progress: bool = True,
) -> tuple[torch.Tensor, int]:
    """Up to `max_frames` frames of the datasets at `paths`, preprocessed for `model`.

    Returns ((n, 3, H, W) uint8 in time order, number of usable records in the datasets).
    Records are drawn (with `np.random.default_rng(seed)`) before decoding, so a large
    dataset costs only the frames used.
    """
    from sim2real.transfer.datasets import DrivingDataset, open_records

    record_set = open_records(list(paths))
    records = record_set.records
    rng = np.random.default_rng(seed)
    chosen = [records[i] for i in pick_indices(len(records), max_frames, rng)]
    label = model.spec.outputs[:1]
    dataset = DrivingDataset(
        chosen, model.spec.preprocessing, label, cache_dir=cache_dir, progress=progress
    )
    return dataset.images, len(records)


def random_model(architecture: str, seed: int) -> DrivingNet:
    """An untrained `DrivingNet` of `architecture` (default spec), initialised from `seed`.

    torch initialises layers from its global generator; it is forked so the caller's
    random state is left as it was.
    """
    from sim2real.agents.model import ModelSpec, seeded_model

    spec = ModelSpec(architecture=architecture)
    return seeded_model(spec, seed).eval()


def measure_gap(
    model: DrivingNet,
    sim_paths: Sequence[str | Path],
    real_paths: Sequence[str | Path],
    *,
    max_frames: int | None = 1000,
    seed: int = 0,
    reference: DrivingNet | None = None,
    n_real: int | None = None,
    rule: FreezeRule | None = None,
    cache_dir: Path | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Read sim and real datasets, measure `domain_gap` and recommend a freeze depth.

    `n_real` is the number of real frames the user will fine-tune on (default: every usable
    record under `real_paths`). Sim and real frames are drawn with independent streams of
    `seed`, so one dataset passed as both gives two different samples of it. Returns a
    JSON-ready dict with "stages" (one entry per encoder stage, from the input),
    "recommendation", "frames" and the inputs.
    """
    sim_images, sim_total = load_images(
        sim_paths,
        model,
        max_frames=max_frames,
        seed=[seed, 0],
        cache_dir=cache_dir,
        progress=progress,
    )
    real_images, real_total = load_images(
        real_paths,
        model,
        max_frames=max_frames,
        seed=[seed, 1],
        cache_dir=cache_dir,
        progress=progress,
    )
    gap = domain_gap(
        model, sim_images, real_images, max_frames=max_frames, seed=seed, reference=reference
    )
    rule = rule or FreezeRule()
    advice = recommend_freeze(real_total if n_real is None else n_real, gap, rule)
    return {
        "architecture": model.spec.architecture,
        "input_shape": list(model.spec.input_shape),
        "sim": [str(p) for p in sim_paths],
        "real": [str(p) for p in real_paths],
        "frames": {
            "sim_used": int(sim_images.shape[0]),
            "sim_available": sim_total,
            "real_used": int(real_images.shape[0]),
            "real_available": real_total,
        },
        "seed": seed,
        "pooling": "global average over each stage's spatial dimensions",
        "stages": gap,
        "recommendation": advice.to_dict(),
        "freeze_rule": rule.model_dump(),
    }
