"""Helpers shared by several test modules (importable: pytest puts tests/ on sys.path)."""

import torch


def set_batchnorm_statistics(model: torch.nn.Module) -> torch.nn.Module:
    """`model` with non-trivial BatchNorm running statistics (drawn from torch's global
    generator, in place), so that exporting, freezing or re-estimating them shows."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 2.0)
    return model
