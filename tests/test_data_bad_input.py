"""Corrupt datasets made here get the documented behaviour: skip, count, or fail clearly."""

import json
import shutil

import cv2
import numpy as np
import pytest

from sim2real.transfer.datasets import open_records
from sim2real.transfer.sample_data import sample_path
from sim2real.transfer.tub import TubWriter

INPUTS = ["cam/image_array", "user/angle", "user/throttle"]
TYPES = ["image_array", "float", "float"]


def make_tub(path, n=20):
    with TubWriter(path, INPUTS, TYPES, max_len=10) as writer:
        for i in range(n):
            image = np.full((12, 16, 3), 10 * (i % 20), np.uint8)
            writer.write({"user/angle": (i % 5) / 5 - 0.4, "user/throttle": 0.3}, image)
    return path


def rewrite_line(tub, catalog, number, edit):
    path = tub / catalog
    lines = path.read_text().splitlines(keepends=True)
    lines[number] = edit(lines[number])
    path.write_text("".join(lines))


def test_path_that_is_not_a_dataset(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match="not a dataset"):
        open_records([tmp_path])
    with pytest.raises(ValueError, match="not a dataset"):
        open_records([tmp_path / "notes.txt"])
    with pytest.raises(FileNotFoundError, match="no such"):
        open_records([tmp_path / "absent"])


def test_missing_manifest_is_named(tmp_path):
    tub = make_tub(tmp_path / "tub")
    (tub / "manifest.json").unlink()
    with pytest.raises(ValueError, match="manifest.json is missing"):
        open_records([tub])


@pytest.mark.parametrize(
    ("text", "message"),
    [("", "5 JSON lines"), ("[1]\n[2]\n{}\n{}\n{not json\n", "line 5 is not valid JSON")],
)
def test_garbled_manifest_fails_naming_file_and_line(tmp_path, text, message):
    tub = make_tub(tmp_path / "tub")
    (tub / "manifest.json").write_text(text)
    with pytest.raises(ValueError, match=message) as info:
        open_records([tub])
    assert "manifest.json" in str(info.value)


def test_garbled_deleted_indexes_and_manifest_path(tmp_path):
    tub = make_tub(tmp_path / "tub")
    assert open_records([tub / "manifest.json"]).report.usable == 20
    lines = (tub / "manifest.json").read_text().splitlines()
    lines[4] = lines[4].replace('"deleted_indexes": []', '"deleted_indexes": ["3"]')
    (tub / "manifest.json").write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match="deleted_indexes must be a list of integers"):
        open_records([tub])


def test_garbled_lines_and_bad_labels_are_skipped_and_counted(tmp_path):
    tub = make_tub(tmp_path / "tub")
    rewrite_line(tub, "catalog_0.catalog", 2, lambda line: line[: len(line) // 2] + "\n")
    rewrite_line(
        tub,
        "catalog_0.catalog",
        4,
        lambda line: line.replace('"user/angle": ', '"user/angle": NaN, "x": '),
    )
    rewrite_line(
        tub,
        "catalog_1.catalog",
        1,
        lambda line: line.replace('"user/throttle": 0.3', '"user/throttle": 7.5'),
    )
    rewrite_line(
        tub,
        "catalog_1.catalog",
        3,
        lambda line: line.replace('"user/angle": ', '"user/angle": "left", "y": '),
    )
    result = open_records([tub])
    report = result.report
    assert (report.total, report.bad_record, report.bad_label, report.usable) == (20, 1, 3, 16)
    assert {2, 4, 11, 13}.isdisjoint(r.index for r in result.records)
    assert any("outside" in e for e in report.examples)
    assert any("not finite" in e for e in report.examples)


def test_truncated_catalog_keeps_complete_records(tmp_path):
    tub = make_tub(tmp_path / "tub")
    path = tub / "catalog_1.catalog"
    path.write_bytes(path.read_bytes()[:-70])  # cut through the last line
    result = open_records([tub])
    assert result.report.usable == 19 and result.report.bad_record == 1


def test_missing_and_unreadable_images(tmp_path):
    tub = make_tub(tmp_path / "tub")
    (tub / "images" / "3_cam_image_array_.jpg").unlink()
    (tub / "images" / "5_cam_image_array_.jpg").write_bytes(b"not a jpeg at all")
    quick = open_records([tub])
    assert quick.report.missing_image == 1 and quick.report.usable == 19
    checked = open_records([tub], check_images=True)
    assert checked.report.unreadable_image == 1 and checked.report.usable == 18
    assert 5 not in {r.index for r in checked.records}


def test_fails_when_too_much_is_bad_or_nothing_usable(tmp_path):
    tub = make_tub(tmp_path / "tub")
    for i in range(12):
        (tub / "images" / f"{i}_cam_image_array_.jpg").unlink()
    with pytest.raises(ValueError, match="more than max_bad_fraction"):
        open_records([tub])
    assert open_records([tub], max_bad_fraction=0.7).report.usable == 8
    for i in range(12, 20):
        (tub / "images" / f"{i}_cam_image_array_.jpg").unlink()
    with pytest.raises(ValueError, match="no usable records") as info:
        open_records([tub], max_bad_fraction=1.0)
    assert str(tub) in str(info.value) and "missing" in str(info.value)


def test_several_tubs_keep_source_and_order(tmp_path):
    first = make_tub(tmp_path / "a", 5)
    shutil.copytree(sample_path(), tmp_path / "b")
    result = open_records([tmp_path / "b", first])
    sources = [r.source for r in result.records]
    assert sources[:1000] == [str((tmp_path / "b").resolve())] * 1000
    assert sources[1000:] == [str(first.resolve())] * 5
    assert result.report.usable == 1005 and len(result.reports) == 2
    # A folder holding tubs opens every tub in it, by name.
    assert len(open_records([tmp_path])) == 1005


def test_csv_folder_bad_rows(tmp_path):
    (tmp_path / "img").mkdir()
    rows = ["file,angle,throttle,time"]
    for i in range(10):
        cv2.imwrite(str(tmp_path / "img" / f"{i}.jpg"), np.full((8, 8, 3), 50, np.uint8))
        rows.append(f"img/{i}.jpg,{i / 10},0.2,{1000 + 50 * i}")
    rows[3] = "img/2.jpg,nan,0.2,1100"
    rows[4] = "img/3.jpg,0.3"
    rows[5] = "img/missing.jpg,0.1,0.2,1200"
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    columns = {
        "image": "file",
        "labels": {"angle": "user/angle", "throttle": "user/throttle"},
        "timestamp_ms": "time",
    }
    result = open_records([tmp_path], csv_columns=columns)
    report = result.report
    assert (report.bad_label, report.bad_record, report.missing_image, report.usable) == (
        1,
        1,
        1,
        7,
    )
    assert result.records[0].labels == {"user/angle": 0.0, "user/throttle": 0.2}
    assert result.records[-1].timestamp_ms == 1450
    with pytest.raises(ValueError, match="not_there"):
        open_records([tmp_path], csv_columns={"image": "not_there"})
    json.dumps(report.to_dict())  # the report is JSON-ready for `data inspect --json`
