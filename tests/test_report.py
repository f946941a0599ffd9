"""The report's computed numbers: seed aggregates, the scratch-equivalent frames, the
headline sentence, and a self-contained HTML page."""

from __future__ import annotations

import base64

import cv2
import numpy as np
import pytest

from sim2real.experiments.report import (
    aggregate,
    headline,
    matching_scratch_frames,
    render_html,
    render_markdown,
)


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
