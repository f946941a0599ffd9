"""Ray: a tiny grid gives the local executor's results cell for cell, a cell whose worker is
killed is retried and the grid completes, and Ray sim recording equals one process's tub.

One local Ray (2 CPUs) serves the whole module: starting one costs seconds.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from sim2real.experiments.grid import (  # noqa: E402
    Cell,
    CellStore,
    LocalExecutor,
    StepContext,
    register_step,
    run_cells,
)
from sim2real.experiments.ray_executor import RayExecutor, RaySession, ray_map  # noqa: E402
from sim2real.experiments.study import StudyConfig, run_study  # noqa: E402

# the steps below are registered here, not in sim2real: Ray workers get them by value
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


@pytest.fixture(scope="module")
def ray_session():
    session = RaySession(num_cpus=2, log_to_driver=False)
    yield session
    session.close()


@register_step("test_ray_attempt")
def _attempt(ctx: StepContext) -> dict:
    """Logs each attempt (pid) to a file; on request, its first attempt SIGKILLs its own
    worker (a crash Ray must retry) or it raises (an error Ray must not retry)."""
    log = Path(ctx.cell.config["log"])
    with log.open("a") as handle:
        handle.write(f"{os.getpid()}\n")
    attempts = log.read_text().split()
    (ctx.work / f"attempt{len(attempts)}").touch()
    if ctx.cell.config.get("fail"):
        raise ValueError("asked to fail")
    if ctx.cell.config.get("crash") and len(attempts) == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    return {"attempts": len(attempts), "pids": attempts, "resumed": ctx.resume}


def _attempt_cells(root: Path) -> dict[str, Cell]:
    return {
        name: Cell("test_ray_attempt", {"log": str(root / f"{name}.log"), name: True})
        for name in ("crash", "fail", "plain")
    }


def test_ray_retries_a_killed_worker_and_not_a_failing_step(ray_session, tmp_path):
    store = CellStore(tmp_path)
    cells = _attempt_cells(tmp_path)
    outcomes = run_cells(cells.values(), store, RayExecutor(), log=lambda _: None)
    crash = outcomes[cells["crash"].id]
    assert crash.ok, crash.error
    # the retry ran in a new worker and resumed the killed attempt's partial folder
    assert crash.result["attempts"] == 2 and crash.result["resumed"]
    assert len(set(crash.result["pids"])) == 2
    assert (store.path(cells["crash"].id) / "attempt1").is_file()
    assert store.is_done(cells["crash"].id) and store.is_done(cells["plain"].id)
    failed = outcomes[cells["fail"].id]
    assert "asked to fail" in failed.error and not store.is_done(cells["fail"].id)
    assert len((tmp_path / "fail.log").read_text().split()) == 1  # not retried
    assert ray_session.ray.is_initialized()  # the executor joined the session, left it up


@pytest.mark.slow  # a second worker kill: ~4 s that the default suite's budget lacks
def test_ray_without_retries_reports_the_dead_worker_and_finishes_the_rest(ray_session, tmp_path):
    store = CellStore(tmp_path)
    cells = _attempt_cells(tmp_path)
    del cells["fail"]
    outcomes = run_cells(cells.values(), store, RayExecutor(max_retries=0), log=lambda _: None)
    assert "worker died" in outcomes[cells["crash"].id].error
    assert not store.is_done(cells["crash"].id)
    assert store.partial_path(cells["crash"].id).is_dir()  # a rerun resumes it
    assert outcomes[cells["plain"].id].ok and store.is_done(cells["plain"].id)


def test_ray_cell_resources_follow_the_runtime(ray_session):
    executor = RayExecutor()
    train = Cell("run", {}, runtime={"num_threads": 2, "device": "cuda"})
    assert executor.resources(train) == {"num_cpus": 2.0, "num_gpus": 1.0}
    cpu = Cell("pretrain", {}, runtime={"device": "auto"})  # no GPU in this Ray
    assert executor.resources(cpu) == {"num_cpus": 1.0, "num_gpus": 0.0}
    sim = Cell("simulate", {}, runtime={"workers": 3, "num_threads": 1, "device": "cuda"})
    assert executor.resources(sim) == {"num_cpus": 3.0, "num_gpus": 0.0}
    assert RayExecutor(cpus_per_cell=0.5).resources(sim)["num_cpus"] == 0.5


TINY_RAY = {
    "name": "tiny_ray",
    "sim": {"frames": 40, "test_frames": 20, "chunk_frames": 20},
    "pretrain": {"strengths": [1.0], "split_gap": 0, "train": {"epochs": 1, "batch_size": 16}},
    "finetune": {"train": {"epochs": 1, "batch_size": 16, "patience": 0}},
    "gap": {"max_frames": 40},
    "grid": {
        "frames": [0, 20],
        "arms": ["transfer_recommended", "scratch"],
        "seeds": [0],
        "freeze_sweep": {"frames": []},
        "other_starts_frames": [],
    },
    "evaluate": {"bootstrap": 10, "closed_loop": "none"},
    "runtime": {"progress": False, "num_threads": 1},
}
"""test_experiment_study's TINY grid with one pretraining strength and no closed loop"""


def _results(out: Path) -> dict[str, dict]:
    """Every cell's result.json without its wall times."""

    def strip(value):
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if "seconds" not in k}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return {
        path.parent.name: strip(json.loads(path.read_text()))
        for path in (out / "cells").glob("*/result.json")
    }


def _weights(out: Path) -> dict[str, tuple[dict, bytes]]:
    """Every checkpoint's safetensors header (parsed: its metadata's key order varies from
    process to process) and tensor bytes."""
    weights = {}
    for path in sorted((out / "cells").glob("*/**/model.safetensors")):
        data = path.read_bytes()
        size = int.from_bytes(data[:8], "little")
        weights[str(path.relative_to(out))] = (json.loads(data[8 : 8 + size]), data[8 + size :])
    return weights


def test_ray_tiny_grid_reproduces_the_local_executor_cell_for_cell(ray_session, tmp_path):
    config = StudyConfig.model_validate(
        {**TINY_RAY, "runtime": {**TINY_RAY["runtime"], "cache_dir": str(tmp_path / "frames")}}
    )
    runs = {}
    for name, executor in (("local", LocalExecutor()), ("ray", RayExecutor())):
        runs[name] = run_study(
            config, tmp_path / name, executor=executor, log_line=lambda _: None, report=False
        )
        assert not runs[name].failures, [f.error for f in runs[name].failures]
    assert set(runs["ray"].outcomes) == set(runs["local"].outcomes)
    assert len(runs["ray"].computed) == len(runs["ray"].outcomes) >= 7
    local, remote = _results(tmp_path / "local"), _results(tmp_path / "ray")
    assert set(remote) == set(local)
    for cell_id, result in local.items():
        assert remote[cell_id] == result, cell_id
    weights = _weights(tmp_path / "local")
    assert len(weights) >= 3 and _weights(tmp_path / "ray") == weights


def _tub(path: Path) -> tuple[list[dict], dict[str, bytes]]:
    """Catalog lines and image bytes: everything but creation times (and `_timestamp_ms`,
    which counts from the tub's creation)."""
    lines = [
        {k: v for k, v in json.loads(line).items() if k != "_timestamp_ms"}
        for p in sorted(path.glob("catalog_*.catalog"))
        for line in p.read_text().splitlines()
    ]
    return lines, {p.name: p.read_bytes() for p in sorted((path / "images").iterdir())}


def test_ray_sim_recording_equals_the_local_recording_byte_for_byte(ray_session, tmp_path):
    from sim2real.experiments.cli import main
    from sim2real.experiments.simulate import SimulateConfig, simulate

    fields = {"seed": 3, "frames": 60, "chunk_frames": 20, "image_height": 64, "image_width": 64}
    local = simulate(tmp_path / "local", SimulateConfig(**fields), progress=False)
    (tmp_path / "sim.yaml").write_text(json.dumps(fields))  # JSON is YAML
    command = ["simulate", "--config", str(tmp_path / "sim.yaml"), "--out", str(tmp_path / "ray")]
    assert main([*command, "--executor", "ray", "--no-progress"]) == 0
    assert _tub(tmp_path / "ray") == _tub(local)
    assert len(_tub(local)[1]) == 60
    assert ray_session.ray.is_initialized()  # the command joined this Ray, did not stop it


def test_ray_map_keeps_item_order_with_a_small_window(ray_session):
    # earlier items take longer, so tasks finish out of order
    assert list(ray_map(_slow_square, range(6), window=3)) == [n * n for n in range(6)]
    assert list(ray_map(_slow_square, [])) == []


def _slow_square(n: int) -> int:
    time.sleep(0.05 * (6 - n))
    return n * n


DRIVER = """
import sys, time
from pathlib import Path
from sim2real.experiments.grid import Cell, CellStore, register_step, run_cells
from sim2real.experiments.ray_executor import RayExecutor

@register_step("test_ray_driver")
def step(ctx):
    with Path(ctx.cell.config["log"]).open("a") as handle:
        handle.write("attempt\\n")
    release = Path(ctx.cell.config["release"]) if ctx.cell.config["release"] else None
    while release is not None and not release.exists():
        time.sleep(0.1)
    return {"resumed": ctx.resume}

def cells(root):
    return [
        Cell("test_ray_driver", {"log": str(root / f"{n}.log"), "release": release})
        for n, release in (("quick", None), ("held", str(root / "release")))
    ]

if __name__ == "__main__":
    root = Path(sys.argv[1])
    run_cells(cells(root), CellStore(root), RayExecutor(num_cpus=2), log=print)
"""


@pytest.mark.slow
def test_ray_driver_killed_mid_grid_loses_no_finished_cell(ray_session, tmp_path):
    """The driver (with its own local Ray) is SIGKILLed while one cell still runs; a rerun
    reads the finished cell from the store and resumes the other one's partial folder."""
    import runpy
    import subprocess

    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    root = tmp_path / "root"
    driver = subprocess.Popen([sys.executable, str(script), str(root)])
    try:
        quick_done = root / "cells"
        deadline = time.monotonic() + 120
        while not list(quick_done.glob("test_ray_driver-*/result.json")):
            assert driver.poll() is None and time.monotonic() < deadline
            time.sleep(0.2)
        while not (root / "held.log").exists():
            assert time.monotonic() < deadline
            time.sleep(0.2)
    finally:
        driver.kill()
        driver.wait()
    (root / "release").touch()
    module = runpy.run_path(str(script))  # registers the step here; Ray ships it by value
    cells = module["cells"](root)
    store = CellStore(root)
    outcomes = run_cells(cells, store, RayExecutor(), log=lambda _: None)
    quick, held = (outcomes[c.id] for c in cells)
    assert quick.cached and (root / "quick.log").read_text().count("attempt") == 1
    assert held.ok and held.result == {"resumed": True}
    assert (root / "held.log").read_text().count("attempt") == 2
