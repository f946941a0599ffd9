"""Closed-loop evaluation: real rollouts in the PyBullet env, metrics that follow the driving."""

import numpy as np
import pytest
import torch

from sim2real.agents.closed_loop import evaluate_closed_loop, network_policy, summarize
from sim2real.agents.model import DrivingNet, ModelSpec, predict_rollout
from sim2real.agents.preprocessing import Preprocessing

SMALL = Preprocessing(crop_top=8, height=32, width=32)
CAMERA = (40, 48)


def constant_driver(steering: float, throttle: float) -> DrivingNet:
    """A network whose output is always [steering, throttle] (zero weights, set biases)."""
    net = DrivingNet(ModelSpec(architecture="resnet_small", preprocessing=SMALL, hidden=8))
    with torch.no_grad():
        last = net.head[-1]
        last.weight.zero_()
        last.bias.copy_(torch.tensor([steering, throttle]))
    return net


def drive(net, **kwargs):
    kwargs.setdefault("image_size", CAMERA)
    kwargs.setdefault("nominal", True)
    return evaluate_closed_loop(net, **kwargs)


def test_metrics_follow_how_the_network_drives():
    torch.set_num_threads(1)
    parked = drive(constant_driver(0.0, 0.0), seeds=[10_001], max_steps=30, stall_steps=None)
    stalled = drive(constant_driver(0.0, 0.0), seeds=[10_001], max_steps=30, stall_steps=10)
    circling = drive(constant_driver(-1.0, 1.0), seeds=[10_001], max_steps=400)
    straight = drive(constant_driver(0.0, 0.6), seeds=[10_001], max_steps=60)

    p = parked["episodes"][0]
    assert p["outcome"] == "timeout" and p["steps"] == 30 and not p["completed"]
    assert p["distance_m"] < 0.05 and p["lap_fraction"] < 0.01
    assert parked["summary"]["off_road_events"] == 0
    assert stalled["episodes"][0]["outcome"] == "stalled"
    assert stalled["episodes"][0]["steps"] == 10

    c = circling["episodes"][0]
    assert c["outcome"] == "off_road" and c["steps"] < 400
    assert circling["summary"]["off_road_per_km"] > 0
    assert c["max_abs_cte_m"] > 0.3  # ends far off the centreline
    assert c["max_abs_cte_m"] >= c["mean_abs_cte_m"]

    s = straight["episodes"][0]
    assert s["distance_m"] > 1.0 and s["mean_speed_mps"] > p["mean_speed_mps"]
    assert s["lap_fraction"] > p["lap_fraction"]
    # the odometer agrees with speed x time
    assert s["distance_m"] == pytest.approx(s["mean_speed_mps"] * s["steps"] * 0.05, rel=1e-6)


def test_throttle_scale_slows_the_network_down():
    torch.set_num_threads(1)
    net = constant_driver(0.0, 0.6)
    full = drive(net, seeds=[10_001], max_steps=60)
    half = drive(net, seeds=[10_001], max_steps=60, throttle_scale=0.5)
    assert half["settings"]["throttle_scale"] == 0.5
    assert half["summary"]["mean_speed_mps"] < 0.8 * full["summary"]["mean_speed_mps"]
    with pytest.raises(ValueError, match="throttle_scale must be in"):
        drive(net, seeds=[10_001], max_steps=5, throttle_scale=0.0)


def test_same_seeds_same_metrics_and_held_out_defaults():
    torch.set_num_threads(1)
    net = constant_driver(0.2, 0.5)
    a = drive(net, episodes=2, max_steps=25)
    b = drive(net, episodes=2, max_steps=25)
    assert a["settings"]["seeds"] == [10_000, 10_001]
    assert a["episodes"] == b["episodes"]


def test_summary_aggregates_episodes():
    episodes = [
        {"completed": True, "lap_fraction": 1.0, "steps": 300, "distance_m": 30.0,
         "off_road_events": 0, "mean_abs_cte_m": 0.1, "mean_speed_mps": 2.0},
        {"completed": False, "lap_fraction": 0.5, "steps": 100, "distance_m": 10.0,
         "off_road_events": 1, "mean_abs_cte_m": 0.3, "mean_speed_mps": 1.0},
    ]  # fmt: skip
    s = summarize(episodes)
    assert s["lap_completion_rate"] == 0.5
    assert s["mean_lap_fraction"] == 0.75
    assert s["off_road_per_km"] == pytest.approx(1 / 0.04)
    assert s["mean_abs_cte_m"] == pytest.approx((0.1 * 300 + 0.3 * 100) / 400)
    assert s["mean_speed_mps"] == pytest.approx((2.0 * 300 + 1.0 * 100) / 400)


def test_network_without_action_outputs_is_refused():
    net = DrivingNet(
        ModelSpec(architecture="resnet_small", preprocessing=SMALL, outputs=["sim/cte"])
    )
    with pytest.raises(ValueError, match="user/angle"):
        evaluate_closed_loop(net, episodes=1, image_size=CAMERA)
    # every driver of the car says the same: what needs the outputs, and what the net has
    steering_only = ["user/angle", "sim/cte"]
    net = DrivingNet(
        ModelSpec(architecture="resnet_small", preprocessing=SMALL, outputs=steering_only)
    )
    frames = torch.zeros(2, 3, 40, 48, dtype=torch.uint8)
    refusals = {
        "closed-loop driving": lambda: evaluate_closed_loop(net, episodes=1, image_size=CAMERA),
        "a driving network": lambda: network_policy(net),
        "a rollout": lambda: predict_rollout(net, frames, np.ones(2, bool)),
    }
    for what, call in refusals.items():
        with pytest.raises(ValueError) as error:
            call()
        assert str(error.value) == (
            f"{what} needs outputs 'user/angle' and 'user/throttle'; "
            f"this network has {steering_only}"
        )
