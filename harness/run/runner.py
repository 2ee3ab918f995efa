"""Plan, execute and store a run; resume an interrupted one."""

from __future__ import annotations

import contextlib
import datetime as dt
import secrets
import shlex
import signal
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from harness.measure.env import capture_environment, resolve_device
from harness.measure.limits import grace_s
from harness.measure.timing import default_threads
from harness.plugins import loaded_plugin_specs, loaded_plugins
from harness.records import Cell, Record
from harness.run.executors import (
    CellResult,
    CellTask,
    Executor,
    ExecutorUnavailableError,
    SerialExecutor,
    plugin_specs,
)
from harness.run.profiles import Profile, profile_from_dict
from harness.run.store import (
    SCHEMA_VERSION,
    ResultsStore,
    RunLock,
    StoreError,
    check_out_dir,
    inside_run_dir,
    point_latest,
    read_run,
    resolve_run_dir,
    write_in_run_dir,
)
from harness.suites import RunContext, get_suite
from harness.suites.base import (
    DEFAULT_TIMEOUT_S,
    RESOURCE_CLASSES,
    Suite,
    compare_rules,
    planning_model,
    suites_meta,
)

__all__ = ["PlannedCell", "Progress", "RunInterrupted", "RunOutcome", "RunStoppedError",
           "cell_limit", "check_executor", "plan_run", "preflight", "resume_run", "start_run"]


def resume_command(run_dir: str | Path) -> str:
    """The command that continues ``run_dir``, with the ``--plugin`` code this process loaded
    (a resume never imports code because a run file names it)."""
    again = "".join(f" --plugin {shlex.quote(s)}" for s in loaded_plugin_specs())
    return f"harness run --resume {shlex.quote(str(run_dir))}{again}"


class RunStoppedError(Exception):
    """The run could not go on (e.g. the disk is full): marked ``interrupted``, resumable."""

    def __init__(self, run_dir: Path, cause: BaseException) -> None:
        super().__init__(f"{run_dir}: {type(cause).__name__}: {cause}")
        self.run_dir = Path(run_dir)
        self.cause = cause

    @property
    def resume_command(self) -> str:
        return resume_command(self.run_dir)


class _Signals:
    """SIGINT and SIGTERM both stop a run as Ctrl-C does (``KeyboardInterrupt`` in the main
    thread), but never in the middle of a store write: a signal that arrives inside
    :meth:`deferred` takes effect when the write is done."""

    def __init__(self) -> None:
        self._depth = 0
        self._pending: int | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: object) -> None:
        if self._depth:
            self._pending = signum
            return
        raise KeyboardInterrupt(signal.Signals(signum).name)

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        try:
            yield
        finally:
            for sig, handler in self._previous.items():
                signal.signal(sig, handler)
            self._previous.clear()

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
            if not self._depth and self._pending is not None:
                signum, self._pending = self._pending, None
                if self._previous:  # only while installed
                    raise KeyboardInterrupt(signal.Signals(signum).name)


_SIGNALS = _Signals()


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C during a run: the run directory is marked ``interrupted`` and can be resumed."""

    def __init__(self, run_dir: Path) -> None:
        super().__init__(str(run_dir))
        self.run_dir = Path(run_dir)

    @property
    def resume_command(self) -> str:
        return resume_command(self.run_dir)


@dataclass(frozen=True)
class PlannedCell:
    suite: str
    cell: Cell
    weight: float
    resource: str = "training"
    after: tuple[str, ...] = ()  # ids of the cells this one needs first (Suite.depends_on)


@dataclass
class RunOutcome:
    """What a run did: where it is, how many records per status, and the exit code."""

    run_dir: Path
    counts: dict[str, int] = field(default_factory=dict)
    records: list[Record] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return 1 if self.counts.get("error", 0) else 0


class Progress:
    """Callbacks the runner reports to (the CLI draws bars; tests pass nothing)."""

    def start(self, total: float, n_cells: int) -> None: ...
    def cell_started(self, planned: PlannedCell) -> None: ...
    def cell_progress(self, fraction: float, text: str) -> None: ...
    def cell_finished(self, planned: PlannedCell, records: list[Record]) -> None: ...
    def stop(self) -> None: ...


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def plan_run(profile: Profile, suites: list[str] | None = None) -> list[PlannedCell]:
    """Every cell of the run in order: suite x attention x params x seed, with each cell's
    resource class and the cells it depends on."""
    names = suites or list(profile.suites)
    specs = profile.attention_specs()
    planned = []
    for name in names:
        suite = get_suite(name)
        _check_replicas(name, suite, profile.suites[name])
        with planning_model(_model_meta(profile)):  # a user's model, if the run names one
            cells = suite.plan(profile.suites[name], [s for s in specs if s.runs_in(name)],
                               list(profile.seeds))
        seen: set[str] = set()
        for cell in cells:
            after = tuple(d.id for d in suite.depends_on(cell, cells))
            missing = [d for d in after if d not in seen]
            if missing:
                raise ValueError(f"suite {name}: cell {cell.display} depends on a cell planned"
                                 " after it; dependencies must come first in the plan")
            seen.add(cell.id)
            resource = suite.resource_class(cell)
            if resource not in RESOURCE_CLASSES:
                raise ValueError(f"suite {name}: resource class {resource!r} is not one of"
                                 f" {', '.join(RESOURCE_CLASSES)}")
            planned.append(PlannedCell(name, cell, suite.cell_weight(cell), resource, after))
    return planned


def _check_replicas(name: str, suite: Suite, params: Any) -> int:
    """The replicas each cell of ``suite`` runs in (``Suite.replicas``), checked at plan time."""
    k = suite.replicas(params)
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ValueError(f"suite {name}: replicas() must be an int >= 1, got {k!r}")
    if k > 1 and type(suite).merge_replicas is Suite.merge_replicas:
        raise ValueError(f"suite {name}: it runs each cell in {k} replicas but does not say how"
                         " to merge their records; override Suite.merge_replicas")
    return k


def check_executor(executor: Executor, profile: Profile, suites: list[str]) -> None:
    """``ExecutorUnavailableError`` (exit 2, before anything runs) when a suite measures its
    cells in several processes (``Suite.replicas``) and ``executor`` cannot run them so."""
    if executor.runs_replicas:
        return
    for name in suites:
        k = get_suite(name).replicas(profile.suites[name])
        if k > 1:
            raise ExecutorUnavailableError(
                f"executor {executor.name} cannot run a cell's replicas in processes of their"
                f" own, and suite {name} measures each cell in {k} (e.g. throughput"
                " `processes`); use --executor pool, serial or ray, or set it to 1")


def _attention_meta(spec) -> dict[str, Any]:
    """Spec, capabilities and this configuration's memory claim, for run.json and reports."""
    complexity, exponent = spec.build().claimed_memory
    caps = {**spec.capabilities.as_dict(), "memory_complexity": complexity,
            "memory_exponent": exponent}
    return {**spec.as_dict(), "capabilities": caps}


def _new_run_id() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)


def _context(profile: Profile, run_dir: Path, device: str) -> RunContext:
    """The run's context, picklable: it travels with every cell to its worker."""
    threads = profile.threads or default_threads()
    torch.set_num_threads(threads)
    return RunContext(
        device=device,
        threads=threads,
        memory_budget=profile.memory_budget,
        run_dir=run_dir,
        seeds=tuple(profile.seeds),
        data=profile.data,
        predictions=profile.predictions,
        reference=(reference := profile.reference_label()),
        reference_spec=next((s for s in profile.attention_specs() if s.label == reference), None),
        model=_model_meta(profile),
    )


def _model_meta(profile: Profile) -> dict[str, Any] | None:
    """The run's user model as run.json and the run context hold it (None: the encoder)."""
    if profile.model is None:
        return None
    from harness.models.user import profile_model

    user = profile_model(profile)
    return None if user is None else user.as_dict()


def _stamp(records: list[Record], version: int, model: str | None = None) -> list[Record]:
    """Stamp the suite's method version into each record (compare: "method changed"), and the
    user model's ``name@config-hash`` into its params (runs of other models never match)."""
    for r in records:
        r.suite_version = version
        if model is not None:
            r.params = {**r.params, "model": model}
    return records


def _error_records(cell: Cell, status: str, message: str) -> list[Record]:
    return [Record.for_cell(cell, "cell_status", status=status, error=message)]


class _Events:
    """Turns the executors' events (cell started, progress) into Progress calls."""

    def __init__(self, progress: Progress, planned: list[PlannedCell]) -> None:
        self.progress = progress
        self.by_id = {p.cell.id: p for p in planned}

    def __call__(self, event: tuple[str, str, float, str]) -> None:
        kind, cell_id, fraction, text = event
        if kind == "started" and cell_id in self.by_id:
            self.progress.cell_started(self.by_id[cell_id])
        elif kind == "progress":
            self.progress.cell_progress(fraction, text)


def _shipped_files(run_dir: Path, after: tuple[str, ...]) -> dict[str, bytes]:
    """The artifacts of a cell's dependencies (``<cell id>.*``), for workers without the run dir."""
    folder = run_dir / "artifacts"
    files: dict[str, bytes] = {}
    for cell_id in after:
        for path in sorted(folder.glob(f"{cell_id}.*")) if folder.is_dir() else []:
            files[path.name] = path.read_bytes()
    return files


def cell_limit(planned: PlannedCell, params: Any) -> float | None:
    """The time limit of a cell: its suite's ``timeout_s`` (a suite that declares none, e.g. a
    plugin's, gets :data:`~harness.suites.base.DEFAULT_TIMEOUT_S`: no cell runs unlimited). A
    memory cell limits its own measuring child to ``timeout_s``, so the cell gets a grace on
    top."""
    limit = float(getattr(params, "timeout_s", None) or DEFAULT_TIMEOUT_S)
    return limit + grace_s(limit) if planned.resource == "memory" else limit


def _store_files(run_dir: Path, files: dict[str, bytes]) -> None:
    if not files:
        return
    folder = inside_run_dir(run_dir / "artifacts", "folder")
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        if Path(name).name != name or name.startswith("."):
            raise ValueError(f"artifact name {name!r} from a worker is not a plain file name")
        write_in_run_dir(folder / name, data)


def _execute(
    store: ResultsStore,
    profile: Profile,
    planned: list[PlannedCell],
    ctx: RunContext,
    progress: Progress,
    suites: list[str],
    executor: Executor,
) -> RunOutcome:
    """Plan -> executor -> store: hand ready cells to the executor, store what comes back."""
    by_cell: dict[str, list[Record]] = {}
    for r in store.records():
        if r.cell:
            by_cell.setdefault(r.cell, []).append(r)
    progress.start(sum(p.weight for p in planned), len(planned))
    pending: list[tuple[int, PlannedCell]] = []
    for i, p in enumerate(planned):
        if store.is_done(p.cell):
            progress.cell_finished(p, [])
        else:
            pending.append((i, p))
    replicas = _Replicas(executor, profile, ctx, store.run_dir, plugin_specs())
    by_id = {p.cell.id: p for p in planned}
    seconds: dict[str, float] = {}
    nodes: dict[str, str] = {}  # cell id -> host that ran it (timings compare within a node type)
    in_flight = 0

    def finish(p: PlannedCell, records: list[Record], files: dict[str, bytes]) -> None:
        with _SIGNALS.deferred():  # a cell's files and records are stored whole, or not at all
            _store_files(store.run_dir, files)  # artifacts first: records refer to them
            _stamp(records, get_suite(p.suite).version, (ctx.model or {}).get("id"))
            store.write_cell(p.cell, records)
            by_cell[p.cell.id] = records
        progress.cell_finished(p, records)

    # the executor was started by the caller, before the run dir was made
    store.update_meta(executor=executor.describe())
    try:
        while pending or in_flight:
            moved = True
            while moved:  # a skipped cell can make the cells after it ready (or skipped)
                moved, waiting = False, []
                for i, p in pending:
                    if any(d not in by_cell for d in p.after):
                        waiting.append((i, p))
                        continue
                    moved = True
                    inputs = {d: by_cell[d] for d in p.after}
                    reason = get_suite(p.suite).skip_reason(
                        p.cell, [r for rows in inputs.values() for r in rows])
                    if reason is not None:
                        progress.cell_started(p)
                        finish(p, _error_records(p.cell, "skipped", reason), {})
                        continue
                    replicas.submit(i, p, inputs)
                    in_flight += 1
                pending = waiting
            if not in_flight:
                if pending:  # cannot happen with a valid plan (dependencies come first)
                    raise RuntimeError(f"{len(pending)} cell(s) wait on cells that never ran")
                break
            result = executor.next_result()
            p = by_id[result.cell.id]
            seconds[p.suite] = seconds.get(p.suite, 0.0) + result.seconds
            if result.node:
                nodes[p.cell.id] = result.node
            whole = replicas.collect(p, result)  # None: its next replica was submitted
            if whole is not None:
                in_flight -= 1
                finish(p, *whole)
        _summarize(store, profile, ctx, suites)
    except BaseException:
        executor.cancel()
        raise
    finally:
        executor.close()
        progress.stop()
        if seconds:
            _record_cell_times(store, seconds, nodes)
    return _outcome(store)


def _record_cell_times(store: ResultsStore, seconds: dict[str, float],
                       nodes: dict[str, str]) -> None:
    """Store the seconds the cells of each suite took, and the host each cell ran on (added to
    those of earlier sessions of the run)."""
    ran_on = {**store.meta().get("cell_nodes", {}), **nodes}
    store.update_meta(cell_seconds={k: round(v, 3) for k, v in seconds.items()},
                      cell_nodes=ran_on)


def _outcome(store: ResultsStore) -> RunOutcome:
    """The run's records and their count per status."""
    outcome = RunOutcome(store.run_dir, records=store.records())
    for r in outcome.records:
        outcome.counts[r.status] = outcome.counts.get(r.status, 0) + 1
    return outcome


@dataclass
class _Cell:
    """A cell in flight: what its next replica needs, and its replicas' results so far."""

    index: int
    inputs: dict[str, list[Record]]
    k: int
    runs: list[list[Record]] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)


class _Replicas:
    """Hands ready cells to the executor; a cell whose suite asks for ``k`` > 1 replicas
    (``Suite.replicas``) goes as ``k`` tasks, one after the other, and finishes once all are
    back, merged by the suite (``Suite.merge_replicas``). A replica that fails (error, oom,
    timeout) makes the cell's record that status; its later replicas do not run."""

    def __init__(self, executor: Executor, profile: Profile, ctx: RunContext, run_dir: Path,
                 plugins: tuple[str, ...]) -> None:
        self.executor, self.profile, self.ctx = executor, profile, ctx
        self.run_dir, self.plugins = run_dir, plugins
        self.cells: dict[str, _Cell] = {}

    def submit(self, index: int, p: PlannedCell, inputs: dict[str, list[Record]]) -> None:
        """Hand a ready cell (its first replica) to the executor."""
        k = get_suite(p.suite).replicas(self.profile.suites[p.suite])
        self.cells[p.cell.id] = _Cell(index, inputs, k)
        self._send(p, self.cells[p.cell.id])

    def _send(self, p: PlannedCell, cell: _Cell) -> None:
        """The cell's next task, with the records of the cells it reads, its thread share, its
        limit, and (when the executor's workers do not share this file system) their files."""
        executor, params = self.executor, self.profile.suites[p.suite]
        replica = len(cell.runs) if cell.k > 1 else None
        if replica is not None:
            params = get_suite(p.suite).replica_params(params, replica, cell.k)
        cell_ctx = replace(self.ctx, inputs=cell.inputs,
                           threads=executor.thread_count(p.resource, self.ctx.threads))
        files = None if executor.shared_filesystem else _shipped_files(self.run_dir, p.after)
        executor.submit(CellTask(cell.index, p.suite, p.cell, p.resource, params, cell_ctx,
                                 files, self.plugins, cell_limit(p, params), replica, cell.k))

    def collect(self, p: PlannedCell, result: CellResult
                ) -> tuple[list[Record], dict[str, bytes]] | None:
        """The cell's records and files once it is whole; None when its next replica was
        submitted instead."""
        cell = self.cells[p.cell.id]
        if cell.k == 1:
            del self.cells[p.cell.id]
            return result.records, result.files
        i = len(cell.runs)
        cell.runs.append(result.records)
        cell.files.update(result.files)
        failed = next((r for r in result.records
                       if r.metric == "cell_status" and r.status != "ok"), None)
        if failed is None and len(cell.runs) < cell.k:
            self._send(p, cell)
            return None
        del self.cells[p.cell.id]
        if failed is not None:
            where = f"process {i + 1}/{cell.k}"
            return _error_records(p.cell, failed.status, f"{where}: {failed.error}"), cell.files
        try:
            return get_suite(p.suite).merge_replicas(cell.runs), cell.files
        except Exception as err:  # recorded like a failing cell
            detail = "".join(traceback.format_exception_only(type(err), err)).strip()
            return _error_records(p.cell, "error", f"merging the {cell.k} processes' records"
                                  f" failed: {detail}"), cell.files


def _summarize(store: ResultsStore, profile: Profile, ctx: RunContext, suites: list[str]) -> None:
    """Each suite's summary records over the run's records, replacing its earlier ones; a summary
    that raises is stored as an error record."""
    finished = store.records()
    for name in suites:
        suite = get_suite(name)
        try:
            summary = suite.summarize(finished, profile.suites[name], ctx)
        except Exception as err:
            detail = "".join(traceback.format_exception_only(type(err), err)).strip()
            summary = [Record(suite=name, attention="*", options={}, params={},
                              metric="summary_status", status="error",
                              error=f"summary failed: {detail}")]
        model_id = (ctx.model or {}).get("id")
        store.replace_summaries(name, _stamp(summary, suite.version, model_id))


def preflight(profile: Profile, suites: list[str],
              out_dir: str | Path | None = None) -> dict[str, Any]:
    """Find unusable input before anything runs (``ValueError``/``StoreError``, the CLI's exit
    2): the output folder, the profile's suites, local text data, media folders and probe files
    (:mod:`harness.run.inputs`). Returns what the input checks found (run.json ``inputs``)."""
    missing = [s for s in suites if s not in profile.suites]
    if missing:
        raise ValueError(
            f"profile {profile.name!r} has no parameters for suite(s) {', '.join(missing)};"
            f" it defines: {', '.join(profile.suites)}"
        )
    if out_dir is not None:
        check_out_dir(out_dir)
    if profile.model is not None:
        from harness.models.user import check_run

        check_run(profile, suites)
    from harness.run.inputs import check_inputs

    return check_inputs(profile, suites)


def start_run(
    profile: Profile,
    *,
    suites: list[str] | None = None,
    out_dir: str | Path = "reports",
    device: str | None = None,
    argv: list[str] | None = None,
    progress: Progress | None = None,
    run_id: str | None = None,
    executor: Executor | None = None,
) -> RunOutcome:
    """Run ``suites`` (default: all in the profile) and write a new run directory.

    ``executor`` runs the cells (default: :class:`SerialExecutor`, in this process)."""
    progress = progress or Progress()
    executor = executor or SerialExecutor()
    suites = suites or list(profile.suites)
    inputs = preflight(profile, suites, out_dir)
    device = resolve_device(device or profile.device)
    planned = plan_run(profile, suites)
    check_executor(executor, profile, suites)
    out_dir = Path(out_dir)
    run_dir = out_dir / (run_id or _new_run_id())
    ctx_threads = profile.threads or default_threads()
    meta: dict[str, Any] = {
        "run_id": run_dir.name,
        "status": "running",
        "start_time": _now(),
        "end_time": None,
        "command": list(argv if argv is not None else sys.argv),
        "profile": profile.to_dict(),
        "profile_hash": profile.hash,
        "suites": suites,
        "attentions": [_attention_meta(s) for s in profile.attention_specs()],
        "plugins": [info.as_dict() for info in loaded_plugins()],
        "reference": profile.reference_label(),
        "model": _model_meta(profile),
        "suites_meta": suites_meta(suites),
        "seeds": list(profile.seeds),
        "device": device,
        "threads": ctx_threads,
        "memory_budget": profile.memory_budget,
        "n_cells": len(planned),
        "environment": capture_environment(device),
        "resumed": [],
        "compare_rules": compare_rules(suites),
        "executor": {"name": executor.name},
        "inputs": inputs,
    }
    # an unusable executor leaves no run dir
    _start_executor(executor, progress, planned, profile.model is not None)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        with RunLock(run_dir):
            store = ResultsStore.create(run_dir, meta)
            point_latest(out_dir, run_dir)
            return _run_planned(store, profile, planned, device, progress, suites, executor)
    except BaseException:
        executor.close()
        raise


def cell_imports(planned: list[PlannedCell], user_model: bool) -> dict[str, tuple[str, ...]]:
    """What the planned cells import on first use (``Suite.imports``), per resource class."""
    found: dict[str, dict[str, None]] = {}
    for p in planned:
        for module in get_suite(p.suite).imports(p.cell, user_model):
            found.setdefault(p.resource, {})[module] = None
    return {resource: tuple(modules) for resource, modules in found.items()}


def _start_executor(executor: Executor, progress: Progress, planned: list[PlannedCell],
                    user_model: bool) -> None:
    """Start ``executor`` (connect to a cluster, start a pool) before anything is written;
    ``ExecutorUnavailableError`` (the CLI's exit 2) when it cannot start."""
    try:
        executor.preload(cell_imports(planned, user_model))
        executor.start(_Events(progress, planned))
    except ExecutorUnavailableError:
        raise
    except Exception as err:  # an environment the executor cannot use: exit 2, nothing made
        with contextlib.suppress(Exception):
            executor.close()
        raise ExecutorUnavailableError(
            f"executor {executor.name}: cannot start: {type(err).__name__}: {err}") from None


def _run_planned(
    store: ResultsStore,
    profile: Profile,
    planned: list[PlannedCell],
    device: str,
    progress: Progress,
    suites: list[str],
    executor: Executor,
) -> RunOutcome:
    ctx = _context(profile, store.run_dir, device)
    started = time.perf_counter()

    def interrupted() -> None:
        with contextlib.suppress(Exception):  # e.g. the disk is full: run.json stays as it was
            store.update_meta(status="interrupted", end_time=_now())

    try:
        with _SIGNALS.installed():
            outcome = _execute(store, profile, planned, ctx, progress, suites, executor)
            with _SIGNALS.deferred():  # a run that finished is recorded as finished
                store.update_meta(
                    status="failed" if outcome.exit_code else "finished",
                    end_time=_now(),
                    counts=outcome.counts,
                    duration_s=round(time.perf_counter() - started, 3),
                )
    except KeyboardInterrupt as err:
        interrupted()
        raise RunInterrupted(store.run_dir) from err
    except OSError as err:  # disk full, permissions changed under the run: resumable
        interrupted()
        raise RunStoppedError(store.run_dir, err) from err
    except BaseException:
        interrupted()
        raise
    return outcome


def _check_resume_plugins(meta: dict[str, Any], run_dir: Path, source: str) -> None:
    """A resume never imports code because a run.json names it: every plugin the run loaded
    (``plugins[].spec``, the profile's ``plugins``) must already be loaded (``--plugin``)."""
    recorded = meta.get("plugins") if isinstance(meta.get("plugins"), list) else []
    named = [p.get("spec") for p in recorded if isinstance(p, dict)]
    profile = meta.get("profile") if isinstance(meta.get("profile"), dict) else {}
    if isinstance(profile.get("plugins"), list):
        named += profile["plugins"]
    loaded = set(loaded_plugin_specs())
    missing = [s for s in dict.fromkeys(named) if isinstance(s, str) and s and s not in loaded]
    if missing:
        again = " ".join(f"--plugin {shlex.quote(s)}" for s in missing)
        raise StoreError(
            f"{source}: the run loaded plugin code ({', '.join(missing)}), and a resume does not"
            " import code because a run file names it; if you trust that code, pass it again:"
            f" harness run --resume {shlex.quote(str(run_dir))} {again}")


def resume_run(run_dir: str | Path, *, progress: Progress | None = None,
               executor: Executor | None = None) -> RunOutcome:
    """Continue an interrupted run: finished cells are kept, the rest run; nothing duplicates.

    Any executor can resume any run (default: :class:`SerialExecutor`)."""
    executor = executor or SerialExecutor()
    run_dir = resolve_run_dir(run_dir)  # follow `latest` to the real directory
    if not run_dir.is_dir():
        raise StoreError(f"--resume {run_dir}: no such run directory")
    meta = read_run(run_dir, versions=(SCHEMA_VERSION,))
    source = f"{run_dir}/run.json"
    _check_resume_plugins(meta, run_dir, source)
    suites = meta.get("suites")
    if not isinstance(meta.get("profile"), dict) or not isinstance(suites, list) or not suites:
        raise StoreError(f"{source}: malformed run file (needs a `profile` object and a"
                         " `suites` list); it cannot be resumed, start a new run")
    try:
        profile = profile_from_dict(meta["profile"], source=source)
        preflight(profile, suites)
    except ValueError as err:
        raise StoreError(f"{source}: cannot resume: {err}") from None
    progress = progress or Progress()
    planned = plan_run(profile, suites)
    check_executor(executor, profile, suites)
    with RunLock(run_dir):
        store = ResultsStore.open(run_dir)
        _start_executor(executor, progress, planned, profile.model is not None)
        try:
            resumed = meta.get("resumed") if isinstance(meta.get("resumed"), list) else []
            store.update_meta(status="running", resumed=[*resumed, _now()],
                              executor={"name": executor.name})
            device = resolve_device(meta.get("device", profile.device))
            point_latest(run_dir.parent, run_dir)
        except BaseException:
            executor.close()
            raise
        return _run_planned(store, profile, planned, device, progress, suites, executor)
