"""Compare two runs: match records, classify each change, and give a pass/fail verdict.

Records are matched on ``Record.key`` = (suite, attention, options, params, metric). For each
matched pair (``base`` = the reference run, ``new`` = the candidate):

* **informational** - the metric has no direction (``higher_is_better`` is None, or the two runs
  disagree on it), or a side has no value; shown, never part of the verdict.
* **status changes** - ``ok`` -> ``oom``/``error`` is a regression; ``oom``/``error`` -> ``ok`` an
  improvement; a cell skipped in the new run is listed as *vanished* (skipped in the base run and
  measured now: *new*); two failing statuses are *unchanged*.
* **values** (both ``ok``) - the change is taken in the metric's own direction and made relative:
  ``rel = (new - base) / max(|base|, atol)``. The ``atol`` floor (default 0.1) is the absolute
  rule for values near 0 (bias gaps, differences vs standard, which may be 0 or change sign):
  below it, a change must exceed ``threshold * atol`` in absolute terms (0.01 with the
  defaults). It is a **regression** only when worse by more than ``threshold`` AND beyond the
  measured noise:

  1. both sides have an interval (``ci_low``/``ci_high``: ci95 or iqr): the intervals do not
     overlap;
  2. otherwise, when at least one side has a stderr: ``|diff| > 2 * sqrt(se_base^2 + se_new^2)``
     (a missing stderr counts as 0);
  3. with no uncertainty on either side, the threshold alone decides.

  The same rule in the better direction is an **improvement**; everything else is *unchanged*.
* Cells only in the new run are *new*, only in the base run *vanished*; both are listed.
* A cell that failed whole leaves a single ``cell_status`` record (the runner's); each metric
  the other run has for that cell is judged against that failure (so ok -> error is still a
  regression per metric), and the ``cell_status`` row itself is informational.

``Comparison.verdict`` is ``fail`` (``exit_code`` 1) when any row is a regression, else ``pass``
(0). Unusable input raises ``StoreError`` (the CLI maps it to exit code 2).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rich.table import Table
from rich.text import Text

from harness.report._common import (
    attention_colors,
    format_params,
    format_uncertainty,
    format_value,
    label_of,
    render,
    run_header,
)
from harness.run.store import Record, StoreError, read_records, read_run, resolve_run_dir

__all__ = [
    "ROW_STATUSES",
    "CompareRow",
    "Comparison",
    "compare_records",
    "compare_runs",
    "render_compare_table",
    "write_compare_html",
]

ROW_STATUSES = ("regression", "improvement", "new", "vanished", "informational", "unchanged")
FAILED = ("oom", "error")
CELL_STATUS = "cell_status"  # the one record the runner writes for a cell that failed whole
SUITE_ORDER = ("throughput", "memory", "accuracy", "bias")


@dataclass
class CompareRow:
    """One matched (or unmatched) metric of the two runs and how it changed."""

    suite: str
    attention: str
    label: str
    options: dict[str, Any]
    params: dict[str, Any]
    metric: str
    unit: str | None
    higher_is_better: bool | None
    base: Record | None
    new: Record | None
    status: str
    diff: float | None = None
    rel_change: float | None = None
    absolute_rule: bool = False
    noise: str = ""
    note: str = ""

    @property
    def worse(self) -> bool | None:
        """Whether the new value is worse in the metric's direction (None when undefined)."""
        if self.diff is None or self.higher_is_better is None or self.diff == 0:
            return None
        return (self.diff < 0) if self.higher_is_better else (self.diff > 0)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (values, uncertainties and statuses of both sides)."""
        def side(r: Record | None) -> dict[str, Any] | None:
            if r is None:
                return None
            return {"value": r.value, "stderr": r.stderr, "ci_low": r.ci_low,
                    "ci_high": r.ci_high, "interval": r.interval, "n": r.n,
                    "status": r.status, "error": r.error}

        return {"suite": self.suite, "attention": self.attention, "label": self.label,
                "options": self.options, "params": self.params, "metric": self.metric,
                "unit": self.unit, "higher_is_better": self.higher_is_better,
                "status": self.status, "diff": self.diff, "rel_change": self.rel_change,
                "absolute_rule": self.absolute_rule, "noise": self.noise, "note": self.note,
                "base": side(self.base), "new": side(self.new)}


@dataclass
class Comparison:
    """The outcome of ``compare_runs``: classified rows, verdict and exit code."""

    base_dir: Path
    new_dir: Path
    base_meta: dict[str, Any]
    new_meta: dict[str, Any]
    threshold: float
    atol: float
    rows: list[CompareRow] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def regressions(self) -> list[CompareRow]:
        return self.by_status("regression")

    @property
    def verdict(self) -> str:
        """``fail`` when any row is a regression, else ``pass``."""
        return "fail" if self.regressions else "pass"

    @property
    def exit_code(self) -> int:
        """1 on regression, 0 otherwise (unusable input raises ``StoreError`` -> exit 2)."""
        return 1 if self.regressions else 0

    @property
    def counts(self) -> dict[str, int]:
        return {s: sum(r.status == s for r in self.rows) for s in ROW_STATUSES}

    def by_status(self, status: str) -> list[CompareRow]:
        if status not in ROW_STATUSES:
            raise ValueError(f"by_status: status must be one of {ROW_STATUSES}, got {status!r}")
        return [r for r in self.rows if r.status == status]

    def to_dict(self) -> dict[str, Any]:
        return {"base": str(self.base_dir), "new": str(self.new_dir),
                "base_run_id": self.base_meta.get("run_id"),
                "new_run_id": self.new_meta.get("run_id"), "threshold": self.threshold,
                "atol": self.atol, "verdict": self.verdict, "exit_code": self.exit_code,
                "counts": self.counts, "warnings": list(self.warnings),
                "rows": [r.to_dict() for r in self.rows]}


# ---------------------------------------------------------------------------------------------
# classification


def _beyond_noise(base: Record, new: Record, diff: float) -> tuple[bool, str]:
    intervals = (base.ci_low, base.ci_high, new.ci_low, new.ci_high)
    if all(v is not None for v in intervals):
        apart = new.ci_low > base.ci_high or new.ci_high < base.ci_low  # type: ignore[operator]
        kind = base.interval or new.interval or "interval"
        return apart, f"{kind} {'disjoint' if apart else 'overlap'}"
    if base.stderr is not None or new.stderr is not None:
        se = math.sqrt((base.stderr or 0.0) ** 2 + (new.stderr or 0.0) ** 2)
        apart = abs(diff) > 2 * se
        return apart, f"|diff| {'>' if apart else '<='} 2·se ({2 * se:.3g})"
    return True, "no uncertainty: threshold only"


def _classify(base: Record, new: Record, threshold: float, atol: float) -> dict[str, Any]:
    hib = new.higher_is_better
    if hib is None or base.higher_is_better != hib:
        note = "no direction" if base.higher_is_better == hib else \
            "direction differs between runs"
        if base.status != new.status:
            note += f"; {base.status} -> {new.status}"
        out: dict[str, Any] = {"status": "informational", "note": note, "higher_is_better": hib}
        if base.value is not None and new.value is not None:
            out["diff"] = new.value - base.value
            out["rel_change"] = out["diff"] / max(abs(base.value), atol)
            out["absolute_rule"] = abs(base.value) < atol
        return out
    if base.status == "ok" and new.status in FAILED:
        return {"status": "regression", "note": f"ok -> {new.status}: {new.error or ''}".strip()}
    if base.status in FAILED and new.status == "ok":
        return {"status": "improvement", "note": f"{base.status} -> ok"}
    if new.status == "skipped" and base.status != "skipped":
        return {"status": "vanished",
                "note": f"{base.status} -> skipped: {new.error or 'no reason given'}"}
    if base.status == "skipped" and new.status != "skipped":
        return {"status": "new", "note": f"skipped -> {new.status}"}
    if base.status != "ok" or new.status != "ok":
        same = base.status == new.status
        return {"status": "unchanged",
                "note": f"still {new.status}" if same else f"{base.status} -> {new.status}"}
    if base.value is None or new.value is None:
        if base.value is None and new.value is None:
            return {"status": "unchanged", "note": "no value in either run"}
        side = "base" if base.value is None else "new"
        return {"status": "informational", "note": f"no value in the {side} run"}
    diff = new.value - base.value
    absolute = abs(base.value) < atol
    rel = diff / max(abs(base.value), atol)
    better = rel if hib else -rel
    beyond, noise = _beyond_noise(base, new, diff)
    out = {"diff": diff, "rel_change": rel, "absolute_rule": absolute, "noise": noise}
    if abs(better) > threshold and beyond:
        out["status"] = "improvement" if better > 0 else "regression"
    else:
        out["status"] = "unchanged"
        out["note"] = "within noise" if abs(better) > threshold else "below threshold"
    return out


def _index(records: Sequence[Record], side: str, warnings: list[str]) -> dict[tuple, Record]:
    index: dict[tuple, Record] = {}
    dupes = 0
    for r in records:
        dupes += r.key in index
        index[r.key] = r
    if dupes:
        warnings.append(f"{side} run: {dupes} duplicate record(s) for the same key; the last one"
                        " of each was compared")
    return index


def _failed_cells(records: Sequence[Record]) -> dict[str, Record]:
    """Cell id -> the runner's ``cell_status`` record, for cells that wrote only that."""
    return {r.cell: r for r in records
            if r.metric == CELL_STATUS and r.cell and not r.cell.startswith("summary:")}


def _as_metric(failure: Record, like: Record) -> Record:
    """The failure of a whole cell seen as the failure of one of its metrics."""
    return replace(like, value=None, stderr=None, ci_low=None, ci_high=None, n=None,
                   interval=None, status=failure.status, error=failure.error, cell=failure.cell)


def _sort_key(row: CompareRow) -> tuple:
    suite = SUITE_ORDER.index(row.suite) if row.suite in SUITE_ORDER else len(SUITE_ORDER)
    return (suite, row.suite, row.label, format_params(row.params), row.metric)


def compare_records(base: Sequence[Record], new: Sequence[Record], threshold: float = 0.1,
                    *, atol: float = 0.1) -> tuple[list[CompareRow], list[str]]:
    """Classify every record of two runs (see the module docstring); returns rows and warnings."""
    _check_number("threshold", threshold)
    _check_number("atol", atol)
    warnings: list[str] = []
    b_index, n_index = _index(base, "base", warnings), _index(new, "new", warnings)
    b_failed, n_failed = _failed_cells(base), _failed_cells(new)
    rows = []
    for key in [*b_index, *(k for k in n_index if k not in b_index)]:
        b, n = b_index.get(key), n_index.get(key)
        ref = n or b
        assert ref is not None
        row = CompareRow(
            suite=ref.suite, attention=ref.attention, label=label_of(ref),
            options=dict(ref.options), params=dict(ref.params), metric=ref.metric,
            unit=ref.unit, higher_is_better=ref.higher_is_better, base=b, new=n,
            status="new" if b is None else "vanished",
        )
        # a cell that failed as a whole left one ``cell_status`` record instead of its metrics:
        # judge each metric of the other run against that failure
        if n is None and b is not None and b.cell in n_failed and b.metric != CELL_STATUS:
            n = row.new = _as_metric(n_failed[b.cell], b)
        elif b is None and n is not None and n.cell in b_failed and n.metric != CELL_STATUS:
            b = row.base = _as_metric(b_failed[n.cell], n)
        if b is None:
            row.note = f"only in the new run ({n.status})"  # type: ignore[union-attr]
        elif n is None:
            row.note = f"only in the base run ({b.status})"
        elif CELL_STATUS in (b.metric, n.metric) and ref.metric == CELL_STATUS:
            row.status, row.note = "informational", f"cell status {b.status} -> {n.status}"
        else:
            for name, value in _classify(b, n, threshold, atol).items():
                setattr(row, name, value)
        if ref.metric == CELL_STATUS and row.status in ("new", "vanished"):
            other = base if row.status == "new" else new
            if any(r.cell == ref.cell and r.metric != CELL_STATUS for r in other):
                row.status = "informational"
                row.note = f"cell {ref.status}: {ref.error or ''} (judged on its metrics)".strip()
        rows.append(row)
    rows.sort(key=_sort_key)
    return rows, warnings


def _check_number(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or value < 0:
        raise ValueError(f"compare_runs: {name} must be a finite number >= 0 (a fraction: 0.1 ="
                         f" 10%), got {value!r}")


def _load(run_dir: str | Path, side: str) -> tuple[Path, dict[str, Any], list[Record]]:
    path = resolve_run_dir(run_dir)
    if not path.is_dir():
        raise StoreError(f"{side} run {run_dir}: no such directory; pass a run directory written"
                         " by `harness run` (e.g. reports/<run-id> or reports/latest)")
    return path, read_run(path), read_records(path)


def _environment_warnings(base: dict[str, Any], new: dict[str, Any]) -> list[str]:
    out = []
    eb, en = base.get("environment") or {}, new.get("environment") or {}
    for key, what in (("device", "device"), ("gpu", "GPU"), ("cpu", "CPU"),
                      ("torch_threads", "torch thread count"), ("torch", "torch version")):
        if eb.get(key) != en.get(key):
            out.append(f"{what} differs: {eb.get(key)} (base) vs {en.get(key)} (new); "
                       "timings may not be comparable")
    if base.get("profile_hash") and base.get("profile_hash") != new.get("profile_hash"):
        out.append("the runs used different profiles (profile_hash differs)")
    for side, meta in (("base", base), ("new", new)):
        if meta.get("status") not in ("finished", "failed"):
            out.append(f"{side} run status is {meta.get('status')!r}: it may be incomplete")
        if (meta.get("environment") or {}).get("git_dirty"):
            out.append(f"{side} run was made from a dirty checkout")
    return out


def compare_runs(base_dir: str | Path, new_dir: str | Path, threshold: float = 0.1, *,
                 atol: float = 0.1) -> Comparison:
    """Compare the run in ``new_dir`` against the reference run in ``base_dir``.

    ``threshold``: the smallest relative change (0.1 = 10%) that counts, in the metric's
    direction; ``atol``: the floor under ``|base|`` for near-zero values (module docstring).
    Raises ``StoreError`` when a directory or its files are missing, corrupt, or of another
    schema version, and ``ValueError`` for a bad threshold.
    """
    _check_number("threshold", threshold)
    _check_number("atol", atol)
    b_path, b_meta, b_records = _load(base_dir, "base")
    n_path, n_meta, n_records = _load(new_dir, "new")
    rows, warnings = compare_records(b_records, n_records, threshold, atol=atol)
    return Comparison(b_path, n_path, b_meta, n_meta, float(threshold), float(atol), rows,
                      _environment_warnings(b_meta, n_meta) + warnings)


# ---------------------------------------------------------------------------------------------
# rendering


def _side_text(r: Record | None) -> str:
    if r is None:
        return "-"
    if r.status != "ok":
        return r.status
    return format_value(r.value, r.unit)


def _change_text(row: CompareRow) -> str:
    if row.rel_change is None:
        return ""
    if row.absolute_rule and row.diff is not None:
        return f"{row.diff:+.3g} abs"
    return f"{row.rel_change * 100:+.1f}%"


_STYLES = {"regression": "bold red", "improvement": "green", "new": "cyan", "vanished": "cyan",
           "informational": "yellow", "unchanged": "dim"}


def render_compare_table(cmp: Comparison, *, include_unchanged: bool = False,
                         include_informational: bool = False) -> Table:
    """A rich table of the comparison, regressions first.

    Unchanged and informational rows are counted in the caption and shown only on request.

    All cell text is passed as ``rich.text.Text``, so labels such as ``standard[sdpa]`` are
    printed literally rather than read as markup.
    """
    verdict = cmp.verdict.upper()
    title = Text.assemble(
        "compare ", (str(cmp.base_meta.get("run_id", cmp.base_dir)), "bold"), " -> ",
        (str(cmp.new_meta.get("run_id", cmp.new_dir)), "bold"), ": ",
        (verdict, "bold red" if cmp.exit_code else "bold green"),
    )
    counts = ", ".join(f"{n} {s}" for s, n in cmp.counts.items() if n)
    caption = [f"{counts}. Regression: worse by > {cmp.threshold:.0%} and beyond noise."]
    hidden = {"unchanged": not include_unchanged, "informational": not include_informational}
    shown_hidden = [f"{cmp.counts[s]} {s}" for s, hide in hidden.items() if hide and cmp.counts[s]]
    if shown_hidden:
        caption.append(f"Not shown: {' and '.join(shown_hidden)} rows (see the HTML diff).")
    caption += [f"warning: {w}" for w in cmp.warnings]
    table = Table(title=title, caption=Text("\n".join(caption)), caption_justify="left")
    for name, justify in (("status", "left"), ("suite", "left"), ("attention", "left"),
                          ("params", "left"), ("metric", "left"), ("base", "right"),
                          ("new", "right"), ("change", "right"), ("note", "left")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    order = {s: i for i, s in enumerate(ROW_STATUSES)}
    for row in sorted(cmp.rows, key=lambda r: order[r.status]):
        if hidden.get(row.status):
            continue
        style = _STYLES[row.status]
        table.add_row(Text(row.status, style=style), Text(row.suite), Text(row.label),
                      Text(format_params(row.params)), Text(row.metric),
                      Text(_side_text(row.base)), Text(_side_text(row.new)),
                      Text(_change_text(row), style=style), Text(row.note or row.noise))
    return table


def _side_view(r: Record | None) -> dict[str, Any]:
    if r is None:
        return {"text": "-", "unc": "", "n": None, "status": "missing", "error": ""}
    return {"text": format_value(r.value, r.unit) if r.status == "ok" else r.status,
            "unc": format_uncertainty(r) if r.status == "ok" else "", "n": r.n,
            "status": r.status, "error": r.error or ""}


def write_compare_html(cmp: Comparison, path: str | Path) -> Path:
    """Write the comparison as one self-contained, escaped HTML page; returns its path."""
    path = Path(path)
    if path.is_dir():
        path = path / "compare.html"
    # the new run's colours (as in its report), then the base run's other labels
    base_records = [r for row in cmp.rows if (r := row.base)]
    colors = attention_colors(cmp.base_meta, base_records, prefer=attention_colors(
        cmp.base_meta, base_records), base=attention_colors(
        cmp.new_meta, [r for row in cmp.rows if (r := row.new)]))
    groups = []
    titles = {"regression": "Regressions", "improvement": "Improvements",
              "new": "New cells (only in the new run)",
              "vanished": "Vanished cells (missing or skipped in the new run)",
              "informational": "Informational (no direction; not part of the verdict)",
              "unchanged": "Unchanged"}
    for status in ROW_STATUSES:
        rows = cmp.by_status(status)
        if not rows:
            continue
        groups.append({
            "status": status, "title": titles[status], "count": len(rows),
            "collapsed": status in ("informational", "unchanged"),
            "rows": [{"suite": r.suite, "label": r.label, "color": colors[r.label],
                      "params": format_params(r.params), "metric": r.metric,
                      "base": _side_view(r.base), "new": _side_view(r.new),
                      "change": _change_text(r),
                      "change_tone": {True: "bad", False: "good"}.get(r.worse, ""),  # type: ignore[arg-type]
                      "note": r.note or r.noise} for r in rows],
        })
    html = render(
        "compare.html",
        verdict=cmp.verdict, exit_code=cmp.exit_code, counts=cmp.counts,
        base=run_header(cmp.base_meta), new=run_header(cmp.new_meta),
        base_dir=str(cmp.base_dir), new_dir=str(cmp.new_dir),
        threshold=f"{cmp.threshold:.0%}", atol=f"{cmp.atol:g}",
        warnings=cmp.warnings, groups=groups,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html, encoding="utf-8")
    return path
