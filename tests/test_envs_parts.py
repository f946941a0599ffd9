"""Pieces of the simulator: tracks, the randomization spec, the lens, the expert, recording."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from sim2real.common.config import ConfigError
from sim2real.envs.camera import Lens
from sim2real.envs.expert import ExpertDriver
from sim2real.envs.randomization import RandomizationSpec, resolve_spec
from sim2real.envs.recording import APPLIED_KEYS, LABEL_KEYS, drive_expert
from sim2real.envs.track_env import TrackDrivingEnv
from sim2real.envs.tracks import MIN_RADIUS, generate_track


# ---------------------------------------------------------------------------------- tracks
@pytest.mark.parametrize("seed", range(6))
def test_tracks_are_closed_drivable_and_of_the_requested_length(seed):
    rng = np.random.default_rng(seed)
    track = generate_track(rng, length=25.0, width=0.9, curviness=0.8, control_points=10)
    steps = np.linalg.norm(np.diff(np.vstack([track.points, track.points[:1]]), axis=0), axis=1)
    assert steps.max() < 0.08  # closed: the last sample is as near the first as any neighbours
    assert steps.sum() == pytest.approx(25.0, rel=0.02)
    assert np.abs(track.curvature).max() <= 1.0 / MIN_RADIUS + 1e-9
    # no overlap: samples far apart along the loop are more than a road width apart
    d = np.linalg.norm(track.points[:, None] - track.points[None], axis=2)
    ds = np.abs(track.s[:, None] - track.s[None])
    ds = np.minimum(ds, track.length - ds)
    assert d[ds > 4.0].min() > track.width


def test_same_rng_same_track_and_frenet_signs():
    a = generate_track(np.random.default_rng(3), 20.0, 0.8, 0.5, 8)
    b = generate_track(np.random.default_rng(3), 20.0, 0.8, 0.5, 8)
    np.testing.assert_array_equal(a.points, b.points)
    i = 40
    left = a.points[i] + 0.2 * a.normals[i]
    yaw = float(np.arctan2(a.tangents[i, 1], a.tangents[i, 0]))
    j, cte, heading = a.frenet(left, yaw + 0.1)
    assert j == i and cte == pytest.approx(0.2, abs=0.01) and heading == pytest.approx(0.1)
    assert a.frenet(a.points[i] - 0.3 * a.normals[i], yaw)[1] == pytest.approx(-0.3, abs=0.01)
    assert a.arc_delta(len(a.points) - 2, 1) == pytest.approx(3 * (a.length / len(a.points)))


# -------------------------------------------------------------------- randomization spec
def _default_dict() -> dict:
    return RandomizationSpec.default().model_dump()


def _write(tmp_path, data) -> str:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_default_spec_round_trips_through_yaml(tmp_path):
    spec = RandomizationSpec.default()
    assert RandomizationSpec.from_yaml(_write(tmp_path, spec.model_dump())) == spec


@pytest.mark.parametrize(
    ("edit", "field", "words"),
    [
        (lambda d: d["camera"]["hfov"].update(low=150.0, high=100.0), "camera.hfov", "low"),
        (
            lambda d: d["image"].update(sparkle={"low": 0, "high": 1, "nominal": 0}),
            "sparkle",
            "Extra inputs",
        ),  # fmt: skip
        (lambda d: d["camera"]["hfov"].update(high=200.0), "camera.hfov", "impossible"),
        (lambda d: d["dynamics"]["friction"].update(low=-1.0), "dynamics.friction", "impossible"),
        (
            lambda d: d["visual"]["road_color"].update(high=[360, 1.5, 1.0]),
            "visual.road_color",
            "saturation",
        ),  # fmt: skip
        (lambda d: d["track"]["length"].update(nominal=100.0), "track.length", "nominal"),
        (lambda d: d.pop("dynamics"), "dynamics", "Field required"),
    ],
)
def test_bad_specs_fail_on_load_naming_the_field(tmp_path, edit, field, words):
    data = _default_dict()
    edit(data)
    path = _write(tmp_path, data)
    with pytest.raises(ConfigError) as err:
        RandomizationSpec.from_yaml(path)
    message = str(err.value)
    assert field in message and words in message and "spec.yaml" in message


def test_strength_scales_every_range_toward_nominal():
    spec = RandomizationSpec.default()
    rng = np.random.default_rng(0)
    for _ in range(20):
        half = spec.sample(rng, 0.5)
        for name in ("hfov", "pitch", "height"):
            r = getattr(spec.camera, name)
            lo, hi = r.nominal + 0.5 * (r.low - r.nominal), r.nominal + 0.5 * (r.high - r.nominal)
            assert lo <= half["camera"][name] <= hi
    zero = spec.sample(rng, 0.0)
    assert zero["image"]["noise"] == spec.image.noise.nominal
    with pytest.raises(ValueError, match="strength"):
        spec.sample(rng, 1.2)


def test_env_accepts_a_spec_file_and_a_narrow_spec_pins_values(tmp_path):
    data = _default_dict()
    data["camera"]["hfov"] = {"low": 100.0, "high": 100.0, "nominal": 100.0, "unit": "deg"}
    path = _write(tmp_path, data)
    assert resolve_spec(path).camera.hfov.low == 100.0
    env = TrackDrivingEnv(image_size=(24, 32), randomization=path, camera=False)
    try:
        _, info = env.reset(seed=0)
        assert info["randomization"]["camera"]["hfov"] == 100.0
    finally:
        env.close()


# ------------------------------------------------------------------------------------ lens
@pytest.mark.parametrize("distortion", [0.0, 0.5, 1.0])
def test_lens_rays_project_back_to_their_pixels(distortion):
    lens = Lens.create(30, 40, hfov_deg=130.0, distortion=distortion)
    u, v = lens.project(lens.rays.T.astype(np.float64))
    cols, rows = np.meshgrid(np.arange(40) + 0.5, np.arange(30) + 0.5)
    np.testing.assert_allclose(u, cols.ravel(), atol=0.05)
    np.testing.assert_allclose(v, rows.ravel(), atol=0.05)
    # the horizontal field of view is what was asked for
    mid = lens.rays.reshape(3, 30, 40)[:, 15, :]
    spread = np.degrees(np.arctan2(mid[0, -1], mid[2, -1]) - np.arctan2(mid[0, 0], mid[2, 0]))
    assert spread == pytest.approx(130.0 * 39 / 40, rel=0.03)


def test_barrel_distortion_bends_straight_lines_outward():
    """With distortion, off-centre pixels see wider angles than a pinhole would."""
    pin = Lens.create(30, 40, 120.0, 0.0).rays.reshape(3, 30, 40)
    fish = Lens.create(30, 40, 120.0, 1.0).rays.reshape(3, 30, 40)
    corner_angle = lambda r: np.degrees(np.arccos(r[2, 0, 0]))  # noqa: E731
    assert corner_angle(fish) > corner_angle(pin) + 5


# ---------------------------------------------------------------------------------- expert
def _laps(seeds, strength: float) -> int:
    env = TrackDrivingEnv(camera=False, strength=strength)
    done = 0
    try:
        for seed in seeds:
            env.reset(seed=seed)
            expert = ExpertDriver(env)
            for _ in range(3000):
                _, _, terminated, _, info = env.step(expert.act())
                if terminated or info["laps"] >= 1:
                    break
            done += info["laps"] >= 1
    finally:
        env.close()
    return done


def test_expert_completes_laps_at_full_strength_quick():
    assert _laps(range(3), 1.0) == 3


@pytest.mark.slow
def test_expert_completes_a_lap_on_95_percent_of_20_tracks_at_full_strength():
    assert _laps(range(100, 120), 1.0) >= 19


def test_expert_perturbations_move_the_car_off_centre_and_label_stays_clean():
    env = TrackDrivingEnv(camera=False, strength=0.0)
    try:
        env.reset(seed=0)
        calm, wild = ExpertDriver(env, seed=1), ExpertDriver(env, perturbation=0.3, seed=1)
        differs = 0
        for _ in range(60):
            action = wild.act()
            differs += not np.allclose(action, wild.label)
            calm.act()
            np.testing.assert_allclose(calm.label, wild.label)  # same state, same clean label
            env.step(action)
        assert differs > 5
    finally:
        env.close()
    with pytest.raises(ValueError, match="perturbation"):
        ExpertDriver(env, perturbation=2.0)


# ------------------------------------------------------------------------------- recording
def test_drive_expert_is_reproducible_per_seed_and_labels_the_frames():
    frames = list(drive_expert(7, 30, image_size=(24, 32), episode_steps=20))
    again = list(drive_expert(7, 30, image_size=(24, 32), episode_steps=20))
    other = list(drive_expert(8, 5, image_size=(24, 32)))
    assert len(frames) == 30
    for a, b in zip(frames, again, strict=True):
        np.testing.assert_array_equal(a.image, b.image)
        assert (a.steering, a.throttle, a.labels) == (b.steering, b.throttle, b.labels)
    assert not np.array_equal(frames[0].image, other[0].image)
    assert frames[0].image.shape == (24, 32, 3) and frames[0].image.dtype == np.uint8
    assert set(frames[0].labels) == {*LABEL_KEYS, *APPLIED_KEYS}
    assert [f.episode for f in frames] == [0] * 20 + [1] * 10
    assert [f.step for f in frames[18:22]] == [18, 19, 0, 1]
    assert frames[10].labels["sim/speed"] > 0.3
    assert all(-1.0 <= f.steering <= 1.0 and -1.0 <= f.throttle <= 1.0 for f in frames)


# ------------------------------------------------------------------- nominal = the real car
def test_nominal_camera_puts_the_horizon_where_the_real_one_is():
    """usi-track-a frames (160x120): horizon near y = 35-45, two lanes fill the bottom row."""
    env = TrackDrivingEnv(image_size=(120, 160), strength=0.0)
    try:
        env.reset(seed=0)
        cam = env.params["camera"]
        lens = env._renderer.lens
        # a level ray straight ahead, in the frame of a camera pitched down (y points down)
        pitch = np.radians(cam["pitch"])
        _, v = lens.project(np.array([0.0, -np.sin(pitch), np.cos(pitch)]))
        assert 35 <= float(v) <= 45
        state = env.car_state
        env._pipeline.enabled = False
        image = env._observe(state).astype(int)
    finally:
        env.close()
    bottom = image[-1]
    dark = bottom.max(axis=1) < 110  # asphalt
    yellow = (bottom[:, 0] > 120) & (bottom[:, 1] > 100) & (bottom[:, 2] < 90)
    assert (dark | yellow).mean() > 0.6


def test_drive_expert_records_the_applied_action_beside_the_clean_label():
    """Noise injection: the car executes a perturbed action, the label stays the clean one."""
    clean = list(drive_expert(3, 12, image_size=(24, 32), perturbation=0.0))
    noisy = list(drive_expert(3, 40, image_size=(24, 32), perturbation=1.0))
    for f in clean:
        assert f.labels["sim/applied_steering"] == pytest.approx(f.steering, abs=1e-6)
        assert f.labels["sim/applied_throttle"] == pytest.approx(f.throttle, abs=1e-6)
    offsets = [abs(f.labels["sim/applied_steering"] - f.steering) for f in noisy]
    assert max(offsets) > 0.15
    assert all(-1.0 <= f.labels["sim/applied_steering"] <= 1.0 for f in noisy)
