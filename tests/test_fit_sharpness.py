"""The camera's sharpening (image.sharpen) and fit-sim's sharpness fit: the unsharp mask makes
frames measurably sharper, the fit finds the blur or sharpening of a known sim world, and a
sharpness beyond the field's limit is clipped and reported."""

from __future__ import annotations

import copy

import cv2
import numpy as np
import pytest

from sim2real.common.config import validate_config
from sim2real.envs.image_noise import ImagePipeline
from sim2real.envs.randomization import RandomizationSpec
from sim2real.experiments import fit_sharpness as fs
from sim2real.experiments.fit_lens import render
from sim2real.experiments.fit_sim import (
    SHARPNESS,
    FitResult,
    FitSimConfig,
    applies,
    apply_sharpness,
    spec_yaml,
)
from sim2real.experiments.scene_measures import image_stats

PLAIN = {"jpeg_quality": 100, "brightness": 1.0, "contrast": 1.0, "gamma": 1.0, "hue": 0.0,
         "saturation": 1.0, "haze": 0.0, "haze_color": (200.0, 0.15, 0.9), "blur": 0.0,
         "motion_blur": 0.0, "vignetting": 0.0, "noise": 0.0}  # fmt: skip
SIZE = (60, 80)


def _soft_image() -> np.ndarray:
    """A blurred random pattern (60, 80, 3) uint8: edges and texture, like a soft render."""
    rng = np.random.default_rng(0)
    grey = cv2.resize(rng.uniform(40, 200, (15, 20)), (80, 60), interpolation=cv2.INTER_LINEAR)
    return np.repeat(np.clip(grey, 0, 255).astype(np.uint8)[..., None], 3, axis=2)


def _sharpness(image: np.ndarray) -> float:
    return image_stats(image[None], 30)["sharpness"]


def test_sharpen_raises_the_sharpness_and_keeps_the_mean():
    image = _soft_image()
    out = {a: ImagePipeline({**PLAIN, "sharpen": a}, 60, 80, np.random.default_rng(0)).apply(image)
           for a in (0.0, 0.5, 1.5)}  # fmt: skip
    # no "sharpen" key (pipelines built before the field) is sharpen 0: the frame unchanged
    same = ImagePipeline(PLAIN, 60, 80, np.random.default_rng(0)).apply(image)
    assert np.array_equal(same, image) and np.array_equal(out[0.0], image)
    s = {a: _sharpness(o) for a, o in out.items()}
    assert s[0.0] * 1.2 < s[0.5] and s[0.5] * 1.2 < s[1.5]
    assert abs(out[1.5].astype(float).mean() - image.mean()) < 2.0


def test_the_shipped_spec_does_not_sharpen_and_old_specs_load():
    spec = RandomizationSpec.default()
    assert spec.image.sharpen.high == 0.0
    draw = spec.sample(np.random.default_rng(0), 1.0)
    assert draw["image"]["sharpen"] == 0.0
    data = spec.model_dump(mode="json")
    del data["image"]["sharpen"]  # a spec written before the field
    assert validate_config(RandomizationSpec, data).image.sharpen.nominal == 0.0
    data["image"]["sharpen"] = {"low": 0.0, "high": 5.0, "nominal": 1.0}
    with pytest.raises(ValueError, match="sharpen"):
        validate_config(RandomizationSpec, data)


def _world(blur: float) -> dict:
    data = RandomizationSpec.default().model_dump(mode="json")
    data["image"]["blur"] = {"low": blur, "high": blur, "nominal": blur}
    return data


@pytest.mark.parametrize("position", [1.0, -1.2])
def test_the_fit_finds_the_sharpening_or_blur_of_a_known_sim_world(monkeypatch, position):
    """Target: the sharpness of the same renders at a known path position (sharpen 1.0, or a
    blur of 1.2 px); the fit starts from the shipped look (blur 0.5) and lands near it."""
    monkeypatch.setattr(fs, "SIM_FRAMES", 6)
    spec = _world(0.5)
    frames = render(fs.with_softness(spec, position), 0.0, 6, 7000, SIZE)
    target = image_stats(frames, 30)["sharpness"]
    fit = fs.fit_sharpness(spec, target, SIZE, 30, 0)
    assert fit.position == pytest.approx(position, abs=0.3)
    assert (fit.sharpen > 0.5) == (position > 0) and (fit.blur > 0.5) == (position < 0)
    # it moved the sim toward the target: the tried point it keeps is the nearest
    assert abs(np.log(fit.tried[fit.position] / target)) < abs(np.log(fit.tried[0.0] / target))
    assert "sharpness" in fit.note


def test_a_sharpness_beyond_the_limit_is_clipped_and_reported(monkeypatch):
    monkeypatch.setattr(fs, "SIM_FRAMES", 4)
    base = RandomizationSpec.default()
    result = FitResult(spec=_world(0.0), real_stats={"sharpness": 40.0})
    apply_sharpness(result, base, 0.5, SIZE, 30, 0)
    entry = result.spec["image"]["sharpen"]
    assert result.sharpness is not None and result.sharpness.position > 4.0
    assert entry["nominal"] == 4.0 and entry["high"] == 4.0 and entry["low"] == 2.0
    assert any("image.sharpen" in c for c in result.clipped)
    validate_config(RandomizationSpec, result.spec)
    text = spec_yaml(result, ["frames"], FitSimConfig(fit="geometry+sharpness"))
    assert "CLIPPED" in text and "sharpness 40.000 of the real frames" in text
    with pytest.raises(ValueError, match="target sharpness"):
        fs.fit_sharpness(result.spec, float("nan"), SIZE, 30, 0)


def test_fit_modes_say_which_fitted_values_the_spec_takes():
    assert all(applies(k, "geometry+sharpness") for k in SHARPNESS | {"camera.pitch"})
    assert not any(applies(k, "geometry") for k in SHARPNESS)
    assert not applies("visual.style", "geometry+sharpness") and applies("visual.style", "look")
    assert applies("image.sharpen", "look") and not applies("camera.pitch", "look")
    spec = copy.deepcopy(_world(0.0))
    assert fs.with_softness(spec, -0.7)["image"]["blur"]["nominal"] == pytest.approx(0.7)
    assert fs.with_softness(spec, 9.0)["image"]["sharpen"]["nominal"] == 4.0  # rendered clipped
