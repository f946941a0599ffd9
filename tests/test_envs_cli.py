"""`sim2real envs preview`: end to end through the CLI."""

from __future__ import annotations

import cv2

from sim2real.experiments.cli import main


def test_envs_preview_writes_a_contact_sheet(tmp_path, capsys):
    out = tmp_path / "sheet.png"
    assert main(["envs", "preview", "--out", str(out), "--n", "2", "--size", "36x48"]) == 0
    image = cv2.imread(str(out))
    assert image is not None and image.shape[0] > 200 and image.shape[1] > 400
    assert image.std() > 10  # frames and a map, not a blank page
    assert str(out) in capsys.readouterr().out


def test_envs_preview_rejects_bad_arguments(tmp_path, capsys):
    assert main(["envs", "preview", "--out", str(tmp_path / "sheet.jpg"), "--n", "1"]) == 2
    assert ".png" in capsys.readouterr().err
    missing = str(tmp_path / "nope.yaml")
    out = str(tmp_path / "a.png")
    assert main(["envs", "preview", "--out", out, "--config", missing]) == 2
    assert "nope.yaml" in capsys.readouterr().err
    assert main(["envs", "preview", "--out", str(tmp_path / "a.png"), "--size", "big"]) == 2
    assert not (tmp_path / "a.png").exists()


def test_envs_preview_by_style_shows_a_row_per_style(tmp_path, capsys):
    out = tmp_path / "styles.png"
    code = main(["envs", "preview", "--by-style", "--out", str(out), "--n", "1", "--size", "36x48"])
    assert code == 0
    image = cv2.imread(str(out))
    assert image is not None and image.shape[0] > image.shape[1]  # five rows of one frame
    assert image.std() > 10
    assert str(out) in capsys.readouterr().out
