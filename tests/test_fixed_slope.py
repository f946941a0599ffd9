"""benchmarks/fixed_slope.py: any checkpoint ends at the asked slope, weakened or boosted,
and its card records the total gain over the raw network."""

import sys

import pytest
import torch
from model_helpers import load_benchmark

from sim2real.agents.calibration import attenuation
from sim2real.agents.checkpoint import load_checkpoint
from sim2real.agents.model import predict
from sim2real.agents.pretrain import dataset_tensors
from sim2real.transfer.datasets import DrivingDataset, open_records
from sim2real.transfer.sample_data import sample_path


@pytest.fixture(scope="module")
def fixed():
    yield load_benchmark("fixed_slope")
    del sys.modules["fixed_slope"]


def _slope(folder) -> float:
    model, _ = load_checkpoint(folder)
    records = open_records([sample_path()]).records
    data = DrivingDataset(records, model.spec.preprocessing, model.spec.outputs, progress=False)
    images, targets = dataset_tensors(data)
    return attenuation(predict(model, images)[:, 0], targets[:, 0].double().numpy())["slope"]


def test_a_calibrated_checkpoint_is_weakened_or_boosted_to_the_slope_and_records_its_gain(
    fixed, tmp_path
):
    torch.set_num_threads(1)
    tub = str(sample_path())  # real frames with steering labels: the recipe's slope is ~0.63
    shipped = load_checkpoint("pilotnet-recipe")[1].metrics["steering_calibration"]["gain"]
    assert shipped != 1.0  # already calibrated
    weak = fixed.fixed_slope("pilotnet-recipe", tub, 0.3, tmp_path / "weak")
    assert weak["gain"] < 1  # weakened (the clipped calibration never weakens below 1)
    assert weak["total_gain"] == pytest.approx(shipped * weak["gain"])
    strong = fixed.fixed_slope(str(tmp_path / "weak"), tub, 1.9, tmp_path / "strong")
    assert strong["slope"] == pytest.approx(0.3, rel=1e-3)
    assert strong["gain"] == pytest.approx(1.9 / 0.3, rel=1e-3)  # beyond the 2x clip
    assert _slope(tmp_path / "strong") == pytest.approx(1.9, rel=1e-3)
    card = load_checkpoint(tmp_path / "strong")[1]
    total = shipped * weak["gain"] * strong["gain"]
    assert card.metrics["steering_calibration"]["gain"] == pytest.approx(total)
    assert [h["step"] for h in card.history[-2:]] == ["fixed steering slope"] * 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["pilotnet-recipe", "TUB", "2.5"], "SLOPE must be in (0, 2.0], got 2.5"),
        (["pilotnet-recipe", "no/such/tub", "1.5"], "no/such/tub"),
        (["no/such/checkpoint", "TUB", "1.5"], "no/such/checkpoint"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(fixed, tmp_path, monkeypatch, args, message):
    args = [str(sample_path()) if a == "TUB" else a for a in args]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["fixed_slope.py", *args, str(tmp_path / "out")])
    with pytest.raises(SystemExit) as exit_:
        fixed.main()
    line = str(exit_.value)
    assert line.startswith("error: ") and message in line and "\n" not in line
    assert not (tmp_path / "out").exists()
