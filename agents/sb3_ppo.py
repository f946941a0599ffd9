"""PPO that fine-tunes a pretrained actor without undoing it: value warm-up and an actor rate.

A behaviour-cloned actor starts good and a fresh critic starts random, so PPO's first
advantages are noise and its first updates move the actor at random. `FineTunePPO` is SB3's
PPO with the policy's parameters in two optimizer groups (see
`sb3_extractor.actor_critic_groups`): "actor" (encoder, actor layers, log std) and "critic"
(the value layers). Its learning rate is SB3's schedule times a per-group scale:

- the critic group always at 1 (the configured `learning_rate`);
- the actor group at 0 until `actor_warmup_steps` env steps (all envs counted) have been
  collected, so only the value function learns from the first rollouts, then at
  `actor_lr_scale` (a slower actor than critic).

Everything else, the loss and the clipping included, is SB3's own `PPO.train`.
"""

from __future__ import annotations

from typing import Any

from stable_baselines3 import PPO

ACTOR, CRITIC = "actor", "critic"


class FineTunePPO(PPO):
    """SB3 PPO with a value warm-up and a scaled actor learning rate (module docstring).

    actor_warmup_steps: env steps (all envs) with the actor's learning rate at 0.
    actor_lr_scale: the actor's learning rate after warm-up, as a fraction of the critic's."""

    def __init__(
        self, *args: Any, actor_warmup_steps: int = 0, actor_lr_scale: float = 1.0, **kwargs: Any
    ) -> None:
        if actor_warmup_steps < 0:
            raise ValueError(f"actor_warmup_steps must be >= 0, got {actor_warmup_steps}")
        if actor_lr_scale < 0:
            raise ValueError(f"actor_lr_scale must be >= 0, got {actor_lr_scale}")
        self.actor_warmup_steps = int(actor_warmup_steps)
        self.actor_lr_scale = float(actor_lr_scale)
        super().__init__(*args, **kwargs)

    def actor_scale(self) -> float:
        """The actor group's learning-rate factor now (0 while warming up the value function)."""
        if self.num_timesteps < self.actor_warmup_steps:
            return 0.0
        return self.actor_lr_scale

    def _update_learning_rate(self, optimizers) -> None:
        super()._update_learning_rate(optimizers)  # every group at the schedule's rate, logged
        scale = self.actor_scale()
        optimizers = optimizers if isinstance(optimizers, list) else [optimizers]
        for optimizer in optimizers:
            for group in optimizer.param_groups:
                if group.get("name") == ACTOR:
                    group["lr"] = group["lr"] * scale
        self.logger.record("train/actor_lr_scale", scale)
