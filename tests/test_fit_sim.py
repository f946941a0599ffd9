"""fit-sim: the fitted spec recovers a known sim world, fits the shipped real sample, and
refuses bad input without writing a spec."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from sim2real.common.config import validate_config
from sim2real.envs.preview import preview_frames
from sim2real.envs.randomization import RandomizationSpec
from sim2real.experiments.cli import main
from sim2real.experiments.fit_sim import (
    GEOMETRY,
    FitResult,
    FitSimConfig,
    _set_range,
    fit_sim,
    keep_fitted,
    spec_yaml,
)
from sim2real.transfer.sample_data import sample_path


def _world(style: str, pitch: float) -> RandomizationSpec:
    data = RandomizationSpec.default().model_dump()
    data["camera"]["pitch"] = {"low": pitch, "high": pitch, "nominal": pitch}
    return validate_config(RandomizationSpec, data).with_style(style)


def _frames(spec: RandomizationSpec, n: int = 30) -> np.ndarray:
    frames, _, _ = preview_frames(11, n, strength=0.15, randomization=spec)
    return np.stack(frames)


_FITS: dict[tuple[str, float], FitResult] = {}


def _fit(style: str, pitch: float) -> FitResult:
    """fit_sim (fit: all) on 30 frames of a known sim world, computed once per module."""
    if (style, pitch) not in _FITS:
        config = FitSimConfig(frames=30, fit="all")
        _FITS[style, pitch] = fit_sim(_frames(_world(style, pitch)), config)
    return copy.deepcopy(_FITS[style, pitch])


@pytest.mark.parametrize(("style", "pitch"), [("walls", 10.0), ("two_lane", 20.0)])
def test_fit_recovers_the_style_and_camera_pitch_of_a_known_sim_world(style, pitch):
    result = _fit(style, pitch)
    assert result.fitted["visual.style"].value == style
    assert result.spec["camera"]["pitch"]["nominal"] == pytest.approx(pitch, abs=3.0)
    # strength 0 is the fitted world, strength 1 a range around it
    spec = validate_config(RandomizationSpec, result.spec)
    assert spec.visual.style.nominal == style
    assert spec.camera.pitch.low < spec.camera.pitch.nominal < spec.camera.pitch.high


def test_fit_geometry_takes_the_fitted_camera_and_keeps_the_base_look():
    base_spec = RandomizationSpec.default()
    base = base_spec.model_dump(mode="json")
    fitted = _fit("walls", 10.0)  # fit: all
    geometry = copy.deepcopy(fitted)
    keep_fitted(geometry, base_spec, "geometry")
    spec = geometry.spec
    assert spec["camera"]["pitch"]["nominal"] == pytest.approx(10.0, abs=3.0)  # base: 18
    changed = {f"{g}.{k}" for g in base for k in base[g] if spec[g][k] != base[g][k]}
    assert "camera.pitch" in changed and changed <= GEOMETRY
    # the look is the base spec's, though the walls and their colours were measured
    assert geometry.fitted["visual.style"].value == "walls"
    assert not geometry.fitted["visual.style"].applied
    assert spec["visual"]["style"] == base["visual"]["style"]
    assert fitted.spec["visual"]["board_color"] != base["visual"]["board_color"]
    text = spec_yaml(geometry, ["frames"], FitSimConfig(fit="geometry"))
    assert "fit: geometry" in text and "# measured, not applied: centre line on" in text
    validate_config(RandomizationSpec, spec)
    # fit=look is the complement: the camera group stays the base spec's
    look = copy.deepcopy(fitted)
    keep_fitted(look, base_spec, "look")
    assert look.spec["camera"] == base["camera"]
    assert look.spec["visual"]["style"]["nominal"] == "walls"
    assert not look.fitted["camera.pitch"].applied and look.fitted["visual.style"].applied


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
    args = ["fit-sim", "--real", str(sample_path()), "--out", str(out), "--frames", "60"]
    code = main([*args, "--fit", "all"])
    assert code == 0, capsys.readouterr().err
    spec = RandomizationSpec.from_yaml(out)
    text = out.read_text()
    assert "# fitted:" in text and "horizon row" in text
    assert spec.visual.style.nominal == "two_lane"  # yellow dashes, white edges, blue verges
    hue = spec.visual.verge_color.nominal[0]
    assert 170 <= hue <= 230  # the blue mat
    assert 25 <= spec.visual.centre_color.nominal[0] <= 70  # yellow
    assert (tmp_path / "spec.png").stat().st_size > 10_000
    out_text = capsys.readouterr().out
    assert "style two_lane" in out_text and "sharpness: blur" in out_text
    assert "sharpness" in text.split("  sharpen:")[1].split("\n")[0]


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


def _board_frames(horizon: float, ratio: float, n: int = 12) -> np.ndarray:
    """Dark floor, light boards whose feet and tops follow t = v ratio - (ratio - 1) b (a camera
    at height C, boards of height ratio x C, horizon row v), dark room above; 120x160."""
    rng = np.random.default_rng(0)
    frames = np.full((n, 120, 160, 3), 40, np.uint8)
    frames[..., 2] = 70  # a blue-grey room
    for i in range(n):
        feet = np.linspace(rng.uniform(40, 60), rng.uniform(60, 100), 160)
        for c, b in enumerate(feet):
            top = horizon * ratio - (ratio - 1) * b
            frames[i, int(round(top)) : int(round(b)), c] = (200, 205, 210)
            frames[i, int(round(b)) :, c] = rng.integers(60, 80, 120 - int(round(b)))[:, None]
    return frames


@pytest.mark.parametrize(("horizon", "ratio"), [(30.0, 1.4), (20.0, 0.7)])
def test_board_band_reads_the_horizon_and_the_boards_height_over_the_camera(horizon, ratio):
    from sim2real.experiments.board_band import fit_band

    band = fit_band(_board_frames(horizon, ratio))
    assert band is not None
    assert band.horizon == pytest.approx(horizon, abs=3.0)
    assert band.board_ratio == pytest.approx(ratio, abs=0.12)


def test_verticals_give_the_focal_length_of_a_pinhole():
    import cv2

    from sim2real.experiments.fit_lens import hfov_from_verticals

    focal, pitch = 120.0, 20.0
    above = focal * np.tan(np.radians(pitch))  # horizon above the centre (px)
    nadir = focal / np.tan(np.radians(pitch))  # verticals meet below it (px)
    cx, cy = 79.5, 59.5
    frames = np.full((20, 120, 160, 3), 90, np.uint8)
    for i, frame in enumerate(frames):
        for x_top in np.linspace(5, 155, 9) + i % 3:
            if abs(x_top - cx) < 25:
                continue
            # a vertical pole from row 10 to row 50, aimed at the nadir (cx, cy + nadir)
            x_bottom = x_top + (cx - x_top) * 40 / (cy + nadir - 10)
            cv2.line(frame, (int(x_top), 10), (int(round(x_bottom)), 50), (230, 230, 230), 2)
    hfov, note = hfov_from_verticals(frames, cy - above, 0.0)
    expected = np.degrees(2 * np.arctan(80 / focal))
    assert hfov == pytest.approx(expected, abs=6.0), note
    assert hfov_from_verticals(frames, cy - above, 0.8)[0] is None  # a barrel lens: prior kept


def test_the_dome_grows_with_the_barrel_distortion():
    from sim2real.experiments.fit_lens import render, with_lens
    from sim2real.experiments.scene_measures import dome

    spec = RandomizationSpec.default().model_dump(mode="json")
    pinhole = dome(render(with_lens(spec, 120.0, 0.0), 0.3, 8, 3, (120, 160)))
    fisheye = dome(render(with_lens(spec, 120.0, 1.0), 0.3, 8, 3, (120, 160)))
    assert fisheye > pinhole + 0.05


def _through_pipeline(image: np.ndarray, b: float, c: float, haze: float) -> tuple[float, float]:
    """(mean, std) of the luma of `image` through the sim's image pipeline at these gains."""
    import cv2

    from sim2real.envs.image_noise import ImagePipeline

    params = {"jpeg_quality": 100, "brightness": b, "contrast": c, "gamma": 1.0, "hue": 0.0,
              "saturation": 1.0, "haze": haze, "haze_color": (200.0, 0.15, 0.9), "blur": 0.0,
              "motion_blur": 0.0, "vignetting": 0.0, "noise": 0.0}  # fmt: skip
    out = ImagePipeline(params, *image.shape[:2], np.random.default_rng(0)).apply(image)
    luma = cv2.cvtColor(out, cv2.COLOR_RGB2GRAY).astype(np.float64)
    return float(luma.mean()), float(luma.std())


@pytest.mark.parametrize(("start", "target"), [((1.6, 1.3, 0.05), (58.0, 31.0)),
                                               ((1.0, 1.0, 0.0), (120.0, 30.0))])  # fmt: skip
def test_brightness_and_contrast_are_solved_through_the_sims_image_pipeline(start, target):
    """A dark floor (the carpet) and a bright one: one step lands on the target mean and std,
    where stepping each gain on its own ratio drove a dark floor's brightness to its limit."""
    from sim2real.envs.textures import hsv_to_rgb
    from sim2real.experiments.fit_sim import brightness_contrast

    rng = np.random.default_rng(1)
    grey = np.clip(rng.normal(70, 22, (60, 80)), 0, 255).astype(np.uint8)
    image = np.repeat(grey[..., None], 3, axis=2)
    haze_luma = float(np.dot([0.299, 0.587, 0.114], hsv_to_rgb((200.0, 0.15, 0.9)) / 255))
    sim = _through_pipeline(image, *start)
    b, c = brightness_contrast(start, 0.1, haze_luma, sim, target)
    mean, std = _through_pipeline(image, b, c, 0.1)
    assert mean == pytest.approx(target[0], abs=3.0) and std == pytest.approx(target[1], abs=2.0)
