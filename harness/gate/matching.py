"""Matching the records of two runs: keys, failed cells, partners, the rules stored with a run.

Records are matched on ``Record.key`` = (suite, attention, label, options, params, metric) plus
the run.json keys a suite declares as part of a measurement (``Suite.run_keys``: device and
threads for throughput, device for memory). Runs store their suites' rules in run.json
(``compare_rules``), so comparing two runs imports no suite.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from harness.records import Record

__all__ = [
    "CALIBRATION",
    "CELL_STATUS",
    "Rules",
    "as_metric",
    "failed_cells",
    "index_records",
    "match_key",
    "partner",
    "rules_of",
    "seed_group",
    "summary_metrics",
    "ungated_metrics",
]

Rules = dict[str, dict[str, Any]]  # suite -> {"run_keys": [...], "reference_metrics": {...}}
CELL_STATUS = "cell_status"  # the one record the runner writes for a cell that failed whole
CALIBRATION = "calibration_gflops"


def rules_of(base_meta: dict[str, Any], new_meta: dict[str, Any]) -> Rules:
    """The rules stored with the runs (the new run's first), else the registered suites'."""
    for meta in (new_meta, base_meta):
        rules = meta.get("compare_rules")
        if isinstance(rules, dict):
            return rules
    from harness.suites.base import compare_rules

    return compare_rules()


def summary_metrics(*metas: dict[str, Any]) -> dict[str, set[str]]:
    """Per suite, the metrics its declaration marks as summaries (``MetricSpec.summary``:
    written by ``Suite.summarize`` from other records), read from the runs' ``suites_meta``."""
    out: dict[str, set[str]] = {}
    for meta in metas:
        for suite, info in (meta.get("suites_meta") or {}).items():
            for m in (info or {}).get("metrics") or []:
                if isinstance(m, dict) and m.get("summary") and m.get("name"):
                    out.setdefault(suite, set()).add(str(m["name"]))
    return out


def ungated_metrics(*metas: dict[str, Any]) -> dict[str, set[str]]:
    """Per suite, the metrics its declaration keeps out of the verdict (``MetricSpec.gated``
    False), read from the runs' ``suites_meta`` (runs written before the flag: none)."""
    out: dict[str, set[str]] = {}
    for meta in metas:
        for suite, info in (meta.get("suites_meta") or {}).items():
            for m in (info or {}).get("metrics") or []:
                if isinstance(m, dict) and m.get("gated") is False and m.get("name"):
                    out.setdefault(suite, set()).add(str(m["name"]))
    return out


def match_key(r: Record, meta: dict[str, Any], rules: Rules) -> tuple:
    """``Record.key`` plus the run.json values the record's suite measures under."""
    keys = (rules.get(r.suite) or {}).get("run_keys") or ()
    return (*r.key, *(f"{k}={meta.get(k)}" for k in keys))


def index_records(records: Sequence[Record], meta: dict[str, Any], rules: Rules, side: str,
                  warnings: list[str]) -> dict[tuple, Record]:
    """Match key -> record (the last of duplicates, with a warning)."""
    index: dict[tuple, Record] = {}
    dupes = 0
    for r in records:
        key = match_key(r, meta, rules)
        dupes += key in index
        index[key] = r
    if dupes:
        warnings.append(f"{side} run: {dupes} duplicate record(s) for the same key; the last one"
                        " of each was compared")
    return index


def failed_cells(records: Sequence[Record]) -> dict[str, Record]:
    """Cell id -> the runner's ``cell_status`` record, for cells that wrote only that."""
    return {r.cell: r for r in records
            if r.metric == CELL_STATUS and r.cell and not r.cell.startswith("summary:")}


def as_metric(failure: Record, like: Record) -> Record:
    """The failure of a whole cell seen as the failure of one of its metrics."""
    return replace(like, value=None, stderr=None, ci_low=None, ci_high=None, n=None,
                   interval=None, samples=None, status=failure.status, error=failure.error,
                   cell=failure.cell)


def partner(index: dict[tuple, Record], key: tuple, metric: str) -> Record | None:
    """The record of the same cell and run with ``metric`` instead of the key's metric."""
    return index.get((*key[:5], metric, *key[6:]))


def seed_group(key: tuple, record: Record) -> tuple | None:
    """The key of ``record``'s group over seeds (its match key without the integer ``seed``
    param), or None for a record without one (a summary over seeds, a timing)."""
    seed = record.params.get("seed")
    if isinstance(seed, bool) or not isinstance(seed, int):
        return None
    params = tuple(sorted((k, repr(v)) for k, v in record.params.items() if k != "seed"))
    return (*key[:4], params, *key[5:])
