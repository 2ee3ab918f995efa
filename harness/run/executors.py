"""Executors: where a run's cells execute (this process, a local process pool, a Ray cluster).

The runner plans cells, hands the ones whose dependencies finished to an executor as
:class:`CellTask` objects, and takes back :class:`CellResult` objects as they finish; it alone
writes the results store. An executor only runs cells:

- :class:`SerialExecutor`: one cell at a time in this process, in plan order (tests, debugging).
- :class:`PoolExecutor`: training cells on a pool of worker processes (one torch thread each);
  timing cells in this process while no training cell runs, so they have the machine to
  themselves; CPU memory cells in this process beside training cells (one slot). The default of
  ``harness run``.
- :class:`RayExecutor`: every cell as a Ray task on a local instance or a cluster; timing cells
  ask for a whole node (all its CPUs, or its GPU), training cells for one CPU.

A suite that measures each cell in several processes (``Suite.replicas``, e.g. throughput's
``processes``) never starts them: the runner submits the cell's replicas one after the other and
the executor runs replica i of every cell in a worker process of its own that it keeps for the
run (serial and pool: spawned single-process workers; Ray: one actor per replica index), so
every cell meets the same processes; the runner merges their records (``Suite.merge_replicas``).

Executors live in a registry (``@register_executor``; installed plugins enroll through the
entry-point group ``harness.executors``); ``--executor NAME`` picks one.

Everything a task carries is picklable. Where an executor has no shared filesystem
(``shared_filesystem`` False), the artifacts a cell needs (those of its dependencies) travel with
the task and the files it writes come back in its result; the driver stores them in the run dir.
"""

from __future__ import annotations

import contextlib
import heapq
import importlib
import os
import queue as queue_mod
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
import traceback
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

from harness.measure.limits import TimeLimitExceeded, grace_s, time_limit
from harness.plugins import load_plugins, loaded_plugin_specs
from harness.records import Cell, Record
from harness.registry import Registry, RegistryError
from harness.suites.base import RunContext, SuiteParams, no_progress

__all__ = [
    "CellResult",
    "CellTask",
    "Event",
    "Executor",
    "ExecutorUnavailableError",
    "PoolExecutor",
    "RayExecutor",
    "SerialExecutor",
    "execute_cell",
    "list_executors",
    "make_executor",
    "register_executor",
]

RAY_INSTALL = 'pip install -e ".[ray]"  (or: pip install "ray>=2.9")'
#: custom Ray resource a node may declare (``ray start --resources '{"harness_timing": 1}'``):
#: timing cells then run only on such nodes, one at a time per node.
TIMING_RESOURCE = "harness_timing"

#: ``(kind, cell id, fraction, text)``; kind is ``"started"`` (text: the pid of the process that
#: runs it, where known) or ``"progress"``.
Event = tuple[str, str, float, str]


class ExecutorUnavailableError(ValueError):
    """The executor cannot be used here (e.g. Ray is not installed); says how to fix it."""


@dataclass(frozen=True)
class CellTask:
    """One cell to run, with everything it needs (picklable)."""

    index: int  # position in the plan: serial order and scheduling priority
    suite: str
    cell: Cell
    resource: str
    params: SuiteParams
    ctx: RunContext
    files: dict[str, bytes] | None = None  # artifacts shipped in (no shared filesystem)
    plugins: tuple[str, ...] = ()
    #: the cell's time limit in seconds (its suite's ``timeout_s``); None: no limit
    timeout_s: float | None = None
    #: which of the cell's ``replicas`` this task is (``Suite.replicas``): the executor runs
    #: replica i of every cell in a worker process of its own, kept for the run; None: the
    #: cell runs once, wherever the executor places it
    replica: int | None = None
    replicas: int = 1


@dataclass
class CellResult:
    """What a finished cell sends back to the driver."""

    cell: Cell
    records: list[Record]
    files: dict[str, bytes] = field(default_factory=dict)
    node: str = ""
    seconds: float = 0.0


def _error_records(cell: Cell, status: str, message: str) -> list[Record]:
    return [Record.for_cell(cell, "cell_status", status=status, error=message)]


def _is_oom(err: BaseException) -> bool:
    text = str(err).lower()
    return isinstance(err, MemoryError) or "out of memory" in text or "can't allocate" in text


def load_worker_plugins(specs: tuple[str, ...]) -> None:
    """Load the run's plugins in a worker process (idempotent; entry points too)."""
    if specs:
        load_plugins(specs)


def plugin_specs() -> tuple[str, ...]:
    """The ``MODULE[:ATTR]`` plugin specs loaded in this (driver) process, for the workers."""
    return tuple(loaded_plugin_specs())


def _timeout_message(seconds: float | None) -> str:
    return (f"timeout: the cell ran past its time limit (timeout_s={seconds:g} s in the"
            " suite's profile section) and was stopped; raise timeout_s if the cell is sane")


@dataclass(frozen=True)
class _ReplicaProgress:
    """Picklable progress of replica ``i`` of ``k``: its fraction of the whole cell, and which
    process it is (``process 2/3``)."""

    progress: Callable[[float, str], None]
    i: int
    k: int

    def __call__(self, fraction: float, text: str) -> None:
        where = f"process {self.i + 1}/{self.k}"
        self.progress((self.i + fraction) / self.k, f"{where}: {text}" if text else where)


def execute_cell(task: CellTask, progress: Callable[[float, str], None] = no_progress
                 ) -> CellResult:
    """Run one cell wherever this is called and return its records; a failing cell becomes an
    ``error`` (or ``oom``) record, never an exception (except KeyboardInterrupt). A cell past
    ``task.timeout_s`` is stopped and recorded ``timeout``."""
    import torch

    from harness.suites import get_suite

    started = time.perf_counter()
    load_worker_plugins(task.plugins)
    if task.replica is not None:
        progress = _ReplicaProgress(progress, task.replica, task.replicas)
        progress(0.0, "")
    ctx = replace(task.ctx, progress=progress)
    scratch: Path | None = None
    if task.files is not None:
        scratch = Path(tempfile.mkdtemp(prefix="harness-cell-"))
        (scratch / "artifacts").mkdir()
        for name, data in task.files.items():
            (scratch / "artifacts" / name).write_bytes(data)
        ctx = replace(ctx, run_dir=scratch)
    if ctx.threads and torch.get_num_threads() != ctx.threads:
        torch.set_num_threads(ctx.threads)
    try:
        try:
            with time_limit(task.timeout_s):
                records = get_suite(task.suite).run_cell(task.cell, task.params, ctx)
            if not records:
                records = _error_records(task.cell, "error", "the cell produced no record")
        except KeyboardInterrupt:
            raise
        except TimeLimitExceeded:
            records = _error_records(task.cell, "timeout", _timeout_message(task.timeout_s))
        except Exception as err:  # a failing cell is recorded; the run goes on
            status = "oom" if _is_oom(err) else "error"
            detail = "".join(traceback.format_exception_only(type(err), err)).strip()
            records = _error_records(task.cell, status, detail)
            if status == "error" and os.environ.get("HARNESS_TRACEBACK"):
                traceback.print_exc()
        files: dict[str, bytes] = {}
        if scratch is not None:
            shipped = task.files or {}
            files = {p.name: p.read_bytes() for p in sorted((scratch / "artifacts").iterdir())
                     if p.is_file() and p.name not in shipped}
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    return CellResult(task.cell, records, files, socket.gethostname(),
                      time.perf_counter() - started)


class Executor(ABC):
    """Runs submitted cells and streams back finished ones; the driver writes the results."""

    name: ClassVar[str]
    #: whether workers see the driver's run directory (else artifacts travel with tasks)
    shared_filesystem: ClassVar[bool] = True
    #: whether it runs replica i of every cell (``CellTask.replica``) in a worker process of its
    #: own, kept for the run; a run whose suites ask for replicas needs such an executor
    runs_replicas: ClassVar[bool] = False

    def __init__(self, max_retries: int = 2) -> None:
        if max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {max_retries}")
        self.max_retries = max_retries
        self.events: Callable[[Event], None] = lambda event: None

    @classmethod
    def create(cls, *, workers: int | None = None, ray_address: str | None = None,
               max_retries: int = 2, **options: Any) -> Executor:
        """The executor for the command line's options: each executor takes those that apply
        to it and ignores the others."""
        return cls(max_retries=max_retries)

    def preload(self, imports: Mapping[str, tuple[str, ...]]) -> None:  # noqa: B027
        """Before :meth:`start`: the modules the run's cells import on first use, per resource
        class (``Suite.imports``). An executor may import them ahead where those cells will run
        (never inside a timed cell); ignored by default."""

    def start(self, events: Callable[[Event], None]) -> None:
        """Get ready to run cells; ``events`` receives progress events in the driver thread."""
        self.events = events

    @abstractmethod
    def submit(self, task: CellTask) -> None:
        """Queue a cell whose dependencies have finished."""

    @abstractmethod
    def next_result(self) -> CellResult:
        """Block until one submitted cell finished and return it."""

    def cancel(self) -> None:  # noqa: B027 (optional hook)
        """Drop every queued and running cell (Ctrl-C); finished results are already stored."""

    def close(self) -> None:  # noqa: B027 (optional hook)
        """Release workers and connections."""

    def describe(self) -> dict[str, Any]:
        """For run.json: the executor, its nodes and their devices."""
        return {"name": self.name, "nodes": [_this_node()]}

    def thread_count(self, resource: str, run_threads: int) -> int:
        """torch threads a cell of ``resource`` class runs with."""
        return run_threads


def _check_executor(name: str, obj: object) -> type[Executor]:
    if not (isinstance(obj, type) and issubclass(obj, Executor)):
        raise ValueError(f"executor {name!r} must be an Executor subclass, got {obj!r}")
    if getattr(obj, "name", None) != name:
        raise ValueError(f"executor class {obj.__qualname__} is named"
                         f" {getattr(obj, 'name', None)!r} but is"
                         f" registered as {name!r}; make its `name` and the entry point's equal")
    return obj


def _executor_name(obj: object) -> str | None:
    """The name a plugin's ``MODULE:ATTR`` object registers under, if it is an executor class."""
    return obj.name if isinstance(obj, type) and issubclass(obj, Executor) else None


#: Every executor: built-ins, and plugins (entry points ``harness.executors``, ``--plugin``).
_EXECUTORS: Registry[type[Executor]] = Registry(
    "executor", validate=_check_executor, group="harness.executors", adopt=_executor_name,
    order=lambda n: (_BUILT_IN_ORDER.index(n) if n in _BUILT_IN_ORDER else 3, n))
_BUILT_IN_ORDER = ("serial", "pool", "ray")


def register_executor(cls: type[Executor]) -> type[Executor]:
    """Class decorator: register an :class:`Executor` subclass under ``cls.name``."""
    _EXECUTORS.add(cls.name, cls)
    return cls


def list_executors() -> list[str]:
    """Names of the registered executors (built-ins first)."""
    return _EXECUTORS.names()


def _this_node() -> dict[str, Any]:
    import torch

    devices = ["cpu"]
    if torch.cuda.is_available():
        devices += [f"cuda:{i} {torch.cuda.get_device_name(i)}"
                    for i in range(torch.cuda.device_count())]
    return {"host": socket.gethostname(), "cpus": os.cpu_count(), "devices": devices}


@register_executor
class SerialExecutor(Executor):
    """One cell at a time in this process, in plan order (today's behaviour; tests); a cell's
    replicas each in a spawned worker process of their own, kept for the run."""

    name = "serial"
    runs_replicas = True

    def __init__(self, max_retries: int = 0) -> None:
        super().__init__(max_retries)
        self._queue: list[tuple[int, CellTask]] = []
        self._replicas = _ReplicaWorkers()

    @classmethod
    def create(cls, *, workers: int | None = None, ray_address: str | None = None,
               max_retries: int = 2, **options: Any) -> Executor:
        return cls()  # nothing to retry: a cell that kills this process ends the run

    def submit(self, task: CellTask) -> None:
        heapq.heappush(self._queue, (task.index, task))

    def next_result(self) -> CellResult:
        if not self._queue:
            raise RuntimeError("next_result() with no submitted cell")
        _, task = heapq.heappop(self._queue)
        if task.replica is not None:  # a replica means a process of its own
            return self._replicas.run(task, self.events, self.max_retries)
        return _run_here(task, self.events)

    def cancel(self) -> None:
        self._queue.clear()
        self._replicas.cancel()

    def close(self) -> None:
        self._replicas.close()


def _run_here(task: CellTask, events: Callable[[Event], None]) -> CellResult:
    cell_id = task.cell.id
    events(("started", cell_id, 0.0, str(os.getpid())))
    return execute_cell(task, lambda f, t: events(("progress", cell_id, f, t)))


# ------------------------------------------------------------------------------ process pool
_WORKER_EVENTS: Any = None


#: What a pool worker imports at start when the run names nothing (``Executor.preload``): the
#: encoder and transformers' model classes, which training cells build.
_WORKER_IMPORTS = ("harness.models",)


def _import_ahead(modules: tuple[str, ...]) -> None:
    """Import ``modules`` ahead of the cells that need them; one that fails is left to the cell
    that imports it, which records the error as its own (a suite's ``imports`` only hints)."""
    for module in modules:
        with contextlib.suppress(Exception):
            importlib.import_module(module)


def _pool_init(events: Any, modules: tuple[str, ...] = _WORKER_IMPORTS,
               driver: tuple[list[str], str, dict[str, str]] | None = None) -> None:
    """Pool worker start: Ctrl-C is the driver's to handle; one torch thread; ``modules``
    imported. ``driver``: the driver's ``sys.path``, working directory and environment, for a
    worker forked from the fork server (which kept its own from when it started)."""
    global _WORKER_EVENTS
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _WORKER_EVENTS = events
    if driver is not None:
        path, cwd, env = driver
        sys.path[:] = path
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(env)
    import torch

    # at start, beside the other workers, not in a cell: an import interrupted by the first
    # cell's time limit would leave its modules half made (and cost the cell ~3 s of its limit)
    import harness.suites  # noqa: F401

    _import_ahead(modules)
    torch.set_num_threads(1)


def _pool_ready() -> None:
    """No work: submitted once per worker when the pool starts, so that every worker is started
    (and has imported the suites) then, not when a second cell first finds no idle worker."""


@dataclass(frozen=True)
class _QueueProgress:
    """Picklable progress sink: sends ``(kind, cell id, fraction, text)`` to the driver."""

    events: Any
    cell_id: str

    def __call__(self, fraction: float, text: str) -> None:
        with contextlib.suppress(Exception):  # progress must never fail a cell
            self.events.put(("progress", self.cell_id, fraction, text))


def _pool_run(task: CellTask) -> CellResult:
    sink = _QueueProgress(_WORKER_EVENTS, task.cell.id)
    with contextlib.suppress(Exception):  # the worker's pid: which process runs the cell
        _WORKER_EVENTS.put(("started", task.cell.id, 0.0, str(os.getpid())))
    return execute_cell(task, sink)


class _Watch:
    """Cells that worker processes started: when, and in which process (their "started"
    events); a cell past its time limit plus a grace (in which it can stop itself) has its
    worker killed (SIGKILL) and is noted in ``killed``, for the caller to record ``timeout``."""

    def __init__(self) -> None:
        self.started: dict[str, tuple[float, int]] = {}  # cell id -> (monotonic start, pid)
        #: cell id -> why its worker was killed, and that worker's pid
        self.killed: dict[str, tuple[str, int]] = {}

    def note(self, event: Event, running: Callable[[str], bool]) -> None:
        """Note a "started" event of a cell that ``running`` says is in flight."""
        kind, cell_id, _, text = event
        if kind == "started" and text.isdigit() and running(cell_id):
            self.started[cell_id] = (time.monotonic(), int(text))

    def kill_overdue(self, tasks: list[CellTask]) -> None:
        """Kill the worker of each of ``tasks`` that is past its limit plus the grace."""
        now = time.monotonic()
        for task in tasks:
            limit, started = task.timeout_s, self.started.get(task.cell.id)
            if limit is None or started is None or task.cell.id in self.killed:
                continue
            if now - started[0] > limit + grace_s(limit):
                self.killed[task.cell.id] = (_timeout_message(limit), started[1])
                with contextlib.suppress(OSError):
                    os.kill(started[1], signal.SIGKILL)


class _ReplicaWorkers:
    """Replica ``i`` of every cell runs in worker ``i``: one spawned single-process pool per
    replica index, started on first use and kept until :meth:`close` (or :meth:`cancel`), so
    every cell meets the same processes. A replica runs alone, driven from the calling thread,
    with a pool cell's time limit: past ``timeout_s`` plus a grace its worker is killed and the
    replica recorded ``timeout``; a worker that dies is replaced by a fresh one and the replica
    retried up to ``max_retries`` times."""

    def __init__(self) -> None:
        self._workers: dict[int, Any] = {}
        self._mp: Any = None
        self._events_q: Any = None

    def _worker(self, i: int) -> Any:
        if i not in self._workers:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor

            if self._mp is None:
                self._mp = mp.get_context("spawn")
                self._events_q = self._mp.Queue()
            self._workers[i] = ProcessPoolExecutor(1, mp_context=self._mp,
                                                   initializer=_pool_init,
                                                   initargs=(self._events_q,))
        return self._workers[i]

    def run(self, task: CellTask, events: Callable[[Event], None],
            max_retries: int) -> CellResult:
        """Run replica ``task.replica`` in its worker and return its result (never raises for
        a failing replica: it is an ``error`` or ``timeout`` record)."""
        why = ""
        for _ in range(max_retries + 1):
            result, why = self._attempt(task, events)
            if result is not None:
                return result
        message = f"{why} ({max_retries + 1} attempt(s), --max-retries {max_retries})"
        return CellResult(task.cell, _error_records(task.cell, "error", message))

    def _attempt(self, task: CellTask, events: Callable[[Event], None]
                 ) -> tuple[CellResult | None, str]:
        """One try: the result, or None and why the worker died."""
        from concurrent.futures import wait
        from concurrent.futures.process import BrokenProcessPool

        assert task.replica is not None
        worker = self._worker(task.replica)
        future = worker.submit(_pool_run, task)
        procs = dict(getattr(worker, "_processes", None) or {})
        watch = _Watch()
        while True:
            wait([future], timeout=0.1)
            for event in self._drain():
                watch.note(event, lambda cell_id: cell_id == task.cell.id)
                events(event)
            if future.done():
                break
            watch.kill_overdue([task])
        try:
            return future.result(), ""
        except BrokenProcessPool:
            self._drop(task.replica)
        if task.cell.id in watch.killed:
            return CellResult(task.cell, _error_records(task.cell, "timeout",
                                                        watch.killed[task.cell.id][0])), ""
        started = watch.started.get(task.cell.id)
        pid = started[1] if started else next(iter(procs), -1)
        code = None
        if pid in procs:
            with contextlib.suppress(Exception):
                procs[pid].join(5.0)
                code = procs[pid].exitcode
        return None, f"the worker process running this cell died (pid {pid}, exit code {code})"

    def _drain(self) -> list[Event]:
        out: list[Event] = []
        while self._events_q is not None:
            try:
                out.append(self._events_q.get_nowait())
            except (queue_mod.Empty, OSError, ValueError):
                break
        return out

    def _drop(self, i: int, kill: bool = False) -> None:
        worker = self._workers.pop(i, None)
        if worker is None:
            return
        processes = list((getattr(worker, "_processes", None) or {}).values())
        worker.shutdown(wait=False, cancel_futures=True)
        if kill:
            for proc in processes:
                with contextlib.suppress(Exception):
                    proc.terminate()

    def cancel(self) -> None:
        """Stop every worker now (Ctrl-C)."""
        for i in list(self._workers):
            self._drop(i, kill=True)

    def close(self) -> None:
        """Shut the workers down (each finishes what it runs) and close the event queue."""
        for worker in self._workers.values():
            worker.shutdown(wait=True)
        self._workers.clear()
        if self._events_q is not None:
            self._drain()
            self._events_q.close()
            self._events_q = None


@register_executor
class PoolExecutor(Executor):
    """Training cells on ``workers`` processes (one torch thread each); timing cells in this
    process, alone: none starts while a training cell runs, and none of those starts meanwhile.
    CPU memory cells run in this process in one of the ``workers`` slots, beside training cells
    (each measures its own fresh process); on CUDA they run alone like timing cells.

    A worker that dies (killed, segfault) breaks the pool: the cells it had in flight are retried
    on a fresh pool up to ``max_retries`` times, then recorded as ``error``.

    A cell's replicas (``Suite.replicas``) run alone, like timing cells, each in a spawned
    single-process worker of its own (one per replica index, kept for the run).

    Workers fork from the fork server the memory children fork from
    (:func:`harness.measure.memory.fork_server`, spawned where the platform has none), which has
    torch and the suites imported once; each worker then imports what the run's training cells
    need (``preload``). As the first cell is asked for, the server starts and this process
    imports what its own timing cells need meanwhile. Once no training cell is left, the idle
    workers are stopped before a timing cell starts.
    """

    name = "pool"
    runs_replicas = True

    def __init__(self, workers: int | None = None, max_retries: int = 2) -> None:
        super().__init__(max_retries)
        workers = workers if workers is not None else (os.cpu_count() or 1)
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.workers = workers
        self._queue: list[tuple[int, CellTask]] = []
        self._running: dict[Any, CellTask] = {}
        self._done: list[CellResult] = []
        self._attempts: dict[str, int] = {}
        self._pool: Any = None
        self._events_q: Any = None
        self._watch = _Watch()  # started cells' pids and start times; the workers killed
        self._procs: dict[int, Any] = {}  # pid -> worker process (to tell who died)
        self._replicas = _ReplicaWorkers()  # a cell's replicas: one kept process per index
        self._imports: dict[str, tuple[str, ...]] = {"training": _WORKER_IMPORTS}
        self._forked = False  # workers fork from the fork server (else spawned)
        self._warm = False  # the fork server started and this process's imports made

    @classmethod
    def create(cls, *, workers: int | None = None, ray_address: str | None = None,
               max_retries: int = 2, **options: Any) -> Executor:
        return cls(workers, max_retries=max_retries)

    def preload(self, imports: Mapping[str, tuple[str, ...]]) -> None:
        self._imports = {k: tuple(v) for k, v in imports.items()}

    def start(self, events: Callable[[Event], None]) -> None:
        import multiprocessing as mp

        from harness.measure.memory import fork_server

        super().start(events)
        self._forked = "forkserver" in mp.get_all_start_methods()
        # the server preloads what memory children need (exactly: their peaks are measured
        # from that state), else the suites the workers unpickle cells of
        self._mp = (fork_server(*(self._imports.get("memory") or ("harness.suites",)))
                    if self._forked else mp.get_context("spawn"))
        self._events_q = self._mp.Queue()

    def _warm_up(self) -> None:
        """Once, as the first cell is asked for (inside the run's time): start the fork server
        when workers or memory children will fork from it (it imports in its own process;
        never beside a timing cell), and import this process's timing cells' modules meanwhile
        (no timed cell pays for them)."""
        if self._warm:
            return
        self._warm = True
        if self._forked and any(t.resource == "training" or self._shares(t)
                                for _, t in self._queue):
            from harness.measure.memory import fork_server

            fork_server(start=True)
        _import_ahead(self._imports.get("timing", ()))

    def _new_pool(self) -> Any:
        from concurrent.futures import ProcessPoolExecutor

        driver = (list(sys.path), os.getcwd(), dict(os.environ)) if self._forked else None
        pool = ProcessPoolExecutor(self.workers, mp_context=self._mp, initializer=_pool_init,
                                   initargs=(self._events_q, self._imports.get("training", ()),
                                             driver))
        for _ in range(self.workers):  # a spawn pool starts a worker per submit it cannot place
            pool.submit(_pool_ready)
        return pool

    def thread_count(self, resource: str, run_threads: int) -> int:
        return 1 if resource == "training" else run_threads

    def submit(self, task: CellTask) -> None:
        heapq.heappush(self._queue, (task.index, task))

    @staticmethod
    def _shares(task: CellTask) -> bool:
        """A memory cell on CPU: it runs here beside training cells (its own process's peak)."""
        return (task.resource == "memory" and not task.ctx.device.startswith("cuda")
                and task.replica is None)

    def _dispatch(self) -> None:
        """Fill free workers with queued training cells (plan order), keeping one slot for a
        queued CPU memory cell; timing cells wait for an empty pool."""
        if not any(t.resource == "training" for _, t in self._queue):
            return
        if self._pool is None:
            self._pool = self._new_pool()
        slots = self.workers - (1 if any(self._shares(t) for _, t in self._queue) else 0)
        keep = []
        while self._queue and len(self._running) < slots:
            index, task = heapq.heappop(self._queue)
            if task.resource != "training" or task.replica is not None:  # replicas: alone
                keep.append((index, task))
                continue
            self._running[self._pool.submit(_pool_run, task)] = task
        for item in keep:
            heapq.heappush(self._queue, item)

    def _pop_here(self) -> CellTask | None:
        """The next cell to run in this process now, if any: a CPU memory cell while a slot is
        free, else (nothing running) the first queued cell."""
        if len(self._running) < self.workers:
            shared = [item for item in self._queue if self._shares(item[1])]
            if shared:
                item = min(shared, key=lambda it: it[0])
                self._queue.remove(item)
                heapq.heapify(self._queue)
                return item[1]
        if not self._running and self._queue:
            task = heapq.heappop(self._queue)[1]
            if task.resource != "training" and not any(
                    t.resource == "training" for _, t in self._queue):
                self._stop_pool(wait=True)  # before this process times or measures alone
            return task
        return None

    def _drain_events(self) -> None:
        while True:
            try:
                event = self._events_q.get_nowait()
            except (queue_mod.Empty, OSError, ValueError):
                return
            self._watch.note(event, self._is_running)
            self.events(event)

    def _is_running(self, cell_id: str) -> bool:
        return any(t.cell.id == cell_id for t in self._running.values())

    def _kill_overdue(self) -> None:
        """Kill the worker of a cell past its time limit and grace: the pool breaks, the cell
        is recorded ``timeout``, the others rerun."""
        self._watch.kill_overdue(list(self._running.values()))

    def next_result(self) -> CellResult:
        self._warm_up()
        while True:
            # collect what finished first (without waiting), so a worker that finished while a
            # cell ran in this process gets its next cell before this process starts another
            self._collect(0.0)
            self._dispatch()
            if self._done:
                return self._done.pop(0)
            here = self._pop_here()
            if here is not None and here.replica is not None:
                return self._replicas.run(here, self.events, self.max_retries)
            if here is not None:
                return _run_here(here, self.events)
            if not self._running:
                raise RuntimeError("next_result() with no submitted cell")
            self._collect(0.1)

    def _collect(self, timeout: float) -> None:
        """Move the pool's finished cells to the done list (waiting up to ``timeout`` seconds
        for one); a broken pool sends its cells in flight back to the queue (or to ``error``)."""
        from concurrent.futures import FIRST_COMPLETED, wait
        from concurrent.futures.process import BrokenProcessPool

        if not self._running:
            return
        self._procs.update(getattr(self._pool, "_processes", None) or {})
        finished, _ = wait(list(self._running), timeout=timeout,
                           return_when=FIRST_COMPLETED)
        self._drain_events()
        self._kill_overdue()
        broken = False
        for fut in finished:
            try:
                result = fut.result()
            except BrokenProcessPool:
                broken = True
                continue
            self._running.pop(fut)
            self._watch.started.pop(result.cell.id, None)
            self._done.append(result)
        if broken:
            self._pool_broke()

    def _pool_broke(self) -> None:
        """A worker died: every cell in flight stopped with the pool. The cell whose worker
        died (or was killed past its time limit) is retried or recorded; the cells that only
        shared the pool go back to the queue without using up an attempt."""
        # The pool's own thread stops the other workers (SIGTERM) and reads every exit code:
        # wait for it (up to 5 s) instead of reading them here too (a dead worker's exit code can
        # lag its closed pipe, and of two readers of a fork-server child's code one gets 255)
        stopper = threading.Thread(target=self._pool.shutdown, kwargs={"wait": True},
                                   daemon=True)
        stopper.start()
        stopper.join(5.0)
        died = {pid for pid, proc in self._procs.items()
                if proc.exitcode is not None and proc.exitcode != -signal.SIGTERM}
        pids = {t.cell.id: self._watch.started.pop(t.cell.id, (0.0, -1))[1]
                for t in self._running.values()}
        known = any(pid in died for pid in pids.values()) or bool(self._watch.killed)
        # a cell that stopped itself just as its worker was killed left that worker to the
        # next cell: the kill was not that cell's doing (an innocent bystander)
        killed_pids = {pid for cell_id, (_, pid) in self._watch.killed.items()
                       if pids.get(cell_id) != pid}
        for cell_id in [c for c in self._watch.killed if c not in pids]:
            del self._watch.killed[cell_id]
        if not known and len(pids) == 1:
            # one cell in flight: its worker is the one that died, even when the pool dropped
            # that worker from its process table before its exit code was read here
            died |= set(pids.values())
            known = True
        for fut, task in list(self._running.items()):
            self._running.pop(fut)
            cell_id = task.cell.id
            pid = pids[cell_id]
            if cell_id in self._watch.killed:
                message = self._watch.killed.pop(cell_id)[0]
                self._done.append(CellResult(task.cell, _error_records(task.cell, "timeout",
                                                                       message)))
            elif pid in killed_pids:
                heapq.heappush(self._queue, (task.index, task))
            elif pid in died or not known:
                code = self._procs[pid].exitcode if pid in self._procs else None
                self._retry(task, f"the worker process running this cell died (pid {pid},"
                            f" exit code {code})" if pid in died else
                            "the pool broke: a worker process died while this cell ran")
            else:
                heapq.heappush(self._queue, (task.index, task))  # an innocent bystander
        self._procs.clear()
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = None

    def _retry(self, task: CellTask, why: str) -> None:
        n = self._attempts.get(task.cell.id, 0) + 1
        self._attempts[task.cell.id] = n
        if n > self.max_retries:
            message = f"{why} ({n} attempt(s), --max-retries {self.max_retries})"
            self._done.append(CellResult(task.cell, _error_records(task.cell, "error", message)))
        else:
            heapq.heappush(self._queue, (task.index, task))

    def cancel(self) -> None:
        self._queue.clear()
        self._running.clear()
        self._stop_pool()
        self._replicas.cancel()

    def _stop_pool(self, wait: bool = False) -> None:
        """Stop the workers now (SIGTERM: a graceful exit costs each ~1 s of interpreter
        teardown). ``wait``: until they are gone and the pool's thread has stopped (idle workers
        before a timing cell: nothing of theirs runs beside it); else return at once (Ctrl-C)."""
        if self._pool is None:
            return
        processes = list((getattr(self._pool, "_processes", None) or {}).values())
        if not wait:  # queued cells cancelled before any worker can take one
            self._pool.shutdown(wait=False, cancel_futures=True)
        for proc in processes:
            with contextlib.suppress(Exception):
                proc.terminate()
        if wait:  # the pool's thread joins the workers (their exit codes are read there)
            self._pool.shutdown(wait=True, cancel_futures=True)
        self._pool = None
        self._procs.clear()

    def close(self) -> None:
        self._replicas.close()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        if self._events_q is not None:
            self._drain_events()
            self._events_q.close()
            self._events_q = None

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "workers": self.workers, "max_retries": self.max_retries,
                "nodes": [_this_node()]}


# ------------------------------------------------------------------------------------- Ray
def _require_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ExecutorUnavailableError(
            f"--executor ray needs Ray, which is not installed; install the extra: {RAY_INSTALL}"
        ) from None
    return ray


def _ray_run(task: CellTask) -> CellResult:
    """The Ray task: one cell on whatever node Ray placed it."""
    return execute_cell(task)


class _RayReplica:
    """A Ray actor: replica ``i`` of every cell runs in this one worker process."""

    def __init__(self, cuda: bool) -> None:
        if cuda and os.environ.get("CUDA_VISIBLE_DEVICES") == "":
            del os.environ["CUDA_VISIBLE_DEVICES"]  # it holds no GPU: see the node's

    def run(self, task: CellTask) -> CellResult:
        return execute_cell(task)


@register_executor
class RayExecutor(Executor):
    """Every cell as a Ray task. ``address`` None starts a local instance sized to the machine
    (and stops it at the end); ``"auto"`` or ``ray://host:port`` joins a running cluster.

    Training cells ask for 1 CPU (and ``training_gpus`` of a GPU on CUDA), CPU memory cells for 1
    CPU; timing cells (and memory cells on CUDA) for all the CPUs of the smallest timing node (and
    1 GPU on CUDA), plus one ``harness_timing`` unit where nodes declare it, so they have a node
    to themselves. A worker or node that dies mid-cell is retried
    by Ray up to ``max_retries`` times; then the cell is an ``error`` record with the cause.

    A cell's replicas (``Suite.replicas``) run on actors, one per replica index, made on first
    use on the timing node with the fewest CPUs and kept for the run, so every cell meets the
    same processes. An actor reserves no resources; instead a replica goes out only when no
    other cell is in flight, and nothing goes out beside it: it has the cluster to itself.
    """

    name = "ray"
    runs_replicas = True
    shared_filesystem = False

    def __init__(self, address: str | None = None, max_retries: int = 2,
                 training_gpus: float = 0.5) -> None:
        super().__init__(max_retries)
        self.ray = _require_ray()
        self.address = address
        self.training_gpus = training_gpus
        self._started_here = False
        self._refs: dict[Any, CellTask] = {}
        self._timing_cpus = 1
        self._timing_resource = False
        self._held: list[tuple[int, CellTask]] = []  # waiting for (or behind) a replica
        self._actors: dict[int, Any] = {}  # replica index -> its actor
        self._replica_node: str | None = None

    @classmethod
    def create(cls, *, workers: int | None = None, ray_address: str | None = None,
               max_retries: int = 2, **options: Any) -> Executor:
        return cls(ray_address, max_retries=max_retries)

    #: seconds to wait for a cluster to answer before giving up (exit 2)
    connect_timeout_s: ClassVar[float] = 30.0

    def _check_reachable(self) -> None:
        """A ``host:port`` or ``ray://host:port`` address must accept a connection within
        ``connect_timeout_s`` (Ray itself retries an unreachable address for many minutes)."""
        address = self.address or ""
        rest = address.removeprefix("ray://")
        host, sep, port = rest.rpartition(":")
        if not sep or not port.isdigit():
            return  # "auto" and the like: Ray finds (or fails to find) the cluster at once
        host = host.strip("[]") or "127.0.0.1"
        try:
            with socket.create_connection((host, int(port)), timeout=self.connect_timeout_s):
                pass
        except OSError as err:
            raise ExecutorUnavailableError(
                f"--ray-address {address}: no Ray cluster answers there"
                f" ({err.strerror or err}); check the address,"
                " that the cluster is up (`ray status` on its head node) and that the port is"
                " open, or run without --ray-address for a local instance") from None

    def _join(self) -> None:
        """``ray.init(address)`` within ``connect_timeout_s``: Ray itself retries an address
        that accepts connections but is no cluster for many minutes. The attempt runs in a
        daemon thread; past the limit it is abandoned (the process is about to exit 2)."""
        outcome: list[BaseException | None] = []

        def connect() -> None:
            try:
                self.ray.init(address=self.address, log_to_driver=False)
                outcome.append(None)
            except BaseException as err:  # handed to the caller below
                outcome.append(err)

        thread = threading.Thread(target=connect, name="ray-connect", daemon=True)
        thread.start()
        thread.join(self.connect_timeout_s)
        fix = (" Start one (`ray start --head`), check the address, or run without"
               " --ray-address for a local instance")
        if not outcome:
            raise ExecutorUnavailableError(
                f"--ray-address {self.address}: no Ray cluster answered within"
                f" {self.connect_timeout_s:g} s.{fix}")
        if outcome[0] is not None:
            err = outcome[0]
            raise ExecutorUnavailableError(
                f"--ray-address {self.address}: cannot join a Ray cluster:"
                f" {type(err).__name__}: {' '.join(str(err).split())[:300]}.{fix}")

    def start(self, events: Callable[[Event], None]) -> None:
        super().start(events)
        ray = self.ray
        if not ray.is_initialized():
            if self.address:
                self._check_reachable()
                self._join()
            else:
                # "local": a fresh instance, never a cluster another process left recorded
                ray.init(address="local", num_cpus=os.cpu_count() or 1,
                         resources={TIMING_RESOURCE: 1},
                         include_dashboard=False, log_to_driver=False)
                self._started_here = True
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        timing = [n for n in nodes if n.get("Resources", {}).get(TIMING_RESOURCE)]
        self._timing_resource = bool(timing)
        pool = timing or nodes
        smallest = min(pool, key=lambda n: n.get("Resources", {}).get("CPU", 1))
        self._timing_cpus = max(1, int(smallest.get("Resources", {}).get("CPU", 1)))
        self._replica_node = smallest.get("NodeID")
        self._remote = ray.remote(_ray_run)

    def thread_count(self, resource: str, run_threads: int) -> int:
        return 1 if resource == "training" else self._timing_cpus

    def _options(self, task: CellTask) -> dict[str, Any]:
        cuda = task.ctx.device.startswith("cuda")
        opts: dict[str, Any] = {"max_retries": self.max_retries, "retry_exceptions": False}
        if task.resource == "training":
            opts.update(num_cpus=1, num_gpus=self.training_gpus if cuda else 0)
        elif task.resource == "memory" and not cuda:
            opts.update(num_cpus=1)  # its own fresh process's peak: a neighbour does not change it
        else:
            opts.update(num_cpus=self._timing_cpus, num_gpus=1 if cuda else 0)
            if self._timing_resource:
                opts["resources"] = {TIMING_RESOURCE: 1}
        return opts

    def submit(self, task: CellTask) -> None:
        heapq.heappush(self._held, (task.index, task))
        self._release()

    def _release(self) -> None:
        """Send held cells to Ray in plan order: a replica only once nothing else is in
        flight, nothing beside a replica, and no later cell past a waiting replica."""
        while self._held:
            if any(t.replica is not None for t in self._refs.values()):
                return
            task = self._held[0][1]
            if task.replica is not None and self._refs:
                return
            heapq.heappop(self._held)
            if task.replica is not None:
                ref = self._actor(task).run.remote(task)
            else:
                ref = self._remote.options(**self._options(task)).remote(task)
            self._refs[ref] = task
            self.events(("started", task.cell.id, 0.0, ""))

    def _actor(self, task: CellTask) -> Any:
        """The actor of replica ``task.replica`` (made on first use)."""
        assert task.replica is not None
        if task.replica not in self._actors:
            opts: dict[str, Any] = {"num_cpus": 0, "max_restarts": self.max_retries,
                                    "max_task_retries": self.max_retries}
            if self._replica_node:
                from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

                opts["scheduling_strategy"] = NodeAffinitySchedulingStrategy(
                    self._replica_node, soft=False)
            actor = self.ray.remote(_RayReplica).options(**opts)
            self._actors[task.replica] = actor.remote(task.ctx.device.startswith("cuda"))
        return self._actors[task.replica]

    def _kill_actor(self, i: int) -> None:
        actor = self._actors.pop(i, None)
        if actor is not None:
            with contextlib.suppress(Exception):
                self.ray.kill(actor)

    def next_result(self) -> CellResult:
        ray = self.ray
        self._release()
        if not self._refs:
            raise RuntimeError("next_result() with no submitted cell")
        ready: list[Any] = []
        while not ready:
            ready, _ = ray.wait(list(self._refs), num_returns=1, timeout=0.5)
        ref = ready[0]
        task = self._refs.pop(ref)
        try:
            return ray.get(ref)
        except ray.exceptions.RayError as err:
            detail = " ".join(str(err).split())[:800]
            message = (f"the Ray worker running this cell failed ({self.max_retries} retries): "
                       f"{type(err).__name__}: {detail}")
            if task.replica is not None:  # a fresh actor for the next cell's replica
                self._kill_actor(task.replica)
            return CellResult(task.cell, _error_records(task.cell, "error", message))

    def cancel(self) -> None:
        for ref, task in list(self._refs.items()):
            if task.replica is None:  # an actor's task cannot be force-cancelled: killed below
                with contextlib.suppress(Exception):
                    self.ray.cancel(ref, force=True)
        self._refs.clear()
        self._held.clear()
        for i in list(self._actors):
            self._kill_actor(i)

    def close(self) -> None:
        for i in list(self._actors):
            self._kill_actor(i)
        if self._started_here and self.ray.is_initialized():
            self.ray.shutdown()
            self._started_here = False

    def describe(self) -> dict[str, Any]:
        nodes = []
        for n in self.ray.nodes():
            res = n.get("Resources", {})
            nodes.append({"host": n.get("NodeManagerHostname"), "address":
                          n.get("NodeManagerAddress"), "alive": bool(n.get("Alive")),
                          "cpus": res.get("CPU"), "gpus": res.get("GPU", 0),
                          "timing_node": bool(res.get(TIMING_RESOURCE))})
        return {"name": self.name, "address": self.address or "local", "max_retries":
                self.max_retries, "timing_cpus": self._timing_cpus, "nodes": nodes}


def make_executor(name: str, **options: Any) -> Executor:
    """The registered executor called ``name``, made by its ``create`` from the command line's
    ``options`` (``workers``, ``ray_address``, ``max_retries``, ...); checks run before anything
    starts."""
    try:
        cls = _EXECUTORS.entry(name).value
    except RegistryError:
        raise ExecutorUnavailableError(
            f"unknown executor {name!r}; choose one of {', '.join(list_executors())}") from None
    assert cls is not None
    return cls.create(**options)
