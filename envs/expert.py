"""An expert driver: pure pursuit on the true centreline, speed adapted to the curvature ahead,
and optional steering perturbations so that recordings contain recoveries.

The expert reads ground truth from the unwrapped env (car pose and speed, the track, the
episode's dynamics). `act()` returns the action to execute; `label` holds the expert's clean
command for the same state (what a recording should store as the steering label).
"""

from __future__ import annotations

import numpy as np

from sim2real.envs.tracks import SAMPLE_SPACING
from sim2real.envs.world import CONTROL_DT, MAX_STEER

WHEELBASE = 0.325  # m, racecar.urdf
LATERAL_ACCEL = 1.8  # m/s^2 the expert allows in bends
MIN_SPEED = 0.8  # m/s
MAX_SPEED = 2.0  # m/s


class ExpertDriver:
    """Pure-pursuit expert for a TrackDrivingEnv (wrapped or not).

    perturbation: probability per step of starting a steering perturbation (0 = none); a
    perturbation adds an offset of 0.2-0.6 (action units) for 2-8 steps. `seed` seeds the
    perturbations' own generator (the env's generator is left alone)."""

    def __init__(
        self,
        env,
        perturbation: float = 0.0,
        *,
        seed: int | None = None,
        max_speed: float = MAX_SPEED,
    ) -> None:
        if not 0.0 <= perturbation <= 1.0:
            raise ValueError(f"perturbation must be a probability in [0, 1], got {perturbation}")
        self.env = env.unwrapped
        self.perturbation = float(perturbation)
        self.max_speed = float(max_speed)
        self.rng = np.random.default_rng(seed)
        self.reset()

    def reset(self) -> None:
        """Forget any perturbation in progress (call after env.reset)."""
        self._offset = 0.0
        self._remaining = 0
        self.label = np.zeros(2, np.float32)

    def act(self) -> np.ndarray:
        """The action (2,) float32 [steering, throttle] to execute now."""
        env = self.env
        track, state = env.track, env.car_state
        speed = max(0.0, state.speed)
        # the command acts after `latency` steps: steer from where the car will be by then
        latency = round(env.params["dynamics"]["latency"])
        heading = np.array([np.cos(state.yaw), np.sin(state.yaw)])
        position = state.position[:2] + heading * speed * CONTROL_DT * (latency + 0.5)
        i = track.nearest(position, hint=env.track_index)
        # pure pursuit toward a point on the centreline ahead
        lookahead = float(np.clip(0.45 + 0.35 * speed, 0.5, 1.4))
        target = track.lookahead(i, lookahead) - position
        c, s = np.cos(state.yaw), np.sin(state.yaw)
        lx, ly = c * target[0] + s * target[1], -s * target[0] + c * target[1]
        alpha = np.arctan2(ly, lx)
        delta = np.arctan2(2.0 * WHEELBASE * np.sin(alpha), lookahead)  # rad, positive = left
        steering = float(np.clip(-delta / MAX_STEER, -1.0, 1.0))  # DonkeyCar: -1 = left
        # speed from the sharpest bend within the next ~2 s of driving
        horizon = int((0.6 + 1.2 * speed) / SAMPLE_SPACING)  # m -> centreline samples
        idx = (i + np.arange(0, max(horizon, 2))) % len(track.points)
        kappa = float(np.max(np.abs(track.curvature[idx])))
        v_target = np.sqrt(LATERAL_ACCEL / max(kappa, 1e-3))
        v_target = float(np.clip(v_target, MIN_SPEED, self.max_speed))
        top_speed = env.params["dynamics"]["top_speed"]
        throttle = float(np.clip(v_target / top_speed + 0.3 * (v_target - speed), -1.0, 1.0))
        self.label = np.array([steering, throttle], np.float32)

        if self._remaining == 0 and self.perturbation > 0 and self.rng.random() < self.perturbation:
            self._remaining = int(self.rng.integers(2, 9))
            self._offset = float(self.rng.choice([-1.0, 1.0]) * self.rng.uniform(0.2, 0.6))
        if self._remaining > 0:
            self._remaining -= 1
            steering = float(np.clip(steering + self._offset, -1.0, 1.0))
        return np.array([steering, throttle], np.float32)
