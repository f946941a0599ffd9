"""Track styles, corridor boards, glossy-floor highlights and the style weights of the spec."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pybullet as p
import pytest
from gymnasium.envs.registration import registry

from sim2real.common.config import ConfigError, validate_config
from sim2real.envs import ENV_ID
from sim2real.envs.expert import ExpertDriver
from sim2real.envs.randomization import STYLES, RandomizationSpec
from sim2real.envs.track_env import TrackDrivingEnv

RED, GREEN, BLUE = [0.0, 1.0, 1.0], [120.0, 1.0, 1.0], [240.0, 1.0, 1.0]


def _marked_spec(style: str, gloss: float = 0.0) -> RandomizationSpec:
    """The default spec with pure colours: edge lines red, centre line green, verge blue,
    boards red, floor and road dark grey, no room clutter, no camera effects."""
    data = RandomizationSpec.default().model_dump()
    vis = data["visual"]
    for name, hsv in (("edge_color", RED), ("centre_color", GREEN), ("verge_color", BLUE),
                      ("board_color", RED), ("road_color", [0, 0, 0.2]),
                      ("floor_color", [0, 0, 0.2]), ("wall_color", [0, 0, 0.2])):  # fmt: skip
        vis[name] = {"low": hsv, "high": hsv, "nominal": hsv}
    vis["gloss"] = {"low": gloss, "high": gloss, "nominal": gloss}
    vis["glare"] = {"low": 6, "high": 6, "nominal": 6}
    for name in ("distractors", "banners", "verge_marks", "glare_strength", "road_grain"):
        vis[name]["nominal"] = vis[name]["low"] = 0.0
    vis["centre_gap"]["nominal"] = vis["centre_gap"]["low"] = 0.0  # a solid centre line
    spec = validate_config(RandomizationSpec, data)
    return spec.with_style(style)


def _frame(style: str, gloss: float = 0.0, seed: int = 0) -> np.ndarray:
    env = TrackDrivingEnv(image_size=(60, 80), randomization=_marked_spec(style, gloss),
                          strength=0.0)  # fmt: skip
    try:
        obs, _ = env.reset(seed=seed)
        env._pipeline.enabled = False  # the raw render
        return env._observe(env.car_state).astype(int)
    finally:
        env.close()


def _share(image: np.ndarray, channel: int) -> float:
    """Share of pixels of one pure primary colour (0 red, 1 green, 2 blue)."""
    others = [c for c in range(3) if c != channel]
    strong = image[..., channel] > 150
    return float((strong & (image[..., others].max(axis=-1) < 90)).mean())


@pytest.mark.parametrize(
    ("style", "red", "green", "blue"),
    [
        ("two_lane", True, True, True),
        ("single_lane", True, False, True),
        ("tape", True, False, False),
        ("centre_line", False, True, False),
        ("walls", True, False, False),
    ],
)
def test_each_style_paints_its_own_layout(style, red, green, blue):
    image = _frame(style)
    assert (_share(image, 0) > 0.002) == red
    assert (_share(image, 1) > 0.002) == green
    assert (_share(image, 2) > 0.002) == blue


def test_walls_are_boards_standing_up_beside_the_car():
    walls, tape = _frame("walls"), _frame("tape")
    # boards rise above the horizon band: red pixels high in the frame; taped lines stay low
    top = slice(0, 22)
    assert _share(walls[top], 0) > 0.02
    assert _share(tape[top], 0) < 0.002
    assert _share(walls, 0) > 3 * _share(tape, 0)


def _renders(gloss: float, lifts: tuple[float, ...]) -> list[np.ndarray]:
    """Raw renders from the seed-3 car's camera raised by each of `lifts` m."""
    env = TrackDrivingEnv(image_size=(60, 80), randomization=_marked_spec("tape", gloss),
                          strength=0.0)  # fmt: skip
    try:
        env.reset(seed=3)
        state = env.car_state
        rot = np.array(p.getMatrixFromQuaternion(state.quaternion)).reshape(3, 3) @ env._mount
        base = state.position + np.array([0.0, 0.0, env.params["camera"]["height"]])
        return [env._renderer.render(base + np.array([0, 0, dz]), rot).astype(int) for dz in lifts]
    finally:
        env.close()


def test_glossy_floor_shows_highlights_where_the_lights_mirror_images_are():
    glossy, matte = _renders(1.0, (0.0,)), _renders(0.0, (0.0,))
    highlight = (glossy[0] - matte[0]).min(axis=-1) > 40  # added white light
    assert highlight.mean() > 0.002
    # nothing else changes: a matte floor of the same seed is the same picture elsewhere
    assert np.abs(glossy[0] - matte[0])[~highlight].max() < 60
    assert (np.abs(glossy[0] - matte[0]).max(axis=-1) > 3).mean() < 0.2


def test_the_expert_keeps_to_the_middle_of_a_walled_corridor():
    env = TrackDrivingEnv(image_size=(24, 32), randomization=_marked_spec("walls"), strength=0.0,
                          camera=False)  # fmt: skip
    try:
        env.reset(seed=5)
        expert = ExpertDriver(env, seed=0)
        ctes = []
        for _ in range(300):
            _, _, terminated, _, info = env.step(expert.act())
            assert not terminated
            ctes.append(abs(info["cte"]))
        assert info["randomization"]["visual"]["style"] == "walls"
        assert max(ctes) < 0.35 * env.track.width  # the middle 70% of the corridor
    finally:
        env.close()


def test_style_is_nominal_at_strength_zero_and_weighted_at_one():
    spec = RandomizationSpec.default()
    rng = np.random.default_rng(0)
    assert {spec.sample(rng, 0.0)["visual"]["style"] for _ in range(30)} == {"two_lane"}
    draws = [spec.sample(rng, 1.0)["visual"]["style"] for _ in range(600)]
    weights = spec.visual.style.weights
    total = sum(weights.values())
    for style in STYLES:
        assert np.mean([d == style for d in draws]) == pytest.approx(
            weights[style] / total, abs=0.06
        )


def test_bad_style_weights_and_names_are_refused():
    data = RandomizationSpec.default().model_dump()
    data["visual"]["style"] = {"nominal": "walls", "weights": {"walls": -1.0}}
    with pytest.raises(ConfigError, match="visual.style"):
        validate_config(RandomizationSpec, data)
    data["visual"]["style"] = {"nominal": "zigzag", "weights": {"walls": 1.0}}
    with pytest.raises(ConfigError, match="nominal"):
        validate_config(RandomizationSpec, data)
    with pytest.raises(ValueError, match="zigzag"):
        RandomizationSpec.default().with_style("zigzag")


def test_a_spec_written_before_styles_still_loads_as_two_lane():
    data = RandomizationSpec.default().model_dump()
    for name in ("style", "one_sided", "board_color", "board_height", "board_thickness", "gloss"):
        del data["visual"][name]
    spec = validate_config(RandomizationSpec, data)
    assert spec.sample(np.random.default_rng(0), 1.0)["visual"]["style"] == "two_lane"


def test_only_v1_is_registered():
    assert ENV_ID == "sim2real/TrackDriving-v1"
    assert "sim2real/TrackDriving-v0" not in registry
    env = gym.make(ENV_ID, image_size=(24, 32))
    env.close()
