"""The bias section: planted-bias audit per attention, flagged comparisons, probe charts.

The controlled probe plants one group (``params.planted``) at one or more strengths; the
headline is the demographic-parity difference on the planted axis at the strongest strength.
Further blocks (e.g. other probe sets) join the section through :data:`PARTS`: functions
``(view, bias) -> Markup | None`` appended in order after the built-in tables and charts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from markupsafe import Markup

from harness.report import plots
from harness.report._common import format_params, format_value, label_of
from harness.report.probes import probe_set_part
from harness.report.sections import interval_cell, method_text
from harness.report.view import (
    Glance,
    GlanceCell,
    HeadlineRow,
    RunView,
    Section,
    chart,
    decisive,
    diff_tone,
    mean_value,
    seed_key,
)
from harness.run.store import Record, canonical_json

__all__ = ["PARTS", "render"]

# ---------------------------------------------------------------------------------------------
# bias

#: Gaps of the planted axis charted per attention (all: lower is fairer).
PLANTED_GAPS = ("demographic_parity_difference", "equalized_odds_difference",
                "bias_amplification")
#: Per-group rates charted for the planted axis.
PLANTED_RATES = ("selection_rate", "tpr", "fpr")
_ABSENT = object()
#: Short category names in the charts.
_SHORT = {
    "demographic_parity_difference": "DP diff",
    "equalized_odds_difference": "EO diff",
    "bias_amplification": "amplification",
    "selection_rate": "selection rate",
    "tpr": "TPR",
    "fpr": "FPR",
}


#: The profile's ``multiplicity`` methods in words.
_MULTIPLICITY = {"holm": "Holm", "bh": "Benjamini-Hochberg", "none": "unadjusted"}


def _strength(r: Record) -> float | None:
    value = r.params.get("strength")
    return float(value) if isinstance(value, (int, float)) else None


@dataclass
class _Bias:
    """The bias records of a run, with the planted group and the headline strength.

    The controlled probe plants one group (``params.planted``, e.g. ``gender:female``) at one or
    more strengths; the headline figures are those of the planted axis at the strongest
    planted strength (strength 0 is the no-bias control).
    """

    view: RunView
    records: list[Record]
    planted: str | None = None
    axis: str | None = None
    group: str | None = None
    strengths: list[float] = field(default_factory=list)
    strength: float | None = None
    margin: float | None = None
    #: The profile's multiplicity control of the flags (``holm``, ``bh``, ``none``).
    method: str | None = None
    seeds: list[int] = field(default_factory=list)
    by_metric: dict[str, list[Record]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for r in self.records:
            self.by_metric.setdefault(r.metric, []).append(r)
        controlled = [r for r in self.records if r.params.get("probe") == "controlled"]
        planted = [str(r.params["planted"]) for r in controlled if r.params.get("planted")]
        if planted:
            self.planted = max(set(planted), key=planted.count)
            self.axis, _, group = self.planted.partition(":")
            self.group = group or None
        self.strengths = sorted({s for r in controlled if (s := _strength(r)) is not None})
        self.seeds = sorted({r.params["seed"] for r in self.records
                             if isinstance(r.params.get("seed"), int)})
        measured = {_strength(r) for r in controlled if r.status == "ok"
                    and r.metric == "demographic_parity_difference"
                    and r.params.get("axis") == self.axis}
        self.strength = max((s for s in self.strengths if s in measured),
                            default=max(self.strengths, default=None))
        margin = self.view.suite_params("bias").get("min_increase")
        self.margin = float(margin) if isinstance(margin, (int, float)) else None
        method = self.view.suite_params("bias").get("multiplicity")
        self.method = str(method) if method else None

    @property
    def multiplicity(self) -> str:
        """The multiplicity control in words (the profile's ``multiplicity``)."""
        return _MULTIPLICITY.get(self.method or "", self.method or "adjusted")

    def find(self, metric: str | None, label: str | None = None, *, status: str | None = None,
             **params: Any) -> list[Record]:
        """Records of ``metric`` (and ``label``) whose params hold ``params``; a value of
        ``_ABSENT`` requires the key to be missing."""
        out = []
        for r in self.records if metric is None else self.by_metric.get(metric, []):
            if (label is not None and label_of(r) != label) or \
                    (status is not None and r.status != status):
                continue
            if all(k not in r.params if v is _ABSENT else r.params.get(k) == v
                   for k, v in params.items()):
                out.append(r)
        return out

    def planted_where(self, strength: float | None = None) -> dict[str, Any]:
        """Params selecting the planted axis of the controlled probe (one strength)."""
        return {"probe": "controlled", "axis": self.axis, "group": _ABSENT,
                "strength": self.strength if strength is None else strength}

    def headline(self, label: str, metric: str = "demographic_parity_difference",
                 strength: float | None = None) -> list[Record]:
        """Per-seed records of ``metric`` on the planted axis (cell records, not summaries)."""
        if self.axis is None:
            return []
        return [r for r in self.find(metric, label, **self.planted_where(strength))
                if r.params.get("seed") != "all" and not (r.cell or "").startswith("summary:")]

    def diff(self, label: str, metric: str = "demographic_parity_difference",
             strength: float | None = None) -> list[Record]:
        """The decisive ``<metric>_diff_vs_reference`` records on the planted axis."""
        if self.axis is None:
            return []
        where = {k: v for k, v in self.planted_where(strength).items() if k != "group"}
        return decisive(self.find(f"{metric}_diff_vs_reference", label, **where))

    def is_headline(self, r: Record) -> bool:
        """Whether ``r`` (a flag or a difference) is about the headline figure."""
        p = r.params
        metric = p.get("metric", r.metric.removesuffix("_diff_vs_reference"))
        return (metric == "demographic_parity_difference" and p.get("probe") == "controlled"
                and p.get("axis") == self.axis and _strength(r) == self.strength)

    def where(self, r: Record) -> str:
        """Where a figure was measured, in words: probe, axis or swap, strength, seed."""
        p = r.params
        probe = p.get("probe")
        if probe == "controlled":
            axis = p.get("axis")
            text = f"planted axis {axis}" if axis == self.axis else f"axis {axis}"
        elif probe == "counterfactual":
            text = f"swap {p.get('swap')} {p.get('direction')}"
            if p.get("source") == "text":
                text += " on text data"
        elif probe == "template":
            text = f"templates {_template_name(r)}"
            if "data" in p:
                text += " (text model)"
        else:
            text = format_params({k: v for k, v in p.items()
                                  if k not in ("seed", "ci_method", "metric")})
        if len(self.strengths) > 1 and _strength(r) is not None:
            text += f", strength {_strength(r):g}"
        seed = p.get("seed")
        if seed == "all":
            text += ", mean over seeds"
        elif seed is not None and len(self.seeds) > 1:
            text += f", seed {seed}"
        return text


def _template_name(r: Record) -> str:
    axis, attribute = r.params.get("axis"), r.params.get("attribute")
    where = str(axis) if attribute in (None, axis) else f"{axis} ({attribute})"
    return f"{where}: {r.params.get('comparison', '?')}"


def _flags(bias: _Bias, label: str) -> dict[str, Any]:
    """Every ``significant_increase`` of one attention, counted over the decisive records.

    With several seeds the flags of the ``seed: "all"`` summaries decide; the per-seed flags
    are counted apart (their intervals cover test sampling only).
    """
    every = bias.find("significant_increase", label)
    recs = [r for r in every if r.status == "ok"]
    chosen = decisive(recs)
    tested = [r for r in chosen if r.value is not None]
    raised = [r for r in tested if r.value >= 0.5]  # type: ignore[operator]
    counted = {id(r) for r in chosen}
    per_seed = [r for r in recs if id(r) not in counted and r.value is not None
                and r.value >= 0.5]
    skipped = list(dict.fromkeys(r.error or "(no reason given)" for r in every
                                 if r.status == "skipped"))
    return {"tested": len(tested), "raised": raised, "per_seed": len(per_seed),
            "headline": any(bias.is_headline(r) for r in raised),
            "pooled": any(r.params.get("seed") == "all" for r in chosen),
            "skipped": skipped}


def _p_cells(bias: _Bias, label: str, params: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The raw and the adjusted p-value of one comparison (``params`` as its flag's), the
    adjusted one with its family size (``n``) and the profile's multiplicity method."""
    out = {}
    for key, metric in (("p", "increase_p_value"), ("p_adj", "increase_p_adjusted")):
        recs = decisive([r for r in bias.find(metric, label) if all(
            r.params.get(k) == v for k, v in params.items())])
        cell = bias.view.cell(recs[0]) if len(recs) == 1 else bias.view.seeds_cell(recs)
        if key == "p_adj" and len(recs) == 1 and recs[0].n is not None:
            cell["unc"] = f"{bias.multiplicity} over a family of {recs[0].n}"
            cell["n"] = None
        elif key == "p_adj" and recs:
            cell["unc"] = f"{cell['unc']}; {bias.multiplicity}".lstrip("; ")
        out[key] = cell
    return out


def _flag_rows(bias: _Bias,
               flags: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per raised flag, with the difference (and interval) that raised it."""
    diffs = {(label_of(r), r.metric, canonical_json(r.params)): r
             for r in bias.records if r.metric.endswith("_diff_vs_reference")}
    rows = []
    for label, info in flags.items():
        for f in info["raised"]:
            metric = str(f.params.get("metric", "?"))
            rest = {k: v for k, v in f.params.items() if k != "metric"}
            diff = diffs.get((label, f"{metric}_diff_vs_reference", canonical_json(rest)))
            rows.append({"label": label, "color": bias.view.color(label),
                         "metric": bias.view.display('bias', metric), "where": bias.where(f),
                         "diff": interval_cell(bias.view, diff),
                         "method": method_text(str(f.params.get("ci_method") or "")) or "-",
                         "headline": bias.is_headline(f),
                         **_p_cells(bias, label, dict(f.params))})
    order = {label: i for i, label in enumerate(bias.view.labels)}
    rows.sort(key=lambda x: (order.get(x["label"], 99), not x["headline"], x["metric"],
                             x["where"]))
    return rows


def _data(view: RunView) -> tuple[_Bias, dict[str, Any]] | None:
    records = view.select("bias", status=None)
    if not records:
        return None
    bias = _Bias(view, records)
    labels = [lb for lb in view.labels if any(label_of(r) == lb for r in records)]
    flags = {lb: _flags(bias, lb) for lb in labels if lb != view.reference}
    flags = {lb: f for lb, f in flags.items() if f["tested"] or f["per_seed"] or f["skipped"]}
    rows = []
    for label in labels:
        dp = bias.headline(label)
        if not dp and bias.axis is not None and label not in flags:
            continue
        diff = bias.diff(label)
        info = flags.get(label)
        tests = _p_cells(bias, label, {**diff[0].params, "metric": "demographic_parity_difference"}
                         ) if len(diff) == 1 else {}
        rows.append({
            "label": label, "color": bias.view.color(label), "reference": label == view.reference,
            "accuracy": bias.view.seeds_cell(bias.find("accuracy", label, probe="controlled",
                                              axis="all", strength=bias.strength)),
            "dp": bias.view.seeds_cell(dp),
            "eo": bias.view.seeds_cell(bias.headline(label, "equalized_odds_difference")),
            "ratio": bias.view.seeds_cell(bias.headline(label, "demographic_parity_ratio")),
            "amp": bias.view.seeds_cell(bias.headline(label, "bias_amplification")),
            "assoc": bias.view.seeds_cell(bias.headline(label, "model_association")),
            "diff": interval_cell(bias.view, diff[0]) if len(diff) == 1
            else bias.view.seeds_cell(diff),
            "p": tests.get("p"), "p_adj": tests.get("p_adj"),
            "diff_tone": diff_tone(diff[0], higher_is_better=False) if len(diff) == 1 else "",
            "method": str(diff[0].params.get("ci_method", "")) if diff else "",
            "flags": info,
            "flag_tone": "" if info is None or not info["tested"] else "bad"
            if info["headline"] else "warn" if info["raised"] else "good",
        })
    data_assoc = bias.find("data_association", probe="controlled", axis=bias.axis,
                           strength=bias.strength, status="ok")
    test_n = next((r.n for r in bias.find("accuracy", probe="controlled", axis="all",
                                          strength=bias.strength) if r.n), None)
    charts = [c for c in (_planted_rates_chart(bias, labels),
                          _planted_gaps_chart(bias, labels),
                          _diff_chart(bias, labels),
                          _bias_scatter(bias, labels)) if c is not None]
    probes = [c for c in (
        _flip_chart(bias, labels, "controlled"),
        _flip_chart(bias, labels, "text"),
        _template_chart(bias, labels, text=False),
        _template_chart(bias, labels, text=True)) if c is not None]
    return bias, {
        "planted": bias.planted, "axis": bias.axis, "group": bias.group,
        "strength": None if bias.strength is None else f"{bias.strength:g}",
        "strengths": [f"{s:g}" for s in bias.strengths],
        "seeds": bias.seeds,
        "margin": None if bias.margin is None else f"{bias.margin:g}",
        "data_association": format_value(mean_value(data_assoc), "fraction")
        if data_assoc else None,
        "test_n": test_n,
        "rows": rows,
        "flag_rows": _flag_rows(bias, flags),
        "flags_tested": sum(f["tested"] for f in flags.values()),
        "flags_per_seed": sum(f["per_seed"] for f in flags.values()),
        "flags_skipped": {lb: f["skipped"] for lb, f in flags.items() if f["skipped"]},
        "multiplicity": bias.multiplicity if bias.method else None,
        "alpha": bias.view.suite_params("bias").get("alpha"),
        "pooled": any(f["pooled"] for f in flags.values()),
        "charts": charts, "probe_charts": probes,
        "axes": _axes_table(bias, labels),
        "by_strength": _strength_table(bias, labels),
        "parts": [part for fn in PARTS if (part := fn(view, bias)) is not None],
    }


def _planted_rates_chart(bias: _Bias, labels: list[str]) -> Markup | None:
    if bias.axis is None:
        return None
    groups = list(dict.fromkeys(str(r.params["group"]) for r in bias.find(
        "selection_rate", probe="controlled", axis=bias.axis, strength=bias.strength)
        if "group" in r.params))
    groups.sort(key=lambda g: g != bias.group)  # the planted group first
    cats = [f"{_SHORT.get(m, m)}: {g}" for m in PLANTED_RATES for g in groups]
    series = bias.view.label_series(labels, lambda label: (
        (f"{_SHORT.get(metric, metric)}: {group}",
         bias.find(metric, label, probe="controlled", axis=bias.axis, strength=bias.strength,
                   group=group),
         f"{label} {bias.view.display('bias', metric)} of {group}")
        for metric in PLANTED_RATES for group in groups))
    if not series:
        return None
    return chart(plots.bar_chart(
        cats, series, title=f"Per-group rates on the planted axis ({bias.axis}; 95% CI)",
        y_label="rate (fraction)", x_label=f"{bias.axis} group "
        f"(planted: {bias.group}, strength {bias.strength:g})", y_min=0.0, y_max=1.0))


def _planted_gaps_chart(bias: _Bias, labels: list[str]) -> Markup | None:
    if bias.axis is None:
        return None
    cats = [_SHORT[m] for m in PLANTED_GAPS]
    series = bias.view.label_series(labels, lambda label: (
        (_SHORT[metric], bias.headline(label, metric),
         f"{label} {bias.view.display('bias', metric)}")
        for metric in PLANTED_GAPS))
    if not series:
        return None
    return chart(plots.bar_chart(
        cats, series, title=f"Gaps on the planted axis ({bias.axis}; 95% CI; lower is fairer)",
        y_label="gap (fraction)", x_label="fairness metric"))


def _diff_chart(bias: _Bias, labels: list[str]) -> Markup | None:
    cats = [_SHORT[m] for m in PLANTED_GAPS]
    others = [label for label in labels if label != bias.view.reference]
    pooled = any(r.params.get("seed") == "all" for label in others
                 for metric in PLANTED_GAPS for r in bias.diff(label, metric))
    series = bias.view.label_series(others, lambda label: (
        (_SHORT[metric], bias.diff(label, metric),
         f"{label} {bias.view.display('bias', metric)} minus {bias.view.reference}")
        for metric in PLANTED_GAPS))
    if not series:
        return None
    ref = bias.view.reference or "standard"
    lines = [(bias.margin, f"flag margin +{bias.margin:g}")] if bias.margin else []
    return chart(plots.bar_chart(
        cats, series, title=f"Δ vs {ref} on {bias.axis} (95% CI"
        f"{', mean over seeds' if pooled else ''})",
        y_label=f"variant − {ref} (> 0: more biased)", x_label="fairness metric",
        ref_lines=lines))


def _bias_scatter(bias: _Bias, labels: list[str]) -> Markup | None:
    """Test accuracy and planted-axis DP gap of the same models, one point per attention."""
    points = []
    for label in labels:
        acc = bias.find("accuracy", label, probe="controlled", axis="all",
                        strength=bias.strength)
        dp = bias.headline(label)
        x, y = mean_value(acc), mean_value(dp)
        if x is None or y is None:
            continue
        one = [r for r in dp if r.status == "ok"]
        lo, hi = (one[0].ci_low, one[0].ci_high) if len(one) == 1 else (None, None)
        seeds = f" (mean of {len(one)} seeds)" if len(one) > 1 else ""
        points.append(plots.ScatterPoint(
            label, bias.view.color(label), x, y, y_low=lo, y_high=hi,
            tip=f"{label}: test accuracy {x:.3f}, DP difference {y:.3f}{seeds}"))
    if len(points) < 2:
        return None
    return chart(plots.scatter_chart(
        points, title="Fairness vs accuracy (same models, one point per attention)",
        x_label=f"test accuracy on the bias corpus (strength {bias.strength:g})",
        y_label=f"DP difference on {bias.axis}",
        note="better: right (more accurate) and down (smaller gap)"))


def _flip_chart(bias: _Bias, labels: list[str],
                source: str) -> Markup | None:
    where: dict[str, Any] = {"probe": "counterfactual", "source": source}
    if source == "controlled":
        where["strength"] = bias.strength
    recs = [r for r in bias.find("flip_rate", **where) if r.status == "ok"]
    if not recs:
        return None
    sizes: dict[tuple[Any, Any], Any] = {}  # sentences each swap direction changed
    for r in recs:
        sizes.setdefault((r.params.get("swap"), r.params.get("direction")), r.n or "?")

    def cat(r: Record) -> str:
        swap, direction = r.params.get("swap"), r.params.get("direction")
        return f"{swap}: {direction} (n={sizes[(swap, direction)]})"

    cats = list(dict.fromkeys(cat(r) for r in recs))
    series = bias.view.label_series(labels, lambda label: (
        (c, [r for r in recs if label_of(r) == label and cat(r) == c],
         f"{label} flip rate, swap {c}") for c in cats))
    data = next((str(r.params["data"]) for r in recs if "data" in r.params), "text data")
    on = f"bias corpus, strength {bias.strength:g}" if source == "controlled" else data
    return chart(plots.bar_chart(
        cats, series, title=f"Counterfactual flip rate per swap direction ({on}; 95% CI)",
        y_label="flip rate (fraction)", x_label="swap: direction", y_min=0.0,
        width=1300, height=320))


def _template_chart(bias: _Bias, labels: list[str],
                    text: bool) -> Markup | None:
    recs = [r for r in bias.find("score_difference", probe="template") if r.status == "ok"
            and ("data" in r.params) == text
            and (text or _strength(r) == bias.strength)]
    if not recs:
        return None
    cats = list(dict.fromkeys(_template_name(r) for r in recs))
    series = bias.view.label_series(labels, lambda label: (
        (cat, [r for r in recs if label_of(r) == label and _template_name(r) == cat],
         f"{label} template {cat}") for cat in cats))
    on = next((str(r.params["data"]) for r in recs if "data" in r.params), "text data") \
        if text else f"bias corpus, strength {bias.strength:g}"
    return chart(plots.bar_chart(
        cats, series, title=f"Template probe: mean score difference a − b ({on}; 95% CI; "
        "0 = alike)", y_label="positive-score difference", x_label="template axis: groups a-b",
        width=1300 if len(cats) > 6 else 680, height=320))


def _axes_table(bias: _Bias, labels: list[str]) -> dict[str, Any] | None:
    """DP difference on every audited axis (planted first): the unplanted ones are controls."""
    dps = [r for r in bias.find("demographic_parity_difference", probe="controlled",
                                strength=bias.strength, group=_ABSENT)
           if r.params.get("seed") != "all"]
    axes = list(dict.fromkeys(str(r.params.get("axis")) for r in dps))
    if len(axes) < 2:
        return None
    axes.sort(key=lambda a: a != bias.axis)
    rows = []
    for label in labels:
        cells = [bias.view.seeds_cell([r for r in dps if label_of(r) == label
                              and r.params.get("axis") == axis]) for axis in axes]
        if any(c["status"] != "missing" for c in cells):
            rows.append({"label": label, "color": bias.view.color(label),
                         "reference": label == bias.view.reference, "cells": cells})
    return {"axes": [a + (" (planted)" if a == bias.axis else "") for a in axes], "rows": rows}


def _strength_table(bias: _Bias, labels: list[str]) -> dict[str, Any] | None:
    """Planted-axis DP difference per planted strength (strength 0: the no-bias control)."""
    if len(bias.strengths) < 2 or bias.axis is None:
        return None
    columns = []
    for s in bias.strengths:
        assoc = bias.find("data_association", probe="controlled", axis=bias.axis, strength=s,
                          status="ok")
        columns.append({"strength": f"{s:g}", "assoc": format_value(mean_value(assoc),
                                                                    "fraction")})
    rows = []
    for label in labels:
        cells = [bias.view.seeds_cell(bias.headline(label, strength=s)) for s in bias.strengths]
        if any(c["status"] != "missing" for c in cells):
            rows.append({"label": label, "color": bias.view.color(label),
                         "reference": label == bias.view.reference, "cells": cells})
    return {"columns": columns, "rows": rows}



def _findings(view: RunView, bias: dict[str, Any]) -> list[tuple[str, str]]:
    """A problem per attention whose planted-axis DP difference is significantly above the
    reference's, a warning per attention with other flagged bias comparisons."""
    ref = view.reference or "the reference"
    out = []
    for row in bias["rows"]:
        info = row["flags"]
        if not info:
            continue
        label = row["label"]
        if info["headline"]:
            out.append(("bad", f"{label}: demographic-parity difference on {bias['axis']} "
                               f"(planted {bias['planted']}, strength {bias['strength']}) is "
                               f"significantly higher than {ref}: Δ {row['diff']['text']} "
                               f"{row['diff']['unc']}.".replace(" .", ".")))
        others = [f for f in bias["flag_rows"] if f["label"] == label and not f["headline"]]
        if others:
            shown = "; ".join(f"{f['metric']} ({f['where']})" for f in others[:3])
            more = f"; and {len(others) - 3} more" if len(others) > 3 else ""
            out.append(("warn", f"{label}: {len(others)} other bias comparison(s) of "
                                f"{info['tested']} significantly worse than {ref}: "
                                f"{shown}{more}. See Bias flags."))
    return out


def _flag_text(info: dict[str, Any] | None) -> str:
    """``2 of 212 comparisons flagged`` (``-`` when the attention was not compared)."""
    if not info or not info["tested"]:
        return ""
    n = len(info["raised"])
    scope = " (mean over seeds)" if info["pooled"] else ""
    if not n:
        return f"none of {info['tested']} comparisons flagged{scope}"
    return f"{n} of {info['tested']} comparisons flagged{scope}"


#: Extra blocks of the bias section, rendered in order after the built-in ones.
PARTS: list[Callable[[RunView, _Bias], Markup | None]] = [probe_set_part]


def render(view: RunView) -> Section | None:
    found = _data(view)
    if found is None:
        return None
    bias, data = found
    html = view.template("sections/bias.html", bias=data)
    return Section("bias", "Bias", html, _findings(view, data), _glance(view, data),
                   _headline(bias))


def _glance(view: RunView, data: dict[str, Any]) -> Glance:
    """The planted-axis DP difference, its Δ vs the reference and the flag count."""
    sub = f"planted {data['planted']}, strength {data['strength']} · " if data["planted"] else ""
    glance = Glance(f"bias: DP difference{' on ' + data['axis'] if data['axis'] else ''}",
                    f"{sub}Δ vs {view.reference or 'reference'} · flagged comparisons")
    for b in data["rows"]:
        dp = b["dp"]["text"] if b["dp"]["status"] != "missing" else ""
        if not b["reference"] and b["diff"]["status"] == "ok":
            dp += f" (Δ {b['diff']['text']})"
        glance.cells[b["label"]] = GlanceCell(
            dp.strip() or "-", "reference" if b["reference"] else _flag_text(b["flags"]),
            b["flag_tone"])
    return glance


def _headline(bias: _Bias) -> list[HeadlineRow]:
    """The planted-axis DP difference per attention and seed (the controlled probe's)."""
    metric = "demographic_parity_difference"
    if bias.axis is not None:
        recs = [r for r in bias.find(metric, **bias.planted_where())
                if r.params.get("seed") != "all"]
    else:
        recs = [r for r in bias.find(metric) if "group" not in r.params]
    labels = bias.view.labels
    recs = sorted((r for r in recs if label_of(r) in labels), key=lambda r: (
        labels.index(label_of(r)), seed_key(r), canonical_json(r.params)))
    out = []
    for r in recs:
        p = r.params
        context = (f"{p.get('axis')} (planted {p['planted']}), strength {p.get('strength')}"
                   if p.get("probe") == "controlled" and "planted" in p else
                   format_params(p, ("seed", "kind", "config")))
        out.append(HeadlineRow(r, context, interval_cell(bias.view, r)))
    return out
