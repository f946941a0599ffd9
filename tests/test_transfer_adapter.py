"""The adapter: re-heading, AdaBN, freezing, parameter groups and unfreezing phases."""

import pytest
import torch
from torch import nn

from sim2real.agents.freezing import FrozenBatchNorm2d
from sim2real.agents.model import DrivingNet, ModelSpec
from sim2real.transfer.adapter import (
    AdapterConfig,
    adabn,
    apply_freezing,
    param_groups,
    reheaded,
    unfreeze_phases,
)

SIM_OUTPUTS = ["user/angle", "user/throttle", "sim/cte", "sim/heading_error"]


def sim_net(seed=0):
    torch.manual_seed(seed)
    return DrivingNet(ModelSpec(outputs=SIM_OUTPUTS, hidden=16)).eval()


def test_keep_heads_copies_shared_rows_and_the_encoder():
    sim = sim_net()
    real = reheaded(sim, ["user/throttle", "user/angle"], "keep", seed=1)
    assert real.spec.outputs == ["user/throttle", "user/angle"]
    for k, v in sim.encoder.state_dict().items():
        assert torch.equal(v, real.encoder.state_dict()[k]), k
    assert torch.equal(real.head[1].weight, sim.head[1].weight)  # hidden layer kept
    assert torch.equal(real.head[4].weight[0], sim.head[4].weight[1])  # throttle row moved
    assert torch.equal(real.head[4].bias[1], sim.head[4].bias[0])
    x = torch.rand(3, 3, 64, 128)
    with torch.no_grad():
        torch.testing.assert_close(real(x)[:, [1, 0]], sim(x)[:, :2])
    new = reheaded(sim, ["user/angle", "pilot/extra"], "keep", seed=1)
    assert torch.equal(new.head[4].weight[0], sim.head[4].weight[0])
    assert not torch.equal(new.head[4].weight[1], sim.head[4].weight[1])


def test_reinit_heads_start_fresh_but_reproducibly():
    sim = sim_net()
    a = reheaded(sim, ["user/angle"], "reinit", seed=5)
    b = reheaded(sim, ["user/angle"], "reinit", seed=5)
    assert not torch.equal(a.head[1].weight, sim.head[1].weight)
    assert torch.equal(a.head[1].weight, b.head[1].weight)
    with pytest.raises(ValueError, match="heads"):
        reheaded(sim, ["user/angle"], "maybe")


def test_adabn_changes_only_batchnorm_statistics():
    model = sim_net()
    images = torch.randint(
        0, 256, (40, 3, 64, 128), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)
    )
    params = {k: v.clone() for k, v in model.named_parameters()}
    buffers = {k: v.clone() for k, v in model.named_buffers()}
    assert adabn(model, images, batch_size=64) == 5
    for k, v in model.named_parameters():
        assert torch.equal(v, params[k]), k
    changed = {k for k, v in model.named_buffers() if not torch.equal(v, buffers[k])}
    assert changed, "AdaBN changed nothing"
    assert all(
        k.rsplit(".", 1)[1] in ("running_mean", "running_var", "num_batches_tracked")
        for k in changed
    )
    # with one batch, the first BatchNorm's mean is the mean of the first conv's output
    with torch.no_grad():
        conv = model.encoder.stages.stage1[0](model.normalize(images.float() / 255))
    torch.testing.assert_close(model.encoder.stages.stage1[1].running_mean, conv.mean((0, 2, 3)))
    assert not model.training


def test_freezing_and_param_groups_see_only_trainable_parameters():
    model = sim_net()
    frozen = apply_freezing(model, AdapterConfig(freeze=3))
    assert frozen == ["stage1", "stage2", "stage3"]
    assert isinstance(model.encoder.stages.stage1[1], FrozenBatchNorm2d)
    groups = param_groups(model, lr=1e-3, lr_decay=0.5)
    assert [g["name"] for g in groups] == ["head", "stage5", "stage4"]
    assert [g["lr"] for g in groups] == pytest.approx([1e-3, 5e-4, 2.5e-4])
    in_groups = {id(p) for g in groups for p in g["params"]}
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert in_groups == trainable
    assert all(not p.requires_grad for p in model.encoder.stages.stage2.parameters())


def test_bn_train_keeps_batchnorm_of_frozen_stages_trainable():
    model = sim_net()
    apply_freezing(model, AdapterConfig(freeze="all", bn="train"))
    bn = model.encoder.stages.stage1[1]
    assert isinstance(bn, nn.BatchNorm2d) and bn.weight.requires_grad
    assert not model.encoder.stages.stage1[0].weight.requires_grad
    names = [g["name"] for g in param_groups(model, 1e-3)]
    assert names == ["head", "stage5", "stage4", "stage3", "stage2", "stage1"]


def test_unfreeze_phases_go_top_down_and_bad_configs_fail():
    config = AdapterConfig(freeze=3, unfreeze_epochs=[2, 2])
    assert unfreeze_phases(["stage1", "stage2", "stage3"], config) == [[], ["stage3"], ["stage2"]]
    with pytest.raises(ValueError, match="only 1 stage"):
        unfreeze_phases(["stage1"], config)
    with pytest.raises(ValueError, match="cannot freeze 7"):
        apply_freezing(sim_net(), AdapterConfig(freeze=7))
    with pytest.raises(ValueError, match="unknown stage"):
        apply_freezing(sim_net(), AdapterConfig(freeze=["stage9"]))
    with pytest.raises(ValueError):
        AdapterConfig(bn="sometimes")
