"""A stable-baselines3 model's training state without pickle, for resuming policy runs.

SB3's own zip unpickles its `data` entry on load, so a run folder from someone else could run
their code. This state file holds only tensors and JSON (see `common.tensorfile`): the
weights and optimizer states of `model.get_parameters()`, SB3's extra tensors (SAC's
entropy coefficient) and the counters `learn` continues from. Everything else (spaces,
schedules, hyperparameters) is recreated from the run's config.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from sim2real.common.tensorfile import load_state, save_state

STATE_FILE = "policy_state.safetensors"
FORMAT = "sim2real-sb3-state"
VERSION = 1
COUNTERS = ("num_timesteps", "_n_updates", "_episode_num", "_current_progress_remaining")


def _variables(model) -> dict[str, torch.Tensor]:
    """SB3's non-module tensors of `model` (e.g. SAC's log_ent_coef), by name."""
    _, names = model._get_torch_save_params()
    return {name: getattr(model, name) for name in names}


def policy_state(model, algorithm: str) -> dict[str, Any]:
    """The resumable state of SB3 `model` (PPO or SAC) as nested dicts of tensors and numbers."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "algorithm": algorithm,
        "counters": {name: getattr(model, name) for name in COUNTERS},
        "parameters": model.get_parameters(),
        "variables": _variables(model),
    }


def save_policy_state(model, algorithm: str, path: str | Path) -> None:
    """Write `model`'s resumable state to `path` (atomically, no pickle)."""
    save_state(path, policy_state(model, algorithm))


def read_policy_state(path: str | Path, algorithm: str) -> dict[str, Any]:
    """The state in `path`; ValueError naming `path` when the file is not such a state or is
    another algorithm's."""
    state = load_state(path)
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"{path}: not a sim2real policy state file")
    if state.get("version") != VERSION:
        raise ValueError(f"{path}: state version {state.get('version')!r}, this reads {VERSION}")
    if state.get("algorithm") != algorithm:
        raise ValueError(
            f"{path}: a {state.get('algorithm')!r} state cannot resume a {algorithm!r} run"
        )
    return state


def load_policy_state(
    model, algorithm: str, path: str | Path, state: dict[str, Any] | None = None
) -> None:
    """Put the state in `path` (or `state`, read from it already) into SB3 `model`, built
    fresh from the same config.

    ValueError naming `path` when the file is not such a state, is another algorithm's, or
    does not fit the model."""
    state = state if state is not None else read_policy_state(path, algorithm)
    try:
        model.set_parameters(state["parameters"], exact_match=True, device=model.device)
        for name, tensor in _variables(model).items():
            with torch.no_grad():
                tensor.copy_(state["variables"][name])  # in place: optimizers hold the tensor
        for name in COUNTERS:
            setattr(model, name, state["counters"][name])
    except (KeyError, RuntimeError, ValueError, TypeError) as exc:
        raise ValueError(
            f"{path} does not fit this run's policy (same config needed): {exc}"
        ) from None
