"""fit-sim: the fitted spec recovers a known sim world, fits the shipped real sample, and
refuses bad input without writing a spec."""

from __future__ import annotations

import numpy as np
import pytest

from sim2real.common.config import validate_config
from sim2real.envs.preview import preview_frames
from sim2real.envs.randomization import RandomizationSpec
from sim2real.experiments.cli import main
from sim2real.experiments.fit_sim import FitResult, FitSimConfig, _set_range, fit_sim
from sim2real.transfer.sample_data import sample_path


def _world(style: str, pitch: float) -> RandomizationSpec:
    data = RandomizationSpec.default().model_dump()
    data["camera"]["pitch"] = {"low": pitch, "high": pitch, "nominal": pitch}
    return validate_config(RandomizationSpec, data).with_style(style)


def _frames(spec: RandomizationSpec, n: int = 30) -> np.ndarray:
    frames, _, _ = preview_frames(11, n, strength=0.15, randomization=spec)
    return np.stack(frames)


@pytest.mark.parametrize(("style", "pitch"), [("walls", 10.0), ("two_lane", 20.0)])
def test_fit_recovers_the_style_and_camera_pitch_of_a_known_sim_world(style, pitch):
    result = fit_sim(_frames(_world(style, pitch)), FitSimConfig(frames=30))
    assert result.fitted["visual.style"].value == style
    assert result.spec["camera"]["pitch"]["nominal"] == pytest.approx(pitch, abs=3.0)
    # strength 0 is the fitted world, strength 1 a range around it
    spec = validate_config(RandomizationSpec, result.spec)
    assert spec.visual.style.nominal == style
    assert spec.camera.pitch.low < spec.camera.pitch.nominal < spec.camera.pitch.high


def test_a_value_outside_the_physical_limits_is_clipped_and_reported():
    base = RandomizationSpec.default()
    spec = base.model_dump(mode="json")
    result = FitResult(spec=spec)
    _set_range(spec, base, "camera.pitch", 75.0, 0.5, result, "test")
    assert spec["camera"]["pitch"]["nominal"] == 60.0 and spec["camera"]["pitch"]["high"] == 60.0
    assert "camera.pitch" in result.clipped[0] and "75" in result.clipped[0]
    validate_config(RandomizationSpec, spec)


def test_fit_sim_cli_on_the_real_sample_writes_a_loadable_spec_and_report(tmp_path, capsys):
    out = tmp_path / "spec.yaml"
    code = main(["fit-sim", "--real", str(sample_path()), "--out", str(out), "--frames", "60"])
    assert code == 0, capsys.readouterr().err
    spec = RandomizationSpec.from_yaml(out)
    text = out.read_text()
    assert "# fitted:" in text and "horizon row" in text
    assert spec.visual.style.nominal == "two_lane"  # yellow dashes, white edges, blue verges
    hue = spec.visual.verge_color.nominal[0]
    assert 170 <= hue <= 230  # the blue mat
    assert 25 <= spec.visual.centre_color.nominal[0] <= 70  # yellow
    assert (tmp_path / "spec.png").stat().st_size > 10_000
    assert "style two_lane" in capsys.readouterr().out


def test_bad_input_gets_one_line_and_no_spec(tmp_path, capsys):
    out = tmp_path / "spec.yaml"
    code = main(["fit-sim", "--real", str(sample_path()), "--out", str(out), "--frames", "5"])
    assert code == 2 and "frames" in capsys.readouterr().err and not out.exists()
    noise = np.random.default_rng(0).integers(0, 256, (40, 120, 160, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="road scenes"):
        fit_sim(noise)
    with pytest.raises(ValueError, match="too few frames"):
        fit_sim(noise[:10])
    code = main(["fit-sim", "--real", str(sample_path()), "--out", str(out), "--span", "0.9:0.2"])
    assert code == 2 and "span" in capsys.readouterr().err and not out.exists()
