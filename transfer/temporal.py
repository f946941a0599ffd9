"""The previous action of every record, for temporal networks (`sim2real.agents.temporal`).

A record's previous action is what the car applied at the record before it in its unbroken
run (`sim2real.transfer.records.run_key`: same source and session, index - 1): in a sim tub
``sim/applied_steering`` and ``sim/applied_throttle`` (the executed, possibly perturbed
action; the ``user/*`` labels are the expert's clean command), in a DonkeyCar tub
``user/angle`` and ``user/throttle`` where a person drove (what they commanded is what the car
did) and ``pilot/*`` where the pilot did (``user/mode`` ``local_angle``: the steering;
``local``: both). A session's first record, and one after a gap in the indexes (deleted or
skipped records), gets the fallback: a car at rest.
Only labels are read (no images), and the lookup runs over every record read, so a frame at
the edge of a training block still gets its predecessor.

For ``model.temporal.previous_frame_gap`` (`previous_frames`), the earlier frame is looked up
among the dataset's own frames (its images are in memory), by the same key k steps back.
Where a rollout restarts from rest is `sim2real.transfer.records.run_starts`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from sim2real.agents.temporal import FALLBACK_ACTION
from sim2real.transfer.records import PILOT_MODES, Record, earlier_positions

if TYPE_CHECKING:
    from sim2real.transfer.datasets import DrivingDataset

log = logging.getLogger(__name__)

APPLIED_KEYS = ("sim/applied_steering", "sim/applied_throttle")
"""The keys `sim2real.envs.recording.APPLIED_KEYS` writes (named again here: reading tubs must
not import the simulator, which the car does not have)."""

USER_KEYS = ("user/angle", "user/throttle")
PILOT_KEYS = ("pilot/angle", "pilot/throttle")
SIM_MARKER = "sim/cte"
"""A label only sim recordings carry: such a record must also carry APPLIED_KEYS."""
MAX_GAP_SHARE = 0.5
"""More records than this share without a predecessor (and at least MIN_GAP_RECORDS of them)
means the indexes are not consecutive: a ValueError, not a silently single-frame network."""
MIN_GAP_RECORDS = 10


def applied_action(record: Record) -> tuple[float, float]:
    """The action the car applied at `record` (see the module doc); ValueError for a sim
    record recorded before sim2real recorded the applied action."""
    labels = record.labels
    if all(key in labels for key in APPLIED_KEYS):
        return labels[APPLIED_KEYS[0]], labels[APPLIED_KEYS[1]]
    if SIM_MARKER in labels:
        raise ValueError(
            f"{record.source}: record {record.index} is a sim frame without "
            f"{list(APPLIED_KEYS)} (recorded before the applied action was recorded); a "
            "temporal network needs them: record the data again with sim2real simulate"
        )
    # where DonkeyCar's pilot steered (`local_angle`) or drove (`local`), the car applied the
    # pilot's command, recorded as pilot/* (the person's user/* is kept as the label)
    steering_key = PILOT_KEYS[0] if record.mode in PILOT_MODES else USER_KEYS[0]
    throttle_key = PILOT_KEYS[1] if record.mode == "local" else USER_KEYS[1]
    steering = labels.get(steering_key, labels.get(USER_KEYS[0], FALLBACK_ACTION[0]))
    throttle = labels.get(throttle_key, labels.get(USER_KEYS[1], FALLBACK_ACTION[1]))
    return steering, throttle


def previous_actions(
    records: Sequence[Record], every: Sequence[Record] | None = None
) -> tuple[torch.Tensor, int]:
    """(context (N, 2) float32 [steering, throttle], how many records got the fallback).

    `records`: the frames to serve; `every`: all records read (default `records`), where the
    predecessors are looked up. ValueError naming the source when most of a source's records
    (more than MAX_GAP_SHARE, at least MIN_GAP_RECORDS) have no predecessor: its indexes have
    gaps, and a temporal network would be fed the fallback nearly everywhere.
    """
    every = records if every is None else every
    before = earlier_positions(records, 1, among=every)
    context = np.tile(np.asarray(FALLBACK_ACTION, np.float32), (len(records), 1))
    missing: dict[str, list[int]] = {}
    totals: dict[str, int] = {}
    for i, record in enumerate(records):
        totals[record.source] = totals.get(record.source, 0) + 1
        if before[i] < 0:
            missing.setdefault(record.source, []).append(record.index)
            continue
        context[i] = applied_action(every[before[i]])
    for source, indexes in missing.items():
        # A session's first record always misses one; count only the others as gaps.
        sessions = len({r.session for r in every if r.source == source})
        gaps = len(indexes) - sessions
        if gaps >= MIN_GAP_RECORDS and gaps > MAX_GAP_SHARE * totals[source]:
            raise ValueError(
                f"{source}: {gaps} of {totals[source]} records have no record before them in "
                f"their session (indexes with gaps, e.g. {indexes[1]}); a temporal network "
                "needs consecutive frames: use a single-frame network for this data"
            )
    fallback = sum(len(v) for v in missing.values())
    if fallback:
        log.info(
            "previous action: %d of %d frames start a session or follow a gap",
            fallback,
            len(records),
        )
    return torch.from_numpy(context), fallback


def previous_frames(records: Sequence[Record], gap: int) -> tuple[torch.Tensor, int]:
    """(index (N,) int64 into `records` of each record's frame `gap` steps back in the same
    source and session, itself where that record is not among `records` (a run's first `gap`
    frames, after a gap in the indexes, or at the edge of a split block); how many got
    themselves). For networks with ``model.temporal.previous_frame_gap``."""
    if gap < 1:
        raise ValueError(f"previous_frame_gap must be >= 1, got {gap}")
    earlier = earlier_positions(records, gap)
    own_index = np.arange(len(records), dtype=np.int64)
    index = np.where(earlier < 0, own_index, earlier)
    own = int((index == own_index).sum())
    if own:
        log.info("previous frame: %d of %d frames have none %d steps back", own, len(records), gap)
    return torch.from_numpy(index), own


def attach_previous_frames(dataset: DrivingDataset, gap: int) -> None:
    """Set `dataset.previous_index` (`previous_frames` over its decoded records), which
    `sim2real.agents.temporal.frame_inputs` reads."""
    dataset.previous_index, _ = previous_frames(dataset.records, gap)
