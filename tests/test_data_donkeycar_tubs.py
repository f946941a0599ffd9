"""Tubs as DonkeyCar 5.x records them: pilot/* keys only on pilot frames, user/mode honoured,
values converted as DonkeyCar's Tub.write_record converts them, frame sizes checked."""

import json

import numpy as np
import pytest

from sim2real.agents.checkpoint import ModelCard
from sim2real.transfer.datasets import check_source_sizes, open_records
from sim2real.transfer.inspection import format_summary, inspect_paths
from sim2real.transfer.tub import TubWriter, read_tub

AI_INPUTS = [
    "cam/image_array",
    "user/angle",
    "user/throttle",
    "user/mode",
    "pilot/angle",
    "pilot/throttle",
]
AI_TYPES = ["image_array", "float", "float", "str", "float", "float"]
MODES = ["user"] * 6 + ["local_angle"] * 2 + ["local"] * 4  # 12 frames


def image(i, size=(24, 32)):
    frame = np.zeros((*size, 3), np.uint8)
    frame[..., i % 3] = (40 + 5 * i) % 200
    return frame


def record_during_ai_tub(path):
    """What manage.py writes with RECORD_DURING_AI = True: pilot/* only where the pilot ran
    (DonkeyCar leaves None values out of the line)."""
    with TubWriter(path, AI_INPUTS, AI_TYPES) as writer:
        for i, mode in enumerate(MODES):
            pilot = mode != "user"
            writer.write(
                {
                    "user/angle": 0.1 * (i % 5) if not pilot else 0.0,
                    "user/throttle": 0.3,
                    "user/mode": mode,
                    "pilot/angle": -0.2 if pilot else None,
                    "pilot/throttle": 0.5 if pilot else None,
                },
                image(i),
            )
    return path


def test_pilot_frames_are_no_labels_by_default_and_counted(tmp_path):
    tub = record_during_ai_tub(tmp_path / "tub")
    lines = [json.loads(x) for x in (tub / "catalog_0.catalog").read_text().splitlines()]
    assert "pilot/angle" not in lines[0] and lines[-1]["pilot/angle"] == -0.2
    records, report = read_tub(tub)
    assert [r.index for r in records] == list(range(6))
    assert {r.mode for r in records} == {"user"}
    assert report.pilot_driven == 6 and report.usable == 6 and report.bad_label == 0
    assert report.total == report.usable + report.pilot_driven
    assert "pilot driven 6" in report.summary()
    assert all("pilot/angle" not in r.labels for r in records)
    summary, _ = inspect_paths([tub], check_images=False)
    assert "pilot-driven frames skipped 6" in format_summary(summary)


def test_pilot_frames_included_on_request(tmp_path):
    tub = record_during_ai_tub(tmp_path / "tub")
    record_set = open_records([tub], include_pilot=True)
    records, report = record_set.records, record_set.report
    assert report.usable == 12 and report.pilot_driven == 0 and report.pilot_included == 6
    assert [r.mode for r in records] == MODES
    assert records[-1].labels["pilot/angle"] == -0.2
    assert "6 pilot-driven, included" in report.summary()


def test_missing_user_mode_is_taken_as_user_driven_and_said(tmp_path):
    with TubWriter(tmp_path / "tub", AI_INPUTS[:3], AI_TYPES[:3]) as writer:
        for i in range(5):
            writer.write({"user/angle": 0.1, "user/throttle": 0.2}, image(i))
    records, report = read_tub(tmp_path / "tub")
    assert report.usable == 5 and report.mode_missing == 5
    assert all(r.mode is None for r in records)
    assert "5 usable record(s) have no user/mode and are taken as driven by a person" in (
        report.summary()
    )


def test_writer_converts_values_as_donkeycar_does(tmp_path):
    inputs = ["cam/image_array", "imu/acl", "lidar/dist", "behavior/one_hot", "flag", "count"]
    types = ["image_array", "vector", "nparray", "list", "boolean", "int"]
    with TubWriter(tmp_path / "tub", inputs, types) as writer:
        writer.write(
            {
                "imu/acl": np.array([0.5, -1.0, 9.75], np.float32),
                "lidar/dist": np.arange(6, dtype=np.int64).reshape(2, 3),
                "behavior/one_hot": [np.float64(0.0), np.int32(1)],
                "flag": np.bool_(True),
                "count": np.int16(7),
            },
            image(0),
        )
        with pytest.raises(ValueError, match=r"record 1: count='seven' is not a int"):
            writer.write(
                {
                    "imu/acl": [0],
                    "lidar/dist": [0],
                    "behavior/one_hot": [],
                    "flag": 0,
                    "count": "seven",
                },
                image(1),
            )
    line = json.loads((tmp_path / "tub" / "catalog_0.catalog").read_text().splitlines()[0])
    assert line["imu/acl"] == [0.5, -1.0, 9.75]
    assert line["lidar/dist"] == [[0, 1, 2], [3, 4, 5]]
    assert line["behavior/one_hot"] == [0.0, 1]
    assert line["flag"] is True and line["count"] == 7


def test_frame_size_is_recorded_and_another_size_refused(tmp_path):
    small = tmp_path / "small"
    with TubWriter(small, AI_INPUTS[:4], AI_TYPES[:4]) as writer:
        for i in range(4):
            writer.write(
                {"user/angle": 0.0, "user/throttle": 0.2, "user/mode": "user"}, image(i, (240, 320))
            )
    record_set = open_records([small])
    assert record_set.report.frame_sizes == [[240, 320]]
    card = ModelCard(source_size=(120, 160))
    with pytest.raises(ValueError, match=r"small: frames are 320x240 .* trained on 160x120"):
        check_source_sizes(card, record_set.reports)
    # a card fitted on these frames takes its size from its read report and accepts them
    own = ModelCard(trained_on={"read_report": record_set.report.to_dict()})
    assert own.source_size == (240, 320)
    check_source_sizes(own, record_set.reports)


def test_finetune_and_evaluate_refuse_frames_of_another_size(tmp_path, capsys):
    import torch

    from sim2real.agents.checkpoint import save_checkpoint
    from sim2real.agents.model import DrivingNet, ModelSpec
    from sim2real.experiments.cli import main

    big = tmp_path / "big"
    rng = np.random.default_rng(0)
    with TubWriter(big, AI_INPUTS[:4], AI_TYPES[:4]) as writer:
        for i in range(120):  # enough for the time-block split (gap 20 frames)
            fields = {"user/angle": float(rng.uniform(-1, 1)), "user/throttle": 0.3}
            writer.write({**fields, "user/mode": "user"}, image(i, (240, 320)))
    spec = ModelSpec(hidden=8)
    torch.manual_seed(0)
    save_checkpoint(
        tmp_path / "pre", DrivingNet(spec), ModelCard(spec=spec, source_size=(120, 160))
    )
    common = ["--checkpoint", str(tmp_path / "pre"), "--data", str(big)]
    assert main(["finetune", *common, "--out", str(tmp_path / "ft"), "--epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert "frames are 320x240" in err and "trained on 160x120" in err
    assert not (tmp_path / "ft" / "model.json").exists()
    assert main(["evaluate", *common, "--split", "all"]) == 2
    err = capsys.readouterr().err
    assert f"{big.resolve()}: frames are 320x240" in err and "trained on 160x120" in err
