"""Whether two runs hold the same records: the check that a change left the harness's results
as they were.

Records are matched on their identity: suite, attention label, params (which hold the seed where
a suite has seeds) and metric. Every record present in one run only is listed. Matched records
are compared by the kind of their metric:

- timing-derived (every metric of a timing suite, ``throughput``, and any metric whose unit is a
  time or a rate: ``s``, ``ms``, ``us``, ``ns``, ``.../s``, e.g. accuracy's ``train_time_s``):
  by presence and status only, since timings differ between any two runs;
- measured bytes (every metric of the ``memory`` suite: peak RSS above a baseline and what is
  fitted to it): value within a relative tolerance, ``--bytes-rtol`` (default 0.05);
- every other metric (accuracy and macro-F1, bias gaps, p-values, counts): status, ``value``,
  ``stderr``, ``ci_low``, ``ci_high`` and ``n`` equal within ``--rtol`` (default 1e-6, relative)
  or ``--atol`` (default 1e-9, absolute); the runs are seeded, so these repeat exactly on one
  machine and thread count.

Both runs are read as the report and `harness compare` read them (``upgrade_run``: metrics of
an older naming are renamed), so a run from before a rename matches one from after.

    python scripts/same_records.py RUN_A RUN_B [--rtol R] [--atol A] [--bytes-rtol B]
        # exit 0: the same records; 1: some differ (each listed); 2: not a run directory
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from pathlib import Path

from harness.records import Record, canonical_json
from harness.run.store import StoreError, read_records, read_run, resolve_run_dir, upgrade_run

#: Suites whose every metric is derived from timings.
TIMING_SUITES = frozenset({"throughput"})
#: Suites whose metrics are measured memory (peak bytes) and figures fitted to it.
BYTES_SUITES = frozenset({"memory"})
TIME_UNITS = frozenset({"s", "ms", "us", "ns"})
#: The fields compared on a deterministic metric.
VALUE_FIELDS = ("value", "stderr", "ci_low", "ci_high", "n")

Key = tuple[str, str, str, str]


@dataclass(frozen=True)
class Tolerance:
    """How close two values must be: ``rtol``/``atol`` for deterministic metrics, ``bytes_rtol``
    for measured memory."""

    rtol: float = 1e-6
    atol: float = 1e-9
    bytes_rtol: float = 0.05


def identity(r: Record) -> Key:
    """(suite, attention label, params as canonical JSON, metric): one record of a run."""
    return (r.suite, r.label or r.attention, canonical_json(r.params), r.metric)


def kind(r: Record) -> str:
    """``"timing"``, ``"bytes"`` or ``"value"``: how a record's metric is compared."""
    unit = r.unit or ""
    if r.suite in TIMING_SUITES or unit in TIME_UNITS or unit.endswith("/s"):
        return "timing"
    if r.suite in BYTES_SUITES:
        return "bytes"
    return "value"


def _close(a: float | None, b: float | None, rtol: float, atol: float) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return math.isclose(a, b, rel_tol=rtol, abs_tol=atol)


def differences(a: Record, b: Record, tol: Tolerance) -> list[str]:
    """What differs between two records of the same identity (empty: the same)."""
    found = []
    if a.status != b.status:
        found.append(f"status {a.status} vs {b.status}")
    how = kind(a)
    if how == "timing" or a.status != "ok" or b.status != "ok":
        return found
    if how == "bytes":
        if not _close(a.value, b.value, tol.bytes_rtol, 0.0):
            found.append(f"value {a.value!r} vs {b.value!r} (beyond {tol.bytes_rtol:g} relative)")
        return found
    for name in VALUE_FIELDS:
        x, y = getattr(a, name), getattr(b, name)
        if not _close(x, y, tol.rtol, tol.atol):
            found.append(f"{name} {x!r} vs {y!r}")
    return found


def _by_identity(records: list[Record]) -> dict[Key, list[Record]]:
    grouped: dict[Key, list[Record]] = {}
    for r in records:
        grouped.setdefault(identity(r), []).append(r)
    return grouped


def _shown(key: Key, index: int, count: int) -> str:
    suite, label, params, metric = key
    again = f" (#{index + 1} of {count})" if count > 1 else ""
    return f"{suite}/{label}/{metric} {params}{again}"


def compare_runs(a: list[Record], b: list[Record],
                 tol: Tolerance = Tolerance()) -> tuple[list[str], dict[str, int]]:
    """Every difference between two runs' records, one line each, and the counts of records
    matched by kind. Records sharing an identity are paired in their stored order."""
    left, right = _by_identity(a), _by_identity(b)
    lines: list[str] = []
    counts = {"timing": 0, "bytes": 0, "value": 0}
    for key in sorted(set(left) | set(right)):
        xs, ys = left.get(key, []), right.get(key, [])
        for i in range(max(len(xs), len(ys))):
            where = _shown(key, i, max(len(xs), len(ys)))
            if i >= len(ys):
                lines.append(f"only in A: {where}")
            elif i >= len(xs):
                lines.append(f"only in B: {where}")
            else:
                counts[kind(xs[i])] += 1
                lines += [f"differs: {where}: {d}" for d in differences(xs[i], ys[i], tol)]
    return lines, counts


def _read(path: Path) -> list[Record]:
    """A run's records as the report and the gate read them (old metric names migrated)."""
    run_dir = resolve_run_dir(path)
    return upgrade_run(read_run(run_dir), read_records(run_dir))[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_a", type=Path, help="a run directory (or its `latest` link)")
    parser.add_argument("run_b", type=Path, help="the run directory to compare it with")
    parser.add_argument("--rtol", type=float, default=Tolerance.rtol,
                        help="relative tolerance of deterministic metrics (default 1e-6)")
    parser.add_argument("--atol", type=float, default=Tolerance.atol,
                        help="absolute tolerance of deterministic metrics (default 1e-9)")
    parser.add_argument("--bytes-rtol", type=float, default=Tolerance.bytes_rtol,
                        help="relative tolerance of measured memory (default 0.05)")
    args = parser.parse_args(argv)
    for name in ("rtol", "atol", "bytes_rtol"):
        value = getattr(args, name)
        if not (math.isfinite(value) and value >= 0):
            parser.error(f"--{name.replace('_', '-')} must be a finite number >= 0, got {value}")
    try:
        runs = [_read(path) for path in (args.run_a, args.run_b)]
    except StoreError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    lines, counts = compare_runs(*runs, Tolerance(args.rtol, args.atol, args.bytes_rtol))
    for line in lines:
        print(line)
    print(f"A: {len(runs[0])} records, B: {len(runs[1])}; matched: {counts['value']} compared by"
          f" value (rtol {args.rtol:g}, atol {args.atol:g}), {counts['bytes']} by bytes (rtol"
          f" {args.bytes_rtol:g}), {counts['timing']} timing-derived by presence; "
          + ("the same" if not lines else f"{len(lines)} difference(s)"))
    return 1 if lines else 0


if __name__ == "__main__":
    sys.exit(main())
