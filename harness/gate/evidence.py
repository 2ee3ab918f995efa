"""The gate's evidence: how a pair of records changed, and which test says it is beyond noise.

Each side's estimate is robust to interference: the best decile of a time's samples (the 10th
percentile of a time, the 90th of a rate: a busy machine only ever adds time), the median of
per-round ratios. A record timed in several fresh processes or in several windows of one
process (``sample_groups``) is estimated per group and the groups are the unit of the test
(pyperf's model): the geometric mean of the per-group estimates, and a one-sided Welch t-test on
their logs. A record timed in one window of one process per run falls back to a Mann-Whitney U
test on its rounds, which cannot see how much one process differs from the next (the gate warns:
``Evidence.one_process``). Records with an interval are judged by the overlap of the intervals,
with a standard error by ``2 * se`` of the difference, without either by the threshold alone.
Per-seed records are judged over seeds (``seed_evidence``: a paired t-test over the seeds both
runs hold).

Every decision is an :class:`Evidence`: the test, its statistic and p-value, the level it was
held to, the effect, and its power (the smallest worsening it could have called a regression).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from harness.measure.stats import (
    ShiftTest,
    detectable_shift,
    paired_shift,
    rank_shift,
    robust_sd,
    welch_shift,
)
from harness.records import Record

__all__ = [
    "NO_UNCERTAINTY",
    "Change",
    "Evidence",
    "RowSpread",
    "change_of",
    "estimate",
    "group_kind",
    "has_samples",
    "judge",
    "per_process",
    "row_spread",
    "seed_evidence",
]

#: The ``noise`` text of a row judged on its threshold alone.
NO_UNCERTAINTY = "no uncertainty: threshold only"
#: Human names of the tests (``Evidence.test``).
TEST_NAMES = {
    "welch_t_processes": "Welch t over processes",
    "welch_t_windows": "Welch t over timing windows",
    "mann_whitney_rounds": "Mann-Whitney over one window's rounds",
    "paired_t_seeds": "paired t over seeds",
    "intervals": "interval overlap",
    "stderr": "2·se of the difference",
    "threshold": "threshold only",
    "below_threshold": "below threshold",
}


@dataclass(frozen=True)
class Evidence:
    """Why a change is (or is not) beyond noise.

    ``test``: a key of ``TEST_NAMES``; ``metric``: the metric whose samples were tested (the
    row's own, or its ratio to the side-by-side reference); ``effect``: the relative change in
    the metric's good direction (< 0 = worse); ``statistic``/``p``/``alpha``: the test and the
    (multiplicity-corrected) level it was held to; ``detectable``: the smallest relative
    worsening the test would have rejected at ``alpha`` with the spread it measured (None:
    unknown, e.g. one window per run); ``units``: what ``n_base``/``n_new`` count.
    """

    test: str
    metric: str
    effect: float | None = None
    significant: bool = False
    statistic: float | None = None
    p: float | None = None
    alpha: float | None = None
    detectable: float | None = None
    n_base: int | None = None
    n_new: int | None = None
    units: str = ""
    detail: str = ""

    @property
    def one_process(self) -> bool:
        """Whether the test saw one process per run (rounds of one process as the unit)."""
        return self.test == "mann_whitney_rounds"

    def text(self) -> str:
        """One line: ``Welch t over processes (3 vs 3) p=0.001 < 0.005``."""
        name = TEST_NAMES.get(self.test, self.test)
        if self.test == "below_threshold":
            return name
        if self.test in ("intervals", "stderr", "threshold"):
            return self.detail or name
        sizes = f" ({self.n_base} vs {self.n_new})" if self.n_base is not None else ""
        if self.p is None or self.alpha is None:
            return f"{name}{sizes}"
        op = "<" if self.p < self.alpha else ">="
        return f"{name}{sizes} p={self.p:.2g} {op} {self.alpha:.2g}"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "one_process": self.one_process}


def has_samples(r: Record) -> bool:
    return r.samples is not None and len(r.samples) >= 2


def _point(r: Record, samples: Sequence[float]) -> float:
    """Median of ratios (and of figures without direction), best decile of times and rates."""
    import numpy as np

    values = np.asarray(samples, dtype=float)
    if r.unit == "x" or r.higher_is_better is None:
        return float(np.median(values))
    return float(np.quantile(values, 0.9 if r.higher_is_better else 0.1))


def per_process(r: Record) -> list[float] | None:
    """One estimate per process (``sample_groups``), or None for a one-process record."""
    if not has_samples(r) or not r.sample_groups or len(r.sample_groups) < 2:
        return None
    out, start = [], 0
    for size in r.sample_groups:
        out.append(_point(r, r.samples[start:start + size]))  # type: ignore[index]
        start += size
    return out


def group_kind(r: Record) -> str:
    """What a record's ``sample_groups`` are: ``processes`` (fresh processes, with or without
    windows inside each) or ``windows`` (timing windows of one process)."""
    groups = str((r.load or {}).get("groups") or "processes")
    return "processes" if groups.startswith("processes") else "windows"


def estimate(r: Record) -> float | None:
    """The gate's estimate of a record: the geometric mean of its per-process estimates where
    it was timed in several processes, else the estimate of its pooled samples, else its value."""
    per = per_process(r)
    if per is not None and all(v > 0 for v in per):
        return math.exp(sum(math.log(v) for v in per) / len(per))
    if not has_samples(r):
        return r.value
    return _point(r, r.samples)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Change:
    """One pair's change: ``rel`` = (new - base) / max(|base|, atol); ``better`` is ``rel`` in
    the metric's good direction (> 0 = better); ``absolute`` when |base| < atol."""

    diff: float
    rel: float
    better: float
    absolute: bool
    samples: bool

    def beyond(self, threshold: float) -> bool:
        return abs(self.better) > threshold


def change_of(base: Record, new: Record, atol: float) -> Change | None:
    b, n = estimate(base), estimate(new)
    if b is None or n is None:
        return None
    diff = n - b
    rel = diff / max(abs(b), atol)
    return Change(diff, rel, rel if base.higher_is_better else -rel, abs(b) < atol,
                  has_samples(base) and has_samples(new))


@dataclass(frozen=True)
class RowSpread:
    """The spread of one suite's timed rows between two runs: ``scale``, a robust standard
    deviation (1.4826 x the median absolute deviation) of the rows' log changes; ``rows``,
    how many; ``critical``: the smallest relative change that stands out of that spread at
    ``alpha`` / rows (Bonferroni over the rows), two-sided."""

    scale: float
    rows: int
    alpha: float

    @property
    def critical(self) -> float:
        from scipy.stats import norm

        return math.expm1(float(norm.isf(self.alpha / (2 * self.rows))) * self.scale)

    def text(self) -> str:
        return (f"rows' spread {self.scale:.1%} over {self.rows} rows: needs"
                f" > {self.critical:.0%}")


#: Fewest timed rows for an empirical null (fewer: no spread check).
MIN_SPREAD_ROWS = 8


def row_spread(log_changes: Sequence[float], alpha: float) -> RowSpread | None:
    """The empirical null of a suite's log changes (None with fewer than ``MIN_SPREAD_ROWS``):
    most rows of two runs of one suite did not change, so their spread is the noise between
    the runs, measured in these runs; a minority of changed rows barely moves the MAD."""
    if len(log_changes) < MIN_SPREAD_ROWS:
        return None
    return RowSpread(robust_sd(log_changes), len(log_changes), alpha)


def _worse_fraction(log_shift: float | None, higher_is_better: bool) -> float | None:
    """A shift of the log estimate seen as a relative worsening (0.1 = 10% worse)."""
    if log_shift is None:
        return None
    return 1.0 - math.exp(-log_shift) if higher_is_better else math.exp(log_shift) - 1.0


def _log_test(base: Record, new: Record, larger: bool) -> ShiftTest | None:
    b, n = per_process(base), per_process(new)
    if b is None or n is None or min(b + n) <= 0:
        return None
    return welch_shift([math.log(x) for x in b], [math.log(x) for x in n],
                       "greater" if larger else "less")


def _interval_evidence(base: Record, new: Record, change: Change, atol: float,
                       metric: str) -> Evidence:
    scale = max(abs(base.value or 0.0), atol)
    intervals = (base.ci_low, base.ci_high, new.ci_low, new.ci_high)
    if all(v is not None for v in intervals):
        apart = new.ci_low > base.ci_high or new.ci_high < base.ci_low  # type: ignore[operator]
        kind = base.interval or new.interval or "interval"
        widths = (base.ci_high - base.ci_low + new.ci_high - new.ci_low) / 2  # type: ignore[operator]
        return Evidence("intervals", metric, change.better, apart, detectable=widths / scale,
                        detail=f"{kind} {'disjoint' if apart else 'overlap'}")
    if base.stderr is not None or new.stderr is not None:
        se = math.sqrt((base.stderr or 0.0) ** 2 + (new.stderr or 0.0) ** 2)
        apart = abs(change.diff) > 2 * se
        return Evidence("stderr", metric, change.better, apart, detectable=2 * se / scale,
                        detail=f"|diff| {'>' if apart else '<='} 2·se ({2 * se:.3g})")
    return Evidence("threshold", metric, change.better, True, detectable=0.0,
                    detail=NO_UNCERTAINTY)


def judge(base: Record, new: Record, change: Change, threshold: float, alpha: float,
          atol: float) -> Evidence:
    """The evidence on one pair (``significant``: beyond the threshold and beyond noise).

    The test is the strongest the records allow: Welch t on per-process (or per-window) log
    estimates, else Mann-Whitney on one window's rounds, else intervals, standard errors or the
    threshold.
    The power (``detectable``) is computed whether or not the change is beyond the threshold.
    """
    metric = new.metric
    hib = bool(base.higher_is_better)
    worse = change.better < 0
    larger = worse != hib  # worse time = larger; worse rate = smaller
    beyond = change.beyond(threshold)
    if change.samples:
        test = _log_test(base, new, larger)
        if test is not None:
            power = _worse_fraction(detectable_shift(test, alpha), hib)
            units = group_kind(new)
            return Evidence(f"welch_t_{units}", metric, change.better,
                            beyond and test.p < alpha, test.statistic, test.p, alpha, power,
                            test.n_base, test.n_new, units)
        if beyond:
            test = rank_shift(base.samples, new.samples, "greater" if larger else "less")
            return Evidence("mann_whitney_rounds", metric, change.better, test.p < alpha,
                            test.statistic, test.p, alpha, None, test.n_base, test.n_new,
                            "rounds")
        return Evidence("below_threshold", metric, change.better, False, alpha=alpha)
    ev = _interval_evidence(base, new, change, atol, metric)
    if not beyond:
        return Evidence("below_threshold", metric, change.better, False, alpha=alpha,
                        detectable=ev.detectable)
    return ev


def seed_evidence(pairs: Sequence[tuple[float, float]], higher_is_better: bool,
                  threshold: float, alpha: float, atol: float, metric: str
                  ) -> tuple[Change, Evidence]:
    """The change of the mean over seeds and a one-sided paired t-test over the seeds both
    runs hold (``pairs``: (base, new) per seed, >= 2)."""
    base = [b for b, _ in pairs]
    new = [n for _, n in pairs]
    mb, mn = sum(base) / len(base), sum(new) / len(new)
    diff = mn - mb
    scale = max(abs(mb), atol)
    rel = diff / scale
    better = rel if higher_is_better else -rel
    change = Change(diff, rel, better, abs(mb) < atol, True)
    worse = better < 0
    larger = worse != higher_is_better
    test = paired_shift(base, new, "greater" if larger else "less")
    shift = detectable_shift(test, alpha)
    return change, Evidence(
        "paired_t_seeds", metric, better, change.beyond(threshold) and test.p < alpha,
        test.statistic, test.p, alpha, None if shift is None else shift / scale,
        test.n_base, test.n_new, "seeds")
