"""The study report: results.json, report.md and a self-contained report.html.

Everything in it is computed from the cells' results: aggregates across seeds (mean and a
95% t interval; the mean of the cells' block-bootstrap 95% intervals beside it), the
learning curves, the freeze-depth sweep, per-stage domain gaps (GAP's measures), sim-vs-real
errors of the same networks, randomization vs none, a strip of real test frames with
predicted and true steering, and the headline ("with N real frames, transfer matches
scratch with M frames"), found by interpolating the scratch curve in log N.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sim2real.common.io import atomic_write_json, atomic_write_text
from sim2real.experiments import plots

if TYPE_CHECKING:
    from sim2real.experiments.study import StudyRun

METRICS = ("steering_r2", "steering_mae", "steering_pearson_r")
REPORT_DIR = "report"


# ----------------------------------------------------------------------------------------
# flatten and aggregate


def run_records(run: StudyRun) -> list[dict[str, Any]]:
    """One flat dict per finished run cell: start, mode, frames, freeze, seed, metrics."""
    from sim2real.experiments.study import frames_count

    plan = run.plan
    start_of = {s.cell.id: name for name, s in plan.starts.items()}
    records = []
    for cell in plan.runs:
        outcome = run.outcomes.get(cell.id)
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


def _finite(value: Any) -> float:
    return np.nan if value is None else float(value)


def aggregate(records: Sequence[dict[str, Any]], part: str = "real") -> dict[str, Any]:
    """Across seeds, per metric: mean, 95% t interval (seed_low/high; NaN for one seed) and
    the mean of the cells' bootstrap intervals (boot_low/high). JSON-ready (NaN -> None)."""
    from scipy import stats

    out: dict[str, Any] = {"n_seeds": len(records)}
    for metric in METRICS:
        cells = [r[part].get(metric) or {} for r in records]
        values = np.array([_finite(c.get("value")) for c in cells])
        values = values[np.isfinite(values)]
        entry = {"mean": None, "seed_low": None, "seed_high": None}
        if values.size:
            mean = float(values.mean())
            entry["mean"] = mean
            if values.size >= 2:
                half = (
                    stats.t.ppf(0.975, values.size - 1)
                    * values.std(ddof=1)
                    / math.sqrt(values.size)
                )
                entry["seed_low"], entry["seed_high"] = mean - half, mean + half
        lows = [_finite(c.get("low")) for c in cells]
        highs = [_finite(c.get("high")) for c in cells]
        entry["boot_low"] = float(np.nanmean(lows)) if np.isfinite(lows).any() else None
        entry["boot_high"] = float(np.nanmean(highs)) if np.isfinite(highs).any() else None
        out[metric] = entry
    return out


def _nan(entry: dict[str, Any]) -> dict[str, Any]:
    """Copy for plotting with None as NaN."""
    return {
        k: (
            {kk: (np.nan if vv is None else vv) for kk, vv in v.items()}
            if isinstance(v, dict)
            else v
        )
        for k, v in entry.items()
    }


def learning_curves(records, recommended: dict[int, int]) -> dict[str, list[dict[str, Any]]]:
    """Per arm, one point per N (> 0) with the across-seed aggregate of the real metrics
    (ladder arms only where the grid ran them; their "freeze" says what auto picked)."""
    from sim2real.experiments.study import LADDER_ARMS

    arms = {
        "transfer_recommended": lambda r: (
            r["mode"] == "transfer"
            and r["start"] == "main"
            and r["freeze"] == recommended.get(r["frames"])
        ),
        "transfer_full": lambda r: (
            r["mode"] == "transfer" and r["start"] == "main" and r["freeze"] == 0
        ),
        "scratch": lambda r: r["mode"] == "scratch",
    }
    for arm, freeze in LADDER_ARMS.items():
        arms[arm] = lambda r, freeze=freeze: (
            r["mode"] == "transfer" and r["start"] == "main" and r["freeze"] == freeze
        )
    curves: dict[str, list[dict[str, Any]]] = {}
    for arm, keep in arms.items():
        chosen = [r for r in records if keep(r)]
        points = []
        for frames in sorted({r["frames"] for r in chosen}):
            group = [r for r in chosen if r["frames"] == frames]
            point = {"frames": frames, **aggregate(group)}
            if arm == "transfer_recommended":
                point["freeze"] = recommended.get(frames)
            elif arm in LADDER_ARMS:  # what auto picked, per seed
                picks = [r["ladder_pick"] for r in group if r.get("ladder_pick")]
                point["freeze"] = "/".join(picks) if picks else LADDER_ARMS[arm]
            points.append(point)
        if points or arm not in LADDER_ARMS:
            curves[arm] = points
    return curves


def matching_scratch_frames(value: float, scratch: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Frames scratch needs to reach steering R^2 `value`, interpolated in log N.

    Returns {"frames": M or None, "relation": "=", "<=" (scratch beats it at its smallest
    N) or ">" (scratch never reaches it: M is then its largest N)}.
    """
    points = [(p["frames"], p["steering_r2"]["mean"]) for p in scratch]
    points = [(n, v) for n, v in points if v is not None and n > 0]
    if not points:
        return {"frames": None, "relation": "none"}
    if points[0][1] >= value:
        return {"frames": points[0][0], "relation": "<="}
    for (n0, v0), (n1, v1) in zip(points, points[1:], strict=False):
        if v1 >= value:
            t = (value - v0) / (v1 - v0) if v1 != v0 else 1.0
            m = math.exp(math.log(n0) + t * (math.log(n1) - math.log(n0)))
            return {"frames": round(m), "relation": "="}
    return {"frames": points[-1][0], "relation": ">"}


def headline(curves: dict[str, list[dict[str, Any]]], n_train: int) -> dict[str, Any]:
    """Transfer (recommended freeze) vs scratch: the equivalent scratch frames per N, and
    the sentence for the smallest N (100 when the grid has it)."""
    transfer, scratch = curves.get("transfer_recommended", []), curves.get("scratch", [])
    table = []
    for point in transfer:
        value = point["steering_r2"]["mean"]
        if value is None:
            continue
        match = matching_scratch_frames(value, scratch)
        table.append(
            {
                "frames": point["frames"],
                "transfer_r2": value,
                **{"scratch_frames": match["frames"], "relation": match["relation"]},
            }
        )
    out: dict[str, Any] = {"table": table, "sentence": None}
    if not table:
        out["sentence"] = "no transfer and scratch points to compare"
        return out
    pick = next((row for row in table if row["frames"] == 100), table[0])
    n, m, rel = pick["frames"], pick["scratch_frames"], pick["relation"]
    r2 = pick["transfer_r2"]
    if rel == "=":
        text = f"with {n} real frames, transfer (R^2 {r2:.3f}) matches scratch with ~{m} frames"
    elif rel == "<=":
        text = (
            f"with {n} real frames, transfer (R^2 {r2:.3f}) is matched by scratch already "
            f"at its smallest size ({m} frames)"
        )
    elif rel == ">":
        text = (
            f"with {n} real frames, transfer (R^2 {r2:.3f}) beats scratch at every size "
            f"tried, up to {m} frames"
        )
    else:
        text = f"with {n} real frames, transfer reaches R^2 {r2:.3f}; no scratch curve"
    out["sentence"] = text
    out["at"] = pick
    full = [p for p in scratch if p["frames"] == n_train]
    if full and full[0]["steering_r2"]["mean"] is not None:
        best = full[0]["steering_r2"]["mean"]
        out["target_transfer_reaches_scratch_all"] = {
            "transfer_frames": n,
            "transfer_r2": r2,
            "scratch_all_frames": n_train,
            "scratch_all_r2": best,
            "met": bool(r2 >= best),
        }
    return out


# ----------------------------------------------------------------------------------------
# building the report


def build_results(run: StudyRun) -> dict[str, Any]:
    """The JSON-ready results of a study (what results.json holds)."""
    from sim2real.experiments.domain_gap import recommend_freeze
    from sim2real.experiments.study import frame_counts
    from sim2real.transfer.splits import REAL_SPLIT

    plan, config = run.plan, run.plan.config
    records = run_records(run)
    starts: dict[str, Any] = {}
    grid = config.grid
    frames_grid = sorted(
        frame_counts(
            [*grid.frames, *grid.freeze_sweep.frames, *grid.other_starts_frames], plan.n_train
        )
    )
    for name, start in plan.starts.items():
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
        if start.gap is not None and start.gap.id in run.outcomes and run.outcomes[start.gap.id].ok:
            gap = run.outcomes[start.gap.id].result
            entry["gap"] = gap["stages"]
            entry["gap_frames"] = gap["frames"]
            entry["recommendation"] = {
                str(n): recommend_freeze(n, gap["stages"], config.gap.rule).to_dict()
                for n in frames_grid
            }
        starts[name] = entry
    main_rec = {int(n): a["freeze"] for n, a in starts["main"].get("recommendation", {}).items()}
    curves = learning_curves(records, main_rec)
    zero = {
        name: next(
            (
                {
                    "raw": r["real"],
                    "calibrated": r["real_calibrated"],
                    "sim": r["sim"],
                    "closed_loop": r["closed_loop"],
                }
                for r in records
                if r["mode"] == "zero_shot" and r["start"] == name
            ),
            None,
        )
        for name in plan.starts
        if name != "scratch"
    }
    sweeps: dict[str, list[dict[str, Any]]] = {}
    sweep_seeds = set(grid.freeze_sweep.seeds or grid.seeds)
    for n in sorted(frame_counts(grid.freeze_sweep.frames, plan.n_train)):
        # only the sweep's seeds, so every depth is averaged over the same seeds
        group = [
            r
            for r in records
            if r["start"] == "main"
            and r["mode"] == "transfer"
            and r["frames"] == n
            and r["seed"] in sweep_seeds
            and not isinstance(r["freeze"], str)  # depths only, not auto / ladder rungs
        ]
        ks = sorted({r["freeze"] for r in group})
        points = [{"freeze": k, **aggregate([r for r in group if r["freeze"] == k])} for k in ks]
        if points:
            best = max(
                points,
                key=lambda p: (
                    -np.inf if p["steering_r2"]["mean"] is None else p["steering_r2"]["mean"]
                ),
            )
            sweeps[str(n)] = points
            starts["main"].setdefault("sweep_check", {})[str(n)] = {
                "recommended": main_rec.get(n),
                "best_k": best["freeze"],
                "best_r2": best["steering_r2"]["mean"],
                "recommended_r2": next(
                    (p["steering_r2"]["mean"] for p in points if p["freeze"] == main_rec.get(n)),
                    None,
                ),
            }
    others = {}
    for name in plan.starts:
        if name == "scratch":
            continue
        group = [
            r
            for r in records
            if r["start"] == name
            and r["mode"] == "transfer"
            and r["freeze"]
            == (starts[name].get("recommendation", {}).get(str(r["frames"]), {}).get("freeze"))
        ]
        others[name] = [
            {"frames": n, **aggregate([r for r in group if r["frames"] == n])}
            for n in sorted({r["frames"] for r in group})
        ]
    return {
        "name": config.name,
        "written_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "real": {
            "paths": plan.real_paths,
            "train_frames_available": plan.n_train,
            "split": {
                "kind": "time_block (train | val | test per recording)",
                **REAL_SPLIT.model_dump(exclude={"kind"}),
            },
        },
        "stage_names": plan.stage_names,
        "starts": starts,
        "zero_shot": zero,
        "curves": curves,
        "headline": headline(curves, plan.n_train),
        "freeze_sweep": sweeps,
        "other_starts": others,
        "runs": records,
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


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _interval(entry: dict[str, Any] | None) -> str:
    if not entry or entry.get("value") is None:
        return "-"
    if entry.get("low") is None:
        return _fmt(entry["value"])
    return f"{entry['value']:.3f} [{entry['low']:.3f}, {entry['high']:.3f}]"


def _agg(entry: dict[str, Any]) -> str:
    if entry.get("mean") is None:
        return "-"
    text = f"{entry['mean']:.3f}"
    if entry.get("seed_low") is not None:
        text += f" ± {(entry['seed_high'] - entry['seed_low']) / 2:.3f}"
    if entry.get("boot_low") is not None:
        text += f" [{entry['boot_low']:.3f}, {entry['boot_high']:.3f}]"
    return text


def _strip(run: StudyRun, results: dict[str, Any], path: Path) -> dict[str, Any] | None:
    """Draw real test frames with the steering of the best transfer and scratch networks at
    the largest N (and the zero-shot main network)."""
    import torch

    from sim2real.agents.checkpoint import load_checkpoint
    from sim2real.agents.model import STEERING, predict
    from sim2real.experiments.study import study_split
    from sim2real.transfer.datasets import DrivingDataset
    from sim2real.transfer.records import read_image_rgb

    records = results["runs"]
    chosen: dict[str, dict[str, Any]] = {}
    for name, mode in (("transfer", "transfer"), ("scratch", "scratch")):
        start = "main" if mode == "transfer" else "scratch"
        group = [r for r in records if r["mode"] == mode and r["start"] == start]
        if group:
            top = max(r["frames"] for r in group)
            at_top = [r for r in group if r["frames"] == top]
            best = max(at_top, key=lambda r: r["real"]["steering_r2"]["value"] or -np.inf)
            chosen[f"{name} N={top}"] = best
    zs = next((r for r in records if r["mode"] == "zero_shot" and r["start"] == "main"), None)
    if zs is not None:
        chosen["zero-shot"] = zs
    if not chosen:
        return None
    test = study_split(run.plan.real_paths).test
    n = min(run.plan.config.evaluate.strip_frames, len(test))
    picks = [test[i] for i in np.linspace(0, len(test) - 1, n).round().astype(int)]
    images = [read_image_rgb(r.image_path) for r in picks]
    truth = [r.labels.get(STEERING, float("nan")) for r in picks]
    preds: dict[str, list[float]] = {}
    for name, record in chosen.items():
        model, _ = load_checkpoint(run.out / record["checkpoint"])
        dataset = DrivingDataset(picks, model.spec.preprocessing, [STEERING], progress=False)
        with torch.no_grad():
            out = predict(model, dataset.images)
        preds[name] = [float(v) for v in out[:, model.output_index(STEERING)]]
    plots.frame_strip(images, truth, preds, path)
    return {
        "frames": [r.index for r in picks],
        "truth": truth,
        "predictions": preds,
        "networks": {k: v["id"] for k, v in chosen.items()},
    }


def _drive_clips(run: StudyRun, results: dict[str, Any], fig_dir: Path) -> list[dict[str, Any]]:
    """WebP clips of the worst and the best closed-loop episode of the zero-shot main network
    (re-driven: two episodes), or none when it did not drive."""
    from sim2real.experiments.drive_video import drive_clips

    zs = next(
        (
            r
            for r in results["runs"]
            if r["mode"] == "zero_shot" and r["start"] == "main" and r["closed_loop"]
        ),
        None,
    )
    if zs is None:
        return []
    closed_loop = run.outcomes[zs["id"]].result["closed_loop"]
    return drive_clips(run.out / zs["checkpoint"], closed_loop, fig_dir)


def write_report(run: StudyRun) -> dict[str, Path]:
    """Write results.json, report.md, report.html and the figures under `run.out`."""
    out = run.out
    fig_dir = out / REPORT_DIR
    fig_dir.mkdir(parents=True, exist_ok=True)
    results = build_results(run)
    config = run.plan.config
    figures: dict[str, Path] = {}
    blocks: list[tuple[str, Any]] = []

    curves = results["curves"]
    zero_main = results["zero_shot"].get("main")
    if any(curves.values()):
        figures["learning_curves"] = plots.learning_curves(
            {k: [_nan(p) for p in v] for k, v in curves.items()},
            zero_main,
            fig_dir / "learning_curves.png",
        )
    if results["freeze_sweep"]:
        rec = {
            n: results["starts"]["main"].get("recommendation", {}).get(n, {}).get("freeze")
            for n in results["freeze_sweep"]
        }
        figures["freeze_depth"] = plots.freeze_depth(
            {n: [_nan(p) for p in v] for n, v in results["freeze_sweep"].items()},
            rec,
            results["stage_names"],
            fig_dir / "freeze_depth.png",
        )
    gaps = {_display(n, results): s["gap"] for n, s in results["starts"].items() if "gap" in s}
    if gaps:
        figures["domain_gap"] = plots.domain_gap(gaps, fig_dir / "domain_gap.png")
    sim_real_rows = _sim_vs_real_rows(results)
    if sim_real_rows:
        figures["sim_vs_real"] = plots.paired_bars(
            sim_real_rows,
            [("sim", "sim (held-out recording)"), ("real", "real (test block)")],
            "steering MAE",
            fig_dir / "sim_vs_real.png",
        )
    starts_rows = _starts_rows(results)
    if starts_rows:
        figures["starts"] = plots.paired_bars(
            starts_rows,
            [("raw", "raw"), ("calibrated", "scale-calibrated")],
            "steering R$^2$ (real test block)",
            fig_dir / "starts.png",
        )
    strip = _strip(run, results, fig_dir / "frames.png")
    if strip is not None:
        figures["frames"] = fig_dir / "frames.png"
        results["frame_strip"] = strip
    clips = _drive_clips(run, results, fig_dir)
    for clip in clips:
        figures[f"drive_{clip['role']}"] = clip["path"]

    # ---- text
    head = results["headline"]
    blocks.append(("h1", f"Transfer-gap study: {config.name}"))
    blocks.append(
        (
            "p",
            f"Real data: {', '.join(results['real']['paths'])} "
            f"({results['real']['train_frames_available']} training frames before "
            "the held-out validation and test blocks; every network is scored on "
            f"the same later test block). {_starts_sentence(config)} "
            f"Seeds {config.grid.seeds}.",
        )
    )
    blocks.append(("h2", "Summary"))
    summary = [f"Headline: {head['sentence']}."]
    target = head.get("target_transfer_reaches_scratch_all")
    if target:
        summary.append(
            f"Target (transfer with {target['transfer_frames']} frames reaches scratch on all "
            f"{target['scratch_all_frames']} training frames): "
            f"{'met' if target['met'] else 'not met'} (R^2 {target['transfer_r2']:.3f} vs "
            f"{target['scratch_all_r2']:.3f})."
        )
    zs = results["zero_shot"]
    strengths = [n for n in zs if n.startswith("strength_")]
    if zs.get("main") and strengths and zs.get(strengths[0]):
        a, b = zs["main"], zs[strengths[0]]
        main_s = results["starts"]["main"]["strength"]
        other_s = results["starts"][strengths[0]]["strength"]
        for variant in ("raw", "calibrated"):
            ia, ib = a[variant]["steering_r2"], b[variant]["steering_r2"]
            if ia["value"] is None or ib["value"] is None:
                continue
            higher = (
                f"strength {main_s:g}" if ia["value"] > ib["value"] else f"strength {other_s:g}"
            )
            overlap = (
                ia["low"] is not None
                and ib["low"] is not None
                and ia["low"] <= ib["high"]
                and ib["low"] <= ia["high"]
            )
            summary.append(
                f"Zero-shot {variant} R^2, randomization strength {main_s:g} vs {other_s:g}: "
                f"{_interval(ia)} vs {_interval(ib)}; {higher} is higher"
                + (", but the 95% intervals overlap." if overlap else ".")
            )
    for n, check in results["starts"]["main"].get("sweep_check", {}).items():
        summary.append(
            f"Freeze sweep at N={n}: best k={check['best_k']} (R^2 {_fmt(check['best_r2'])}), "
            f"recommended k={check['recommended']} (R^2 {_fmt(check['recommended_r2'])})."
        )
    blocks.append(("ul", summary))
    if results["notes"] or results["failures"]:
        blocks.append(("h2", "Notes"))
        blocks.append(
            (
                "ul",
                [
                    *results["notes"],
                    *(f"cell {f['label']} failed: {f['error']}" for f in results["failures"]),
                ],
            )
        )

    blocks.append(("h2", "Learning curves (real test block)"))
    blocks.append(
        (
            "p",
            "Mean over seeds ± half the 95% t interval across seeds, then the mean "
            "of the cells' moving-block bootstrap 95% intervals in brackets.",
        )
    )
    rows = [["N", "arm", "freeze", "seeds", "R^2", "MAE", "Pearson r"]]
    for arm, points in curves.items():
        for p in points:
            rows.append(
                [
                    str(p["frames"]),
                    arm,
                    str(p.get("freeze", "-") if arm != "transfer_full" else 0),
                    str(p["n_seeds"]),
                    _agg(p["steering_r2"]),
                    _agg(p["steering_mae"]),
                    _agg(p["steering_pearson_r"]),
                ]
            )
    blocks.append(("table", rows))
    if "learning_curves" in figures:
        blocks.append(("img", "learning_curves"))
    if head["table"]:
        blocks.append(("p", "Scratch frames matching transfer (interpolated in log N):"))
        blocks.append(
            (
                "table",
                [["transfer N", "transfer R^2", "scratch frames"]]
                + [
                    [
                        str(r["frames"]),
                        _fmt(r["transfer_r2"]),
                        {"=": "~", "<=": "<= ", ">": "> ", "none": ""}[r["relation"]]
                        + _fmt(r["scratch_frames"]),
                    ]
                    for r in head["table"]
                ],
            )
        )

    blocks.append(("h2", "Zero-shot: raw and scale-calibrated"))
    blocks.append(
        (
            "p",
            "Calibrated: truth ~ a * prediction + b fitted on the validation block "
            "before the test block (2 parameters), so the calibrated figure "
            "separates 'sees the road' from 'steers with this driver's scale'.",
        )
    )
    rows = [
        [
            "start",
            "R^2 raw",
            "R^2 calibrated",
            "MAE raw",
            "Pearson r",
            "sim MAE",
            "closed loop: laps / lap fraction / |cte| m",
        ]
    ]
    for name, z in zs.items():
        if not z:
            continue
        loop = z.get("closed_loop")
        loop_text = (
            "-"
            if not loop
            else (
                f"{loop['lap_completion_rate']:.2f} / {loop['mean_lap_fraction']:.2f} / "
                f"{loop['mean_abs_cte_m']:.3f} ({loop['episodes']} ep.)"
            )
        )
        rows.append(
            [
                _display(name, results),
                _interval(z["raw"]["steering_r2"]),
                _interval(z["calibrated"]["steering_r2"]),
                _interval(z["raw"]["steering_mae"]),
                _interval(z["raw"]["steering_pearson_r"]),
                _interval(z["sim"]["steering_mae"]),
                loop_text,
            ]
        )
    blocks.append(("table", rows))
    if "starts" in figures:
        blocks.append(("img", "starts"))

    blocks.append(("h2", "Freeze depth"))
    if results["freeze_sweep"]:
        rows = [["N", "k frozen", "seeds", "R^2", "MAE"]]
        for n, points in results["freeze_sweep"].items():
            for p in points:
                rows.append(
                    [
                        n,
                        str(p["freeze"]),
                        str(p["n_seeds"]),
                        _agg(p["steering_r2"]),
                        _agg(p["steering_mae"]),
                    ]
                )
        blocks.append(("table", rows))
        blocks.append(("img", "freeze_depth"))
    else:
        blocks.append(("p", "No freeze sweep in this grid."))

    blocks.append(("h2", "Domain gap per encoder stage"))
    if gaps:
        rows = [["start", "stage", "proxy A-dist", "MMD^2", "Frechet"]]
        for name, gap in gaps.items():
            for stage, g in gap.items():
                rows.append(
                    [
                        name,
                        stage,
                        _fmt(g.get("proxy_a_distance")),
                        _fmt(g.get("mmd2"), 4),
                        _fmt(g.get("frechet"), 4),
                    ]
                )
        blocks.append(("table", rows))
        blocks.append(("img", "domain_gap"))
        rec = results["starts"]["main"].get("recommendation", {})
        if rec:
            blocks.append(
                (
                    "p",
                    "Recommended freeze (main start) by real frames: "
                    + ", ".join(f"N={n}: k={a['freeze']} ({a['regime']})" for n, a in rec.items())
                    + ". Rule: "
                    + next(iter(rec.values()))["rule"],
                )
            )

    blocks.append(("h2", "Sim vs real error of the same networks"))
    if sim_real_rows:
        rows = [["network", "sim MAE", "real MAE"]] + [
            [r["name"], _interval(r["sim"]), _interval(r["real"])] for r in sim_real_rows
        ]
        blocks.append(("table", rows))
        blocks.append(("img", "sim_vs_real"))

    blocks.append(("h2", "Starting points: randomization vs none, perception vs policy"))
    rows = [["start", "N", "seeds", "R^2", "MAE"]]
    for name, points in results["other_starts"].items():
        for p in points:
            rows.append(
                [
                    _display(name, results),
                    str(p["frames"]),
                    str(p["n_seeds"]),
                    _agg(p["steering_r2"]),
                    _agg(p["steering_mae"]),
                ]
            )
    blocks.append(("table", rows))

    if "frames" in figures:
        blocks.append(("h2", "Real test frames"))
        blocks.append(
            (
                "p",
                "White: true steering; colours: predictions (full lock = 45 deg). "
                "Networks: " + ", ".join(strip["networks"]),
            )
        )
        blocks.append(("img", "frames"))
    if clips:
        blocks.append(("h2", "Drives in sim (zero-shot main network)"))
        for clip in clips:
            blocks.append(
                (
                    "p",
                    f"{clip['role']} episode: seed {clip['seed']}, {clip['outcome']} at lap "
                    f"fraction {clip['lap_fraction']:.2f} (re-driven for the clip: "
                    f"{clip['redriven_outcome']}); the last 15 s, camera beside the track map, "
                    "expert (green) and network (orange) steering and throttle.",
                )
            )
            blocks.append(("img", f"drive_{clip['role']}"))
    blocks.append(
        (
            "p",
            f"Cells: {results['cells']['total']} ({results['cells']['cached']} "
            f"from the cache, {results['cells']['computed_now']} computed in this "
            f"run). Written {results['written_utc']}.",
        )
    )

    paths = {
        "results": out / "results.json",
        "markdown": out / "report.md",
        "html": out / "report.html",
    }
    results["figures"] = {k: str(v.relative_to(out)) for k, v in figures.items()}
    atomic_write_json(paths["results"], _json_clean(results))
    atomic_write_text(paths["markdown"], render_markdown(blocks, figures, out))
    atomic_write_text(paths["html"], render_html(blocks, figures, config.name))
    return paths


def _starts_sentence(config) -> str:
    """Where the study's starts come from: a given checkpoint and/or sim pretraining."""
    pretrained = list(config.pretrain.strengths)
    parts = []
    if config.start_checkpoint:
        pretrained = pretrained[1:]
        parts.append(f"Main start: the checkpoint {config.start_checkpoint}, used as is.")
    if pretrained:
        parts.append(
            f"Pretraining: {config.pretrain.model.architecture} on {config.sim.frames} sim "
            f"frames per randomization strength {pretrained}."
        )
    return " ".join(parts)


def _display(name: str, results: dict[str, Any]) -> str:
    """A start's name for readers: "sim s=1 (main)", "sim s=0", "policy", "scratch"."""
    start = results["starts"].get(name, {})
    if start.get("kind") == "perception" and start.get("strength") is not None:
        return f"sim s={start['strength']:g}" + (" (main)" if name == "main" else "")
    if start.get("kind") == "checkpoint":
        return f"{Path(start['source']).name} (main)"
    return name


def _sim_vs_real_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for name, z in results["zero_shot"].items():
        if z:
            rows.append(
                {
                    "name": f"{_display(name, results)} zero-shot",
                    "sim": z["sim"]["steering_mae"],
                    "real": z["raw"]["steering_mae"],
                }
            )
    records = results["runs"]
    for mode, start in (("transfer", "main"), ("scratch", "scratch")):
        group = [
            r
            for r in records
            if r["mode"] == mode and r["start"] == start and not isinstance(r["freeze"], str)
        ]
        sizes = sorted({r["frames"] for r in group})
        for n in sizes[-1:] + sizes[:1]:  # the largest N, then the smallest
            best = [r for r in group if r["frames"] == n]
            best = sorted(best, key=lambda r: (r["freeze"] or 0, r["seed"] or 0))[0]
            row = {
                "name": f"{mode} k={best['freeze']} N={n}"
                if mode == "transfer"
                else f"scratch N={n}",
                "sim": best["sim"]["steering_mae"],
                "real": best["real"]["steering_mae"],
            }
            if row["name"] not in [r["name"] for r in rows]:
                rows.append(row)
    return rows


def _starts_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "name": _display(name, results),
            "raw": z["raw"]["steering_r2"],
            "calibrated": z["calibrated"]["steering_r2"],
        }
        for name, z in results["zero_shot"].items()
        if z
    ]


def _json_clean(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_clean(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, np.generic):
        return _json_clean(value.item())
    if isinstance(value, Path):
        return str(value)
    return value


def render_markdown(blocks, figures: dict[str, Path], out: Path) -> str:
    lines: list[str] = []
    for kind, content in blocks:
        if kind == "h1":
            lines += [f"# {content}", ""]
        elif kind == "h2":
            lines += [f"## {content}", ""]
        elif kind == "p":
            lines += [content, ""]
        elif kind == "ul":
            lines += [f"- {item}" for item in content] + [""]
        elif kind == "table":
            header, *rows = content
            lines.append("| " + " | ".join(header) + " |")
            lines.append("|" + "---|" * len(header))
            lines += ["| " + " | ".join(row) + " |" for row in rows]
            lines.append("")
        elif kind == "img" and content in figures:
            lines += [f"![{content}]({figures[content].relative_to(out).as_posix()})", ""]
    return "\n".join(lines)


def render_html(blocks, figures: dict[str, Path], title: str) -> str:
    """One HTML file with every figure embedded as a base64 PNG or animated WebP (no external
    files)."""
    body: list[str] = []
    esc = html.escape
    for kind, content in blocks:
        if kind in ("h1", "h2", "p"):
            body.append(f"<{kind}>{esc(content)}</{kind}>")
        elif kind == "ul":
            body.append("<ul>" + "".join(f"<li>{esc(i)}</li>" for i in content) + "</ul>")
        elif kind == "table":
            header, *rows = content
            body.append(
                "<table><thead><tr>"
                + "".join(f"<th>{esc(h)}</th>" for h in header)
                + "</tr></thead><tbody>"
                + "".join(
                    "<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in rows
                )
                + "</tbody></table>"
            )
        elif kind == "img" and content in figures:
            data = base64.b64encode(figures[content].read_bytes()).decode("ascii")
            mime = "image/webp" if figures[content].suffix == ".webp" else "image/png"
            body.append(f'<img alt="{esc(content)}" src="data:{mime};base64,{data}">')
    style = (
        "body{font-family:sans-serif;max-width:1100px;margin:2em auto;line-height:1.4}"
        "table{border-collapse:collapse;margin:1em 0;font-size:0.9em}"
        "td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}"
        "img{max-width:100%;display:block;margin:1em 0}"
    )
    return (
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{esc(title)}</title>'
        f"<style>{style}</style></head><body>{''.join(body)}</body></html>\n"
    )
