"""benchmarks/mount_standin.py: a warped copy of a real tub that the reader reads as the same
recording (labels, order, deletions), with each image moved as the mount says."""

import json
import os
import sys

import cv2
import numpy as np
import pytest
from model_helpers import load_benchmark

from sim2real.transfer.sample_data import sample_path
from sim2real.transfer.tub import read_tub


@pytest.fixture(scope="module")
def standin():
    yield load_benchmark("mount_standin")
    del sys.modules["mount_standin"]


def test_copy_reads_as_the_same_recording_with_warped_images(standin, tmp_path):
    src = sample_path()  # 1,080 real frames of usi-track-a, 80 deleted
    before = {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in src.rglob("*")}
    out = tmp_path / "pitched"
    count = standin.write_standin(src, out, "pitchup-roll")
    assert {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in src.rglob("*")} == before
    assert count == len(list((src / "images").iterdir()))
    (a, report_a), (b, report_b) = read_tub(src), read_tub(out, check_images=True)
    assert (report_b.usable, report_b.deleted) == (report_a.usable, report_a.deleted) == (1000, 80)
    assert [(r.index, r.timestamp_ms, r.labels) for r in a] == [
        (r.index, r.timestamp_ms, r.labels) for r in b
    ]
    first, warped = (cv2.imread(str(r.image_path)) for r in (a[0], b[0]))
    assert warped.shape == first.shape
    record = json.loads((out / "standin.json").read_text())
    assert record["mount"] == "pitchup-roll" and record["roll_deg"] == 3.0
    # the warp moved the content: the top rows of the copy repeat the original's top row
    assert np.abs(warped.astype(int) - first.astype(int)).mean() > 10
    assert not (out.parent / "pitched.partial").exists()


def test_identity_is_the_jpeg_round_trip_only(standin, tmp_path):
    out = tmp_path / "same"
    standin.write_standin(sample_path(), out, "identity")
    name = sorted((out / "images").iterdir())[5].name
    a, b = (cv2.imread(str(p / "images" / name)) for p in (sample_path(), out))
    assert np.abs(a.astype(int) - b.astype(int)).mean() < 2


def test_each_mount_moves_points_as_it_says(standin):
    w, h = 160, 120
    move = lambda mount, pts, **kw: cv2.perspectiveTransform(  # noqa: E731
        np.array([pts], np.float64), standin.homography(mount, w, h, **kw)
    )[0]
    cx, cy = (w - 1) / 2, (h - 1) / 2
    # pitch up: the centre moves down by horizon_shift x height
    (x, y), *_ = move(standin.Mount(horizon_shift=0.12), [(cx, cy)])
    assert x == pytest.approx(cx) and y == pytest.approx(cy + 0.12 * h)
    # roll: the centre stays, a point right of it turns clockwise (down, image y down)
    c, right = move(standin.Mount(roll_deg=3.0), [(cx, cy), (cx + 50, cy)])
    assert c == pytest.approx([cx, cy])
    assert np.degrees(np.arctan2(right[1] - cy, right[0] - cx)) == pytest.approx(3.0)
    # zoom: distances from the centre scale
    (x, y), *_ = move(standin.Mount(zoom=1.25), [(cx + 40, cy - 20)])
    assert (x - cx, y - cy) == pytest.approx((50, -25))
    # a higher camera: the horizon row stays, ground rows move away from it, columns stay
    y_h = 0.3 * (h - 1)
    horizon, ground = move(standin.Mount(height=1.3), [(20, y_h), (20, y_h + 40)], horizon=0.3)
    assert horizon == pytest.approx([20, y_h]) and ground == pytest.approx([20, y_h + 52])


def test_warp_moves_a_drawn_line(standin):
    image = np.zeros((120, 160, 3), np.uint8)
    image[40:42] = 255  # a horizontal line
    out = standin.warp(image, standin.homography(standin.Mount(horizon_shift=0.1), 160, 120))
    rows = np.flatnonzero(out[:, 80, 0] > 128)
    assert rows.mean() == pytest.approx(40.5 + 12, abs=1.5)


def test_refuses_existing_output_and_unknown_mount(standin, tmp_path):
    out = tmp_path / "x"
    out.mkdir()
    with pytest.raises(ValueError, match="exists"):
        standin.write_standin(sample_path(), out, "higher")
    with pytest.raises(ValueError, match="not one of"):
        standin.write_standin(sample_path(), tmp_path / "y", "sideways")
    assert standin.main(["write", str(tmp_path / "nope"), str(tmp_path / "z"), "higher"]) == 2
    assert not (tmp_path / "z").exists() and os.listdir(tmp_path) == ["x"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"horizon": 1.5}, "horizon 1.5"),
        ({"hfov_deg": 180.0}, "hfov 180.0"),
        ({"hfov_deg": -90.0}, "hfov -90.0"),
        ({"quality": 0}, "quality 0"),
    ],
)
def test_refuses_options_that_would_write_garbage(standin, tmp_path, options, message):
    # a field of view of 180 degrees or more has no pinhole; a horizon outside the image and a
    # JPEG quality outside 1-100 are typos: none may write a stand-in
    with pytest.raises(ValueError, match=message):
        standin.write_standin(sample_path(), tmp_path / "out", "higher", **options)
    assert os.listdir(tmp_path) == []
    flag = {"horizon": "--horizon", "hfov_deg": "--hfov", "quality": "--quality"}
    [(key, value)] = options.items()
    argv = ["write", str(sample_path()), str(tmp_path / "out"), "higher", flag[key], str(value)]
    assert standin.main(argv) == 2
    assert os.listdir(tmp_path) == []
