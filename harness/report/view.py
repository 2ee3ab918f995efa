"""What a report section sees: one run read from the store, and the helpers sections share.

A suite's report section is a function ``render(view: RunView) -> Section | None`` named by the
suite's ``section`` declaration (``"module:function"``, stored in run.json ``suites_meta``). It
reads only ``view`` (run.json + results.jsonl), never suite code, and returns its HTML plus what
the page shows outside the section: verdict findings, one column of the at-a-glance table and
the rows of the summary table. Anything a section leaves out gets the generic treatment.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from markupsafe import Markup

from harness.report import plots
from harness.report._common import (
    attention_colors,
    environment,
    format_params,
    format_uncertainty,
    format_value,
    label_of,
    reference_of,
    render,
)
from harness.run.store import Record

__all__ = [
    "HIDDEN_PARAMS",
    "Glance",
    "GlanceCell",
    "HeadlineRow",
    "RunView",
    "Section",
    "chart",
    "decisive",
    "diff_tone",
    "mean_value",
    "seed_key",
]

#: Cell parameters left out of displayed contexts (hashes, not settings a reader compares).
HIDDEN_PARAMS = ("kind", "config")


@dataclass
class GlanceCell:
    """One attention's entry in a section's column of the at-a-glance table."""

    text: str
    sub: str = ""
    tone: str = ""  # "", "good", "warn" or "bad"


@dataclass
class Glance:
    """A section's column of the at-a-glance table: header, small print, one cell per label."""

    header: str
    sub: str = ""
    cells: dict[str, GlanceCell] = field(default_factory=dict)


@dataclass
class HeadlineRow:
    """A summary-table entry: the record, its column context, and optionally its cell view."""

    record: Record
    context: str
    cell: dict[str, Any] | None = None


@dataclass
class Section:
    """A rendered suite section and what it contributes to the rest of the page.

    ``findings`` are ``(tone, text)`` pairs for the verdict (tone ``bad``, ``warn`` or
    ``good``); ``headline`` None means the generic choice (every record of the declared
    headline metric without a ``group`` parameter).
    """

    suite: str
    title: str
    html: Markup
    findings: list[tuple[str, str]] = field(default_factory=list)
    glance: Glance | None = None
    headline: list[HeadlineRow] | None = None


def _legacy_suites_meta(names: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Stores of schema 1 have no ``suites_meta``: take the registered suites' declarations."""
    try:
        from harness.suites import list_suites
        from harness.suites.base import suite_meta
    except ImportError:  # pragma: no cover - the package always ships its suites
        return {}
    wanted = set(names)
    return {n: suite_meta(n) for n in list_suites() if n in wanted}


@dataclass
class RunView:
    """A run's metadata and records with the lookups sections need (all from the store)."""

    meta: dict[str, Any]
    records: list[Record]
    labels: list[str] = field(default_factory=list)
    attention_of: dict[str, str] = field(default_factory=dict)
    specs: dict[str, dict[str, Any]] = field(default_factory=dict)
    reference: str | None = None
    colors: dict[str, str] = field(default_factory=dict)
    suites_meta: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for spec in self.meta.get("attentions") or []:
            if isinstance(spec, dict):
                label = str(spec.get("label") or spec.get("name") or "")
                self.specs[label] = spec
        seen = {label_of(r) for r in self.records if r.attention != "*"}
        self.labels = [lb for lb in self.specs if lb in seen]
        self.labels += sorted(seen - set(self.labels))
        for r in self.records:
            self.attention_of.setdefault(label_of(r), r.attention)
        ref = reference_of(self.meta, [*self.specs, *self.labels])
        self.reference = ref if ref in self.labels else None
        if self.reference is not None:  # the reference leads every table
            self.labels = [self.reference] + [lb for lb in self.labels if lb != self.reference]
        self.colors = attention_colors(self.meta, self.records)
        stored = self.meta.get("suites_meta")
        self.suites_meta = stored if isinstance(stored, dict) else _legacy_suites_meta(
            {r.suite for r in self.records} | set(self.meta.get("suites") or []))

    # --- lookups --------------------------------------------------------------------------

    def select(self, suite: str | None = None, metric: str | None = None,
               status: str | None = "ok") -> list[Record]:
        return [
            r for r in self.records
            if (suite is None or r.suite == suite) and (metric is None or r.metric == metric)
            and (status is None or r.status == status)
        ]

    def suites(self) -> list[str]:
        """Suites with records: run.json's order (the planned one), then any others."""
        present = {r.suite for r in self.records}
        planned = [s for s in self.meta.get("suites") or self.suites_meta if s in present]
        return planned + sorted(present - set(planned))

    def capability(self, label: str, key: str) -> Any:
        """A claimed capability (e.g. ``time_complexity``) of an attention, from run.json."""
        spec = self.specs.get(label, {})
        caps = spec.get("capabilities") if isinstance(spec.get("capabilities"), dict) else {}
        return caps.get(key, spec.get(key))

    def suite_params(self, suite: str) -> dict[str, Any]:
        """The suite's resolved parameters from the profile in run.json (empty if absent)."""
        profile = self.meta.get("profile")
        suites = profile.get("suites") if isinstance(profile, dict) else None
        params = suites.get(suite) if isinstance(suites, dict) else None
        return params if isinstance(params, dict) else {}

    def metric(self, suite: str, name: str) -> dict[str, Any]:
        """The declared metadata of a metric (empty when the suite did not declare it)."""
        for m in (self.suites_meta.get(suite) or {}).get("metrics") or []:
            if isinstance(m, dict) and m.get("name") == name:
                return m
        return {}

    def metrics(self, suite: str) -> list[dict[str, Any]]:
        return [m for m in (self.suites_meta.get(suite) or {}).get("metrics") or []
                if isinstance(m, dict) and m.get("name")]

    def headline_metric(self, suite: str) -> str | None:
        return next((m["name"] for m in self.metrics(suite) if m.get("headline")), None)

    def display(self, suite: str, name: str) -> str:
        """A metric's display name (its name when undeclared)."""
        return str(self.metric(suite, name).get("display") or name)

    def color(self, label: str) -> str:
        return self.colors.get(label, plots.PALETTE[-1])

    # --- formatting -----------------------------------------------------------------------

    def value_text(self, r: Record, value: float | None = None) -> str:
        """``value`` (default: the record's) formatted by the metric's unit and format."""
        fmt = self.metric(r.suite, r.metric).get("format")
        return format_value(r.value if value is None else value, r.unit, fmt)

    def cell(self, r: Record | None) -> dict[str, Any]:
        """A table cell: value text, uncertainty text, n, status and the raw value to sort."""
        if r is None:
            return {"text": "-", "unc": "", "n": None, "status": "missing", "error": "",
                    "sort": None}
        ok = r.status == "ok"
        return {"text": self.value_text(r) if ok else r.status,
                "unc": format_uncertainty(r) if ok else "", "n": r.n, "status": r.status,
                "error": r.error or "", "sort": r.value if ok else None,
                "noisy": r.noisy or ""}

    def tip(self, r: Record, prefix: str) -> str:
        unc = format_uncertainty(r)
        n = f", n={r.n}" if r.n is not None else ""
        return f"{prefix}: {self.value_text(r)} {unc}{n}".strip()

    def seeds_cell(self, records: list[Record]) -> dict[str, Any]:
        """A cell for one figure measured once per seed: the value itself for one seed, the
        mean with the range over seeds for several (each seed's interval is in the records)."""
        recs = sorted(records, key=seed_key)
        ok = [r for r in recs if r.status == "ok" and r.value is not None]
        if len(recs) <= 1 or not ok:
            return self.cell(recs[0] if recs else None)
        if len(ok) == 1:
            cell = self.cell(ok[0])
            cell["unc"] = f"{cell['unc']} (1 of {len(recs)} seeds)".strip()
            return cell
        values = [float(r.value) for r in ok]  # type: ignore[arg-type]
        mean = sum(values) / len(values)
        unc = (f"mean of {len(ok)} seeds, range [{self.value_text(ok[0], min(values))}, "
               f"{self.value_text(ok[0], max(values))}]")
        if len(ok) < len(recs):
            unc += f"; {len(recs) - len(ok)} seed(s) not ok"
        return {"text": self.value_text(ok[0], mean), "unc": unc, "n": None, "status": "ok",
                "error": "", "sort": mean}

    def seeds_bar(self, records: list[Record], prefix: str) -> plots.Bar | None:
        """A bar for one figure over seeds: value and 95% CI for one seed, mean with a dot per
        seed for several; None when no seed has a value."""
        ok = sorted((r for r in records if r.status == "ok" and r.value is not None),
                    key=seed_key)
        if not ok:
            return None
        if len(ok) == 1:
            r = ok[0]
            return plots.Bar(r.value, r.ci_low, r.ci_high, self.tip(r, prefix))  # type: ignore[arg-type]
        values = [float(r.value) for r in ok]  # type: ignore[arg-type]
        mean = sum(values) / len(values)
        shown = ", ".join(self.value_text(ok[0], v) for v in values)
        return plots.Bar(mean, tip=f"{prefix}: mean {self.value_text(ok[0], mean)} over "
                                   f"{len(ok)} seeds ({shown})", dots=values)

    def label_series(self, labels: list[str], rows: Callable[[str], Iterable[
            tuple[str, list[Record], str]]]) -> list[plots.BarSeries]:
        """One bar series per label. ``rows(label)`` yields (category, records, tip prefix);
        a category with no value is left out, a label with no bar at all is dropped."""
        series = []
        for label in labels:
            bars = {}
            for cat, recs, prefix in rows(label):
                bar = self.seeds_bar(recs, prefix)
                if bar is not None:
                    bars[cat] = bar
            if bars:
                series.append(plots.BarSeries(label, self.color(label), bars))
        return series

    def template(self, name: str, **context: Any) -> Markup:
        """Render a template of ``harness/report/templates`` (autoescaped) as markup."""
        return Markup(render(name, view=self, **context))

    def render_string(self, source: str, **context: Any) -> Markup:
        """Render a template given as text (a plugin suite's own), autoescaped, with the
        report's macros importable (``{% from "macros.html" import value_cell %}``)."""
        return Markup(environment().from_string(source).render(view=self, **context))


def chart(svg: str) -> Markup:
    """Charts are built by harness.report.plots, which escapes every piece of text it writes."""
    return Markup(svg)


def seed_key(r: Record) -> tuple[int, Any]:
    seed = r.params.get("seed")
    return (0, seed) if isinstance(seed, (int, float)) else (1, str(seed))


def decisive(records: list[Record]) -> list[Record]:
    """The records a decision rests on: the ``seed: "all"`` ones when present (their interval
    covers training randomness too), else every per-seed record."""
    pooled = [r for r in records if r.params.get("seed") == "all"]
    return pooled or records


def mean_value(records: list[Record]) -> float | None:
    values = [float(r.value) for r in records if r.status == "ok" and r.value is not None]
    return sum(values) / len(values) if values else None


def diff_tone(r: Record | None, higher_is_better: bool) -> str:
    """``bad`` when the interval is entirely on the worse side of 0, ``good`` on the better."""
    if r is None or r.status != "ok" or r.ci_low is None or r.ci_high is None:
        return ""
    if (r.ci_high < 0) if higher_is_better else (r.ci_low > 0):
        return "bad"
    if (r.ci_low > 0) if higher_is_better else (r.ci_high < 0):
        return "good"
    return ""


def seq_len(r: Record) -> float | None:
    value = r.params.get("seq_len")
    return float(value) if isinstance(value, (int, float)) and value > 0 else None


def context_of(r: Record, drop: Sequence[str] = ()) -> str:
    """The cell parameters of ``r`` a reader compares, as ``k=v, k=v``."""
    return format_params(r.params, (*drop, *HIDDEN_PARAMS))
