"""Which records each command's data path serves, part by part, as JSON: run it with this
version and with an earlier one on the import path, and diff the two files to show that a
change to the data path kept the same frames. Run by hand.

    python benchmarks/compare_data_path.py OUT.json [--data TUB] [--frames 64 200]

It handles the API before `open_training_data` (`open_real_data`, evaluate's
`DEFAULT_SPLIT`) and after it. To run an earlier commit's code without installing it::

    git archive REV | tar -x -C /tmp/old
    mkdir -p /tmp/oldpkg/sim2real
    for d in common envs agents transfer experiments; do
      ln -s /tmp/old/$d /tmp/oldpkg/sim2real/$d
    done
    PYTHONPATH=/tmp/oldpkg python benchmarks/compare_data_path.py old.json

Pretraining here reads a real tub as if it were sim (only the split and subsample matter);
its outputs are steering and throttle. Frames are decoded (into --cache) as the commands do.
"""

from __future__ import annotations

import argparse
import json

from sim2real.agents.model import ModelSpec
from sim2real.agents.pretrain import PretrainConfig
from sim2real.experiments.pretraining import open_sim_data
from sim2real.transfer import finetune as ft
from sim2real.transfer.datasets import open_records
from sim2real.transfer.sample_data import sample_path


def runs(records) -> list[list[int]]:
    """[[first, last], ...] contiguous runs of (session, record index)."""
    out: list[list] = []
    for r in records:
        if out and out[-1][0] == r.session and r.index == out[-1][2] + 1:
            out[-1][2] = r.index
        else:
            out.append([r.session, r.index, r.index])
    return out


def finetune_parts(cfg) -> dict:
    pre = ModelSpec().preprocessing
    if hasattr(ft, "open_real_data"):  # before open_training_data
        data = ft.open_real_data(cfg, cfg.adapter.outputs, pre, progress=False)
    else:
        data = ft.open_finetune_data(cfg, pre, progress=False)
    frames = dict(data.trained_on["frames"])
    frames["test"] = frames.pop("test_held_out", frames.get("test"))
    return {"train": runs(data.train.records), "val": runs(data.val.records), "frames": frames}


def evaluate_parts(records) -> dict:
    try:  # before SplitSpec
        from sim2real.transfer.evaluate import DEFAULT_SPLIT as S
        from sim2real.transfer.splits import time_block_split

        parts = time_block_split(
            records, S["val_fraction"], test_fraction=S["test_fraction"], gap=S["gap"]
        )
    except ImportError:
        from sim2real.agents.checkpoint import read_card
        from sim2real.transfer.evaluate import card_split
        from sim2real.transfer.splits import split_records

        parts = split_records(records, card_split(read_card("pilotnet-recipe")), seed=0)
    return {"train": runs(parts.train), "val": runs(parts.val), "test": runs(parts.test)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out")
    parser.add_argument("--data", default=str(sample_path()))
    parser.add_argument("--frames", type=int, nargs="*", default=[None, 64, 200])
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 3])
    parser.add_argument("--max-frames", type=int, default=300)
    parser.add_argument("--cache", default="/tmp/compare_data_path_cache")
    args = parser.parse_args()
    result: dict = {"data": args.data}
    records = open_records([args.data]).records
    result["records"], result["sessions"] = len(records), len({r.session for r in records})
    for frames in args.frames:
        for seed in args.seeds:
            cfg = ft.FinetuneConfig(
                data=[args.data],
                frames=frames,
                cache_dir=args.cache,
                train={"seed": seed, "progress": False},
            )
            result[f"finetune frames={frames} seed={seed}"] = finetune_parts(cfg)
    outputs = {"outputs": ["user/angle", "user/throttle"]}
    pretrain = [
        {"max_frames": args.max_frames, "split_gap": 2, "val_fraction": 0.2},
        {"split_gap": 20},
    ]
    if result["sessions"] > 1:
        pretrain.append({"max_frames": args.max_frames, "split": "episodes", "val_fraction": 0.5})
    for kw in pretrain:  # the flat keys load in both versions
        cfg = PretrainConfig(
            data=[args.data],
            cache_dir=args.cache,
            train={"seed": 1, "progress": False},
            model=outputs,
            **kw,
        )
        data = open_sim_data(cfg)
        frames = dict(data.trained_on["frames"])
        result[f"pretrain {kw}"] = {
            "train": runs(data.train.records),
            "val": runs(data.val.records),
            "frames": frames,
        }
    result["evaluate"] = evaluate_parts(records)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
