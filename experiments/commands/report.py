"""`sim2real report OUT`: redraw a study's report from its results.json (no network runs)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report",
        help="redraw a study's report.md and report.html from its results.json",
        description="Writes OUT/report.md, OUT/report.html and the figures in OUT/report/ "
        "from OUT/results.json and the files the study's cells wrote (the predictions "
        "cell's frame strip and drive clips), as `sim2real experiment` and `sim2real "
        "quickstart` do at their end. Loads no checkpoint: it takes seconds.",
    )
    parser.add_argument("study", type=Path, help="the study's folder (its --out)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sim2real.experiments.report import write_report

    paths = write_report(args.study)
    for role in ("markdown", "html"):
        print(f"wrote {paths[role]}")
    return 0
