"""Fit the simulator to a user's track from unlabeled real frames (the `fit-sim` command).

Measured on the real frames (experiments.fit_measure): the horizon (vanishing point of floor
lines, or on walled tracks the boards' feet and tops, experiments.board_band: -> camera pitch
and the boards' height), the drivable floor's width relative to the camera height, the track
style (lines at the centre, at the edges, a distinct verge or boards beyond), the colours of
road, lines, verge, floor, boards and room, and image statistics. The lens (experiments.fit_lens):
barrel distortion from how much lines above the centre bow, matched on sim renders; the field
of view of a near-pinhole lens from where vertical edges meet.

Then analysis by synthesis: sim frames rendered from the fitted nominal world are measured the
same way, and brightness, contrast, saturation, blur, noise, haze, gloss, the camera pitch and
height are corrected until the sim's statistics match the real ones (detector biases cancel).
Last, on the spec as written (unless `fit` is geometry), blur or the camera's sharpening are
fitted to the real frames' sharpness (experiments.fit_sharpness).

The spec written has the fitted world as its nominal (strength 0) and ranges of
`range_scale` times the base spec's half-widths around it (strength 1); the fitted style gets
`style_share` of the style weights, the base spec's weights share the rest. `fit` chooses which
fitted values the spec takes: the geometry (GEOMETRY: camera pose, lens, road width, boards),
the look (style, colours, image statistics) or all; the others keep the base spec's windows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from sim2real.common.config import StrictModel, validate_config
from sim2real.envs.randomization import STYLES, RandomizationSpec, resolve_spec
from sim2real.envs.textures import hsv_to_rgb
from sim2real.experiments.fit_lens import fit_lens, hfov_from_verticals, render
from sim2real.experiments.fit_measure import Measure, check_road_scene
from sim2real.experiments.fit_sharpness import SharpnessFit, fit_sharpness
from sim2real.experiments.scene_measures import Camera, image_stats, rgb_to_hsv

MIN_FRAMES = 20
SIM_FRAMES = 16  # sim frames per analysis-by-synthesis round
ROUNDS = 3
IMAGE_FIELDS = ("brightness", "contrast", "saturation", "blur", "noise", "haze")
# the fitted values `fit: geometry` keeps; `fit: look` keeps every other fitted value
GEOMETRY = frozenset(
    {
        "camera.height",
        "camera.pitch",
        "camera.hfov",
        "camera.distortion",
        "track.road_width",
        "visual.board_height",
    }  # fmt: skip
)
# the sim's sharpness: blur or the camera's sharpening (experiments.fit_sharpness)
SHARPNESS = frozenset({"image.blur", "image.sharpen"})
FitMode = Literal["all", "geometry", "geometry+sharpness", "look"]


def applies(key: str, fit: str) -> bool:
    """Whether fit mode `fit` writes fitted value `key` ('group.field') into the spec."""
    if fit == "all":
        return True
    if fit == "look":
        return key not in GEOMETRY
    return key in GEOMETRY or (fit == "geometry+sharpness" and key in SHARPNESS)


class FitSimConfig(StrictModel):
    """How to fit: which real frames, how wide the ranges around the fitted world are."""

    frames: int = Field(1000, ge=MIN_FRAMES, description="real frames used at most (evenly spaced)")
    span: tuple[float, float] = Field(
        (0.0, 1.0), description="fraction (start, end) of each recording to read"
    )
    range_scale: float = Field(
        0.5, ge=0.0, le=2.0, description="ranges' half-widths as a fraction of the base spec's"
    )
    style_share: float = Field(
        0.6, ge=0.0, le=1.0, description="share of the style weights the fitted style gets"
    )
    base: str | None = Field(None, description="base RandomizationSpec YAML (default: shipped)")
    seed: int = Field(0, ge=0, description="seed of the k-means and the sim renders")
    fit: FitMode = Field(
        "geometry",
        description="fitted values the spec takes: geometry (camera pose, lens, road width, "
        "boards), geometry+sharpness (and blur or sharpening to the real frames' sharpness), "
        "look (style, colours, image statistics, sharpness) or all; the rest keep the base "
        "spec's. geometry: chosen on usi-track-a's validation block (docs/fit-sim.md)",
    )


@dataclass
class Fitted:
    """One fitted value: `value`, how it was measured and how sure (`note`), and whether it
    was clipped to the spec's physical limits."""

    value: Any
    note: str
    clipped: str = ""
    applied: bool = True  # False: measured, but the base spec's window was kept (`fit`)


@dataclass
class FitResult:
    """The spec (as a dict), every fitted value by 'group.field', the real and sim statistics."""

    spec: dict[str, Any]
    fitted: dict[str, Fitted] = field(default_factory=dict)
    real_stats: dict[str, float] = field(default_factory=dict)
    sim_stats: dict[str, float] = field(default_factory=dict)
    frames: int = 0
    style_scores: dict[str, float] = field(default_factory=dict)
    sharpness: SharpnessFit | None = None  # the blur / sharpening fit, when the spec took it

    @property
    def clipped(self) -> list[str]:
        return [f"{k}: {f.clipped}" for k, f in self.fitted.items() if f.clipped and f.applied]


def _sigmoid(x: float) -> float:
    return float(1.0 / (1.0 + np.exp(-x)))


def style_scores(centre: float, edge: float, outer_gap: float) -> dict[str, float]:
    """Scores (sum 1) of each style from the share of rows with a centre line `centre`, with
    a line at the run's edge `edge`, and the colour difference (Lab) between the floor run and
    what lies beyond its edges `outer_gap`."""
    c = _sigmoid((centre - 0.1) / 0.03)  # dashes far ahead are thin: a low share counts
    e = _sigmoid((edge - 0.3) / 0.07)
    o = _sigmoid((outer_gap - 22.0) / 5.0)  # 1: something else (verge, boards) beyond
    raw = {
        "two_lane": c * e * o,
        "single_lane": (1 - c) * e * o,
        "tape": e * (1 - o),
        "centre_line": c * (1 - e),
        "walls": (1 - c) * (1 - e) * o,
    }
    total = sum(raw.values()) or 1.0
    return {k: v / total for k, v in raw.items()}


def _set_range(spec: dict, base: RandomizationSpec, key: str, value: Any, scale: float,
               result: FitResult, note: str) -> None:  # fmt: skip
    """Centre `group.field` on `value` (clipped to the field's limits), half-widths `scale`
    times the base spec's, and record it."""
    group, name = key.split(".")
    entry = spec[group][name]
    base_entry = getattr(getattr(base, group), name)
    limits = type(getattr(base, group)).LIMITS.get(name)
    clipped = ""
    if isinstance(value, tuple):  # HSV colour
        h, s, v = value
        s2, v2 = float(np.clip(s, 0, 1)), float(np.clip(v, 0, 1))
        lo = [h - scale * (base_entry.nominal[0] - base_entry.low[0]),
              max(0.0, s2 - scale * (base_entry.nominal[1] - base_entry.low[1])),
              max(0.0, v2 - scale * (base_entry.nominal[2] - base_entry.low[2]))]  # fmt: skip
        hi = [h + scale * (base_entry.high[0] - base_entry.nominal[0]),
              min(1.0, s2 + scale * (base_entry.high[1] - base_entry.nominal[1])),
              min(1.0, v2 + scale * (base_entry.high[2] - base_entry.nominal[2]))]  # fmt: skip
        if base_entry.high[0] - base_entry.low[0] >= 360:  # any hue at strength 1: keep it so
            lo[0], hi[0] = h - 180.0 * min(1.0, 2 * scale), h + 180.0 * min(1.0, 2 * scale)
        entry.update(low=[round(x, 3) for x in lo], high=[round(x, 3) for x in hi],
                     nominal=[round(h, 2), round(s2, 3), round(v2, 3)])  # fmt: skip
    else:
        x = float(value)
        if limits is not None and not limits[0] <= x <= limits[1]:
            clipped = f"fitted {x:.4g} outside the physical limits [{limits[0]}, {limits[1]}]"
            x = float(np.clip(x, *limits))
        lo = x - scale * (base_entry.nominal - base_entry.low)
        hi = x + scale * (base_entry.high - base_entry.nominal)
        if limits is not None:
            lo, hi = max(lo, limits[0]), min(hi, limits[1])
        entry.update(low=round(lo, 4), high=round(hi, 4), nominal=round(x, 4))
    result.fitted[key] = Fitted(entry["nominal"], note, clipped)


def fit_sim(frames: np.ndarray, config: FitSimConfig | None = None) -> FitResult:
    """Fit a RandomizationSpec to real frames (N, H, W, 3) uint8 RGB; see the module doc.

    Raises ValueError (no spec) on too few frames or frames that are not road scenes."""
    config = config or FitSimConfig()
    n, h, w = frames.shape[:3]
    if n < MIN_FRAMES:
        raise ValueError(
            f"too few frames: {n} (fit-sim needs at least {MIN_FRAMES}); no spec written"
        )
    base = resolve_spec(config.base)
    spec = base.model_dump(mode="json")
    result = FitResult(spec=spec, frames=n)
    scale = config.range_scale
    prior = Camera(h, w, base.camera.hfov.nominal, base.camera.distortion.nominal)
    real = Measure(frames, prior, config.seed)
    check_road_scene(real, n, h)
    s = real.scene
    # style and colours
    scores = style_scores(s["centre"], s["edge"], s["outer_gap"])
    result.style_scores = scores
    style = max(scores, key=scores.get)
    weights = {k: round(config.style_share * (k == style) + (1 - config.style_share) * wt, 4)
               for k, wt in _norm(base.visual.style.weights).items()}  # fmt: skip
    spec["visual"]["style"] = {"nominal": style, "weights": weights, "unit": "style"}
    snote = (f"centre line on {s['centre']:.0%} of rows, edge lines on {s['edge']:.0%}, "
             f"beyond the edges Lab distance {s['outer_gap']:.0f}; scores "
             + ", ".join(f"{k} {v:.2f}" for k, v in scores.items()))  # fmt: skip
    result.fitted["visual.style"] = Fitted(style, snote)
    _colours(spec, base, s, style, scale, result)
    if style == "centre_line" or style == "two_lane":
        coverage = s["centre"]
        if coverage > 0.8:
            gap = 0.0
        else:
            dash = base.visual.centre_dash.nominal
            gap = float(np.clip(dash * (1 - coverage) / max(coverage, 0.1), 0.05, 1.5))
        _set_range(spec, base, "visual.centre_gap", gap, scale, result,
                   f"centre line on {coverage:.0%} of rows (solid above 80%)")  # fmt: skip
    # neutral camera effects: the colours were measured through the real camera
    for name, value in (("hue", 0.0), ("gamma", 1.0), ("vignetting", 0.0)):
        _set_range(spec, base, f"image.{name}", value, scale, result, "neutral: in the colours")
    # the lens, rendered in the fitted style and colours, then the geometry read through it
    lens_hfov, lens_k, lens_note = fit_lens(frames, spec, config.seed)
    hfov, hfov_note = hfov_from_verticals(frames, real.horizon, lens_k)
    if hfov is not None:
        lens_hfov = hfov
    _set_range(spec, base, "camera.hfov", lens_hfov, scale, result,
               hfov_note if hfov is not None else f"{lens_note}; {hfov_note}")  # fmt: skip
    camera = Camera(h, w, lens_hfov, lens_k)
    real.camera = camera

    # camera pitch from the horizon, then the floor's width in camera heights
    pitch = camera.pitch_for_horizon(real.horizon)
    camera.pitch = pitch
    s = real.summary()
    hnote = (f"horizon row {real.horizon:.1f} of {h} (IQR {real.horizon_iqr:.1f} px, "
             f"{real.method}, found in {real.found}/{n} frames)")  # fmt: skip
    _set_range(spec, base, "camera.pitch", pitch, scale, result, hnote)
    _set_range(spec, base, "camera.distortion", lens_k, scale, result, lens_note)
    ratio = s["width_ratio"]
    width_prior = base.track.road_width.nominal
    fit_height = bool(np.isfinite(ratio) and s["width_rows"] >= max(20, 0.1 * s["rows"]))
    if fit_height:
        road_w = width_prior  # (within its range: the spec's Range checks that)
        wnote = (f"floor run {ratio:.2f} camera heights wide (median over {s['width_rows']} rows "
                 "with both edges in view); the frames fix width / height only")  # fmt: skip
        _set_range(spec, base, "camera.height", road_w / ratio, scale, result,
                   f"{wnote}, road width held at {road_w} m")  # fmt: skip
    else:
        result.fitted["camera.height"] = Fitted(
            base.camera.height.nominal,
            f"prior kept: both edges of the floor were in view on only {s['width_rows']} of "
            f"{s['rows']} measured rows",
        )
    if np.isfinite(real.board_ratio):
        cam_h = result.spec["camera"]["height"]["nominal"]
        _set_range(spec, base, "visual.board_height", cam_h * real.board_ratio, scale, result,
                   f"boards {real.board_ratio:.2f} x the camera's height {cam_h:.3f} m "
                   "(the slope of their tops against their feet)")  # fmt: skip
    real_px = s["run_px"] if fit_height else float("nan")
    _synthesis(frames, real, real_px, spec, base, scale, result, camera, config.seed)
    keep_fitted(result, base, config.fit)
    if config.fit != "geometry":  # on the spec as written: its look is what the sharpness sees
        apply_sharpness(result, base, scale, (h, w), real.floor_top, config.seed)
    validate_config(RandomizationSpec, result.spec, "fitted spec")
    return result


def apply_sharpness(result: FitResult, base: RandomizationSpec, scale: float,
                    size: tuple[int, int], floor_top: int, seed: int) -> None:  # fmt: skip
    """Blur or sharpen the spec's nominal world (`result.spec`) until its renders read the real
    frames' sharpness (`result.real_stats`). The sharpening's range at strength 1 is `scale`
    times its value either side when the base spec holds it fixed (the shipped spec does)."""
    fit = fit_sharpness(result.spec, result.real_stats["sharpness"], size, floor_top, seed)
    _set_range(result.spec, base, "image.blur", fit.blur, scale, result, fit.note)
    _set_range(result.spec, base, "image.sharpen", max(0.0, fit.position), scale, result,
               fit.note)  # fmt: skip
    entry, base_entry = result.spec["image"]["sharpen"], base.image.sharpen
    if base_entry.high == base_entry.low:
        x = entry["nominal"]
        entry.update(low=round(x * (1 - min(scale, 1.0)), 4), high=round(x * (1 + scale), 4))
        entry["high"] = min(entry["high"], type(base.image).LIMITS["sharpen"][1])
    result.sharpness = fit


def keep_fitted(result: FitResult, base: RandomizationSpec, fit: str) -> None:
    """Put the base spec's entries back for the fitted values `fit` leaves out ('geometry':
    all but GEOMETRY; 'geometry+sharpness': all but GEOMETRY and SHARPNESS, which
    apply_sharpness then fits on the spec as written; 'look': GEOMETRY; 'all': none); they
    stay in `result.fitted`, marked not applied, so the spec's comments still say what was
    measured."""
    if fit == "all":
        return
    base_spec = base.model_dump(mode="json")
    for key, fitted in result.fitted.items():
        if not applies(key, fit):
            group, name = key.split(".")
            result.spec[group][name] = base_spec[group][name]
            fitted.applied = False


def _norm(weights: dict[str, float]) -> dict[str, float]:
    total = sum(weights.values())
    return {k: weights.get(k, 0.0) / total for k in STYLES}


def _colours(spec: dict, base: RandomizationSpec, s: dict, style: str, scale: float,
             result: FitResult) -> None:  # fmt: skip
    rows = s["rows"]
    if s["road"] is not None:
        road = rgb_to_hsv(s["road"])
        _set_range(spec, base, "visual.road_color", road, scale, result,
                   f"median of the floor run on {rows} rows")  # fmt: skip
        if style in ("tape", "centre_line", "walls"):
            _set_range(spec, base, "visual.floor_color", road, scale, result,
                       "the bare floor = the floor run")  # fmt: skip
    if s["outer"] is not None:
        outer = rgb_to_hsv(s["outer"])
        target = {"walls": "visual.board_color", "two_lane": "visual.verge_color",
                  "single_lane": "visual.verge_color"}.get(style)  # fmt: skip
        if target:
            _set_range(
                spec,
                base,
                target,
                outer,
                scale,
                result,
                f"median beyond the floor run's edges (Lab distance {s['outer_gap']:.0f})",
            )
    if s["centre_rgb"] is not None and style in ("two_lane", "centre_line"):
        _set_range(
            spec,
            base,
            "visual.centre_color",
            rgb_to_hsv(s["centre_rgb"]),
            scale,
            result,
            f"line pixels in the run's middle on {s['centre']:.0%} of rows",
        )
    if s["edge_rgb"] is not None and style in ("two_lane", "single_lane", "tape"):
        _set_range(
            spec,
            base,
            "visual.edge_color",
            rgb_to_hsv(s["edge_rgb"]),
            scale,
            result,
            f"line pixels at the run's edges on {s['edge']:.0%} of rows",
        )
    _set_range(spec, base, "visual.wall_color", rgb_to_hsv(s["room_rgb"]), scale, result,
               "median above the horizon")  # fmt: skip


def _synthesis(frames: np.ndarray, real: Measure, real_px: float, spec: dict,
               base: RandomizationSpec, scale: float, result: FitResult, camera: Camera,
               seed: int) -> None:  # fmt: skip
    """Match the sim's image statistics and horizon to the real ones, a few rounds;
    `real_px` is the real floor run's width (px) the camera height is matched on (nan: the
    height keeps its prior)."""
    h, w = frames.shape[1:3]
    target = image_stats(frames, real.floor_top)
    result.real_stats = target
    image = spec["image"]
    for name, value in (("brightness", 1.0), ("contrast", 1.0), ("saturation", 1.0),
                        ("haze", 0.0)):  # fmt: skip
        image[name]["nominal"] = float(np.clip(value, image[name]["low"], image[name]["high"]))
    values = {k: image[k]["nominal"] for k in IMAGE_FIELDS}
    values["gloss"] = 0.0
    pitch = spec["camera"]["pitch"]["nominal"]
    height = spec["camera"]["height"]["nominal"]
    fit_height = bool(np.isfinite(real_px))  # (finite whenever the height was fitted)
    haze_rgb = hsv_to_rgb(tuple(spec["image"]["haze_color"]["nominal"])) / 255
    haze_luma = float(np.dot([0.299, 0.587, 0.114], haze_rgb))
    for round_ in range(ROUNDS):
        trial = _with_values(spec, values, pitch)
        trial["camera"]["height"]["nominal"] = height
        trial["camera"]["height"]["low"] = min(trial["camera"]["height"]["low"], height)
        trial["camera"]["height"]["high"] = max(trial["camera"]["height"]["high"], height)
        sim = render(trial, 0.0, SIM_FRAMES, seed + 1000 * round_, (h, w))
        sim_measure = Measure(sim, camera, seed, use_vp=real.use_vp)
        sim_m_horizon = sim_measure.horizon
        if fit_height:  # the floor run's width in px, read alike on sim frames at the same
            # rows below the matched horizon: lens and clipping biases cancel
            sim_px = sim_measure.scene["run_px"]
            if np.isfinite(sim_px):
                height = float(np.clip(height * (sim_px / real_px) ** 1.2, 0.03, 1.0))
        st = image_stats(sim, real.floor_top)
        result.sim_stats = st
        gains = (values["brightness"], values["contrast"], values["haze"])
        dark = (target["dark"] - st["dark"]) / 255
        values["haze"] = float(np.clip(values["haze"] + 0.7 * dark, 0, 0.5))
        # brightness and contrast solved together through the sim's affine pipeline: the
        # floor's luma (walls and room differ in share between real and sim), the frame's std
        values["brightness"], values["contrast"] = brightness_contrast(
            gains, values["haze"], haze_luma, (st["floor_luma"], st["luma_std"]),
            (target["floor_luma"], target["luma_std"]))  # fmt: skip
        step = (target["saturation"] / max(0.02, st["saturation"])) ** 0.7  # damped
        values["saturation"] = float(np.clip(values["saturation"] * step, 0.3, 2.5))
        ratio = st["sharpness"] / max(1e-6, target["sharpness"])
        values["blur"] = float(np.clip(values["blur"] + 0.6 * np.log2(max(ratio, 1e-3)), 0, 3))
        extra = values["noise"] ** 2 + target["noise"] ** 2 - st["noise"] ** 2
        values["noise"] = float(np.clip(np.sqrt(max(0.0, extra)), 0, 20))
        bright = target["bright_floor"] - st["bright_floor"]
        values["gloss"] = float(np.clip(values["gloss"] + 8 * bright, 0, 1))
        # the same reading on both (the detector's bias cancels), or none
        if np.isfinite(sim_m_horizon) and sim_measure.kind == real.kind:
            pitch += camera.pitch_for_horizon(real.horizon) - camera.pitch_for_horizon(
                sim_m_horizon
            )
            pitch = float(np.clip(pitch, -10, 60))
    notes = {
        "brightness": f"floor luma {target['floor_luma']:.0f} (sim {st['floor_luma']:.0f}), "
        f"frame luma {target['luma_mean']:.0f} (sim {st['luma_mean']:.0f})",
        "contrast": f"luma std {target['luma_std']:.0f} (sim {st['luma_std']:.0f})",
        "saturation": f"mean saturation {target['saturation']:.2f} (sim {st['saturation']:.2f})",
        "blur": f"sharpness {target['sharpness']:.3f} (sim {st['sharpness']:.3f})",
        "noise": f"noise {target['noise']:.1f} grey levels (sim {st['noise']:.1f})",
        "haze": f"dark level {target['dark']:.0f} (sim {st['dark']:.0f})",
    }
    for name in IMAGE_FIELDS:
        _set_range(spec, base, f"image.{name}", values[name], scale, result,
                   f"matched to the real frames: {notes[name]}")  # fmt: skip
    _set_range(spec, base, "visual.gloss", values["gloss"], scale, result,
               f"near-white floor pixels {target['bright_floor']:.2%} "
               f"(sim {st['bright_floor']:.2%})")  # fmt: skip
    note = result.fitted["camera.pitch"].note
    _set_range(spec, base, "camera.pitch", pitch, scale, result,
               f"{note}; corrected on sim renders")  # fmt: skip
    if fit_height:
        note = result.fitted["camera.height"].note
        _set_range(spec, base, "camera.height", height, scale, result,
                   f"{note}; corrected on sim renders")  # fmt: skip


def brightness_contrast(
    gains: tuple[float, float, float],
    haze: float,
    haze_luma: float,
    sim: tuple[float, float],
    target: tuple[float, float],
) -> tuple[float, float]:
    """(brightness, contrast) that move the sim's (mean, std) of luma (grey levels), measured
    under `gains` = (brightness b, contrast c, haze h), to the `target` (mean, std) once the
    haze is `haze`. The sim's image pipeline is affine in luma: the haze blend
    x' = (1 - h) x + h H (H = `haze_luma`, 0..1), then the lookup table y = b ((x' - 0.5) c +
    0.5). So the sim's statistics without it are read back through its inverse, and b, c
    solved for the target in one step. (Stepping each gain alone on its own ratio diverged on
    a dark floor: contrast pivots about mid-grey and darkens it, brightness chases it to its
    limit, and the haze's offset, amplified by both, made the fitted world far too bright.)"""
    b, c, h = gains
    mean = ((sim[0] / 255 / b - 0.5) / c + 0.5 - h * haze_luma) / (1 - h)
    std = sim[1] / 255 / (b * c * (1 - h))
    gain = target[1] / 255 / max(std, 1e-3)  # y = gain x + offset, over all three
    offset = target[0] / 255 - gain * mean
    bc = gain / (1 - haze)
    b_new = float(np.clip(2 * (offset - bc * (haze * haze_luma - 0.5)), 0.3, 2.5))
    return b_new, float(np.clip(bc / b_new, 0.3, 2.5))


def _with_values(spec: dict, values: dict[str, float], pitch: float) -> dict:
    import copy

    trial = copy.deepcopy(spec)
    for name in IMAGE_FIELDS:
        entry = trial["image"][name]
        entry["nominal"] = float(values[name])
        entry["low"], entry["high"] = (
            min(entry["low"], entry["nominal"]),
            max(entry["high"], entry["nominal"]),
        )
    g = trial["visual"]["gloss"]
    g["nominal"], g["high"] = values["gloss"], max(g["high"], values["gloss"])
    p = trial["camera"]["pitch"]
    p["nominal"], p["low"], p["high"] = pitch, min(p["low"], pitch), max(p["high"], pitch)
    return trial


def spec_yaml(result: FitResult, sources: Sequence[str | Path], config: FitSimConfig) -> str:
    """The spec as YAML, its fitted values and their confidence in comments."""
    import datetime

    import yaml

    lines = [
        f"# Randomization spec fitted by `sim2real fit-sim` "
        f"({datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC)",
        f"# to {result.frames} real frames of: {', '.join(str(s) for s in sources)}",
        f"# (span {config.span[0]}-{config.span[1]} of each recording).",
        "# strength 0 = the fitted world; strength 1 = ranges of "
        f"{config.range_scale} x the base spec's half-widths around it.",
        f"# fit: {config.fit} (values marked `# measured, not applied:` keep the base spec's).",
        "# Lines marked `# fitted:` say what was measured and how sure the fit is.",
    ]
    if result.clipped:
        lines.append("# CLIPPED to the spec's physical limits:")
        lines.extend(f"#   {c}" for c in result.clipped)
    for group, entries in result.spec.items():
        lines.append(f"{group}:")
        for name, entry in entries.items():
            text = yaml.safe_dump(entry, default_flow_style=True, width=10_000).strip()
            fit = result.fitted.get(f"{group}.{name}")
            comment = ""
            if fit:
                comment = f"  # {'fitted' if fit.applied else 'measured, not applied'}: {fit.note}"
            if fit and fit.clipped:
                comment += f" [CLIPPED: {fit.clipped}]"
            lines.append(f"  {name}: {text}{comment}")
    return "\n".join(lines) + "\n"
