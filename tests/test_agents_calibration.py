import numpy as np
import pytest
import torch
import yaml
from test_pretrain_cli import make_sim_run, write_config
from torch.utils.data import TensorDataset

from sim2real.agents.calibration import (
    MAX_GAIN,
    attenuation,
    calibrate_output,
    scale_output,
)
from sim2real.agents.checkpoint import load_checkpoint
from sim2real.agents.model import DrivingNet, ModelSpec, predict
from sim2real.agents.preprocessing import Preprocessing
from sim2real.agents.pretrain import calibrate_steering
from sim2real.experiments.cli import main

OUTPUTS = ["user/angle", "user/throttle", "sim/cte"]


def _net(activation: str = "identity") -> DrivingNet:
    torch.manual_seed(0)
    spec = ModelSpec(
        architecture="pilotnet",
        preprocessing=Preprocessing(height=64, width=128),
        outputs=OUTPUTS,
        output_activation=activation,
    )
    return DrivingNet(spec).eval()


def _frames(n: int = 64) -> torch.Tensor:
    return torch.randint(
        0, 256, (n, 3, 64, 128), generator=torch.Generator().manual_seed(1), dtype=torch.uint8
    )


def test_attenuation_measures_the_slope_of_prediction_on_label():
    rng = np.random.default_rng(0)
    label = rng.uniform(-1, 1, 2000)
    prediction = 0.6 * label + 0.05 + rng.normal(0, 0.05, 2000)
    label[:100] = np.nan  # unlabelled frames are skipped
    measured = attenuation(prediction, label)
    assert measured["slope"] == pytest.approx(0.6, abs=0.01)
    assert measured["intercept"] == pytest.approx(0.05, abs=0.01)
    assert measured["frames"] == 1900
    with pytest.raises(ValueError, match="at least 10 labelled frames"):
        attenuation(np.zeros(5), np.ones(5))


def test_scale_output_scales_one_output_only():
    net, x = _net(), _frames(8)
    before = predict(net, x)
    scale_output(net, "user/angle", 1.5)
    after = predict(net, x)
    np.testing.assert_allclose(after[:, 0], 1.5 * before[:, 0], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(after[:, 1:], before[:, 1:])
    with pytest.raises(ValueError, match="output_activation 'identity'"):
        scale_output(_net("tanh"), "user/angle", 1.5)


def test_calibrate_output_undoes_a_known_attenuation_and_caps_the_gain():
    net, x = _net(), _frames()
    shrunk = torch.from_numpy(predict(net, x))
    result = calibrate_output(net, x, shrunk / 0.6, "user/angle")  # labels 1/0.6 x predictions
    assert result["slope"] == pytest.approx(0.6, rel=1e-4)
    assert result["gain"] == pytest.approx(1 / 0.6, rel=1e-4)
    assert result["rmse_after"] < 1e-4 < result["rmse_before"]
    np.testing.assert_allclose(predict(net, x)[:, 0], (shrunk / 0.6)[:, 0], atol=1e-4)

    capped = _net()
    result = calibrate_output(capped, x, shrunk / 0.3, "user/angle")
    assert result["gain"] == MAX_GAIN
    with pytest.raises(ValueError, match="does not rise with its label"):
        calibrate_output(_net(), x, -shrunk, "user/angle")


def test_exact_calibration_reaches_the_target_slope_from_either_side():
    x = _frames()
    for slope in (0.3, 2.5):  # clipped by default: boosted by MAX_GAIN only / not weakened
        net = _net()
        labels = torch.from_numpy(predict(net, x)) / slope
        clipped = calibrate_output(_net(), x, labels, "user/angle", target=1.2)
        assert clipped["gain"] == pytest.approx(1.2 * MAX_GAIN if slope < 1 else 1.0)
        result = calibrate_output(net, x, labels, "user/angle", target=1.2, exact=True)
        assert result["gain"] == pytest.approx(1.2 / slope, rel=1e-4)
        again = attenuation(predict(net, x)[:, 0], labels[:, 0].double().numpy())
        assert again["slope"] == pytest.approx(1.2, rel=1e-4)


def test_pretrain_with_calibrate_steering_records_and_applies_the_gain(tmp_path):
    tub = make_sim_run(tmp_path / "sim")
    runs = {}
    for name, calibrate in (("calibrated", True), ("plain", False)):
        config = write_config(tmp_path / f"{name}.yaml", tmp_path / "cache", epochs=5, lr=0.002)
        settings = yaml.safe_load(config.read_text())
        config.write_text(yaml.safe_dump({**settings, "calibrate_steering": calibrate}))
        args = ["pretrain", "--data", str(tub), "--out", str(tmp_path / name)]
        assert main([*args, "--config", str(config)]) == 0
        runs[name] = load_checkpoint(tmp_path / name)
    calibration = runs["calibrated"][1].metrics["steering_calibration"]
    assert "steering_calibration" not in runs["plain"][1].metrics
    assert calibration["output"] == "user/angle"
    assert "skipped" not in calibration and calibration["frames"] > 0
    assert calibration["gain"] == pytest.approx(float(np.clip(1 / calibration["slope"], 1, 2)))
    # the two runs differ only in the steering row of the last layer, by the recorded gain
    x = _frames(4)
    a, b = predict(runs["calibrated"][0], x), predict(runs["plain"][0], x)
    np.testing.assert_allclose(a[:, 0], calibration["gain"] * b[:, 0], rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(a[:, 1:], b[:, 1:])


def test_a_network_that_learnt_no_steering_is_kept_uncalibrated():
    net, x = _net(), _frames(32)
    before = predict(net, x)
    flat = torch.zeros(32, len(OUTPUTS))  # every steering label the same: no slope to measure
    record = calibrate_steering(net, TensorDataset(x, flat))
    assert record["gain"] == 1.0 and "varying labels" in record["skipped"]
    np.testing.assert_array_equal(predict(net, x), before)
    with pytest.raises(ValueError, match="needs validation frames"):
        calibrate_steering(net, TensorDataset(x[:0], flat[:0]))


def test_calibrate_output_reaches_a_target_slope_above_one():
    net, x = _net(), _frames()
    shrunk = torch.from_numpy(predict(net, x))
    result = calibrate_output(net, x, shrunk / 0.8, "user/angle", target=1.5)
    assert result["gain"] == pytest.approx(1.5 / 0.8, rel=1e-4)
    assert result["target_slope"] == 1.5
    # on those frames the output now rises with slope 1.5 on its label
    after = predict(net, x)[:, 0]
    label = (shrunk / 0.8)[:, 0].numpy()
    assert np.polyfit(label, after, 1)[0] == pytest.approx(1.5, rel=1e-3)
    with pytest.raises(ValueError, match="target slope"):
        calibrate_output(_net(), x, shrunk, "user/angle", target=0.0)


@pytest.mark.parametrize("slope", [1.2, 1.45])
def test_a_network_already_steering_above_one_is_scaled_to_the_target_not_past_it(slope):
    # an iteration that starts from a network scaled up earlier can measure a slope between
    # 1 and the target: it needs the gain target / slope, not the whole target on top
    net, x = _net(), _frames()
    shrunk = torch.from_numpy(predict(net, x))
    label = shrunk / slope
    result = calibrate_output(net, x, label, "user/angle", target=1.5)
    assert result["gain"] == pytest.approx(1.5 / slope, rel=1e-4)
    after = predict(net, x)[:, 0]
    assert np.polyfit(label[:, 0].numpy(), after, 1)[0] == pytest.approx(1.5, rel=1e-3)


def test_a_target_never_weakens_a_network_nor_changes_the_target_one_gains():
    net, x = _net(), _frames()
    shrunk = torch.from_numpy(predict(net, x))
    # steering beyond the target already: kept as it is, as with target 1
    assert calibrate_output(net, x, shrunk / 1.8, "user/angle", target=1.5)["gain"] == 1.0
    assert calibrate_output(_net(), x, shrunk / 1.3, "user/angle")["gain"] == 1.0
    # the cap is on the correction, times the target
    capped = calibrate_output(_net(), x, shrunk / 0.3, "user/angle", target=1.5)
    assert capped["gain"] == pytest.approx(1.5 * MAX_GAIN)
    # a target below 1 weakens to it, as before
    weak = calibrate_output(_net(), x, shrunk / 1.3, "user/angle", target=0.8)
    assert weak["gain"] == pytest.approx(0.8)
