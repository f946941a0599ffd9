"""`sim2real data inspect`: counts, statistics and pictures, end to end through the CLI."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

from sim2real.experiments.cli import main
from sim2real.transfer.sample_data import sample_path

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real" / "usi-track-a"


def test_inspect_sample_writes_json_histogram_and_sheet(tmp_path, capsys):
    tub = tmp_path / "tub"
    shutil.copytree(sample_path(), tub)
    (tub / "images" / "100_cam_image_array_.jpg").write_bytes(b"broken")
    (tub / "images" / "101_cam_image_array_.jpg").unlink()
    out = tmp_path / "out"
    code = main(
        [
            "data",
            "inspect",
            str(tub),
            "--json",
            str(out / "s.json"),
            "--sheet",
            str(out / "sheet.png"),
            "--hist",
            str(out / "hist.png"),
        ]
    )
    assert code == 0
    summary = json.loads((out / "s.json").read_text())
    counts = summary["counts"]
    assert (counts["total"], counts["deleted"], counts["usable"]) == (1080, 80, 998)
    assert counts["unreadable_image"] == 1 and counts["missing_image"] == 1
    angle = summary["labels"]["user/angle"]
    assert -1 <= angle["min"] < 0 < angle["max"] <= 1 and angle["count"] == 998
    assert sum(summary["steering_histogram"]["counts"]) == 998
    assert "usable 998" in capsys.readouterr().out
    sheet = cv2.imread(str(out / "sheet.png"))
    hist = cv2.imread(str(out / "hist.png"))
    assert sheet is not None and sheet.shape[0] > 200 and sheet.std() > 10
    assert hist is not None and hist.shape[1] > 300


def test_inspect_not_a_dataset_is_a_user_error(tmp_path, capsys):
    assert main(["data", "inspect", str(tmp_path)]) == 2
    assert "not a dataset" in capsys.readouterr().err


@pytest.mark.skipif(not REAL.is_dir(), reason="../shared/data/real/usi-track-a not present")
def test_inspect_real_usi_track_a_reports_11623_usable(tmp_path):
    assert (
        main(["data", "inspect", str(REAL), "--no-decode", "--json", str(tmp_path / "s.json")]) == 0
    )
    counts = json.loads((tmp_path / "s.json").read_text())["counts"]
    assert counts["usable"] == 11623 and counts["total"] == 25106


@pytest.mark.slow
@pytest.mark.skipif(not REAL.is_dir(), reason="../shared/data/real/usi-track-a not present")
def test_inspect_real_usi_track_a_decoding_every_image(tmp_path):
    assert main(["data", "inspect", str(REAL), "--json", str(tmp_path / "s.json")]) == 0
    counts = json.loads((tmp_path / "s.json").read_text())["counts"]
    assert counts["usable"] == 11623 and counts["unreadable_image"] == 0


def test_importing_inspection_leaves_the_matplotlib_backend_alone(tmp_path):
    """The backend is the user's until a picture is drawn (then Agg, `common.io.agg_pyplot`)."""
    script = (
        "import sys, matplotlib\n"
        "import sim2real.transfer.inspection as inspection\n"
        "print(matplotlib.get_backend(), 'matplotlib.pyplot' in sys.modules)\n"
    )
    env = {**os.environ, "MPLBACKEND": "svg"}
    run = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["svg", "False"]
