"""The PyBullet side of the world: a DIRECT BulletClient for physics (ground plane and the
racecar from pybullet_data) and a second DIRECT BulletClient that holds only the visual shapes
of the static distractors (boxes, furniture-like slabs, poles, boards).

The camera never draws the ego car: the default renderer draws the room and the distractors
itself (see camera.py), and the reference TinyRenderer mode renders the second client only
(TinyRenderer would otherwise draw the car's collision shapes, which cost more than the rest of
the scene).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pybullet as p
import pybullet_data
from pybullet_utils import bullet_client

from sim2real.envs.quiet import silenced_output

CONTROL_DT = 0.05  # s per env step (20 Hz, like a DonkeyCar's drive loop)
PHYSICS_SUBSTEPS = 2  # physics steps per env step (25 ms each; stable for the racecar)
WHEEL_RADIUS = 0.05  # m, racecar.urdf
MAX_STEER = 0.5  # rad at |steering| = 1
DRIVEN_WHEELS = (2, 3, 5, 7)
STEERING_HINGES = (4, 6)
CHASSIS_LINK = 1
STEERING_FORCE = 20.0  # N m, enough for the hinge to reach its target within a step
STEERING_GAIN = 0.5


@dataclass(frozen=True)
class CarState:
    """Ground truth of the car: position (3,) m, yaw rad, roll and pitch rad, speed m/s
    (signed, forward positive), orientation quaternion (x, y, z, w)."""

    position: np.ndarray
    yaw: float
    roll: float
    pitch: float
    speed: float
    quaternion: tuple[float, float, float, float]


@dataclass(frozen=True)
class Distractor:
    """A static box: centre (3,) m, half extents (3,) m, yaw rad, RGB colour in [0, 1];
    `ends` False: its two end faces (across its length, local x) are never drawn (boards in a
    row hide each other's ends)."""

    center: np.ndarray
    half_extents: np.ndarray
    yaw: float
    color: tuple[float, float, float]
    ends: bool = True


class World:
    """Physics of one env. Reused across episodes: `reset_car` and `set_distractors` rebuild
    what changes, so a reset costs milliseconds rather than a reload."""

    def __init__(self) -> None:
        with silenced_output():  # each DIRECT connect prints "argv[0]="
            self.client = bullet_client.BulletClient(connection_mode=p.DIRECT)
            self.render_client = bullet_client.BulletClient(connection_mode=p.DIRECT)
        self.client.setAdditionalSearchPath(pybullet_data.getDataPath())
        self._distractor_ids: list[int] = []
        self.car = -1

    def close(self) -> None:
        if self.client is not None:
            self.client.disconnect()
            self.render_client.disconnect()
            self.client = None  # type: ignore[assignment]

    def reset_car(self, xy: np.ndarray, yaw: float, friction: float, mass_scale: float) -> None:
        """Rebuild the physics world (so every episode starts from identical solver state) with
        the car at rest at `xy` m facing `yaw` rad; wheel-ground friction, chassis mass scale."""
        c = self.client
        c.resetSimulation()
        c.setGravity(0, 0, -9.81)
        c.setPhysicsEngineParameter(
            fixedTimeStep=CONTROL_DT / PHYSICS_SUBSTEPS, numSubSteps=0, numSolverIterations=5
        )
        ground = c.createMultiBody(0, c.createCollisionShape(p.GEOM_PLANE), -1, [0, 0, 0])
        c.changeDynamics(ground, -1, lateralFriction=1.0)
        quat = p.getQuaternionFromEuler([0, 0, yaw])
        self.car = c.loadURDF(
            "racecar/racecar.urdf",
            [float(xy[0]), float(xy[1]), 0.0],
            quat,
            flags=p.URDF_IGNORE_VISUAL_SHAPES,
        )
        for joint in range(c.getNumJoints(self.car)):
            c.setJointMotorControl2(self.car, joint, p.VELOCITY_CONTROL, targetVelocity=0, force=0)
        for wheel in DRIVEN_WHEELS:
            c.changeDynamics(self.car, wheel, lateralFriction=friction)
        mass = c.getDynamicsInfo(self.car, CHASSIS_LINK)[0]
        c.changeDynamics(self.car, CHASSIS_LINK, mass=mass * mass_scale)
        # let the suspension settle
        self.apply_controls(0.0, 0.0, 1.0)
        for _ in range(4):
            c.stepSimulation()

    def apply_controls(self, steer: float, wheel_speed: float, force: float) -> None:
        """Steering angle rad (positive = left), wheel speed m/s at the rim, motor force N m."""
        c = self.client
        c.setJointMotorControlArray(
            self.car,
            DRIVEN_WHEELS,
            p.VELOCITY_CONTROL,
            targetVelocities=[wheel_speed / WHEEL_RADIUS] * 4,
            forces=[force] * 4,
        )
        c.setJointMotorControlArray(
            self.car,
            STEERING_HINGES,
            p.POSITION_CONTROL,
            targetPositions=[steer, steer],
            forces=[STEERING_FORCE, STEERING_FORCE],
            positionGains=[STEERING_GAIN, STEERING_GAIN],
        )

    def step(self) -> None:
        """Advance physics by one env step (CONTROL_DT s)."""
        for _ in range(PHYSICS_SUBSTEPS):
            self.client.stepSimulation()

    def state(self) -> CarState:
        c = self.client
        pos, quat = c.getBasePositionAndOrientation(self.car)
        lin, _ = c.getBaseVelocity(self.car)
        roll, pitch, yaw = p.getEulerFromQuaternion(quat)
        speed = float(np.cos(yaw) * lin[0] + np.sin(yaw) * lin[1])
        return CarState(np.asarray(pos), float(yaw), float(roll), float(pitch), speed, quat)

    def set_distractors(self, distractors: list[Distractor]) -> None:
        """Replace the static distractor bodies (visual only, in the render client; the car
        ends its episode on leaving the road long before it could reach one)."""
        c = self.render_client
        for body in self._distractor_ids:
            c.removeBody(body)
        self._distractor_ids = []
        for d in distractors:
            he = [float(v) for v in d.half_extents]
            vis = c.createVisualShape(p.GEOM_BOX, halfExtents=he, rgbaColor=[*d.color, 1.0])
            body = c.createMultiBody(
                0,
                -1,
                vis,
                [float(v) for v in d.center],
                p.getQuaternionFromEuler([0, 0, d.yaw]),
            )
            self._distractor_ids.append(body)

    @property
    def has_distractors(self) -> bool:
        return bool(self._distractor_ids)
