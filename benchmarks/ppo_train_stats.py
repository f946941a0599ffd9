"""What a PPO run's updates looked like, from its TensorBoard log: the critic's explained
variance (during and after the value warm-up), the approximate KL per update, the action std
and the training episodes' return, one line per run.

    python benchmarks/ppo_train_stats.py RUN [RUN ...] [--warmup-steps 4096]

RUN is a `sim2real train-policy` run folder (its tb/ holds SB3's scalars). The explained
variance is 1 - Var(returns - values) / Var(returns) over each rollout: near 0, the critic
predicts the return no better than its mean, and PPO's advantages are mostly noise.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def scalars(run: Path) -> dict[str, list[tuple[int, float]]]:
    """{tag: [(step, value), ...]} of every scalar in run/tb (all event files, by step)."""
    out: dict[str, list[tuple[int, float]]] = {}
    for path in sorted((run / "tb").rglob("events.out.tfevents.*")):
        events = EventAccumulator(str(path), size_guidance={"scalars": 0})
        events.Reload()
        for tag in events.Tags()["scalars"]:
            out.setdefault(tag, []).extend((e.step, e.value) for e in events.Scalars(tag))
    return {tag: sorted(values) for tag, values in out.items()}


def summary(run: Path, warmup_steps: int) -> dict[str, float]:
    """Medians (and ranges) of the update statistics of `run`, split at `warmup_steps`."""
    data = scalars(run)

    def values(tag: str, after: bool | None = None) -> np.ndarray:
        rows = data.get(tag, [])
        if after is not None:
            rows = [(s, v) for s, v in rows if (s > warmup_steps) == after]
        return np.array([v for _, v in rows], float)

    ev_warm, ev_after = (
        values("train/explained_variance", False),
        values("train/explained_variance", True),
    )
    kl = values("train/approx_kl", True)
    std = values("train/std")
    return {
        "updates": float(len(values("train/explained_variance"))),
        "ev_warmup_last": float(ev_warm[-1]) if ev_warm.size else float("nan"),
        "ev_after_median": float(np.median(ev_after)) if ev_after.size else float("nan"),
        "ev_after_q25": float(np.quantile(ev_after, 0.25)) if ev_after.size else float("nan"),
        "ev_after_q75": float(np.quantile(ev_after, 0.75)) if ev_after.size else float("nan"),
        "kl_median": float(np.median(kl)) if kl.size else float("nan"),
        "kl_max": float(kl.max()) if kl.size else float("nan"),
        "std_last": float(std[-1]) if std.size else float("nan"),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--warmup-steps", type=int, default=4096)
    args = parser.parse_args(argv)
    for run in args.runs:
        if not any((run / "tb").rglob("events.out.tfevents.*")):
            raise SystemExit(f"error: {run}: no TensorBoard events under {run / 'tb'}")
        stats = summary(run, args.warmup_steps)
        print(run, " ".join(f"{k}={v:.3g}" for k, v in stats.items()))


if __name__ == "__main__":
    main()
