"""The study report's sections: each a function of results.json (and the names of the figures
drawn) returning its document blocks (see `sim2real.experiments.report_render`).

`document` puts them in order: the title and data, the summary (headline, target, randomization,
freeze sweep), notes, learning curves, zero-shot raw and calibrated, freeze depth, domain gap
per encoder stage, sim vs real error, the other starting points, real test frames with
predicted steering, drives in sim, and the cell counts.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Container
from pathlib import Path
from typing import Any

from sim2real.experiments.report_render import Block
from sim2real.experiments.report_results import display, sim_vs_real_rows

Results = dict[str, Any]


def fmt(value: Any, digits: int = 3) -> str:
    """A number for a table ("-" for None or NaN)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def interval(entry: dict[str, Any] | None) -> str:
    """One cell's metric: value [bootstrap low, high]."""
    if not entry or entry.get("value") is None:
        return "-"
    if entry.get("low") is None:
        return fmt(entry["value"])
    return f"{entry['value']:.3f} [{entry['low']:.3f}, {entry['high']:.3f}]"


def agg(entry: dict[str, Any]) -> str:
    """An across-seed aggregate: mean ± half the seed interval [mean bootstrap interval]."""
    if entry.get("mean") is None:
        return "-"
    text = f"{entry['mean']:.3f}"
    if entry.get("seed_low") is not None:
        text += f" ± {(entry['seed_high'] - entry['seed_low']) / 2:.3f}"
    if entry.get("boot_low") is not None:
        text += f" [{entry['boot_low']:.3f}, {entry['boot_high']:.3f}]"
    return text


def starts_sentence(study: dict[str, Any]) -> str:
    """Where the study's starts come from: a given checkpoint and/or sim pretraining."""
    parts = []
    if study["start_checkpoint"]:
        parts.append(f"Main start: the checkpoint {study['start_checkpoint']}, used as is.")
    if study["pretrained_strengths"]:
        parts.append(
            f"Pretraining: {study['architecture']} on {study['sim_frames']} sim "
            f"frames per randomization strength {study['pretrained_strengths']}."
        )
    return " ".join(parts)


def title(results: Results, figures: Container[str]) -> list[Block]:
    real = results["real"]
    return [
        ("h1", f"Transfer-gap study: {results['name']}"),
        (
            "p",
            f"Real data: {', '.join(real['paths'])} "
            f"({real['train_frames_available']} training frames before "
            "the held-out validation and test blocks; every network is scored on "
            f"the same later test block). {starts_sentence(results['study'])} "
            f"Seeds {results['study']['seeds']}.",
        ),
    ]


def _randomization_lines(results: Results) -> list[str]:
    """Zero-shot R^2 of the main start vs the first other randomization strength."""
    zs = results["zero_shot"]
    strengths = [n for n in zs if n.startswith("strength_")]
    if not (zs.get("main") and strengths and zs.get(strengths[0])):
        return []
    a, b = zs["main"], zs[strengths[0]]
    main_s = results["starts"]["main"]["strength"]
    other_s = results["starts"][strengths[0]]["strength"]
    lines = []
    for variant in ("raw", "calibrated"):
        ia, ib = a[variant]["steering_r2"], b[variant]["steering_r2"]
        if ia["value"] is None or ib["value"] is None:
            continue
        higher = f"strength {main_s:g}" if ia["value"] > ib["value"] else f"strength {other_s:g}"
        overlap = (
            ia["low"] is not None
            and ib["low"] is not None
            and ia["low"] <= ib["high"]
            and ib["low"] <= ia["high"]
        )
        lines.append(
            f"Zero-shot {variant} R^2, randomization strength {main_s:g} vs {other_s:g}: "
            f"{interval(ia)} vs {interval(ib)}; {higher} is higher"
            + (", but the 95% intervals overlap." if overlap else ".")
        )
    return lines


def summary(results: Results, figures: Container[str]) -> list[Block]:
    head = results["headline"]
    lines = [f"Headline: {head['sentence']}."]
    target = head.get("target_transfer_reaches_scratch_all")
    if target:
        lines.append(
            f"Target (transfer with {target['transfer_frames']} frames reaches scratch on all "
            f"{target['scratch_all_frames']} training frames): "
            f"{'met' if target['met'] else 'not met'} (R^2 {target['transfer_r2']:.3f} vs "
            f"{target['scratch_all_r2']:.3f})."
        )
    lines += _randomization_lines(results)
    for n, check in results["starts"]["main"].get("sweep_check", {}).items():
        lines.append(
            f"Freeze sweep at N={n}: best k={check['best_k']} (R^2 {fmt(check['best_r2'])}), "
            f"recommended k={check['recommended']} (R^2 {fmt(check['recommended_r2'])})."
        )
    return [("h2", "Summary"), ("ul", lines)]


def notes(results: Results, figures: Container[str]) -> list[Block]:
    if not (results["notes"] or results["failures"]):
        return []
    failed = [f"cell {f['label']} failed: {f['error']}" for f in results["failures"]]
    return [("h2", "Notes"), ("ul", [*results["notes"], *failed])]


def learning_curves(results: Results, figures: Container[str]) -> list[Block]:
    blocks: list[Block] = [
        ("h2", "Learning curves (real test block)"),
        (
            "p",
            "Mean over seeds ± half the 95% t interval across seeds, then the mean "
            "of the cells' moving-block bootstrap 95% intervals in brackets.",
        ),
    ]
    rows = [["N", "arm", "freeze", "seeds", "R^2", "MAE", "Pearson r"]]
    for arm, points in results["curves"].items():
        for p in points:
            rows.append(
                [
                    str(p["frames"]),
                    arm,
                    str(p.get("freeze", "-") if arm != "transfer_full" else 0),
                    str(p["n_seeds"]),
                    agg(p["steering_r2"]),
                    agg(p["steering_mae"]),
                    agg(p["steering_pearson_r"]),
                ]
            )
    blocks.append(("table", rows))
    if "learning_curves" in figures:
        blocks.append(("img", "learning_curves"))
    table = results["headline"]["table"]
    if table:
        relation = {"=": "~", "<=": "<= ", ">": "> ", "none": ""}
        blocks.append(("p", "Scratch frames matching transfer (interpolated in log N):"))
        blocks.append(
            (
                "table",
                [["transfer N", "transfer R^2", "scratch frames"]]
                + [
                    [
                        str(r["frames"]),
                        fmt(r["transfer_r2"]),
                        relation[r["relation"]] + fmt(r["scratch_frames"]),
                    ]
                    for r in table
                ],
            )
        )
    return blocks


def _closed_loop(loop: dict[str, Any] | None) -> str:
    if not loop:
        return "-"
    return (
        f"{loop['lap_completion_rate']:.2f} / {loop['mean_lap_fraction']:.2f} / "
        f"{loop['mean_abs_cte_m']:.3f} ({loop['episodes']} ep.)"
    )


def zero_shot(results: Results, figures: Container[str]) -> list[Block]:
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
    for name, z in results["zero_shot"].items():
        if z:
            rows.append(
                [
                    display(name, results),
                    interval(z["raw"]["steering_r2"]),
                    interval(z["calibrated"]["steering_r2"]),
                    interval(z["raw"]["steering_mae"]),
                    interval(z["raw"]["steering_pearson_r"]),
                    interval(z["sim"]["steering_mae"]),
                    _closed_loop(z.get("closed_loop")),
                ]
            )
    blocks: list[Block] = [
        ("h2", "Zero-shot: raw and scale-calibrated"),
        (
            "p",
            "Calibrated: truth ~ a * prediction + b fitted on the validation block "
            "before the test block (2 parameters), so the calibrated figure "
            "separates 'sees the road' from 'steers with this driver's scale'.",
        ),
        ("table", rows),
    ]
    if "starts" in figures:
        blocks.append(("img", "starts"))
    return blocks


def freeze_depth(results: Results, figures: Container[str]) -> list[Block]:
    if not results["freeze_sweep"]:
        return [("h2", "Freeze depth"), ("p", "No freeze sweep in this grid.")]
    rows = [["N", "k frozen", "seeds", "R^2", "MAE"]]
    for n, points in results["freeze_sweep"].items():
        for p in points:
            rows.append(
                [
                    n,
                    str(p["freeze"]),
                    str(p["n_seeds"]),
                    agg(p["steering_r2"]),
                    agg(p["steering_mae"]),
                ]
            )
    return [("h2", "Freeze depth"), ("table", rows), ("img", "freeze_depth")]


def domain_gap(results: Results, figures: Container[str]) -> list[Block]:
    blocks: list[Block] = [("h2", "Domain gap per encoder stage")]
    starts = {n: s for n, s in results["starts"].items() if "gap" in s}
    if not starts:
        return blocks
    rows = [["start", "stage", "proxy A-dist", "MMD^2", "Frechet"]]
    for name, start in starts.items():
        for stage, g in start["gap"].items():
            rows.append(
                [
                    display(name, results),
                    stage,
                    fmt(g.get("proxy_a_distance")),
                    fmt(g.get("mmd2"), 4),
                    fmt(g.get("frechet"), 4),
                ]
            )
    blocks += [("table", rows), ("img", "domain_gap")]
    rec = results["starts"]["main"].get("recommendation", {})
    if rec:
        by_n = ", ".join(f"N={n}: k={a['freeze']} ({a['regime']})" for n, a in rec.items())
        rule = next(iter(rec.values()))["rule"]
        blocks.append(
            ("p", f"Recommended freeze (main start) by real frames: {by_n}. Rule: {rule}")
        )
    return blocks


def sim_vs_real(results: Results, figures: Container[str]) -> list[Block]:
    blocks: list[Block] = [("h2", "Sim vs real error of the same networks")]
    rows = sim_vs_real_rows(results)
    if rows:
        table = [["network", "sim MAE", "real MAE"]]
        table += [[r["name"], interval(r["sim"]), interval(r["real"])] for r in rows]
        blocks += [("table", table), ("img", "sim_vs_real")]
    return blocks


def other_starts(results: Results, figures: Container[str]) -> list[Block]:
    rows = [["start", "N", "seeds", "R^2", "MAE"]]
    for name, points in results["other_starts"].items():
        for p in points:
            rows.append(
                [
                    display(name, results),
                    str(p["frames"]),
                    str(p["n_seeds"]),
                    agg(p["steering_r2"]),
                    agg(p["steering_mae"]),
                ]
            )
    return [("h2", "Starting points: randomization vs none, perception vs policy"), ("table", rows)]


def real_frames(results: Results, figures: Container[str]) -> list[Block]:
    if "frames" not in figures:
        return []
    networks = results["predictions"]["strip"]["networks"]
    return [
        ("h2", "Real test frames"),
        (
            "p",
            "White: true steering; colours: predictions (full lock = 45 deg). "
            "Networks: " + ", ".join(networks),
        ),
        ("img", "frames"),
    ]


def drives(results: Results, figures: Container[str]) -> list[Block]:
    clips = (results.get("predictions") or {}).get("clips", [])
    if not clips:
        return []
    blocks: list[Block] = [("h2", "Drives in sim (zero-shot main network)")]
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
    return blocks


def footer(results: Results, figures: Container[str]) -> list[Block]:
    cells = results["cells"]
    return [
        (
            "p",
            f"Cells: {cells['total']} ({cells['cached']} from the cache, "
            f"{cells['computed_now']} computed in this run). Written {results['written_utc']}.",
        )
    ]


SECTIONS: tuple[Callable[[Results, Container[str]], list[Block]], ...] = (
    title,
    summary,
    notes,
    learning_curves,
    zero_shot,
    freeze_depth,
    domain_gap,
    sim_vs_real,
    other_starts,
    real_frames,
    drives,
    footer,
)


def document(results: Results, figures: Container[str] | dict[str, Path]) -> list[Block]:
    """Every section's blocks, in order."""
    return [block for section in SECTIONS for block in section(results, figures)]
