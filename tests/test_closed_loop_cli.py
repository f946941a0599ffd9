"""`sim2real evaluate --sim`: a checkpoint drives held-out sim tracks from the command line."""

import json

import torch

from sim2real.agents.checkpoint import ModelCard, save_checkpoint
from sim2real.agents.model import DrivingNet, ModelSpec
from sim2real.agents.preprocessing import Preprocessing
from sim2real.experiments.cli import main


def _full_left_checkpoint(folder):
    """A tiny network that always steers full left at full throttle (off the road soon)."""
    torch.set_num_threads(1)
    spec = ModelSpec(
        architecture="resnet_small",
        preprocessing=Preprocessing(crop_top=8, height=32, width=32),
        hidden=8,
    )
    net = DrivingNet(spec)
    with torch.no_grad():  # always full left at full throttle: off the road within seconds
        net.head[-1].weight.zero_()
        net.head[-1].bias.copy_(torch.tensor([-1.0, 1.0]))
    card = ModelCard(spec=spec, trained_on={"env_config": {"image_size": [40, 48]}})
    save_checkpoint(folder, net, card)


def test_evaluate_sim_drives_and_writes_json(tmp_path, capsys):
    _full_left_checkpoint(tmp_path / "ckpt")
    out = tmp_path / "eval.json"
    args = ["evaluate", "--checkpoint", str(tmp_path / "ckpt"), "--sim", "--episodes", "2"]
    assert main([*args, "--nominal", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "lap completion 0%" in printed and "seed 10001" in printed
    result = json.loads(out.read_text())
    assert result["settings"]["seeds"] == [10_000, 10_001] and result["settings"]["nominal"]
    assert result["settings"]["image_size"] == [40, 48]
    assert [e["outcome"] for e in result["episodes"]] == ["off_road", "off_road"]
    assert result["summary"]["off_road_events"] == 2


def test_evaluate_sim_with_a_missing_checkpoint_is_a_clear_error(tmp_path, capsys):
    assert main(["evaluate", "--checkpoint", str(tmp_path / "none"), "--sim"]) == 2
    assert "not found" in capsys.readouterr().err


def test_evaluate_sim_strength_and_seed_start(tmp_path, capsys):
    _full_left_checkpoint(tmp_path / "ckpt")
    out = tmp_path / "eval.json"
    args = ["evaluate", "--checkpoint", str(tmp_path / "ckpt"), "--sim", "--episodes", "1"]
    assert main([*args, "--strength", "0.5", "--seed-start", "10020", "--json", str(out)]) == 0
    assert "strength 0.5" in capsys.readouterr().out
    settings = json.loads(out.read_text())["settings"]
    assert settings["seeds"] == [10_020] and settings["strength"] == 0.5
    assert settings["throttle_scale"] == 1.0
    assert main([*args, "--throttle-scale", "0.8"]) == 0
    assert "throttle x0.8" in capsys.readouterr().out
    assert not settings["nominal"]


def test_evaluate_sim_rejects_bad_strength_and_training_seeds(tmp_path, capsys):
    _full_left_checkpoint(tmp_path / "ckpt")
    args = ["evaluate", "--checkpoint", str(tmp_path / "ckpt"), "--sim"]
    assert main([*args, "--strength", "1.5"]) == 2
    assert "--strength must lie in [0, 1], got 1.5" in capsys.readouterr().err
    assert main([*args, "--seed-start", "5"]) == 2
    assert "held-out seeds start at 10000" in capsys.readouterr().err
    assert main([*args, "--episodes", "1", "--throttle-scale", "-1"]) == 2
    assert "throttle_scale must be in (0, 2], got -1" in capsys.readouterr().err
    for strength in ("0.5", "1"):  # any explicit strength, the default value too
        assert main([*args, "--nominal", "--strength", strength]) == 2
        assert "leave out --strength" in capsys.readouterr().err
