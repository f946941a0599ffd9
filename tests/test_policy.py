"""SB3 policies with the project's encoder: weights in and out, freezing, determinism."""

import numpy as np
import pytest
import torch
from torch import nn

from sim2real.agents.checkpoint import ModelCard, save_checkpoint
from sim2real.agents.freezing import FrozenBatchNorm2d
from sim2real.agents.model import DrivingNet, ModelSpec
from sim2real.agents.policy import PolicyConfig, build_model, make_policy_env, resolve_model
from sim2real.agents.preprocessing import Preprocessing
from sim2real.agents.sb3_env import make_vec_env
from sim2real.agents.sb3_extractor import (
    EncoderExtractor,
    load_driving_net_into_policy,
    policy_to_driving_net,
)

# small but real: a 40x48 camera cropped to a 32x32 network input (resnet_small has BN in
# every stage, shortcuts included)
SMALL = Preprocessing(crop_top=8, height=32, width=32)
ENV = {"image_size": (40, 48), "max_episode_steps": 40}


def small_config(**overrides) -> PolicyConfig:
    data = {
        "total_timesteps": 16,
        "n_envs": 1,
        "vec_env": "dummy",
        "architecture": "resnet_small",
        "preprocessing": SMALL.model_dump(),
        "hidden": 16,
        "env": ENV,
        "eval": {"freq": 0, "episodes": 1, "max_steps": 5},
        "ppo": {"n_steps": 16, "batch_size": 8, "n_epochs": 2},
    }
    data.update(overrides)
    return PolicyConfig.model_validate(data)


def small_model(config: PolicyConfig):
    torch.set_num_threads(1)
    resolved = resolve_model(config)
    env = make_policy_env(config, resolved.preprocessing)
    model, report = build_model(config, env, resolved)
    return model, report


def save_net(
    path, outputs=("user/angle", "user/throttle"), architecture="resnet_small", prep=SMALL
):
    torch.manual_seed(1)
    spec = ModelSpec(
        architecture=architecture, preprocessing=prep, outputs=list(outputs), hidden=16
    )
    net = DrivingNet(spec).eval()
    with torch.no_grad():  # non-trivial BN statistics, so copying them is visible
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    save_checkpoint(path, net, ModelCard(spec=spec))
    return net


def policy_mean(model, images):
    """The policy's mean action (before clipping) for images (N, 3, H, W) in [0, 1]."""
    policy = model.policy
    policy.set_training_mode(False)
    with torch.no_grad():
        return policy.get_distribution(images * 255.0).distribution.mean


@pytest.mark.parametrize("normalization", ["fixed", "per_image"])
def test_checkpoint_into_extractor_and_back_gives_identical_outputs(tmp_path, normalization):
    # outputs in another order plus an auxiliary head: actions are picked by name
    prep = SMALL.model_copy(update={"normalization": normalization})
    net = save_net(tmp_path / "ckpt", outputs=("sim/cte", "user/throttle", "user/angle"), prep=prep)
    config = small_config(init_checkpoint=str(tmp_path / "ckpt"), preprocessing=prep.model_dump())
    model, report = small_model(config)
    assert "output row user/angle" in report["copied"]
    images = torch.rand(6, 3, 32, 32, generator=torch.Generator().manual_seed(0))

    expected = net(images)[:, [2, 1]]
    torch.testing.assert_close(policy_mean(model, images), expected, rtol=0, atol=1e-6)

    exported = policy_to_driving_net(model.policy, prep)
    assert exported.outputs == ["user/angle", "user/throttle"]
    torch.testing.assert_close(exported(images), expected, rtol=0, atol=1e-6)
    encoder_in = net.encoder.state_dict()
    for name, tensor in exported.encoder.state_dict().items():
        assert torch.equal(tensor, encoder_in[name]), name

    # and back into a fresh policy: the same actions again
    other, _ = small_model(small_config(seed=5, preprocessing=prep.model_dump()))
    load_driving_net_into_policy(exported, other.policy)
    torch.testing.assert_close(policy_mean(other, images), expected, rtol=0, atol=1e-6)


def test_frozen_stages_stay_bit_identical_through_a_ppo_update(tmp_path):
    save_net(tmp_path / "ckpt")
    config = small_config(init_checkpoint=str(tmp_path / "ckpt"), freeze=2)
    model, _ = small_model(config)
    policy = model.policy
    extractor = policy.features_extractor
    assert isinstance(extractor, EncoderExtractor)
    frozen = {n: p.detach().clone() for n, p in policy.named_parameters() if not p.requires_grad}
    assert frozen and all(".stage1." in n or ".stage2." in n for n in frozen)
    # the optimizer holds exactly the trainable parameters
    in_optimizer = {id(p) for g in policy.optimizer.param_groups for p in g["params"]}
    assert in_optimizer == {id(p) for p in policy.parameters() if p.requires_grad}
    frozen_bn = {
        n: {k: v.clone() for k, v in m.state_dict().items()}
        for n, m in extractor.named_modules()
        if isinstance(m, FrozenBatchNorm2d)
    }
    live_bn = {
        n: m.running_mean.clone()
        for n, m in extractor.named_modules()
        if isinstance(m, nn.BatchNorm2d)
    }
    assert frozen_bn and live_bn
    assert all(n.startswith(("encoder.stages.stage1", "encoder.stages.stage2")) for n in frozen_bn)
    trainable = {n: p.detach().clone() for n, p in policy.named_parameters() if p.requires_grad}

    policy.set_training_mode(True)
    model.learn(16)

    for n, p in policy.named_parameters():
        if n in frozen:
            assert torch.equal(p, frozen[n]), f"frozen {n} moved"
    assert any(
        not torch.equal(p, trainable[n]) for n, p in policy.named_parameters() if n in trainable
    )
    modules = dict(extractor.named_modules())
    for n, state in frozen_bn.items():
        assert isinstance(modules[n], FrozenBatchNorm2d)
        for k, v in modules[n].state_dict().items():
            assert torch.equal(v, state[k]), f"{n}.{k} moved"
    # the unfrozen BatchNorm layers did train, so the frozen ones were really exercised
    assert any(not torch.equal(modules[n].running_mean, v) for n, v in live_bn.items())


def test_two_seeded_ppo_runs_give_identical_weights():
    states = []
    for _ in range(2):
        model, _ = small_model(small_config(seed=3))
        model.learn(16)
        states.append({k: v.clone() for k, v in model.policy.state_dict().items()})
    assert states[0].keys() == states[1].keys()
    for k in states[0]:
        assert torch.equal(states[0][k], states[1][k]), k
    other, _ = small_model(small_config(seed=4))
    other.learn(16)
    assert any(not torch.equal(v, states[0][k]) for k, v in other.policy.state_dict().items())


def test_mismatched_checkpoint_is_a_clear_error(tmp_path):
    prep = Preprocessing(crop_top=0, height=40, width=40)
    save_net(tmp_path / "nature", architecture="nature_cnn", prep=prep)
    with pytest.raises(ValueError, match="architecture is 'nature_cnn'.*'resnet_small'"):
        resolve_model(small_config(init_checkpoint=str(tmp_path / "nature")))
    save_net(tmp_path / "res")
    other = Preprocessing(crop_top=0, height=32, width=32)
    with pytest.raises(ValueError, match="preprocessing"):
        resolve_model(
            small_config(init_checkpoint=str(tmp_path / "res"), preprocessing=other.model_dump())
        )
    with pytest.raises(FileNotFoundError, match="not found"):
        resolve_model(small_config(init_checkpoint=str(tmp_path / "missing")))
    # a network of another input size cannot go into this policy's extractor
    model, _ = small_model(small_config())
    big = DrivingNet(ModelSpec(architecture="resnet_small", hidden=16))
    with pytest.raises(ValueError, match="input"):
        load_driving_net_into_policy(big, model.policy)


def test_config_rejects_training_seeds_overlapping_held_out_seeds():
    with pytest.raises(ValueError, match="held-out"):
        small_config(seed=9_999, n_envs=2)


def test_preprocessed_observations_match_the_dataset_path():
    env = make_vec_env(1, "dummy", 0, preprocessing=SMALL, image_size=(40, 48))
    try:
        obs = env.reset()
        raw = env.envs[0].unwrapped._obs
        assert obs.shape == (1, 32, 32, 3)
        np.testing.assert_array_equal(obs[0], SMALL.apply(raw))
    finally:
        env.close()


@pytest.mark.slow
def test_sac_keeps_frozen_stages_in_actor_and_critics_and_exports_the_squashed_mean(tmp_path):
    save_net(tmp_path / "ckpt")
    config = small_config(
        algorithm="sac",
        init_checkpoint=str(tmp_path / "ckpt"),
        freeze=2,
        sac={"buffer_size": 100, "learning_starts": 8, "batch_size": 8, "critic_hidden": [16]},
    )
    model, report = small_model(config)
    assert "head hidden layer" in report["copied"]
    # a perception head is linear; SAC squashes what it copied: the report says so
    assert any(s.startswith("output activation (checkpoint identity") for s in report["skipped"])
    policy = model.policy
    frozen = {n: p.detach().clone() for n, p in policy.named_parameters() if not p.requires_grad}
    prefixes = {n.split(".")[0] for n in frozen}
    assert prefixes == {"actor", "critic", "critic_target"}
    for opt, part in (
        (policy.actor.optimizer, policy.actor),
        (policy.critic.optimizer, policy.critic),
    ):
        held = {id(p) for g in opt.param_groups for p in g["params"]}
        assert held and all(p.requires_grad for p in part.parameters() if id(p) in held)
    actor_before = {n: p.detach().clone() for n, p in policy.actor.named_parameters()}

    model.learn(16)

    for n, p in policy.named_parameters():
        if n in frozen and n.startswith("critic_target."):
            # the target is a Polyak average of the critic: (1 - tau) x + tau x rounds, so
            # its frozen copy may move by float rounding, never by training
            torch.testing.assert_close(p, frozen[n], rtol=0, atol=1e-6)
        elif n in frozen:
            assert torch.equal(p, frozen[n]), f"frozen {n} moved"
    assert any(
        not torch.equal(p, actor_before[n])
        for n, p in policy.actor.named_parameters()
        if p.requires_grad
    )
    images = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    policy.set_training_mode(False)
    with torch.no_grad():
        mean, _, _ = policy.actor.get_action_dist_params(images * 255.0)
    exported = policy_to_driving_net(policy, SMALL)
    torch.testing.assert_close(exported(images), torch.tanh(mean), rtol=0, atol=1e-5)


def test_sac_checkpoint_reproduces_sb3_deterministic_actions_with_the_tanh_squash(tmp_path):
    from sim2real.agents.checkpoint import load_checkpoint
    from sim2real.agents.policy import train_policy
    from sim2real.agents.policy_state import STATE_FILE, load_policy_state

    config = small_config(
        algorithm="sac",
        total_timesteps=24,
        sac={"buffer_size": 100, "learning_starts": 8, "batch_size": 8, "critic_hidden": [16]},
    )
    result = train_policy(config, tmp_path / "run")
    net, card = load_checkpoint(result.checkpoint_dir)
    # the SB3 model, rebuilt from the config and the run's pickle-free state
    model, _ = small_model(config)
    load_policy_state(model, "sac", tmp_path / "run" / STATE_FILE)
    assert model.num_timesteps == 24
    assert card.spec.output_activation == "tanh"

    obs = np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    expected, _ = model.predict(obs, deterministic=True)
    pixels = torch.from_numpy(obs).permute(0, 3, 1, 2).float()
    with torch.no_grad():
        got = net(pixels / 255.0).numpy()
        mean, _, _ = model.policy.actor.get_action_dist_params(pixels)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
    # SB3's deterministic action is tanh(mean); clipping the mean (the old export) is off by
    # more than the tolerance (x - tanh x ~ x^3 / 3, so the gap depends on the trained means)
    np.testing.assert_allclose(np.tanh(mean.numpy()), expected, rtol=0, atol=1e-5)
    assert np.abs(np.clip(mean.numpy(), -1, 1) - expected).max() > 1e-4
