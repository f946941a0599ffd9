"""Tub v2 writer and reader: round trip, DonkeyCar's layout, crash-safety and resume."""

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from sim2real.transfer.records import read_image_rgb
from sim2real.transfer.sample_data import sample_path
from sim2real.transfer.tub import TubWriter, read_manifest, read_tub

INPUTS = ["cam/image_array", "user/angle", "user/throttle", "user/mode", "sim/cte"]
TYPES = ["image_array", "float", "float", "str", "float"]
REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real" / "usi-track-a"


def frames(n, seed=0):
    rng = np.random.default_rng(seed)
    for i in range(n):
        image = np.zeros((24, 32, 3), np.uint8)
        image[..., i % 3] = 40 + 5 * i  # smooth colours survive JPEG almost exactly
        fields = {
            "user/angle": float(rng.uniform(-1, 1)),
            "user/throttle": float(rng.uniform(0, 1)),
            "user/mode": "user",
            "sim/cte": float(rng.normal()),
            "_timestamp_ms": 1000 + 50 * i,
        }
        yield fields, image


def write_tub(path, n, **kwargs):
    with TubWriter(path, INPUTS, TYPES, **kwargs) as writer:
        for fields, image in frames(n):
            writer.write(fields, image)
    return path


def test_round_trip_labels_order_and_images(tmp_path):
    tub = write_tub(tmp_path / "tub", 25, max_len=10, flush_every=4)
    records, report = read_tub(tub)
    expected = list(frames(25))
    assert report.usable == report.total == 25
    assert [r.index for r in records] == list(range(25))
    for record, (fields, image) in zip(records, expected, strict=True):
        assert record.labels == {k: fields[k] for k in ("user/angle", "user/throttle", "sim/cte")}
        assert record.timestamp_ms == fields["_timestamp_ms"]
        decoded = read_image_rgb(record.image_path)
        assert decoded.shape == image.shape
        assert np.abs(decoded.astype(int) - image).max() <= 3  # JPEG, RGB order kept


def test_layout_matches_donkeycar(tmp_path):
    tub = write_tub(tmp_path / "tub", 25, max_len=10)
    lines = (tub / "manifest.json").read_text().splitlines()
    assert len(lines) == 5
    assert json.loads(lines[0]) == INPUTS and json.loads(lines[1]) == TYPES
    catalog = json.loads(lines[4])
    assert catalog["paths"] == [f"catalog_{i}.catalog" for i in range(3)]
    assert catalog["current_index"] == 25 and catalog["max_len"] == 10
    assert "sessions" in json.loads(lines[3])
    for i, count in enumerate([10, 10, 5]):
        text = (tub / f"catalog_{i}.catalog").read_text()
        sidecar = json.loads((tub / f"catalog_{i}.catalog_manifest").read_text())
        assert sorted(sidecar) == ["created_at", "line_lengths", "path", "start_index"]
        assert sidecar["start_index"] == 10 * i
        assert sidecar["line_lengths"] == [len(line) for line in text.splitlines(keepends=True)]
        assert len(sidecar["line_lengths"]) == count
        first = text.splitlines()[0]
        assert list(json.loads(first)) == sorted(json.loads(first))  # keys sorted, as DonkeyCar
    assert (tub / "images" / "7_cam_image_array_.jpg").is_file()


def test_jpeg_bytes_are_stored_unchanged(tmp_path):
    ok, data = cv2.imencode(".jpg", np.full((8, 8, 3), 99, np.uint8))
    with TubWriter(tmp_path / "t", INPUTS[:2], TYPES[:2]) as writer:
        writer.write({"user/angle": 0.5}, data.tobytes())
    assert (tmp_path / "t" / "images" / "0_cam_image_array_.jpg").read_bytes() == data.tobytes()


def test_deleted_indexes_are_skipped(tmp_path):
    with TubWriter(tmp_path / "tub", INPUTS, TYPES) as writer:
        for fields, image in frames(12):
            writer.write(fields, image)
        writer.delete([3, 4, 5])
    records, report = read_tub(tmp_path / "tub")
    assert report.deleted == 3 and report.usable == 9
    assert [r.index for r in records] == [0, 1, 2, 6, 7, 8, 9, 10, 11]


def test_writer_refuses_existing_tub_and_bad_values(tmp_path):
    tub = write_tub(tmp_path / "tub", 3)
    with pytest.raises(ValueError, match="already exists"):
        TubWriter(tub, INPUTS, TYPES)
    with TubWriter(tmp_path / "new", INPUTS, TYPES) as writer:
        fields, image = next(frames(1))
        with pytest.raises(ValueError, match="not finite"):
            writer.write({**fields, "sim/cte": float("nan")}, image)
        with pytest.raises(ValueError, match="not tub inputs"):
            writer.write({**fields, "bogus": 1.0}, image)


def test_interrupted_writer_leaves_valid_tub_and_resumes(tmp_path):
    tub = tmp_path / "tub"
    writer = TubWriter(tub, INPUTS, TYPES, max_len=10, flush_every=5)
    all_frames = list(frames(30))
    for fields, image in all_frames[:13]:
        writer.write(fields, image)
    # A crash after 13 writes: 10 flushed, 3 pending, and a line torn mid-append.
    with (tub / "catalog_0.catalog").open("a") as handle:
        handle.write('{"_index": 10, "user/an')
    records, report = read_tub(tub)
    assert [r.index for r in records] == list(range(10))
    assert report.bad_record == 1  # the torn line is counted, not fatal
    assert read_manifest(tub)["catalog"]["current_index"] == 10

    with TubWriter(tub, INPUTS, TYPES, resume=True) as resumed:
        assert resumed.current_index == 10
        for fields, image in all_frames[10:]:
            resumed.write(fields, image)
    records, report = read_tub(tub)
    assert report.bad_record == 0 and report.usable == 30
    fresh = write_tub(tmp_path / "fresh", 30, max_len=10)
    for a, b in zip(records, read_tub(fresh)[0], strict=True):
        assert a.labels == b.labels and a.index == b.index


def test_shipped_sample_counts_and_deleted_indexes():
    tub = sample_path()
    records, report = read_tub(tub)
    manifest = read_manifest(tub)
    deleted = set(manifest["catalog"]["deleted_indexes"])
    assert (report.total, report.deleted, report.usable) == (1080, 80, 1000)
    assert len(deleted) == 80
    assert not deleted & {r.index for r in records}
    assert {r.session for r in records} == {"22-11-11_0"}
    angles = np.array([r.labels["user/angle"] for r in records])
    assert angles.min() < -0.5 and angles.max() > 0.5 and (angles == 0).any()
    assert np.all(np.diff([r.timestamp_ms for r in records]) > 0)
    assert "MIT" in (tub / "LICENSE").read_text()
    assert "ff5a5fab980f8a21f2a1409c00b2a4257f1d0ed1" in (tub / "README.md").read_text()


def test_reader_never_writes_into_the_tub(tmp_path):
    tub = write_tub(tmp_path / "tub", 5)
    before = {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in tub.rglob("*")}
    os.chmod(tub, 0o555)
    try:
        read_tub(tub, check_images=True)
    finally:
        os.chmod(tub, 0o755)
    assert {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in tub.rglob("*")} == before


@pytest.mark.skipif(not REAL.is_dir(), reason="../shared/data/real/usi-track-a not present")
def test_real_usi_track_a_counts():
    records, report = read_tub(REAL)
    assert report.usable == len(records) == 11623
    assert report.total == 25106
    assert report.deleted + report.superseded == 25106 - 11623
