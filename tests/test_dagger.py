"""DAgger: a driver really drives while the expert labels; recordings stay seeded and pinned
to the driver's weights; a one-iteration run leaves a checkpoint trained on its own drives."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from sim2real.agents.checkpoint import ModelCard, load_checkpoint, read_card, save_checkpoint
from sim2real.agents.dagger import checkpoint_fingerprint, load_driver, network_driver
from sim2real.agents.model import ModelSpec, seeded_model
from sim2real.agents.preprocessing import Preprocessing
from sim2real.agents.temporal import FALLBACK_ACTION, Temporal
from sim2real.agents.training import TrainConfig
from sim2real.envs.recording import MIXING_STREAM, drive_expert
from sim2real.experiments.cli import main
from sim2real.experiments.dagger import DaggerConfig, run_dagger
from sim2real.experiments.simulate import SimulateConfig, simulate
from sim2real.transfer.datasets import open_records

CAMERA = (40, 48)
SMALL = Preprocessing(crop_top=8, height=32, width=32)
TINY_SIM = {"chunk_frames": 20, "image_height": CAMERA[0], "image_width": CAMERA[1]}


def hard_left(frame: np.ndarray) -> np.ndarray:
    return np.array([-1.0, 1.0], np.float32)


def tiny_checkpoint(folder, steering=0.0, throttle=0.5, seed=0):
    """A tiny network whose output starts near [steering, throttle], saved as a checkpoint."""
    spec = ModelSpec(
        architecture="resnet_small",
        preprocessing=SMALL,
        hidden=8,
        outputs=["user/angle", "user/throttle", "sim/cte", "sim/heading_error"],
    )
    net = seeded_model(spec, seed)
    with torch.no_grad():
        net.head[-1].weight.mul_(0.01)
        net.head[-1].bias.copy_(torch.tensor([steering, throttle, 0.0, 0.0]))
    card = ModelCard(spec=spec, trained_on={"env_config": {"image_size": list(CAMERA)}})
    return save_checkpoint(folder, net, card)


def test_the_driver_steers_and_the_expert_labels():
    expert = list(drive_expert(5, 60, image_size=CAMERA))
    driven = list(drive_expert(5, 60, image_size=CAMERA, driver=hard_left, beta=0.0))
    assert np.array_equal(driven[0].image, expert[0].image)  # same track, same start
    assert all(f.episode == 0 for f in expert)
    # hard left at full throttle leaves the road; the expert keeps asking to steer right
    assert max(f.episode for f in driven) >= 1
    first = [f for f in driven if f.episode == 0]
    assert first[-1].labels["sim/cte"] > 0.2  # left of the centreline (cte > 0: left)
    assert np.mean([f.steering for f in first[-5:]]) > 0.3
    assert all(-1.0 <= f.steering <= 1.0 for f in driven)
    # beta = 1: the expert drives every step, frame for frame the expert's recording
    mixed = list(drive_expert(5, 60, image_size=CAMERA, driver=hard_left, beta=1.0))
    assert all(np.array_equal(a.image, b.image) for a, b in zip(mixed, expert, strict=True))


def test_a_network_driver_records_the_same_frames_for_the_same_seed(tmp_path):
    torch.set_num_threads(1)
    model, _ = load_checkpoint(tiny_checkpoint(tmp_path / "net", steering=-0.6))
    driver = network_driver(model)
    a = list(drive_expert(9, 40, image_size=CAMERA, driver=driver, beta=0.5))
    b = list(drive_expert(9, 40, image_size=CAMERA, driver=driver, beta=0.5))
    assert all(np.array_equal(x.image, y.image) for x, y in zip(a, b, strict=True))
    assert [x.steering for x in a] == [y.steering for y in b]
    expert = list(drive_expert(9, 40, image_size=CAMERA))
    assert not all(np.array_equal(x.image, y.image) for x, y in zip(a, expert, strict=True))


PREVIOUS_ACTION = {"previous_action": True}
PREVIOUS_FRAME = {"previous_frame_gap": 2}


def temporal_net(**temporal):
    """A tiny temporal network whose steering follows its temporal input clearly."""
    spec = ModelSpec(
        architecture="resnet_small", preprocessing=SMALL, hidden=16, temporal=Temporal(**temporal)
    )
    net = seeded_model(spec, 0).eval()
    if temporal.get("previous_action"):
        with torch.no_grad():
            net.head[1].weight[:, -2:] = 0.5
    return net


def driven_action(net, frame, earlier=None, previous=None) -> np.ndarray:
    """What a fresh policy would apply for camera `frame`, given its earlier camera frame
    (previous_frame_gap) or the previous applied action (previous_action)."""
    x = torch.from_numpy(net.spec.preprocessing.apply(frame)).permute(2, 0, 1)[None]
    if net.spec.temporal.previous_frame_gap:
        back = (
            x
            if earlier is None
            else torch.from_numpy(net.spec.preprocessing.apply(earlier)).permute(2, 0, 1)[None]
        )
        x = torch.cat([x, back], dim=1)
    context = None
    if net.spec.temporal.previous_action:
        action = FALLBACK_ACTION if previous is None else previous
        context = torch.from_numpy(np.asarray(action, np.float32)[None])
    out = net(x.float() / 255.0, context)[0].detach().numpy()
    return np.clip(out[:2], -1.0, 1.0)


def applied(frame) -> np.ndarray:
    return np.array([frame.labels["sim/applied_steering"], frame.labels["sim/applied_throttle"]])


@pytest.mark.parametrize("temporal", [PREVIOUS_ACTION, PREVIOUS_FRAME], ids=["action", "frame"])
def test_a_temporal_driver_starts_every_episode_and_recording_from_rest(temporal):
    torch.set_num_threads(1)
    net = temporal_net(**temporal)
    driver = network_driver(net)
    frames = list(drive_expert(4, 8, image_size=CAMERA, driver=driver, episode_steps=4))
    assert [f.episode for f in frames] == [0] * 4 + [1] * 4
    second = frames[4]  # the second episode's first frame sees nothing of the first episode
    np.testing.assert_allclose(applied(second), driven_action(net, second.image), atol=1e-5)
    stale = driven_action(net, second.image, frames[2].image, applied(frames[3]))
    assert np.abs(stale - applied(second)).max() > 1e-3  # (so the state would show)
    # the driver is reused across recordings (one per worker process): nothing carries over
    again = list(drive_expert(4, 8, image_size=CAMERA, driver=driver, episode_steps=4))
    np.testing.assert_allclose([applied(f) for f in again], [applied(f) for f in frames])


@pytest.mark.parametrize("temporal", [PREVIOUS_ACTION, PREVIOUS_FRAME], ids=["action", "frame"])
def test_a_temporal_driver_sees_the_steps_the_expert_drove(temporal):
    torch.set_num_threads(1)
    net = temporal_net(**temporal)
    frames = list(drive_expert(6, 16, image_size=CAMERA, driver=network_driver(net), beta=0.5))
    mixing = np.random.default_rng(np.random.SeedSequence(6, spawn_key=(MIXING_STREAM,)))
    expert_drove = mixing.random(len(frames)) < 0.5  # one draw a step (segment_steps 1)
    gap = net.spec.temporal.previous_frame_gap or 1
    checked = 0
    for i in range(gap, len(frames)):
        if (
            expert_drove[i]
            or not expert_drove[i - gap]
            or frames[i - gap].episode != frames[i].episode
        ):
            continue
        want = driven_action(net, frames[i].image, frames[i - gap].image, applied(frames[i - 1]))
        np.testing.assert_allclose(applied(frames[i]), want, atol=1e-5)
        checked += 1
    assert checked >= 2


def test_recording_pins_the_driver_and_refuses_a_changed_one(tmp_path):
    ckpt = tiny_checkpoint(tmp_path / "net", steering=-0.6)
    config = SimulateConfig(frames=40, seed=2, driver=str(ckpt), beta=0.3, **TINY_SIM)
    assert len(config.driver_fingerprint) == 64
    out = tmp_path / "tub"

    def stop(chunk, done):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        simulate(out, config, progress=False, on_chunk=stop)
    assert open_records([out]).report.usable == 20
    assert config.driver_fingerprint in (out / "config.yaml").read_text()
    tiny_checkpoint(ckpt, steering=0.4)  # the driver's weights change under the run
    changed = SimulateConfig(frames=40, seed=2, driver=str(ckpt), beta=0.3, **TINY_SIM)
    with pytest.raises(ValueError, match="driver_fingerprint"):
        simulate(out, changed, resume=True, progress=False)
    with pytest.raises(ValueError, match="changed"):
        load_driver(ckpt, config.driver_fingerprint)


def test_one_dagger_iteration_leaves_a_checkpoint_trained_on_its_drives(tmp_path, capsys):
    torch.set_num_threads(1)
    expert_tub = simulate(
        tmp_path / "expert", SimulateConfig(frames=60, seed=1, **TINY_SIM), progress=False
    )
    start = tiny_checkpoint(tmp_path / "start", steering=-0.5)
    config = DaggerConfig(
        checkpoint=str(start),
        data=[str(expert_tub)],
        expert_frames=40,
        iterations=1,
        frames=40,
        beta=[0.0],
        chunk_frames=20,
        episodes=1,
        eval_max_steps=20,
        train=TrainConfig(epochs=1, batch_size=16, num_threads=1, tensorboard=False),
        val_fraction=0.2,
        split_gap=0,
        calibrate_steering=True,
        cache_dir=str(tmp_path / "cache"),
    )
    config_file = tmp_path / "dagger.yaml"
    config_file.write_text(json.dumps(config.model_dump(mode="json")))
    out = tmp_path / "run"
    argv = ["dagger", "--config", str(config_file), "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "iteration 1" in printed and "1 held-out tracks each (seeds 10000-10000)" in printed

    model, card = load_checkpoint(out)
    dagger_tub = str(out / "iter_01" / "tub")
    assert dagger_tub in card.trained_on["paths"] and str(expert_tub) in card.trained_on["paths"]
    assert card.history[-1]["step"] == "dagger"
    assert card.trained_on["dagger_frames"] == 40 and card.trained_on["expert_frames_used"] == 40
    # the randomization of both recordings, read from their manifests; the flat split keys
    # of the config (as written before SplitSpec) folded into the card's typed split
    recorded = card.randomization
    assert {recorded[str(expert_tub.resolve())]["seed"], recorded[dagger_tub]["seed"]} == {1, 1000}
    assert (card.split.val_fraction, card.split.gap) == (0.2, 0)
    assert "closed_loop" in read_card(out / "iter_01" / "checkpoint").metrics
    calibration = card.metrics["steering_calibration"]  # measured, or skipped with a reason
    assert 1.0 <= calibration["gain"] <= 2.0
    assert "slope" in calibration or "does not rise" in calibration["skipped"]
    start_weights = load_checkpoint(start)[0].state_dict()
    assert any(not torch.equal(v, start_weights[k]) for k, v in model.state_dict().items())
    results = json.loads((out / "dagger.json").read_text())
    assert [e["iteration"] for e in results["iterations"]] == [0, 1]
    assert results["iterations"][1]["recording"]["frames"] == 40
    assert results["iterations"][0]["closed_loop"]["episodes"] == 1

    # a finished iteration is kept on resume; a different recording is refused
    before = (out / "iter_01" / "result.json").stat().st_mtime_ns
    run_dagger(config, out, resume=True, progress=False)
    assert (out / "iter_01" / "result.json").stat().st_mtime_ns == before
    with pytest.raises(ValueError, match="differs"):
        run_dagger(config.model_copy(update={"frames": 60}), out, resume=True, progress=False)
    assert main(argv) == 2  # exists, no --resume


def test_dagger_and_its_recordings_take_a_shipped_name(tmp_path, monkeypatch):
    from sim2real.agents import shipped

    monkeypatch.setattr(shipped, "PRETRAINED_DIR", tmp_path / "pretrained")
    folder = tiny_checkpoint(tmp_path / "pretrained" / "tiny-net", steering=-0.3)
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")  # no folder of that name here
    config = DaggerConfig(checkpoint="tiny-net", data=[str(tmp_path / "expert")])
    # a name stays a name (its package folder differs between installations), pinned by
    # the shipped folder's files; the recording with it as driver takes it too
    assert config.checkpoint == "tiny-net"
    assert config.checkpoint_fingerprint == checkpoint_fingerprint(folder)
    recording = SimulateConfig(frames=20, driver="tiny-net", **TINY_SIM)
    assert recording.driver == "tiny-net"
    assert recording.driver_fingerprint == config.checkpoint_fingerprint
    with pytest.raises(ValueError, match="no-such-net"):
        SimulateConfig(frames=20, driver="no-such-net", **TINY_SIM)


def test_dagger_evaluates_on_the_selection_block_it_is_given(tmp_path, monkeypatch):
    from sim2real.experiments import dagger

    start = tiny_checkpoint(tmp_path / "start")
    driven = {}

    def fake_evaluate(model, *, seeds, **kwargs):
        driven["seeds"] = list(seeds)
        return {"summary": {}, "episodes": []}

    monkeypatch.setattr(dagger, "evaluate_closed_loop", fake_evaluate)
    base = {"checkpoint": str(start), "data": [str(tmp_path)], "episodes": 3}
    dagger._evaluate(DaggerConfig(**base, eval_seed_start=20_000), start)
    assert driven["seeds"] == [20_000, 20_001, 20_002]
    dagger._evaluate(DaggerConfig(**base), start)  # the held-out tracks by default
    assert driven["seeds"] == [10_000, 10_001, 10_002]


def test_the_shipped_dagger_config_starts_from_the_recipe_and_selects_off_the_held_out_seeds(
    tmp_path,
):
    from sim2real.agents.closed_loop import HELD_OUT_SEED_START
    from sim2real.experiments.config_options import load_config

    path = Path(__file__).resolve().parent.parent / "experiments/configs/dagger_recipe.yaml"
    config = load_config(DaggerConfig, path, {"data": [str(tmp_path)]})
    assert config.checkpoint == "pilotnet-recipe"
    # the iterations are judged on tracks that the held-out 120 (10000-10119) never include
    assert config.eval_seed_start >= HELD_OUT_SEED_START + 120
    assert config.calibrate_steering


def gentle_left(frame: np.ndarray) -> np.ndarray:
    return np.array([-0.4, 0.5], np.float32)


def test_a_takeover_keeps_a_failing_driver_on_the_road_and_hands_back():
    alone = list(drive_expert(5, 80, image_size=CAMERA, driver=gentle_left, beta=0.0))
    assert alone[-1].episode >= 1  # steering a constant left, it leaves the road
    rescued = list(
        drive_expert(
            5, 80, image_size=CAMERA, driver=gentle_left, beta=0.0, takeover=0.5, takeover_steps=10
        )
    )
    assert all(f.episode == 0 for f in rescued)  # the expert took the car back each time
    steer = np.array([f.labels["sim/applied_steering"] for f in rescued])
    by_driver = np.isclose(steer, -0.4)
    first = int(np.argmin(by_driver))  # the first step the expert drove
    assert first > 0 and abs(rescued[first].labels["sim/cte"]) > 0.1
    assert not by_driver[first : first + 10].any()  # the expert drives takeover_steps steps
    assert by_driver[first + 10 :].any()  # then the driver has the car again
    # frames and labels before the takeover are the driver-alone recording's
    assert all(
        np.array_equal(a.image, b.image) and a.steering == b.steering
        for a, b in zip(alone[:first], rescued[:first], strict=True)
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"takeover": 0.0}, "takeover must be"),
        ({"takeover": 1.0}, r"takeover must be .* in \(0, 1\)"),  # off the road: never
        ({"takeover_steps": 0}, "takeover_steps"),
    ],
)
def test_drive_expert_refuses_a_bad_takeover(kwargs, message):
    with pytest.raises(ValueError, match=message):
        next(drive_expert(5, 4, image_size=CAMERA, driver=gentle_left, **kwargs))


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"takeover": 1.5}, "takeover"),
        ({"takeover": 1.0}, "takeover"),
        ({"steering_slope": 1.5}, "steering_slope 1.5 needs calibrate_steering"),
        ({"calibration_data": ["/tubs/c"]}, r"calibration_data \['/tubs/c'\] needs calibrate"),
        ({"calibrate_steering": True, "steering_slope": 3.0}, "steering_slope"),
        ({"calibrate_steering": True, "calibration_data": []}, "calibration_data is empty"),
    ],
)
def test_dagger_config_refuses_bad_aiming_and_calibration_values(tmp_path, fields, message):
    start = tiny_checkpoint(tmp_path / "start")
    with pytest.raises(ValueError, match=message):
        DaggerConfig(checkpoint=str(start), data=[str(tmp_path)], **fields)
    with pytest.raises(ValueError, match="takeover is set but no driver"):
        SimulateConfig(frames=20, takeover=0.5, **TINY_SIM)


def test_an_aimed_iteration_records_the_hard_worlds_and_calibrates_on_the_fixed_frames(
    tmp_path, monkeypatch
):
    from sim2real.experiments import dagger

    torch.set_num_threads(1)
    monkeypatch.setattr(  # the closed-loop drive is the other tests' concern
        dagger, "evaluate_closed_loop", lambda model, **kw: {"summary": {}, "episodes": []}
    )
    expert_tub = simulate(
        tmp_path / "expert", SimulateConfig(frames=60, seed=1, **TINY_SIM), progress=False
    )
    calib_tub = simulate(
        tmp_path / "calib", SimulateConfig(frames=40, seed=3, **TINY_SIM), progress=False
    )
    hard = Path(__file__).resolve().parent.parent / (
        "experiments/configs/policy_two_lane_hard_worlds.yaml"
    )
    config = DaggerConfig(
        checkpoint=str(tiny_checkpoint(tmp_path / "start", steering=-0.3)),
        data=[str(expert_tub)],
        iterations=1,
        frames=40,
        beta=[0.0],
        chunk_frames=20,
        episodes=1,
        record_randomization=str(hard),
        takeover=0.5,
        takeover_steps=5,
        train=TrainConfig(epochs=1, batch_size=16, num_threads=1, tensorboard=False),
        split={"kind": "episodes", "val_fraction": 0.3},
        calibrate_steering=True,
        steering_slope=1.4,
        calibration_data=[str(calib_tub)],
        cache_dir=str(tmp_path / "cache"),
    )
    run_dagger(config, tmp_path / "run", progress=False)
    card = read_card(tmp_path / "run")
    recorded = card.randomization[str(tmp_path / "run" / "iter_01" / "tub")]
    assert recorded["spec"]["track"]["road_width"]["high"] == 0.9  # the hard spec's, not 1.3
    tub_config = (tmp_path / "run" / "iter_01" / "tub" / "config.yaml").read_text()
    assert "takeover: 0.5" in tub_config
    calibration = card.metrics["steering_calibration"]
    assert calibration["frames_from"] == [str(calib_tub.resolve())]
    # measured on the 40 calibration frames (not the validation episodes), to slope 1.4
    assert calibration["frames"] == 40 and calibration["target_slope"] == 1.4
    assert 1.4 <= calibration["gain"] <= 1.4 * 2.0


def test_the_aimed_dagger_config_records_hard_worlds_and_judges_on_80_selection_tracks(tmp_path):
    from sim2real.agents.closed_loop import HELD_OUT_SEED_START
    from sim2real.envs.randomization import resolve_spec
    from sim2real.experiments.config_options import load_config

    root = Path(__file__).resolve().parent.parent
    config = load_config(
        DaggerConfig, root / "experiments/configs/dagger_aimed.yaml", {"data": [str(tmp_path)]}
    )
    assert config.eval_seed_start >= HELD_OUT_SEED_START + 120 and config.episodes >= 80
    hard = resolve_spec(root / config.record_randomization)
    every = resolve_spec(root / config.randomization)
    # the aimed worlds are a sub-range of the evaluated ones, at their hard end
    assert every.track.road_width.low == hard.track.road_width.low
    assert hard.track.road_width.high < every.track.road_width.high
    assert hard.dynamics.latency.low >= 1 and hard.camera.hfov.low > every.camera.hfov.low
    assert config.calibrate_steering and config.takeover is not None


def test_calibration_data_with_a_temporal_network_is_refused_before_anything_runs(
    tmp_path, monkeypatch
):
    from sim2real.experiments import dagger

    def never(*args, **kwargs):
        raise AssertionError("the run started")

    monkeypatch.setattr(dagger, "evaluate_closed_loop", never)
    net = temporal_net(**PREVIOUS_ACTION)
    start = save_checkpoint(
        tmp_path / "start",
        net,
        ModelCard(spec=net.spec, trained_on={"env_config": {"image_size": list(CAMERA)}}),
    )
    config = DaggerConfig(
        checkpoint=str(start),
        data=[str(tmp_path)],
        calibrate_steering=True,
        calibration_data=[str(tmp_path)],
    )
    with pytest.raises(ValueError, match="calibration_data needs a single-frame network"):
        run_dagger(config, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("field", ["randomization", "record_randomization"])
def test_a_missing_randomization_spec_is_refused_before_anything_runs(tmp_path, monkeypatch, field):
    from sim2real.common.config import ConfigError
    from sim2real.experiments import dagger

    def never(*args, **kwargs):
        raise AssertionError("the run started")

    monkeypatch.setattr(dagger, "evaluate_closed_loop", never)
    config = DaggerConfig(
        checkpoint=str(tiny_checkpoint(tmp_path / "start")),
        data=[str(tmp_path)],
        **{field: str(tmp_path / "nope.yaml")},
    )
    with pytest.raises(ConfigError, match="nope.yaml: config file not found"):
        run_dagger(config, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


class Logged:
    """A driver that steers gently left and logs who had the car at each step."""

    def __init__(self) -> None:
        self.log: list[str] = []

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        self.log.append("drove")
        return gentle_left(frame)

    def reset(self) -> None:
        self.log.append("reset")

    def observe(self, frame: np.ndarray, applied: np.ndarray) -> None:
        self.log.append("observed")


def test_a_stateful_driver_observes_the_takeover_steps_and_drives_the_others():
    driver = Logged()
    frames = list(
        drive_expert(
            5, 80, image_size=CAMERA, driver=driver, beta=0.0, takeover=0.5, takeover_steps=10
        )
    )
    steps = [entry for entry in driver.log if entry != "reset"]
    assert len(steps) == len(frames)  # one call a step: it drove or it saw the expert drive
    observed = np.array([s == "observed" for s in steps])
    by_driver = np.isclose([f.labels["sim/applied_steering"] for f in frames], -0.4)
    np.testing.assert_array_equal(observed, ~by_driver)
    assert observed.sum() >= 10  # (a takeover happened)


def test_the_hard_worlds_differ_from_the_two_lane_worlds_only_where_they_say():
    from sim2real.envs.randomization import resolve_spec

    configs = Path(__file__).resolve().parent.parent / "experiments/configs"
    hard = resolve_spec(configs / "policy_two_lane_hard_worlds.yaml").model_dump()
    every = resolve_spec(configs / "policy_two_lane_worlds.yaml").model_dump()
    differ = {
        (group, name)
        for group, fields in every.items()
        if isinstance(fields, dict)
        for name, value in fields.items()
        if hard[group][name] != value
    }
    # "every other range is policy_two_lane_worlds.yaml's" (the hard spec's header)
    assert differ == {
        ("track", "road_width"),
        ("visual", "verge_color"),
        ("camera", "hfov"),
        ("dynamics", "top_speed"),
        ("dynamics", "latency"),
    }
    assert all(hard[g] == v for g, v in every.items() if not isinstance(v, dict))
