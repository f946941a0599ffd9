"""benchmarks/oracle_split.py: each arm mixes the right halves, the blind expert sees what it
should, and the network's arm is `evaluate --sim`'s episode."""

import json
import sys

import gymnasium as gym
import numpy as np
import pytest
import torch
from model_helpers import load_benchmark
from test_closed_loop import CAMERA, SMALL, constant_driver

from sim2real.agents.checkpoint import ModelCard, save_checkpoint
from sim2real.agents.closed_loop import evaluate_checkpoint, evaluate_closed_loop
from sim2real.agents.ensemble import save_ensemble
from sim2real.agents.sb3_env import PreprocessObservation
from sim2real.envs.expert import ExpertDriver
from sim2real.envs.track_env import TrackDrivingEnv

SEED = 20_003
NETWORK = (-0.25, 0.35)  # the constant network's [steering, throttle]


@pytest.fixture(scope="module")
def oracle():
    yield load_benchmark("oracle_split")
    del sys.modules["oracle_split"]


class Spy(gym.Wrapper):
    """Records each executed action beside what the expert and the blind expert command in
    the state it is executed from."""

    def __init__(self, env, blind_view) -> None:
        super().__init__(env)
        self.blind_view = blind_view
        self.steps: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def step(self, action):
        expert = ExpertDriver(self.env).act()
        blind = ExpertDriver(self.blind_view(self.env)).act()
        self.steps.append((np.array(action), expert, blind))
        return self.env.step(action)


def _env(oracle) -> Spy:
    torch.set_num_threads(1)
    env = PreprocessObservation(TrackDrivingEnv(image_size=CAMERA), SMALL)
    return Spy(env, oracle.BlindView)


def test_blind_view_sees_nominal_speed_no_latency_and_the_true_track_and_pose(oracle):
    env = TrackDrivingEnv(image_size=CAMERA)
    view = oracle.BlindView(env)  # made before the reset: reads the env when asked
    for seed in (SEED, SEED + 1):
        env.reset(seed=seed, options={"randomize": True})
        env.step(np.array([0.0, 0.5], np.float32))
        true = env.car_state
        assert view.track is env.track and view.track_index == env.track_index
        seen = view.car_state
        assert seen.speed == oracle.NOMINAL_SPEED != true.speed
        np.testing.assert_array_equal(seen.position, true.position)
        assert (seen.yaw, seen.roll, seen.pitch) == (true.yaw, true.roll, true.pitch)
        assert view.params["dynamics"]["latency"] == 0
        others = {k: v for k, v in env.params["dynamics"].items() if k != "latency"}
        assert {k: v for k, v in view.params["dynamics"].items() if k != "latency"} == others
        assert view.params["camera"] == env.params["camera"]
    assert "latency" in env.params["dynamics"]  # the env's own params are left alone
    env.close()


@pytest.mark.parametrize(
    "arm", ["network", "expert throttle", "expert steering", "blind expert steering"]
)
def test_each_arm_executes_the_halves_it_names(oracle, arm):
    env = _env(oracle)
    steer_from, throttle_from = oracle.ARMS[arm]
    oracle.drive(env, constant_driver(*NETWORK), SEED, steer_from, throttle_from, max_steps=40)
    env.close()
    assert len(env.steps) >= 10
    columns = {"network": None, "expert": 1, "blind": 2}
    for half, source in enumerate((steer_from, throttle_from)):
        executed = np.array([step[0][half] for step in env.steps])
        if columns[source] is None:
            want = np.full(len(executed), np.clip(NETWORK[half], -1, 1))
        else:
            want = np.array([step[columns[source]][half] for step in env.steps])
        np.testing.assert_allclose(executed, want, atol=1e-6, err_msg=f"{arm}: half {half}")
    blind = np.array([step[2][0] for step in env.steps])
    expert = np.array([step[1][0] for step in env.steps])
    assert np.abs(blind - expert).max() > 1e-3  # the blind expert steers differently


def test_the_network_arm_is_the_closed_loop_evaluations_episode(oracle):
    net = constant_driver(*NETWORK)
    env = _env(oracle)
    row = oracle.drive(env, net, SEED, "network", "network", max_steps=60)
    env.close()
    result = evaluate_closed_loop(net, seeds=[SEED], image_size=CAMERA, max_steps=60)
    assert row == result["episodes"][0]


def test_an_ensemble_drives_every_arm_and_its_own_arm_as_evaluate_does(
    oracle, tmp_path, monkeypatch, capsys
):
    torch.set_num_threads(1)
    names = ["member-0", "member-1"]
    card = {"trained_on": {"env_config": {"image_size": list(CAMERA)}}}
    nets = [constant_driver(-0.5, 0.2), constant_driver(0.1, 0.5)]
    for name, net in zip(names, nets, strict=True):
        save_checkpoint(tmp_path / "ens" / name, net, ModelCard(spec=net.spec, **card))
    save_ensemble(tmp_path / "ens", ModelCard(spec=net.spec, members=names, **card))
    args = [tmp_path / "ens", tmp_path / "out", "--seed-start", SEED, "--episodes", 2]
    argv = ["oracle_split.py", *map(str, args), "--max-steps", "30"]
    monkeypatch.setattr(sys, "argv", [*argv, "--arms", "network", "expert"])
    oracle.main()
    lines = (tmp_path / "out" / "episodes.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines]
    assert [(r["arm"], r["seed"]) for r in rows] == [
        (arm, seed) for seed in (SEED, SEED + 1) for arm in ("network", "expert")
    ]
    own = evaluate_checkpoint(tmp_path / "ens", episodes=2, seed_start=SEED, max_steps=30)
    assert [r for r in rows if r.pop("arm") == "network"] == own["episodes"]
    assert "network" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["no/such/checkpoint"], "no/such/checkpoint"),
        (["CKPT", "--randomization", "no/such/spec.yaml"], "no/such/spec.yaml"),
        (["CKPT", "--episodes", "0"], "--episodes and --max-steps must be >= 1"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(oracle, tmp_path, monkeypatch, args, message):
    net = constant_driver(*NETWORK)
    card = ModelCard(spec=net.spec, trained_on={"env_config": {"image_size": list(CAMERA)}})
    save_checkpoint(tmp_path / "ckpt", net, card)
    args = [str(tmp_path / "ckpt") if a == "CKPT" else a for a in args]
    monkeypatch.setattr(sys, "argv", ["oracle_split.py", args[0], str(tmp_path / "out"), *args[1:]])
    with pytest.raises(SystemExit) as exit_:
        oracle.main()
    line = str(exit_.value)
    assert line.startswith("error: ") and message in line and "\n" not in line
    assert not (tmp_path / "out").exists()


def test_a_rerun_drives_only_the_missing_tracks_and_arms_with_the_same_settings(
    oracle, tmp_path, monkeypatch
):
    net = constant_driver(*NETWORK)
    card = ModelCard(spec=net.spec, trained_on={"env_config": {"image_size": list(CAMERA)}})
    save_checkpoint(tmp_path / "ckpt", net, card)
    driven = []
    real_drive = oracle.drive

    def counting(env, model, seed, steer_from, throttle_from, max_steps):
        driven.append((seed, steer_from, throttle_from))
        return real_drive(env, model, seed, steer_from, throttle_from, max_steps)

    monkeypatch.setattr(oracle, "drive", counting)

    def run(*args):
        common = [str(tmp_path / "ckpt"), str(tmp_path / "out"), "--seed-start", str(SEED)]
        monkeypatch.setattr(sys, "argv", ["oracle_split.py", *common, *args])
        oracle.main()

    run("--episodes", "1", "--max-steps", "20", "--arms", "network")
    first = (tmp_path / "out" / "episodes.jsonl").read_text()
    run("--episodes", "2", "--max-steps", "20", "--arms", "network", "expert")
    assert driven == [
        (SEED, "network", "network"),
        (SEED, "expert", "expert"),
        (SEED + 1, "network", "network"),
        (SEED + 1, "expert", "expert"),
    ]
    rows = [json.loads(line) for line in (tmp_path / "out" / "episodes.jsonl").open()]
    assert len(rows) == 4 and json.dumps(rows[0]) + "\n" == first
    before = (tmp_path / "out" / "episodes.jsonl").read_text()
    with pytest.raises(SystemExit, match="other settings"):
        run("--episodes", "2", "--max-steps", "30")
    assert (tmp_path / "out" / "episodes.jsonl").read_text() == before
