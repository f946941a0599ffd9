"""`sim2real quickstart [--out DIR]`: the whole pipeline on the shipped sample, ~10 minutes."""

from __future__ import annotations

import argparse
from pathlib import Path


def handler(args: argparse.Namespace) -> int:
    from sim2real.experiments.commands.experiment import run_with_executor
    from sim2real.experiments.quickstart import run_quickstart

    return run_with_executor(
        args, lambda executor: run_quickstart(args.out, config_path=args.config, executor=executor)
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    from sim2real.experiments.ray_executor import add_executor_arguments

    parser = subparsers.add_parser(
        "quickstart",
        help="simulate, pretrain, fine-tune, evaluate and report on the shipped sample",
        description="The whole sim-to-real pipeline on the real sample shipped with sim2real, "
        "reduced to about 10 minutes on a 2-core CPU: sim recordings, pretraining with and "
        "without randomization, domain gap, fine-tuning at a few sizes vs scratch, "
        "evaluation on the held-out later block, report. Resumable: rerun to continue.",
    )
    parser.add_argument(
        "--out", type=Path, default=Path("runs/quickstart"), help="folder (runs/quickstart)"
    )
    parser.add_argument("--config", type=Path, help="another study YAML instead of quickstart")
    add_executor_arguments(parser)
    parser.set_defaults(func=handler)
