"""The TrackDriving env: API checks, determinism, pickling, subprocesses, actions, sign."""

from __future__ import annotations

import pickle

import cv2
import gymnasium as gym
import numpy as np
import pytest
from gymnasium.envs.registration import registry
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env
from stable_baselines3.common.vec_env import SubprocVecEnv

import sim2real.envs  # noqa: F401  (registers the ids)
from sim2real.envs import ENV_ID
from sim2real.envs.camera import rotation_matrix
from sim2real.envs.track_env import TrackDrivingEnv

SMALL = (48, 64)
OUR_IDS = sorted(env_id for env_id in registry if env_id.startswith("sim2real/"))


def test_registered_id_is_listed():
    assert ENV_ID in OUR_IDS


@pytest.mark.parametrize("env_id", OUR_IDS)
def test_gymnasium_and_sb3_check_env_pass(env_id):
    env = gym.make(env_id, image_size=SMALL)
    try:
        gym_check_env(env.unwrapped, skip_render_check=False)
        sb3_check_env(env.unwrapped, warn=False)
    finally:
        env.close()


def test_make_sets_image_size_and_spaces():
    env = gym.make(ENV_ID, image_size=(40, 56), max_episode_steps=7)
    obs, info = env.reset(seed=0)
    assert obs.shape == (40, 56, 3) and obs.dtype == np.uint8
    assert env.action_space.shape == (2,)
    for key in ("cte", "heading_error", "progress", "laps", "speed", "curvature", "off_road"):
        assert key in info
    assert set(info["randomization"]) == {"track", "visual", "camera", "image", "dynamics"}
    truncated = False
    for _ in range(7):
        *_, terminated, truncated, _ = env.step(np.array([0.0, 0.2], np.float32))
        if terminated:
            break
    assert truncated or terminated
    env.close()


def _rollout(env, seed: int, n: int = 12):
    obs, _ = env.reset(seed=seed)
    frames, rewards = [obs], []
    for k in range(n):
        action = np.array([0.3 * np.sin(k / 3), 0.5], np.float32)
        obs, reward, terminated, _, _ = env.step(action)
        frames.append(obs)
        rewards.append(reward)
        if terminated:
            break
    return np.stack(frames), np.array(rewards)


def test_same_seed_same_rollout_different_seed_different_world():
    a, b = TrackDrivingEnv(image_size=SMALL), TrackDrivingEnv(image_size=SMALL)
    try:
        frames_a, rewards_a = _rollout(a, 11)
        frames_b, rewards_b = _rollout(b, 11)
        np.testing.assert_array_equal(frames_a, frames_b)
        np.testing.assert_array_equal(rewards_a, rewards_b)
        track_11 = a.track.points.copy()
        params_11 = a.params
        frames_c, _ = _rollout(b, 12)
        assert not np.array_equal(frames_a[0], frames_c[0])
        assert track_11.shape != b.track.points.shape or not np.allclose(track_11, b.track.points)
        assert params_11["visual"]["road_color"] != b.params["visual"]["road_color"]
    finally:
        a.close()
        b.close()


def test_pickle_round_trip_gives_an_identical_env():
    env = gym.make(ENV_ID, image_size=SMALL)
    clone = pickle.loads(pickle.dumps(env))
    try:
        obs_a, _ = env.reset(seed=5)
        obs_b, _ = clone.reset(seed=5)
        np.testing.assert_array_equal(obs_a, obs_b)
        action = np.array([-0.2, 0.4], np.float32)
        step_a, step_b = env.step(action), clone.step(action)
        np.testing.assert_array_equal(step_a[0], step_b[0])
        assert step_a[1] == step_b[1]
    finally:
        env.close()
        clone.close()


def _make_small():
    return gym.make(ENV_ID, image_size=(32, 32))


def test_runs_under_sb3_subproc_vec_env():
    vec = SubprocVecEnv([_make_small, _make_small], start_method="fork")
    try:
        vec.seed(3)
        obs = vec.reset()
        assert obs.shape == (2, 32, 32, 3)
        for _ in range(3):
            obs, rewards, dones, infos = vec.step(np.array([[0.0, 0.5], [0.5, 0.5]], np.float32))
        assert obs.shape == (2, 32, 32, 3) and rewards.shape == (2,)
        assert all("cte" in info for info in infos)
        assert infos[0]["randomization"] != infos[1]["randomization"]  # seeds 3 and 4
    finally:
        vec.close()


@pytest.mark.parametrize(
    ("action", "message"),
    [
        (np.zeros(3, np.float32), "shape"),
        (np.zeros((1, 2), np.float32), "shape"),
        (np.array([np.nan, 0.0], np.float32), "finite"),
        (np.array([0.0, np.inf], np.float32), "finite"),
        ("left", "steering, throttle"),
    ],
)
def test_bad_actions_get_clear_errors(action, message):
    env = TrackDrivingEnv(image_size=SMALL, camera=False)
    try:
        env.reset(seed=0)
        with pytest.raises(ValueError, match=message):
            env.step(action)
    finally:
        env.close()


def test_step_before_reset_and_bad_kwargs_are_refused():
    env = TrackDrivingEnv(image_size=SMALL, camera=False)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(2, np.float32))
    env.close()
    with pytest.raises(ValueError, match="strength"):
        TrackDrivingEnv(strength=1.5)
    with pytest.raises(ValueError, match="renderer"):
        TrackDrivingEnv(renderer="opengl")


@pytest.mark.parametrize("steering", [-1.0, 1.0])
def test_steering_minus_one_turns_left(steering):
    """DonkeyCar convention: -1 = full left = counter-clockwise yaw seen from above."""
    env = TrackDrivingEnv(camera=False, strength=0.0)
    try:
        env.reset(seed=0)
        yaw0 = env.car_state.yaw
        for _ in range(12):
            env.step(np.array([steering, 0.4], np.float32))
        turned = (env.car_state.yaw - yaw0 + np.pi) % (2 * np.pi) - np.pi
        assert turned * -steering > 0.3  # left (positive yaw) for -1, right for +1
    finally:
        env.close()


def test_nominal_world_when_randomize_is_off():
    env = TrackDrivingEnv(image_size=SMALL, camera=False)
    try:
        _, info = env.reset(seed=1, options={"randomize": False})
        spec = env.spec_ranges
        for group, values in info["randomization"].items():
            for name, value in values.items():
                nominal = getattr(getattr(spec, group), name).nominal
                if isinstance(value, tuple):
                    assert value[1:] == pytest.approx(nominal[1:])
                    assert value[0] == pytest.approx(nominal[0] % 360)
                else:
                    assert value == pytest.approx(nominal), f"{group}.{name}"
        _, info = env.reset(seed=1)
        assert info["randomization"]["camera"]["hfov"] != spec.camera.hfov.nominal
    finally:
        env.close()


def test_off_road_terminates_with_a_penalty():
    env = TrackDrivingEnv(image_size=SMALL, camera=False, strength=0.0)
    try:
        env.reset(seed=2)
        for _ in range(200):
            _, reward, terminated, _, info = env.step(np.array([1.0, 1.0], np.float32))
            if terminated:
                break
        assert terminated and info["off_road"]
        assert abs(info["cte"]) > env.track.width / 2
        assert reward < 0
    finally:
        env.close()


def test_raster_and_pybullet_renderers_agree():
    """The fast OpenCV distractor raster draws what PyBullet's TinyRenderer draws: the same
    pixels (up to a one-pixel anti-aliased rim) in nearly the same colours."""
    images, masks = {}, {}
    for mode in ("raster", "pybullet"):
        env = TrackDrivingEnv(image_size=(120, 160), renderer=mode, strength=0.5)
        try:
            env.reset(seed=5)
            renderer = env._renderer
            box = renderer.raster.box_centres[0]
            eye = np.array([box[0] - 1.0, box[1] - 0.3, 0.25])
            yaw = float(np.arctan2(box[1] - eye[1], box[0] - eye[0]))
            rot = rotation_matrix(yaw, np.radians(10.0), 0.0)
            images[mode] = renderer.render(eye, rot).astype(int)
            room_only = renderer._room_pass(eye, rot).astype(int)
            masks[mode] = np.abs(images[mode] - room_only).max(axis=2) > 10
        finally:
            env.close()
    raster, bullet = masks["raster"], masks["pybullet"]
    assert raster.mean() > 0.05 and bullet.mean() > 0.05  # boxes in view, drawn by both
    grow = np.ones((3, 3), np.uint8)
    near_bullet = cv2.dilate(bullet.astype(np.uint8), grow).astype(bool)
    near_raster = cv2.dilate(raster.astype(np.uint8), grow).astype(bool)
    assert (raster & near_bullet).sum() / raster.sum() > 0.9
    assert (bullet & near_raster).sum() / bullet.sum() > 0.9
    both = raster & bullet
    colour = np.abs(images["raster"] - images["pybullet"]).max(axis=2)[both]
    assert np.median(colour) < 10
