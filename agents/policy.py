"""RL policies (PPO, SAC) on camera images with the project's encoder, saved as checkpoints.

`train_policy(config, out_dir)` builds the vectorised driving env (frames through the model's
`Preprocessing`), an SB3 model whose features extractor is the registered encoder
(optionally initialised from a perception checkpoint, lower stages optionally frozen), trains
it with a closed-loop evaluation callback on held-out seeds, and writes to `out_dir`:
config.yaml + run.json, tb/ (TensorBoard), evals.json (the learning curve),
policy_state.safetensors (weights, optimizer states and counters for resuming; no pickle) and
the final checkpoint folder `checkpoint/` (kind "policy", outputs user/angle and
user/throttle), which fine-tuning reads like any network. The config (`PolicyConfig` and its
parts) is defined in `sim2real.agents.policy_config` and importable from here too.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from stable_baselines3.common.callbacks import BaseCallback

from sim2real.agents.checkpoint import ModelCard, load_checkpoint, save_checkpoint
from sim2real.agents.closed_loop import evaluate_closed_loop, held_out_seeds
from sim2real.agents.freezing import frozen_stages
from sim2real.agents.initspec import check_init_spec
from sim2real.agents.model import DrivingNet
from sim2real.agents.policy_config import (  # noqa: F401 (public here too)
    EnvConfig,
    EvalConfig,
    PolicyConfig,
    PPOParams,
    SACParams,
    load_policy_config,
)
from sim2real.agents.policy_state import (
    STATE_FILE,
    load_policy_state,
    read_policy_state,
    save_policy_state,
)
from sim2real.agents.preprocessing import Preprocessing
from sim2real.agents.sb3_env import make_vec_env
from sim2real.agents.sb3_extractor import (
    AsymmetricActorCriticPolicy,
    FrozenAwareActorCriticPolicy,
    FrozenAwareSACPolicy,
    actor_parts,
    load_driving_net_into_policy,
    policy_kwargs,
    policy_to_driving_net,
)
from sim2real.agents.sb3_ppo import FineTunePPO
from sim2real.common.io import atomic_write_json
from sim2real.common.runs import check_run_dir, code_version, describe_run

log = logging.getLogger(__name__)

MODEL_ZIP = "sb3_model.zip"
"""SB3's pickle-based save, written by earlier versions; read only with trust_pickle"""
CHECKPOINT_DIR = "checkpoint"
EVALS_FILE = "evals.json"


@dataclass
class ResolvedModel:
    """Architecture and preprocessing after reconciling the config with its init checkpoint."""

    architecture: str
    preprocessing: Preprocessing
    init: DrivingNet | None
    init_card: ModelCard | None


def resolve_model(config: PolicyConfig) -> ResolvedModel:
    """Fill architecture/preprocessing from the init checkpoint; ValueError on a mismatch."""
    if config.init_checkpoint is None:
        return ResolvedModel(
            config.architecture or "pilotnet", config.preprocessing or Preprocessing(), None, None
        )
    net, card = load_checkpoint(config.init_checkpoint)
    spec = card.spec
    wanted = {"architecture": config.architecture, "preprocessing": config.preprocessing}
    check_init_spec(
        spec,
        str(config.init_checkpoint),
        {k: v for k, v in wanted.items() if v is not None},
        option="init_checkpoint",
    )
    return ResolvedModel(spec.architecture, spec.preprocessing, net, card)


def make_policy_env(config: PolicyConfig, preprocessing: Preprocessing):
    """The SB3 VecEnv of `config` (its n_envs, vec_env, seed and env settings) seen through
    `preprocessing`."""
    return make_vec_env(
        config.n_envs,
        config.vec_env,
        config.seed,
        preprocessing=preprocessing,
        image_size=config.env.image_size,
        randomization=config.env.randomization,
        strength=config.env.strength,
        max_episode_steps=config.env.max_episode_steps,
        off_road_penalty=config.env.off_road_penalty,
        speed_cap_mps=config.env.speed_cap_mps,
        cte_penalty=config.env.cte_penalty,
        privileged_state=config.env.privileged_state,
    )


def build_model(config: PolicyConfig, env, resolved: ResolvedModel, tensorboard_log=None):
    """The SB3 model (PPO or SAC) for `config` on vec env `env`, seeded, weights initialised
    from the checkpoint when given. Returns (model, init report or None)."""
    from stable_baselines3 import SAC

    privileged = config.env.privileged_state
    if config.algorithm == "ppo":
        cls, params = FineTunePPO, config.ppo
        policy_cls = AsymmetricActorCriticPolicy if privileged else FrozenAwareActorCriticPolicy
    else:
        cls, policy_cls, params = SAC, FrozenAwareSACPolicy, config.sac
    # PPOParams/SACParams fields are SB3's own keyword names; these shape the policy instead
    policy_fields = {"log_std_init", "critic_hidden", "value_hidden", "steering_only"}
    kwargs = policy_kwargs(
        config.algorithm,
        resolved.architecture,
        resolved.preprocessing,
        config.hidden,
        config.freeze,
        privileged_state=privileged,
        **params.model_dump(include=policy_fields),
    )
    model = cls(
        policy_cls,
        env,
        **params.model_dump(exclude=policy_fields),
        policy_kwargs=kwargs,
        seed=config.seed,
        device=config.device,
        tensorboard_log=tensorboard_log,
        verbose=0,
    )
    if tensorboard_log is None:
        from stable_baselines3.common.logger import Logger

        model.set_logger(Logger(folder=None, output_formats=[]))  # SB3 would make /tmp/SB3-*
    report = None
    if resolved.init is not None:
        report = load_driving_net_into_policy(resolved.init, model.policy)
    return model, report


class ClosedLoopEvalCallback(BaseCallback):
    """Every `eval.freq` env steps (and at the start and end of training), export the policy
    as a DrivingNet and let it drive the held-out seeds; logs eval/* to TensorBoard, keeps
    the curve in `self.evals` and rewrites `path` (JSON) atomically after each evaluation."""

    def __init__(
        self,
        config: PolicyConfig,
        preprocessing: Preprocessing,
        path: Path,
        evals: list[dict[str, Any]] | None = None,
        on_eval=None,
    ) -> None:
        super().__init__(verbose=0)
        self.config = config
        self.preprocessing = preprocessing
        self.path = path
        self.evals = list(evals or [])
        self.on_eval = on_eval
        self._next = None

    def evaluate(self) -> dict[str, Any]:
        cfg = self.config.eval
        timesteps = int(self.model.num_timesteps)
        if self.evals and self.evals[-1]["timesteps"] == timesteps:
            return self.evals[-1]  # already evaluated at this step (resume, end of training)
        net = policy_to_driving_net(self.model.policy, self.preprocessing)
        t0 = time.perf_counter()
        result = evaluate_closed_loop(
            net,
            seeds=held_out_seeds(cfg.episodes, cfg.seed_start),
            nominal=cfg.nominal,
            strength=self.config.env.strength,
            image_size=self.config.env.image_size,
            max_steps=cfg.max_steps,
            randomization=self.config.env.randomization,
            stall_steps=cfg.stall_steps,
        )
        entry = {
            "timesteps": timesteps,
            **result["summary"],
            "seconds": time.perf_counter() - t0,
            "episodes_detail": result["episodes"],
        }
        self.evals.append(entry)
        for key in ("lap_completion_rate", "mean_lap_fraction", "mean_abs_cte_m", "mean_speed_mps"):
            self.logger.record(f"eval/{key}", entry[key])
        self.logger.dump(self.model.num_timesteps)
        atomic_write_json(self.path, self.evals)
        if self.on_eval is not None:
            self.on_eval(self.model, entry)
        log.info(
            "eval at %d steps: laps %.0f%%, lap fraction %.2f",
            entry["timesteps"],
            100 * entry["lap_completion_rate"],
            entry["mean_lap_fraction"],
        )
        return entry

    def _on_training_start(self) -> None:
        freq = self.config.eval.freq
        now = self.model.num_timesteps
        self._next = (now // freq + 1) * freq if freq else None
        if not self.evals:
            self.evaluate()

    def _on_step(self) -> bool:
        if self._next is not None and self.model.num_timesteps >= self._next:
            self.evaluate()
            self._next += self.config.eval.freq
        return True


@dataclass
class PolicyResult:
    """What `train_policy` produced."""

    out_dir: Path
    checkpoint_dir: Path
    card: ModelCard
    evals: list[dict[str, Any]]
    init_report: dict[str, list[str]] | None
    seconds: float


def train_policy(
    config: PolicyConfig,
    out_dir: str | Path,
    *,
    resume: bool = False,
    trust_pickle: bool = False,
) -> PolicyResult:
    """Train the policy of `config`; write the run folder `out_dir` (see module docstring).

    With `resume`, continue from ``out_dir/policy_state.safetensors`` (saved at every
    evaluation) up to `config.total_timesteps`. A run folder of an earlier version holds only
    SB3's ``sb3_model.zip``, which unpickles (runs code) on load: it is read only with
    `trust_pickle`. Refuses to overwrite a finished or started run otherwise."""
    out_dir = Path(out_dir)
    state_path, zip_path = out_dir / STATE_FILE, out_dir / MODEL_ZIP
    check_run_dir(
        out_dir,
        config,
        started=state_path.exists() or zip_path.exists(),
        resume=resume,
        what="a policy run",
        may_change={"total_timesteps"},
    )
    from_zip = resume and zip_path.exists() and not state_path.exists()
    if from_zip and not trust_pickle:
        raise ValueError(
            f"{zip_path} is stable-baselines3's pickle format, and loading it runs any code it "
            "holds; resume it with --trust-pickle only if you made it yourself, else start a "
            "new out dir"
        )
    old_threads = torch.get_num_threads()
    if config.num_threads is not None:
        torch.set_num_threads(config.num_threads)
    started = time.perf_counter()
    try:
        # read (and check) what the run resumes from before anything in out_dir changes
        resuming_state = resume and state_path.exists()
        saved = read_policy_state(state_path, config.algorithm) if resuming_state else None
        resolved = resolve_model(config)
        describe_run(out_dir, config)
        env = make_policy_env(config, resolved.preprocessing)
    except BaseException:
        torch.set_num_threads(old_threads)
        raise
    evals_path = out_dir / EVALS_FILE
    try:
        report = None
        evals: list[dict[str, Any]] = []
        resumed = resume and (state_path.exists() or from_zip)
        if from_zip:
            model = _load_sb3_zip(config, zip_path, env, out_dir / "tb")
        else:
            model, report = build_model(config, env, resolved, tensorboard_log=str(out_dir / "tb"))
            if resumed:
                load_policy_state(model, config.algorithm, state_path, saved)
        if resumed:
            if evals_path.is_file():
                evals = json.loads(evals_path.read_text(encoding="utf-8"))
            log.info("resuming %s at %d steps", out_dir, model.num_timesteps)

        save_state = _state_saver(config.algorithm, state_path)
        callback = ClosedLoopEvalCallback(
            config, resolved.preprocessing, evals_path, evals, on_eval=save_state
        )
        remaining = config.total_timesteps - model.num_timesteps
        if remaining > 0:
            model.learn(
                remaining,
                callback=callback,
                reset_num_timesteps=not resumed,
                tb_log_name="sb3",
            )
        callback.init_callback(model)  # (learn did it, unless there was nothing left to do)
        callback.evaluate()  # the final policy (skipped when it was just evaluated)
        save_state(model, None)
        evals = callback.evals
    finally:
        env.close()
        torch.set_num_threads(old_threads)

    net = policy_to_driving_net(model.policy, resolved.preprocessing)
    final = evals[-1]
    history = list(resolved.init_card.history) if resolved.init_card is not None else []
    history.append(
        {
            "step": f"train-policy ({config.algorithm})",
            "finished_utc": datetime.now(UTC).isoformat(timespec="seconds"),
            "config": config.model_dump(mode="json"),
            "init_checkpoint": config.init_checkpoint,
            "init_report": report,
            "timesteps": int(model.num_timesteps),
            "seconds": time.perf_counter() - started,
        }
    )
    card = ModelCard(
        kind="policy",
        spec=net.spec,
        trained_on={
            "env": "sim2real/TrackDriving-v1",
            "env_config": config.env.model_dump(mode="json"),
            "timesteps": int(model.num_timesteps),
            "seeds": list(range(config.seed, config.seed + config.n_envs)),
        },
        randomization={"spec": config.env.randomization, "strength": config.env.strength},
        metrics={
            "closed_loop": {k: v for k, v in final.items() if k != "episodes_detail"},
            "frozen_stages": list(_frozen_stage_names(model.policy)),
            "action_output": "clip(mean, -1, 1)" if config.algorithm == "ppo" else "tanh(mean)",
        },
        code_version=code_version(),
        history=history,
    )
    checkpoint_dir = save_checkpoint(out_dir / CHECKPOINT_DIR, net, card)
    return PolicyResult(out_dir, checkpoint_dir, card, evals, report, time.perf_counter() - started)


def _frozen_stage_names(policy) -> Sequence[str]:
    extractor, _ = actor_parts(policy)
    return frozen_stages(extractor)


def _state_saver(algorithm: str, path: Path):
    """A callback (model, entry) that saves the model's resumable state to `path`."""

    def save(model, _entry) -> None:
        save_policy_state(model, algorithm, path)

    return save


def _load_sb3_zip(config: PolicyConfig, zip_path: Path, env, tb_dir: Path):
    """SB3's own `load` of `zip_path`: unpickles, so only for a zip the user vouched for."""
    from stable_baselines3 import SAC

    cls = FineTunePPO if config.algorithm == "ppo" else SAC
    model = cls.load(zip_path, env=env, device=config.device)
    model.tensorboard_log = str(tb_dir)
    return model
