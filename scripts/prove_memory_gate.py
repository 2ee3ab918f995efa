"""The gate on memory rows, proven on real runs: false failures on identical code and the
detection of a planted increase, over every ordered pair of the runs given.

Each memory peak is one process's measurement, so a row moves between runs of identical code
with that process's allocator state; `harness compare` calls a row with no uncertainty of its
own a regression only beyond its suite's ``single_run_noise`` (memory: 0.4). For each ordered
pair (A, B) of the runs:

- identical: compare A with B as they are (exit 1 counts as a false failure);
- planted: B's ``peak_bytes`` of one attention (``--attention``, default ``sparse``) times
  ``--factor`` (default 1.5), the rest as measured: exit 1 naming only that attention is a
  detection.

Only the memory suite's records are compared (other suites have their own proofs), with the
suite rules of this checkout (``compare_rules``): runs made before a rule existed are judged
as a new run would be.

    python scripts/prove_memory_gate.py RUN RUN [RUN ...] [--attention sparse] [--factor 1.5]
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from dataclasses import replace
from pathlib import Path

from harness.gate import Comparison, compare_records
from harness.run.store import read_records
from harness.suites.base import compare_rules


def _load(run: str) -> tuple[list, dict]:
    path = Path(run).resolve()
    records = [r for r in read_records(path) if r.suite == "memory"]
    meta = json.loads((path / "run.json").read_text(encoding="utf-8"))
    meta["compare_rules"] = compare_rules(["memory"])
    return records, meta


def _plant(records: list, attention: str, factor: float) -> list:
    return [replace(r, value=r.value * factor) if r.label == attention and
            r.metric == "peak_bytes" and r.status == "ok" and r.value else r for r in records]


def _verdict(a: str, b: str, ma: dict, mb: dict, rows: list) -> tuple[int, set[str]]:
    """The gate's exit code for these rows, and the attentions of its regression rows."""
    cmp = Comparison(Path(a), Path(b), ma, mb, 0.1, 0.1, rows)
    return cmp.exit_code, {r.label for r in cmp.regressions}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--attention", default="sparse")
    parser.add_argument("--factor", type=float, default=1.5)
    args = parser.parse_args()
    if len(args.runs) < 2:
        parser.error("give at least two runs")
    runs = {run: _load(run) for run in args.runs}
    null = {0: 0, 1: 0, 3: 0}
    hits = 0
    pairs = list(itertools.permutations(args.runs, 2))
    worst = []
    for a, b in pairs:
        (ra, ma), (rb, mb) = runs[a], runs[b]
        rows, _ = compare_records(ra, rb, base_meta=ma, new_meta=mb)
        code, failed = _verdict(a, b, ma, mb, rows)
        null[code] += 1
        moved = [r.rel_change for r in rows if r.rel_change is not None and
                 r.base is not None and r.base.metric == "peak_bytes"]
        worst.append(max(moved, default=0.0))
        if code == 1:
            print(f"identical: exit 1 {Path(a).name} -> {Path(b).name}: {sorted(failed)}")
        rows, _ = compare_records(ra, _plant(rb, args.attention, args.factor), base_meta=ma,
                                  new_meta=mb)
        code, failed = _verdict(a, b, ma, mb, rows)
        hits += code == 1 and failed == {args.attention}
        if not (code == 1 and failed == {args.attention}):
            print(f"planted: exit {code} {Path(a).name} -> {Path(b).name}: {sorted(failed)}")
    n = len(pairs)
    print(f"runs {len(args.runs)}, ordered pairs {n}")
    print(f"identical code: exit 1 in {null[1]} of {n} ({null[1] / n:.1%}); exit 3 in {null[3]},"
          f" exit 0 in {null[0]}; largest single-row increase per pair: median"
          f" {sorted(worst)[n // 2]:+.1%}, max {max(worst):+.1%}")
    print(f"planted {args.factor}x {args.attention}: exit 1 naming only it in {hits} of {n}"
          f" ({hits / n:.1%})")
    return 0 if null[1] <= 0.05 * n and hits >= 0.95 * n else 1


if __name__ == "__main__":
    sys.exit(main())
