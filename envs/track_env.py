"""`sim2real/TrackDriving-v1`: drive the PyBullet racecar around a generated track from a
wide-angle camera, under per-episode domain randomization.

Observation: (H, W, 3) uint8 RGB. Action: float32 [steering, throttle] in [-1, 1]; steering -1
turns full left (DonkeyCar convention), throttle scales the wheel speed up to the episode's top
speed (negative drives backwards). Reward: metres of progress along the centreline this step,
minus 1 on leaving the road. Terminated when off the road or flipped.
"""

from __future__ import annotations

import colorsys
import math
from collections import deque
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pybullet as p
from gymnasium import spaces
from gymnasium.utils import EzPickle

from sim2real.envs.camera import CAM_TO_LEVEL, Lens, Renderer, rotation_matrix
from sim2real.envs.image_noise import ImagePipeline
from sim2real.envs.randomization import RandomizationSpec, resolve_spec
from sim2real.envs.specular import Highlights
from sim2real.envs.textures import Room, build_atlas
from sim2real.envs.tracks import Track, generate_track
from sim2real.envs.walls import corridor_boards
from sim2real.envs.world import MAX_STEER, Distractor, World

OFF_ROAD_PENALTY = 1.0
FLIP_ANGLE = 1.0  # rad of roll or pitch that counts as flipped


class TrackDrivingEnv(gym.Env, EzPickle):
    """See the module docstring.

    image_size: (height, width) of the observation. randomization: None (the shipped default
    spec), a RandomizationSpec, a YAML path or a dict. strength: in [0, 1], scales every range
    toward its nominal value. camera: False skips rendering (observations are black) for fast
    ground-truth-only rollouts such as expert evaluation. renderer: "raster" (distractors drawn
    with OpenCV, fast) or "pybullet" (drawn by PyBullet's TinyRenderer, slower reference)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 20}

    def __init__(
        self,
        image_size: tuple[int, int] = (120, 160),
        randomization: None | RandomizationSpec | str | Path | dict = None,
        strength: float = 1.0,
        render_mode: str | None = None,
        camera: bool = True,
        renderer: str = "raster",
    ) -> None:
        EzPickle.__init__(self, image_size, randomization, strength, render_mode, camera, renderer)
        height, width = (int(v) for v in image_size)
        if height < 8 or width < 8:
            raise ValueError(f"image_size must be at least (8, 8), got {image_size}")
        if not 0.0 <= float(strength) <= 1.0:
            raise ValueError(f"strength must lie in [0, 1], got {strength}")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.image_size = (height, width)
        self.spec_ranges = resolve_spec(randomization)
        self.strength = float(strength)
        self.render_mode = render_mode
        self.camera_enabled = bool(camera)
        if renderer not in ("raster", "pybullet"):
            raise ValueError(f"renderer must be 'raster' or 'pybullet', got {renderer!r}")
        self.renderer_mode = renderer
        self.observation_space = spaces.Box(0, 255, (height, width, 3), np.uint8)
        self.action_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.world = World()
        self.track: Track | None = None
        self.params: dict[str, dict[str, Any]] = {}
        self._obs = np.zeros((height, width, 3), np.uint8)

    # ----------------------------------------------------------------------------- episode
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        options = options or {}
        randomize = bool(options.get("randomize", True))
        rng = self.np_random
        strength = self.strength if randomize else 0.0
        self.params = self.spec_ranges.sample(rng, strength)
        tr, vis, cam, img, dyn = (
            self.params[k] for k in ("track", "visual", "camera", "image", "dynamics")
        )
        self.track = generate_track(
            rng, tr["length"], tr["road_width"], tr["curviness"], tr["control_points"]
        )
        margin = tr["road_width"] / 2 + vis["verge_width"] + vis["wall_margin"]
        room = Room(*self.track.bounds(margin), height=vis["wall_height"])
        distractors = self._place_distractors(rng, room, int(round(vis["distractors"])))
        if vis["style"] == "walls":
            rgb = colorsys.hsv_to_rgb((vis["board_color"][0] % 360) / 360, *vis["board_color"][1:])
            distractors += corridor_boards(
                self.track, vis["board_height"], vis["board_thickness"], rgb
            )
        if self.camera_enabled and self.renderer_mode == "pybullet":
            self.world.set_distractors(distractors)

        start = int(rng.integers(len(self.track.points)))
        t = self.track.tangents[start]
        self.world.reset_car(
            self.track.points[start],
            float(np.arctan2(t[1], t[0])),
            dyn["friction"],
            dyn["mass_scale"],
        )

        height, width = self.image_size
        if self.camera_enabled:
            atlas = build_atlas(self.track, room, vis, distractors, rng, width)
            lens = Lens.create(height, width, cam["hfov"], cam["distortion"])
            az, el = np.radians(vis["light_azimuth"]), np.radians(vis["light_elevation"])
            light = {
                "direction": [np.cos(az) * np.cos(el), np.sin(az) * np.cos(el), np.sin(el)],
                "ambient": vis["ambient"],
                "diffuse": vis["diffuse"],
            }
            self._mount = rotation_matrix(
                np.radians(cam["yaw"]), np.radians(cam["pitch"]), np.radians(cam["roll"])
            )
            lights = np.column_stack(
                [
                    rng.uniform(room.xmin, room.xmax, int(round(vis["glare"]))),
                    rng.uniform(room.ymin, room.ymax, int(round(vis["glare"]))),
                    np.full(int(round(vis["glare"])), room.height),
                ]
            )
            self._renderer = Renderer(
                lens,
                atlas,
                light,
                distractors,
                self.world.render_client,
                self.renderer_mode,
                mount=self._mount,
                camera_height=cam["height"],
                highlights=Highlights(
                    lights, vis["gloss"], (room.xmin, room.ymin, room.xmax, room.ymax)
                )
                if vis["gloss"] > 0.01
                else None,
            )
        self._pipeline = ImagePipeline(img, height, width, rng, enabled=self.camera_enabled)
        self._latency: deque[np.ndarray] = deque(
            [np.zeros(2, np.float32)] * int(round(dyn["latency"])), maxlen=None
        )
        state = self.world.state()
        self._index = self.track.nearest(state.position[:2])
        self._progress = 0.0
        self._laps = 0
        self._obs = self._observe(state)
        return self._obs, self._info(state)

    def _place_distractors(
        self, rng: np.random.Generator, room: Room, count: int
    ) -> list[Distractor]:
        """Boxes, slabs, poles and boards on the floor between the verges and the walls."""
        assert self.track is not None
        out: list[Distractor] = []
        keep_clear = self.track.width / 2 + self.params["visual"]["verge_width"] * 0.5 + 0.25
        for _ in range(count * 10):
            if len(out) == count:
                break
            kind = int(rng.integers(4))
            if kind == 0:  # box / crate
                he = rng.uniform([0.1, 0.1, 0.08], [0.4, 0.4, 0.4])
            elif kind == 1:  # furniture-like slab (table, cabinet, sofa)
                he = rng.uniform([0.3, 0.2, 0.2], [0.9, 0.45, 0.5])
            elif kind == 2:  # pole / leg / bin
                he = rng.uniform([0.03, 0.03, 0.3], [0.12, 0.12, 0.8])
            else:  # board or banner stand
                he = rng.uniform([0.4, 0.02, 0.2], [1.2, 0.05, 0.6])
            xy = rng.uniform([room.xmin + 0.1, room.ymin + 0.1], [room.xmax - 0.1, room.ymax - 0.1])
            radius = float(np.hypot(he[0], he[1]))
            i = self.track.nearest(xy)
            if np.linalg.norm(xy - self.track.points[i]) < keep_clear + radius:
                continue
            rgb = colorsys.hsv_to_rgb(rng.uniform(0, 1), rng.uniform(0, 0.9), rng.uniform(0.15, 1))
            out.append(
                Distractor(
                    np.array([xy[0], xy[1], he[2]]),
                    he,
                    float(rng.uniform(-np.pi, np.pi)),
                    tuple(float(v) for v in rgb),
                )  # fmt: skip
            )
        return out

    # -------------------------------------------------------------------------------- step
    def step(self, action):
        if self.track is None:
            raise RuntimeError("call reset() before step()")
        action = self._check_action(action)
        dyn = self.params["dynamics"]
        rng = self.np_random
        if dyn["action_noise"] > 0:
            action = action + rng.normal(0.0, dyn["action_noise"], 2).astype(np.float32)
        self._latency.append(action)
        steering, throttle = np.clip(self._latency.popleft(), -1.0, 1.0)
        # DonkeyCar: steering -1 = left; PyBullet's hinge: positive angle = left
        steer = -float(np.clip(steering * dyn["steering_gain"] + dyn["steering_trim"], -1, 1))
        self.world.apply_controls(
            steer * MAX_STEER, float(throttle) * dyn["top_speed"], dyn["motor_force"]
        )
        self.world.step()

        state = self.world.state()
        prev = self._index
        self._index = self.track.nearest(state.position[:2], hint=prev)
        delta = self.track.arc_delta(prev, self._index)
        self._progress += delta
        if self._progress >= (self._laps + 1) * self.track.length:
            self._laps += 1
        info = self._info(state)
        flipped = abs(state.roll) > FLIP_ANGLE or abs(state.pitch) > FLIP_ANGLE
        terminated = bool(info["off_road"] or flipped)
        reward = float(delta) - (OFF_ROAD_PENALTY if terminated else 0.0)
        self._obs = self._observe(state)
        return self._obs, reward, terminated, False, info

    def _check_action(self, action) -> np.ndarray:
        try:
            arr = np.asarray(action, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"action must be 2 numbers [steering, throttle], got {action!r}"
            ) from exc
        if arr.shape != (2,):
            raise ValueError(
                f"action must have shape (2,) [steering, throttle], got shape {arr.shape}"
            )
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"action must be finite, got {arr.tolist()}")
        return arr

    # ------------------------------------------------------------------------ observation
    def _observe(self, state) -> np.ndarray:
        if not self.camera_enabled:
            return np.zeros((*self.image_size, 3), np.uint8)
        cam = self.params["camera"]
        car_rot = np.array(p.getMatrixFromQuaternion(state.quaternion)).reshape(3, 3)
        position = state.position + car_rot @ np.array([cam["mount_offset"], 0.0, cam["height"]])
        rot = car_rot @ self._mount
        if cam["shake"] > 0:
            jitter = np.radians(cam["shake"]) * self.np_random.standard_normal(2)
            rot = rot @ _camera_jitter(float(jitter[0]), float(jitter[1]))
        image = self._renderer.render(position, rot)
        return self._pipeline.apply(image)

    def _info(self, state) -> dict[str, Any]:
        assert self.track is not None
        i, cte, heading = self.track.frenet(state.position[:2], state.yaw, index=self._index)
        return {
            "cte": cte,
            "heading_error": heading,
            "progress": float(self._progress),
            "laps": int(self._laps),
            "speed": float(state.speed),
            "curvature": float(self.track.curvature[i]),
            "off_road": bool(abs(cte) > self.track.width / 2),
            "randomization": _copy_params(self.params),
        }

    def render(self):
        if self.render_mode == "rgb_array":
            return self._obs.copy()
        return None

    def close(self) -> None:
        self.world.close()
        super().close()

    # ------------------------------------------------------------------- ground truth API
    @property
    def car_state(self):
        """The car's true pose and speed (world.CarState)."""
        return self.world.state()

    @property
    def track_index(self) -> int:
        """Index of the centreline sample nearest the car."""
        return self._index


def _copy_params(params: dict) -> dict:
    """A fresh two-level copy, so infos of different steps never share a mutable object."""
    return {group: dict(values) for group, values in params.items()}


def _camera_jitter(yaw: float, pitch: float) -> np.ndarray:
    """Camera-frame rotation (3, 3) for a small yaw and nose-down pitch rad of the mount,
    i.e. C^T Rz(yaw) Ry(pitch) C; written out because it runs every step."""
    cy, sy, cp, sp = math.cos(yaw), math.sin(yaw), math.cos(pitch), math.sin(pitch)
    level = np.array([[cy * cp, -sy, cy * sp], [sy * cp, cy, sy * sp], [-sp, 0.0, cp]])
    return CAM_TO_LEVEL.T @ level @ CAM_TO_LEVEL
