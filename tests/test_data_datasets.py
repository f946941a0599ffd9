"""DrivingDataset and its frame cache, time-block splits, subsampling, the Udacity CSV preset."""

import json
import os

import cv2
import numpy as np
import pytest
import torch

from sim2real.agents.preprocessing import Preprocessing
from sim2real.transfer.datasets import DrivingDataset, open_records
from sim2real.transfer.records import Record
from sim2real.transfer.sample_data import sample_path
from sim2real.transfer.splits import episode_split, session_split, subsample, time_block_split
from sim2real.transfer.tub import TubWriter

PRE = Preprocessing(crop_top=4, height=8, width=16)


def colour_tub(path, n=6):
    """Frames of one pure colour each (red, green, blue, ...), so channel order is checkable."""
    inputs = ["cam/image_array", "user/angle", "sim/cte"]
    with TubWriter(path, inputs, ["image_array", "float", "float"]) as writer:
        for i in range(n):
            image = np.zeros((20, 32, 3), np.uint8)
            image[..., i % 3] = 200
            writer.write({"user/angle": i / n, "sim/cte": -i}, image)
    return path


def test_items_shapes_rgb_order_and_nan_for_missing_labels(tmp_path):
    records = open_records([colour_tub(tmp_path / "tub")]).records
    data = DrivingDataset(records, PRE, ["user/angle", "sim/heading_error"], tmp_path / "cache")
    image, target = data[1]
    assert image.shape == (3, 8, 16) and image.dtype == torch.uint8
    assert image[1].float().mean() > 180 and image[0].float().mean() < 20  # green stays green
    assert target.dtype == torch.float32 and target[0] == pytest.approx(1 / 6)
    assert torch.isnan(target[1])
    assert data.images.shape == (6, 3, 8, 16) and data.targets.shape == (6, 2)
    described = data.describe()
    assert described["frames"] == 6 and described["preprocessing"]["crop_top"] == 4


def test_cache_is_reused_keyed_by_files_and_records_preprocessing(tmp_path):
    tub = colour_tub(tmp_path / "tub")
    records = open_records([tub]).records
    first = DrivingDataset(records, PRE, ["user/angle"], tmp_path / "cache", progress=False)
    meta = json.loads(first.cache_path.with_suffix(".json").read_text())
    assert meta["preprocessing"]["height"] == 8 and meta["shape"] == [6, 3, 8, 16]
    stamp = first.cache_path.stat().st_mtime_ns
    again = DrivingDataset(records, PRE, ["user/angle"], tmp_path / "cache", progress=False)
    assert again.cache_path == first.cache_path
    assert again.cache_path.stat().st_mtime_ns == stamp  # read, not rebuilt
    assert torch.equal(again.images, first.images)
    # A different crop or a changed image file gets a new entry with the new pixels.
    other = DrivingDataset(
        records,
        PRE.model_copy(update={"crop_top": 0}),
        ["user/angle"],
        tmp_path / "cache",
        progress=False,
    )
    assert other.cache_path != first.cache_path
    path = records[0].image_path
    cv2.imwrite(str(path), np.full((20, 32, 3), 255, np.uint8))
    os.utime(path, ns=(stamp + 10**9, stamp + 10**9))
    changed = DrivingDataset(records, PRE, ["user/angle"], tmp_path / "cache", progress=False)
    assert changed.cache_path != first.cache_path
    assert changed.images[0].float().mean() > 250
    assert not list(tub.rglob("*.npy"))  # nothing written into the dataset


def test_default_cache_dir_from_env(tmp_path, monkeypatch):
    monkeypatch.setenv("SIM2REAL_CACHE", str(tmp_path / "envcache"))
    records = open_records([colour_tub(tmp_path / "tub")]).records
    data = DrivingDataset(records, PRE, ["user/angle"], progress=False)
    assert data.cache_path.is_relative_to(tmp_path / "envcache")


def test_an_undecodable_image_costs_one_frame_counted_in_the_read_report(tmp_path):
    tub = colour_tub(tmp_path / "tub", n=9)
    record_set = open_records([tub])
    records = record_set.records
    records[2].image_path.write_bytes(b"garbage")
    data = DrivingDataset(
        records, PRE, ["user/angle"], tmp_path / "cache", progress=False, report=record_set.report
    )
    assert len(data) == 8 and data.images.shape[0] == 8
    assert data.undecodable == [str(records[2].image_path)]
    assert 2 not in [r.index for r in data.records]
    # frames and labels stay paired: record 3 (red, angle 3/9) follows record 1 (green)
    assert data.images[2, 0].float().mean() > 180 and data.images[2, 1].float().mean() < 20
    assert data.targets[2, 0] == pytest.approx(3 / 9)
    report = record_set.report
    assert (report.usable, report.unreadable_image) == (8, 1)
    assert "2_cam_image_array_.jpg" in report.examples[-1]
    # the cache remembers which record was left out
    again = DrivingDataset(records, PRE, ["user/angle"], tmp_path / "cache", progress=False)
    assert again.cache_path == data.cache_path and torch.equal(again.images, data.images)
    assert again.undecodable == data.undecodable
    # max_bad_fraction still guards a broken dataset, naming the source
    for record in records[3:8]:
        record.image_path.write_bytes(b"garbage")
    with pytest.raises(ValueError, match=r"tub: 67% of records are bad.*max_bad_fraction 50%"):
        DrivingDataset(records, PRE, ["user/angle"], tmp_path / "cache", progress=False)


def fake_records(sessions):
    records = []
    for name, n in sessions:
        for i in range(n):
            records.append(Record(i, name, 50 * i, os.devnull, {"user/angle": 0.0}, "src"))
    return records


def test_time_block_split_holds_out_the_later_part_of_each_session():
    records = fake_records([("a", 100), ("b", 50)])
    split = time_block_split(records, 0.2, test_fraction=0.1, gap=5)
    a_val = [r.index for r in split.val if r.session == "a"]
    a_train = [r.index for r in split.train if r.session == "a"]
    assert a_val == list(range(65, 85)) and a_train == list(range(60))
    assert [r.index for r in split.test if r.session == "b"] == list(range(45, 50))
    assert max(r.index for r in split.train if r.session == "b") < 30
    ids = [{(r.session, r.index) for r in part} for part in (split.train, split.val, split.test)]
    assert not (ids[0] & ids[1] or ids[1] & ids[2] or ids[0] & ids[2])
    with pytest.raises(ValueError, match="sum to less than 1"):
        time_block_split(records, 0.6, test_fraction=0.5)
    short = time_block_split(fake_records([("a", 100), ("tiny", 3)]), 0.2, gap=5)
    assert [r.index for r in short.train if r.session == "tiny"] == [0, 1, 2]
    with pytest.raises(ValueError, match="too few for val_fraction"):
        time_block_split(fake_records([("tiny", 3)]), 0.2, gap=5)


def test_session_split():
    records = fake_records([("a", 10), ("b", 5), ("c", 3)])
    split = session_split(records, ["b"], ["c"])
    assert split.sizes() == {"train": 10, "val": 5, "test": 3}
    with pytest.raises(ValueError, match="not found"):
        session_split(records, ["zzz"])


def test_episode_split_holds_out_whole_episodes_drawn_by_seed():
    records = fake_records([(f"ep{i}", 10 + i) for i in range(20)])
    split = episode_split(records, 0.25, seed=1)
    val_sessions = {r.session for r in split.val}
    assert len(val_sessions) == 5 and not val_sessions & {r.session for r in split.train}
    assert len(split.train) + len(split.val) == len(records)  # no frames lost to gaps
    for session in val_sessions:  # every held-out episode is whole
        assert sum(r.session == session for r in split.val) == 10 + int(session[2:])
    assert split == episode_split(records, 0.25, seed=1)
    assert {r.session for r in episode_split(records, 0.25, seed=2).val} != val_sessions
    assert len({r.session for r in episode_split(records[:25], 0.9, seed=0).train}) == 1
    with pytest.raises(ValueError, match="needs at least 2"):
        episode_split(fake_records([("only", 30)]), 0.2, seed=0)


def test_subsample_blocks_spread_and_reproducible():
    records = fake_records([("a", 1000)])
    sample = subsample(records, 100, seed=3, block_len=10)
    assert sample == subsample(records, 100, seed=3, block_len=10)
    assert sample != subsample(records, 100, seed=4, block_len=10)
    indexes = np.array([r.index for r in sample])
    assert len(indexes) == 100 and np.all(np.diff(indexes) > 0)
    assert (np.diff(indexes) == 1).sum() == 90  # ten contiguous runs of ten
    assert indexes.min() < 100 and indexes.max() >= 900  # spread over the whole sequence
    assert len(subsample(records[:7], 100, seed=0)) == 7


def test_udacity_preset_with_windows_paths(tmp_path):
    (tmp_path / "IMG").mkdir()
    lines = []
    for i in range(4):
        name = f"center_2016_12_01_13_30_48_{i:03d}.jpg"
        cv2.imwrite(str(tmp_path / "IMG" / name), np.full((8, 8, 3), 90, np.uint8))
        lines.append(
            f"C:\\Users\\me\\sim\\IMG\\{name}, left.jpg, right.jpg, {-0.1 * i}, 0.5, 0, 30"
        )
    (tmp_path / "driving_log.csv").write_text("\n".join(lines) + "\n")
    for columns in ("udacity", None):  # the preset by name, and guessed from the file
        result = open_records([tmp_path], csv_columns=columns)
        assert result.report.usable == 4
        assert [r.labels["user/angle"] for r in result.records] == pytest.approx(
            [0, -0.1, -0.2, -0.3]
        )


def test_shipped_sample_as_a_dataset(tmp_path):
    result = open_records([sample_path()])
    split = time_block_split(result.records, 0.2)
    data = DrivingDataset(split.val, Preprocessing(), ["user/angle"], tmp_path, progress=False)
    assert len(data) == 200 and data.images.shape[1:] == (3, 64, 128)
    assert data.images.float().std() > 10  # real pictures, not blank frames
