"""PPO fine-tuning knobs: value warm-up, the actor's learning-rate scale, the off-road penalty."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from test_policy import small_config, small_model

from sim2real.agents.policy import load_policy_config
from sim2real.agents.sb3_env import DrivingReward, make_env
from sim2real.agents.sb3_extractor import CRITIC_PREFIXES
from sim2real.agents.sb3_ppo import FineTunePPO
from sim2real.envs.randomization import RandomizationSpec
from sim2real.envs.track_env import OFF_ROAD_PENALTY
from sim2real.envs.world import CONTROL_DT
from sim2real.experiments.cli import main


def _split(policy):
    actor = {n: p.detach().clone() for n, p in policy.named_parameters() if p.requires_grad}
    critic = {n: actor.pop(n) for n in list(actor) if n.startswith(CRITIC_PREFIXES)}
    return actor, critic


def _moved(policy, before):
    params = dict(policy.named_parameters())
    return {n for n, value in before.items() if not torch.equal(params[n], value)}


def test_optimizer_groups_split_value_layers_from_the_actor():
    model, _ = small_model(small_config(freeze=2))
    assert isinstance(model, FineTunePPO)
    groups = {g["name"]: {id(p) for p in g["params"]} for g in model.policy.optimizer.param_groups}
    params = dict(model.policy.named_parameters())
    actor, critic = _split(model.policy)
    assert groups["critic"] == {id(params[n]) for n in critic}
    assert groups["actor"] == {id(params[n]) for n in actor}
    assert any(n.startswith("value_net.") for n in critic)
    assert "log_std" in actor and any(n.startswith("action_net.") for n in actor)
    assert not any(".stage1." in n for n in actor)  # frozen stages are in no group


def test_value_warmup_keeps_the_actor_bit_identical_then_lets_it_learn():
    # one 16-step rollout per update: the first update (at 16 steps) is inside the warm-up
    model, _ = small_model(
        small_config(ppo={"n_steps": 16, "batch_size": 8, "n_epochs": 2, "actor_warmup_steps": 32})
    )
    actor, critic = _split(model.policy)
    model.learn(16)
    assert model.actor_scale() == 0.0  # the update ran after 16 of the 32 warm-up steps
    assert _moved(model.policy, actor) == set()
    assert _moved(model.policy, critic) == set(critic)
    model.learn(16, reset_num_timesteps=False)  # the update at 32 steps: warm-up is over
    assert "log_std" in _moved(model.policy, actor)
    assert any(n.startswith("action_net.") for n in _moved(model.policy, actor))


def test_actor_lr_scale_scales_the_actors_rate_only():
    ppo = {"n_steps": 16, "batch_size": 8, "n_epochs": 1, "learning_rate": 1e-3}
    model, _ = small_model(small_config(ppo={**ppo, "actor_lr_scale": 0.25}))
    model.learn(16)
    rates = {g["name"]: g["lr"] for g in model.policy.optimizer.param_groups}
    assert rates == {"actor": pytest.approx(2.5e-4), "critic": pytest.approx(1e-3)}
    frozen, _ = small_model(small_config(ppo={**ppo, "actor_lr_scale": 0.0}))
    actor, critic = _split(frozen.policy)
    frozen.learn(16)
    assert _moved(frozen.policy, actor) == set() and _moved(frozen.policy, critic)


def _drive_off(env) -> np.ndarray:
    """Rewards of full left at full throttle from seed 3 until the car leaves the road."""
    env.reset(seed=3)
    got, terminated = [], False
    while not terminated and len(got) < 400:
        _, reward, terminated, _, _ = env.step(np.array([-1.0, 1.0], np.float32))
        got.append(reward)
    assert terminated
    return np.array(got)


def test_driving_reward_replaces_the_off_road_penalty_and_caps_the_speed_paid():
    from sim2real.agents.preprocessing import Preprocessing

    prep = Preprocessing(crop_top=8, height=32, width=32)
    kwargs = {"image_size": (40, 48), "max_episode_steps": 400}
    envs = {
        "plain": make_env(prep, **kwargs),
        "harsh": make_env(prep, **kwargs, off_road_penalty=6.0),
        "capped": make_env(prep, **kwargs, speed_cap_mps=0.5),
    }
    assert not isinstance(envs["plain"].env, DrivingReward)  # the env's own reward: no wrapper
    try:
        plain, harsh, capped = (_drive_off(env) for env in envs.values())
    finally:
        for env in envs.values():
            env.close()
    assert len(plain) == len(harsh) == len(capped) > 1
    np.testing.assert_array_equal(plain[:-1], harsh[:-1])
    assert plain[-1] - harsh[-1] == pytest.approx(6.0 - OFF_ROAD_PENALTY)
    cap = 0.5 * CONTROL_DT
    assert plain[:-1].max() > cap  # the cap binds on this drive
    np.testing.assert_allclose(capped[:-1], np.minimum(plain[:-1], cap), rtol=0, atol=1e-12)
    progress = plain[-1] + OFF_ROAD_PENALTY
    assert capped[-1] == pytest.approx(min(progress, cap) - OFF_ROAD_PENALTY)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("ppo.actor_lr_scale", -0.5),
        ("ppo.actor_warmup_steps", -1),
        ("env.off_road_penalty", -2.0),
        ("env.speed_cap_mps", 0.0),
    ],
)
def test_bad_finetune_fields_name_the_field(field, value):
    with pytest.raises(ValueError, match=field.split(".")[-1]):
        load_policy_config(None, {field: value})


TWO_LANE = (
    Path(__file__).resolve().parent.parent / "experiments/configs/policy_two_lane_worlds.yaml"
)


def test_two_lane_worlds_spec_draws_two_lane_roads_only():
    spec = RandomizationSpec.from_yaml(TWO_LANE)
    default = RandomizationSpec.default()
    rng = np.random.default_rng(0)
    styles = {spec.sample(rng, 1.0)["visual"]["style"] for _ in range(30)}
    assert styles == {"two_lane"}
    assert {default.sample(rng, 1.0)["visual"]["style"] for _ in range(30)} != {"two_lane"}


def test_evaluate_sim_draws_worlds_from_a_randomization_spec(tmp_path, capsys):
    from test_closed_loop_cli import _full_left_checkpoint

    _full_left_checkpoint(tmp_path / "ckpt")
    out = tmp_path / "eval.json"
    args = ["evaluate", "--checkpoint", str(tmp_path / "ckpt"), "--sim", "--episodes", "1"]
    assert main([*args, "--randomization", str(TWO_LANE), "--json", str(out)]) == 0
    assert json.loads(out.read_text())["settings"]["randomization"] == str(TWO_LANE)
    (drawn,) = json.loads(out.read_text())["episodes"]
    assert abs(drawn["track_length_m"] - 14.0) > 0.5  # the spec's 14-40 m draw for this seed
    short = tmp_path / "short.yaml"  # the same spec with every track 14 m long
    fixed = "{low: 14.0, high: 14.0, nominal: 14.0"
    short.write_text(TWO_LANE.read_text().replace("{low: 14.0, high: 40.0, nominal: 22.0", fixed))
    assert main([*args, "--randomization", str(short), "--json", str(out)]) == 0
    (drawn,) = json.loads(out.read_text())["episodes"]
    assert drawn["track_length_m"] == pytest.approx(14.0, abs=1e-6)  # drawn from the spec given
    capsys.readouterr()

    bad = tmp_path / "spec.yaml"
    bad.write_text(TWO_LANE.read_text().replace("{low: 14.0, high: 40.0", "{low: 14.0, high: x"))
    assert main([*args, "--randomization", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and "spec.yaml: track.length" in err and len(err.splitlines()) == 1
    assert main([*args, "--randomization", str(tmp_path / "none.yaml")]) == 2
    assert "none.yaml" in capsys.readouterr().err
    assert main([*args, "--randomization", str(TWO_LANE), "--nominal"]) == 2
    assert "--nominal" in capsys.readouterr().err
    offline = ["evaluate", "--checkpoint", str(tmp_path / "ckpt"), "--data", str(tmp_path)]
    assert main([*offline, "--randomization", str(TWO_LANE)]) == 2
    assert "--sim" in capsys.readouterr().err
