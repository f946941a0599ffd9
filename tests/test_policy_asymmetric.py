"""Asymmetric actor-critic PPO: the privileged state (off by default), an actor that never
reads it, and the dense lane-keeping reward term."""

import numpy as np
import pytest
import torch
from gymnasium import spaces
from test_policy import SMALL, small_config, small_model

from sim2real.agents.policy import PolicyConfig, load_policy_config, make_policy_env
from sim2real.agents.sb3_env import (
    IMAGE_KEY,
    STATE_KEY,
    DrivingReward,
    PrivilegedState,
    make_env,
)
from sim2real.agents.sb3_extractor import (
    CRITIC_PREFIXES,
    AsymmetricActorCriticPolicy,
    FrozenAwareActorCriticPolicy,
    ImageKeyExtractor,
    policy_to_driving_net,
)

ENV = {"image_size": (40, 48), "max_episode_steps": 40}


def asym_config(**overrides) -> PolicyConfig:
    return small_config(
        env={**ENV, "privileged_state": True},
        ppo={"n_steps": 16, "batch_size": 8, "n_epochs": 2, "value_hidden": [16]},
        **overrides,
    )


def test_privileged_state_and_lane_term_are_off_by_default():
    config = PolicyConfig()
    assert config.env.privileged_state is False and config.env.cte_penalty == 0.0
    assert config.ppo.value_hidden is None
    model, _ = small_model(small_config())
    assert isinstance(model.observation_space, spaces.Box)
    assert type(model.policy) is FrozenAwareActorCriticPolicy
    env = make_env(SMALL, **ENV)
    try:
        assert not isinstance(env, PrivilegedState)
        assert not isinstance(env.env, DrivingReward)
    finally:
        env.close()


def test_privileged_state_reads_the_sim_and_the_episodes_draw():
    env = make_env(SMALL, **ENV, privileged_state=True)
    try:
        assert set(env.observation_space.spaces) == {IMAGE_KEY, STATE_KEY}
        names = env.state_names()
        obs, info = env.reset(seed=4)
        assert obs[IMAGE_KEY].shape == (32, 32, 3)
        assert obs[STATE_KEY].shape == (len(names),) == env.observation_space[STATE_KEY].shape
        action = np.array([0.3, 0.6], np.float32)
        for _ in range(5):
            obs, _, _, _, info = env.step(action)
        state = dict(zip(names, obs[STATE_KEY].tolist(), strict=True))
        sim = env.unwrapped
        assert state["cte_over_half_width"] == pytest.approx(info["cte"] / (sim.track.width / 2))
        assert state["speed"] == pytest.approx(info["speed"], abs=1e-5)
        assert state["previous_steering"] == pytest.approx(0.3)
        assert state["previous_throttle"] == pytest.approx(0.6)
        # the episode's draw, mapped from its range to [-1, 1]
        spec = sim.spec_ranges.dynamics.steering_gain
        gain = sim.params["dynamics"]["steering_gain"]
        expected = 2 * (gain - spec.low) / (spec.high - spec.low) - 1
        assert state["dynamics.steering_gain"] == pytest.approx(expected, abs=1e-5)
        drawn = [v for k, v in state.items() if "." in k]
        assert len(drawn) > 20 and all(-1.0 <= v <= 1.0 for v in drawn)
        other, _ = env.reset(seed=5)  # another episode, another draw
        assert not np.array_equal(other[STATE_KEY][12:], obs[STATE_KEY][12:])
    finally:
        env.close()


def test_the_actor_and_the_exported_network_never_read_the_state():
    model, _ = small_model(asym_config())
    policy = model.policy
    assert isinstance(policy, AsymmetricActorCriticPolicy)
    assert isinstance(policy.pi_features_extractor, ImageKeyExtractor)
    policy.set_training_mode(False)
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (4, 3, 32, 32), generator=generator).float()
    size = model.observation_space[STATE_KEY].shape[0]
    states = [torch.randn(4, size, generator=generator) * 3 for _ in range(2)]
    with torch.no_grad():
        means = [
            policy.get_distribution({IMAGE_KEY: images, STATE_KEY: s}).distribution.mean
            for s in states
        ]
        values = [policy.predict_values({IMAGE_KEY: images, STATE_KEY: s}) for s in states]
    torch.testing.assert_close(means[0], means[1], rtol=0, atol=0)
    assert not torch.allclose(values[0], values[1])  # while the critic does read it
    exported = policy_to_driving_net(policy, SMALL)
    torch.testing.assert_close(exported(images / 255.0), means[0], rtol=0, atol=1e-6)


def test_asymmetric_ppo_trains_the_critic_on_the_state_and_keeps_the_frozen_encoder():
    model, _ = small_model(asym_config(freeze="all"))
    policy = model.policy
    groups = {g["name"]: {id(p) for p in g["params"]} for g in policy.optimizer.param_groups}
    named = dict(policy.named_parameters())
    critic = {n for n in named if n.startswith(CRITIC_PREFIXES) and named[n].requires_grad}
    assert groups["critic"] == {id(named[n]) for n in critic}
    assert named["mlp_extractor.value_net.0.weight"].shape[1] == len(
        make_policy_env(asym_config(), SMALL).get_attr("state_names")[0]()
    )
    before = {n: p.detach().clone() for n, p in named.items()}
    model.learn(16)
    moved = {n for n, p in policy.named_parameters() if not torch.equal(p, before[n])}
    assert critic <= moved
    assert not any("features_extractor.encoder" in n for n in moved)


def _drive(env, steps: int = 30) -> tuple[np.ndarray, np.ndarray]:
    """Rewards and |cte| / half width of a gentle left turn from seed 3."""
    env.reset(seed=3)
    rewards, ratio = [], []
    for _ in range(steps):
        _, reward, terminated, _, info = env.step(np.array([-0.3, 0.5], np.float32))
        rewards.append(reward)
        ratio.append(abs(info["cte"]) / (env.unwrapped.track.width / 2))
        if terminated:
            break
    return np.array(rewards), np.array(ratio)


def test_lane_keeping_term_costs_its_weight_times_the_offset_each_step():
    kwargs = {"image_size": (40, 48), "max_episode_steps": 400}
    plain, kept = make_env(SMALL, **kwargs), make_env(SMALL, **kwargs, cte_penalty=0.2)
    try:
        plain_r, ratio = _drive(plain)
        kept_r, ratio_kept = _drive(kept)
    finally:
        plain.close()
        kept.close()
    np.testing.assert_array_equal(ratio, ratio_kept)
    assert ratio.max() > 0.05  # the car does leave the centreline
    np.testing.assert_allclose(kept_r, plain_r - 0.2 * ratio, rtol=0, atol=1e-9)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"env.cte_penalty": -0.1}, "cte_penalty"),
        ({"ppo.value_hidden": [16, 0]}, "value_hidden"),
        ({"env.privileged_state": True, "algorithm": "sac"}, "privileged_state"),
    ],
)
def test_bad_asymmetric_fields_are_refused_in_one_line(overrides, field):
    with pytest.raises(ValueError, match=field) as error:
        load_policy_config(None, overrides)
    assert "\n" not in str(error.value)


def test_steering_only_ppo_never_updates_the_throttle_output_or_its_noise():
    model, _ = small_model(
        small_config(
            ppo={"n_steps": 16, "batch_size": 8, "n_epochs": 2, "steering_only": True},
        )
    )
    policy = model.policy
    out, log_std = policy.action_net, policy.log_std
    before = (out.weight.detach().clone(), out.bias.detach().clone(), log_std.detach().clone())
    policy.set_training_mode(False)
    images = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 255
    dist = policy.get_distribution(images)
    mean = dist.distribution.mean
    actions = torch.stack([mean[:, 0] + 0.1, mean[:, 1] + 0.5], dim=1)
    shifted = actions.clone()
    shifted[:, 1] += 0.3
    # the log-probability reads the steering alone; the throttle is sampled at its mean
    torch.testing.assert_close(dist.log_prob(actions), dist.log_prob(shifted))
    torch.testing.assert_close(dist.sample()[:, 1], mean[:, 1], rtol=0, atol=1e-4)
    model.learn(32)
    assert torch.equal(out.weight[1], before[0][1]) and torch.equal(out.bias[1], before[1][1])
    assert log_std[1] == before[2][1]
    assert not torch.equal(out.weight[0], before[0][0])  # the steering did learn


def test_an_asymmetric_run_resumes_and_exports_the_image_only_network(tmp_path):
    import json

    import yaml
    from test_policy_cli import CONFIG

    from sim2real.agents.checkpoint import load_checkpoint
    from sim2real.agents.policy_state import read_policy_state
    from sim2real.experiments.cli import main

    torch.set_num_threads(1)
    ppo = {**CONFIG["ppo"], "value_hidden": [8], "steering_only": True}
    env = {**CONFIG["env"], "privileged_state": True, "cte_penalty": 0.1}
    config = tmp_path / "policy.yaml"
    config.write_text(yaml.safe_dump({**CONFIG, "env": env, "ppo": ppo}))
    out = tmp_path / "run"
    args = ["train-policy", "--config", str(config), "--out", str(out)]
    assert main(args) == 0
    first = read_policy_state(out / "policy_state.safetensors", "ppo")["parameters"]["policy"]
    assert main([*args, "--timesteps", "32", "--resume"]) == 0
    evals = json.loads((out / "evals.json").read_text())
    assert [e["timesteps"] for e in evals] == [0, 16, 32]
    state = read_policy_state(out / "policy_state.safetensors", "ppo")["parameters"]["policy"]
    value = "mlp_extractor.value_net.0.weight"
    assert state[value].shape == first[value].shape and state[value].shape[0] == 8
    assert not torch.equal(state[value], first[value])  # the critic trained on after resuming
    net, card = load_checkpoint(out / "checkpoint")
    assert net.outputs == ["user/angle", "user/throttle"] and net.spec.input_shape == (3, 32, 32)
    assert card.trained_on["timesteps"] == 32


def test_the_asymmetric_extractors_refuse_a_space_without_their_key():
    from sim2real.agents.sb3_extractor import StateExtractor

    image = spaces.Box(0, 255, (3, 32, 32), np.uint8)
    for extractor, space, key in (
        (ImageKeyExtractor, image, IMAGE_KEY),
        (StateExtractor, spaces.Dict({IMAGE_KEY: image}), STATE_KEY),
    ):
        with pytest.raises(ValueError, match=f"needs a Dict space with a '{key}' key") as error:
            extractor(space)
        assert "\n" not in str(error.value)
