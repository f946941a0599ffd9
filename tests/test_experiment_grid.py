"""Cells: stable keys, atomic commits, the local executor; study configs: errors name fields."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from sim2real.agents.shipped import shipped_names
from sim2real.common.config import ConfigError
from sim2real.experiments.grid import (
    Cell,
    CellStore,
    LocalExecutor,
    StepContext,
    register_step,
    run_cells,
)
from sim2real.experiments.study import (
    MAIN,
    StudyConfig,
    load_study_config,
    packaged_config,
    plan_runs,
    plan_upstream,
)

calls: list[str] = []


@register_step("test_square")
def _square(ctx: StepContext) -> dict:
    """A tiny step for executor tests: writes a file and squares its input."""
    calls.append(ctx.cell.id)
    if ctx.cell.config.get("fail"):
        raise ValueError("asked to fail")
    (ctx.work / "out.txt").write_text(str(ctx.cell.config["x"]))
    return {"y": ctx.cell.config["x"] ** 2}


def test_cell_key_is_stable_across_processes_and_key_order():
    cell = Cell("simulate", {"a": 1, "b": {"c": [1, 2]}}, deps=(("sim", "x-1"),))
    same = Cell("simulate", {"b": {"c": [1, 2]}, "a": 1}, deps=(("sim", "x-1"),))
    assert cell.key == same.key
    code = (
        "from sim2real.experiments.grid import Cell;"
        "print(Cell('simulate', {'a': 1, 'b': {'c': [1, 2]}}, deps=(('sim', 'x-1'),)).key)"
    )
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert other.stdout.strip() == cell.key


def test_cell_key_changes_with_config_and_deps_but_not_runtime_or_label():
    base = Cell("run", {"frames": 50, "seed": 0}, deps=(("start", "pretrain-1"),))
    assert Cell("run", {"frames": 100, "seed": 0}, deps=base.deps).key != base.key
    assert Cell("run", dict(base.config), deps=(("start", "pretrain-2"),)).key != base.key
    assert Cell("gap", dict(base.config), deps=base.deps).key != base.key
    relabelled = Cell("run", dict(base.config), base.deps, runtime={"num_threads": 7}, label="x")
    assert relabelled.key == base.key


def test_run_cells_commits_atomically_and_skips_finished(tmp_path):
    store = CellStore(tmp_path)
    cells = [Cell("test_square", {"x": x}, label=f"x={x}") for x in (2, 3)]
    calls.clear()
    outcomes = run_cells(cells + cells[:1], store, LocalExecutor(), log=lambda _: None)
    assert calls == [cells[0].id, cells[1].id]  # the duplicate ran once
    assert {o.result["y"] for o in outcomes.values()} == {4, 9}
    folder = store.path(cells[0].id)
    assert (folder / "out.txt").read_text() == "2"
    saved = json.loads((folder / "result.json").read_text())
    assert saved["config"] == {"x": 2} and saved["result"] == {"y": 4}
    assert not list(store.cells.glob("*.partial"))
    calls.clear()
    again = run_cells(cells, store, LocalExecutor(), log=lambda _: None)
    assert calls == [] and all(o.cached for o in again.values())


def test_a_failed_cell_is_reported_not_stored_and_blocks_its_dependents(tmp_path):
    store = CellStore(tmp_path)
    bad = Cell("test_square", {"x": 1, "fail": True})
    child = Cell("test_square", {"x": 5}, deps=(("parent", bad.id),))
    outcomes = run_cells([bad], store, LocalExecutor(), log=lambda _: None)
    assert "asked to fail" in outcomes[bad.id].error
    assert not store.is_done(bad.id)
    assert store.partial_path(bad.id).is_dir()  # kept for a resume
    outcomes = run_cells([child], store, LocalExecutor(), log=lambda _: None)
    assert not outcomes[child.id].ok and bad.id in outcomes[child.id].error


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "study.yaml"
    path.write_text(textwrap.dedent(text))
    return path


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("grid:\n  frames: [0, 1, 50]\n", "grid.frames"),
        ("grid:\n  seedz: [0]\n", "grid.seedz"),
        ("pretrain:\n  strengths: []\n", "pretrain.strengths"),
        ("sim:\n  seed: 3\n  test_seed: 3\n", "sim"),
        ("finetune:\n  adapter:\n    bn: sometimes\n", "finetune.adapter.bn"),
        ("evaluate:\n  closed_loop: maybe\n", "evaluate.closed_loop"),
    ],
)
def test_bad_config_fails_naming_the_field(tmp_path, text, field):
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_study_config(path)
    assert f"{path}: {field}" in str(info.value)


def test_cli_reports_a_bad_config_in_one_line(tmp_path, capsys):
    from sim2real.experiments.cli import main

    path = _write(tmp_path, "grid:\n  arms: [transfer_sometimes]\n")
    assert main(["experiment", str(path), "--out", str(tmp_path / "out")]) == 2
    assert "grid.arms" in capsys.readouterr().err
    assert not (tmp_path / "out" / "cells").exists()


def test_packaged_configs_validate_and_declare_the_issue_grid():
    study = load_study_config(packaged_config("transfer_gap"))
    assert study.grid.frames == [0, 50, 100, 200, 500, 1000, 2000, "all"]
    assert set(study.grid.arms) == {"transfer_recommended", "transfer_full", "scratch"}
    assert len(study.grid.seeds) >= 3 and study.pretrain.strengths == [1.0, 0.0]
    quick = load_study_config(packaged_config("quickstart"))
    assert quick.real_data is None
    assert quick.start_checkpoint in shipped_names()  # the quickstart starts from shipped weights
    small = load_study_config(packaged_config("quickstart_pretrain"))
    assert small.start_checkpoint is None and small.pretrain.strengths == [1.0, 0.0]


def test_plan_ids_are_stable_and_follow_the_config(tmp_path):
    config = StudyConfig.model_validate(
        {"grid": {"frames": [0, 50], "seeds": [0], "freeze_sweep": {"frames": [50]}}}
    )
    first, second = plan_upstream(config, tmp_path), plan_upstream(config, tmp_path)
    stages = first.stage_names
    gap = {"stages": {s: {"proxy_a_distance": 0.5} for s in stages}}
    gaps = {name: gap for name in first.starts if name != "scratch"}
    ids = [c.id for c in plan_runs(first, gaps)]
    assert ids == [c.id for c in plan_runs(second, gaps)]
    # zero-shot x 2 starts + 3 arms at N=50 (recommended k=5, k=0, scratch) + the sweep's
    # k=1..4 (k=0 and k=5 are the same cells as the arms) + strength 0 at N=100
    assert len(ids) == len(set(ids)) == 2 + 3 + 4 + 1
    changed = config.model_copy(deep=True)
    changed.finetune.train.lr = 0.01
    third = plan_upstream(changed, tmp_path)
    assert third.starts[MAIN].cell.id == first.starts[MAIN].cell.id  # pretraining unchanged
    new_ids = {c.id for c in plan_runs(third, gaps)}
    zero_shot = {c.id for c in plan_runs(first, gaps) if c.config["mode"] == "zero_shot"}
    assert new_ids & set(ids) == zero_shot  # every fine-tuned cell changed, zero-shot did not


@register_step("test_resume")
def _resume(ctx: StepContext) -> dict:
    """Continues from what an interrupted attempt left in its work folder."""
    done = (ctx.work / "progress.txt").read_text() if ctx.resume else ""
    (ctx.work / "progress.txt").write_text(done + "b")
    return {"resumed": ctx.resume, "progress": done + "b"}


def test_a_partial_cell_resumes_from_its_work_folder(tmp_path):
    store = CellStore(tmp_path)
    cell = Cell("test_resume", {"n": 1})
    work = store.partial_path(cell.id)
    work.mkdir(parents=True)
    (work / "progress.txt").write_text("a")  # what a killed attempt left behind
    outcome = run_cells([cell], store, LocalExecutor(), log=lambda _: None)[cell.id]
    assert outcome.result == {"resumed": True, "progress": "ab"}
    assert not work.exists() and (store.path(cell.id) / "progress.txt").read_text() == "ab"


def test_a_start_checkpoint_replaces_the_main_pretraining(tmp_path):
    from sim2real.agents.checkpoint import ModelCard, save_checkpoint
    from sim2real.agents.model import ModelSpec, seeded_model
    from sim2real.agents.preprocessing import Preprocessing

    spec = ModelSpec(
        architecture="nature_cnn",
        outputs=["user/angle", "user/throttle", "sim/cte"],
        preprocessing=Preprocessing(height=48, width=96, normalization="per_image"),
    )
    folder = save_checkpoint(tmp_path / "start", seeded_model(spec, 0), ModelCard(spec=spec))
    config = StudyConfig.model_validate(
        {
            "start_checkpoint": str(folder),
            "pretrain": {"strengths": [1.0, 0.0]},
            "grid": {"frames": [0, 50], "seeds": [0], "freeze_sweep": {"frames": []}},
        }
    )
    plan = plan_upstream(config, tmp_path / "study")
    main = plan.starts[MAIN]
    assert main.kind == "checkpoint" and main.cell.kind == "external"
    assert main.cell.config["path"] == str(folder.resolve())
    assert [s.cell.kind for s in plan.starts.values()].count("pretrain") == 1  # strength 0 only
    # scratch trains the start's architecture, input and normalisation, not pretrain.model's
    init = ModelSpec.model_validate(plan.starts["scratch"].cell.config["model"])
    assert (init.architecture, init.input_shape) == ("nature_cnn", spec.input_shape)
    assert init.preprocessing.normalization == "per_image"
    assert plan.stage_names == list(seeded_model(spec, 0).encoder.stage_names)
    other = config.model_copy(update={"start_checkpoint": "no-such-network"})
    with pytest.raises(FileNotFoundError, match="no-such-network"):
        plan_upstream(other, tmp_path / "study2")
