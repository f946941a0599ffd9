import json

import numpy as np
import pytest
import torch
import yaml

from sim2real.agents.checkpoint import load_checkpoint
from sim2real.agents.pretrain import (
    DEFAULT_OUTPUTS,
    PretrainConfig,
    load_pretrain_config,
)
from sim2real.experiments.cli import main
from sim2real.experiments.pretraining import run_pretrain
from sim2real.transfer.tub import RANDOMIZATION_KEY, TubWriter

INPUTS = ["cam/image_array", "user/angle", "user/throttle", "sim/cte", "sim/heading_error"]
TYPES = ["image_array", "float", "float", "float", "float"]
OUTPUTS = ["user/angle", "user/throttle", "sim/cte", "sim/heading_error"]


def make_sim_run(out, n=120, seed=0):
    """A sim tub as `simulate` leaves it: the randomization in its manifest's metadata."""
    rng = np.random.default_rng(seed)
    spec = {"light": {"intensity": [0.5, 1.5]}}
    metadata = {RANDOMIZATION_KEY: {"spec": spec, "strength": 0.8, "image_size": [120, 160]}}
    with TubWriter(out / "tub", INPUTS, TYPES, metadata=metadata) as writer:
        for i in range(n):
            steer = float(np.sin(i / 10.0))
            image = rng.integers(0, 60, (120, 160, 3), dtype=np.uint8)
            col = int((steer + 1) / 2 * 140)
            image[40:, col : col + 20] = 230  # the bright "road" moves with the steering
            record = {
                "user/angle": steer,
                "user/throttle": 0.4,
                "sim/cte": 0.1 * steer,
                "sim/heading_error": -0.05 * steer,
                "_timestamp_ms": 50 * i,
            }
            writer.write(record, image)
    return out / "tub"


def write_config(path, cache_dir, **train):
    config = {
        "model": {"architecture": "pilotnet", "outputs": OUTPUTS, "hidden": 16},
        "train": {
            "epochs": 2,
            "batch_size": 32,
            "progress": False,
            "num_threads": 1,
            "device": "cpu",
            **train,
        },
        "split": {"gap": 2},
        "cache_dir": str(cache_dir),
    }
    path.write_text(yaml.safe_dump(config))
    return path


def test_bad_data_path_is_a_clear_cli_error(tmp_path, capsys):
    missing = tmp_path / "no_such_tub"
    code = main(["pretrain", "--data", str(missing), "--out", str(tmp_path / "out")])
    assert code == 2
    err = capsys.readouterr().err
    assert str(missing) in err and "pretrain: error" in err
    assert not (tmp_path / "out").exists()
    (tmp_path / "empty").mkdir()
    assert main(["pretrain", "--data", str(tmp_path / "empty"), "--out", str(tmp_path / "o")]) == 2
    assert "empty" in capsys.readouterr().err


def test_pretrain_cli_writes_checkpoint_with_card_and_resumes(tmp_path, capsys):
    tub = make_sim_run(tmp_path / "sim")
    config = write_config(tmp_path / "pretrain.yaml", tmp_path / "cache")
    out = tmp_path / "run"
    args = ["pretrain", "--data", str(tub), "--out", str(out), "--config", str(config)]
    assert main([*args, "--seed", "3"]) == 0
    assert "best val loss" in capsys.readouterr().out

    model, card = load_checkpoint(out, architecture="pilotnet", input_shape=(3, 64, 128))
    assert card.kind == "perception"
    assert card.spec.outputs == OUTPUTS
    assert card.trained_on["frames"]["train"] + card.trained_on["frames"]["val"] <= 120
    assert card.trained_on["frames"]["val"] > 0
    assert card.randomization[str(tub)]["spec"] == {"light": {"intensity": [0.5, 1.5]}}
    assert card.randomization[str(tub)]["strength"] == 0.8
    assert card.split is not None and card.split.gap == 2 and "split" not in card.trained_on
    assert "package" in card.code_version
    assert card.metrics["epochs_run"] == 2
    assert set(card.metrics["val"]) == set(OUTPUTS)
    assert yaml.safe_load((out / "config.yaml").read_text())["train"]["seed"] == 3
    assert json.loads((out / "run.json").read_text())["command"]
    assert any((out / "tb").iterdir())
    with torch.no_grad():
        assert model(torch.rand(2, 3, 64, 128)).shape == (2, 4)

    # the same out dir again without --resume is refused, naming the folder
    assert main([*args, "--seed", "3"]) == 2
    assert "--resume" in capsys.readouterr().err
    # --resume with more epochs continues after epoch 2 instead of starting over
    assert main([*args, "--seed", "3", "--epochs", "3", "--resume"]) == 0
    _, card = load_checkpoint(out)
    epochs = [e["epoch"] for e in card.history[0]["epochs"]]
    assert epochs == [1, 2, 3]
    # resuming with another seed would not reproduce anything: refused
    assert main([*args, "--seed", "4", "--epochs", "4", "--resume"]) == 2
    assert "differs" in capsys.readouterr().err


def test_missing_label_names_what_the_data_has(tmp_path):
    tub = make_sim_run(tmp_path / "sim", n=40)
    config = PretrainConfig(data=[str(tub)], cache_dir=str(tmp_path / "cache"))
    config.model.outputs = ["user/angle", "sim/speed"]
    with pytest.raises(ValueError, match=r"no record has label\(s\) \['sim/speed'\].*sim/cte"):
        run_pretrain(config, tmp_path / "out")


def test_a_tub_without_recorded_randomization_gives_a_card_without_one(tmp_path, caplog):
    from sim2real.experiments.pretraining import open_sim_data

    sim = make_sim_run(tmp_path / "sim", n=40)
    with TubWriter(tmp_path / "old", INPUTS, TYPES) as writer:  # as simulate wrote before
        for i in range(40):
            writer.write({name: 0.1 for name in OUTPUTS}, np.full((120, 160, 3), i, np.uint8))
    common = {"cache_dir": str(tmp_path / "cache"), "train": {"progress": False}}
    common["split"] = {"gap": 2}
    data = open_sim_data(PretrainConfig(data=[str(tmp_path / "old")], **common))
    assert data.randomization is None
    assert "no randomization recorded" in caplog.text
    both = open_sim_data(PretrainConfig(data=[str(sim), str(tmp_path / "old")], **common))
    assert list(both.randomization) == [str(sim)]
    assert both.randomization[str(sim)]["strength"] == 0.8


def test_split_keys_of_earlier_versions_still_load(tmp_path):
    path = tmp_path / "old.yaml"
    path.write_text(yaml.safe_dump({"split": "episodes", "val_fraction": 0.2, "split_gap": 3}))
    config = load_pretrain_config(path)
    assert config.split.model_dump() == {
        "kind": "episodes",
        "val_fraction": 0.2,
        "test_fraction": 0.0,
        "gap": 3,
    }
    # a partial split mapping keeps the other fields' defaults
    assert PretrainConfig(split={"gap": 5}).split.val_fraction == 0.15


def test_print_config_round_trips_through_config(tmp_path, capsys):
    args = ["pretrain", "--print-config", "--epochs", "4", "--architecture", "resnet_small"]
    assert main(args) == 0
    path = tmp_path / "c.yaml"
    path.write_text(capsys.readouterr().out)
    config = load_pretrain_config(path)
    assert config.train.epochs == 4
    assert config.model.architecture == "resnet_small"
    assert config.model.outputs == list(DEFAULT_OUTPUTS)
    assert main(["pretrain", "--config", str(path)]) == 2
    assert "--out" in capsys.readouterr().err


def test_config_naming_only_the_architecture_keeps_the_auxiliary_heads(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"model": {"architecture": "nature_cnn"}}))
    config = load_pretrain_config(path, {"train.epochs": 2})
    assert config.model.outputs == list(DEFAULT_OUTPUTS)
    assert config.train.epochs == 2


def test_episode_split_holds_out_whole_sim_episodes_and_loses_no_frames(tmp_path):
    from sim2real.experiments.pretraining import open_sim_data

    rng = np.random.default_rng(0)
    with TubWriter(tmp_path / "tub", INPUTS, TYPES) as writer:
        for i in range(100):  # ten episodes of ten frames, as simulate names its sessions
            record = {name: 0.1 for name in OUTPUTS}
            record["_session_id"] = f"sim_0_{i // 10:04d}_000"
            writer.write(record, rng.integers(0, 255, (120, 160, 3), dtype=np.uint8))
    common = {
        "data": [str(tmp_path / "tub")],
        "cache_dir": str(tmp_path / "cache"),
        "train": {"progress": False},
    }
    data = open_sim_data(PretrainConfig(**common, split={"kind": "episodes", "val_fraction": 0.2}))
    assert (data.split.kind, data.split.val_fraction) == ("episodes", 0.2)
    assert data.trained_on["frames"] == {"train": 80, "val": 20, "test": 0}
    held_out = {r.session for r in data.val.records}
    assert len(held_out) == 2 and not held_out & {r.session for r in data.train.records}
    blocks = open_sim_data(PretrainConfig(**common, split={"val_fraction": 0.2, "gap": 2}))
    assert blocks.split.kind == "time_block"
    assert sum(blocks.trained_on["frames"].values()) < 100  # each episode's cut drops a gap
    with pytest.raises(ValueError, match="split"):
        PretrainConfig(**common, split="random")
    with pytest.raises(ValueError, match="no test part"):
        PretrainConfig(**common, split={"kind": "episodes", "test_fraction": 0.2})
