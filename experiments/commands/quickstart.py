"""`sim2real quickstart [--out DIR]`: the whole pipeline on the shipped sample, ~10 minutes."""

from __future__ import annotations

import argparse
from pathlib import Path


def handler(args: argparse.Namespace) -> int:
    from sim2real.experiments.commands.experiment import run_with_executor
    from sim2real.experiments.quickstart import run_quickstart

    return run_with_executor(
        args,
        lambda executor: run_quickstart(
            args.out, config_path=args.config, pretrain=args.pretrain, executor=executor
        ),
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    from sim2real.experiments.ray_executor import add_executor_arguments

    parser = subparsers.add_parser(
        "quickstart",
        help="fine-tune the shipped network on the shipped sample, vs scratch, and report",
        description="The sim-to-real pipeline on the real sample shipped with sim2real, in "
        "about 90 s on a 2-core CPU: the shipped sim-pretrained network fine-tuned at a "
        "few sizes vs the same architecture from scratch, a small sim recording for the "
        "domain gap, evaluation on the held-out later block, report. --pretrain pretrains a "
        "small network of its own (with and without randomization) instead. Resumable: "
        "rerun to continue.",
    )
    parser.add_argument(
        "--out", type=Path, default=Path("runs/quickstart"), help="folder (runs/quickstart)"
    )
    parser.add_argument(
        "--pretrain",
        action="store_true",
        help="pretrain a small network first (quickstart_pretrain.yaml) instead of starting "
        "from the shipped one",
    )
    parser.add_argument("--config", type=Path, help="another study YAML instead of quickstart")
    add_executor_arguments(parser)
    parser.set_defaults(func=handler)
