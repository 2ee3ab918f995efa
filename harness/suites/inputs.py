"""Records that describe what a cell read from the user's data, from its task's ``info``.

Text data: ``rows_read`` per split (the file's records, before holding out), and per split the
share of texts cut at ``max_len`` (``truncated_fraction``) and their token lengths, CLS included
(``token_length_median``, ``token_length_p90``, ``token_length_max``). Media folders:
``skipped_files`` (unreadable files left out with ``skip_bad_files``). Each record carries a
``split`` param where it is per split.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from harness.records import Cell, Record
from harness.suites.base import MetricSpec, get_suite

__all__ = ["INPUT_METRIC_SPECS", "input_records"]

INPUT_METRIC_SPECS = (
    MetricSpec("rows_read", "rows read from the data file", "count"),
    MetricSpec("truncated_fraction", "texts cut at max_len", "fraction", False,
               description="share of a split's texts longer than max_len (the report warns"
               " above 10%)"),
    MetricSpec("token_length_median", "median text length", "tokens"),
    MetricSpec("token_length_p90", "90th-percentile text length", "tokens"),
    MetricSpec("token_length_max", "longest text", "tokens"),
    MetricSpec("skipped_files", "unreadable media files left out", "count", False),
)


def _record(cell: Cell, metric: str, value: float, n: int | None,
            split: str | None = None) -> Record:
    """A record of one of :data:`INPUT_METRIC_SPECS`, which the cell's suite declares."""
    params = None if split is None else {**cell.params, "split": split}
    return get_suite(cell.suite).record(cell, metric, params=params, value=float(value), n=n)


def input_records(cell: Cell, info: Mapping[str, Any] | None) -> list[Record]:
    """The input records of one cell (module doc); none for tasks without such ``info``."""
    info = info or {}
    out: list[Record] = []
    for split, n in (info.get("rows_read") or {}).items():
        out.append(_record(cell, "rows_read", n, int(n), split))
    sizes = info.get("sizes") or {}
    for split, frac in (info.get("truncated_fraction") or {}).items():
        out.append(_record(cell, "truncated_fraction", frac, sizes.get(split), split))
    for split, stats in (info.get("token_lengths") or {}).items():
        for stat in ("median", "p90", "max"):
            out.append(_record(cell, f"token_length_{stat}", stats[stat], sizes.get(split),
                               split))
    if "skipped_files" in info:
        skipped = info["skipped_files"] or []
        out.append(_record(cell, "skipped_files", len(skipped), len(skipped)))
    return out
