"""Issue 17's "ready for the car", as a DonkeyCar owner meets it on the command line: a shipped
network is recorded by its name in what is fine-tuned and evaluated from it, and the three bad
inputs (an unknown name, a camera of another size, a tub without user/mode) say what is wrong."""

import json

import numpy as np
import pytest
import torch
from model_helpers import finetune_config

from sim2real.agents import shipped
from sim2real.agents.checkpoint import ModelCard, save_checkpoint
from sim2real.agents.model import DrivingNet, ModelSpec
from sim2real.experiments.cli import main
from sim2real.transfer.adapter import AdapterConfig
from sim2real.transfer.finetune import finetune
from sim2real.transfer.sample_data import sample_path
from sim2real.transfer.tub import TubWriter

HEAD_ONLY = AdapterConfig(freeze="all")  # the head on cached features: seconds, not a ladder


def _tiny(folder, source_size=(120, 160)):
    spec = ModelSpec(architecture="pilotnet", hidden=8)
    torch.manual_seed(0)
    save_checkpoint(folder, DrivingNet(spec), ModelCard(spec=spec, source_size=source_size))
    (folder / "README.md").write_text("# tiny\n\nA tiny test network.\n")
    return folder


@pytest.fixture
def registry(tmp_path, monkeypatch):
    """A temporary registry of shipped networks holding `tiny`, and a cwd without a folder of
    that name."""
    root = tmp_path / "pretrained"
    root.mkdir()
    _tiny(root / "tiny")
    monkeypatch.setattr(shipped, "PRETRAINED_DIR", root)
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    return root


def test_card_and_evaluation_record_a_shipped_parent_by_name(registry, tmp_path, capsys):
    config = finetune_config("tiny", tmp_path / "cache", frames=40, adapter=HEAD_ONLY)
    result = finetune(config, tmp_path / "ft")
    # the name, which resolves in any installation; not this venv's package path
    assert result.card.trained_on["parent_checkpoint"] == "tiny"
    assert result.card.history[-1]["parent"] == "tiny"
    assert shipped.resolve_checkpoint("tiny") == registry / "tiny"
    sample = str(sample_path())
    assert main(["evaluate", "--checkpoint", "tiny", "--data", sample, "--n-boot", "10",
                 "--json", str(tmp_path / "e.json")]) == 0  # fmt: skip
    assert json.loads((tmp_path / "e.json").read_text())["checkpoint"] == "tiny"
    # a folder of one's own is recorded by its absolute path, as before
    own = _tiny(tmp_path / "own")
    assert shipped.checkpoint_reference(own) == str(own.resolve())
    # a copy of a shipped network elsewhere is a folder of one's own, even with its name
    (tmp_path / "cwd" / "tiny").symlink_to(own, target_is_directory=True)
    assert shipped.checkpoint_reference("tiny") == str(own.resolve())


def test_unknown_name_on_the_command_line_lists_the_real_shipped_networks(tmp_path, capsys):
    names = shipped.shipped_names()
    assert names, "the package ships at least one network"
    code = main(["finetune", "--checkpoint", "pilotnet-recpie", "--data", str(sample_path()),
                 "--frames", "100", "--out", str(tmp_path / "ft")])  # fmt: skip
    assert code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("sim2real finetune: error: checkpoint 'pilotnet-recpie' not found")
    assert f"shipped: {', '.join(names)}" in line and "sim2real models" in line
    assert not (tmp_path / "ft").exists()


def test_pilot_for_another_frame_size_fails_when_built_with_both_sizes(tmp_path):
    from sim2real.transfer.export import export_onnx
    from sim2real.transfer.pilot import DonkeyPilot

    _tiny(tmp_path / "ckpt")
    export_onnx(tmp_path / "ckpt", tmp_path / "p.onnx", source_size=(120, 160), dynamo=False)
    with pytest.raises(ValueError) as caught:
        DonkeyPilot(tmp_path / "p.onnx", image_size=(240, 320))
    message = str(caught.value)
    assert "320x240" in message and "160x120" in message and "\n" not in message
    angle, throttle = DonkeyPilot(tmp_path / "p.onnx", image_size=(120, 160)).run(
        np.full((120, 160, 3), 90, np.uint8)
    )
    assert -1 <= angle <= 1 and -1 <= throttle <= 1


def test_tub_without_user_mode_is_user_driven_and_inspect_and_card_say_so(tmp_path, capsys):
    tub = tmp_path / "tub"
    rng = np.random.default_rng(0)
    inputs, types = (
        ["cam/image_array", "user/angle", "user/throttle"],
        ["image_array"] + ["float"] * 2,
    )
    with TubWriter(tub, inputs, types) as writer:
        for i in range(120):  # enough for the time-block split (gap 20 frames)
            frame = np.full((120, 160, 3), 40 + i % 100, np.uint8)
            writer.write({"user/angle": float(rng.uniform(-1, 1)), "user/throttle": 0.3}, frame)
    assert main(["data", "inspect", str(tub)]) == 0
    out = capsys.readouterr().out
    assert "no user/mode on 120 usable records: taken as driven by a person" in out
    _tiny(tmp_path / "pre")
    config = finetune_config(
        tmp_path / "pre", tmp_path / "cache", frames=40, data=[str(tub)], adapter=HEAD_ONLY
    )
    card = finetune(config, tmp_path / "ft").card
    report = card.trained_on["read_report"]
    assert report["usable"] == 120 and report["mode_missing"] == 120
