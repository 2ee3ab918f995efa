"""The results store: ``run.json`` + ``results.jsonl`` in a run directory (docs/RESULTS.md).

Records are appended and flushed (and fsynced) one cell at a time, so a killed run loses at most the
cell in flight. Each record carries its ``cell`` id and ``cell_size`` (how many records the cell
wrote); on resume, a cell whose records are incomplete (torn by a kill) is dropped and run again.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.records import INTERVALS, STATUSES, Cell, Record, canonical_json

__all__ = [
    "INTERVALS",
    "SCHEMA_VERSION",
    "STATUSES",
    "Cell",
    "Record",
    "ResultsStore",
    "StoreError",
    "canonical_json",
    "read_records",
    "read_run",
]

SCHEMA_VERSION = 2
#: Versions this harness reads: 1 lacks ``suite_version`` in records and ``suites_meta`` /
#: ``reference`` in run.json (readers fall back to the registered suites' declarations).
READABLE_VERSIONS = (1, 2)
RUN_FILE = "run.json"
RESULTS_FILE = "results.jsonl"


class StoreError(ValueError):
    """A results directory is missing, corrupt, or of another schema version."""


def _fsync_write(path: Path, text: str, mode: str = "a") -> None:
    with open(path, mode, encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())


def _atomic_write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    _fsync_write(tmp, json.dumps(data, indent=2, default=str) + "\n", mode="w")
    os.replace(tmp, path)


def _iter_lines(path: Path) -> Iterator[tuple[int, str]]:
    with open(path, encoding="utf-8") as fh:
        yield from enumerate(fh, 1)


def read_run(run_dir: str | Path) -> dict[str, Any]:
    """Load ``run.json``; ``StoreError`` when missing, corrupt, or of another schema version."""
    path = Path(run_dir) / RUN_FILE
    if not path.is_file():
        raise StoreError(f"{path}: not found; is {run_dir} a run directory of `harness run`?")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise StoreError(f"{path}: corrupt JSON ({err})") from None
    version = meta.get("schema_version")
    if version not in READABLE_VERSIONS:
        raise StoreError(
            f"{path}: schema_version {version!r}, this harness reads"
            f" {', '.join(map(str, READABLE_VERSIONS))};"
            " re-run the suites with this version or compare with a matching harness"
        )
    return meta


def read_records(run_dir: str | Path, *, complete_only: bool = True) -> list[Record]:
    """Load ``results.jsonl``. A torn last line (killed writer) is ignored; other bad lines raise.

    With ``complete_only``, records of cells that did not write all their records are dropped.
    """
    path = Path(run_dir) / RESULTS_FILE
    if not path.is_file():
        raise StoreError(f"{path}: not found; is {run_dir} a run directory of `harness run`?")
    lines = list(_iter_lines(path))
    records: list[Record] = []
    for i, (lineno, line) in enumerate(lines):
        if not line.strip():
            continue
        try:
            records.append(Record.from_dict(json.loads(line)))
        except (json.JSONDecodeError, TypeError, ValueError) as err:
            if i == len(lines) - 1 and not line.endswith("\n"):
                break  # torn final write
            raise StoreError(f"{path}:{lineno}: corrupt record ({err})") from None
    if complete_only:
        counts: dict[str, int] = {}
        for r in records:
            if r.cell:
                counts[r.cell] = counts.get(r.cell, 0) + 1
        records = [
            r for r in records if not r.cell or r.cell_size is None or counts[r.cell] == r.cell_size
        ]
    return records


@dataclass
class ResultsStore:
    """Append-only writer of one run directory."""

    run_dir: Path
    _done: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.run_dir = Path(self.run_dir)

    @property
    def results_path(self) -> Path:
        return self.run_dir / RESULTS_FILE

    @property
    def run_path(self) -> Path:
        return self.run_dir / RUN_FILE

    @classmethod
    def create(cls, run_dir: str | Path, meta: dict[str, Any]) -> ResultsStore:
        run_dir = Path(run_dir)
        if (run_dir / RESULTS_FILE).exists():
            raise StoreError(f"{run_dir} already holds results; use --resume {run_dir} to continue")
        run_dir.mkdir(parents=True, exist_ok=True)
        store = cls(run_dir)
        store.write_meta({**meta, "schema_version": SCHEMA_VERSION})
        store.results_path.touch()
        return store

    @classmethod
    def open(cls, run_dir: str | Path) -> ResultsStore:
        """Reopen for resume: drop torn lines and incomplete cells, remember finished cells."""
        read_run(run_dir)
        store = cls(Path(run_dir))
        kept = read_records(run_dir, complete_only=True)
        original = store.results_path.read_text(encoding="utf-8")
        rewritten = "".join(r.to_json() + "\n" for r in kept)
        if rewritten != original:
            tmp = store.results_path.with_suffix(".jsonl.tmp")
            _fsync_write(tmp, rewritten, mode="w")
            os.replace(tmp, store.results_path)
        store._done = {r.cell for r in kept if r.cell}
        return store

    def meta(self) -> dict[str, Any]:
        return read_run(self.run_dir)

    def write_meta(self, meta: dict[str, Any]) -> None:
        _atomic_write_json(self.run_path, meta)

    def update_meta(self, **changes: Any) -> dict[str, Any]:
        meta = json.loads(self.run_path.read_text(encoding="utf-8"))
        meta.update(changes)
        self.write_meta(meta)
        return meta

    def is_done(self, cell: Cell) -> bool:
        return cell.id in self._done

    def write_cell(self, cell: Cell, records: Iterable[Record]) -> list[Record]:
        """Append all records of a finished cell in one flushed, fsynced write."""
        records = list(records)
        for r in records:
            r.cell = cell.id
            r.cell_size = len(records)
        if records:
            _fsync_write(self.results_path, "".join(r.to_json() + "\n" for r in records))
        self._done.add(cell.id)
        return records

    def replace_summaries(self, suite: str, records: Iterable[Record]) -> list[Record]:
        """Replace the cross-cell summary records of ``suite`` (cell id ``summary:<suite>``)."""
        cell_id = f"summary:{suite}"
        kept = [r for r in read_records(self.run_dir) if r.cell != cell_id]
        records = list(records)
        for r in records:
            r.cell = cell_id
            r.cell_size = len(records)
        text = "".join(r.to_json() + "\n" for r in [*kept, *records])
        tmp = self.results_path.with_suffix(".jsonl.tmp")
        _fsync_write(tmp, text, mode="w")
        os.replace(tmp, self.results_path)
        return records

    def records(self) -> list[Record]:
        return read_records(self.run_dir)


def point_latest(out_dir: str | Path, run_dir: str | Path) -> Path:
    """Make ``<out_dir>/latest`` point at ``run_dir`` (a relative symlink, or a text file)."""
    out_dir, run_dir = Path(out_dir), Path(run_dir)
    link = out_dir / "latest"
    target = os.path.relpath(run_dir, out_dir)
    tmp = out_dir / ".latest.tmp"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    try:
        os.symlink(target, tmp)
    except OSError:
        _fsync_write(tmp, target + "\n", mode="w")
    if link.is_dir() and not link.is_symlink():
        raise StoreError(f"{link} is a real directory; remove it so `latest` can point at runs")
    os.replace(tmp, link)
    return link


def resolve_run_dir(path: str | Path) -> Path:
    """Follow ``latest`` (symlink or text file) to a run directory."""
    path = Path(path)
    if path.is_file() and not path.is_symlink() and path.name == "latest":
        return (path.parent / path.read_text(encoding="utf-8").strip()).resolve()
    return path.resolve() if path.exists() else path
