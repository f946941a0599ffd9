"""PyBullet driving worlds, domain randomization and an expert driver.

Importing this package registers the gymnasium id ``sim2real/TrackDriving-v0``.
"""

from gymnasium.envs.registration import register, registry

ENV_ID = "sim2real/TrackDriving-v0"
DEFAULT_MAX_EPISODE_STEPS = 2000

if ENV_ID not in registry:
    register(
        id=ENV_ID,
        entry_point="sim2real.envs.track_env:TrackDrivingEnv",
        max_episode_steps=DEFAULT_MAX_EPISODE_STEPS,
    )

__all__ = ["ENV_ID", "DEFAULT_MAX_EPISODE_STEPS"]
