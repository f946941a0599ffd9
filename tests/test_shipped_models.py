"""Shipped pretrained networks: every card in agents/pretrained validates against today's
schema and its weights load; the name mechanism itself is tested on a temporary registry."""

import json

import pytest
import torch

from sim2real.agents import shipped
from sim2real.agents.checkpoint import ModelCard, load_checkpoint, read_card, save_checkpoint
from sim2real.agents.model import DrivingNet, ModelSpec
from sim2real.agents.training import TrainConfig
from sim2real.common.config import validate_config
from sim2real.experiments.cli import main
from sim2real.transfer.adapter import AdapterConfig

SHIPPED = shipped.shipped_names()


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_card_validates_and_weights_load(name):
    folder = shipped.resolve_checkpoint(name)
    assert folder == shipped.PRETRAINED_DIR / name
    card = read_card(name)  # strict: an unknown or renamed field fails here
    assert card.source_size is not None, f"{name}: model.json must record source_size"
    for step in card.history:  # the training configs recorded in the card still validate
        if "train" in step:
            validate_config(TrainConfig, step["train"], source=f"{name}: {step['step']}.train")
        if "adapter" in step:
            validate_config(AdapterConfig, step["adapter"], source=f"{name}: adapter")
    model, _ = load_checkpoint(name)
    with torch.no_grad():
        out = model(torch.rand(2, *card.spec.input_shape))
    assert out.shape == (2, len(card.spec.outputs)) and torch.isfinite(out).all()
    readme = (folder / shipped.CARD_README).read_text(encoding="utf-8")
    assert "sim2real " in readme, f"{name}: README.md must list the commands that made it"
    assert shipped.read_purpose(folder), f"{name}: README.md needs a first paragraph"


def _tiny(folder, source_size=(120, 160), purpose="A tiny test network for lane keeping."):
    spec = ModelSpec(architecture="pilotnet", hidden=8)
    torch.manual_seed(0)
    model = DrivingNet(spec)
    card = ModelCard(
        spec=spec,
        trained_on={"frames": {"train": 1234, "val": 100}},
        source_size=source_size,
    )
    save_checkpoint(folder, model, card)
    (folder / "README.md").write_text(
        f"# tiny\n\n{purpose}\nSecond line.\n\n## Reproduce\n\n    sim2real pretrain ...\n"
    )
    return model.eval()


@pytest.fixture
def registry(tmp_path, monkeypatch):
    root = tmp_path / "pretrained"
    root.mkdir()
    monkeypatch.setattr(shipped, "PRETRAINED_DIR", root)
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")  # a cwd without folders of those names
    return root


def test_name_resolves_and_loads_like_a_folder(registry):
    model = _tiny(registry / "tiny")
    (registry / "not-a-checkpoint").mkdir()  # a folder without model.json is no model
    assert shipped.shipped_names() == ["tiny"]
    assert shipped.resolve_checkpoint("tiny") == registry / "tiny"
    loaded, card = load_checkpoint("tiny")
    x = torch.rand(3, *card.spec.input_shape)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    assert card.source_size == (120, 160)


def test_existing_folder_wins_over_a_shipped_name(registry, tmp_path, monkeypatch):
    _tiny(registry / "tiny")
    local = tmp_path / "work"
    local.mkdir()
    _tiny(local / "tiny", source_size=(240, 320))
    monkeypatch.chdir(local)
    assert read_card("tiny").source_size == (240, 320)


def test_unknown_name_lists_the_shipped_ones(registry, capsys):
    _tiny(registry / "tiny")
    _tiny(registry / "other")
    with pytest.raises(FileNotFoundError, match=r"'nope'.*shipped: other, tiny"):
        read_card("nope")
    assert main(["export", "--checkpoint", "nope", "--onnx", "x.onnx"]) == 2
    assert "shipped: other, tiny" in capsys.readouterr().err


def test_a_file_is_named_as_a_file_not_as_missing(registry, tmp_path, capsys):
    _tiny(registry / "tiny")
    weights = registry / "tiny" / "model.safetensors"
    with pytest.raises(ValueError, match="is a file; a checkpoint is a folder"):
        load_checkpoint(weights)
    assert main(["evaluate", "--checkpoint", str(weights), "--data", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "is a file" in err and "not found" not in err


def test_models_command_lists_name_architecture_size_frames_and_purpose(registry, capsys):
    _tiny(registry / "tiny")
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "tiny" in out and "pilotnet" in out and "input 128x64" in out
    assert "camera frames 160x120" in out and "1,234 frames" in out
    assert "A tiny test network for lane keeping. Second line." in out
    assert main(["models", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["name"] == "tiny" and row["frames"] == 1234 and row["source_size"] == [120, 160]


def test_models_command_with_nothing_shipped(registry, capsys):
    assert main(["models"]) == 0
    assert "no pretrained networks ship" in capsys.readouterr().out


def test_card_takes_source_size_from_the_read_report():
    report = {"frame_sizes": [[240, 320]]}
    card = ModelCard(trained_on={"read_report": report})
    assert card.source_size == (240, 320)
    assert (
        ModelCard(trained_on={"read_report": {"frame_sizes": [[1, 2], [3, 4]]}}).source_size is None
    )
    with pytest.raises(ValueError, match=r"frames are 160x120 .* trained on 320x240"):
        card.check_source_size((120, 160), "tub")
    card.check_source_size((240, 320), "tub")  # the same size passes
    assert ModelCard().source_size is None
