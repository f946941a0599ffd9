"""Record the expert driving randomized tracks into a DonkeyCar tub v2 (the `simulate` command).

The frames are cut into fixed-size chunks; chunk k is driven from its own seed, derived from
(seed, k) alone, so the recording is identical whatever the number of workers. Workers (a
spawn/forkserver process pool) drive and JPEG-encode chunks; the parent writes them in chunk
order and flushes the tub after each chunk, so an interrupted run leaves a valid tub of whole
chunks that `resume=True` continues. The run folder is the tub itself, with `config.yaml` and
`run.json` beside the manifest; the resolved randomization spec travels in the manifest's
metadata (`randomization_metadata`), where pretraining reads it into the model card.
"""

from __future__ import annotations

import logging
import multiprocessing
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field, field_validator, model_validator
from tqdm.auto import tqdm

from sim2real.common.config import StrictModel, load_yaml_mapping, validate_config
from sim2real.common.io import remove_temporaries
from sim2real.common.runs import describe_run
from sim2real.transfer.tub import (
    MANIFEST,
    RANDOMIZATION_KEY,
    TubWriter,
    encode_jpeg,
    read_manifest,
)

log = logging.getLogger(__name__)

CATALOG_LEN = 1000
FRAME_MS = 50
"""Nominal frame period between `_timestamp_ms` values (20 Hz, the DonkeyCar default rate)."""


class SimulateConfig(StrictModel):
    """What to record; every field but `workers` determines the recording."""

    frames: int = Field(1000, ge=1, description="frames to record")
    seed: int = Field(0, ge=0, description="base seed; chunk k uses a seed derived from (seed, k)")
    chunk_frames: int = Field(
        100,
        ge=1,
        le=CATALOG_LEN,
        description="frames per chunk (divides 1000); each chunk drives a new randomized track",
    )
    image_height: int = Field(120, ge=8, le=1024, description="camera rows (px)")
    image_width: int = Field(160, ge=8, le=1024, description="camera columns (px)")
    randomization: str | None = Field(
        None, description="RandomizationSpec YAML; None: the envs package default"
    )
    strength: float = Field(1.0, ge=0.0, description="randomization strength (0: nominal world)")
    perturbation: float = Field(
        0.2,
        ge=0.0,
        le=1.0,
        description="probability per step that the expert starts a 2-8 step steering offset "
        "(the label stays its clean command): recordings then hold the recoveries a cloned "
        "network needs",
    )
    episode_steps: int = Field(1000, ge=1, description="steps before a new randomized episode")
    jpeg_quality: int = Field(90, ge=10, le=100)
    workers: int = Field(1, ge=1, le=64, description="processes (does not change the data)")
    driver: str | None = Field(
        None, description="checkpoint folder of a network that drives (DAgger); None: the expert"
    )
    beta: float = Field(
        0.5, ge=0.0, le=1.0, description="with a driver: probability the expert drives instead"
    )
    segment_steps: int = Field(
        1, ge=1, description="with a driver: steps between draws of who drives (1: every step)"
    )
    takeover: float | None = Field(
        None,
        gt=0.0,
        lt=1.0,
        description="with a driver: the expert takes over for `takeover_steps` steps when the "
        "driver's |cte| exceeds this fraction of the half road width, below 1: at 1 the car "
        "has left the road and the episode has ended (None: never)",
    )
    takeover_steps: int = Field(20, ge=1, description="steps the expert drives after a takeover")
    driver_fingerprint: str | None = Field(
        None, description="SHA-256 of the driver's files (filled in from `driver`)"
    )

    @field_validator("chunk_frames")
    @classmethod
    def _divides_catalog(cls, value: int) -> int:
        if CATALOG_LEN % value:
            raise ValueError(f"must divide {CATALOG_LEN} (catalog length), got {value}")
        return value

    @field_validator("driver")
    @classmethod
    def _driver_folder(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from sim2real.agents.shipped import checkpoint_reference

        try:  # a shipped name stays a name, any other folder becomes absolute
            return checkpoint_reference(value)
        except (FileNotFoundError, ValueError) as exc:
            raise ValueError(f"driver checkpoint {value}: {exc}") from None

    @model_validator(mode="after")
    def _fingerprint_driver(self) -> SimulateConfig:
        # The recording depends on the driver's weights: pin them, so a resume with changed
        # weights is refused (a saved config keeps the fingerprint it was recorded with).
        if self.driver is None:
            if self.driver_fingerprint is not None:
                raise ValueError("driver_fingerprint is set but no driver is given")
            if self.takeover is not None:
                raise ValueError("takeover is set but no driver is given")
            return self
        if self.driver_fingerprint is None:
            from sim2real.agents.dagger import checkpoint_fingerprint

            self.driver_fingerprint = checkpoint_fingerprint(self.driver)
        return self


def tub_inputs() -> tuple[list[str], list[str]]:
    """The recording's tub inputs and types: camera, user/* commands, sim/* ground truth."""
    from sim2real.envs.recording import APPLIED_KEYS, LABEL_KEYS

    keys = (*LABEL_KEYS, *APPLIED_KEYS)
    inputs = ["cam/image_array", "user/angle", "user/throttle", "user/mode", *keys]
    types = ["image_array", "float", "float", "str", *["float"] * len(keys)]
    return inputs, types


def chunk_seed(seed: int, chunk: int) -> int:
    """Seed of chunk `chunk`: a function of (seed, chunk) only, independent of chunk count."""
    return int(np.random.SeedSequence(seed, spawn_key=(chunk,)).generate_state(1)[0])


def record_chunk(job: tuple[dict[str, Any], dict[str, Any], int, int]) -> list[tuple]:
    """Drive one chunk: [(jpeg bytes, tub fields, episode)] for its frames (runs in a worker)."""
    from sim2real.envs.recording import drive_expert

    config_data, spec, chunk, n = job
    config = SimulateConfig.model_validate(config_data)
    driver = None
    if config.driver is not None:
        from sim2real.agents.dagger import load_driver

        driver = load_driver(config.driver, config.driver_fingerprint)
    out = []
    for frame in drive_expert(
        chunk_seed(config.seed, chunk),
        n,
        image_size=(config.image_height, config.image_width),
        randomization=spec,
        strength=config.strength,
        perturbation=config.perturbation,
        episode_steps=config.episode_steps,
        driver=driver,
        beta=config.beta,
        segment_steps=config.segment_steps,
        takeover=config.takeover,
        takeover_steps=config.takeover_steps,
    ):
        jpeg = encode_jpeg(frame.image, config.jpeg_quality)
        if jpeg is None:
            raise RuntimeError(f"chunk {chunk}: JPEG encoding failed")
        fields = {
            "user/angle": float(np.clip(frame.steering, -1.0, 1.0)),
            "user/throttle": float(np.clip(frame.throttle, -1.0, 1.0)),
            "user/mode": "user",
            **{key: float(value) for key, value in frame.labels.items()},
        }
        out.append((jpeg, fields, frame.episode))
    return out


def _resolved_spec(config: SimulateConfig) -> dict[str, Any]:
    from sim2real.envs.randomization import resolve_spec

    return resolve_spec(config.randomization).model_dump(mode="json")


def randomization_metadata(config: SimulateConfig, spec: dict[str, Any]) -> dict[str, Any]:
    """What the tub's manifest records of the randomization (`RANDOMIZATION_KEY`): the
    resolved `spec`, the YAML it came from (None: the envs default), strength, seed and
    camera size (H, W) px."""
    return {
        "spec": spec,
        "spec_path": config.randomization,
        "strength": config.strength,
        "seed": config.seed,
        "image_size": [config.image_height, config.image_width],
    }


def _check_resume(out: Path, config: SimulateConfig, spec: dict[str, Any]) -> None:
    saved_path = out / "config.yaml"
    if not saved_path.is_file():
        raise ValueError(f"{out}: cannot resume: no config.yaml beside the tub")
    saved = validate_config(SimulateConfig, load_yaml_mapping(saved_path), str(saved_path))
    ignore = {"workers"}
    mine, theirs = config.model_dump(exclude=ignore), saved.model_dump(exclude=ignore)
    changed = {k: (theirs[k], mine[k]) for k in mine if mine[k] != theirs[k]}
    if changed:
        raise ValueError(f"{out}: cannot resume with a different config (saved, now): {changed}")
    metadata = read_manifest(out)["metadata"]
    recorded = metadata.get(RANDOMIZATION_KEY) if isinstance(metadata, dict) else None
    spec_path = out / "randomization.yaml"  # where tubs of earlier versions kept it
    if isinstance(recorded, dict):
        before = recorded.get("spec")
    else:
        before = load_yaml_mapping(spec_path) if spec_path.is_file() else spec
    if before != spec:
        raise ValueError(f"{out}: cannot resume: the randomization spec changed since the start")


def _chunks(config: SimulateConfig, first: int) -> list[tuple[int, int]]:
    n_chunks = -(-config.frames // config.chunk_frames)
    return [
        (k, min(config.chunk_frames, config.frames - k * config.chunk_frames))
        for k in range(first, n_chunks)
    ]


ChunkMapper = Callable[[Callable[[Any], list], list], Iterable[list]]
"""map_chunks(record_chunk, jobs) -> each job's frames, in job order"""


def simulate(
    out: str | Path,
    config: SimulateConfig,
    *,
    resume: bool = False,
    progress: bool = True,
    on_chunk: Callable[[int, int], None] | None = None,
    map_chunks: ChunkMapper | None = None,
) -> Path:
    """Record `config.frames` expert frames into the tub `out`; returns `out`.

    Refuses an existing tub unless `resume`; resuming checks the saved config matches
    (workers may differ) and records the chunks still missing. `on_chunk(chunk, frames_done)`
    is called after each chunk is safely in the tub. `map_chunks(record_chunk, jobs)`, when
    given, records the chunks instead of the local process pool (e.g.
    `sim2real.experiments.ray_executor.ray_map` for Ray workers); it must yield the results
    in job order, and `config.workers` is then unused.
    """
    out = Path(out)
    spec = _resolved_spec(config)
    inputs, types = tub_inputs()
    exists = (out / MANIFEST).is_file()
    if exists and not resume:
        raise ValueError(f"{out}: a recording exists here; pass --resume to continue it")
    if exists:
        _check_resume(out, config, spec)
        done = int(read_manifest(out)["catalog"]["current_index"])
        if done % config.chunk_frames and done < config.frames:
            raise ValueError(f"{out}: cannot resume: {done} frames is not a whole chunk")
        # a killed run can leave an atomic write's temporary behind (an image, the manifest)
        for folder in (out, out / "images"):
            for path in remove_temporaries(folder):
                log.info("removed %s, left by the interrupted run", path)
    else:
        done = 0
    metadata = {
        "recorded_by": "sim2real simulate",
        "seed": config.seed,
        RANDOMIZATION_KEY: randomization_metadata(config, spec),
    }
    writer = TubWriter(
        out,
        inputs,
        types,
        metadata=metadata,
        max_len=CATALOG_LEN,
        flush_every=config.chunk_frames,
        jpeg_quality=config.jpeg_quality,
        resume=exists,
        session_id=f"sim_{config.seed}",
    )
    if not exists:
        describe_run(out, config)
    bar = tqdm(
        total=config.frames, initial=done, unit="frame", desc="simulate", disable=not progress
    )
    chunks = _chunks(config, done // config.chunk_frames)
    # wall-clock-like like DonkeyCar's: the tub's creation time (kept on resume) + frame period
    start_ms = round(float(writer.manifest_metadata.get("created_at", 0.0)) * 1000)
    try:
        recorded = _run_chunks(config, spec, chunks, map_chunks)
        for (chunk, _), frames in zip(chunks, recorded, strict=True):
            for offset, (jpeg, fields, episode) in enumerate(frames):
                index = chunk * config.chunk_frames + offset
                fields["_timestamp_ms"] = start_ms + index * FRAME_MS
                fields["_session_id"] = f"sim_{config.seed}_{chunk:04d}_{episode:03d}"
                writer.write(fields, jpeg)
            writer.flush()
            bar.update(len(frames))
            if on_chunk is not None:
                on_chunk(chunk, writer.current_index)
    except BaseException:
        writer.discard()  # keep the tub at a whole number of chunks
        raise
    finally:
        writer.close()
        bar.close()
    return out


def _run_chunks(
    config: SimulateConfig,
    spec: dict[str, Any],
    chunks: list[tuple[int, int]],
    map_chunks: ChunkMapper | None = None,
) -> Iterator[list]:
    config_data = config.model_dump()
    jobs = [(config_data, spec, chunk, n) for chunk, n in chunks]
    if map_chunks is not None:
        yield from map_chunks(record_chunk, jobs)
        return
    if config.workers == 1 or len(jobs) <= 1:
        yield from map(record_chunk, jobs)
        return
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    with context.Pool(min(config.workers, len(jobs))) as pool:
        yield from pool.imap(record_chunk, jobs)
