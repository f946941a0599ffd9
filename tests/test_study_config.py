"""A study's stages are the commands' own configs: one default each, any recipe, files."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

from sim2real.agents.pretrain import load_pretrain_config
from sim2real.common.config import ConfigError, save_config
from sim2real.experiments.simulate import SimulateConfig
from sim2real.experiments.study import MAIN, StudyConfig, load_study_config, packaged_config
from sim2real.experiments.study_config import (
    RUNTIME_TRAIN_FIELDS,
    cell_finetune_config,
    cell_pretrain_config,
)
from sim2real.experiments.study_plan import plan_upstream, run_cell
from sim2real.transfer.finetune import load_finetune_config

RECIPE = packaged_config("pretrain_closed_loop")
RUNTIME = {"device": "cpu", "num_threads": 1, "progress": False, "cache_dir": "/tmp/frames"}


def _write(folder: Path, text: str, name: str = "study.yaml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def _settings(config, *exclude: str) -> dict:
    """A command config's dump less the fields a study sets per cell and runtime fields."""
    fields = {name: True for name in (*exclude, "cache_dir")}
    return config.model_dump(mode="json", exclude={**fields, "train": RUNTIME_TRAIN_FIELDS})


def test_a_study_pretrains_with_a_command_recipe_file_and_inline_keys_on_top(tmp_path, monkeypatch):
    folder = tmp_path / "configs"
    folder.mkdir()
    shutil.copy(RECIPE, folder / "recipe.yaml")
    (tmp_path / "studies").mkdir()
    path = _write(
        tmp_path / "studies",
        """
        pretrain:
          config: configs/recipe.yaml
          strengths: [1.0]
          train: {epochs: 2}
        grid: {frames: [0], freeze_sweep: {frames: []}, other_starts_frames: [0]}
        """,
    )
    monkeypatch.chdir(tmp_path)  # relative paths are read from the working directory
    config = load_study_config(path)
    plan = plan_upstream(config, tmp_path / "out")
    cell = plan.starts[MAIN].cell
    ran = cell_pretrain_config(cell.config["pretrain"], "sim/tub", RUNTIME)
    assert ran.data == ["sim/tub"] and ran.cache_dir == "/tmp/frames"
    assert (ran.train.device, ran.train.num_threads) == ("cpu", 1)
    # what `sim2real pretrain --config recipe.yaml --epochs 2` runs, to the field
    command = load_pretrain_config(RECIPE, {"train.epochs": 2})
    assert _settings(ran, "data") == _settings(command, "data")
    assert (ran.split.kind, ran.calibrate_steering, ran.train.lr_schedule) == (
        "episodes",
        True,
        "cosine",
    )
    # the recipe is part of the cell's key: without it, another pretraining cell
    plain = plan_upstream(StudyConfig.model_validate({"pretrain": {"strengths": [1.0]}}), tmp_path)
    assert plain.starts[MAIN].cell.id != cell.id


def test_a_saved_study_config_reloads_to_the_same_config(tmp_path):
    path = _write(tmp_path, f"pretrain: {{config: {RECIPE}, strengths: [1.0]}}\n")
    config = load_study_config(path)
    save_config(config, tmp_path / "saved.yaml")  # what describe_run writes in the out dir
    assert "config:" not in (tmp_path / "saved.yaml").read_text()  # the recipe read in
    assert load_study_config(tmp_path / "saved.yaml") == config


def test_the_recordings_are_the_simulate_command_defaults():
    """The drift the study had (perturbation 0.02, 200-frame chunks) is gone."""
    config = StudyConfig()
    recording = config.sim.recording(0.5, 300, 7)
    assert recording == SimulateConfig(frames=300, seed=7, strength=0.5)
    assert recording.perturbation == 0.2 and recording.chunk_frames == 100


def test_a_finetune_cell_runs_what_the_finetune_command_would(tmp_path, monkeypatch):
    recipe = _write(tmp_path, "ladder: {folds: 3}\ntrain: {epochs: 4, lr: 0.002}\n", "ft.yaml")
    path = _write(
        tmp_path,
        """
        finetune: {config: ft.yaml, train: {patience: 1}, adapter: {bn: adabn}}
        grid: {frames: [0, 50], seeds: [0], freeze_sweep: {frames: []}}
        """,
    )
    monkeypatch.chdir(tmp_path)
    config = load_study_config(path)
    plan = plan_upstream(config, tmp_path / "out")
    cell = run_cell(plan, MAIN, "transfer", 50, 3, 2)
    ran = cell_finetune_config(cell.config, "start/checkpoint", RUNTIME)
    command = load_finetune_config(
        recipe,
        {
            "checkpoint": "start/checkpoint",
            "data": plan.real_paths,
            "frames": 50,
            "adapter.freeze": 2,
            "train.seed": 3,
        },
    )
    command.train.patience, command.adapter.bn = 1, "adabn"
    assert _settings(ran) == _settings(command)
    assert ran.ladder.folds == 3 and ran.train.seed == 3 and ran.adapter.freeze == 2
    scratch = cell_finetune_config(
        run_cell(plan, "scratch", "scratch", 50, 0, None).config, "init", RUNTIME
    )
    assert scratch.from_scratch and not ran.from_scratch


def test_a_study_ensembles_its_transfer_cells_and_not_its_scratch_arm(tmp_path, monkeypatch):
    path = _write(
        tmp_path,
        """
        finetune: {ensemble_with: [pilotnet-styles]}
        grid: {frames: [0, 50], seeds: [0], freeze_sweep: {frames: []}}
        """,
    )
    monkeypatch.chdir(tmp_path)
    plan = plan_upstream(load_study_config(path), tmp_path / "out")
    ran = cell_finetune_config(run_cell(plan, MAIN, "transfer", 50, 0, 2).config, "start", RUNTIME)
    assert ran.ensemble_starts() == ["start", "pilotnet-styles"]
    scratch = run_cell(plan, "scratch", "scratch", 50, 0, None).config
    # a scratch network has no pretrained start to ensemble (finetune would refuse it)
    assert cell_finetune_config(scratch, "init", RUNTIME).ensemble_starts() == []


@pytest.mark.parametrize(
    ("text", "field", "setter"),
    [
        ("sim:\n  strength: 0.5\n", "sim", "pretrain.strengths"),
        ("pretrain:\n  data: [some/tub]\n", "pretrain", "recording"),
        ("finetune:\n  adapter: {freeze: 2}\n", "finetune", "grid.arms"),
        ("finetune:\n  train: {seed: 4}\n", "finetune", "grid.seeds"),
        ("finetune:\n  frames: 100\n", "finetune", "grid.frames"),
        ("finetune:\n  test_fraction: 0.3\n", "finetune", "one real split"),
    ],
)
def test_a_field_the_study_sets_per_cell_is_refused_naming_its_setter(
    tmp_path, text, field, setter
):
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_study_config(path)
    message = str(info.value)
    assert f"{path}: {field}" in message and setter in message


def test_a_bad_field_in_a_stage_file_is_named_with_that_file(tmp_path):
    recipe = _write(tmp_path, "train: {epochs: 0}\n", "recipe.yaml")
    path = _write(tmp_path, f"pretrain: {{config: {recipe}}}\n")
    with pytest.raises(ConfigError) as info:
        load_study_config(path)
    assert f"{recipe}: train.epochs" in str(info.value)
    missing = _write(tmp_path, "sim: {config: nowhere.yaml}\n", "other.yaml")
    with pytest.raises(ConfigError, match="nowhere.yaml: config file not found"):
        load_study_config(missing)
