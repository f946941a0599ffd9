"""The training loss and its metrics: a masked, weighted MSE per output (NaN targets are
frames without that label), as every training loop and report here computes it."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from sim2real.agents.model import unit_batches


def masked_sums(pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Per output: (sum of squared errors, sum of absolute errors, count), NaN targets skipped."""
    mask = ~torch.isnan(target)
    diff = torch.where(mask, pred - torch.nan_to_num(target), torch.zeros_like(pred))
    return diff.pow(2).sum(0), diff.abs().sum(0), mask.sum(0)


def masked_loss(pred: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Sum over outputs of weight * MSE over the frames that have that label."""
    sse, _, count = masked_sums(pred, target)
    return (weights * sse / count.clamp(min=1)).sum()


def loss_weights(names: Sequence[str], weights: dict[str, float]) -> torch.Tensor:
    """(L,) weights of each output's MSE in the loss, in `names` order (unlisted: 1.0)."""
    unknown = sorted(set(weights) - set(names))
    if unknown:
        raise ValueError(f"loss_weights names {unknown}, which are not outputs {list(names)}")
    return torch.tensor([float(weights.get(name, 1.0)) for name in names])


def evaluate_loss(
    model: nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor,
    names: Sequence[str],
    weights: torch.Tensor,
    device: torch.device,
    batch_size: int = 512,
    context: torch.Tensor | None = None,
) -> tuple[float, dict[str, dict[str, float]]]:
    """(weighted masked MSE, per-output metrics) of `model` in eval mode, no augmentation;
    `context` (N, C): a temporal network's inputs beside the images, row for row."""
    model.eval()
    n_out = len(names)
    sse = torch.zeros(n_out, dtype=torch.float64)
    sae = torch.zeros(n_out, dtype=torch.float64)
    count = torch.zeros(n_out, dtype=torch.float64)
    with torch.no_grad():
        for rows, x in unit_batches(images, batch_size, device):
            y = targets[rows].to(device)
            extra = () if context is None else (context[rows].to(device),)
            s, a, c = masked_sums(model(x, *extra).float(), y)
            sse += s.double().cpu()
            sae += a.double().cpu()
            count += c.double().cpu()
    metrics = metrics_from_sums(sse, sae, count, names)
    mse = sse / count.clamp(min=1)
    return float((weights.double().cpu() * mse).sum()), metrics


def tensor_metrics(
    pred: torch.Tensor, target: torch.Tensor, names: Sequence[str]
) -> dict[str, dict[str, float]]:
    """Per output of predictions (N, L) against targets (N, L) (NaN: no label): mse, rmse,
    mae, n, as `evaluate_loss` reports them."""
    sse, sae, count = (t.double() for t in masked_sums(pred.detach().float(), target.float()))
    return metrics_from_sums(sse, sae, count, names)


def metrics_from_sums(
    sse: torch.Tensor, sae: torch.Tensor, count: torch.Tensor, names: Sequence[str]
) -> dict[str, dict[str, float]]:
    """Per output from (L,) float64 sums of squared and absolute errors and label counts:
    mse, rmse, mae, n."""
    mse = sse / count.clamp(min=1)
    return {
        name: {
            "mse": float(mse[i]),
            "rmse": float(mse[i].sqrt()),
            "mae": float(sae[i] / max(float(count[i]), 1.0)),
            "n": int(count[i]),
        }
        for i, name in enumerate(names)
    }
