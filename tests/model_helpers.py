"""Helpers shared by several test modules (importable: pytest puts tests/ on sys.path)."""

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import torch

from sim2real.agents.checkpoint import ModelCard, save_checkpoint
from sim2real.agents.model import DrivingNet, ModelSpec
from sim2real.agents.training import TrainConfig
from sim2real.transfer.finetune import FinetuneConfig
from sim2real.transfer.sample_data import sample_path


def set_batchnorm_statistics(model: torch.nn.Module) -> torch.nn.Module:
    """`model` with non-trivial BatchNorm running statistics (drawn from torch's global
    generator, in place), so that exporting, freezing or re-estimating them shows."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 2.0)
    return model


def save_parent(folder: Path, trained_on: dict, history: list | None = None) -> Path:
    """A small 'pretrained' checkpoint in `folder`: sim-only heads (steering, throttle, cte),
    hidden 16, non-trivial BatchNorm statistics, seed 0; its card says `trained_on`."""
    spec = ModelSpec(outputs=["user/angle", "user/throttle", "sim/cte"], hidden=16)
    torch.manual_seed(0)
    model = set_batchnorm_statistics(DrivingNet(spec))
    history = [{"step": "pretrain"}] if history is None else history
    save_checkpoint(folder, model, ModelCard(spec=spec, trained_on=trained_on, history=history))
    return folder


def finetune_config(parent: Path, cache_dir: Path, frames: int, **changes) -> FinetuneConfig:
    """A fast fine-tuning config on the shipped sample: 2 epochs, no early stop, 1 thread."""
    train = TrainConfig(
        epochs=2, batch_size=16, patience=0, progress=False, tensorboard=False, num_threads=1
    )
    base = dict(
        checkpoint=str(parent),
        data=[str(sample_path())],
        frames=frames,
        train=train,
        cache_dir=str(cache_dir),
    )
    return FinetuneConfig(**{**base, **changes})


def load_benchmark(name: str) -> ModuleType:
    """`benchmarks/NAME.py` (a script, not a package module) imported as module `name`; it is
    registered in sys.modules, where dataclasses look their module up by name."""
    path = Path(__file__).resolve().parent.parent / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
