"""`sim2real quickstart` end to end on the shipped sample (slow: minutes)."""

from __future__ import annotations

import json

import pytest

from sim2real.experiments.cli import main
from sim2real.experiments.study import load_study_config, packaged_config


@pytest.mark.slow
def test_quickstart_runs_end_to_end_and_resumes(tmp_path, capsys):
    out = tmp_path / "quickstart"
    assert main(["quickstart", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    assert results["headline"]["sentence"] in printed
    config = load_study_config(packaged_config("quickstart"))
    assert set(config.grid.arms) <= set(results["curves"])
    # the shipped network is the only start: it alone is scored zero-shot and drives in sim
    assert set(results["zero_shot"]) == {"main"}
    assert results["zero_shot"]["main"]["closed_loop"]["episodes"] == 1
    # every arm at every N > 0, the zero-shot cell, and upstream: two recordings (gap and
    # sim test), the shipped network's copy, the scratch init and the gap
    trained = len([n for n in config.grid.frames if n != 0]) * len(config.grid.arms)
    assert results["cells"]["total"] == trained + 1 + 5
    assert (out / "report.html").stat().st_size > 10_000
    timing = json.loads((out / "timing.json").read_text())
    assert timing["cells_computed"] == results["cells"]["total"]
    # a rerun finds every cell finished
    assert main(["quickstart", "--out", str(out)]) == 0
    timing = json.loads((out / "timing.json").read_text())
    assert timing["cells_computed"] == 0
