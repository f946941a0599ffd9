"""The project's encoder inside stable-baselines3, and weights moving in and out of SB3 policies.

`EncoderExtractor` is an SB3 ``BaseFeaturesExtractor`` around a registered `Encoder` (same
`build_encoder`, ``features_dim = encoder.feature_dim``). It receives what SB3 gives for a
uint8 image space after ``VecTransposeImage``: (N, 3, H, W) float32 in [0, 1], and normalises
with the same `InputNormalization` as ``DrivingNet.normalize``. Its lower stages can
be frozen at construction (`freeze_stages`: requires_grad False and FrozenBatchNorm2d), so that
SB3 rebuilding a policy (``PPO.load`` when resuming) rebuilds it frozen.

`FrozenAwareActorCriticPolicy` / `FrozenAwareSACPolicy` build their optimizers over trainable
parameters only. `AsymmetricActorCriticPolicy` is the asymmetric actor-critic (Pinto et al.
2017) for an env whose observations are {"image", "state"} (`sb3_env.PrivilegedState`): the
actor reads the image alone (`ImageKeyExtractor`, the same encoder), the critic the privileged
state alone (`StateExtractor` and its own layers), so the exported network is unchanged.
The actor's layers match `DrivingNet`'s head (one hidden ReLU layer of ``spec.hidden`` units,
then linear), so `policy_to_driving_net` exports the encoder + actor
mean as a `DrivingNet` and `load_driving_net_into_policy` copies a checkpoint's weights in.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.distributions import DiagGaussianDistribution
from stable_baselines3.common.policies import ActorCriticPolicy, BasePolicy
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from stable_baselines3.sac.policies import SACPolicy
from torch import nn
from torch.distributions import Normal

from sim2real.agents.encoders import build_encoder
from sim2real.agents.freezing import freeze_stages, trainable_parameters
from sim2real.agents.model import STEERING, THROTTLE, DrivingNet, InputNormalization, ModelSpec
from sim2real.agents.preprocessing import Preprocessing
from sim2real.agents.sb3_env import IMAGE_KEY, STATE_KEY

POLICY_OUTPUTS = [STEERING, THROTTLE]
"""What a policy checkpoint predicts: the action [steering, throttle]."""


class EncoderExtractor(BaseFeaturesExtractor):
    """SB3 features extractor: images (N, 3, H, W) float32 in [0, 1] -> (N, feature_dim).

    architecture: a registered encoder name; mean/std/normalization: the preprocessing's
    (see `Preprocessing`); freeze: stages to freeze now (an int k, "all", "none" or stage names)."""

    def __init__(
        self,
        observation_space: spaces.Box,
        architecture: str = "pilotnet",
        mean: Sequence[float] = (0.5, 0.5, 0.5),
        std: Sequence[float] = (0.25, 0.25, 0.25),
        freeze: int | str | Sequence[str] = 0,
        normalization: str = "fixed",
    ) -> None:
        shape = tuple(int(v) for v in observation_space.shape)
        if len(shape) != 3 or shape[0] != 3:
            raise ValueError(
                f"EncoderExtractor needs channel-first (3, H, W) observations, got {shape}; "
                "SB3 transposes (H, W, 3) uint8 image spaces itself"
            )
        encoder = build_encoder(architecture, shape)
        super().__init__(observation_space, encoder.feature_dim)
        self.encoder = encoder
        self.input_norm = InputNormalization(mean, std, normalization)
        self.frozen = freeze_stages(self, freeze)

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        return self.encoder(self.input_norm(observations))


def _entry(observation_space: spaces.Space, key: str, who: str) -> spaces.Space:
    """The `key` entry of a Dict `observation_space`; ValueError (one line, naming `who`)
    when the space is not a Dict with that key."""
    if not isinstance(observation_space, spaces.Dict) or key not in observation_space.spaces:
        raise ValueError(f"{who} needs a Dict space with a {key!r} key, got {observation_space}")
    return observation_space[key]


class ImageKeyExtractor(EncoderExtractor):
    """`EncoderExtractor` on the "image" entry of a {"image", "state"} observation: the actor
    of `AsymmetricActorCriticPolicy`, which never reads the state."""

    def __init__(self, observation_space: spaces.Dict, **kwargs: Any) -> None:
        super().__init__(_entry(observation_space, IMAGE_KEY, "ImageKeyExtractor"), **kwargs)

    def forward(self, observations: dict[str, torch.Tensor]) -> torch.Tensor:  # type: ignore[override]
        return super().forward(observations[IMAGE_KEY])


class StateExtractor(BaseFeaturesExtractor):
    """The critic's input in `AsymmetricActorCriticPolicy`: the "state" entry (N, D) of a
    {"image", "state"} observation, as it is (the value layers follow)."""

    def __init__(self, observation_space: spaces.Dict) -> None:
        state = _entry(observation_space, STATE_KEY, "StateExtractor")
        if len(state.shape) != 1:
            raise ValueError(f"the state must be a vector, got shape {state.shape}")
        super().__init__(observation_space, int(state.shape[0]))

    def forward(self, observations: dict[str, torch.Tensor]) -> torch.Tensor:  # type: ignore[override]
        return observations[STATE_KEY].float()


class _TwoInputMlp(nn.Module):
    """SB3's MlpExtractor for two inputs of different widths: policy_net on the actor's
    features, value_net on the critic's (same attribute names, so `actor_parts` and
    `CRITIC_PREFIXES` apply)."""

    def __init__(
        self, actor_dim: int, critic_dim: int, pi: Sequence[int], vf: Sequence[int], activation
    ) -> None:
        super().__init__()

        def mlp(width: int, layers: Sequence[int]) -> tuple[nn.Sequential, int]:
            modules: list[nn.Module] = []
            for size in layers:
                modules += [nn.Linear(width, size), activation()]
                width = size
            return nn.Sequential(*modules), width

        self.policy_net, self.latent_dim_pi = mlp(actor_dim, pi)
        self.value_net, self.latent_dim_vf = mlp(critic_dim, vf)

    def forward(self, features: tuple[torch.Tensor, torch.Tensor]):
        return self.forward_actor(features[0]), self.forward_critic(features[1])

    def forward_actor(self, features: torch.Tensor) -> torch.Tensor:
        return self.policy_net(features)

    def forward_critic(self, features: torch.Tensor) -> torch.Tensor:
        return self.value_net(features)


class SteeringOnlyGaussian(DiagGaussianDistribution):
    """SB3's diagonal Gaussian over [steering, throttle] that explores and scores the steering
    only: the throttle is sampled at its mean (std 1e-6) and left out of the log-probability
    and the entropy, so PPO's loss has no term in the throttle output (it still moves with the
    hidden layer the two outputs share)."""

    def proba_distribution(self, mean_actions: torch.Tensor, log_std: torch.Tensor):
        std = torch.ones_like(mean_actions) * log_std.exp()
        std = torch.cat([std[..., :1], torch.full_like(std[..., 1:], 1e-6)], dim=-1)
        self.distribution = Normal(mean_actions, std)
        return self

    def log_prob(self, actions: torch.Tensor) -> torch.Tensor:
        return self.distribution.log_prob(actions)[..., 0]

    def entropy(self) -> torch.Tensor:
        return self.distribution.entropy()[..., 0]


class FrozenAwareActorCriticPolicy(ActorCriticPolicy):
    """ActorCriticPolicy whose optimizer holds trainable parameters only, in two named groups
    ("actor", "critic": see `actor_critic_groups`) that `sb3_ppo.FineTunePPO` can give
    different learning rates. steering_only: explore and learn the steering alone
    (`SteeringOnlyGaussian`)."""

    def __init__(self, *args: Any, steering_only: bool = False, **kwargs: Any) -> None:
        self.steering_only = bool(steering_only)
        super().__init__(*args, **kwargs)

    def _build(self, lr_schedule) -> None:
        if self.steering_only:
            self.action_dist = SteeringOnlyGaussian(int(np.prod(self.action_space.shape)))
        super()._build(lr_schedule)
        self.optimizer = self.optimizer_class(
            actor_critic_groups(self), lr=lr_schedule(1), **self.optimizer_kwargs
        )


class AsymmetricActorCriticPolicy(FrozenAwareActorCriticPolicy):
    """Asymmetric actor-critic: the actor is `features_extractor_class` (an `ImageKeyExtractor`)
    then ``net_arch["pi"]``; the critic is `StateExtractor` then ``net_arch["vf"]``, so
    the actor's output never depends on the state (module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["share_features_extractor"] = False
        super().__init__(*args, **kwargs)

    def make_features_extractor(self) -> BaseFeaturesExtractor:
        if "features_extractor" not in self._modules:  # SB3 builds the actor's first
            return super().make_features_extractor()
        return StateExtractor(self.observation_space)

    def _build_mlp_extractor(self) -> None:
        arch = self.net_arch if isinstance(self.net_arch, dict) else {}
        self.mlp_extractor = _TwoInputMlp(
            self.pi_features_extractor.features_dim,
            self.vf_features_extractor.features_dim,
            arch.get("pi", []),
            arch.get("vf", []),
            self.activation_fn,
        ).to(self.device)


CRITIC_PREFIXES = ("mlp_extractor.value_net.", "value_net.", "vf_features_extractor.")
"""Parameter names of an ActorCriticPolicy's value function alone (a shared features
extractor belongs to the actor: what moves it moves the actions)."""


def actor_critic_groups(policy: ActorCriticPolicy) -> list[dict[str, Any]]:
    """The trainable parameters of `policy` as optimizer groups [{"name": "actor", ...},
    {"name": "critic", ...}]: the critic group holds the value layers (and a separate value
    encoder), the actor group everything else that trains (encoder, actor layers, log std)."""
    groups: dict[str, list[nn.Parameter]] = {"actor": [], "critic": []}
    for name, param in policy.named_parameters():
        if param.requires_grad:
            groups["critic" if name.startswith(CRITIC_PREFIXES) else "actor"].append(param)
    return [{"name": name, "params": params} for name, params in groups.items() if params]


class FrozenAwareSACPolicy(SACPolicy):
    """SACPolicy whose actor and critic optimizers hold trainable parameters only."""

    def _build(self, lr_schedule) -> None:
        super()._build(lr_schedule)
        self.actor.optimizer = self.optimizer_class(
            trainable_parameters(self.actor), lr=lr_schedule(1), **self.optimizer_kwargs
        )
        critic_params = [
            p
            for name, p in self.critic.named_parameters()
            if p.requires_grad
            and not (self.share_features_extractor and "features_extractor" in name)
        ]
        self.critic.optimizer = self.optimizer_class(
            critic_params, lr=lr_schedule(1), **self.optimizer_kwargs
        )


def policy_kwargs(
    algorithm: str,
    architecture: str,
    preprocessing: Preprocessing,
    hidden: int,
    freeze: int | str | Sequence[str] = 0,
    log_std_init: float = -1.0,
    critic_hidden: Sequence[int] = (256, 256),
    privileged_state: bool = False,
    value_hidden: Sequence[int] | None = None,
    steering_only: bool = False,
) -> dict[str, Any]:
    """SB3 ``policy_kwargs`` whose actor matches ``DrivingNet``'s head (ReLU, `hidden` units).

    privileged_state: for `AsymmetricActorCriticPolicy` on {"image", "state"} observations
    (PPO only). value_hidden: PPO's value layers (None: as the actor's, or [64] without).
    steering_only: PPO explores and learns the steering alone (`SteeringOnlyGaussian`)."""
    pi = [hidden] if hidden > 0 else []
    if (privileged_state or steering_only) and algorithm != "ppo":
        raise ValueError(
            f"privileged_state and steering_only are PPO's options; algorithm is {algorithm!r}"
        )
    kwargs: dict[str, Any] = {
        "features_extractor_class": ImageKeyExtractor if privileged_state else EncoderExtractor,
        "features_extractor_kwargs": {
            "architecture": architecture,
            "mean": tuple(preprocessing.mean),
            "std": tuple(preprocessing.std),
            "normalization": preprocessing.normalization,
            "freeze": freeze if isinstance(freeze, int | str) else list(freeze),
        },
        "activation_fn": nn.ReLU,
        "log_std_init": log_std_init,
    }
    if algorithm == "ppo":
        vf = list(value_hidden) if value_hidden is not None else (pi or [64])
        kwargs["net_arch"] = {"pi": pi, "vf": vf}
        if steering_only:
            kwargs["steering_only"] = True
    elif algorithm == "sac":
        kwargs["net_arch"] = {"pi": pi, "qf": list(critic_hidden)}
    else:
        raise ValueError(f"algorithm must be 'ppo' or 'sac', got {algorithm!r}")
    return kwargs


def actor_parts(policy: BasePolicy) -> tuple[EncoderExtractor, list[nn.Linear]]:
    """(the actor's extractor, the actor's linear layers from features to action mean)."""
    if isinstance(policy, ActorCriticPolicy):
        extractor = policy.pi_features_extractor
        body = policy.mlp_extractor.policy_net
        out = policy.action_net
    elif isinstance(policy, SACPolicy):
        extractor = policy.actor.features_extractor
        body = policy.actor.latent_pi
        out = policy.actor.mu
    else:
        raise ValueError(f"unsupported SB3 policy {type(policy).__name__}")
    if not isinstance(extractor, EncoderExtractor):
        raise ValueError(
            f"the policy's features extractor is {type(extractor).__name__}, not EncoderExtractor"
        )
    linears = [m for m in body.modules() if isinstance(m, nn.Linear)]
    if not isinstance(out, nn.Linear):
        raise ValueError(f"the policy's action layer is {type(out).__name__}, not Linear")
    return extractor, [*linears, out]


def _head_linears(model: DrivingNet) -> list[nn.Linear]:
    return [m for m in model.head.modules() if isinstance(m, nn.Linear)]


def driving_spec_for(policy: BasePolicy, preprocessing: Preprocessing) -> ModelSpec:
    """The `ModelSpec` of the DrivingNet that `policy`'s encoder + actor mean equal."""
    extractor, linears = actor_parts(policy)
    if len(linears) > 2:
        raise ValueError("the actor has more than one hidden layer; DrivingNet's head has one")
    if tuple(extractor.encoder.input_shape) != preprocessing.input_shape:
        raise ValueError(
            f"the policy takes {tuple(extractor.encoder.input_shape)}, preprocessing gives "
            f"{preprocessing.input_shape}"
        )
    return ModelSpec(
        architecture=extractor.encoder.architecture,
        preprocessing=preprocessing,
        outputs=list(POLICY_OUTPUTS),
        hidden=linears[0].out_features if len(linears) == 2 else 0,
        dropout=0.0,
        output_activation="tanh" if _squashes(policy) else "identity",
    )


def _squashes(policy: BasePolicy) -> bool:
    """Whether `policy`'s deterministic action is tanh(actor output) rescaled to its action
    space (SAC), rather than the clipped actor output (PPO). A squashing policy must act in
    [-1, 1] (the DonkeyCar range), where SB3's rescale is the identity, so that the exported
    tanh outputs are the actions themselves; ValueError otherwise."""
    if not policy.squash_output:
        return False
    space = policy.action_space
    if not (
        isinstance(space, spaces.Box) and np.all(space.low == -1.0) and np.all(space.high == 1.0)
    ):
        raise ValueError(
            f"a squashed ({type(policy).__name__}) policy exports as tanh outputs in [-1, 1]; "
            f"its action space is {space}, which would need a rescale DrivingNet does not have"
        )
    return True


@torch.no_grad()
def policy_to_driving_net(policy: BasePolicy, preprocessing: Preprocessing) -> DrivingNet:
    """A `DrivingNet` (outputs user/angle, user/throttle; no dropout) computing `policy`'s
    deterministic action from its encoder and actor layers: PPO's mean action before clipping
    (clip to [-1, 1] to drive, as SB3's predict does), SAC's tanh-squashed mean (the network's
    output_activation is "tanh"), which equals SB3's ``predict(obs, deterministic=True)``."""
    spec = driving_spec_for(policy, preprocessing)
    extractor, linears = actor_parts(policy)
    model = DrivingNet(spec)
    model.encoder.load_state_dict(extractor.encoder.state_dict())
    for target, source in zip(_head_linears(model), linears, strict=True):
        target.load_state_dict(source.state_dict())
    return model.eval()


@torch.no_grad()
def load_driving_net_into_policy(model: DrivingNet, policy: BasePolicy) -> dict[str, list[str]]:
    """Copy `model`'s weights into `policy`: the encoder by name (every features extractor of
    the policy, so actor and critics start alike), the head's hidden layer where shapes match,
    and the output layer's rows for user/angle and user/throttle (by output name).

    Returns {"copied": [...], "skipped": [...]} naming what moved. Raises ValueError when the
    encoder does not match (architecture or input size)."""
    extractor, linears = actor_parts(policy)
    src_enc = model.encoder
    if src_enc.architecture != extractor.encoder.architecture:
        raise ValueError(
            f"checkpoint encoder is {src_enc.architecture!r}, the policy's is "
            f"{extractor.encoder.architecture!r}"
        )
    if tuple(src_enc.input_shape) != tuple(extractor.encoder.input_shape):
        raise ValueError(
            f"checkpoint takes input {tuple(src_enc.input_shape)}, the policy "
            f"{tuple(extractor.encoder.input_shape)}"
        )
    state = src_enc.state_dict()
    extractors = {id(m): m for m in policy.modules() if isinstance(m, EncoderExtractor)}
    for ext in extractors.values():
        ext.encoder.load_state_dict(state)
    report = {"copied": [f"encoder ({len(state)} tensors)"], "skipped": []}

    head = _head_linears(model)
    if len(head) == 2 and len(linears) == 2 and head[0].weight.shape == linears[0].weight.shape:
        linears[0].load_state_dict(head[0].state_dict())
        report["copied"].append("head hidden layer")
    elif len(linears) == 2:
        report["skipped"].append("head hidden layer (shapes differ)")
    out_src, out_dst = head[-1], linears[-1]
    if len(head) == len(linears) and out_src.in_features == out_dst.in_features:
        for row, name in enumerate(POLICY_OUTPUTS):
            if name in model.outputs and row < out_dst.out_features:
                i = model.output_index(name)
                out_dst.weight[row].copy_(out_src.weight[i])
                out_dst.bias[row].copy_(out_src.bias[i])
                report["copied"].append(f"output row {name}")
            else:
                report["skipped"].append(f"output row {name} (not a checkpoint output)")
    else:
        report["skipped"].append("output layer (shapes differ)")
    policy_activation = "tanh" if policy.squash_output else "identity"
    if model.spec.output_activation != policy_activation:
        report["skipped"].append(
            f"output activation (checkpoint {model.spec.output_activation}, policy "
            f"{policy_activation}: the policy's actions are {policy_activation} of the outputs)"
        )
    return report
