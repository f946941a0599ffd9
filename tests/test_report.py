"""The report's computed numbers (seed aggregates, the scratch-equivalent frames, the headline
sentence), and the report as a function of results.json: redrawn from it and the files the
study wrote, with no checkpoint, self-contained HTML, and no import of the study."""

from __future__ import annotations

import ast
import base64
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from sim2real.experiments.predictions_cell import chosen_networks
from sim2real.experiments.report import write_report
from sim2real.experiments.report_render import render_html, render_markdown
from sim2real.experiments.report_results import (
    aggregate,
    headline,
    learning_curves,
    matching_scratch_frames,
    other_starts,
    read_results,
    zero_shot,
)

REPORT_MODULES = ("report", "report_results", "report_sections", "report_render")


def _point(frames: int, r2: float) -> dict:
    return {"frames": frames, "steering_r2": {"mean": r2}}


def _record(r2: float, low: float, high: float) -> dict:
    metric = {"value": r2, "low": low, "high": high}
    return {"real": {"steering_r2": metric, "steering_mae": metric, "steering_pearson_r": metric}}


def test_matching_scratch_frames_interpolates_in_log_frames():
    scratch = [_point(50, 0.1), _point(200, 0.3), _point(800, 0.5)]
    # 0.2 is half-way from 0.1 to 0.3: geometric mean of 50 and 200
    assert matching_scratch_frames(0.2, scratch) == {"frames": 100, "relation": "="}
    assert matching_scratch_frames(0.05, scratch) == {"frames": 50, "relation": "<="}
    assert matching_scratch_frames(0.7, scratch) == {"frames": 800, "relation": ">"}
    assert matching_scratch_frames(0.5, scratch)["frames"] == 800


def test_aggregate_gives_seed_t_interval_and_mean_bootstrap_bounds():
    agg = aggregate([_record(0.1, 0.0, 0.2), _record(0.3, 0.1, 0.5)])
    r2 = agg["steering_r2"]
    assert agg["n_seeds"] == 2
    assert r2["mean"] == pytest.approx(0.2)
    # t(0.975, 1 dof) = 12.7062; sd = 0.14142, / sqrt(2) = 0.1
    assert r2["seed_low"] == pytest.approx(0.2 - 1.270620, abs=1e-5)
    assert r2["seed_high"] == pytest.approx(0.2 + 1.270620, abs=1e-5)
    assert (r2["boot_low"], r2["boot_high"]) == pytest.approx((0.05, 0.35))
    one = aggregate([_record(0.4, 0.3, 0.5)])["steering_r2"]
    assert one["mean"] == pytest.approx(0.4) and one["seed_low"] is None


def test_headline_states_transfer_vs_scratch_from_the_curves():
    curves = {
        "transfer_recommended": [_point(50, 0.15), _point(100, 0.3)],
        "scratch": [_point(50, 0.0), _point(100, 0.1), _point(400, 0.5), _point(1600, 0.6)],
    }
    out = headline(curves, n_train=1600)
    # transfer at N=100 (R^2 0.3) lies half-way between scratch at 100 and 400 -> 200 frames
    assert out["at"]["frames"] == 100 and out["at"]["scratch_frames"] == 200
    assert out["sentence"] == (
        "with 100 real frames, transfer (R^2 0.300) matches scratch with ~200 frames"
    )
    target = out["target_transfer_reaches_scratch_all"]
    assert target["scratch_all_r2"] == 0.6 and target["met"] is False
    beats = headline(
        {"transfer_recommended": [_point(100, 0.9)], "scratch": curves["scratch"]}, n_train=1600
    )
    assert "beats scratch at every size tried, up to 1600" in beats["sentence"]
    assert beats["target_transfer_reaches_scratch_all"]["met"] is True


def test_html_is_self_contained_and_markdown_links_figures(tmp_path):
    image = np.zeros((4, 6, 3), np.uint8)
    image[:, :, 2] = 255
    png = tmp_path / "report" / "fig.png"
    png.parent.mkdir()
    png.write_bytes(cv2.imencode(".png", image)[1].tobytes())
    blocks = [("h1", "T <1>"), ("table", [["a", "b"], ["1", "2"]]), ("img", "fig")]
    page = render_html(blocks, {"fig": png}, "T")
    embedded = page.split('src="data:image/png;base64,')[1].split('"')[0]
    assert base64.b64decode(embedded) == png.read_bytes()
    assert "<h1>T &lt;1&gt;</h1>" in page and "<td>2</td>" in page
    markdown = render_markdown(blocks, {"fig": png}, tmp_path)
    assert "![fig](report/fig.png)" in markdown and "| 1 | 2 |" in markdown


# ----------------------------------------------------------------------------------------
# the report from results.json alone


def _metric(value: float) -> dict:
    return {"value": value, "low": value - 0.1, "high": value + 0.1}


def _run(start: str, mode: str, frames: int, freeze, r2: float, seed: int = 0) -> dict:
    scores = {
        "steering_r2": _metric(r2),
        "steering_mae": _metric(0.3 - r2 / 4),
        "steering_pearson_r": _metric(0.8),
    }
    return {
        "id": f"run-{start}-{mode}-{frames}-{freeze}-{seed}",
        "start": start,
        "mode": mode,
        "frames": frames,
        "freeze": freeze,
        "ladder_pick": None,
        "seed": seed,
        "real": scores,
        "real_calibrated": scores,
        "sim": {**scores, "steering_mae": _metric(0.05)},
        "closed_loop": None,
    }


def _results() -> dict:
    """A study's results.json as the study writes it (two starts, two N, one strip)."""
    runs = [
        _run("main", "zero_shot", 0, None, 0.2),
        _run("main", "transfer", 50, 1, 0.5),
        _run("main", "transfer", 200, 1, 0.6),
        _run("scratch", "scratch", 50, None, 0.0),
        _run("scratch", "scratch", 200, None, 0.3),
    ]
    gap = {"proxy_a_distance": 1.5, "mmd2": 0.01, "frechet": 2.0}
    rec = {"freeze": 1, "regime": "few frames", "rule": "the rule"}
    starts = {
        "main": {
            "kind": "perception",
            "strength": 1.0,
            "cell": "pretrain-1",
            "gap": {"stage1": gap, "stage2": gap},
            "recommendation": {"50": rec, "200": rec},
        },
        "scratch": {"kind": "scratch", "strength": None, "cell": "init-1"},
    }
    curves = learning_curves(runs, {50: 1, 200: 1}, {})
    return {
        "name": "unit",
        "written_utc": "2026-11-30T07:00:00+00:00",
        "study": {
            "start_checkpoint": None,
            "architecture": "pilotnet",
            "pretrained_strengths": [1.0],
            "sim_frames": 100,
            "seeds": [0],
        },
        "real": {"paths": ["/data/tub"], "train_frames_available": 200, "split": {}},
        "stage_names": ["stage1", "stage2"],
        "starts": starts,
        "zero_shot": zero_shot(runs, starts),
        "curves": curves,
        "headline": headline(curves, 200),
        "freeze_sweep": {},
        "other_starts": other_starts(runs, starts),
        "runs": runs,
        "predictions": {
            "strip": {
                "file": "cells/predictions-1/strip.npz",
                "networks": {"transfer N=200": runs[2]["id"], "zero-shot": runs[0]["id"]},
            },
            "clips": [],
        },
        "notes": ["a note"],
        "failures": [],
        "cells": {"total": 7, "computed_now": 7, "cached": 0},
    }


def _study_folder(folder: Path) -> Path:
    """results.json and the predictions cell's strip.npz, as a finished study leaves them."""
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps(_results()))
    strip = folder / "cells" / "predictions-1" / "strip.npz"
    strip.parent.mkdir(parents=True)
    images = np.zeros((3, 8, 10, 3), np.uint8)
    images[:, :, :, 1] = 200
    truth = np.array([0.1, -0.2, 0.0], np.float32)
    np.savez_compressed(strip, images=images, truth=truth, predictions=np.stack([truth, truth]))
    return folder


def test_report_is_redrawn_from_results_json_and_the_study_files_alone(tmp_path):
    out = _study_folder(tmp_path / "study")
    paths = write_report(out)
    markdown = paths["markdown"].read_text()
    headings = [line[3:] for line in markdown.splitlines() if line.startswith("## ")]
    assert headings == [
        "Summary",
        "Notes",
        "Learning curves (real test block)",
        "Zero-shot: raw and scale-calibrated",
        "Freeze depth",
        "Domain gap per encoder stage",
        "Sim vs real error of the same networks",
        "Starting points: randomization vs none, perception vs policy",
        "Real test frames",
    ]
    # transfer at 50 (R^2 0.5) beats scratch at every N: the sentence comes from results.json
    assert "Headline: with 50 real frames, transfer (R^2 0.500) beats scratch" in markdown
    assert "| 200 | transfer_recommended | 1 | 1 | 0.600 [0.500, 0.700] |" in markdown
    assert "Networks: transfer N=200, zero-shot" in markdown
    figures = json.loads((out / "report" / "figures.json").read_text())
    assert set(figures) == {"learning_curves", "domain_gap", "sim_vs_real", "starts", "frames"}
    # the strip is drawn from strip.npz: 3 tiles of 2x (8, 10) frames padded to 4 per row,
    # over a text band of one line per network and the truth
    strip = cv2.imread(str(out / figures["frames"]))
    assert strip.shape == (16 + 18 * 3, 4 * 20, 3)
    html = paths["html"].read_text()
    assert html.count('src="data:image/png;base64,') == len(figures)
    assert 'src="report/' not in html
    # the same results.json elsewhere gives the same document
    copy = _study_folder(tmp_path / "copy")
    assert write_report(copy)["markdown"].read_text() == markdown


def test_report_without_predictions_leaves_the_frames_out(tmp_path):
    out = tmp_path / "study"
    out.mkdir()
    results = {**_results(), "predictions": None}
    (out / "results.json").write_text(json.dumps(results))
    markdown = write_report(out)["markdown"].read_text()
    assert "## Real test frames" not in markdown and "## Learning curves" in markdown


def test_missing_or_foreign_results_json_is_a_one_line_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="results.json"):
        read_results(tmp_path)
    (tmp_path / "results.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        read_results(tmp_path)
    (tmp_path / "results.json").write_text(json.dumps({"name": "x"}))
    with pytest.raises(ValueError, match="missing"):
        read_results(tmp_path)


def test_strip_shows_the_best_network_at_the_largest_n_of_each_arm():
    runs = [
        _run("main", "transfer", 50, 1, 0.9),
        _run("main", "transfer", 200, 0, 0.4),
        _run("main", "transfer", 200, 2, 0.6),
        _run("scratch", "scratch", 200, None, 0.1),
        _run("main", "zero_shot", 0, None, 0.2),
    ]
    chosen = chosen_networks(runs)
    assert list(chosen) == ["transfer N=200", "scratch N=200", "zero-shot"]
    assert chosen["transfer N=200"]["freeze"] == 2


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_report_modules_import_neither_the_study_nor_a_network():
    import sim2real.experiments as experiments

    folder = Path(experiments.__file__).parent
    for module in REPORT_MODULES:
        imports = _imports(folder / f"{module}.py")
        assert imports, module
        banned = [
            name
            for name in imports
            if name.startswith(("sim2real.experiments.study", "sim2real.agents", "torch"))
            or name == "sim2real.experiments.predictions_cell"
        ]
        assert banned == [], f"{module} imports {banned}"
