"""Plan, execute and store a run; resume an interrupted one."""

from __future__ import annotations

import datetime as dt
import os
import secrets
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from harness.attention import load_plugins, loaded_plugins
from harness.measure.env import capture_environment, resolve_device
from harness.records import Cell, Record
from harness.run.profiles import Profile, profile_from_dict
from harness.run.store import (
    SCHEMA_VERSION,
    ResultsStore,
    RunLock,
    StoreError,
    check_out_dir,
    point_latest,
    read_run,
    resolve_run_dir,
)
from harness.suites import RunContext, get_suite
from harness.suites.base import compare_rules, suites_meta

__all__ = ["PlannedCell", "RunInterrupted", "RunOutcome", "plan_run", "preflight", "resume_run",
           "start_run"]


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C during a run: the run directory is marked ``interrupted`` and can be resumed."""

    def __init__(self, run_dir: Path) -> None:
        super().__init__(str(run_dir))
        self.run_dir = Path(run_dir)

    @property
    def resume_command(self) -> str:
        return f"harness run --resume {self.run_dir}"


@dataclass(frozen=True)
class PlannedCell:
    suite: str
    cell: Cell
    weight: float


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
    """Every cell of the run in order: suite x attention x params x seed."""
    names = suites or list(profile.suites)
    specs = profile.attention_specs()
    planned = []
    for name in names:
        suite = get_suite(name)
        for cell in suite.plan(profile.suites[name], specs, list(profile.seeds)):
            planned.append(PlannedCell(name, cell, suite.cell_weight(cell)))
    return planned


def _attention_meta(spec) -> dict[str, Any]:
    """Spec, capabilities and this configuration's memory claim, for run.json and reports."""
    complexity, exponent = spec.build().claimed_memory
    caps = {**spec.capabilities.as_dict(), "memory_complexity": complexity,
            "memory_exponent": exponent}
    return {**spec.as_dict(), "capabilities": caps}


def _new_run_id() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)


def _context(profile: Profile, run_dir: Path, device: str, progress: Progress) -> RunContext:
    threads = profile.threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    return RunContext(
        device=device,
        threads=threads,
        memory_budget=profile.memory_budget,
        run_dir=run_dir,
        seeds=tuple(profile.seeds),
        data=profile.data,
        predictions=profile.predictions,
        progress=progress.cell_progress,
        reference=profile.reference_label(),
    )


def _stamp(records: list[Record], version: int) -> list[Record]:
    """Stamp the suite's method version into each record (compare: "method changed")."""
    for r in records:
        r.suite_version = version
    return records


def _error_records(cell: Cell, status: str, message: str) -> list[Record]:
    return [Record.for_cell(cell, "cell_status", status=status, error=message)]


def _is_oom(err: BaseException) -> bool:
    text = str(err).lower()
    return isinstance(err, MemoryError) or "out of memory" in text or "can't allocate" in text


def _execute(
    store: ResultsStore,
    profile: Profile,
    planned: list[PlannedCell],
    ctx: RunContext,
    progress: Progress,
    suites: list[str],
) -> RunOutcome:
    outcome = RunOutcome(store.run_dir)
    finished = store.records()
    progress.start(sum(p.weight for p in planned), len(planned))
    try:
        for p in planned:
            suite = get_suite(p.suite)
            if store.is_done(p.cell):
                progress.cell_finished(p, [])
                continue
            progress.cell_started(p)
            reason = suite.skip_reason(p.cell, finished)
            if reason is not None:
                records = _error_records(p.cell, "skipped", reason)
            else:
                try:
                    records = suite.run_cell(p.cell, profile.suites[p.suite], ctx)
                    if not records:
                        records = _error_records(p.cell, "error", "the cell produced no record")
                except KeyboardInterrupt:
                    raise
                except Exception as err:  # a failing cell is recorded; the run goes on
                    status = "oom" if _is_oom(err) else "error"
                    detail = "".join(traceback.format_exception_only(type(err), err)).strip()
                    records = _error_records(p.cell, status, detail)
                    if status == "error" and os.environ.get("HARNESS_TRACEBACK"):
                        traceback.print_exc()
            _stamp(records, suite.version)
            store.write_cell(p.cell, records)
            finished.extend(records)
            progress.cell_finished(p, records)
        for name in suites:
            suite = get_suite(name)
            try:
                summary = suite.summarize(finished, profile.suites[name], ctx)
            except Exception as err:
                detail = "".join(traceback.format_exception_only(type(err), err)).strip()
                summary = [Record(suite=name, attention="*", options={}, params={},
                                  metric="summary_status", status="error",
                                  error=f"summary failed: {detail}")]
            store.replace_summaries(name, _stamp(summary, suite.version))
    finally:
        progress.stop()
    outcome.records = store.records()
    for r in outcome.records:
        outcome.counts[r.status] = outcome.counts.get(r.status, 0) + 1
    return outcome


def preflight(profile: Profile, suites: list[str], out_dir: str | Path | None = None) -> None:
    """Find unusable input before anything runs (``ValueError``/``StoreError``, the CLI's exit
    2): the output folder, the profile's suites, and local text data (files, columns, labels,
    sizes)."""
    missing = [s for s in suites if s not in profile.suites]
    if missing:
        raise ValueError(
            f"profile {profile.name!r} has no parameters for suite(s) {', '.join(missing)};"
            f" it defines: {', '.join(profile.suites)}"
        )
    if out_dir is not None:
        check_out_dir(out_dir)
    data = profile.data
    if data.data_files:
        from harness.data.text import check_text_data

        check_text_data(data_files=dict(data.data_files), text_column=data.text_column,
                        label_column=data.label_column)


def start_run(
    profile: Profile,
    *,
    suites: list[str] | None = None,
    out_dir: str | Path = "reports",
    device: str | None = None,
    argv: list[str] | None = None,
    progress: Progress | None = None,
    run_id: str | None = None,
) -> RunOutcome:
    """Run ``suites`` (default: all in the profile) and write a new run directory."""
    progress = progress or Progress()
    suites = suites or list(profile.suites)
    preflight(profile, suites, out_dir)
    device = resolve_device(device or profile.device)
    planned = plan_run(profile, suites)
    out_dir = Path(out_dir)
    run_dir = out_dir / (run_id or _new_run_id())
    ctx_threads = profile.threads or torch.get_num_threads()
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
        "suites_meta": suites_meta(suites),
        "seeds": list(profile.seeds),
        "device": device,
        "threads": ctx_threads,
        "memory_budget": profile.memory_budget,
        "n_cells": len(planned),
        "environment": capture_environment(device),
        "resumed": [],
        "compare_rules": compare_rules(suites),
    }
    run_dir.mkdir(parents=True, exist_ok=True)
    with RunLock(run_dir):
        store = ResultsStore.create(run_dir, meta)
        point_latest(out_dir, run_dir)
        return _finish(store, profile, planned, device, progress, suites)


def _finish(
    store: ResultsStore,
    profile: Profile,
    planned: list[PlannedCell],
    device: str,
    progress: Progress,
    suites: list[str],
) -> RunOutcome:
    ctx = _context(profile, store.run_dir, device, progress)
    started = time.perf_counter()
    try:
        outcome = _execute(store, profile, planned, ctx, progress, suites)
    except KeyboardInterrupt as err:
        store.update_meta(status="interrupted", end_time=_now())
        raise RunInterrupted(store.run_dir) from err
    except BaseException:
        store.update_meta(status="interrupted", end_time=_now())
        raise
    store.update_meta(
        status="failed" if outcome.exit_code else "finished",
        end_time=_now(),
        counts=outcome.counts,
        duration_s=round(time.perf_counter() - started, 3),
    )
    return outcome


def resume_run(run_dir: str | Path, *, progress: Progress | None = None) -> RunOutcome:
    """Continue an interrupted run: finished cells are kept, the rest run; nothing duplicates."""
    run_dir = resolve_run_dir(run_dir)  # follow `latest` to the real directory
    if not run_dir.is_dir():
        raise StoreError(f"--resume {run_dir}: no such run directory")
    meta = read_run(run_dir, versions=(SCHEMA_VERSION,))
    source = f"{run_dir}/run.json"
    plugins = meta.get("plugins") if isinstance(meta.get("plugins"), list) else []
    load_plugins(p["spec"] for p in plugins if isinstance(p, dict) and p.get("spec"))
    suites = meta.get("suites")
    if not isinstance(meta.get("profile"), dict) or not isinstance(suites, list) or not suites:
        raise StoreError(f"{source}: malformed run file (needs a `profile` object and a"
                         " `suites` list); it cannot be resumed, start a new run")
    try:
        profile = profile_from_dict(meta["profile"], source=source)
        preflight(profile, suites)
    except ValueError as err:
        raise StoreError(f"{source}: cannot resume: {err}") from None
    with RunLock(run_dir):
        store = ResultsStore.open(run_dir)
        resumed = meta.get("resumed") if isinstance(meta.get("resumed"), list) else []
        store.update_meta(status="running", resumed=[*resumed, _now()])
        device = resolve_device(meta.get("device", profile.device))
        planned = plan_run(profile, suites)
        point_latest(run_dir.parent, run_dir)
        return _finish(store, profile, planned, device, progress or Progress(), suites)
