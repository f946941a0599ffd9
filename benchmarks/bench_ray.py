"""Wall time of a study grid with the local executor vs Ray with 1 and 2 workers on this
machine, and the speed-up to expect on N machines from the measured per-cell costs.

Run by hand (each setup computes the whole grid in a fresh folder under --out):

    python benchmarks/bench_ray.py --out /tmp/bench_ray                  # local, ray1, ray2
    python benchmarks/bench_ray.py --out /tmp/bench_ray --setups ray2    # one of them
    python benchmarks/bench_ray.py --estimate /tmp/bench_ray/local       # estimate only
    python benchmarks/bench_ray.py --estimate STUDY --plan transfer_gap --real TUB

Setups (2 CPUs): ``local``: `LocalExecutor`, one cell at a time with the config's threads;
``ray1``: Ray with one cell at a time on 2 CPUs (the same threads: Ray's own overhead);
``ray2``: Ray with two cells at a time, 1 CPU, 1 thread and 1 sim worker each;
``local1``: the local executor with ray2's 1 thread and 1 sim worker (ray2's baseline: the
same numbers, one cell at a time).

The estimate models a cluster of N machines like this one, each running one cell at a time
at the cost measured here. The study runs its stages one after another (recordings and
starts, pretraining, domain gap, fine-tuning), so each stage takes the longest-first greedy
schedule of its cells on N machines, and the driver's own time (planning, the report) stays
serial: T(N) = driver + sum over stages of makespan(stage, N); speed-up = T(1) / T(N).
With --plan, the cells of that config's grid are costed with the measured cells of the same
id, else the median measured cost of like cells (fine-tunes: same mode and real frames, else
same mode; others: same kind).
"""

from __future__ import annotations

import argparse
import heapq
import json
import statistics
import time
from pathlib import Path

from sim2real.common.io import atomic_write_json
from sim2real.common.machine import load_average, load_text, machine_info
from sim2real.experiments.grid import Cell, LocalExecutor
from sim2real.experiments.study import StudyConfig, load_study_config, packaged_config, run_study

STAGES = {
    "simulate": "recordings",
    "init": "recordings",
    "external": "recordings",
    "pretrain": "pretraining",
    "gap": "domain gap",
    "run": "fine-tuning",
}
"""cell kind -> the study stage it runs in (stages run one after another)"""
SETUPS = {
    "local": {"ray": False, "threads": None, "workers": None},
    "local1": {"ray": False, "threads": 1, "workers": 1},
    "ray1": {"ray": True, "cpus_per_cell": 2, "threads": None, "workers": None},
    "ray2": {"ray": True, "cpus_per_cell": 1, "threads": 1, "workers": 1},
}
MACHINES = (1, 2, 4, 8, 16, 64)


def cell_results(out: Path) -> dict[str, dict]:
    """Every finished cell's result.json under `out`/cells, by cell id."""
    return {
        path.parent.name: json.loads(path.read_text())
        for path in sorted((out / "cells").glob("*/result.json"))
    }


def _strip_times(value):
    if isinstance(value, dict):
        return {k: _strip_times(v) for k, v in value.items() if "seconds" not in k}
    if isinstance(value, list):
        return [_strip_times(v) for v in value]
    return value


def run_setup(name: str, config: StudyConfig, out: Path, num_cpus: int) -> dict:
    """Run the whole grid with setup `name` in the fresh folder `out`; timing and load."""
    setup = SETUPS[name]
    config = config.model_copy(deep=True)
    config.runtime.progress = False
    if setup["threads"]:
        config.runtime.num_threads = setup["threads"]
    if setup["workers"]:
        config.runtime.workers = setup["workers"]
    before = load_average()
    started = time.perf_counter()
    if setup["ray"]:
        from sim2real.experiments.ray_executor import RayExecutor

        executor = RayExecutor(
            num_cpus=num_cpus, cpus_per_cell=setup["cpus_per_cell"], log_to_driver=False
        )
    else:
        executor = LocalExecutor()
    ready = time.perf_counter() - started
    log = (out.parent / f"{name}.log").open("w")
    try:
        run = run_study(config, out, executor=executor, log_line=lambda s: print(s, file=log))
    finally:  # run_study closes the executor (and Ray) itself; this covers a failed plan
        executor.close()
        log.close()
    wall = time.perf_counter() - started
    cells = cell_results(out)
    return {
        "setup": name,
        "wall_s": round(wall, 1),
        "executor_start_s": round(ready, 1),
        "cells": len(cells),
        "cell_seconds_sum": round(sum(c["seconds"] for c in cells.values()), 1),
        "failures": [f"{f.cell.label}: {f.error}" for f in run.failures],
        "machine": machine_info(before),
    }


def same_results(a: Path, b: Path) -> tuple[int, int]:
    """(cells with identical results, cells compared) between two study folders."""
    ra, rb = cell_results(a), cell_results(b)
    common = set(ra) & set(rb)
    same = sum(_strip_times(ra[c]["result"]) == _strip_times(rb[c]["result"]) for c in common)
    return same, len(common)


def makespan(costs: list[float], machines: int) -> float:
    """Longest-first greedy schedule of independent cells on `machines` (seconds)."""
    loads = [0.0] * min(machines, max(len(costs), 1))
    for cost in sorted(costs, reverse=True):
        heapq.heapreplace(loads, loads[0] + cost)
    return max(loads)


def _groups(cell_kind: str, config: dict) -> list[str]:
    """Groups of like cost, closest first: fine-tunes by (mode, real frames), then mode."""
    if cell_kind != "run":
        return [cell_kind]
    mode = config.get("mode")
    return [f"run/{mode}/{config.get('frames')}", f"run/{mode}"]


def stage_costs(results: dict[str, dict], cells: list[Cell] | None = None) -> dict:
    """Per stage, the cost (s) of each cell: measured, or (for `cells` not measured) the
    median measured cost of its group; returns {stage: [seconds]} and the guessed count."""
    if cells is None:
        measured = [(r["kind"], r["config"], r["seconds"]) for r in results.values()]
        stages: dict[str, list[float]] = {}
        for kind, _, seconds in measured:
            stages.setdefault(STAGES[kind], []).append(seconds)
        return {"stages": stages, "guessed": 0, "unknown": 0}
    by_group: dict[str, list[float]] = {}
    for r in results.values():
        for group in _groups(r["kind"], r["config"]):
            by_group.setdefault(group, []).append(r["seconds"])
    stages, guessed, unknown = {}, 0, 0
    for cell in cells:
        like = [by_group[g] for g in _groups(cell.kind, cell.config) if by_group.get(g)]
        if cell.id in results:
            cost = results[cell.id]["seconds"]
        elif like:
            cost, guessed = statistics.median(like[0]), guessed + 1
        else:
            unknown += 1
            continue
        stages.setdefault(STAGES[cell.kind], []).append(cost)
    return {"stages": stages, "guessed": guessed, "unknown": unknown}


def estimate(stages: dict[str, list[float]], driver: float) -> list[dict]:
    """T(N) and speed-up on N machines (one cell at a time each) for N in MACHINES and inf."""
    order = ["recordings", "pretraining", "domain gap", "fine-tuning"]
    total = driver + sum(sum(c) for c in stages.values())
    rows = []
    for n in (*MACHINES, None):
        parts = {
            s: (max(stages[s]) if n is None else makespan(stages[s], n))
            for s in order
            if stages.get(s)
        }
        wall = driver + sum(parts.values())
        rows.append({"machines": n or "inf", "wall_s": wall, "speedup": total / wall, **parts})
    return rows


def print_estimate(stages: dict[str, list[float]], driver: float) -> None:
    counts = ", ".join(f"{s} {len(c)} cells {sum(c):.0f} s" for s, c in stages.items())
    print(f"measured cost per stage: {counts}; driver (serial) {driver:.0f} s")
    for row in estimate(stages, driver):
        critical = ", ".join(
            f"{s} {row[s]:.0f}"
            for s in ("recordings", "pretraining", "domain gap", "fine-tuning")
            if s in row
        )
        print(
            f"  N={row['machines']!s:>4}: {row['wall_s']:8.0f} s  speed-up {row['speedup']:5.2f}"
            f"  ({critical})"
        )


def plan_cells(config: StudyConfig, out: Path, gap_from: dict[str, dict]) -> list[Cell]:
    """Every cell of `config`'s grid; the recommended freeze uses a measured gap when one
    of the plan's gap cells was measured, else a flat placeholder gap."""
    from sim2real.experiments.study import plan_runs, plan_upstream

    plan = plan_upstream(config, out)
    gaps = {}
    for name, start in plan.starts.items():
        if start.gap is None:
            continue
        if start.gap.id in gap_from:
            gaps[name] = gap_from[start.gap.id]["result"]
        else:
            gaps[name] = {"stages": {s: {"proxy_a_distance": 1.0} for s in plan.stage_names}}
    starts = plan.starts.values()
    upstream = [plan.sim_test, *(s.sim for s in starts), *(s.cell for s in starts)]
    upstream += [s.gap for s in starts if s.gap is not None]
    unique = {c.id: c for c in upstream + plan_runs(plan, gaps)}
    return list(unique.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="bench folder (one fresh study per setup)")
    parser.add_argument("--config", default="quickstart", help="packaged name or YAML")
    parser.add_argument(
        "--setups", nargs="+", choices=sorted(SETUPS), default=["local", "ray1", "ray2"]
    )
    parser.add_argument("--num-cpus", type=int, default=2, help="CPUs of the local Ray")
    parser.add_argument("--estimate", type=Path, help="only estimate, from this study folder")
    parser.add_argument("--wall", type=float, help="its measured wall time (driver = wall - cells)")
    parser.add_argument("--plan", help="cost this config's grid (packaged name or YAML)")
    parser.add_argument("--real", nargs="+", help="real data of --plan")
    args = parser.parse_args()

    if args.estimate:
        results = cell_results(args.estimate)
        cells = None
        if args.plan:
            path = Path(args.plan) if Path(args.plan).is_file() else packaged_config(args.plan)
            config = load_study_config(path, {"real_data": args.real} if args.real else None)
            cells = plan_cells(config, args.estimate, results)
        costed = stage_costs(results, cells)
        measured = sum(r["seconds"] for r in results.values())
        driver = max(0.0, args.wall - measured) if args.wall else 0.0
        print(
            f"{args.estimate}: {len(results)} measured cells; "
            f"{costed['guessed']} costed by their group's median, {costed['unknown']} unknown"
        )
        print_estimate(costed["stages"], driver)
        return

    if args.out is None:
        parser.error("--out is needed to run setups")
    path = Path(args.config) if Path(args.config).is_file() else packaged_config(args.config)
    config = load_study_config(path)
    summaries = []
    for name in args.setups:
        out = args.out / name
        if out.exists():
            raise SystemExit(f"{out} exists: the benchmark needs a fresh folder per setup")
        out.parent.mkdir(parents=True, exist_ok=True)
        summary = run_setup(name, config, out, args.num_cpus)
        summaries.append(summary)
        print(json.dumps(summary))
    atomic_write_json(args.out / f"summary_{int(time.time())}.json", summaries)
    print(f"\n{'setup':<6} {'wall s':>7} {'cells':>5} {'sum cell s':>10}  load before -> after")
    for s in summaries:
        print(
            f"{s['setup']:<6} {s['wall_s']:7.1f} {s['cells']:5d} {s['cell_seconds_sum']:10.1f}"
            f"  {load_text(s['machine']['load_before'])} -> {load_text(s['machine']['load_after'])}"
        )
    names = [s["setup"] for s in summaries]
    for other in names[1:]:
        same, total = same_results(args.out / names[0], args.out / other)
        print(f"{other} vs {names[0]}: {same}/{total} cells with identical results")
    first = summaries[0]
    if first["setup"] == "local":
        print(f"\nestimate for N machines from the local run ({args.out / 'local'}):")
        stages = stage_costs(cell_results(args.out / "local"))["stages"]
        print_estimate(stages, max(0.0, first["wall_s"] - first["cell_seconds_sum"]))


if __name__ == "__main__":
    main()
