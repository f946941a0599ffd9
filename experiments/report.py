"""The study report: report.md and a self-contained report.html, made from results.json.

`write_report(out)` is a function of the study's results.json and of the files its cells
wrote (the predictions cell's frame strip and drive clips): it loads no checkpoint and runs
no network. It draws the figures into ``out/report/`` (`report_render.make_figures`), lays out
the sections (`report_sections.document`) and writes both documents atomically. The numbers
come from `report_results`, which the study uses to write results.json
(`sim2real.experiments.study_results`), so rerunning `write_report` on a finished study
redraws the same report.
"""

from __future__ import annotations

from pathlib import Path

from sim2real.common.io import atomic_write_json, atomic_write_text
from sim2real.experiments.report_render import make_figures, render_html, render_markdown
from sim2real.experiments.report_results import RESULTS_FILE, read_results
from sim2real.experiments.report_sections import document

REPORT_DIR = "report"
FIGURES_FILE = "figures.json"
"""figure name -> path relative to the study folder, in ``out/report/``"""


def write_report(out: str | Path) -> dict[str, Path]:
    """Write report.md, report.html and the figures (``report/``) of the study in `out`
    from its results.json; returns the paths of results.json, report.md and report.html."""
    out = Path(out)
    results = read_results(out)
    fig_dir = out / REPORT_DIR
    figures = make_figures(results, out, fig_dir)
    blocks = document(results, figures)
    paths = {
        "results": out / RESULTS_FILE,
        "markdown": out / "report.md",
        "html": out / "report.html",
    }
    atomic_write_json(
        fig_dir / FIGURES_FILE, {k: v.relative_to(out).as_posix() for k, v in figures.items()}
    )
    atomic_write_text(paths["markdown"], render_markdown(blocks, figures, out))
    atomic_write_text(paths["html"], render_html(blocks, figures, results["name"]))
    return paths
