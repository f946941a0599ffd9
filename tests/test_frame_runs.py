"""One definition of "an unbroken run of frames" (`sim2real.transfer.records.run_key`): the
previous action, the previous frame, a rollout's restarts and self-training's smoothing runs
all break at the same records of a real tub with a deleted record and two sessions."""

from __future__ import annotations

import numpy as np
import pytest

from sim2real.agents.preprocessing import Preprocessing
from sim2real.agents.temporal import FALLBACK_ACTION
from sim2real.transfer.datasets import open_records
from sim2real.transfer.records import earlier_positions, run_ids, run_starts
from sim2real.transfer.sample_data import sample_path
from sim2real.transfer.selftrain import SelfTrainConfig, unlabeled_frames
from sim2real.transfer.temporal import previous_actions, previous_frames
from sim2real.transfer.tub import TubWriter

INPUTS = ["cam/image_array", "user/angle", "user/throttle", "user/mode"]
TYPES = ["image_array", "float", "float", "str"]
DELETED = 12
SECOND_SESSION = 30  # the index where the second session starts (indexes run on across it)


@pytest.fixture(scope="module")
def tub(tmp_path_factory):
    """40 real frames of the sample tub rewritten as a tub of two sessions (indexes 0-29 and
    30-39, consecutive across the change) with record DELETED deleted, as DonkeyCar does."""
    path = tmp_path_factory.mktemp("runs") / "tub"
    source = open_records([sample_path()]).records[:40]
    with TubWriter(path, INPUTS, TYPES) as writer:
        for i, record in enumerate(source):
            fields = {
                "user/angle": record.labels["user/angle"],
                "user/throttle": record.labels["user/throttle"],
                "user/mode": "user",
                "_session_id": "a" if i < SECOND_SESSION else "b",
            }
            writer.write(fields, record.image_path.read_bytes())
        writer.delete(DELETED)
    return path


def test_every_caller_breaks_runs_at_the_same_records(tub):
    records = open_records([tub]).records
    assert [r.index for r in records] == [i for i in range(40) if i != DELETED]
    expected = [0, DELETED, SECOND_SESSION - 1]  # positions of index 0, 13 and 30
    assert [records[p].index for p in expected] == [0, DELETED + 1, SECOND_SESSION]

    assert np.flatnonzero(run_starts(records)).tolist() == expected
    ids = run_ids(records)
    assert np.flatnonzero(np.diff(ids)).tolist() == [p - 1 for p in expected[1:]]

    context, fallback = previous_actions(records)
    assert fallback == len(expected)
    fell_back = np.flatnonzero((context.numpy() == FALLBACK_ACTION).all(axis=1))
    assert set(expected) <= set(fell_back.tolist())
    angles = np.array([r.labels["user/angle"] for r in records], np.float32)
    inside = np.setdiff1d(np.arange(len(records)), expected)
    np.testing.assert_array_equal(context[inside, 0].numpy(), angles[inside - 1])

    index, own = previous_frames(records, 1)
    assert own == len(expected)
    assert np.flatnonzero(index.numpy() == np.arange(len(records))).tolist() == expected

    pre = Preprocessing()
    _, segments, _, _ = unlabeled_frames(
        SelfTrainConfig(max_frames=None, smooth="none"),
        [str(tub)],
        ["user/angle"],
        pre,
        progress=False,
    )
    assert len(segments) == len(records)
    np.testing.assert_array_equal(segments, ids)  # the deleted record ends a smoothing run


def test_where_the_predecessor_is_looked_up_is_the_one_difference(tub):
    """The previous action (labels only) is found across a block's edge; the previous frame
    and a rollout (images and predictions of the block only) start again there."""
    records = open_records([tub]).records
    block = records[5:10]
    assert earlier_positions(block, 1, among=records).tolist() == [4, 5, 6, 7, 8]
    assert earlier_positions(block, 1).tolist() == [-1, 0, 1, 2, 3]
    assert earlier_positions(block, 3).tolist() == [-1, -1, -1, 0, 1]
    assert previous_actions(block, records)[1] == 0
    assert previous_frames(block, 1)[1] == 1
    assert run_starts(block).tolist() == [True, False, False, False, False]
    assert run_starts(block[::-1]).all()  # out of time order, no frame follows its neighbour
