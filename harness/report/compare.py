"""Compare two runs: match records, classify each change, and decide on evidence.

Records are matched on ``Record.key`` = (suite, attention, label, options, params, metric) plus
the run.json keys a suite declares as part of a measurement (``Suite.run_keys``: device and
threads for throughput, device for memory). Schema-1 stores are read too: their records' params
are completed from their profile (``Suite.upgrade_params``). For each matched pair (``base`` =
the reference run, ``new`` = the candidate):

* **informational** - the metric has no direction (``higher_is_better`` is None, or the two runs
  disagree on it), a side has no value, the suite's method changed between the runs (their
  ``suite_version`` differs), or the metric is a drift-cancelling ratio (``*_speed_vs_reference``:
  it supports its absolute metric, see below); shown, never part of the verdict. So is a
  change of a summary figure the suite derives from other records (``MetricSpec.summary``, e.g.
  a crossover length) when it has no uncertainty of its own: its inputs carry the evidence.
* **status changes** - ``ok`` -> ``oom``/``timeout``/``error`` is a regression; the reverse an
  improvement; ``ok`` -> ``skipped`` or missing is *vanished*; skipped -> measured is *new*.
* **values** (both ``ok``) - the change is taken in the metric's own direction and made relative:
  ``rel = (new - base) / max(|base|, atol)`` (``atol``, default 0.1, is the absolute rule for
  values near 0). With raw samples on both sides (timings), the estimate of each side is robust:
  the best decile of the samples (the 10th percentile of a time, the 90th of a rate:
  interference on a shared machine only ever adds time), and the median of per-round ratios.
  A change is a **regression** only when ALL of these hold:

  1. worse by more than ``threshold`` (default 10%);
  2. beyond noise: with samples on both sides, a one-sided Mann-Whitney U test rejects equality
     at ``alpha`` / m (``alpha`` = 0.05, Bonferroni over the m rows beyond the threshold that
     have samples); otherwise, when both sides have intervals, they do not overlap; else, with
     stderrs, ``|diff| > 2 * sqrt(se_base^2 + se_new^2)``; with no uncertainty, the threshold
     alone;
  3. where both runs have the metric's ratio to the side-by-side reference
     (``Suite.reference_metrics``), the ratio is worse by the same rules; when it is not, the
     change was the machine's, not the code's (*unchanged*, "machine drift").

  When the calibration matmul (``calibration_gflops`` of the same cell) shows the two moments
  differ by more than ``threshold``, the ratio alone decides (absolute times are not
  comparable). A would-be regression becomes **inconclusive** when either record is ``noisy``
  (the machine was visibly busy while it was measured), or when the machines differ and no
  ratio is there to decide. The same rules in the better direction give an **improvement**.
* Cells only in the new run are *new*; cells measured ``ok`` in the base run and missing in the
  new one are *vanished*: failures (exit 1) unless ``allow_missing``. ``only_common`` compares
  only the cells both runs hold (the others are counted once).
* A cell that failed whole leaves a single ``cell_status`` record (the runner's); each metric
  the other run has for that cell is judged against that failure.

``Comparison.exit_code``: 0 pass, 1 regression (or vanished cells), 3 inconclusive (no
regression, but some would-be regression could not be decided). Unusable input raises
``StoreError`` (the CLI maps it to exit code 2): missing or corrupt files, a non-finite or
non-numeric stored figure, a new run without a single usable record, a bad threshold.
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
    "ALPHA",
    "EXIT_CODES",
    "ROW_STATUSES",
    "CompareRow",
    "Comparison",
    "compare_records",
    "compare_runs",
    "registry_rules",
    "render_compare_table",
    "unmatched_summary",
    "verdict_line",
    "write_compare_html",
]

ROW_STATUSES = ("regression", "inconclusive", "vanished", "improvement", "new",
                "informational", "unchanged")
#: ``Comparison.exit_code`` per verdict (2, unusable input, is raised as ``StoreError``).
EXIT_CODES = {"pass": 0, "fail": 1, "unusable": 2, "inconclusive": 3}
#: Family-wise false-alarm rate of the Mann-Whitney U tests (Bonferroni over candidate rows).
ALPHA = 0.05
FAILED = ("oom", "timeout", "error")
CELL_STATUS = "cell_status"  # the one record the runner writes for a cell that failed whole
SUITE_ORDER = ("throughput", "memory", "accuracy", "bias")
CALIBRATION = "calibration_gflops"


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
    p_value: float | None = None

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
                    "status": r.status, "error": r.error, "noisy": r.noisy}

        return {"suite": self.suite, "attention": self.attention, "label": self.label,
                "options": self.options, "params": self.params, "metric": self.metric,
                "unit": self.unit, "higher_is_better": self.higher_is_better,
                "status": self.status, "diff": self.diff, "rel_change": self.rel_change,
                "absolute_rule": self.absolute_rule, "noise": self.noise, "note": self.note,
                "p_value": self.p_value, "base": side(self.base), "new": side(self.new)}


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
    allow_missing: bool = False
    only_common: bool = False
    left_out: dict[str, int] = field(default_factory=dict)

    @property
    def regressions(self) -> list[CompareRow]:
        return self.by_status("regression")

    @property
    def failing_vanished(self) -> list[CompareRow]:
        """Vanished rows that fail the gate: measured ok in the base run, unless allowed."""
        if self.allow_missing:
            return []
        return [r for r in self.by_status("vanished")
                if r.base is not None and r.base.status == "ok"]

    @property
    def verdict(self) -> str:
        """``fail`` (a regression or a vanished cell), ``inconclusive`` or ``pass``."""
        if self.regressions or self.failing_vanished:
            return "fail"
        return "inconclusive" if self.by_status("inconclusive") else "pass"

    @property
    def exit_code(self) -> int:
        """0 pass, 1 fail, 3 inconclusive (unusable input raises ``StoreError`` -> exit 2)."""
        return EXIT_CODES[self.verdict]

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
                "allow_missing": self.allow_missing, "only_common": self.only_common,
                "left_out": dict(self.left_out), "counts": self.counts,
                "warnings": list(self.warnings), "rows": [r.to_dict() for r in self.rows]}


# ---------------------------------------------------------------------------------------------
# evidence


Rules = dict[str, dict[str, Any]]  # suite -> {"run_keys": [...], "reference_metrics": {...}}


def registry_rules() -> Rules:
    """Each registered suite's compare rules (``Suite.run_keys``, ``Suite.reference_metrics``);
    runs store them in run.json (``compare_rules``), so comparing them imports no suite."""
    from harness.suites.base import compare_rules

    return compare_rules()


def _rules_of(base_meta: dict[str, Any], new_meta: dict[str, Any]) -> Rules:
    """The rules stored with the runs (the new run's first), else the registered suites'."""
    for meta in (new_meta, base_meta):
        rules = meta.get("compare_rules")
        if isinstance(rules, dict):
            return rules
    return registry_rules()


NO_UNCERTAINTY = "no uncertainty: threshold only"


def _summary_metrics(*metas: dict[str, Any]) -> dict[str, set[str]]:
    """Per suite, the metrics its declaration marks as summaries (``MetricSpec.summary``:
    written by ``Suite.summarize`` from other records), read from the runs' ``suites_meta``."""
    out: dict[str, set[str]] = {}
    for meta in metas:
        for suite, info in (meta.get("suites_meta") or {}).items():
            for m in (info or {}).get("metrics") or []:
                if isinstance(m, dict) and m.get("summary") and m.get("name"):
                    out.setdefault(suite, set()).add(str(m["name"]))
    return out


def _has_samples(r: Record) -> bool:
    return r.samples is not None and len(r.samples) >= 2


def _point(r: Record, samples: Sequence[float]) -> float:
    """Median of ratios (and of figures without direction), best decile of times and rates:
    interference only ever adds time."""
    import numpy as np

    values = np.asarray(samples, dtype=float)
    if r.unit == "x" or r.higher_is_better is None:
        return float(np.median(values))
    return float(np.quantile(values, 0.9 if r.higher_is_better else 0.1))


def _per_process(r: Record) -> list[float] | None:
    """One estimate per process (``sample_groups``), or None for a one-process record."""
    if not _has_samples(r) or not r.sample_groups or len(r.sample_groups) < 2:
        return None
    out, start = [], 0
    for size in r.sample_groups:
        out.append(_point(r, r.samples[start:start + size]))  # type: ignore[index]
        start += size
    return out


def _estimate(r: Record) -> float | None:
    """The gate's estimate of a record: the geometric mean of its per-process estimates where
    it was timed in several processes, else the estimate of its pooled samples."""
    per = _per_process(r)
    if per is not None and all(v > 0 for v in per):
        return math.exp(sum(math.log(v) for v in per) / len(per))
    if not _has_samples(r):
        return r.value
    return _point(r, r.samples)  # type: ignore[arg-type]


def _process_p(base: Record, new: Record, worse: bool) -> float | None:
    """One-sided Welch t-test on the logs of the per-process estimates (process as the unit,
    pyperf's model), or None unless both sides have >= 2 positive ones."""
    b, n = _per_process(base), _per_process(new)
    if b is None or n is None or min(b + n) <= 0:
        return None
    from scipy.stats import ttest_ind

    larger = worse != bool(base.higher_is_better)
    lb, ln = [math.log(x) for x in b], [math.log(x) for x in n]
    if max(lb) == min(lb) and max(ln) == min(ln):  # no spread at all: the sign decides
        return 0.0 if (sum(ln) / len(ln) > sum(lb) / len(lb)) == larger else 1.0
    return float(ttest_ind(ln, lb, equal_var=False,
                           alternative="greater" if larger else "less").pvalue)


def _mwu_p(base: Record, new: Record, worse: bool) -> float:
    """One-sided Mann-Whitney U p-value that ``new`` is worse (or better) than ``base``."""
    from scipy.stats import mannwhitneyu

    larger = worse != bool(base.higher_is_better)  # worse time = larger; worse rate = smaller
    return float(mannwhitneyu(new.samples, base.samples,
                              alternative="greater" if larger else "less").pvalue)


def _interval_noise(base: Record, new: Record, diff: float) -> tuple[bool, str]:
    intervals = (base.ci_low, base.ci_high, new.ci_low, new.ci_high)
    if all(v is not None for v in intervals):
        apart = new.ci_low > base.ci_high or new.ci_high < base.ci_low  # type: ignore[operator]
        kind = base.interval or new.interval or "interval"
        return apart, f"{kind} {'disjoint' if apart else 'overlap'}"
    if base.stderr is not None or new.stderr is not None:
        se = math.sqrt((base.stderr or 0.0) ** 2 + (new.stderr or 0.0) ** 2)
        apart = abs(diff) > 2 * se
        return apart, f"|diff| {'>' if apart else '<='} 2·se ({2 * se:.3g})"
    return True, NO_UNCERTAINTY


@dataclass
class _Change:
    """One pair's change, before the ratio and noise rules."""

    diff: float
    rel: float
    better: float  # rel in the metric's good direction (> 0 = better)
    absolute: bool
    samples: bool

    def beyond(self, threshold: float) -> bool:
        return abs(self.better) > threshold


def _change(base: Record, new: Record, atol: float) -> _Change | None:
    b, n = _estimate(base), _estimate(new)
    if b is None or n is None:
        return None
    diff = n - b
    rel = diff / max(abs(b), atol)
    return _Change(diff, rel, rel if base.higher_is_better else -rel, abs(b) < atol,
                   _has_samples(base) and _has_samples(new))


def _judge(base: Record, new: Record, change: _Change, threshold: float,
           alpha: float) -> tuple[str, str, float | None]:
    """``(regression | improvement | unchanged, noise, p)`` from the threshold and the noise:
    ``noise`` says which test decided (``below threshold`` when none was needed)."""
    if not change.beyond(threshold):
        return "unchanged", "below threshold", None
    worse = change.better < 0
    per_process = _process_p(base, new, worse) if change.samples else None
    if per_process is not None:
        p = per_process
        apart = p < alpha
        noise = (f"Welch t over processes ({len(base.sample_groups or [])} vs "
                 f"{len(new.sample_groups or [])}) p={p:.2g} {'<' if apart else '>='} "
                 f"{alpha:.2g}")
    elif change.samples:
        p = _mwu_p(base, new, worse)
        apart = p < alpha
        noise = f"Mann-Whitney p={p:.2g} {'<' if apart else '>='} {alpha:.2g}"
    else:
        p = None
        apart, noise = _interval_noise(base, new, change.diff)
    if not apart:
        return "unchanged", noise, p
    return ("regression" if worse else "improvement"), noise, p


def _calibration_drift(base: Record | None, new: Record | None) -> float | None:
    """Relative change of the machine's speed between the runs (same cell), or None."""
    if base is None or new is None or base.status != "ok" or new.status != "ok":
        return None
    b, n = _estimate(base), _estimate(new)
    if not b or n is None:
        return None
    return n / b - 1.0


def _classify(base: Record, new: Record, threshold: float, atol: float, *, alpha: float = ALPHA,
              ratio: tuple[Record, Record] | None = None, drift: float | None = None
              ) -> dict[str, Any]:
    hib = new.higher_is_better
    bv, nv = getattr(base, "suite_version", None), getattr(new, "suite_version", None)
    if bv is not None and nv is not None and bv != nv:
        return {"status": "informational", "higher_is_better": hib,
                "note": f"method changed (suite_version {bv} -> {nv}): not comparable"}
    if _references_differ(base, new):
        return {"status": "informational", "higher_is_better": hib, "note": "side-by-side"
                f" reference changed ({base.reference} -> {new.reference}): not comparable"}
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
    change = _change(base, new, atol)
    if change is None:
        if base.value is None and new.value is None:
            return {"status": "unchanged", "note": "no value in either run"}
        side = "base" if base.value is None else "new"
        return {"status": "informational", "note": f"no value in the {side} run"}
    status, noise, p = _judge(base, new, change, threshold, alpha)
    out = {"diff": change.diff, "rel_change": change.rel, "absolute_rule": change.absolute,
           "noise": noise, "p_value": p}
    drifted = drift is not None and abs(drift) > threshold
    deciding = change  # the change the verdict rests on
    if ratio is not None:
        r_change = _change(*ratio, atol)
        r_status, r_noise, _ = _judge(*ratio, r_change, threshold, alpha) if r_change else (
            "unchanged", "no ratio value", None)
        if r_change is not None:
            r_noise = f"{r_change.rel:+.1%}, {r_noise}"
        if drifted:  # absolute times are not comparable: the ratio decides
            status = r_status
            deciding = r_change or change
            out["note"] = f"machine speed {drift:+.0%}: judged on speed vs reference ({r_noise})"
        elif status == "regression" and r_status != "regression":
            status = "unchanged"
            out["note"] = f"machine drift: speed vs reference unchanged ({r_noise})"
    elif drifted and status == "regression":
        status = "inconclusive"
        out["note"] = f"machine speed {drift:+.0%} (calibration) and no ratio to decide"
    noisy = "; ".join(f"{side} run: {r.noisy}" for side, r in (("base", base), ("new", new))
                      if r.noisy)
    if noisy and deciding.better < -threshold and status in ("regression", "unchanged"):
        # worse beyond the threshold, measured on a busy machine: neither pass nor fail
        status = "inconclusive"
        out["note"] = f"noisy ({noisy})" + (f"; {out['note']}" if out.get("note") else "")
    out["status"] = status
    if status == "unchanged" and "note" not in out:
        out["note"] = "below threshold" if not change.beyond(threshold) else "within noise"
    return out


# ---------------------------------------------------------------------------------------------
# matching


def _match_key(r: Record, meta: dict[str, Any], rules: Rules) -> tuple:
    """``Record.key`` plus the run.json values the record's suite measures under."""
    keys = (rules.get(r.suite) or {}).get("run_keys") or ()
    return (*r.key, *(f"{k}={meta.get(k)}" for k in keys))


def _index(records: Sequence[Record], meta: dict[str, Any], rules: Rules, side: str,
           warnings: list[str]) -> dict[tuple, Record]:
    index: dict[tuple, Record] = {}
    dupes = 0
    for r in records:
        key = _match_key(r, meta, rules)
        dupes += key in index
        index[key] = r
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
                   interval=None, samples=None, status=failure.status, error=failure.error,
                   cell=failure.cell)


def _sort_key(row: CompareRow) -> tuple:
    suite = SUITE_ORDER.index(row.suite) if row.suite in SUITE_ORDER else len(SUITE_ORDER)
    return (suite, row.suite, row.label, format_params(row.params), row.metric)


def _partner(index: dict[tuple, Record], key: tuple, metric: str) -> Record | None:
    """The record of the same cell and run with ``metric`` instead of the key's metric."""
    return index.get((*key[:5], metric, *key[6:]))


def compare_records(base: Sequence[Record], new: Sequence[Record], threshold: float = 0.1,
                    *, atol: float = 0.1, alpha: float = ALPHA,
                    base_meta: dict[str, Any] | None = None,
                    new_meta: dict[str, Any] | None = None) -> tuple[list[CompareRow], list[str]]:
    """Classify every record of two runs (see the module docstring); returns rows and warnings.

    ``base_meta``/``new_meta``: the runs' run.json (for the suites' ``run_keys``).
    """
    _check_number("threshold", threshold)
    _check_number("atol", atol)
    if not 0 < alpha < 1:
        raise ValueError(f"compare: alpha must be in (0, 1), got {alpha!r}")
    warnings: list[str] = []
    b_meta, n_meta = base_meta or {}, new_meta or {}
    rules = _rules_of(b_meta, n_meta)
    ratio_of = {suite: dict(r.get("reference_metrics") or {}) for suite, r in rules.items()}
    supporting = {suite: set(m.values()) for suite, m in ratio_of.items()}
    derived = _summary_metrics(b_meta, n_meta)
    timing = {suite for suite, r in rules.items() if r.get("timing")}
    b_index = _index(base, b_meta, rules, "base", warnings)
    n_index = _index(new, n_meta, rules, "new", warnings)
    b_failed, n_failed = _failed_cells(base), _failed_cells(new)
    keys = [*b_index, *(k for k in n_index if k not in b_index)]
    # Bonferroni: the rows whose sampled change exceeds the threshold share alpha
    candidates = 0
    for key in keys:
        b, n = b_index.get(key), n_index.get(key)
        if b is not None and n is not None and b.status == n.status == "ok" and \
                _has_samples(b) and _has_samples(n) and b.higher_is_better is not None:
            change = _change(b, n, atol)
            candidates += bool(change and change.beyond(threshold))
    row_alpha = alpha / max(candidates, 1)
    rows = []
    for key in keys:
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
            ratio_metric = ratio_of.get(ref.suite, {}).get(ref.metric)
            ratio = None
            if ratio_metric:
                rb, rn = _partner(b_index, key, ratio_metric), _partner(n_index, key, ratio_metric)
                if rb is not None and rn is not None and rb.status == rn.status == "ok" and \
                        not _references_differ(rb, rn):
                    ratio = (rb, rn)
            drift = _calibration_drift(_partner(b_index, key, CALIBRATION),
                                       _partner(n_index, key, CALIBRATION))
            for name, value in _classify(b, n, threshold, atol, alpha=row_alpha, ratio=ratio,
                                         drift=drift).items():
                setattr(row, name, value)
            if ref.metric in supporting.get(ref.suite, ()) and row.status in (
                    "regression", "improvement", "inconclusive"):
                row.note = f"{row.status} of the ratio; judged with its absolute metric"
                row.status = "informational"
            elif ref.metric in derived.get(ref.suite, ()) and (
                    row.noise == NO_UNCERTAINTY or ref.suite in timing) and \
                    row.status in ("regression", "improvement", "inconclusive"):
                # a figure derived from other records (a crossover length, a longest length
                # under budget) carries no uncertainty of its own and jumps a whole grid step on
                # a small timing change; a fitted time exponent's interval covers one process's
                # timings only (the proof saw one disjoint between identical runs). The
                # measurements they are derived from carry the evidence.
                what = "without uncertainty" if row.noise == NO_UNCERTAINTY else "from timings"
                row.note = (f"{row.status} of a derived summary figure {what};"
                            " judged on the measurements it is derived from")
                row.status = "informational"
        if ref.metric == CELL_STATUS and row.status in ("new", "vanished"):
            other = base if row.status == "new" else new
            if any(r.cell == ref.cell and r.metric != CELL_STATUS for r in other):
                row.status = "informational"
                row.note = f"cell {ref.status}: {ref.error or ''} (judged on its metrics)".strip()
        rows.append(row)
    rows.sort(key=_sort_key)
    single = [r for r in rows if r.status == "regression"
              and "Mann-Whitney" in f"{r.noise or ''} {r.note or ''}"]
    if single:
        warnings.append(
            f"{len(single)} regression row(s) rest on timings from one process per run: the test "
            "cannot see how much one process differs from the next (identical code failed 98 of "
            "380 such comparisons on a 2-core machine, 6 of 380 with 3 processes per run); "
            "confirm with runs timed in several processes (throughput `processes: 3`, as in "
            "the release profile)")
    return rows, warnings


def _references_differ(base: Record, new: Record) -> bool:
    """Whether two side-by-side ratios were timed against different attentions (then the ratio
    cannot decide; a run that did not record its reference is taken to match)."""
    return None not in (base.reference, new.reference) and base.reference != new.reference


def _check_number(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or value < 0:
        raise ValueError(f"compare: {name} must be a finite number >= 0 (a fraction: 0.1 ="
                         f" 10%), got {value!r}")


def _upgrade(meta: dict[str, Any], records: list[Record]) -> list[Record]:
    """Schema-1 records with the params schema-2 records carry (from the run's profile)."""
    if meta.get("schema_version", 1) != 1:
        return records
    from harness.suites import get_suite, list_suites

    sections = (meta.get("profile") or {}).get("suites") or {}
    out = []
    for r in records:
        if r.suite in list_suites():
            params = get_suite(r.suite).upgrade_params(dict(r.params),
                                                       dict(sections.get(r.suite) or {}))
            r = replace(r, params=params)
        out.append(r)
    return out


def _load(run_dir: str | Path, side: str) -> tuple[Path, dict[str, Any], list[Record]]:
    path = resolve_run_dir(run_dir)
    if not path.is_dir():
        raise StoreError(f"{side} run {run_dir}: no such directory; pass a run directory written"
                         " by `harness run` (e.g. reports/<run-id> or reports/latest)")
    meta = read_run(path)
    return path, meta, _upgrade(meta, read_records(path))


def _environment_warnings(base: dict[str, Any], new: dict[str, Any]) -> list[str]:
    out = []
    eb, en = base.get("environment") or {}, new.get("environment") or {}
    for key, what in (("device", "device"), ("gpu", "GPU"), ("cpu", "CPU"),
                      ("torch_threads", "torch thread count"), ("torch", "torch version")):
        if eb.get(key) != en.get(key):
            out.append(f"{what} differs: {eb.get(key)} (base) vs {en.get(key)} (new); "
                       "timings may not be comparable")
    if base.get("profile_hash") and base.get("profile_hash") != new.get("profile_hash"):
        out.append("the runs used different profiles (profile_hash differs): cells only one"
                   " run holds are new / vanished; --only-common compares the shared ones")
    for side, meta in (("base", base), ("new", new)):
        if meta.get("status") not in ("finished", "failed"):
            out.append(f"{side} run status is {meta.get('status')!r}: it may be incomplete")
        if (meta.get("environment") or {}).get("git_dirty"):
            out.append(f"{side} run was made from a dirty checkout")
    return out


def _usable(path: Path, records: list[Record]) -> None:
    """A new run must hold at least one measured record to be judged."""
    if not any(r.status == "ok" for r in records):
        statuses = ", ".join(f"{sum(r.status == s for r in records)} {s}"
                             for s in sorted({r.status for r in records})) or "no records"
        raise StoreError(f"new run {path}: nothing measured ({statuses}); a run without a"
                         " single ok record cannot pass a release gate")


def compare_runs(base_dir: str | Path, new_dir: str | Path, threshold: float = 0.1, *,
                 atol: float = 0.1, alpha: float = ALPHA, allow_missing: bool = False,
                 only_common: bool = False) -> Comparison:
    """Compare the run in ``new_dir`` against the reference run in ``base_dir``.

    ``threshold``: the smallest relative change (0.1 = 10%) that counts, in the metric's
    direction; ``atol``: the floor under ``|base|`` for near-zero values; ``alpha``: the
    family-wise level of the Mann-Whitney tests (module docstring). ``allow_missing``: vanished
    cells are listed but do not fail; ``only_common``: only the cells both runs hold are
    compared (the others are counted in ``left_out``). Raises ``StoreError`` on unusable input
    (missing, corrupt or non-finite records, another schema version, an empty new run) and
    ``ValueError`` for a bad threshold.
    """
    _check_number("threshold", threshold)
    _check_number("atol", atol)
    b_path, b_meta, b_records = _load(base_dir, "base")
    n_path, n_meta, n_records = _load(new_dir, "new")
    _usable(n_path, n_records)
    rows, warnings = compare_records(b_records, n_records, threshold, atol=atol, alpha=alpha,
                                     base_meta=b_meta, new_meta=n_meta)
    left_out: dict[str, int] = {}
    if only_common:
        for r in rows:
            if (r.base is None) != (r.new is None):
                side = "only in base" if r.new is None else "only in new"
                left_out[side] = left_out.get(side, 0) + 1
        rows = [r for r in rows if r.base is not None and r.new is not None]
    return Comparison(b_path, n_path, b_meta, n_meta, float(threshold), float(atol), rows,
                      _environment_warnings(b_meta, n_meta) + warnings,
                      allow_missing=allow_missing or only_common, only_common=only_common,
                      left_out=left_out)


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


_STYLES = {"regression": "bold red", "inconclusive": "bold yellow", "improvement": "green",
           "new": "cyan", "vanished": "bold red", "informational": "yellow", "unchanged": "dim"}
_VERDICT_STYLES = {"fail": "bold red", "inconclusive": "bold yellow", "pass": "bold green"}
#: Rows listed one by one in the table; new and vanished cells are grouped (``unmatched_summary``).
_LISTED = ("regression", "inconclusive", "improvement", "informational", "unchanged")


def verdict_line(cmp: Comparison) -> Text:
    """``FAIL (exit 1): 2 regressions, 1 vanished cell ...`` - the first line a person reads."""
    counts = ", ".join(f"{n} {s}" for s, n in cmp.counts.items() if n) or "no rows"
    why = {"fail": "regression or vanished cells", "inconclusive": "too noisy to decide",
           "pass": "no regression beyond threshold and noise"}[cmp.verdict]
    return Text.assemble((f"{cmp.verdict.upper()} (exit {cmp.exit_code})",
                          _VERDICT_STYLES[cmp.verdict]), f": {why}. {counts}.")


def unmatched_summary(cmp: Comparison, *, limit: int = 20) -> list[Text]:
    """New and vanished cells, grouped by status, suite and attention: one line per group."""
    by_suite: dict[str, set[str]] = {}
    for row in cmp.rows:
        by_suite.setdefault(row.suite, set()).add(row.status)
    whole = {suite for suite, statuses in by_suite.items() if statuses in ({"new"},
                                                                          {"vanished"})}
    groups: dict[tuple[str, str, str], list[CompareRow]] = {}
    for row in cmp.rows:
        if row.status in ("new", "vanished"):
            # a suite only one run ran is one line; otherwise one line per attention
            label = "(the whole suite)" if row.suite in whole else row.label
            groups.setdefault((row.status, row.suite, label), []).append(row)
    lines = []
    for (status, suite, label), rows in sorted(groups.items(),
                                               key=lambda kv: (kv[0][0] != "vanished", kv[0])):
        cells = {(r.label, format_params(r.params)) for r in rows}
        failing = status == "vanished" and any(r in cmp.failing_vanished for r in rows)
        tag = "vanished, fails the gate" if failing else status
        lines.append(Text.assemble((f"{tag}: ", _STYLES[status] if failing or status == "new"
                                    else "yellow"),
                                   f"{suite} ", (label, "bold"),
                                   f": {len(rows)} metric(s) in {len(cells)} cell(s)"))
    if len(lines) > limit:
        rest = len(lines) - limit
        lines = [*lines[:limit], Text(f"... and {rest} more group(s) (--html lists every row)")]
    for side, n in cmp.left_out.items():
        lines.append(Text(f"left out (--only-common): {n} metric(s) {side}", style="dim"))
    return lines


def render_compare_table(cmp: Comparison, *, include_unchanged: bool = False,
                         include_informational: bool = False) -> Table:
    """A rich table of the comparison: regressions, inconclusive rows and improvements first.

    Unchanged and informational rows are counted in the caption and shown only on request;
    new and vanished cells are grouped by ``unmatched_summary``, not listed here. All cell text
    is passed as ``rich.text.Text``, so labels such as ``standard[sdpa]`` print literally.
    """
    title = Text.assemble(
        "compare ", (str(cmp.base_meta.get("run_id", cmp.base_dir)), "bold"), " -> ",
        (str(cmp.new_meta.get("run_id", cmp.new_dir)), "bold"), ": ",
        (cmp.verdict.upper(), _VERDICT_STYLES[cmp.verdict]),
    )
    caption = [f"Regression: worse by > {cmp.threshold:.0%}, beyond noise (Mann-Whitney U on"
               " raw samples where stored), and confirmed by the speed vs the reference."]
    hidden = {"unchanged": not include_unchanged, "informational": not include_informational}
    shown_hidden = [f"{cmp.counts[s]} {s}" for s, hide in hidden.items() if hide and cmp.counts[s]]
    if shown_hidden:
        caption.append(f"Not shown: {' and '.join(shown_hidden)} rows.")
    caption += [f"warning: {w}" for w in cmp.warnings]
    table = Table(title=title, caption=Text("\n".join(caption)), caption_justify="left")
    for name, justify in (("status", "left"), ("suite", "left"), ("attention", "left"),
                          ("params", "left"), ("metric", "left"), ("base", "right"),
                          ("new", "right"), ("change", "right"), ("note", "left")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    order = {s: i for i, s in enumerate(_LISTED)}
    for row in sorted((r for r in cmp.rows if r.status in order),
                      key=lambda r: order[r.status]):
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
            "status": r.status, "error": r.error or "", "noisy": r.noisy or ""}


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
    titles = {"regression": "Regressions",
              "inconclusive": "Inconclusive (would-be regressions measured on a busy or"
                              " drifting machine)",
              "improvement": "Improvements",
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
