import json

import pytest
import torch

from sim2real.agents.checkpoint import ModelCard, load_checkpoint, read_card, save_checkpoint
from sim2real.agents.freezing import freeze_stages
from sim2real.agents.model import DrivingNet, ModelSpec
from sim2real.agents.preprocessing import Preprocessing
from sim2real.common.config import ConfigError


def _trained_like(spec: ModelSpec) -> DrivingNet:
    """A network whose weights and BatchNorm statistics differ from a fresh one."""
    torch.manual_seed(3)
    net = DrivingNet(spec)
    net.train()
    with torch.no_grad():
        for _ in range(3):
            net(torch.rand(4, *spec.input_shape))  # moves the BN running statistics
        for p in net.parameters():
            p.add_(0.01 * torch.randn_like(p))
    return net.eval()


@pytest.mark.parametrize("architecture", ["pilotnet", "resnet_small"])
def test_round_trip_gives_identical_outputs(tmp_path, architecture):
    spec = ModelSpec(architecture=architecture, outputs=["user/angle", "user/throttle", "sim/cte"])
    net = _trained_like(spec)
    card = ModelCard(spec=spec, trained_on={"paths": ["x"]}, metrics={"val_loss": 0.5})
    save_checkpoint(tmp_path / "ckpt", net, card)
    files = sorted(p.name for p in (tmp_path / "ckpt").iterdir())
    assert files == ["model.json", "model.safetensors"]
    loaded, loaded_card = load_checkpoint(tmp_path / "ckpt")
    assert loaded_card == card
    assert not loaded.training
    images = torch.rand(5, *spec.input_shape)
    with torch.no_grad():
        assert torch.equal(loaded(images), net(images))
    # the same network saved again gives the same bytes (md5 comparisons of runs mean
    # something; safetensors' metadata order used to change from save to save)
    weights = (tmp_path / "ckpt" / "model.safetensors").read_bytes()
    for i in range(4):
        save_checkpoint(tmp_path / f"again{i}", loaded, card)
        assert (tmp_path / f"again{i}" / "model.safetensors").read_bytes() == weights


def test_frozen_network_checkpoint_loads_into_plain_network(tmp_path):
    spec = ModelSpec(architecture="pilotnet")
    net = _trained_like(spec)
    freeze_stages(net, ["stage1", "stage2"])
    save_checkpoint(tmp_path / "c", net, ModelCard(spec=spec))
    loaded, _ = load_checkpoint(tmp_path / "c")
    images = torch.rand(2, *spec.input_shape)
    with torch.no_grad():
        assert torch.equal(loaded(images), net(images))


def test_mismatches_are_clear_errors(tmp_path):
    spec = ModelSpec(architecture="pilotnet")
    save_checkpoint(tmp_path / "c", DrivingNet(spec), ModelCard(spec=spec))
    with pytest.raises(ValueError, match="'pilotnet' network, expected 'resnet_small'"):
        load_checkpoint(tmp_path / "c", architecture="resnet_small")
    with pytest.raises(ValueError, match=r"takes input \(3, 64, 128\), expected \(3, 120, 160\)"):
        load_checkpoint(tmp_path / "c", input_shape=(3, 120, 160))
    # a card whose input size disagrees with the stored tensors (someone edited the JSON)
    data = json.loads((tmp_path / "c" / "model.json").read_text())
    data["spec"]["preprocessing"]["height"] = 120
    data["spec"]["preprocessing"]["width"] = 160
    (tmp_path / "c" / "model.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match="model.safetensors does not match.*shape mismatch"):
        load_checkpoint(tmp_path / "c")
    # different architecture weights under a card
    other = ModelSpec(architecture="nature_cnn")
    save_checkpoint(tmp_path / "n", DrivingNet(other), ModelCard(spec=other))
    card_json = json.dumps(ModelCard(spec=spec).model_dump(mode="json"))
    (tmp_path / "n" / "model.json").write_text(card_json)
    with pytest.raises(ValueError, match="missing .* tensor"):
        load_checkpoint(tmp_path / "n")


def test_missing_and_corrupt_files_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint folder .*nowhere not found"):
        load_checkpoint(tmp_path / "nowhere")
    spec = ModelSpec()
    save_checkpoint(tmp_path / "c", DrivingNet(spec), ModelCard(spec=spec))
    (tmp_path / "c" / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="model.safetensors not found"):
        load_checkpoint(tmp_path / "c")
    (tmp_path / "c" / "model.safetensors").write_bytes(b"garbage, not safetensors")
    with pytest.raises(ValueError, match="not a readable safetensors"):
        load_checkpoint(tmp_path / "c")
    (tmp_path / "c" / "model.json").write_text("{not json")
    with pytest.raises(ValueError, match="model.json: not valid JSON"):
        read_card(tmp_path / "c")
    (tmp_path / "c" / "model.json").write_text(json.dumps({"spec": {"architecture": "vgg"}}))
    with pytest.raises(ConfigError, match="spec.architecture"):
        read_card(tmp_path / "c")
    (tmp_path / "c" / "model.json").unlink()
    with pytest.raises(FileNotFoundError, match="not a sim2real checkpoint"):
        read_card(tmp_path / "c")


def test_card_spec_must_be_the_models(tmp_path):
    net = DrivingNet(ModelSpec())
    other = ModelSpec(preprocessing=Preprocessing(height=32, width=64))
    with pytest.raises(ValueError, match="spec"):
        save_checkpoint(tmp_path / "c", net, ModelCard(spec=other))
    assert not (tmp_path / "c" / "model.json").exists()
