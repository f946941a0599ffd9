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

from sim2real.agents.checkpoint import load_checkpoint, save_checkpoint
from sim2real.agents.shipped import checkpoint_reference

STEERING, CTE, HEADING = "user/angle", "sim/cte", "sim/heading_error"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="folder or shipped name")
    parser.add_argument("k_cte", type=float, help="steering units per metre of predicted cte")
    parser.add_argument("k_heading", type=float, help="steering units per radian")
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    model, card = load_checkpoint(args.checkpoint)
    if model.spec.output_activation != "identity":
        raise SystemExit("error: mixing outputs needs output_activation 'identity'")
    last = model.head[-1]
    s, c, h = (model.output_index(name) for name in (STEERING, CTE, HEADING))
    with torch.no_grad():
        weight, bias = last.weight.clone(), last.bias.clone()
        last.weight[s] = weight[s] + args.k_cte * weight[c] + args.k_heading * weight[h]
        last.bias[s] = bias[s] + args.k_cte * bias[c] + args.k_heading * bias[h]
    card.history = [
        *card.history,
        {
            "step": "steering feedback mix",
            "from": checkpoint_reference(args.checkpoint),
            "k_cte": args.k_cte,
            "k_heading": args.k_heading,
        },
    ]
    save_checkpoint(args.out, model, card)
    print(f"{args.out}: steering + {args.k_cte:g} cte + {args.k_heading:g} heading")


if __name__ == "__main__":
    main()
