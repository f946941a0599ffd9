"""Run grid cells and sim chunks on Ray: this machine's cores or a cluster (``sim2real[ray]``).

`RayExecutor` ships each cell to `execute_cell` as a Ray task that declares what it needs
(CPUs from the runtime threads, a GPU for training cells on a cuda device) and yields outcomes
as tasks finish. A task whose worker dies (killed, out of memory, node lost) is retried up to
`max_retries` times and resumes the cell's ``.partial`` folder; an exception in a step is an
outcome with an error, not retried. Cells commit themselves into the root, so the root must be
on a file system every worker sees, and a dead driver loses no finished cell: rerun to resume.

`ray_map` maps a function over items as Ray tasks and yields results in item order: with
`simulate(..., map_chunks=ray_map)` sim chunks are recorded across the cluster and written in
chunk order, byte for byte the tub that one process records.

`RaySession` joins a Ray already initialised in this process (and then never shuts it down),
connects to `address`, or starts a local Ray (no dashboard, quiet logging).
"""

from __future__ import annotations

import argparse
import logging
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from sim2real.experiments.cli import UserError
from sim2real.experiments.grid import STEPS, Cell, CellOutcome, Executor, execute_cell

T = TypeVar("T")
R = TypeVar("R")

INSTALL_HINT = "Ray is not installed: pip install sim2real[ray]"
TRAINING_KINDS = frozenset({"pretrain", "run"})
"""cell kinds that train or run networks on the runtime device (the ones that get a GPU)"""
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


class RayUnavailable(UserError, ImportError):
    """Ray was asked for but is not installed."""


def import_ray() -> Any:
    """The `ray` module, or `RayUnavailable` naming the extra to install."""
    try:
        import ray
    except ImportError as exc:
        raise RayUnavailable(INSTALL_HINT) from exc
    return ray


class RaySession:
    """Ray in this process: joined if initialised, else started here (and stopped by `close`).

    address: an existing cluster ("auto" or the head's "HOST:PORT"); None starts a
    local Ray with `num_cpus` CPUs (None: all of this machine's) and `num_gpus` GPUs.
    """

    def __init__(
        self,
        address: str | None = None,
        *,
        num_cpus: int | None = None,
        num_gpus: int | None = None,
        log_to_driver: bool = True,
    ) -> None:
        self.ray = import_ray()
        self.started = False
        if self.ray.is_initialized():
            return
        if address and (num_cpus is not None or num_gpus is not None):
            raise ValueError("num_cpus/num_gpus size a local Ray, not a cluster at an address")
        kwargs: dict[str, Any] = {
            "include_dashboard": False,
            "logging_level": logging.ERROR,
            "log_to_driver": log_to_driver,
        }
        if address:
            kwargs["address"] = address
        else:
            kwargs |= {"num_cpus": num_cpus, "num_gpus": num_gpus}
        self.ray.init(**kwargs)
        self.started = True

    def resources(self) -> dict[str, float]:
        """The cluster's total resources ({"CPU": 2.0, "GPU": 0.0, ...})."""
        return self.ray.cluster_resources()

    def close(self) -> None:
        """Shut Ray down if this session started it (a joined Ray is left running)."""
        if self.started and self.ray.is_initialized():
            self.ray.shutdown()
        self.started = False


def thread_env(threads: int) -> dict[str, str]:
    """Environment of a worker running `threads` math threads (OpenMP, MKL, OpenBLAS)."""
    return dict.fromkeys(THREAD_VARIABLES, str(threads))


def _execute(cell: Cell, root: str, step: Callable | None) -> CellOutcome:
    """`execute_cell` in a Ray worker; `step` is the cell's step function (it may have been
    registered outside sim2real, e.g. in the driver's script, so it travels with the task)."""
    import sim2real.experiments.stages  # noqa: F401  (registers the built-in steps)

    if step is not None:
        STEPS.setdefault(cell.kind, step)
    return execute_cell(cell, root)


class RayExecutor(Executor):
    """Runs each submitted cell as a Ray task; `as_completed` yields them as they finish.

    cpus_per_cell: CPUs each cell reserves (None: its runtime `num_threads`, or its sim
    `workers` for recordings, else 1); gpus_per_cell: GPUs a training cell reserves when
    its runtime device is cuda (or "auto" on a cluster with GPUs); max_retries: reruns of a
    cell whose worker process died. The worker's math libraries get the cell's thread count
    (its runtime `num_threads`, else its CPUs), as the local executor's steps set torch's.
    """

    def __init__(
        self,
        *,
        address: str | None = None,
        num_cpus: int | None = None,
        cpus_per_cell: float | None = None,
        gpus_per_cell: float = 1.0,
        max_retries: int = 3,
        log_to_driver: bool = True,
    ) -> None:
        if cpus_per_cell is not None and cpus_per_cell <= 0:
            raise ValueError(f"cpus_per_cell must be > 0, got {cpus_per_cell}")
        if max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {max_retries}")
        self.session = RaySession(address, num_cpus=num_cpus, log_to_driver=log_to_driver)
        self.ray = self.session.ray
        self.cpus_per_cell = cpus_per_cell
        self.gpus_per_cell = gpus_per_cell
        self.max_retries = max_retries
        self._cluster_gpus = float(self.session.resources().get("GPU", 0.0))
        self._task = self.ray.remote(_execute)
        self._pending: dict[Any, Cell] = {}

    def resources(self, cell: Cell) -> dict[str, float]:
        """What `cell`'s task reserves: {"num_cpus": ..., "num_gpus": ...}."""
        runtime = cell.runtime
        if self.cpus_per_cell is not None:
            cpus = float(self.cpus_per_cell)
        elif cell.kind == "simulate":
            cpus = float(runtime.get("workers") or 1)
        else:
            cpus = float(runtime.get("num_threads") or 1)
        device = str(runtime.get("device", "auto"))
        wants_gpu = device.startswith("cuda") or (device == "auto" and self._cluster_gpus > 0)
        gpus = self.gpus_per_cell if cell.kind in TRAINING_KINDS and wants_gpu else 0.0
        return {"num_cpus": cpus, "num_gpus": gpus}

    def submit(self, cell: Cell, root: Path) -> None:
        resources = self.resources(cell)
        threads = int(cell.runtime.get("num_threads") or max(1, round(resources["num_cpus"])))
        task = self._task.options(
            **resources,
            max_retries=self.max_retries,
            retry_exceptions=False,
            runtime_env={"env_vars": thread_env(threads)},
            name=cell.label or cell.id,
        )
        ref = task.remote(cell, str(Path(root).resolve()), STEPS.get(cell.kind))
        self._pending[ref] = cell

    def as_completed(self) -> Iterator[CellOutcome]:
        while self._pending:
            ready, _ = self.ray.wait(list(self._pending), num_returns=1)
            for ref in ready:
                cell = self._pending.pop(ref)
                try:
                    outcome = self.ray.get(ref)
                except self.ray.exceptions.RayError as exc:
                    outcome = CellOutcome(cell, None, error=self._describe(exc))
                yield outcome

    def _describe(self, exc: Exception) -> str:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        name = type(exc).__name__
        died = (self.ray.exceptions.WorkerCrashedError, self.ray.exceptions.NodeDiedError)
        if isinstance(exc, died):
            return f"Ray worker died {self.max_retries + 1} time(s) running this cell ({name})"
        return f"Ray: {name}: {first}"

    def close(self) -> None:
        """Cancel cells not yet returned, then stop Ray if this executor started it."""
        for ref in self._pending:
            self.ray.cancel(ref)
        self._pending.clear()
        self.session.close()


def ray_map(
    func: Callable[[T], R],
    items: Iterable[T],
    *,
    num_cpus: float = 1.0,
    max_retries: int = 3,
    window: int | None = None,
) -> Iterator[R]:
    """`func(item)` for every item as Ray tasks, yielded in item order (like `map`).

    Ray must be initialised (see `RaySession`). At most `window` tasks are in flight or
    waiting to be yielded (None: twice the tasks the cluster runs at once), so a long map
    does not pile its results up in memory. Each task runs with one math thread per CPU.
    A task whose worker dies is rerun up to `max_retries` times.
    """
    ray = import_ray()
    if window is None:
        slots = float(ray.cluster_resources().get("CPU", 1.0)) // max(num_cpus, 1e-9)
        window = max(2, 2 * int(slots))
    threads = max(1, round(num_cpus))
    task = ray.remote(func).options(
        num_cpus=num_cpus,
        max_retries=max_retries,
        retry_exceptions=False,
        runtime_env={"env_vars": thread_env(threads)},
    )
    pending: deque = deque()
    try:
        for item in items:
            pending.append(task.remote(item))
            if len(pending) >= window:
                yield ray.get(pending.popleft())
        while pending:
            yield ray.get(pending.popleft())
    finally:
        for ref in pending:
            ray.cancel(ref)


# ----------------------------------------------------------------------------------------
# command-line options shared by `experiment`, `quickstart` and `simulate`


def add_executor_arguments(parser: argparse.ArgumentParser, *, cells: bool = True) -> None:
    """--executor, --address, --ray-cpus (and --cpus-per-cell when `cells`)."""
    group = parser.add_argument_group("scaling out (Ray)")
    group.add_argument(
        "--executor",
        choices=("local", "ray"),
        default="local",
        help="local: this process (default); ray: Ray tasks (pip install sim2real[ray])",
    )
    group.add_argument(
        "--address",
        help="Ray cluster to join from one of its nodes (auto or HOST:PORT of its head); "
        "default: start a local Ray on this machine",
    )
    group.add_argument(
        "--ray-cpus", type=int, help="CPUs of the local Ray (default: all); not with --address"
    )
    if cells:
        group.add_argument(
            "--cpus-per-cell",
            type=float,
            help="CPUs each cell reserves on Ray (default: its num_threads, or 1)",
        )


def _check_ray_arguments(args: argparse.Namespace) -> bool:
    """Whether Ray was asked for; refuses Ray options given with --executor local."""
    if args.executor == "ray":
        return True
    given = [
        flag
        for flag, value in (
            ("--address", args.address),
            ("--ray-cpus", args.ray_cpus),
            ("--cpus-per-cell", getattr(args, "cpus_per_cell", None)),
        )
        if value is not None
    ]
    if given:
        raise UserError(f"{', '.join(given)}: only with --executor ray")
    return False


def executor_from_args(args: argparse.Namespace) -> Executor | None:
    """A `RayExecutor` for ``--executor ray``; None (the study's local default) otherwise."""
    if not _check_ray_arguments(args):
        return None
    return RayExecutor(
        address=args.address,
        num_cpus=args.ray_cpus,
        cpus_per_cell=args.cpus_per_cell,
    )


def session_from_args(args: argparse.Namespace) -> RaySession | None:
    """A `RaySession` for ``--executor ray`` (close it when done); None otherwise."""
    if not _check_ray_arguments(args):
        return None
    return RaySession(args.address, num_cpus=args.ray_cpus)
