"""benchmarks/feedback_mix.py: the saved steering is steering + k_cte cte + k_heading heading,
also mirror-averaged, the other outputs unchanged; bad input is one line and writes nothing."""

import sys

import numpy as np
import pytest
import torch
from model_helpers import load_benchmark, set_batchnorm_statistics

from sim2real.agents.checkpoint import ModelCard, load_checkpoint, save_checkpoint
from sim2real.agents.model import DrivingNet, ModelSpec, predict
from sim2real.agents.preprocessing import Preprocessing

OUTPUTS = ["user/angle", "user/throttle", "sim/cte", "sim/heading_error"]


@pytest.fixture(scope="module")
def mix():
    yield load_benchmark("feedback_mix")
    del sys.modules["feedback_mix"]


def _checkpoint(folder, **spec):
    torch.manual_seed(0)
    pre = Preprocessing(crop_top=8, height=32, width=32)
    spec = ModelSpec(architecture="resnet_small", preprocessing=pre, hidden=8, **spec)
    net = set_batchnorm_statistics(DrivingNet(spec)).eval()
    save_checkpoint(folder, net, ModelCard(spec=spec))
    return folder


@pytest.mark.parametrize("mirror", [False, True])
def test_the_steering_row_adds_the_weighted_cte_and_heading(mix, tmp_path, mirror):
    torch.set_num_threads(1)
    folder = _checkpoint(tmp_path / "in", outputs=OUTPUTS, mirror_average=mirror)
    x = torch.randint(0, 256, (6, 3, 32, 32), generator=torch.Generator().manual_seed(1))
    before = predict(load_checkpoint(folder)[0], x.to(torch.uint8))
    mix.feedback_mix(str(folder), 0.7, -0.4, tmp_path / "out")
    mixed, card = load_checkpoint(tmp_path / "out")
    after = predict(mixed, x.to(torch.uint8))
    want = before[:, 0] + 0.7 * before[:, 2] - 0.4 * before[:, 3]
    np.testing.assert_allclose(after[:, 0], want, atol=1e-5)
    np.testing.assert_allclose(after[:, 1:], before[:, 1:], atol=1e-6)
    assert card.history[-1]["step"] == "steering feedback mix"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"outputs": ["user/angle", "user/throttle"]}, "'sim/cte' not in"),
        ({"outputs": OUTPUTS, "output_activation": "tanh"}, "output_activation 'identity'"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(mix, tmp_path, monkeypatch, spec, message):
    folder = _checkpoint(tmp_path / "in", **spec)
    monkeypatch.setattr(
        sys, "argv", ["feedback_mix.py", str(folder), "1", "1", str(tmp_path / "o")]
    )
    with pytest.raises(SystemExit) as exit_:
        mix.main()
    line = str(exit_.value)
    assert line.startswith("error: ") and message in line and "\n" not in line
    assert not (tmp_path / "o").exists()
