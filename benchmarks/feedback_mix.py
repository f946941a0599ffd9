"""A copy of a checkpoint whose steering output also feeds back its own cte and heading
predictions: steering' = steering + k_cte * cte + k_heading * heading_error, folded into the
last linear layer (so ONNX, the pilot and every loader see an ordinary network).

    python benchmarks/feedback_mix.py CHECKPOINT K_CTE K_HEADING OUT

Issue 20's probe: on the selection tracks the shipped network's steering error is mostly slow
(a bias held over seconds), and a least-squares fit of the expert's steering on the network's
three outputs puts weight ~1 on the predicted cte and heading. Adding them is a stronger,
Stanley-like pull back to the centre line; k is chosen on selection seeds (20000..).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from sim2real.agents.calibration import output_layer
from sim2real.agents.checkpoint import load_checkpoint, save_checkpoint
from sim2real.agents.shipped import checkpoint_reference

STEERING, CTE, HEADING = "user/angle", "sim/cte", "sim/heading_error"


def feedback_mix(checkpoint: str, k_cte: float, k_heading: float, out: Path) -> None:
    """Write `checkpoint` with steering + k_cte * cte + k_heading * heading_error to `out`.
    ValueError / KeyError / FileNotFoundError (one line) before anything is written."""
    model, card = load_checkpoint(checkpoint)
    last = output_layer(model, f"{checkpoint}: mixing outputs")
    s, c, h = (model.output_index(name) for name in (STEERING, CTE, HEADING))
    with torch.no_grad():
        weight, bias = last.weight.clone(), last.bias.clone()
        last.weight[s] = weight[s] + k_cte * weight[c] + k_heading * weight[h]
        last.bias[s] = bias[s] + k_cte * bias[c] + k_heading * bias[h]
    card.history = [
        *card.history,
        {
            "step": "steering feedback mix",
            "from": checkpoint_reference(checkpoint),
            "k_cte": k_cte,
            "k_heading": k_heading,
        },
    ]
    save_checkpoint(out, model, card)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="folder or shipped name")
    parser.add_argument("k_cte", type=float, help="steering units per metre of predicted cte")
    parser.add_argument("k_heading", type=float, help="steering units per radian")
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    try:
        feedback_mix(args.checkpoint, args.k_cte, args.k_heading, args.out)
    except (ValueError, KeyError, FileNotFoundError) as exc:
        raise SystemExit(f"error: {exc.args[0] if exc.args else exc}") from None
    print(f"{args.out}: steering + {args.k_cte:g} cte + {args.k_heading:g} heading")


if __name__ == "__main__":
    main()
