"""The HTML report of one run: ``write_report(run_dir)`` -> ``index.html`` + ``summary.csv/.json``.

The report reads only the results store (``run.json`` + ``results.jsonl``) and never re-runs
anything. The page is self-contained: inline CSS, inline SVG charts, no scripts, no external URLs.
Every string taken from the data is escaped (jinja2 autoescape; the SVG helpers escape their text).
Sections of suites absent from the run are left out.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from markupsafe import Markup

from harness.report import plots
from harness.report._common import (
    STATUS_ORDER,
    attention_colors,
    format_params,
    format_uncertainty,
    format_value,
    label_of,
    reference_label,
    render,
    run_header,
)
from harness.run.store import Record, canonical_json, read_records, read_run, resolve_run_dir

__all__ = [
    "HEADLINE_METRICS",
    "SUMMARY_FIELDS",
    "build_summary",
    "render_report",
    "summary_table",
    "write_report",
]

SUITES = ("throughput", "memory", "accuracy", "bias")
HEADLINE_METRICS = {
    "throughput": "forward_ms",
    "memory": "memory_exponent",
    "accuracy": "macro_f1_mean",
    "bias": "demographic_parity_difference",
}
SUMMARY_FIELDS = (
    "suite", "label", "attention", "metric", "context", "value", "unit", "higher_is_better",
    "stderr", "ci_low", "ci_high", "interval", "n", "status", "error", "params",
)
GAP_METRICS = (
    "demographic_parity_difference", "equalized_odds_difference", "bias_amplification",
    "flip_rate", "score_gap", "demographic_parity_ratio",
)
GROUP_METRICS = ("selection_rate", "tpr", "fpr", "accuracy", "f1")
NAMES = {
    "forward_ms": "forward time",
    "fwd_bwd_ms": "forward + backward time",
    "memory_exponent": "memory exponent",
    "macro_f1_mean": "macro-F1 (mean over seeds)",
    "demographic_parity_difference": "demographic-parity difference",
    "equalized_odds_difference": "equalized-odds difference",
    "bias_amplification": "bias amplification",
    "flip_rate": "counterfactual flip rate",
    "score_gap": "score gap",
    "demographic_parity_ratio": "demographic-parity ratio",
    "selection_rate": "selection rate",
    "tpr": "true-positive rate",
    "fpr": "false-positive rate",
    "accuracy": "accuracy",
    "f1": "F1",
}
_SHORT = {
    "demographic_parity_difference": "DP diff",
    "equalized_odds_difference": "EO diff",
    "bias_amplification": "amplification",
    "flip_rate": "flip rate",
    "score_gap": "score gap",
    "demographic_parity_ratio": "DP ratio",
}


# ---------------------------------------------------------------------------------------------
# run model


@dataclass
class _Run:
    """A run's metadata and records with the lookups the sections need."""

    meta: dict[str, Any]
    records: list[Record]
    labels: list[str] = field(default_factory=list)
    attention_of: dict[str, str] = field(default_factory=dict)
    specs: dict[str, dict[str, Any]] = field(default_factory=dict)
    reference: str | None = None

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
        self.reference = reference_label(self.records, self.labels)

    def select(self, suite: str | None = None, metric: str | None = None,
               status: str | None = "ok") -> list[Record]:
        return [
            r for r in self.records
            if (suite is None or r.suite == suite) and (metric is None or r.metric == metric)
            and (status is None or r.status == status)
        ]

    def suites(self) -> list[str]:
        present = {r.suite for r in self.records}
        return [s for s in SUITES if s in present] + sorted(present - set(SUITES))

    def capability(self, label: str, key: str) -> Any:
        """A claimed capability (e.g. ``time_complexity``) from run.json, else the registry."""
        spec = self.specs.get(label, {})
        caps = spec.get("capabilities") if isinstance(spec.get("capabilities"), dict) else {}
        found = caps.get(key, spec.get(key))
        if found is None:
            found = _registry_capability(self.attention_of.get(label, ""), key)
        return found

    def throughput(self) -> list[Record]:
        """Throughput records of one batch size (the largest measured) plus model-level ones.

        Attention-layer cells (``kind`` absent or ``attention``) can sweep several batch sizes;
        plots and headlines use the largest batch so that lines stay comparable.
        """
        records = self.select("throughput", status=None)
        batches = {r.params.get("batch") for r in records
                   if r.metric == "forward_ms" and r.status == "ok" and _is_layer(r)}
        batches.discard(None)
        if len(batches) < 2:
            return records
        chosen = max(batches, key=lambda b: (isinstance(b, (int, float)), b))
        return [r for r in records if not _is_layer(r) or r.params.get("batch", chosen) == chosen]


def _is_layer(r: Record) -> bool:
    return r.params.get("kind", "attention") != "model"


def _registry_capability(name: str, key: str) -> Any:
    """The registered class's claim, when the attention is known to this harness."""
    try:
        from harness.attention import attention_class

        return getattr(attention_class(name).capabilities, key, None)
    except (ImportError, ValueError):
        return None


def _seq_len(r: Record) -> float | None:
    value = r.params.get("seq_len")
    return float(value) if isinstance(value, (int, float)) and value > 0 else None


def _loglog_slope(points: Sequence[tuple[float, float]]) -> tuple[float, float, int] | None:
    """Slope (and its standard error) of log y vs log x over the longest half of the lengths.

    Short lengths are dominated by fixed overheads, so the fit uses the upper half of the
    measured lengths (at least 3 points); None with fewer than 3 positive points.
    """
    pts = sorted((x, y) for x, y in points if x > 0 and y > 0)
    if len(pts) < 3:
        return None
    pts = pts[-max(3, math.ceil(len(pts) / 2)):]
    lx, ly = [math.log(x) for x, _ in pts], [math.log(y) for _, y in pts]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    sxx = sum((a - mx) ** 2 for a in lx)
    if sxx == 0:
        return None
    slope = sum((a - mx) * (b - my) for a, b in zip(lx, ly, strict=True)) / sxx
    res = [b - my - slope * (a - mx) for a, b in zip(lx, ly, strict=True)]
    se = math.sqrt(sum(e * e for e in res) / max(len(pts) - 2, 1) / sxx)
    return slope, se, len(pts)


def _common_length(records: Iterable[Record]) -> float | None:
    """The longest seq_len at which every attention with a measurement has one."""
    by_label: dict[str, set[float]] = {}
    for r in records:
        n = _seq_len(r)
        if n is not None and r.value is not None:
            by_label.setdefault(label_of(r), set()).add(n)
    if not by_label:
        return None
    common = set.intersection(*by_label.values())
    return max(common) if common else None


# ---------------------------------------------------------------------------------------------
# summary table


def _summary_row(r: Record, context: str | None = None) -> dict[str, Any]:
    return {
        "suite": r.suite,
        "label": label_of(r),
        "attention": r.attention,
        "metric": r.metric,
        "context": format_params(r.params, ("kind",)) if context is None else context,
        "value": r.value,
        "unit": r.unit,
        "higher_is_better": r.higher_is_better,
        "stderr": r.stderr,
        "ci_low": r.ci_low,
        "ci_high": r.ci_high,
        "interval": r.interval,
        "n": r.n,
        "status": r.status,
        "error": r.error,
        "params": canonical_json(r.params),
    }


def _headline_records(run: _Run) -> list[Record]:
    out: list[Record] = []
    fwd = [r for r in run.throughput() if r.metric == "forward_ms" and _seq_len(r) is not None]
    if fwd:
        ok = [r for r in fwd if r.status == "ok"]
        common = _common_length(ok)
        for label in run.labels:
            mine = [r for r in fwd if label_of(r) == label]
            if not mine:
                continue
            mine_ok = [r for r in mine if r.status == "ok" and r.value is not None]
            target = common if common is not None else max(
                (_seq_len(r) or 0.0 for r in mine_ok), default=None)
            at = [r for r in (mine_ok or mine) if _seq_len(r) == target] or \
                [max(mine, key=lambda r: _seq_len(r) or 0.0)]
            out.append(at[0])
    for suite in ("memory", "accuracy", "bias"):
        metric = HEADLINE_METRICS[suite]
        recs = [r for r in run.select(suite, metric, None)
                if "group" not in r.params and label_of(r) in run.labels]
        out += sorted(recs, key=lambda r: (run.labels.index(label_of(r)), canonical_json(r.params)))
    return out


def build_summary(records: Sequence[Record], meta: dict[str, Any] | None = None) -> list[dict]:
    """The headline table, one row per attention label x headline metric (x context).

    Headlines (docs/RESULTS.md): throughput ``forward_ms`` at the longest length every attention
    measured, memory ``memory_exponent``, accuracy ``macro_f1_mean``, bias
    ``demographic_parity_difference``. Each row has the value, its unit, stderr / interval, n
    and status; ``context`` names the cell parameters (e.g. ``seq_len=8192, batch=4``).
    """
    run = _Run(meta or {}, list(records))
    return [_summary_row(r) for r in _headline_records(run)]


def summary_table(records: Sequence[Record],
                  meta: dict[str, Any] | None = None) -> list[dict[str, str]]:
    """The headline table as display strings, for printing in a terminal.

    One dict per row with the keys ``attention``, ``suite``, ``metric``, ``at`` (the cell
    parameters), ``value``, ``uncertainty`` and ``n``; empty when no headline metric exists.
    """
    rows = []
    for r in _headline_records(_Run(meta or {}, list(records))):
        ok = r.status == "ok"
        rows.append({
            "attention": label_of(r),
            "suite": r.suite,
            "metric": r.metric,
            "at": format_params(r.params, ("kind",)),
            "value": _format_record_value(r) if ok else r.status,
            "uncertainty": format_uncertainty(r) if ok else (r.error or "")[:80],
            "n": "" if r.n is None else str(r.n),
        })
    return rows


def _write_summary(rows: list[dict], run_dir: Path) -> None:
    with open(run_dir / "summary.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=SUMMARY_FIELDS)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if row[k] is None else row[k] for k in SUMMARY_FIELDS})
    (run_dir / "summary.json").write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")


# ---------------------------------------------------------------------------------------------
# view helpers


def _cell(r: Record | None) -> dict[str, Any]:
    """A table cell: value text, uncertainty text, n and status of one record."""
    if r is None:
        return {"text": "-", "unc": "", "n": None, "status": "missing", "error": ""}
    return {
        "text": _format_record_value(r) if r.status == "ok" else r.status,
        "unc": format_uncertainty(r) if r.status == "ok" else "",
        "n": r.n,
        "status": r.status,
        "error": r.error or "",
    }


def _format_record_value(r: Record) -> str:
    """Differences get an explicit sign; everything else is formatted by its unit."""
    if r.value is not None and r.metric.endswith("_diff_vs_standard"):
        return "±0.000" if round(r.value, 3) == 0 else f"{r.value:+.3f}"
    return format_value(r.value, r.unit)


def _tip(r: Record, prefix: str) -> str:
    unc = format_uncertainty(r)
    n = f", n={r.n}" if r.n is not None else ""
    return f"{prefix}: {format_value(r.value, r.unit)} {unc}{n}".strip()


def _chart(svg: str) -> Markup:
    """Charts are built by harness.report.plots, which escapes every piece of text it writes."""
    return Markup(svg)


def _bytes_format(v: float) -> str:
    for limit, suffix in ((2**40, "TiB"), (2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if v >= limit:
            return f"{v / limit:g} {suffix}"
    return f"{v:g} B"


# ---------------------------------------------------------------------------------------------
# sections


def _throughput_section(run: _Run, colors: dict[str, str]) -> dict[str, Any] | None:
    records = run.throughput()
    if not records:
        return None
    charts = []
    slopes: dict[str, tuple[float, float, int] | None] = {}
    batches = {r.params.get("batch") for r in records if r.metric == "forward_ms"}
    batch_note = f" (batch {batches.pop()})" if len(batches) == 1 else ""
    for metric, title in (("forward_ms", "Forward time vs sequence length"),
                          ("fwd_bwd_ms", "Forward + backward time vs sequence length")):
        recs = [r for r in records if _is_layer(r) and _seq_len(r) is not None
                and (r.metric == metric or (r.metric == "cell_status" and r.status == "oom"))]
        if not any(r.status == "ok" for r in recs):
            continue
        series = []
        for label in run.labels:
            mine = [r for r in recs if label_of(r) == label]
            if not mine:
                continue
            pts = [plots.Point(_seq_len(r), r.value, r.ci_low, r.ci_high,  # type: ignore[arg-type]
                               _tip(r, f"{label} N={_seq_len(r):g}"))
                   for r in mine if r.status == "ok" and r.value is not None]
            fit = _loglog_slope([(p.x, p.y) for p in pts])
            if metric == "forward_ms":
                slopes[label] = fit
            claim = run.capability(label, "time_complexity")
            legend = label + (f" · slope {fit[0]:.2f}" if fit else "")
            legend += f" (claim {claim})" if claim else ""
            series.append(plots.LineSeries(
                legend, colors[label], pts, [_seq_len(r) for r in mine if r.status == "oom"]))  # type: ignore[misc]
        charts.append(_chart(plots.line_chart(
            series, title=title + batch_note, x_label="sequence length N (tokens, log scale)",
            y_label="time per call (ms, log scale)", x_format=plots.format_length)))
    fwd_ok = [r for r in records if r.metric == "forward_ms" and r.status == "ok"]
    common = _common_length(fwd_ok)
    rows = []
    for label in run.labels:
        mine = [r for r in records if label_of(r) == label]
        if not mine:
            continue

        def at(metric: str, mine: list[Record] = mine) -> Record | None:
            found = [r for r in mine if r.metric == metric and _seq_len(r) == common]
            if not found:  # model-level metrics have their own lengths: take the longest
                found = sorted((r for r in mine if r.metric == metric and not _is_layer(r)),
                               key=lambda r: _seq_len(r) or 0.0, reverse=True)
            return found[0] if found else None

        cross = [r for r in mine if r.metric == "crossover_seq_len"]
        fit = slopes.get(label)
        failed = sorted({_seq_len(r) for r in mine
                         if r.status == "oom" and _seq_len(r) and _is_layer(r)})
        rows.append({
            "label": label, "color": colors[label],
            "claim": run.capability(label, "time_complexity") or "-",
            "slope": f"{fit[0]:.2f} ± {fit[1]:.2f}" if fit else "-",
            "slope_n": fit[2] if fit else None,
            "forward": _cell(at("forward_ms")),
            "tokens": _cell(at("forward_tokens_per_s")),
            "train": _cell(at("train_steps_per_s")),
            "infer": _cell(at("inference_tokens_per_s")),
            "crossover": ("reference" if label == run.reference else
                          _cell(cross[0])["text"] if cross else "-"),
            "crossover_none": bool(cross) and cross[0].value is None,
            "oom": ", ".join(plots.format_length(n) for n in failed),
        })
    model = [r for r in records if not _is_layer(r) and r.status == "ok"]
    model_at = format_params(max(model, key=lambda r: _seq_len(r) or 0.0).params, ("kind",)) \
        if model else ""
    return {"charts": charts, "rows": rows, "model_at": model_at,
            "common": f"{common:g}" if common is not None else None}


def _memory_section(run: _Run, colors: dict[str, str]) -> dict[str, Any] | None:
    records = run.select("memory", status=None)
    if not records:
        return None
    peak = [r for r in records if _seq_len(r) is not None and (
        r.metric == "peak_bytes" or (r.metric == "cell_status" and r.status == "oom"))]
    modes = list(dict.fromkeys(str(r.params.get("mode", "")) for r in peak))
    modes.sort(key=lambda m: {"forward": 0, "fwd_bwd": 1}.get(m, 2))
    summary = [r for r in records if r.metric in (
        "memory_exponent", "claimed_exponent", "exponent_matches_claim",
        "max_seq_len_under_budget")]

    def summ(label: str, mode: str, metric: str) -> Record | None:
        for r in summary:
            if label_of(r) == label and r.metric == metric and \
                    str(r.params.get("mode", "")) == mode:
                return r
        return None

    charts = []
    for mode in modes:
        series = []
        for label in run.labels:
            mine = [r for r in peak
                    if label_of(r) == label and str(r.params.get("mode", "")) == mode]
            if not mine:
                continue
            pts = [plots.Point(_seq_len(r), r.value, tip=_tip(r, f"{label} N={_seq_len(r):g}"))  # type: ignore[arg-type]
                   for r in mine if r.status == "ok" and r.value is not None]
            exp, claim = summ(label, mode, "memory_exponent"), summ(label, mode, "claimed_exponent")
            legend = label
            if exp is not None and exp.value is not None:
                legend += f" · fitted {exp.value:.2f}"
            if claim is not None and claim.value is not None:
                legend += f" (claim N^{claim.value:g})"
            series.append(plots.LineSeries(
                legend, colors[label], pts, [_seq_len(r) for r in mine if r.status == "oom"]))  # type: ignore[misc]
        title = f"Peak memory vs sequence length ({mode or 'all'})"
        charts.append(_chart(plots.line_chart(
            series, title=title, x_label="sequence length N (tokens, log scale)",
            y_label="peak memory (log scale)", x_format=plots.format_length, y_format=_bytes_format,
            y_base2=True)))
    rows = []
    summary_modes = list(dict.fromkeys(
        [*modes, *(str(r.params.get("mode", "")) for r in summary)]))
    for label in run.labels:
        for mode in summary_modes:
            exp = summ(label, mode, "memory_exponent")
            if exp is None:
                continue
            claim = summ(label, mode, "claimed_exponent")
            match = summ(label, mode, "exponent_matches_claim")
            budget = summ(label, mode, "max_seq_len_under_budget")
            claim_text = f"N^{claim.value:g}" if claim is not None and claim.value is not None \
                else "-"
            rows.append({
                "label": label, "color": colors[label], "mode": mode or "-",
                "exponent": _cell(exp), "claim": claim_text,
                "complexity": run.capability(label, "memory_complexity") or "-",
                "matches": None if match is None or match.value is None else match.value >= 0.5,
                "budget": _cell(budget),
            })
    return {"charts": charts, "rows": rows}


def _accuracy_section(run: _Run, colors: dict[str, str]) -> dict[str, Any] | None:
    records = run.select("accuracy", status=None)
    if not records:
        return None
    tasks = sorted({str(r.params.get("task", "")) for r in records
                    if r.metric in ("macro_f1", "macro_f1_mean")})

    def find(label: str, task: str, metric: str) -> Record | None:
        for r in records:
            if label_of(r) == label and r.metric == metric and \
                    str(r.params.get("task", "")) == task and "seed" not in r.params:
                return r
        return None

    series = []
    rows = []
    for label in run.labels:
        bars = {}
        for task in tasks:
            seeds = [r for r in records if label_of(r) == label and r.metric == "macro_f1"
                     and str(r.params.get("task", "")) == task]
            ok_seeds = [r.value for r in seeds if r.status == "ok" and r.value is not None]
            mean = find(label, task, "macro_f1_mean")
            if mean is not None and mean.status == "ok" and mean.value is not None:
                bars[task] = plots.Bar(mean.value, mean.ci_low, mean.ci_high,
                                       _tip(mean, f"{label} on {task}"), ok_seeds)
            elif ok_seeds:
                bars[task] = plots.Bar(sum(ok_seeds) / len(ok_seeds), tip=f"{label} on {task}: "
                                       f"mean of {len(ok_seeds)} seeds", dots=ok_seeds)
            if not seeds and mean is None:
                continue
            diff = find(label, task, "macro_f1_diff_vs_standard")
            p = find(label, task, "paired_p_value")
            rows.append({
                "task": task, "label": label, "color": colors[label],
                "f1": _cell(mean), "acc": _cell(find(label, task, "accuracy_mean")),
                "diff": _cell(diff), "p": _cell(p),
                "diff_tone": _diff_tone(diff, higher_is_better=True),
                "fidelity": _cell(find(label, task, "fidelity_rel_error")),
                "swap": _cell(find(label, task, "swap_macro_f1")),
                "seeds_ok": len(ok_seeds), "seeds_failed": len(seeds) - len(ok_seeds),
            })
        if bars:
            series.append(plots.BarSeries(label, colors[label], bars))
    chart = _chart(plots.bar_chart(
        tasks, series, title="Macro-F1 per task (mean over seeds, 95% CI; dots = seeds)",
        y_label="macro-F1", x_label="task", y_min=0.0, y_max=1.0, width=900)) if series else None
    rows.sort(key=lambda r: tasks.index(r["task"]))
    return {"chart": chart, "rows": rows, "tasks": tasks}


def _diff_tone(r: Record | None, higher_is_better: bool) -> str:
    """``bad`` when the interval is entirely on the worse side of 0, ``good`` on the better."""
    if r is None or r.status != "ok" or r.ci_low is None or r.ci_high is None:
        return ""
    if (r.ci_high < 0) if higher_is_better else (r.ci_low > 0):
        return "bad"
    if (r.ci_low > 0) if higher_is_better else (r.ci_high < 0):
        return "good"
    return ""


def _bias_section(run: _Run, colors: dict[str, str],
                  accuracy: list[Record]) -> dict[str, Any] | None:
    records = run.select("bias", status=None)
    if not records:
        return None
    gaps = [r for r in records if r.metric in GAP_METRICS and "group" not in r.params]
    groups = [r for r in records if "group" in r.params]
    diffs = [r for r in records if r.metric.endswith("_diff_vs_standard")]
    flags = [r for r in records if r.metric == "significant_increase"]
    charts = []
    gap_metrics = [m for m in GAP_METRICS if m != "demographic_parity_ratio"
                   and any(r.metric == m and r.status == "ok" for r in gaps)]
    if gap_metrics:
        series = []
        for label in run.labels:
            bars = {}
            for r in gaps:
                if label_of(r) == label and r.status == "ok" and r.value is not None \
                        and r.metric in gap_metrics:
                    bars.setdefault(_SHORT[r.metric], plots.Bar(
                        r.value, r.ci_low, r.ci_high, _tip(r, f"{label} {NAMES[r.metric]}")))
            if bars:
                series.append(plots.BarSeries(label, colors[label], bars))
        charts.append(_chart(plots.bar_chart(
            [_SHORT[m] for m in gap_metrics], series,
            title="Group gaps per attention (95% CI; lower is fairer)",
            y_label="gap (fraction)", x_label="fairness metric")))
    contexts = list(dict.fromkeys(format_params(r.params, ("group",)) for r in groups))
    group_charts = []
    for metric in GROUP_METRICS:
        recs = [r for r in groups if r.metric == metric and r.status == "ok"
                and r.value is not None]
        if not recs:
            continue

        def cat(r: Record) -> str:
            g = str(r.params["group"])
            return g if len(contexts) < 2 else f"{g} ({format_params(r.params, ('group',))})"

        cats = list(dict.fromkeys(cat(r) for r in recs))
        series = []
        for label in run.labels:
            bars = {cat(r): plots.Bar(r.value, r.ci_low, r.ci_high,  # type: ignore[arg-type]
                                      _tip(r, f"{label} {cat(r)}"))
                    for r in recs if label_of(r) == label}
            if bars:
                series.append(plots.BarSeries(label, colors[label], bars))
        group_charts.append(_chart(plots.bar_chart(
            cats, series, title=f"{NAMES.get(metric, metric).capitalize()} per group (95% CI)",
            y_label=f"{NAMES.get(metric, metric)} (fraction)", x_label="group",
            y_min=0.0, y_max=1.0, width=560, height=300)))
    scatter = _fairness_scatter(run, colors, gaps, accuracy)
    rows = []
    for label in run.labels:
        mine = [r for r in gaps if label_of(r) == label]
        if not mine:
            continue
        by_metric = {r.metric: r for r in mine}
        dp_diff = next((r for r in diffs if label_of(r) == label and
                        r.metric == "demographic_parity_difference_diff_vs_standard"), None)
        flag = next((r for r in flags if label_of(r) == label), None)
        rows.append({
            "label": label, "color": colors[label],
            "context": format_params(mine[0].params),
            "gaps": [_cell(by_metric.get(m)) for m in GAP_METRICS],
            "dp_diff": _cell(dp_diff), "dp_tone": _diff_tone(dp_diff, higher_is_better=False),
            "flag": None if flag is None or flag.value is None else flag.value >= 0.5,
            "reference": label == run.reference,
        })
    return {"charts": charts, "group_charts": group_charts, "scatter": scatter, "rows": rows,
            "gap_names": [_SHORT[m] for m in GAP_METRICS]}


def _fairness_scatter(run: _Run, colors: dict[str, str], gaps: list[Record],
                      accuracy: list[Record]) -> Markup | None:
    f1 = [r for r in accuracy if r.metric == "macro_f1_mean" and r.status == "ok"
          and r.value is not None]
    gap_metric = next((m for m in GAP_METRICS if any(
        r.metric == m and r.status == "ok" and r.value is not None for r in gaps)), None)
    if not f1 or gap_metric is None:
        return None
    points = []
    tasks_used: set[str] = set()
    for label in run.labels:
        gap = next((r for r in gaps if label_of(r) == label and r.metric == gap_metric
                    and r.status == "ok" and r.value is not None), None)
        mine = [r for r in f1 if label_of(r) == label]
        if gap is None or not mine:
            continue
        same = [r for r in mine if r.params.get("task") == gap.params.get("task")]
        if same or len(mine) == 1:
            x_rec = (same or mine)[0]
            x, x_lo, x_hi = x_rec.value, x_rec.ci_low, x_rec.ci_high
            tasks_used.add(str(x_rec.params.get("task", "")))
        else:
            x = sum(r.value for r in mine) / len(mine)  # type: ignore[misc]
            x_lo = x_hi = None
            tasks_used.update(str(r.params.get("task", "")) for r in mine)
        points.append(plots.ScatterPoint(
            label, colors[label], x, gap.value, x_lo, x_hi, gap.ci_low, gap.ci_high,  # type: ignore[arg-type]
            f"{label}: macro-F1 {x:.3f}, {NAMES[gap_metric]} {gap.value:.3f}"))
    if not points:
        return None
    task_text = ", ".join(sorted(t for t in tasks_used if t)) or "all tasks"
    x_label = f"macro-F1 (mean over seeds; {task_text}" + (
        ", averaged)" if len(tasks_used) > 1 else ")")
    return _chart(plots.scatter_chart(
        points, title="Fairness vs accuracy (one point per attention)",
        x_label=x_label, y_label=f"{NAMES[gap_metric]}",
        note="better: right (more accurate) and down (smaller gap)"))


def _problems(run: _Run) -> list[dict[str, Any]]:
    seen: dict[tuple, dict[str, Any]] = {}
    for r in run.records:
        if r.status == "ok":
            continue
        key = (r.cell or r.key, r.status, r.error)
        if key in seen:
            seen[key]["metrics"].append(r.metric)
            continue
        label = "(suite summary)" if r.attention == "*" else label_of(r)
        seen[key] = {"status": r.status, "suite": r.suite, "label": label,
                     "params": format_params(r.params), "error": r.error or "(no message)",
                     "metrics": [r.metric]}
    rows = list(seen.values())
    rows.sort(key=lambda p: (STATUS_ORDER.index(p["status"]), p["suite"], p["label"]))
    for p in rows:
        p["metrics"] = ", ".join(p["metrics"]) if len(p["metrics"]) <= 3 else \
            f"{len(p['metrics'])} metrics"
    return rows


# ---------------------------------------------------------------------------------------------
# verdict


def _verdict(run: _Run, colors: dict[str, str], throughput: dict | None, memory: dict | None,
             accuracy: dict | None, bias: dict | None,
             problems: list[dict[str, Any]]) -> dict[str, Any]:
    findings: list[tuple[str, str]] = []
    status = str(run.meta.get("status") or "unknown")
    errors = [p for p in problems if p["status"] == "error"]
    if errors:
        findings.append(("bad", f"{len(errors)} cell(s) failed with an error; see Failed, "
                                "out-of-memory and skipped cells below."))
    if status not in ("finished", "failed"):
        findings.append(("warn", f"The run is {status}: results may be incomplete."))
    for row in (bias or {}).get("rows", []):
        if row["flag"]:
            findings.append(("bad", f"{row['label']}: demographic-parity difference is "
                                    f"significantly higher than {run.reference or 'standard'} "
                                    f"({row['dp_diff']['text']}, {row['dp_diff']['unc']})."))
    for label in run.labels:
        off = [r for r in (memory or {}).get("rows", [])
               if r["label"] == label and r["matches"] is False]
        if off:
            fits = ", ".join(f"N^{r['exponent']['text']} ({r['mode']})" for r in off)
            findings.append(("warn", f"{label}: memory grows as {fits}, not as the claimed "
                                     f"{off[0]['claim']}."))
        worse = [r for r in (accuracy or {}).get("rows", [])
                 if r["label"] == label and r["diff_tone"] == "bad"]
        if worse:
            drops = ", ".join(f"{r['task']} {r['diff']['text']} ({r['diff']['unc']})"
                              for r in worse)
            findings.append(("warn", f"{label}: macro-F1 significantly below "
                                     f"{run.reference or 'standard'} on {drops}."))
    cards = _attention_cards(run, colors, throughput, memory, accuracy, bias, problems)
    if throughput and throughput["common"] and run.reference:
        best = min((c for c in cards if c["speed_ratio"] is not None),
                   key=lambda c: c["forward_ms"] or math.inf, default=None)
        if best is not None and best["label"] != run.reference:
            findings.append(("good", f"Fastest forward at N={throughput['common']}: "
                                     f"{best['label']} ({best['speed']})."))
    bad = sum(tone == "bad" for tone, _ in findings)
    warn = sum(tone == "warn" for tone, _ in findings)
    if bad:
        headline, tone = f"Needs attention: {bad} problem(s), {warn} warning(s)", "bad"
    elif warn:
        headline, tone = f"Usable with caveats: {warn} warning(s)", "warn"
    else:
        headline, tone = "No problems found", "good"
    order = {"bad": 0, "warn": 1, "good": 2}
    findings.sort(key=lambda f: order[f[0]])
    return {"headline": headline, "tone": tone,
            "findings": [{"tone": t, "text": s} for t, s in findings], "cards": cards}


def _attention_cards(run: _Run, colors: dict[str, str], throughput: dict | None,
                     memory: dict | None, accuracy: dict | None, bias: dict | None,
                     problems: list[dict[str, Any]]) -> list[dict[str, Any]]:
    fwd = {r["label"]: r for r in (throughput or {}).get("rows", [])}
    ref_fwd = None
    if run.reference in fwd:
        ref_rec = [r for r in run.throughput() if r.metric == "forward_ms" and r.status == "ok"
                   and label_of(r) == run.reference and throughput
                   and f"{_seq_len(r):g}" == throughput["common"]]
        ref_fwd = ref_rec[0].value if ref_rec else None
    cards = []
    for label in run.labels:
        card: dict[str, Any] = {"label": label, "color": colors[label],
                                "reference": label == run.reference, "speed": "", "speed_tone": "",
                                "speed_ratio": None, "forward_ms": None, "memory": "",
                                "memory_tone": "", "f1": "", "f1_tone": "", "bias": "",
                                "bias_tone": "", "failures": "", "failures_tone": ""}
        row = fwd.get(label)
        if row and row["forward"]["status"] == "ok" and throughput:
            mine = [r for r in run.throughput() if r.metric == "forward_ms" and r.status == "ok"
                    and label_of(r) == label and f"{_seq_len(r):g}" == throughput["common"]]
            ms = mine[0].value if mine else None
            card["forward_ms"] = ms
            if ms and ref_fwd:
                ratio = ref_fwd / ms
                card["speed_ratio"] = ratio
                if label == run.reference:
                    card["speed"] = f"{row['forward']['text']} (reference)"
                else:
                    word = "faster" if ratio >= 1 else "slower"
                    shown = ratio if ratio >= 1 else 1 / ratio
                    card["speed"] = f"{shown:.2g}× {word} ({row['forward']['text']})"
                    card["speed_tone"] = "good" if ratio >= 1.1 else "warn" if ratio < 0.9 else ""
            else:
                card["speed"] = row["forward"]["text"]
        mem = [r for r in (memory or {}).get("rows", []) if r["label"] == label]
        if mem:
            m = mem[0]
            mark = " ✓" if m["matches"] else " ✗" if m["matches"] is False else ""
            card["memory"] = f"N^{m['exponent']['text']} vs claim {m['claim']}{mark} ({m['mode']})"
            card["memory_tone"] = "good" if m["matches"] else "warn" if m["matches"] is False \
                else ""
        acc = [r for r in (accuracy or {}).get("rows", []) if r["label"] == label]
        if acc:
            parts = []
            for r in acc:
                if label != run.reference and r["diff"]["status"] == "ok":
                    parts.append(f"{r['task']} {r['f1']['text']} (Δ {r['diff']['text']})")
                else:
                    parts.append(f"{r['task']} {r['f1']['text']}")
            card["f1"] = "; ".join(parts)
            tones = {r["diff_tone"] for r in acc}
            card["f1_tone"] = "warn" if "bad" in tones else ""
        brow = [r for r in (bias or {}).get("rows", []) if r["label"] == label]
        if brow:
            b = brow[0]
            dp = b["gaps"][0]["text"]
            if not b["reference"] and b["dp_diff"]["status"] == "ok":
                dp += f" (Δ {b['dp_diff']['text']})"
            card["bias"] = dp + (" — significant increase" if b["flag"] else "")
            card["bias_tone"] = "bad" if b["flag"] else "good" if b["flag"] is False else ""
        mine_p = [p for p in problems if p["label"] == label]
        if mine_p:
            counts = {s: sum(p["status"] == s for p in mine_p) for s in STATUS_ORDER[:3]}
            card["failures"] = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
            card["failures_tone"] = "bad" if counts["error"] else ""
        else:
            card["failures"] = "none"
        cards.append(card)
    return cards


# ---------------------------------------------------------------------------------------------
# page


def _summary_view(run: _Run, rows: list[dict], colors: dict[str, str]) -> dict[str, Any]:
    columns: list[tuple[str, str, str]] = []
    cells: dict[tuple[str, tuple[str, str, str]], dict[str, Any]] = {}
    for row in rows:
        context = row["context"]
        if row["suite"] == "throughput":
            context = format_params(json.loads(row["params"]), ("batch", "kind"))
        col = (row["suite"], row["metric"], context)
        if col not in columns:
            columns.append(col)
        record = Record(**{k: row[k] for k in (
            "suite", "attention", "metric", "value", "unit", "higher_is_better", "stderr",
            "ci_low", "ci_high", "interval", "n", "status", "error")}, options={}, params={})
        cells[(row["label"], col)] = _cell(record)
    if any(c[0] == "throughput" for c in columns):
        # one throughput column: the lengths may differ per attention when none is common
        thr = [c for c in columns if c[0] == "throughput"]
        if len(thr) > 1:
            merged = ("throughput", "forward_ms", "longest measured length")
            for (label, col), cell in list(cells.items()):
                if col in thr:
                    cell = {**cell, "unc": f"{cell['unc']} at {col[2]}".strip()}
                    cells[(label, merged)] = cell
            columns = [merged] + [c for c in columns if c[0] != "throughput"]
    direction = {"forward_ms": "lower is better", "memory_exponent": "lower is better",
                 "macro_f1_mean": "higher is better",
                 "demographic_parity_difference": "lower is better"}
    return {
        "columns": [{"suite": s, "metric": NAMES.get(m, m), "context": c,
                     "direction": direction.get(m, "")} for s, m, c in columns],
        "rows": [{"label": label, "color": colors[label], "reference": label == run.reference,
                  "cells": [cells.get((label, col)) for col in columns]}
                 for label in run.labels if any((label, col) in cells for col in columns)],
    }


def _all_records(run: _Run) -> list[dict[str, Any]]:
    out = []
    for suite in run.suites():
        recs = [r for r in run.records if r.suite == suite]
        out.append({"suite": suite, "count": len(recs), "rows": [
            {"label": label_of(r), "metric": r.metric, "params": format_params(r.params),
             "cell": _cell(r)} for r in recs]})
    return out


def _environment(meta: dict[str, Any]) -> dict[str, Any]:
    skip = {"environment", "profile", "attentions", "counts"}
    run_rows = []
    for key, value in meta.items():
        if key in skip:
            continue
        if isinstance(value, list):
            value = " ".join(str(v) for v in value) if key == "command" else \
                ", ".join(str(v) for v in value) or "-"
        elif isinstance(value, dict):
            value = canonical_json(value)
        run_rows.append((key, "-" if value is None else str(value)))
    env = meta.get("environment") or {}
    env_rows = [(k, "-" if v is None else str(v)) for k, v in env.items()]
    specs = []
    for spec in meta.get("attentions") or []:
        if isinstance(spec, dict):
            specs.append({"label": str(spec.get("label", "")), "name": str(spec.get("name", "")),
                          "options": canonical_json(spec.get("options", {})),
                          "capabilities": canonical_json(spec.get("capabilities", {}))
                          if spec.get("capabilities") else ""})
    profile = meta.get("profile")
    return {"run": run_rows, "env": env_rows, "specs": specs,
            "profile": json.dumps(profile, indent=2, default=str) if profile else ""}


def render_report(meta: dict[str, Any], records: Sequence[Record]) -> str:
    """The report page as an HTML string (what ``write_report`` writes to ``index.html``)."""
    run = _Run(meta, list(records))
    colors = attention_colors(meta, run.records)
    summary_rows = [_summary_row(r) for r in _headline_records(run)]
    throughput = _throughput_section(run, colors)
    memory = _memory_section(run, colors)
    accuracy = _accuracy_section(run, colors)
    bias = _bias_section(run, colors, run.select("accuracy", status=None))
    problems = _problems(run)
    counts = {s: sum(r.status == s for r in run.records) for s in ("ok", *STATUS_ORDER[:3])}
    cells = {s: len({(r.cell or r.key) for r in run.records if r.status == s})
             for s in ("ok", *STATUS_ORDER[:3])}
    return render(
        "report.html",
        header=run_header(meta),
        counts=counts,
        cells=cells,
        n_records=len(run.records),
        suites=run.suites(),
        reference=run.reference,
        verdict=_verdict(run, colors, throughput, memory, accuracy, bias, problems),
        summary=_summary_view(run, summary_rows, colors),
        throughput=throughput,
        memory=memory,
        accuracy=accuracy,
        bias=bias,
        problems=problems,
        all_records=_all_records(run),
        environment=_environment(meta),
    )


def write_report(run_dir: str | Path) -> Path:
    """Write ``index.html``, ``summary.csv`` and ``summary.json`` into the run directory.

    Reads only ``run.json`` and ``results.jsonl``; raises ``StoreError`` when they are missing,
    corrupt or of another schema version. Returns the path of ``index.html``.
    """
    run_dir = resolve_run_dir(run_dir)
    meta = read_run(run_dir)
    records = read_records(run_dir)
    _write_summary(build_summary(records, meta), run_dir)
    page = run_dir / "index.html"
    page.write_text(render_report(meta, records), encoding="utf-8")
    return page
