"""PyBullet driving worlds, domain randomization and an expert driver."""
