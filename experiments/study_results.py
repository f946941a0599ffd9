"""What a study run measured, as results.json: the study side of the report.

`collect_results` flattens a `StudyRun` (its plan and every cell's outcome) into one record
per run cell and derives the tables with `sim2real.experiments.report_results`; `report_run`
writes results.json and then the report, which reads nothing but results.json and the files
the study's cells wrote (`sim2real.experiments.report.write_report`). This module is the only
one of the report's that knows the study's plan; the report modules never import the study.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sim2real.common.io import atomic_write_json
from sim2real.experiments import report_results as rr

if TYPE_CHECKING:
    from sim2real.experiments.grid import CellOutcome
    from sim2real.experiments.study_plan import Plan
    from sim2real.experiments.study_run import StudyRun

PREDICTIONS_KIND = "predictions"
"""the cell kind of `sim2real.experiments.predictions_cell`"""


def run_records(plan: Plan, outcomes: dict[str, CellOutcome]) -> list[dict[str, Any]]:
    """One flat dict per finished run cell: start, mode, frames, freeze, seed, metrics."""
    from sim2real.experiments.study_plan import frames_count

    start_of = {s.cell.id: name for name, s in plan.starts.items()}
    records = []
    for cell in plan.runs:
        outcome = outcomes.get(cell.id)
        if outcome is None or not outcome.ok:
            continue
        config, result = cell.config, outcome.result
        zero = config["mode"] == "zero_shot"
        frames = None if zero else config["frames"]
        records.append(
            {
                "id": cell.id,
                "label": cell.label,
                "start": start_of[cell.dep("start")],
                "mode": config["mode"],
                "frames": 0 if zero else frames_count(frames, plan.n_train),
                "frames_requested": 0 if zero else ("all" if frames is None else frames),
                "frames_used": result.get("frames_used", 0),
                "freeze": config.get("freeze"),
                "ladder_pick": result.get("ladder_pick"),
                "seed": config.get("seed"),
                "real": result["real"]["metrics"],
                "real_calibrated": result["real"]["calibrated"]["metrics"],
                "sim": result["sim"]["metrics"],
                "sim_calibrated": result["sim"]["calibrated"]["metrics"],
                "closed_loop": (result.get("closed_loop") or {}).get("summary"),
                "checkpoint": result["checkpoint"],
                "seconds": outcome.seconds,
                "cached": outcome.cached,
            }
        )
    return records


def _starts(run: StudyRun, frames_grid: list[int]) -> dict[str, Any]:
    """Per start: kind, strength, cell, checkpoint, pretraining scores, gap and the
    recommended freeze at every N of the grid."""
    from sim2real.experiments.domain_gap import recommend_freeze

    rule = run.plan.config.gap.rule
    starts: dict[str, Any] = {}
    for name, start in run.plan.starts.items():
        entry: dict[str, Any] = {
            "kind": start.kind,
            "strength": start.strength,
            "cell": start.cell.id,
        }
        if start.kind == "checkpoint":
            entry["source"] = start.cell.config["path"]
        outcome = run.outcomes.get(start.cell.id)
        if outcome is not None and outcome.ok:
            entry["checkpoint"] = outcome.result.get("checkpoint")
            if "metrics" in outcome.result:
                entry["pretrain_val"] = outcome.result["metrics"].get("val")
        gap = run.outcomes.get(start.gap.id) if start.gap is not None else None
        if gap is not None and gap.ok:
            entry["gap"] = gap.result["stages"]
            entry["gap_frames"] = gap.result["frames"]
            entry["recommendation"] = {
                str(n): recommend_freeze(n, gap.result["stages"], rule).to_dict()
                for n in frames_grid
            }
        starts[name] = entry
    return starts


def predictions(run: StudyRun) -> dict[str, Any] | None:
    """The result of the study's predictions cell (frame strip, drive clips), if it ran."""
    return next(
        (
            {**o.result, "cell": o.cell.id}
            for o in run.outcomes.values()
            if o.cell.kind == PREDICTIONS_KIND and o.ok
        ),
        None,
    )


def collect_results(run: StudyRun) -> dict[str, Any]:
    """The JSON-ready results of a study (what results.json holds)."""
    from sim2real.experiments.study_config import LADDER_ARMS
    from sim2real.experiments.study_plan import frame_counts

    plan, config = run.plan, run.plan.config
    grid = config.grid
    records = run_records(plan, run.outcomes)
    frames_grid = sorted(
        frame_counts(
            [*grid.frames, *grid.freeze_sweep.frames, *grid.other_starts_frames], plan.n_train
        )
    )
    starts = _starts(run, frames_grid)
    main_rec = {int(n): a["freeze"] for n, a in starts["main"].get("recommendation", {}).items()}
    curves = rr.learning_curves(records, main_rec, LADDER_ARMS)
    sweeps, checks = rr.freeze_sweeps(
        records,
        frame_counts(grid.freeze_sweep.frames, plan.n_train),
        grid.freeze_sweep.seeds or grid.seeds,
        main_rec,
    )
    if checks:
        starts["main"]["sweep_check"] = checks
    pretrained = list(config.pretrain.strengths)
    return rr.json_clean(
        {
            "name": config.name,
            "written_utc": datetime.now(UTC).isoformat(timespec="seconds"),
            "study": {
                "start_checkpoint": config.start_checkpoint,
                "architecture": config.pretrain.model.architecture,
                "pretrained_strengths": pretrained[1:] if config.start_checkpoint else pretrained,
                "sim_frames": config.sim.frames,
                "seeds": list(grid.seeds),
            },
            "real": {
                "paths": plan.real_paths,
                "train_frames_available": plan.n_train,
                "split": {
                    "kind": "time_block (train | val | test per recording)",
                    **plan.real["split"],
                },
            },
            "stage_names": plan.stage_names,
            "starts": starts,
            "zero_shot": rr.zero_shot(records, plan.starts),
            "curves": curves,
            "headline": rr.headline(curves, plan.n_train),
            "freeze_sweep": sweeps,
            "other_starts": rr.other_starts(records, starts),
            "runs": records,
            "predictions": predictions(run),
            "notes": plan.notes,
            "failures": [
                {"cell": o.cell.id, "label": o.cell.label, "error": o.error} for o in run.failures
            ],
            "cells": {
                "total": len(run.outcomes),
                "computed_now": len(run.computed),
                "cached": len(run.cached),
            },
        }
    )


def report_run(run: StudyRun) -> dict[str, Path]:
    """Write `run`'s results.json, then the report made from it (paths by role)."""
    from sim2real.experiments.report import write_report

    atomic_write_json(run.out / rr.RESULTS_FILE, collect_results(run))
    return write_report(run.out)
