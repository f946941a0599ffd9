"""`sim2real quickstart` end to end on the shipped sample (slow: minutes)."""

from __future__ import annotations

import json

import pytest

from sim2real.experiments.cli import main


@pytest.mark.slow
def test_quickstart_runs_end_to_end_and_resumes(tmp_path, capsys):
    out = tmp_path / "quickstart"
    assert main(["quickstart", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    assert results["headline"]["sentence"] in printed
    assert {"transfer_recommended", "scratch"} <= set(results["curves"])
    assert results["zero_shot"]["main"] and results["zero_shot"]["strength_0"]
    assert (out / "report.html").stat().st_size > 10_000
    timing = json.loads((out / "timing.json").read_text())
    assert timing["cells_computed"] == results["cells"]["total"]
    # a rerun finds every cell finished
    assert main(["quickstart", "--out", str(out)]) == 0
    timing = json.loads((out / "timing.json").read_text())
    assert timing["cells_computed"] == 0
