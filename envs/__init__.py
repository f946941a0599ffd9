"""PyBullet driving worlds, domain randomization and an expert driver.

Importing this package registers the gymnasium id ``sim2real/TrackDriving-v1``.

Versions: ``-v1`` (2026-11-30) is the env as it is now: track styles (two_lane, single_lane,
tape, centre_line, walls), glossy-floor highlights, the lighting, solver iterations and nominal
camera of issues 4-16. ``-v0`` is no longer registered: it changed behaviour three times under
one id (lighting, solver iterations, nominal camera), so no code here reproduces what it was;
recordings and cards that name it were made by earlier versions of this package.

Modules: tracks (seeded closed centrelines), randomization (the spec and its sampling; the
default spec is default_randomization.yaml), textures (baked floor and wall textures, one
painter per track style), walls (corridor boards), specular (glossy-floor highlights), world
(PyBullet physics: ground, racecar), camera (lens and renderer), raster (distractor boxes),
image_noise (sensor effects), track_env (the env), expert (pure pursuit), recording
(drive_expert frames), preview (contact sheet).
"""

from gymnasium.envs.registration import register, registry

from sim2real.envs.quiet import silenced_output

SIM_EXTRA_HINT = (
    "the simulator needs pybullet, which is not installed: pip install 'sim2real[sim]' "
    "(pybullet 3.2.7 has wheels for Python 3.11; on 3.12+ it builds from source)"
)

try:
    with silenced_output():
        import pybullet  # noqa: F401  (its first import prints a build banner)
except ImportError as exc:
    raise ModuleNotFoundError(SIM_EXTRA_HINT, name="pybullet") from exc

ENV_ID = "sim2real/TrackDriving-v1"
DEFAULT_MAX_EPISODE_STEPS = 2000

if ENV_ID not in registry:
    register(
        id=ENV_ID,
        entry_point="sim2real.envs.track_env:TrackDrivingEnv",
        max_episode_steps=DEFAULT_MAX_EPISODE_STEPS,
    )

__all__ = ["ENV_ID", "DEFAULT_MAX_EPISODE_STEPS"]
