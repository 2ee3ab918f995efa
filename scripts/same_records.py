"""Compare two run directories record for record: did a refactor change any record?

Both runs are read the way the report and `harness compare` read them (``upgrade_run``: old
metric names renamed), records are matched on their identity (``Record.key``), and every field
that describes the result is compared: value, interval, stderr, n, unit, direction, status,
interval kind, ci_method, error. Measured figures that differ from run to run (peak memory,
training time, and what is fitted on them) are compared on everything but their numbers:
``--measured`` names them (defaults below).

    python scripts/same_records.py reports/BEFORE reports/AFTER   # exit 0: identical
"""

from __future__ import annotations

import argparse
import sys

from harness.records import Record
from harness.run.store import read_records, read_run, resolve_run_dir, upgrade_run

#: Fields that describe a record's result (identity fields are in ``Record.key``).
FIELDS = ("value", "ci_low", "ci_high", "stderr", "n", "unit", "higher_is_better", "status",
          "interval", "ci_method", "error")
NUMBERS = ("value", "ci_low", "ci_high", "stderr")
#: Metrics measured on the machine (their numbers differ between two runs of one code).
MEASURED = ("peak_bytes", "memory_exponent", "exponent_matches_claim", "constant_dominated",
            "train_time_s", "train_time_s_mean")


def _load(path: str) -> dict[tuple, Record]:
    run_dir = resolve_run_dir(path)
    _, records = upgrade_run(read_run(run_dir), read_records(run_dir))
    out: dict[tuple, Record] = {}
    for r in records:
        if r.key in out:
            raise SystemExit(f"{path}: two records share the identity {r.key}")
        out[r.key] = r
    return out


def differences(before: dict[tuple, Record], after: dict[tuple, Record],
                measured: tuple[str, ...] = MEASURED) -> list[str]:
    """One line per record only one run holds and per field that differs."""
    lines = [f"only in before: {k}" for k in sorted(before.keys() - after.keys())]
    lines += [f"only in after: {k}" for k in sorted(after.keys() - before.keys())]
    for key in sorted(before.keys() & after.keys()):
        a, b = before[key], after[key]
        for name in FIELDS:
            if a.metric in measured and (name in NUMBERS or name == "error"):
                continue
            if getattr(a, name) != getattr(b, name):
                lines.append(f"{key[0]}/{key[2]}/{key[5]} {key[4]}: {name} "
                             f"{getattr(a, name)!r} -> {getattr(b, name)!r}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("--measured", default=",".join(MEASURED),
                        help="comma-separated metrics whose numbers are measured, not computed")
    args = parser.parse_args(argv)
    measured = tuple(m for m in args.measured.split(",") if m)
    before, after = _load(args.before), _load(args.after)
    lines = differences(before, after, measured)
    print("\n".join(lines))
    same = len(before.keys() & after.keys())
    print(f"{same} records in both ({len(before)} before, {len(after)} after);"
          f" {len(lines)} differences; numbers of {', '.join(measured)} not compared")
    return 1 if lines else 0


if __name__ == "__main__":
    sys.exit(main())
