"""The results store: ``run.json`` + ``results.jsonl`` in a run directory (docs/RESULTS.md).

Records are appended and flushed (and fsynced) one cell at a time, so a killed run loses at most the
cell in flight. Each record carries its ``cell`` id and ``cell_size`` (how many records the cell
wrote); on resume, a cell whose records are incomplete (torn by a kill) is dropped and run again.
One writer at a time: ``RunLock`` (an ``fcntl`` lock on ``<run dir>/.lock``, which names its
holder) is held by a run and by a resume for as long as they write.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import socket
import sys
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
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
    "RunLock",
    "StoreError",
    "canonical_json",
    "check_out_dir",
    "check_run_dir",
    "inside_run_dir",
    "read_records",
    "read_run",
    "upgrade_run",
    "write_in_run_dir",
]

SCHEMA_VERSION = 2
#: Versions readers accept: 1 lacks raw samples, ``noisy``, ``load`` and ``suite_version`` in
#: records and ``suites_meta`` / ``reference`` in run.json (readers use the registered suites').
READABLE_VERSIONS = (1, 2)
#: Metric names runs of older harnesses hold, renamed when a run is read (old suffix, new):
#: the reference a summary compares with is configurable, not always ``standard``.
RENAMED_METRICS = (("_vs_standard", "_vs_reference"),)
RUN_FILE = "run.json"
RESULTS_FILE = "results.jsonl"
LOCK_FILE = ".lock"
_NUMBERS = ("value", "stderr", "ci_low", "ci_high")
_MAX_RUN_FILE = 256 * 2**20
_MAX_LINE = 64 * 2**20


class StoreError(ValueError):
    """A results directory is missing, corrupt, or of another schema version."""


def inside_run_dir(path: str | Path, what: str = "file") -> Path:
    """``path`` (a file or folder of a run directory) when it is no symlink and resolves inside
    its run directory; ``StoreError`` otherwise. The run directory is a boundary: the harness
    never reads, writes or follows a link out of it."""
    path = Path(path)
    if path.is_symlink():
        raise StoreError(f"{path}: is a symbolic link (to {os.readlink(path)}); a run directory"
                         f" holds its own {what}s, so the harness refuses to follow it; remove"
                         " the link")
    if path.exists() and path.resolve().parent != path.parent.resolve():
        raise StoreError(f"{path}: resolves to {path.resolve()}, outside its run directory;"
                         " the harness refuses to follow it")
    return path


def _fsync_write(path: Path, text: str, mode: str = "a") -> None:
    """Append (``a``) or write a new file (``w``), never through a symbolic link."""
    flags = os.O_WRONLY | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
    flags |= os.O_APPEND if mode == "a" else os.O_TRUNC
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as err:
        if Path(path).is_symlink():
            inside_run_dir(path)  # the clear refusal
        raise err from None
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())


def write_in_run_dir(path: str | Path, data: str | bytes) -> Path:
    """Write ``path`` whole: a fresh temporary file beside it (same folder: inside the run
    directory), then ``os.replace``, which replaces a link at ``path`` instead of writing
    through it. Nothing outside the folder is ever opened for writing."""
    path = Path(path)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode("utf-8") if isinstance(data, str) else data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(name, path)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return path


def _atomic_write_json(path: Path, data: dict[str, Any]) -> None:
    write_in_run_dir(path, json.dumps(data, indent=2, default=str) + "\n")


def _iter_lines(path: Path) -> Iterator[tuple[int, str]]:
    """The lines of a store file, one at a time (a huge file is never held whole); a line that
    is not UTF-8 is a ``StoreError`` naming the file and line."""
    with open(path, "rb") as fh:
        lineno = 0
        while raw := fh.readline(_MAX_LINE + 1):
            lineno += 1
            if len(raw) > _MAX_LINE:
                raise StoreError(f"{path}:{lineno}: a line of more than {_MAX_LINE} bytes; no"
                                 " record is that long, the file is not a results store")
            try:
                yield lineno, raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise StoreError(f"{path}:{lineno}: not UTF-8 text (byte {raw[err.start]:#04x}"
                                 f" at column {err.start + 1}); the store was edited or"
                                 " damaged") from None


def read_run(run_dir: str | Path, *, versions: tuple[int, ...] = READABLE_VERSIONS
             ) -> dict[str, Any]:
    """Load ``run.json``; ``StoreError`` when missing, corrupt, not an object, or of a schema
    version outside ``versions`` (readers take every readable one; a resume only the current)."""
    path = inside_run_dir(Path(run_dir) / RUN_FILE)
    if not path.is_file():
        raise StoreError(f"{path}: not found; is {run_dir} a run directory of `harness run`?")
    if path.stat().st_size > _MAX_RUN_FILE:
        raise StoreError(f"{path}: {path.stat().st_size} bytes, far more than a run file holds"
                         f" (at most {_MAX_RUN_FILE}); the file is not a run file")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise StoreError(f"{path}: corrupt JSON ({err})") from None
    if not isinstance(meta, dict):
        raise StoreError(f"{path}: corrupt run file: a JSON object is expected, found"
                         f" {type(meta).__name__}")
    version = meta.get("schema_version")
    if version not in versions:
        raise StoreError(
            f"{path}: schema_version {version!r}, this harness reads"
            f" {' or '.join(map(str, versions))};"
            " re-run the suites with this version or compare with a matching harness"
        )
    return meta


def _invalid_numbers(data: dict[str, Any]) -> str | None:
    """Why a stored record's figures are unusable (NaN, inf, text where a number belongs)."""
    for name in _NUMBERS:
        v = data.get(name)
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            return f"{name} is {v!r}, not a finite number"
    samples = data.get("samples")
    if samples is not None and (not isinstance(samples, list) or not all(
            isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
            for x in samples)):
        return "samples must be a list of finite numbers"
    value = data.get("value")
    if samples and value is not None and data.get("status", "ok") == "ok":
        ordered = sorted(samples)
        lo, hi = ordered[(len(ordered) - 1) // 2], ordered[len(ordered) // 2]
        slack = 1e-4 * max(abs(lo), abs(hi)) + 1e-12  # samples keep 6 significant digits
        if not lo - slack <= value <= hi + slack:
            return (f"value {value!r} is not the median of its {len(ordered)} samples"
                    f" ({lo:.6g}..{hi:.6g})")
    return None


def read_records(run_dir: str | Path, *, complete_only: bool = True) -> list[Record]:
    """Load ``results.jsonl``. A torn last line (killed writer) is ignored; other bad lines raise.

    With ``complete_only``, records of cells that did not write all their records are dropped.
    """
    path = inside_run_dir(Path(run_dir) / RESULTS_FILE)
    if not path.is_file():
        raise StoreError(f"{path}: not found; is {run_dir} a run directory of `harness run`?")
    records: list[Record] = []
    for lineno, line in _iter_lines(path):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            if not isinstance(data, dict):
                raise ValueError(f"a JSON object is expected, found {type(data).__name__}")
        except (json.JSONDecodeError, ValueError) as err:
            if not line.endswith("\n"):
                break  # torn final write (only the last line lacks its newline)
            raise StoreError(f"{path}:{lineno}: corrupt record ({err})") from None
        bad = _invalid_numbers(data)
        if bad:
            what = f"{data.get('suite')}/{data.get('label') or data.get('attention')}/" \
                   f"{data.get('metric')}"
            raise StoreError(f"{path}:{lineno}: invalid record {what} {data.get('params')}:"
                             f" {bad}; the store was edited or written by a broken writer")
        try:
            records.append(Record.from_dict(data))
        except (TypeError, ValueError) as err:
            raise StoreError(f"{path}:{lineno}: corrupt record ({err})") from None
    counts: dict[str, int] = {}
    for r in records:
        if r.cell:
            counts[r.cell] = counts.get(r.cell, 0) + 1
    for r in records:  # more records than the cell wrote: not torn, duplicated (an edit)
        if r.cell and r.cell_size is not None and counts[r.cell] > r.cell_size:
            raise StoreError(
                f"{path}: cell {r.cell} ({r.suite}/{r.label or r.attention}) has"
                f" {counts[r.cell]} records but wrote {r.cell_size}: a record is duplicated;"
                " the store was edited or concatenated, re-run the cell or restore the file")
    if complete_only:
        records = [
            r for r in records if not r.cell or r.cell_size is None or counts[r.cell] == r.cell_size
        ]
    return records


def current_metric(name: str) -> str:
    """A metric's name as this harness writes it (see :data:`RENAMED_METRICS`)."""
    for old, new in RENAMED_METRICS:
        if name.endswith(old):
            return name[: -len(old)] + new
    return name


def upgrade_run(meta: dict[str, Any], records: list[Record]
                ) -> tuple[dict[str, Any], list[Record]]:
    """The schema migrator: a run as an older harness wrote it, in this harness's terms, so
    reports and `harness compare` read old and new runs alike (the files are not changed).

    Renamed metrics (:data:`RENAMED_METRICS`) get their current names, in the records and in
    run.json's ``suites_meta`` / ``compare_rules``; schema-1 records get the params schema-2
    records carry (``Suite.upgrade_params``, from the run's profile).
    """
    meta = _renamed_meta(meta)
    records = [r if current_metric(r.metric) == r.metric
               else replace(r, metric=current_metric(r.metric)) for r in records]
    if meta.get("schema_version", 1) != 1:
        return meta, records
    from harness.suites import get_suite, list_suites

    sections = (meta.get("profile") or {}).get("suites") or {}
    out = []
    for r in records:
        if r.suite in list_suites():
            params = get_suite(r.suite).upgrade_params(dict(r.params),
                                                       dict(sections.get(r.suite) or {}))
            r = replace(r, params=params)
        out.append(r)
    return meta, out


def _renamed_meta(meta: dict[str, Any]) -> dict[str, Any]:
    """``meta`` with the renamed metrics of its suite declarations and compare rules."""
    suites = {}
    for name, declared in (meta.get("suites_meta") or {}).items():
        metrics = [{**m, "name": current_metric(m["name"])} if isinstance(m, dict) and "name"
                   in m else m for m in (declared or {}).get("metrics") or []]
        suites[name] = {**declared, "metrics": metrics} if declared else declared
    rules = {}
    for name, rule in (meta.get("compare_rules") or {}).items():
        refs = (rule or {}).get("reference_metrics")
        rules[name] = {**rule, "reference_metrics": {
            current_metric(k): current_metric(v) for k, v in refs.items()}} if refs else rule
    out = dict(meta)
    if "suites_meta" in meta:
        out["suites_meta"] = suites
    if "compare_rules" in meta:
        out["compare_rules"] = rules
    return out


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
        check_run_dir(run_dir)
        store = cls(run_dir)
        store.write_meta({**meta, "schema_version": SCHEMA_VERSION})
        write_in_run_dir(store.results_path, "")
        return store

    @classmethod
    def open(cls, run_dir: str | Path) -> ResultsStore:
        """Reopen for resume: drop torn lines and incomplete cells, remember finished cells."""
        read_run(run_dir, versions=(SCHEMA_VERSION,))
        check_run_dir(run_dir)
        store = cls(Path(run_dir))
        kept = read_records(run_dir, complete_only=True)
        original = store.results_path.read_bytes()
        rewritten = "".join(r.to_json() + "\n" for r in kept)
        if rewritten.encode("utf-8") != original:
            write_in_run_dir(store.results_path, rewritten)
        store._done = {r.cell for r in kept if r.cell}
        return store

    def meta(self) -> dict[str, Any]:
        return read_run(self.run_dir)

    def write_meta(self, meta: dict[str, Any]) -> None:
        _atomic_write_json(self.run_path, meta)

    def update_meta(self, **changes: Any) -> dict[str, Any]:
        meta = json.loads(inside_run_dir(self.run_path).read_text(encoding="utf-8"))
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
        write_in_run_dir(self.results_path, text)
        return records

    def records(self) -> list[Record]:
        return read_records(self.run_dir)


#: what a run directory holds: files (a link at any of them is refused) and folders of files
RUN_DIR_FILES = (RUN_FILE, RESULTS_FILE, LOCK_FILE, "index.html", "summary.csv", "summary.json")
RUN_DIR_FOLDERS = ("artifacts", "predictions")


def check_run_dir(run_dir: str | Path) -> Path:
    """``StoreError`` when a file or folder of ``run_dir`` (or a file in its folders) is a
    symbolic link or resolves outside it: such a run dir could make the harness read or write
    files elsewhere (it was made by hand, or by someone else)."""
    run_dir = Path(run_dir)
    for name in (*RUN_DIR_FILES, *RUN_DIR_FOLDERS):
        inside_run_dir(run_dir / name, "folder" if name in RUN_DIR_FOLDERS else "file")
    for name in RUN_DIR_FOLDERS:
        folder = run_dir / name
        if folder.is_dir():
            for path in folder.iterdir():
                inside_run_dir(path)
    return run_dir


def point_latest(out_dir: str | Path, run_dir: str | Path) -> Path:
    """Make ``<out_dir>/latest`` point at ``run_dir`` (a relative symlink, or a text file).

    The new pointer is made under a unique temporary name and renamed over ``latest`` in one
    step, so concurrent runs never see a half-made pointer or collide on the temporary name.
    """
    out_dir, run_dir = Path(out_dir), Path(run_dir)
    link = out_dir / "latest"
    if link.is_dir() and not link.is_symlink():
        raise StoreError(f"{link} is a real directory; remove it so `latest` can point at runs")
    target = os.path.relpath(run_dir, out_dir)
    for _ in range(100):
        tmp = out_dir / f".latest.{os.getpid()}.{os.urandom(4).hex()}.tmp"
        try:
            os.symlink(target, tmp)
            break
        except FileExistsError:
            continue
        except OSError:  # no symlinks here: a one-line text file
            fd, name = tempfile.mkstemp(prefix=".latest.", suffix=".tmp", dir=out_dir)
            os.close(fd)
            tmp = Path(name)
            _fsync_write(tmp, target + "\n", mode="w")
            break
    else:  # pragma: no cover - 100 random names taken
        raise StoreError(f"{out_dir}: could not make a temporary name for `latest`")
    try:
        os.replace(tmp, link)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise
    return link


class RunLock:
    """Exclusive writer lock on a run directory: ``fcntl.flock`` on ``<run dir>/.lock``.

    The lock file names its holder (pid, host, command, since), so a refused writer can say who
    holds the directory. The operating system drops the lock when the holder exits, however it
    exits (a killed run never leaves a stale lock). Use as a context manager or ``acquire()`` /
    ``release()``; acquiring a held lock raises ``StoreError`` naming the holder.
    """

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_FILE
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def holder(self) -> dict[str, Any] | None:
        """What the lock file says about its (last) holder, or None."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def acquire(self) -> RunLock:
        import fcntl

        if self._fd is not None:
            return self
        inside_run_dir(self.path)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            who = self.holder() or {}
            command = " ".join(who.get("command") or []) or "?"
            raise StoreError(
                f"{self.run_dir} is in use by pid {who.get('pid', '?')} on"
                f" {who.get('host', '?')} ({command}), since {who.get('since', '?')};"
                " wait for that run to finish, or stop it, then resume with"
                f" `harness run --resume {self.run_dir}`"
            ) from None
        os.ftruncate(fd, 0)
        info = {"pid": os.getpid(), "host": socket.gethostname(), "command": list(sys.argv),
                "since": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
        os.write(fd, (json.dumps(info) + "\n").encode())
        self._fd = fd
        return self

    def release(self) -> None:
        import fcntl

        if self._fd is None:
            return
        try:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


_VIRTUAL_FS = ("/proc", "/sys", "/dev")


def check_out_dir(out_dir: str | Path) -> Path:
    """Make sure run directories can be written under ``out_dir`` without creating anything.

    ``StoreError`` when ``out_dir`` (or the nearest part of it that exists) is a file, lies
    under a virtual filesystem (/proc, /sys, /dev), or cannot be written to.
    """
    path = Path(out_dir).expanduser().absolute()
    real = path.resolve()
    for fs in _VIRTUAL_FS:
        if real == Path(fs) or str(real).startswith(fs + "/"):
            raise StoreError(f"--out {out_dir}: {real} lies under {fs}, a virtual filesystem"
                             " that cannot hold results; choose a normal folder")
    if path.exists() and not path.is_dir():
        raise StoreError(f"--out {out_dir}: is a file, not a folder; choose a folder for the"
                         " run directories (it is created when missing)")
    latest = path / "latest"
    if latest.is_dir() and not latest.is_symlink():
        raise StoreError(f"--out {out_dir}: {latest} is a real directory; remove or rename it"
                         " so `latest` can point at runs")
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise StoreError(f"--out {out_dir}: {existing} is a file, so no folder can be made"
                         " under it; choose another --out")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as err:
        raise StoreError(f"--out {out_dir}: cannot write in {existing} ({err.strerror});"
                         " choose a writable folder") from None
    return path


def resolve_run_dir(path: str | Path) -> Path:
    """Follow ``latest`` (symlink or text file) to a run directory."""
    path = Path(path)
    if path.is_file() and not path.is_symlink() and path.name == "latest":
        return (path.parent / path.read_text(encoding="utf-8").strip()).resolve()
    return path.resolve() if path.exists() else path
