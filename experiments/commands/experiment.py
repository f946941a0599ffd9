"""`sim2real experiment CONFIG --out DIR`: run (or continue) a declared grid of cached cells."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sim2real.experiments.grid import Executor


def resolve_config(name: str) -> Path:
    """A config file path, or the name of a packaged config (e.g. "transfer_gap")."""
    from sim2real.experiments.study import packaged_config

    path = Path(name).expanduser()
    if path.is_file():
        return path
    if path.suffix == "" and "/" not in name:
        return packaged_config(name)
    raise FileNotFoundError(f"{name}: no such config file (or packaged config name)")


def print_summary(run, seconds: float | None = None) -> int:
    """Print the report's location and headline; exit status 1 when cells failed."""
    results = json.loads(run.report["results"].read_text()) if run.report else {}
    head = results.get("headline", {}).get("sentence")
    done = f" in {seconds:.0f} s" if seconds is not None else ""
    print(
        f"{len(run.outcomes)} cells ({len(run.computed)} computed now, "
        f"{len(run.cached)} cached){done}"
    )
    if head:
        print(f"headline: {head}")
    for path in run.report.values():
        print(f"wrote {path}")
    for failure in run.failures:
        print(f"FAILED {failure.cell.label}: {failure.error}")
    return 1 if run.failures else 0


def run_with_executor(args: argparse.Namespace, run: Callable[[Executor | None], Any]) -> int:
    """`run(executor)` with the executor the options ask for (None: local), closed even when
    planning fails before the study closes it; then the summary. Exit status as print_summary."""
    from sim2real.experiments.ray_executor import executor_from_args

    executor = executor_from_args(args)
    started = time.perf_counter()
    try:
        result = run(executor)
    finally:
        if executor is not None:
            executor.close()
    return print_summary(result, time.perf_counter() - started)


def handler(args: argparse.Namespace) -> int:
    from sim2real.experiments.config_options import config_from_args
    from sim2real.experiments.study import StudyConfig, run_study

    config = config_from_args(StudyConfig, args, resolve_config(args.config))
    return run_with_executor(args, lambda executor: run_study(config, args.out, executor=executor))


def register(subparsers: argparse._SubParsersAction) -> None:
    from sim2real.experiments.config_options import add_set_option, add_shortcut
    from sim2real.experiments.ray_executor import add_executor_arguments

    parser = subparsers.add_parser(
        "experiment",
        help="run a declared grid (e.g. the transfer-gap study) with cached cells",
        description="Runs every cell of the study CONFIG (a YAML file, or a packaged name: "
        "transfer_gap, quickstart) that is not finished yet in OUT/cells, then writes "
        "OUT/report.md, OUT/report.html and OUT/results.json. Rerun the same command to "
        "continue an interrupted study.",
    )
    parser.add_argument("config", help="study YAML, or a packaged config name")
    parser.add_argument("--out", required=True, type=Path, help="study folder")
    add_shortcut(parser, "--real", "real_data", nargs="+", metavar="TUB", help="real tubs")
    add_shortcut(
        parser, "--policy", "policy_checkpoint", metavar="CHECKPOINT", help="policy checkpoint"
    )
    add_shortcut(
        parser, "--num-threads", "runtime.num_threads", type=int, help="torch CPU threads per cell"
    )
    add_shortcut(parser, "--device", "runtime.device", help="training device (auto, cpu, cuda)")
    add_shortcut(
        parser,
        "--no-progress",
        "runtime.progress",
        convert=lambda _: False,
        action="store_true",
        help="no progress bars",
    )
    add_executor_arguments(parser)
    add_set_option(parser)
    parser.set_defaults(func=handler)
