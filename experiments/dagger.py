"""DAgger (Ross et al. 2011) for a perception network: let it drive, label with the expert,
aggregate, retrain, evaluate closed-loop.

A behaviour-cloned network drifts into states the expert's recordings never show and then
fails (compounding error). Each iteration k = 1..K here:

1. records `frames` frames with the current network driving (the expert drives instead with
   probability beta_k) into ``DIR/iter_k/tub``; every frame is labelled with the expert's
   clean command (`sim2real simulate --driver`), seeds ``seed + k - 1`` (below 10,000, so
   never a held-out evaluation track); optionally from other worlds than the evaluation's
   (`record_randomization`) and with the expert taking the car back before it leaves the
   road (`takeover`);
2. continues training the current weights on the expert tubs plus every DAgger tub so far
   (`fit`, the checkpoint's own preprocessing and outputs) into ``DIR/iter_k/checkpoint``,
   with `calibrate_steering` scaled to `steering_slope` on the validation episodes or on the
   fixed `calibration_data`;
3. lets the new network drive `episodes` tracks from seed `eval_seed_start`
   (`evaluate_closed_loop`): the held-out 10,000.. by default, a selection block while the
   knobs are being chosen.

Iteration 0 is the starting checkpoint's own evaluation (the baseline). Results accumulate in
``DIR/dagger.json``; the last iteration's checkpoint is also written to DIR itself (model.json
names the DAgger tubs as training data). Every step resumes: a finished iteration is kept,
an interrupted recording or training continues where it stopped.
"""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field, field_validator, model_validator

from sim2real.agents.calibration import MAX_GAIN
from sim2real.agents.checkpoint import (
    CARD_FILE,
    ModelCard,
    load_checkpoint,
    read_card,
    save_checkpoint,
)
from sim2real.agents.closed_loop import (
    HELD_OUT_SEED_START,
    camera_size_for,
    evaluate_closed_loop,
    held_out_seeds,
)
from sim2real.agents.dagger import checkpoint_fingerprint
from sim2real.agents.model import ModelSpec
from sim2real.agents.pretrain import PretrainData, calibrate_steering
from sim2real.agents.shipped import checkpoint_reference
from sim2real.agents.training import TrainConfig, fit
from sim2real.common.config import StrictModel
from sim2real.common.io import atomic_write_json
from sim2real.common.runs import check_run_dir, code_version, describe_run
from sim2real.common.splitspec import SplitSpec, fold_legacy_split

if TYPE_CHECKING:
    from sim2real.transfer.datasets import DrivingDataset

RESULTS_FILE = "dagger.json"
ITERATION_RESULT = "result.json"


def _continue_training() -> TrainConfig:
    return TrainConfig(epochs=3, lr=5e-4)


class DaggerConfig(StrictModel):
    """A DAgger run; saved as DIR/config.yaml."""

    checkpoint: str
    """the network that drives first and whose weights training continues from"""
    checkpoint_fingerprint: str | None = None
    """SHA-256 of the starting checkpoint's files (filled in from `checkpoint`)"""
    data: list[str] = Field(min_length=1)
    """the expert sim tubs it was trained on; every iteration trains on these + DAgger tubs"""
    expert_frames: int | None = Field(None, ge=10)
    """train on a block subsample of this many expert frames per iteration (None: all);
    bounds the cost of an iteration and the expert data's weight against the DAgger data"""
    iterations: int = Field(3, ge=1)
    frames: int = Field(4000, ge=1)
    """frames recorded per iteration"""
    beta: list[float] = Field(default_factory=lambda: [0.5, 0.25, 0.0], min_length=1)
    """per iteration, probability that the expert drives a step; the last value repeats"""
    segment_steps: int = Field(1, ge=1)
    """steps between draws of who drives (1: every step)"""
    seed: int = Field(1000, ge=0)
    """iteration k records with simulate seed `seed + k - 1` (must stay below 10,000)"""
    perturbation: float = Field(0.2, ge=0.0, le=1.0)
    """the expert's steering perturbations while it drives (as `sim2real simulate`)"""
    episode_steps: int = Field(1000, ge=1)
    chunk_frames: int = Field(100, ge=1)
    strength: float = Field(1.0, ge=0.0)
    """randomization strength of recordings and evaluation"""
    randomization: str | None = None
    """RandomizationSpec YAML of recordings and evaluation (None: the envs default)"""
    record_randomization: str | None = None
    """RandomizationSpec YAML of the DAgger recordings only (None: `randomization`): e.g. the
    hard end of its ranges, to record where the network fails; evaluation keeps
    `randomization`"""
    takeover: float | None = Field(None, gt=0.0, lt=1.0)
    """while recording: the expert takes over for `takeover_steps` steps when the network's
    |cte| exceeds this fraction (below 1) of the half road width, then hands back (None: never; the
    episode ends when the car leaves the road, so an early failure yields few frames)"""
    takeover_steps: int = Field(20, ge=1)
    episodes: int = Field(20, ge=1)
    """evaluation tracks after each iteration (seeds from `eval_seed_start`)"""
    eval_seed_start: int = Field(HELD_OUT_SEED_START, ge=0)
    """first seed of the evaluation tracks: the held-out 10,000.. to report, or a selection
    block (e.g. 20,000..) to choose iterations, beta or the rate on, leaving the held-out
    tracks unseen"""
    eval_max_steps: int = Field(2000, ge=1)
    train: TrainConfig = Field(default_factory=_continue_training)
    """continued training each iteration (fewer epochs and a lower lr than a pretrain)"""
    split: SplitSpec = Field(default_factory=SplitSpec)
    """as PretrainConfig.split: time blocks per episode, or whole episodes held out"""
    calibrate_steering: bool = False
    """as PretrainConfig.calibrate_steering: after each iteration's training, scale steering by
    1 / its attenuation slope on the validation frames (the training undoes the last gain)"""
    steering_slope: float = Field(1.0, gt=0.0, le=MAX_GAIN)
    """with calibrate_steering: the slope the calibrated steering rises with on its label
    (1: attenuation undone; e.g. 1.65: on the two-lane calibration frames of
    docs/closed-loop.md, the shipped network's slope at gain 2.00 instead of its 1.26)"""
    calibration_data: list[str] | None = None
    """with calibrate_steering: tubs whose frames every iteration measures the slope on (None:
    that iteration's validation episodes, whose make-up changes with every iteration and moves
    the gain with it); a fixed set keeps every iteration at the same steering strength, so
    iterations compare by their weights"""
    cache_dir: str | None = None
    workers: int = Field(1, ge=1, le=64)
    """recording processes (do not change the data)"""

    @model_validator(mode="before")
    @classmethod
    def _split(cls, data: Any) -> Any:
        return fold_legacy_split(data, SplitSpec())

    @model_validator(mode="after")
    def _check(self) -> DaggerConfig:
        if any(not 0.0 <= b <= 1.0 for b in self.beta):
            raise ValueError(f"beta values must be probabilities in [0, 1], got {self.beta}")
        if self.seed + self.iterations > HELD_OUT_SEED_START:
            raise ValueError(
                f"seed {self.seed} + {self.iterations} iterations reaches the held-out "
                f"evaluation seeds (from {HELD_OUT_SEED_START})"
            )
        if not self.calibrate_steering:
            if self.steering_slope != 1.0:
                raise ValueError(
                    f"steering_slope {self.steering_slope} needs calibrate_steering: true"
                )
            if self.calibration_data is not None:
                raise ValueError(
                    f"calibration_data {self.calibration_data} needs calibrate_steering: true"
                )
        if self.checkpoint_fingerprint is None:
            self.checkpoint_fingerprint = checkpoint_fingerprint(self.checkpoint)
        return self

    @field_validator("checkpoint")
    @classmethod
    def _reference(cls, value: str) -> str:
        # a shipped name stays a name (its package folder differs between installations),
        # any other folder becomes absolute
        return checkpoint_reference(value)

    @field_validator("data")
    @classmethod
    def _absolute_paths(cls, value: list[str]) -> list[str]:
        return [str(Path(p).expanduser().resolve()) for p in value]

    @field_validator("calibration_data")
    @classmethod
    def _absolute_calibration_paths(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        if not value:
            raise ValueError("calibration_data is empty: give at least one tub, or null")
        return [str(Path(p).expanduser().resolve()) for p in value]

    def beta_at(self, iteration: int) -> float:
        """beta of iteration (1-based); the list's last value repeats."""
        return self.beta[min(iteration, len(self.beta)) - 1]


RESUMABLE = {"iterations", "workers"}
"""What a resume may change: more iterations, another recording worker count."""


def iteration_dir(out: Path, iteration: int) -> Path:
    return out / f"iter_{iteration:02d}"


def run_dagger(
    config: DaggerConfig, out: str | Path, *, resume: bool = False, progress: bool = True
) -> dict[str, Any]:
    """Run (or continue) the DAgger iterations into `out`; returns dagger.json's content."""
    out = Path(out)
    for path in [*config.data, *(config.calibration_data or [])]:
        if not Path(path).exists():
            raise FileNotFoundError(f"sim data {path}: no such file or folder")
    from sim2real.envs.randomization import resolve_spec

    for spec in (config.randomization, config.record_randomization):
        resolve_spec(spec)  # a missing or bad spec: refused now, not after the first drive
    if config.calibration_data is not None:  # refuse before recording and training, not after
        _check_calibration_network(read_card(config.checkpoint).spec)
    check_run_dir(
        out,
        config,
        started=(out / "config.yaml").is_file(),
        resume=resume,
        what="a DAgger run",
        may_change=RESUMABLE,
    )
    describe_run(out, config)
    start = Path(config.checkpoint)
    if checkpoint_fingerprint(start) != config.checkpoint_fingerprint:
        raise ValueError(f"{start}: the starting checkpoint changed since this run began")
    results = {"config": config.model_dump(mode="json"), "iterations": []}
    results["iterations"].append(_baseline(config, out))
    _save_results(out, results)
    driver = start
    for k in range(1, config.iterations + 1):
        entry = _iteration(config, out, k, driver, progress)
        results["iterations"].append(entry)
        _save_results(out, results)
        driver = iteration_dir(out, k) / "checkpoint"
    model, card = load_checkpoint(driver)
    save_checkpoint(out, model, card)
    return results


def _save_results(out: Path, results: dict[str, Any]) -> None:
    atomic_write_json(out / RESULTS_FILE, results)


def _load_done(folder: Path) -> dict[str, Any] | None:
    path = folder / ITERATION_RESULT
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _evaluate(config: DaggerConfig, checkpoint: Path) -> tuple[dict[str, Any], float]:
    """Closed-loop result on the held-out tracks (as `sim2real evaluate --sim`), seconds."""
    model, card = load_checkpoint(checkpoint)
    t0 = time.perf_counter()
    result = evaluate_closed_loop(
        model,
        seeds=held_out_seeds(config.episodes, config.eval_seed_start),
        strength=config.strength,
        image_size=camera_size_for(card),
        max_steps=config.eval_max_steps,
        randomization=config.randomization,
    )
    return result, time.perf_counter() - t0


def _closed_loop_entry(result: dict[str, Any]) -> dict[str, Any]:
    outcomes: dict[str, int] = {}
    for e in result["episodes"]:
        outcomes[e["outcome"]] = outcomes.get(e["outcome"], 0) + 1
    return {**result["summary"], "outcomes": outcomes}


def _baseline(config: DaggerConfig, out: Path) -> dict[str, Any]:
    folder = iteration_dir(out, 0)
    done = _load_done(folder)
    if done is not None:
        return done
    result, seconds = _evaluate(config, Path(config.checkpoint))
    atomic_write_json(folder / "eval.json", result)
    entry = {
        "iteration": 0,
        "checkpoint": config.checkpoint,
        "closed_loop": _closed_loop_entry(result),
        "seconds": {"evaluate": seconds},
        "load_average": os.getloadavg(),
    }
    atomic_write_json(folder / ITERATION_RESULT, entry)
    return entry


def _record(config: DaggerConfig, tub: Path, k: int, driver: Path, progress: bool) -> None:
    from sim2real.experiments.simulate import SimulateConfig, simulate

    card = load_checkpoint(driver)[1]
    height, width = camera_size_for(card)
    sim_config = SimulateConfig(
        frames=config.frames,
        seed=config.seed + k - 1,
        chunk_frames=config.chunk_frames,
        image_height=height,
        image_width=width,
        randomization=config.record_randomization or config.randomization,
        strength=config.strength,
        perturbation=config.perturbation,
        episode_steps=config.episode_steps,
        workers=config.workers,
        driver=str(driver),
        beta=config.beta_at(k),
        segment_steps=config.segment_steps,
        takeover=config.takeover,
        takeover_steps=config.takeover_steps,
    )
    started = (tub / "manifest.json").is_file()
    if started:
        from sim2real.transfer.tub import read_manifest

        if int(read_manifest(tub)["catalog"]["current_index"]) >= config.frames:
            return
    simulate(tub, sim_config, resume=started, progress=progress)


def _iteration(
    config: DaggerConfig, out: Path, k: int, driver: Path, progress: bool
) -> dict[str, Any]:
    folder = iteration_dir(out, k)
    done = _load_done(folder)
    if done is not None:
        return done
    tub, checkpoint = folder / "tub", folder / "checkpoint"
    seconds: dict[str, float] = {}
    load: dict[str, list[float]] = {}

    t0 = time.perf_counter()
    _record(config, tub, k, driver, progress)
    seconds["record"], load["record"] = time.perf_counter() - t0, list(os.getloadavg())

    tubs = [str(iteration_dir(out, i) / "tub") for i in range(1, k + 1)]
    if not (checkpoint / CARD_FILE).is_file():
        t0 = time.perf_counter()
        model, card = load_checkpoint(driver)
        train = config.train.model_copy(update={"seed": config.train.seed + k})
        data = aggregate_data(config, tubs, card.spec, seed=train.seed)
        result = fit(model, data.train, data.val, train, folder / "train", resume=True)
        metrics = result.card_metrics()
        if config.calibrate_steering:
            frames = data.val
            if config.calibration_data is not None:
                frames = calibration_frames(config, card.spec)
            metrics["steering_calibration"] = {
                **calibrate_steering(model, frames, target=config.steering_slope),
                "frames_from": config.calibration_data or "validation",
            }
        trained_on = {
            **data.trained_on,
            "env_config": {"image_size": list(camera_size_for(card))},
            "dagger": {
                "expert_data": config.data,
                "expert_frames": config.expert_frames,
                "dagger_tubs": tubs,
                "start_checkpoint": config.checkpoint,
                "iteration": k,
            },
        }
        new_card = ModelCard(
            kind=card.kind,
            spec=card.spec,
            trained_on=trained_on,
            split=data.split,
            randomization=data.randomization,
            metrics=metrics,
            code_version=code_version(),
            history=[
                *card.history,
                {
                    "step": "dagger",
                    "iteration": k,
                    "beta": config.beta_at(k),
                    "driver": str(driver),
                    "recorded": str(tub),
                    "finished_utc": datetime.now(UTC).isoformat(timespec="seconds"),
                    "train": train.model_dump(mode="json"),
                    "epochs": [
                        {key: v for key, v in h.items() if key != "val"} for h in result.history
                    ],
                    "seconds": sum(h["seconds"] for h in result.history),
                },
            ],
        )
        save_checkpoint(checkpoint, model, new_card)
        seconds["train"], load["train"] = time.perf_counter() - t0, list(os.getloadavg())

    result, seconds["evaluate"] = _evaluate(config, checkpoint)
    load["evaluate"] = list(os.getloadavg())
    atomic_write_json(folder / "eval.json", result)
    model, card = load_checkpoint(checkpoint)
    card.metrics["closed_loop"] = result["summary"]
    save_checkpoint(checkpoint, model, card)
    entry = {
        "iteration": k,
        "beta": config.beta_at(k),
        "driver": str(driver),
        "tub": str(tub),
        "recording": _recording_stats(tub),
        "train_frames": card.trained_on.get("frames"),
        "closed_loop": _closed_loop_entry(result),
        "seconds": seconds,
        "load_average": load,
    }
    atomic_write_json(folder / ITERATION_RESULT, entry)
    return entry


def aggregate_data(
    config: DaggerConfig, tubs: list[str], spec: ModelSpec, *, seed: int
) -> PretrainData:
    """The expert tubs (all, or a `config.expert_frames` block subsample drawn with `seed`)
    plus the DAgger `tubs`, split as `config.split` says, as datasets for `spec`."""
    from sim2real.transfer.datasets import RecordSet, open_records
    from sim2real.transfer.records import ReadReport
    from sim2real.transfer.splits import subsample
    from sim2real.transfer.training_data import open_training_data

    expert, dagger = open_records(config.data), open_records(tubs)
    records = expert.records
    if config.expert_frames is not None:
        records = subsample(records, config.expert_frames, seed=seed)
    report = ReadReport()
    report.merge(expert.report)
    report.merge(dagger.report)
    both = RecordSet([*records, *dagger.records], report, {**expert.reports, **dagger.reports})
    data = open_training_data(
        both,
        spec.outputs,
        spec.preprocessing,
        config.split,
        seed=seed,
        cache_dir=config.cache_dir,
        progress=config.train.progress,
    )
    trained_on = {
        **data.trained_on,
        "paths": [*config.data, *tubs],
        "expert_frames_used": len(records),
        "dagger_frames": len(dagger.records),
        "read_report": {"expert": expert.report.to_dict(), "dagger": dagger.report.to_dict()},
    }
    return PretrainData(
        train=data.train,
        val=data.val,
        trained_on=trained_on,
        split=data.split,
        randomization=data.randomization,
    )


def calibration_frames(config: DaggerConfig, spec: ModelSpec) -> DrivingDataset:
    """Every frame of `config.calibration_data` as a dataset for `spec` (single-frame networks:
    a temporal one's context is built with its training data, not here)."""
    from sim2real.transfer.datasets import DrivingDataset, open_records

    _check_calibration_network(spec)
    records = open_records(config.calibration_data or [])
    return DrivingDataset(
        records.records,
        spec.preprocessing,
        spec.outputs,
        Path(config.cache_dir) if config.cache_dir else None,
        progress=config.train.progress,
        report=records.report,
    )


def _check_calibration_network(spec: ModelSpec) -> None:
    if spec.temporal.enabled:
        raise ValueError(
            f"calibration_data needs a single-frame network; this one is temporal "
            f"({spec.temporal.setting}): calibrate on its validation episodes instead"
        )


def _recording_stats(tub: Path) -> dict[str, Any]:
    """Frames and episodes in a DAgger tub (short episodes: the driver left the road)."""
    from sim2real.transfer.datasets import open_records

    records = open_records([tub]).records
    episodes = len({r.session for r in records})
    return {
        "frames": len(records),
        "episodes": episodes,
        "mean_episode_frames": len(records) / max(episodes, 1),
        "mean_abs_steering_label": sum(abs(r.labels["user/angle"]) for r in records)
        / max(len(records), 1),
    }
