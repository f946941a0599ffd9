"""`pretrain --init`: a warm start from a checkpoint's weights (real tubs, real training)."""

import pytest
import torch
import yaml
from test_pretrain_cli import OUTPUTS, make_sim_run, write_config

from sim2real.agents.checkpoint import WEIGHTS_FILE, load_checkpoint, read_weights
from sim2real.agents.pretrain import initial_model, load_pretrain_config, read_init
from sim2real.common.digest import file_sha256
from sim2real.experiments.cli import main
from sim2real.experiments.pretraining import run_pretrain, with_init_spec


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A sim tub, a small pretrain config and a checkpoint pretrained on them (seed 5)."""
    root = tmp_path_factory.mktemp("init")
    tub = make_sim_run(root / "sim")
    config = write_config(root / "pretrain.yaml", root / "cache", epochs=1)
    args = ["pretrain", "--data", str(tub), "--config", str(config), "--seed", "5"]
    assert main([*args, "--out", str(root / "source")]) == 0
    return tub, config, root / "source"


def test_init_network_starts_from_the_checkpoint_weights(source):
    tub, path, checkpoint = source
    config = load_pretrain_config(path, {"data": [str(tub)], "init": str(checkpoint)})
    init = read_init(config)
    start = initial_model(config, init).eval()
    stored, _ = load_checkpoint(checkpoint)
    scratch = initial_model(config.model_copy(update={"init": None}), None).eval()
    images = torch.rand(4, 3, 64, 128)
    with torch.no_grad():
        assert torch.equal(start(images), stored(images))
        assert not torch.allclose(scratch(images), stored(images), atol=1e-3)
    assert init.record["sha256"] == file_sha256(checkpoint / WEIGHTS_FILE)


def test_warm_run_card_records_the_init_and_its_history(source, tmp_path, capsys):
    tub, path, checkpoint = source
    out = tmp_path / "warm"
    args = ["pretrain", "--data", str(tub), "--config", str(path), "--out", str(out)]
    assert main([*args, "--init", str(checkpoint), "--set", "train.lr=1e-6"]) == 0
    assert "best val loss" in capsys.readouterr().out
    _, card = load_checkpoint(out)
    steps = [entry["step"] for entry in card.history]
    assert steps == ["pretrain", "pretrain"]  # the source's own step first, then this one
    assert "init" not in card.history[0]
    assert card.history[1]["init"] == {
        "checkpoint": str(checkpoint),
        "path": str(checkpoint.resolve()),
        "sha256": file_sha256(checkpoint / WEIGHTS_FILE),
    }
    assert yaml.safe_load((out / "config.yaml").read_text())["init"] == str(checkpoint)
    # one epoch at lr 1e-6 leaves the convolutions where the init had them
    before, after = read_weights(checkpoint), read_weights(out)
    conv = next(k for k in before if k.endswith("weight") and before[k].dim() == 4)
    assert torch.allclose(before[conv], after[conv], atol=1e-4)
    assert not torch.equal(before[conv], after[conv])


def test_init_with_another_spec_is_a_one_line_error_naming_the_field(source, tmp_path, capsys):
    tub, path, checkpoint = source
    out = tmp_path / "warm"
    args = ["pretrain", "--data", str(tub), "--config", str(path), "--out", str(out)]
    assert main([*args, "--init", str(checkpoint), "--set", "model.hidden=8"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "model.hidden is 16 in the checkpoint but 8 in the config" in err
    crop = ["--set", "model.preprocessing.crop_top=10"]
    assert main([*args, "--init", str(checkpoint), *crop]) == 2
    assert "model.preprocessing.crop_top is 40 in the checkpoint but 10" in capsys.readouterr().err
    assert not out.exists()  # refused before the run folder was made
    assert main([*args, "--init", str(tmp_path / "missing")]) == 2
    assert "not found" in capsys.readouterr().err


def test_init_fills_the_spec_when_the_config_names_no_model(source):
    tub, _, checkpoint = source
    config = with_init_spec(load_pretrain_config(None, {"init": str(checkpoint)}))
    assert config.model == load_checkpoint(checkpoint)[1].spec
    assert config.model.outputs == OUTPUTS and config.model.hidden == 16
    assert with_init_spec(load_pretrain_config(None, {})).model.hidden == 100  # no init: as is


def test_resume_continues_its_own_state_not_the_init(source, tmp_path):
    tub, path, checkpoint = source
    overrides = {"data": [str(tub)], "init": str(checkpoint)}
    straight = run_pretrain(
        load_pretrain_config(path, {**overrides, "train.epochs": 2}), tmp_path / "straight"
    )
    out = tmp_path / "resumed"
    first = run_pretrain(load_pretrain_config(path, overrides), out)
    config = load_pretrain_config(path, {**overrides, "train.epochs": 2})
    resumed = run_pretrain(config, out, resume=True)
    epochs = resumed.card.history[-1]["epochs"]
    assert [e["epoch"] for e in epochs] == [1, 2]
    assert epochs[0] == first.card.history[-1]["epochs"][0]  # epoch 1 not run again
    # the resumed weights are those of the uninterrupted run, not a restart from the init
    for key, value in read_weights(tmp_path / "straight").items():
        assert torch.equal(value, read_weights(out)[key]), key
    assert straight.card.history[-1]["init"] == resumed.card.history[-1]["init"]
