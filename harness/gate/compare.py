"""Compare two runs: match their records, classify each pair, decide, and state the power.

``compare_runs(base, new)`` reads two run directories; ``compare_records`` does the work on
records. Matching: ``harness.gate.matching``; one pair's rules: ``harness.gate.classify``; the
tests: ``harness.gate.evidence``. On top of the pairs:

* a ratio to the side-by-side reference (``*_speed_vs_reference``) supports its absolute metric
  and never decides on its own row (*informational*); so is a change of a summary figure the
  suite derives from other records (``MetricSpec.summary``) when it has no uncertainty of its
  own or comes from timings (a crossover length, a fitted time exponent);
* per-seed records (an integer ``seed`` param) of the same cell are judged together over the
  seeds both runs hold (a paired t-test, >= 2 seeds); with one seed, by their intervals;
* multiplicity: each suite is a family: the suites with a row or seed group beyond the
  threshold share ``alpha`` equally, and within a suite those rows share its part
  (Bonferroni): many small bias gaps moved by noise do not dilute a macro-F1 drop;
* cells only in the new run are *new*; cells measured ``ok`` in the base run and missing in the
  new one are *vanished*: failures unless ``allow_missing``; a cell that failed whole (one
  ``cell_status`` record) is judged against each metric the other run has for it.

``Comparison.exit_code``: 0 pass, 1 regression (or vanished cells), 3 inconclusive (no
regression, but some would-be regression could not be decided). Unusable input raises
``StoreError`` (the CLI's exit 2). ``Comparison.power``: per suite, the smallest worsening the
gate could have detected with the noise measured in these two runs.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.gate.classify import calibration_drift, classify, references_differ, what_would_decide
from harness.gate.evidence import (
    NO_UNCERTAINTY,
    Change,
    Evidence,
    change_of,
    estimate,
    has_samples,
    row_spread,
    seed_evidence,
)
from harness.gate.matching import (
    CALIBRATION,
    CELL_STATUS,
    as_metric,
    failed_cells,
    index_records,
    partner,
    rules_of,
    seed_group,
    summary_metrics,
    ungated_metrics,
)
from harness.records import Record
from harness.report._common import format_params, label_of
from harness.run.store import StoreError, read_records, read_run, resolve_run_dir, upgrade_run

__all__ = [
    "ALPHA",
    "EXIT_CODES",
    "ROW_STATUSES",
    "CompareRow",
    "Comparison",
    "SuitePower",
    "compare_records",
    "compare_runs",
]

ROW_STATUSES = ("regression", "inconclusive", "vanished", "improvement", "new",
                "informational", "unchanged")
#: ``Comparison.exit_code`` per verdict (2, unusable input, is raised as ``StoreError``).
EXIT_CODES = {"pass": 0, "fail": 1, "unusable": 2, "inconclusive": 3}
#: Family-wise false-fail rate of the gate's tests (Bonferroni: per suite, then its rows).
ALPHA = 0.05
SUITE_ORDER = ("throughput", "memory", "accuracy", "bias")
_JUDGED = ("regression", "improvement", "inconclusive", "unchanged")
#: Wall times of training (accuracy, bias): measured while the pool trains other cells, with no
#: side-by-side reference and no calibration, so they are shown, never gated (the throughput
#: suite gates speed). A ``MetricSpec`` flag would be the better seam for this.
WALL_TIMES = ("train_time_s", "train_time_s_mean")


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
    note: str = ""
    evidence: Evidence | None = None
    #: False for a row that only supports another (a ratio to the reference, a summary
    #: figure derived from other rows): never part of the verdict or the power.
    decides: bool = True
    #: True for a one-process regression that no other cell of its attention confirmed
    #: (made inconclusive: ``_require_replication``).
    unreplicated: bool = False

    @property
    def noise(self) -> str:
        """Which test decided, in words (``below threshold`` when none was needed)."""
        return self.evidence.text() if self.evidence is not None else ""

    @property
    def p_value(self) -> float | None:
        return self.evidence.p if self.evidence is not None else None

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
                "p_value": self.p_value, "unreplicated": self.unreplicated,
                "evidence": self.evidence.to_dict() if self.evidence else None,
                "base": side(self.base), "new": side(self.new)}


@dataclass(frozen=True)
class SuitePower:
    """The smallest worsening a suite's rows could have been caught at: ``detectable`` is the
    largest over its judged rows of max(threshold, the row's test power) (None when some row's
    power is unknown: ``unknown`` counts them), ``worst`` names that row."""

    suite: str
    rows: int
    detectable: float | None
    worst: str
    unknown: int
    #: timing suites: the smallest slowdown of one attention at every length it would have
    #: caught (in two of its cells: the replication rule), and the least sensitive attention
    attention_wide: float | None = None
    attention_worst: str = ""

    def text(self) -> str:
        if self.detectable is None:
            return (f"{self.suite}: power unknown for {self.unknown} of {self.rows} row(s)"
                    " (one timing window per run: the spread between windows was not measured)")
        rows = (f"no regression larger than {self.detectable:.0%} in any of {self.rows} row(s)"
                f" (the least sensitive: {self.worst})")
        if self.attention_wide is None:
            return f"{self.suite}: {rows}"
        return (f"{self.suite}: no slowdown of an attention at every length larger than"
                f" {self.attention_wide:.0%} (the least sensitive: {self.attention_worst});"
                f" {rows}")


def _is_timing(suite: str, base_meta: dict[str, Any], new_meta: dict[str, Any]) -> bool:
    return bool(rules_of(base_meta, new_meta).get(suite, {}).get("timing"))


def _attention_wide_power(judged: list[CompareRow]) -> tuple[float, str] | None:
    """The smallest slowdown of one attention at all its lengths that the rows would have
    caught: per attention, its cells' most sensitive rows, the second best of them (a
    one-process regression must show in two cells; one cell: that cell's); the largest over
    the attentions, and which attention that is."""
    cells: dict[str, dict[str, float]] = {}
    for r in judged:
        cell = repr(sorted(r.params.items()))
        best = cells.setdefault(r.label, {})
        best[cell] = min(best.get(cell, math.inf), r.evidence.detectable)  # type: ignore[union-attr,type-var]
    per_label = {label: sorted(v.values())[min(1, len(v) - 1)] for label, v in cells.items()}
    if not per_label:
        return None
    label = max(per_label, key=per_label.__getitem__)
    return per_label[label], label


@dataclass
class Comparison:
    """The outcome of ``compare_runs``: classified rows, verdict, exit code and power."""

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

    @property
    def power(self) -> list[SuitePower]:
        """Per suite, the smallest worsening it could have detected (``SuitePower``)."""
        out = []
        suites = sorted({r.suite for r in self.rows}, key=_suite_rank)
        for suite in suites:
            judged = [r for r in self.rows if r.suite == suite and r.status in _JUDGED
                      and r.decides and r.evidence is not None
                      and r.evidence.test != "threshold"]
            if not judged:
                continue
            unknown = [r for r in judged if r.evidence.detectable is None]  # type: ignore[union-attr]
            if unknown:
                out.append(SuitePower(suite, len(judged), None, _row_name(unknown[0]),
                                      len(unknown)))
                continue
            worst = max(judged, key=lambda r: r.evidence.detectable)  # type: ignore[union-attr]
            value = max(self.threshold, worst.evidence.detectable)  # type: ignore[union-attr]
            wide = _attention_wide_power(judged) if _is_timing(suite, self.base_meta,
                                                               self.new_meta) else None
            out.append(SuitePower(suite, len(judged), value, _row_name(worst), 0,
                                  *((max(self.threshold, wide[0]), wide[1]) if wide else ())))
        return out

    @property
    def advice(self) -> list[str]:
        """For an inconclusive verdict: what would make each undecided row conclusive."""
        seen: dict[str, None] = {}
        for r in self.by_status("inconclusive"):
            if r.unreplicated:
                hint = (f"{r.label} regressed in one cell only: rerun its cells, or time them in"
                        " several processes (throughput `processes: 3`)")
            elif r.evidence is not None:
                hint = what_would_decide(r.evidence)
            else:
                hint = "rerun both sides on a quiet machine"
            seen.setdefault(f"{r.suite}: {hint}")
        return list(seen)

    def to_dict(self) -> dict[str, Any]:
        return {"base": str(self.base_dir), "new": str(self.new_dir),
                "base_run_id": self.base_meta.get("run_id"),
                "new_run_id": self.new_meta.get("run_id"), "threshold": self.threshold,
                "atol": self.atol, "verdict": self.verdict, "exit_code": self.exit_code,
                "allow_missing": self.allow_missing, "only_common": self.only_common,
                "left_out": dict(self.left_out), "counts": self.counts,
                "power": [p.__dict__ for p in self.power], "advice": self.advice,
                "warnings": list(self.warnings), "rows": [r.to_dict() for r in self.rows]}


def _suite_rank(suite: str) -> tuple[int, str]:
    return (SUITE_ORDER.index(suite) if suite in SUITE_ORDER else len(SUITE_ORDER), suite)


def _row_name(row: CompareRow) -> str:
    return f"{row.label} {row.metric} {format_params(row.params)}".strip()


def _sort_key(row: CompareRow) -> tuple:
    return (*_suite_rank(row.suite), row.label, format_params(row.params), row.metric)


def _check_number(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or value < 0:
        raise ValueError(f"compare: {name} must be a finite number >= 0 (a fraction: 0.1 ="
                         f" 10%), got {value!r}")


def _comparable(b: Record | None, n: Record | None) -> bool:
    return (b is not None and n is not None and b.status == n.status == "ok"
            and b.higher_is_better is not None and b.higher_is_better == n.higher_is_better)


def _seed_groups(keys: list[tuple], b_index: dict[tuple, Record], n_index: dict[tuple, Record],
                 timing: set[str]) -> dict[tuple, list[tuple]]:
    """Group key -> the keys of its per-seed pairs (>= 2 seeds held by both runs, with values)."""
    groups: dict[tuple, list[tuple]] = {}
    for key in keys:
        b, n = b_index.get(key), n_index.get(key)
        if not _comparable(b, n) or b.suite in timing or b.value is None or \
                n.value is None or b.metric in WALL_TIMES:  # type: ignore[union-attr]
            continue
        group = seed_group(key, b)  # type: ignore[arg-type]
        if group is not None:
            groups.setdefault(group, []).append(key)
    return {g: ks for g, ks in groups.items() if len(ks) >= 2}


def _spreads(keys: list[tuple], b_index: dict[tuple, Record], n_index: dict[tuple, Record],
             ratio_of: dict[str, dict[str, str]], supporting: dict[str, set[str]],
             timing: set[str], alpha: float) -> dict[str, Any]:
    """Per timing suite, the empirical null of its rows' log changes (``row_spread``): each
    measured metric once, as its ratio to the side-by-side reference where both runs have it."""
    changes: dict[str, dict[tuple, float]] = {}
    for key in keys:
        b, n = b_index.get(key), n_index.get(key)
        if not _comparable(b, n) or b.suite not in timing or \
                b.metric in supporting.get(b.suite, ()) or not has_samples(b):  # type: ignore[union-attr]
            continue
        ratio_metric = ratio_of.get(b.suite, {}).get(b.metric)  # type: ignore[union-attr]
        measured = key
        if ratio_metric:
            rb, rn = partner(b_index, key, ratio_metric), partner(n_index, key, ratio_metric)
            if _comparable(rb, rn) and has_samples(rb) and has_samples(rn):  # type: ignore[arg-type]
                b, n, measured = rb, rn, (*key[:5], ratio_metric)
        eb, en = estimate(b), estimate(n)  # type: ignore[arg-type]
        if eb and en and eb > 0 and en > 0:
            changes.setdefault(b.suite, {})[measured[:6]] = math.log(en / eb)  # type: ignore[union-attr]
    out = {}
    for suite, values in changes.items():
        spread = row_spread(list(values.values()), alpha)
        if spread is not None:
            out[suite] = spread
    return out


@dataclass
class _Pairs:
    """Everything one comparison's rows are judged with."""

    base: Sequence[Record]
    new: Sequence[Record]
    b_index: dict[tuple, Record]
    n_index: dict[tuple, Record]
    ratio_of: dict[str, dict[str, str]]
    supporting: dict[str, set[str]]
    derived: dict[str, set[str]]
    timing: set[str]
    threshold: float
    atol: float
    alpha: float = ALPHA
    #: per suite with a candidate, the level its rows are tested at (``_decide_levels``)
    levels: dict[str, float] = field(default_factory=dict)
    #: the level of a suite without a candidate: what its first one would have had
    spare_level: float = ALPHA
    in_group: dict[tuple, tuple] = field(default_factory=dict)
    group_evidence: dict[tuple, tuple[Change, Evidence]] = field(default_factory=dict)
    spreads: dict[str, Any] = field(default_factory=dict)
    #: per suite, its declared ``single_run_noise`` (run.json ``compare_rules``)
    noise: dict[str, float] = field(default_factory=dict)
    #: per suite, metrics shown but never judged (``MetricSpec.gated`` False)
    ungated: dict[str, set[str]] = field(default_factory=dict)

    @property
    def keys(self) -> list[tuple]:
        return [*self.b_index, *(k for k in self.n_index if k not in self.b_index)]

    def level(self, suite: str) -> float:
        """The level a row of ``suite`` is tested at. A suite without a candidate gets the
        level its first candidate would have had (its power says what it could have caught)."""
        return self.levels.get(suite, self.spare_level)


def _decide_levels(pairs: _Pairs) -> None:
    """Seed groups, the Bonferroni levels, the groups' evidence and the timing suites' spreads.

    Each suite is one family: the suites with a candidate (a row or seed group whose change
    exceeds the threshold) share ``alpha`` equally, and a suite's candidates share its part. One
    pool over all suites let the dozens of small bias gaps that seed-level noise moves past the
    threshold tighten the level of an accuracy drop (docs/PERFORMANCE.md section 7)."""
    keys = pairs.keys
    groups = _seed_groups(keys, pairs.b_index, pairs.n_index, pairs.timing)
    pairs.in_group = {k: g for g, ks in groups.items() for k in ks}

    def group_pairs(ks: list[tuple]) -> list[tuple[float, float]]:
        return [(pairs.b_index[k].value, pairs.n_index[k].value) for k in ks]  # type: ignore[misc]

    candidates: Counter[str] = Counter()  # per suite
    for key in keys:
        b, n = pairs.b_index.get(key), pairs.n_index.get(key)
        if key not in pairs.in_group and _comparable(b, n) and has_samples(b) and \
                has_samples(n) and \
                b.metric not in pairs.ungated.get(b.suite, ()):  # type: ignore[union-attr]
            change = change_of(b, n, pairs.atol)  # type: ignore[arg-type]
            if change and change.beyond(pairs.threshold):
                candidates[b.suite] += 1  # type: ignore[union-attr]
    for ks in groups.values():
        b0 = pairs.b_index[ks[0]]
        change, _ = seed_evidence(group_pairs(ks), bool(b0.higher_is_better), pairs.threshold,
                                  pairs.alpha, pairs.atol, b0.metric)
        if change.beyond(pairs.threshold):
            candidates[b0.suite] += 1
    share = pairs.alpha / max(len(candidates), 1)
    pairs.levels = {s: share / k for s, k in candidates.items()}
    pairs.spare_level = pairs.alpha / (len(candidates) + 1)
    for g, ks in groups.items():
        b0 = pairs.b_index[ks[0]]
        pairs.group_evidence[g] = seed_evidence(group_pairs(ks), bool(b0.higher_is_better),
                                                pairs.threshold, pairs.level(b0.suite),
                                                pairs.atol, b0.metric)
    left_out = {s: pairs.supporting.get(s, set()) | pairs.ungated.get(s, set())
                for s in {*pairs.supporting, *pairs.ungated}}
    pairs.spreads = _spreads(keys, pairs.b_index, pairs.n_index, pairs.ratio_of,
                             left_out, pairs.timing, pairs.alpha)


def _row(pairs: _Pairs, key: tuple, b_failed: dict[str, Record],
         n_failed: dict[str, Record]) -> CompareRow:
    """The classified row of one match key."""
    b, n = pairs.b_index.get(key), pairs.n_index.get(key)
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
        n = row.new = as_metric(n_failed[b.cell], b)
    elif b is None and n is not None and n.cell in b_failed and n.metric != CELL_STATUS:
        b = row.base = as_metric(b_failed[n.cell], n)
    if b is None:
        row.note = f"only in the new run ({n.status})"  # type: ignore[union-attr]
    elif n is None:
        row.note = f"only in the base run ({b.status})"
    elif CELL_STATUS in (b.metric, n.metric) and ref.metric == CELL_STATUS:
        row.status, row.note = "informational", f"cell status {b.status} -> {n.status}"
    else:
        ratio_metric = pairs.ratio_of.get(ref.suite, {}).get(ref.metric)
        ratio = None
        if ratio_metric:
            rb = partner(pairs.b_index, key, ratio_metric)
            rn = partner(pairs.n_index, key, ratio_metric)
            if rb is not None and rn is not None and rb.status == rn.status == "ok" and \
                    not references_differ(rb, rn):
                ratio = (rb, rn)
        drift = calibration_drift(partner(pairs.b_index, key, CALIBRATION),
                                  partner(pairs.n_index, key, CALIBRATION))
        seeds = pairs.group_evidence.get(pairs.in_group.get(key))  # type: ignore[arg-type]
        for name, value in classify(b, n, pairs.threshold, pairs.atol, alpha=pairs.level(ref.suite),
                                    ratio=ratio, drift=drift, seeds=seeds,
                                    spread=pairs.spreads.get(ref.suite),
                                    noise=pairs.noise.get(ref.suite)).items():
            setattr(row, name, value)
        _demote_supporting(row, ref, pairs.supporting, pairs.derived, pairs.timing,
                           pairs.ungated)
    if ref.metric == CELL_STATUS and row.status in ("new", "vanished"):
        other = pairs.base if row.status == "new" else pairs.new
        if any(r.cell == ref.cell and r.metric != CELL_STATUS for r in other):
            row.status = "informational"
            row.note = f"cell {ref.status}: {ref.error or ''} (judged on its metrics)".strip()
    return row


def _measurement(row: CompareRow, pairs: _Pairs) -> tuple[str, str]:
    """The cell (its parameters) and the timed pass a row reads: a time, its rate and its
    ratio to the reference are one measurement (``reference_metrics`` names the ratio)."""
    passed = pairs.ratio_of.get(row.suite, {}).get(row.metric, row.metric)
    return repr(sorted(row.params.items())), passed


#: Tests over the rounds or windows of one process per run: the spread between processes (and
#: over the seconds a cell lasts) is unseen, so their regressions need a second cell.
ONE_PROCESS_TESTS = ("welch_t_windows", "mann_whitney_rounds")


def _require_replication(rows: list[CompareRow], pairs: _Pairs) -> None:
    """A timing regression of one process per run stands when another cell of the same
    attention (another length, batch or kind) confirms it: worse beyond the threshold there
    too, at ``alpha`` over the attention's measurements (Bonferroni within the attention), and
    out of the runs' spread (a cell the spread rule calls unchanged confirms nothing). A
    change of code slows an attention at every length it touches; a state of the machine that
    moves one attention's kernels against the reference for a few seconds moves one cell
    (measured on identical code, docs/PERFORMANCE.md section 7). Unconfirmed, the row is
    inconclusive (exit 3) and says so; an attention timed in one cell only keeps the row's own
    verdict, and so do timings in several processes (their spread is measured)."""
    by_label: dict[tuple[str, str], list[CompareRow]] = {}
    for row in rows:
        if row.suite in pairs.timing and row.decides and row.evidence is not None:
            by_label.setdefault((row.suite, row.label), []).append(row)
    for (_, label), judged in by_label.items():
        failing = [r for r in judged if r.status == "regression"
                   and r.evidence.test in ONE_PROCESS_TESTS]  # type: ignore[union-attr]
        cells = {_measurement(r, pairs)[0] for r in judged}
        if not failing or len(cells) < 2:
            continue
        level = pairs.alpha / len({_measurement(r, pairs) for r in judged})
        worse = {_measurement(r, pairs)[0] for r in judged
                 if r.status == "regression" or _worse_at(r, pairs.threshold, level)}
        if len(worse) >= 2:
            continue
        for row in failing:
            row.status, row.unreplicated = "inconclusive", True
            row.note = (f"{row.note}; not replicated: no other of the {len(cells)} cells of"
                        f" {label} is worse by > {pairs.threshold:.0%} at p < {level:.2g} (a"
                        " change of code slows an attention at every length it touches);"
                        " rerun to confirm").lstrip("; ")


def _worse_at(row: CompareRow, threshold: float, level: float) -> bool:
    """Whether a row's evidence shows it worse beyond ``threshold`` at ``level`` and beyond its
    power (``detectable``, which holds the runs' spread for a timed row)."""
    ev = row.evidence
    return (ev is not None and ev.effect is not None and ev.effect < -threshold
            and ev.p is not None and ev.p < level and -ev.effect > (ev.detectable or 0.0))


def compare_records(base: Sequence[Record], new: Sequence[Record], threshold: float = 0.1,
                    *, atol: float = 0.1, alpha: float = ALPHA,
                    base_meta: dict[str, Any] | None = None,
                    new_meta: dict[str, Any] | None = None) -> tuple[list[CompareRow], list[str]]:
    """Classify every record of two runs (see the module docstring); returns rows and warnings.

    ``base_meta``/``new_meta``: the runs' run.json (for the suites' rules and summaries).
    """
    _check_number("threshold", threshold)
    _check_number("atol", atol)
    if not 0 < alpha < 1:
        raise ValueError(f"compare: alpha must be in (0, 1), got {alpha!r}")
    warnings: list[str] = []
    b_meta, n_meta = base_meta or {}, new_meta or {}
    rules = rules_of(b_meta, n_meta)
    ratio_of = {suite: dict(r.get("reference_metrics") or {}) for suite, r in rules.items()}
    pairs = _Pairs(base, new, index_records(base, b_meta, rules, "base", warnings),
                   index_records(new, n_meta, rules, "new", warnings), ratio_of,
                   {suite: set(m.values()) for suite, m in ratio_of.items()},
                   summary_metrics(b_meta, n_meta),
                   {suite for suite, r in rules.items() if r.get("timing")},
                   threshold, atol, alpha)
    pairs.ungated = ungated_metrics(b_meta, n_meta)
    pairs.noise = {suite: float(r["single_run_noise"]) for suite, r in rules.items()
                   if r.get("single_run_noise")}
    _decide_levels(pairs)
    b_failed, n_failed = failed_cells(base), failed_cells(new)
    rows = sorted((_row(pairs, key, b_failed, n_failed) for key in pairs.keys), key=_sort_key)
    _require_replication(rows, pairs)
    single = [r for r in rows if r.status == "regression" and r.evidence is not None
              and r.evidence.one_process]
    if single:
        warnings.append(
            f"{len(single)} regression row(s) rest on timings from one window of one process"
            " per run: the spread between windows was not measured, only that between these"
            " runs' rows (without that spread rule, identical code failed 98 of 380 such"
            " comparisons on a 2-core machine, 6 of 380 with 3 processes per run); confirm with"
            " runs timed in several windows or processes (throughput `windows: 5`, as in the"
            " quick profile, or `processes: 3`, as in the release profile)")
    return rows, warnings


def _demote_supporting(row: CompareRow, ref: Record, supporting: dict[str, set[str]],
                       derived: dict[str, set[str]], timing: set[str],
                       ungated: dict[str, set[str]]) -> None:
    """Ratio rows support their absolute metric; derived summaries without uncertainty (or
    from timings) are judged on the measurements they come from: both informational. So are a
    training's wall time (``WALL_TIMES``) and every metric its suite declares ungated."""
    why: str | None = None
    if ref.metric in ungated.get(ref.suite, ()):
        why = ("of a metric its suite shows but does not gate (MetricSpec gated=False); judged"
               " on the measurements it comes from")
    elif ref.suite not in timing and ref.metric in WALL_TIMES:
        why = ("of a wall time measured beside other work (no side-by-side reference); the"
               " throughput suite gates speed")
    elif ref.metric in supporting.get(ref.suite, ()):
        why = "of the ratio; judged with its absolute metric"
    elif ref.metric in derived.get(ref.suite, ()) and (
            row.noise == NO_UNCERTAINTY or ref.suite in timing):
        # a figure derived from other records (a crossover length, a longest length under
        # budget) carries no uncertainty of its own and jumps a whole grid step on a small
        # timing change; a fitted time exponent's interval covers one process's timings only.
        what = "without uncertainty" if row.noise == NO_UNCERTAINTY else "from timings"
        why = (f"of a derived summary figure {what}; judged on the measurements it is derived"
               " from")
    if why is None:
        return
    row.decides = False
    if row.status in ("regression", "improvement", "inconclusive"):
        row.note = f"{row.status} {why}"
        row.status = "informational"


def _load(run_dir: str | Path, side: str) -> tuple[Path, dict[str, Any], list[Record]]:
    path = resolve_run_dir(run_dir)
    if not path.is_dir():
        raise StoreError(f"{side} run {run_dir}: no such directory; pass a run directory written"
                         " by `harness run` (e.g. reports/<run-id> or reports/latest)")
    meta, records = upgrade_run(read_run(path), read_records(path))
    return path, meta, records


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
    family-wise false-fail level of the tests (Welch t over processes, Mann-Whitney over one
    process's rounds, paired t over seeds; module docstring). ``allow_missing``: vanished
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
