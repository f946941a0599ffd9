"""Cached grid cells and the executors that run them.

A `Cell` is one step of an experiment (record a sim tub, pretrain, fine-tune and evaluate one
network, ...) written as a pure function of its config: its key is a stable hash of
(kind, config, the keys of the cells it reads), so the same work always lands in the same
folder, ``<root>/cells/<kind>-<key>/``, and a changed config is a new cell.

A cell is built in ``<kind>-<key>.partial/`` and renamed into place after its
``result.json`` is written: a folder without ``.partial`` is a finished cell, whatever
happened to the driver. A rerun (or a resumed, crashed driver) skips finished cells and
continues partial ones (the step functions resume from their own checkpoints when they can).

Executors run cells: `submit` them, then iterate `as_completed` to get each `CellOutcome`
when it finishes. `LocalExecutor` runs them one after another in this process; a distributed
executor (Ray) implements the same two methods with `execute_cell` as the remote function:
it needs only the cell (plain JSON data) and the root folder on a shared file system.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import traceback
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sim2real.common.io import atomic_write_json

CELL_FORMAT = 1
"""bumped when the meaning of a cell's config changes (invalidates every cache)"""
CELLS_DIR = "cells"
RESULT_FILE = "result.json"
PARTIAL_SUFFIX = ".partial"


def canonical_json(data: Any) -> str:
    """JSON with sorted keys and no whitespace: the same data gives the same text."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), allow_nan=False)


@dataclass(frozen=True)
class Cell:
    """One cached unit of work.

    kind: the step function that runs it (a key of `STEPS`); config: JSON-ready data that
    determines the result; deps: (role, cell id) of upstream cells whose results it reads;
    runtime: settings left out of the key (threads, device, progress bars, cache folder): they
    change results only through floating-point rounding, which training can grow into
    seed-sized differences, so numbers match bit for bit at equal threads and device only;
    label: a short human name for logs and reports.
    """

    kind: str
    config: Mapping[str, Any]
    deps: tuple[tuple[str, str], ...] = ()
    runtime: Mapping[str, Any] = field(default_factory=dict)
    label: str = ""

    @property
    def key(self) -> str:
        """16 hex digits of sha256 over (format, kind, config, deps): stable across runs."""
        payload = {
            "format": CELL_FORMAT,
            "kind": self.kind,
            "config": self.config,
            "deps": sorted(self.deps),
        }
        return hashlib.sha256(canonical_json(payload).encode()).hexdigest()[:16]

    @property
    def id(self) -> str:
        """Folder name of the cell: ``<kind>-<key>``."""
        return f"{self.kind}-{self.key}"

    def dep(self, role: str) -> str:
        """Cell id of the upstream cell in `role`."""
        for name, cell_id in self.deps:
            if name == role:
                return cell_id
        raise KeyError(f"cell {self.label or self.id} has no dependency {role!r}")

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "label": self.label,
            "config": dict(self.config),
            "deps": [list(d) for d in self.deps],
        }


@dataclass
class CellOutcome:
    """How one cell ended: its result (finished or cached) or the error that stopped it."""

    cell: Cell
    result: dict[str, Any] | None
    error: str | None = None
    cached: bool = False
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None


class CellStore:
    """The cell folders under ``<root>/cells``: where a cell lives and whether it is done."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.cells = self.root / CELLS_DIR

    def path(self, cell_id: str) -> Path:
        """Folder of the finished cell `cell_id`."""
        return self.cells / cell_id

    def partial_path(self, cell_id: str) -> Path:
        return self.cells / f"{cell_id}{PARTIAL_SUFFIX}"

    def is_done(self, cell_id: str) -> bool:
        return (self.path(cell_id) / RESULT_FILE).is_file()

    def result(self, cell_id: str) -> dict[str, Any]:
        """The stored result of a finished cell (its ``result`` entry)."""
        path = self.path(cell_id) / RESULT_FILE
        if not path.is_file():
            raise FileNotFoundError(f"{path}: cell {cell_id} has not finished")
        return json.loads(path.read_text(encoding="utf-8"))["result"]

    def relative(self, path: Path) -> str:
        """`path` relative to the root (results store relative paths: the root can move)."""
        return os.path.relpath(path, self.root)

    def commit(self, cell: Cell, work: Path, result: dict[str, Any], seconds: float) -> Path:
        """Write result.json into `work` and rename it into the cell's folder (atomic)."""
        atomic_write_json(
            work / RESULT_FILE,
            {**cell.to_json(), "seconds": round(seconds, 3), "result": result},
        )
        final = self.path(cell.id)
        if final.exists():  # a folder without result.json: debris of a foreign tool
            shutil.rmtree(final)
        os.replace(work, final)
        return final


StepFunction = Callable[["StepContext"], dict[str, Any]]
STEPS: dict[str, StepFunction] = {}
"""kind -> step function; filled by `register_step` (see sim2real.experiments.stages)"""


def register_step(kind: str) -> Callable[[StepFunction], StepFunction]:
    """Decorator: make a function the step of cells of `kind`."""

    def wrap(func: StepFunction) -> StepFunction:
        STEPS[kind] = func
        return func

    return wrap


@dataclass
class StepContext:
    """What a step function gets: its cell, a work folder (maybe holding an interrupted
    attempt to resume) and the store, to find its dependencies' folders and results."""

    cell: Cell
    work: Path
    store: CellStore
    resume: bool

    def dep_path(self, role: str) -> Path:
        return self.store.path(self.cell.dep(role))

    def dep_result(self, role: str) -> dict[str, Any]:
        return self.store.result(self.cell.dep(role))

    def final_path(self) -> Path:
        """Where the cell will live once finished (results refer to it, not to `work`)."""
        return self.store.path(self.cell.id)


def execute_cell(cell: Cell, root: str | Path) -> CellOutcome:
    """Run `cell` (unless finished) and commit it; errors come back in the outcome.

    The unit a remote executor ships: arguments and return value are plain data.
    KeyboardInterrupt and other BaseExceptions propagate (the partial folder stays and the
    next run resumes it).
    """
    import sim2real.experiments.stages  # noqa: F401  (registers the step functions)

    store = CellStore(root)
    if store.is_done(cell.id):
        return CellOutcome(cell, store.result(cell.id), cached=True)
    for role, dep in cell.deps:
        if not store.is_done(dep):
            return CellOutcome(cell, None, error=f"dependency {role} ({dep}) has not finished")
    if cell.kind not in STEPS:
        return CellOutcome(cell, None, error=f"no step registered for kind {cell.kind!r}")
    work = store.partial_path(cell.id)
    resume = work.exists()
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    try:
        result = STEPS[cell.kind](StepContext(cell, work, store, resume))
        seconds = time.perf_counter() - started
        store.commit(cell, work, result, seconds)
    except Exception as exc:
        detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        return CellOutcome(cell, None, error=detail, seconds=time.perf_counter() - started)
    return CellOutcome(cell, result, seconds=seconds)


class Executor(ABC):
    """Runs cells: `submit` any number, then `as_completed` yields each outcome once, in the
    order they finish, until every submitted cell has come back."""

    @abstractmethod
    def submit(self, cell: Cell, root: Path) -> None: ...

    @abstractmethod
    def as_completed(self) -> Iterator[CellOutcome]: ...

    def close(self) -> None:  # noqa: B027  (optional hook)
        """Release workers (nothing to do for the local executor)."""


class LocalExecutor(Executor):
    """Runs submitted cells one after another in this process, in submission order.

    `on_complete(outcome)` is called after each cell finished (tests use it to interrupt a
    study after k cells).
    """

    def __init__(self, on_complete: Callable[[CellOutcome], None] | None = None) -> None:
        self._queue: list[tuple[Cell, Path]] = []
        self.on_complete = on_complete

    def submit(self, cell: Cell, root: Path) -> None:
        self._queue.append((cell, Path(root)))

    def as_completed(self) -> Iterator[CellOutcome]:
        while self._queue:
            cell, root = self._queue.pop(0)
            outcome = execute_cell(cell, root)
            if self.on_complete is not None:
                self.on_complete(outcome)
            yield outcome


def run_cells(
    cells: Iterable[Cell],
    store: CellStore,
    executor: Executor,
    *,
    log: Callable[[str], None] = print,
) -> dict[str, CellOutcome]:
    """Run every cell not finished yet (duplicates by id run once); outcomes by cell id.

    Finished cells are read from the store without being submitted. A cell whose
    dependency failed is not submitted and comes back with an error.
    """
    outcomes: dict[str, CellOutcome] = {}
    pending: dict[str, Cell] = {}
    for cell in cells:
        if cell.id in outcomes or cell.id in pending:
            continue
        if store.is_done(cell.id):
            outcomes[cell.id] = CellOutcome(cell, store.result(cell.id), cached=True)
            continue
        missing = [dep for _, dep in cell.deps if not store.is_done(dep)]
        if missing:
            error = f"upstream cell(s) {', '.join(missing)} did not finish"
            outcomes[cell.id] = CellOutcome(cell, None, error=error)
            continue
        pending[cell.id] = cell
    if not pending:
        return outcomes
    for cell in pending.values():
        executor.submit(cell, store.root)
    for done, outcome in enumerate(executor.as_completed(), start=1):
        outcomes[outcome.cell.id] = outcome
        status = f"failed: {outcome.error}" if outcome.error else f"{outcome.seconds:.1f} s"
        log(f"[{done}/{len(pending)}] {outcome.cell.label or outcome.cell.id}: {status}")
    return outcomes
