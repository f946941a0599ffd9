"""Rendering the study report: its figures (via `sim2real.experiments.plots`) from
results.json and the files the study's cells wrote, and the document blocks as markdown and
as one self-contained HTML page.

A document is a list of blocks ``(kind, content)``: ("h1" | "h2" | "p", text), ("ul", [text]),
("table", [header, *rows]) with rows of strings, and ("img", figure name), drawn when the
figure exists.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

import numpy as np

from sim2real.common.io import atomic_write_bytes
from sim2real.experiments import plots
from sim2real.experiments import report_results as rr

Block = tuple[str, Any]


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


def make_figures(results: dict[str, Any], out: Path, fig_dir: Path) -> dict[str, Path]:
    """Draw the report's figures into `fig_dir` from `results` (results.json of the study in
    `out`); returns figure name -> file, for the figures that have data."""
    fig_dir.mkdir(parents=True, exist_ok=True)
    figures: dict[str, Path] = {}
    curves = results["curves"]
    if any(curves.values()):
        figures["learning_curves"] = plots.learning_curves(
            {k: [_nan(p) for p in v] for k, v in curves.items()},
            results["zero_shot"].get("main"),
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
    gaps = rr.domain_gaps(results)
    if gaps:
        figures["domain_gap"] = plots.domain_gap(gaps, fig_dir / "domain_gap.png")
    sim_real = rr.sim_vs_real_rows(results)
    if sim_real:
        figures["sim_vs_real"] = plots.paired_bars(
            sim_real,
            [("sim", "sim (held-out recording)"), ("real", "real (test block)")],
            "steering MAE",
            fig_dir / "sim_vs_real.png",
        )
    starts = rr.starts_rows(results)
    if starts:
        figures["starts"] = plots.paired_bars(
            starts,
            [("raw", "raw"), ("calibrated", "scale-calibrated")],
            "steering R$^2$ (real test block)",
            fig_dir / "starts.png",
        )
    figures.update(_prediction_figures(results.get("predictions"), out, fig_dir))
    return figures


def _prediction_figures(
    predictions: dict[str, Any] | None, out: Path, fig_dir: Path
) -> dict[str, Path]:
    """The frame strip, drawn from the predictions cell's strip.npz, and its drive clips,
    copied beside the other figures."""
    if not predictions:
        return {}
    figures: dict[str, Path] = {}
    strip = predictions.get("strip")
    if strip:
        arrays = rr.read_strip(out / strip["file"])
        rows = zip(strip["networks"], arrays["predictions"], strict=True)
        figures["frames"] = plots.frame_strip(
            list(arrays["images"]),
            [float(v) for v in arrays["truth"]],
            {name: [float(v) for v in row] for name, row in rows},
            fig_dir / "frames.png",
        )
    for clip in predictions.get("clips", []):
        source = out / clip["path"]
        target = fig_dir / f"drive_{clip['role']}{source.suffix}"
        atomic_write_bytes(target, source.read_bytes())
        figures[f"drive_{clip['role']}"] = target
    return figures


def render_markdown(blocks: list[Block], figures: dict[str, Path], out: Path) -> str:
    """The blocks as markdown; figures linked relative to `out` (where report.md lives)."""
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


def render_html(blocks: list[Block], figures: dict[str, Path], title: str) -> str:
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
