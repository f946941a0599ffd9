"""The study's results: one record per run cell, aggregated across seeds into the tables of
results.json, and read back from it.

Every function here is a function of plain data (the records and results.json), so the report
can be redrawn from results.json alone: aggregates across seeds (mean and a 95% t interval;
the mean of the cells' block-bootstrap 95% intervals beside it), the learning curves, the
freeze-depth sweep, the other starts, and the headline ("with N real frames, transfer matches
scratch with M frames"), found by interpolating the scratch curve in log N. Nothing here
imports the study: the study writes results.json with these functions, the report reads it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

METRICS = ("steering_r2", "steering_mae", "steering_pearson_r")
RESULTS_FILE = "results.json"
STRIP_FILE = "strip.npz"
"""the predictions cell's frame strip: images (n, H, W, 3) uint8 RGB, truth (n,) and
predictions (k, n) float32, one row per network of results["predictions"]["strip"]"""


def read_results(out: str | Path) -> dict[str, Any]:
    """results.json of the study in `out` (FileNotFoundError / ValueError naming the file)."""
    path = Path(out) / RESULTS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no results.json (run the study there first)")
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from error
    if not isinstance(results, dict):
        raise ValueError(f"{path}: not a study's results.json (not a JSON object)")
    missing = [k for k in ("name", "runs", "curves", "headline", "starts") if k not in results]
    if missing:
        raise ValueError(f"{path}: not a study's results.json (missing {missing})")
    return results


def read_strip(path: str | Path) -> dict[str, np.ndarray]:
    """The arrays of a strip.npz (images, truth, predictions); never unpickles."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in ("images", "truth", "predictions")}
    except (OSError, KeyError, ValueError) as error:
        raise ValueError(f"{path}: not a frame strip written by the study ({error})") from error


def json_clean(value: Any) -> Any:
    """`value` as strict JSON data: NaN/inf -> None, numpy scalars -> Python, Path -> str."""
    if isinstance(value, dict):
        return {str(k): json_clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_clean(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, np.generic):
        return json_clean(value.item())
    if isinstance(value, Path):
        return str(value)
    return value


# ----------------------------------------------------------------------------------------
# aggregates


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


def learning_curves(
    records: Sequence[dict[str, Any]],
    recommended: Mapping[int, int],
    ladder_arms: Mapping[str, str],
) -> dict[str, list[dict[str, Any]]]:
    """Per arm, one point per N (> 0) with the across-seed aggregate of the real metrics.

    `recommended`: the main start's recommended freeze by N; `ladder_arms`: arm -> the freeze
    value ("auto" or a ladder rung) its cells ran with. Ladder arms appear only where the grid
    ran them; their "freeze" says what auto picked, per seed.
    """
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
    for arm, freeze in ladder_arms.items():
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
            elif arm in ladder_arms:  # what auto picked, per seed
                picks = [r["ladder_pick"] for r in group if r.get("ladder_pick")]
                point["freeze"] = "/".join(picks) if picks else ladder_arms[arm]
            points.append(point)
        if points or arm not in ladder_arms:
            curves[arm] = points
    return curves


def freeze_sweeps(
    records: Sequence[dict[str, Any]],
    frames: Iterable[int],
    seeds: Iterable[int],
    recommended: Mapping[int, int],
) -> tuple[dict[str, list[dict[str, Any]]], dict[str, dict[str, Any]]]:
    """The freeze-depth sweep of the main start at each N of `frames`, averaged over the
    sweep's `seeds` only (so every depth has the same seeds): (points by N, and per N the
    best depth beside the recommended one)."""
    seeds = set(seeds)
    sweeps: dict[str, list[dict[str, Any]]] = {}
    checks: dict[str, dict[str, Any]] = {}
    for n in sorted(frames):
        group = [
            r
            for r in records
            if r["start"] == "main"
            and r["mode"] == "transfer"
            and r["frames"] == n
            and r["seed"] in seeds
            and not isinstance(r["freeze"], str)  # depths only, not auto / ladder rungs
        ]
        ks = sorted({r["freeze"] for r in group})
        points = [{"freeze": k, **aggregate([r for r in group if r["freeze"] == k])} for k in ks]
        if not points:
            continue
        best = max(points, key=lambda p: or_minus_inf(p["steering_r2"]["mean"]))
        sweeps[str(n)] = points
        checks[str(n)] = {
            "recommended": recommended.get(n),
            "best_k": best["freeze"],
            "best_r2": best["steering_r2"]["mean"],
            "recommended_r2": next(
                (p["steering_r2"]["mean"] for p in points if p["freeze"] == recommended.get(n)),
                None,
            ),
        }
    return sweeps, checks


def or_minus_inf(value: float | None) -> float:
    return -np.inf if value is None else value


def other_starts(
    records: Sequence[dict[str, Any]], starts: Mapping[str, dict[str, Any]]
) -> dict[str, list[dict[str, Any]]]:
    """Per start but scratch: its transfer cells at its recommended freeze, by N."""
    out = {}
    for name, start in starts.items():
        if name == "scratch":
            continue
        recommendation = start.get("recommendation", {})
        group = [
            r
            for r in records
            if r["start"] == name
            and r["mode"] == "transfer"
            and r["freeze"] == recommendation.get(str(r["frames"]), {}).get("freeze")
        ]
        out[name] = [
            {"frames": n, **aggregate([r for r in group if r["frames"] == n])}
            for n in sorted({r["frames"] for r in group})
        ]
    return out


def zero_shot(records: Sequence[dict[str, Any]], names: Iterable[str]) -> dict[str, Any]:
    """Per start (scratch left out): its zero-shot scores (raw, calibrated, sim, closed loop),
    or None when it has no zero-shot cell."""
    out = {}
    for name in names:
        if name == "scratch":
            continue
        out[name] = next(
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
    return out


# ----------------------------------------------------------------------------------------
# the headline


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
    out["sentence"] = _headline_sentence(pick)
    out["at"] = pick
    n, r2 = pick["frames"], pick["transfer_r2"]
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


def _headline_sentence(pick: dict[str, Any]) -> str:
    n, m, rel = pick["frames"], pick["scratch_frames"], pick["relation"]
    r2 = pick["transfer_r2"]
    if rel == "=":
        return f"with {n} real frames, transfer (R^2 {r2:.3f}) matches scratch with ~{m} frames"
    if rel == "<=":
        return (
            f"with {n} real frames, transfer (R^2 {r2:.3f}) is matched by scratch already "
            f"at its smallest size ({m} frames)"
        )
    if rel == ">":
        return (
            f"with {n} real frames, transfer (R^2 {r2:.3f}) beats scratch at every size "
            f"tried, up to {m} frames"
        )
    return f"with {n} real frames, transfer reaches R^2 {r2:.3f}; no scratch curve"


# ----------------------------------------------------------------------------------------
# rows the report draws, read from results.json


def display(name: str, results: dict[str, Any]) -> str:
    """A start's name for readers: "sim s=1 (main)", "sim s=0", "policy", "scratch"."""
    start = results["starts"].get(name, {})
    if start.get("kind") == "perception" and start.get("strength") is not None:
        return f"sim s={start['strength']:g}" + (" (main)" if name == "main" else "")
    if start.get("kind") == "checkpoint":
        return f"{Path(start['source']).name} (main)"
    return name


def sim_vs_real_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Sim and real steering MAE of the same networks: every zero-shot start, then transfer
    (main start) and scratch at the largest and the smallest N (lowest freeze and seed)."""
    rows = []
    for name, z in results["zero_shot"].items():
        if z:
            rows.append(
                {
                    "name": f"{display(name, results)} zero-shot",
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


def starts_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Raw and scale-calibrated zero-shot steering R^2 of every start."""
    return [
        {
            "name": display(name, results),
            "raw": z["raw"]["steering_r2"],
            "calibrated": z["calibrated"]["steering_r2"],
        }
        for name, z in results["zero_shot"].items()
        if z
    ]


def domain_gaps(results: dict[str, Any]) -> dict[str, Any]:
    """Per-stage domain gap by start (display name), for the starts that measured one."""
    return {display(n, results): s["gap"] for n, s in results["starts"].items() if "gap" in s}
