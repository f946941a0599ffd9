"""Running a study: its cells stage by stage through an `Executor`, then its report.

The recommended freeze depth needs the measured domain gap, so `run_study` runs the
recordings and starts, then pretraining, then the gaps, and only then plans and runs the
fine-tuning and evaluation cells. Finished cells are reused from the cell store.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sim2real.experiments.grid import Cell, CellOutcome, CellStore, Executor, LocalExecutor
from sim2real.experiments.grid import run_cells as _run_cells
from sim2real.experiments.study_config import StudyConfig
from sim2real.experiments.study_plan import MAIN, Plan, plan_runs, plan_upstream


@dataclass
class StudyRun:
    """What a study did: its plan, every cell's outcome, and where the report is."""

    plan: Plan
    outcomes: dict[str, CellOutcome]
    out: Path
    report: dict[str, Path] = field(default_factory=dict)

    @property
    def failures(self) -> list[CellOutcome]:
        return [o for o in self.outcomes.values() if not o.ok]

    @property
    def computed(self) -> list[CellOutcome]:
        """Cells computed in this run (not read from the cache)."""
        return [o for o in self.outcomes.values() if o.ok and not o.cached]

    @property
    def cached(self) -> list[CellOutcome]:
        """Cells read from the cache (finished by an earlier run)."""
        return [o for o in self.outcomes.values() if o.cached]


def run_study(
    config: StudyConfig,
    out: str | Path,
    *,
    executor: Executor | None = None,
    log_line: Callable[[str], None] = print,
    report: bool = True,
) -> StudyRun:
    """Run (or continue) the study `config` in `out` and write its report there.

    Finished cells under ``out/cells`` are reused, so a rerun after an interruption
    continues where it stopped. Failed cells are listed in the report and in
    `StudyRun.failures`; cells downstream of a failure are skipped.
    """
    from sim2real.common.runs import describe_run

    out = Path(out)
    executor = executor or LocalExecutor()
    describe_run(out, config)
    store = CellStore(out)
    plan = plan_upstream(config, out)
    outcomes: dict[str, CellOutcome] = {}

    def stage(name: str, cells: list[Cell]) -> None:
        log_line(f"== {name}: {len(cells)} cell(s)")
        outcomes.update(_run_cells(cells, store, executor, log=log_line))

    try:
        starts = plan.starts.values()
        stage(
            "recordings and starting points",
            [
                plan.sim_test,
                *(s.sim for s in starts),
                *(s.cell for s in starts if s.cell.kind != "pretrain"),
            ],
        )
        # the pretrain cells depend on the recordings: run them once these exist
        stage("pretraining", [s.cell for s in starts if s.cell.kind == "pretrain"])
        stage("domain gap", [s.gap for s in starts if s.gap is not None])
        gaps = {
            name: outcomes[s.gap.id].result
            for name, s in plan.starts.items()
            if s.gap is not None and outcomes[s.gap.id].ok
        }
        if MAIN not in gaps:
            raise RuntimeError(
                "the main start's domain gap did not finish, so the recommended freeze is "
                f"unknown: {outcomes[plan.starts[MAIN].gap.id].error}"
            )
        plan.runs = plan_runs(plan, gaps)
        stage("fine-tuning and evaluation", plan.runs)
        from sim2real.experiments.predictions_cell import predictions_cell

        predictions = predictions_cell(plan, outcomes)
        stage("predictions for the report", [predictions] if predictions else [])
    finally:
        executor.close()
    run = StudyRun(plan, outcomes, out)
    if report:
        from sim2real.experiments.study_results import report_run

        run.report = report_run(run)
    return run
