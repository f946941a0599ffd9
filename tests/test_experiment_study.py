"""A tiny grid end to end on the shipped sample: cells, report files, and resuming."""

from __future__ import annotations

import json

import pytest

from sim2real.experiments.grid import CellOutcome, LocalExecutor
from sim2real.experiments.study import StudyConfig, packaged_config, run_study
from sim2real.transfer.ladder import RUNGS

TINY = {
    "name": "tiny",
    "sim": {"frames": 40, "test_frames": 20, "chunk_frames": 20},
    # the closed-loop recipe (per-image normalisation, whole episodes held out, a cosine lr),
    # as `sim2real pretrain --config` runs it, shortened; a 1-epoch network's steering may not
    # rise with its label yet, so it is not calibrated here
    "pretrain": {
        "config": str(packaged_config("pretrain_closed_loop")),
        "strengths": [1.0, 0.0],
        "calibrate_steering": False,
        "train": {"epochs": 1, "batch_size": 16},
    },
    "finetune": {
        "train": {"epochs": 1, "batch_size": 16, "patience": 0},
        "ladder": {"folds": 3},
    },
    "gap": {"max_frames": 40},
    "grid": {
        "frames": [0, 20],
        "arms": ["transfer_recommended", "transfer_full", "transfer_auto", "scratch"],
        "seeds": [0],
        "freeze_sweep": {"frames": []},
        "other_starts_frames": [0],
    },
    "evaluate": {
        "bootstrap": 10,
        "closed_loop": "zero_shot",
        "episodes": 1,
        "max_steps": 5,
        "strip_frames": 2,
    },
    "runtime": {"progress": False, "num_threads": 2},
}
STOP_AFTER = 6


class Interrupted(Exception):
    """Stands for a crash or Ctrl-C of the driver after some cells finished."""


class RecordingExecutor(LocalExecutor):
    """The local executor, remembering which cells were submitted (i.e. computed)."""

    def __init__(self) -> None:
        super().__init__()
        self.submitted: list[str] = []

    def submit(self, cell, root) -> None:
        self.submitted.append(cell.id)
        super().submit(cell, root)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """Run the tiny study, interrupted after STOP_AFTER finished cells, then run it again."""
    out = tmp_path_factory.mktemp("study")
    config = StudyConfig.model_validate(
        {**TINY, "runtime": {**TINY["runtime"], "cache_dir": str(out.parent / "frames")}}
    )
    finished: list[CellOutcome] = []

    def stop(outcome: CellOutcome) -> None:
        assert outcome.ok, outcome.error
        finished.append(outcome)
        if len(finished) == STOP_AFTER:
            raise Interrupted

    with pytest.raises(Interrupted):
        run_study(config, out, executor=LocalExecutor(on_complete=stop), log_line=lambda _: None)
    first = {
        o.cell.id: (out / "cells" / o.cell.id / "result.json").stat().st_mtime_ns for o in finished
    }
    executor = RecordingExecutor()
    run = run_study(config, out, executor=executor, log_line=lambda _: None)
    return {"out": out, "run": run, "first": first, "executor": executor}


def test_interrupted_study_resumes_without_redoing_finished_cells(study):
    run, first = study["run"], study["first"]
    assert len(first) == STOP_AFTER
    assert not set(first) & set(study["executor"].submitted)
    for cell_id, mtime in first.items():
        assert (study["out"] / "cells" / cell_id / "result.json").stat().st_mtime_ns == mtime
        assert run.outcomes[cell_id].cached
    assert not run.failures
    assert len(run.computed) == len(run.outcomes) - STOP_AFTER
    assert not list((study["out"] / "cells").glob("*.partial"))


def test_tiny_grid_writes_the_report_with_the_expected_cells(study):
    out = study["out"]
    results = json.loads((out / "results.json").read_text())
    runs = results["runs"]
    # zero-shot for both strengths, then N=20: recommended freeze, no freezing, auto, scratch
    assert sorted((r["start"], r["mode"]) for r in runs) == sorted(
        [
            ("main", "zero_shot"),
            ("strength_0", "zero_shot"),
            ("main", "transfer"),
            ("main", "transfer"),
            ("main", "transfer"),
            ("scratch", "scratch"),
        ]
    )
    transfer = [r for r in runs if r["mode"] == "transfer"]
    recommended = results["starts"]["main"]["recommendation"]["20"]["freeze"]
    assert sorted(str(r["freeze"]) for r in transfer) == sorted(["0", str(recommended), "auto"])
    # the auto arm's curve says which rung the cross-validation picked
    (auto,) = [r for r in transfer if r["freeze"] == "auto"]
    assert auto["ladder_pick"] in RUNGS
    assert results["curves"]["transfer_auto"][0]["freeze"] == auto["ladder_pick"]
    assert all(r["frames_used"] == 20 for r in runs if r["mode"] != "zero_shot")
    for r in runs:
        # steering lies in [-1, 1]: an MAE is in (0, 2); 0 would mean a copy of the labels
        assert 0.0 < r["real"]["steering_mae"]["value"] < 2.0
        assert 0.0 < r["sim"]["steering_mae"]["value"] < 2.0
        assert r["real"]["steering_mae"]["value"] != r["sim"]["steering_mae"]["value"]
    zero = results["zero_shot"]["main"]
    assert zero["closed_loop"]["episodes"] == 1
    assert zero["calibrated"]["steering_r2"]["value"] >= zero["raw"]["steering_r2"]["value"] - 0.5
    assert set(results["starts"]["main"]["gap"]) == set(results["stage_names"])
    assert results["headline"]["sentence"].startswith("with 20 real frames")
    assert [p["frames"] for p in results["curves"]["scratch"]] == [20]
    markdown = (out / "report.md").read_text()
    assert results["headline"]["sentence"] in markdown
    figures = json.loads((out / "report" / "figures.json").read_text())
    for figure in ("learning_curves", "domain_gap", "sim_vs_real", "frames"):
        assert (out / figures[figure]).stat().st_size > 1000
        assert f"]({figures[figure]})" in markdown
    html = (out / "report.html").read_text()
    assert html.count('src="data:image/') == len(figures)
    # the zero-shot network's one episode is both its worst and best drive: one clip
    assert html.count('src="data:image/webp;base64,') == 1 and "drive_only" in figures
    assert 'src="report/' not in html
    # the frame strip's predictions come from the predictions cell, not from the report
    strip = results["predictions"]["strip"]
    assert (out / strip["file"]).is_file() and len(strip["truth"]) == 2
    assert set(strip["networks"]) == {"transfer N=20", "scratch N=20", "zero-shot"}


def test_rerun_of_a_finished_study_computes_nothing(study):
    config = study["run"].plan.config
    executor = RecordingExecutor()
    again = run_study(
        config, study["out"], executor=executor, log_line=lambda _: None, report=False
    )
    assert executor.submitted == []
    assert set(again.outcomes) == set(study["run"].outcomes)


def test_the_pretrain_cells_ran_the_recipe_file(study):
    from sim2real.agents.checkpoint import read_card

    run = study["run"]
    for name in ("main", "strength_0"):
        result = run.outcomes[run.plan.starts[name].cell.id].result
        card = read_card(study["out"] / result["checkpoint"])
        assert card.split.kind == "episodes"  # the recipe's, not the default
        assert card.spec.preprocessing.normalization == "per_image"
