import pytest
import torch

from sim2real.agents.encoders import ENCODERS, build_encoder
from sim2real.agents.model import DrivingNet, ModelSpec, unit_batches
from sim2real.agents.preprocessing import Preprocessing


@pytest.mark.parametrize("name", sorted(ENCODERS))
@pytest.mark.parametrize("shape", [(3, 64, 128), (3, 120, 160)])
def test_stages_chain_into_features(name, shape):
    encoder = build_encoder(name, shape).eval()
    x = torch.randn(2, *shape)
    stages = encoder.forward_stages(x)
    assert tuple(stages) == encoder.stage_names
    assert encoder.stage_names == tuple(f"stage{i}" for i in range(1, len(stages) + 1))
    # applying the stages one after another is exactly what forward does
    chained = x
    for stage_name in encoder.stage_names:
        chained = encoder.stages[stage_name](chained)
        assert torch.equal(chained, stages[stage_name])
    features = encoder(x)
    assert features.shape == (2, encoder.feature_dim)
    assert torch.equal(features, torch.flatten(encoder.pool(chained), 1))


@pytest.mark.parametrize("name", ["pilotnet", "resnet_small"])
def test_batchnorm_present_where_freezing_must_handle_it(name):
    encoder = build_encoder(name, (3, 64, 128))
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in encoder.stages["stage1"].modules())


def test_unknown_architecture_and_too_small_input_are_clear_errors():
    with pytest.raises(ValueError, match="unknown architecture 'vgg'.*pilotnet"):
        build_encoder("vgg", (3, 64, 128))
    with pytest.raises(ValueError, match="too small.*pilotnet"):
        build_encoder("pilotnet", (3, 16, 16))
    with pytest.raises(ValueError, match="too small.*nature_cnn"):
        build_encoder("nature_cnn", (3, 16, 16))
    with pytest.raises(ValueError, match="architecture"):
        ModelSpec(architecture="vgg")


def test_driving_net_normalises_inside_and_names_outputs():
    pre = Preprocessing(height=64, width=128, mean=(0.2, 0.4, 0.6), std=(0.5, 0.25, 0.125))
    spec = ModelSpec(architecture="nature_cnn", preprocessing=pre, outputs=["a", "b", "c"])
    net = DrivingNet(spec).eval()
    images = torch.rand(3, 3, 64, 128)
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in (pre.mean, pre.std))
    expected = net.head(net.encoder((images - mean) / std))
    out = net(images)
    assert out.shape == (3, 3)
    assert torch.allclose(out, expected)
    assert net.output_index("c") == 2
    with pytest.raises(KeyError, match="'d'"):
        net.output_index("d")
    with pytest.raises(ValueError, match=r"\(N, 3, 64, 128\)"):
        net(torch.rand(1, 3, 120, 160))


def test_duplicate_outputs_rejected():
    with pytest.raises(ValueError, match="duplicate"):
        ModelSpec(outputs=["user/angle", "user/angle"])


def test_unit_batches_cover_every_row_once_scaled_to_unit_range():
    images = torch.arange(7 * 3 * 2 * 2, dtype=torch.int64).remainder(256).to(torch.uint8)
    images = images.reshape(7, 3, 2, 2)
    batches = list(unit_batches(images, 3, "cpu"))
    assert [rows for rows, _ in batches] == [slice(0, 3), slice(3, 6), slice(6, 9)]
    joined = torch.cat([x for _, x in batches])
    assert joined.dtype == torch.float32
    assert torch.equal(joined, images.float() / 255.0)
    with pytest.raises(ValueError, match="batch_size"):
        next(unit_batches(images, 0, "cpu"))
