import pytest
import torch

from sim2real.agents.freezing import (
    FrozenBatchNorm2d,
    freeze_stages,
    frozen_stages,
    resolve_stages,
    trainable_parameters,
    unfreeze_stages,
)
from sim2real.agents.model import DrivingNet, ModelSpec


def test_resolve_stages():
    net = DrivingNet(ModelSpec(architecture="pilotnet"))
    assert resolve_stages(net, 2) == ["stage1", "stage2"]
    assert resolve_stages(net, "3") == ["stage1", "stage2", "stage3"]
    assert resolve_stages(net, 0) == []
    assert resolve_stages(net, "all") == [f"stage{i}" for i in range(1, 6)]
    assert resolve_stages(net.encoder, ["stage4", "stage1"]) == ["stage1", "stage4"]
    with pytest.raises(ValueError, match="cannot freeze 6 stages: the encoder has 5"):
        resolve_stages(net, 6)
    with pytest.raises(ValueError, match="unknown stage.*stage9"):
        resolve_stages(net, ["stage9"])


@pytest.mark.parametrize("architecture", ["pilotnet", "resnet_small"])
def test_frozen_stages_stay_bit_identical_through_training_steps(architecture):
    torch.manual_seed(0)
    net = DrivingNet(ModelSpec(architecture=architecture))
    names = freeze_stages(net, resolve_stages(net, 2))
    assert frozen_stages(net) == names == ["stage1", "stage2"]
    frozen_bn = [m for n in names for m in net.encoder.stages[n].modules()]
    assert any(isinstance(m, FrozenBatchNorm2d) for m in frozen_bn)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in frozen_bn)
    before = {k: v.clone() for k, v in net.state_dict().items()}

    optimizer = torch.optim.AdamW(trainable_parameters(net), lr=1e-2, weight_decay=0.5)
    for _ in range(2):
        net.train()  # what SB3's set_training_mode(True) does before each update
        loss = net(torch.rand(4, 3, 64, 128)).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    after = net.state_dict()
    for key, value in before.items():
        lower = key.startswith(("encoder.stages.stage1.", "encoder.stages.stage2."))
        if lower:
            assert torch.equal(after[key], value), key  # weights and BN statistics alike
    upper = [k for k in before if k.startswith("encoder.stages.stage3.")]
    changed_upper = [k for k in upper if not torch.equal(after[k], before[k])]
    assert changed_upper  # the unfrozen stages did train (and their BN stats moved)


def test_frozen_batchnorm_matches_eval_batchnorm_and_ignores_train_mode():
    bn = torch.nn.BatchNorm2d(4)
    with torch.no_grad():
        bn(torch.randn(16, 4, 5, 5) * 3 + 1)
        bn.weight.uniform_(0.5, 2.0)
        bn.bias.uniform_(-1.0, 1.0)
    frozen = FrozenBatchNorm2d.from_batchnorm(bn.eval())
    x = torch.randn(2, 4, 5, 5)
    frozen.train()
    assert torch.equal(frozen(x), bn(x))
    assert torch.equal(frozen.running_mean, bn.running_mean)


def test_unfreeze_restores_trainable_batchnorm():
    net = DrivingNet(ModelSpec(architecture="pilotnet"))
    assert freeze_stages(net, 1) == ["stage1"]
    n_trainable = len(trainable_parameters(net))
    unfreeze_stages(net, ["stage1"])
    assert frozen_stages(net) == []
    assert len(trainable_parameters(net)) == n_trainable + 3  # conv weight, BN weight and bias
    assert isinstance(net.encoder.stages["stage1"][1], torch.nn.BatchNorm2d)
