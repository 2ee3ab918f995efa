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
from dataclasses import dataclass, field, replace
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
from harness.report.probes import render_probe_section
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
    "model_association": "model association",
    "score_difference": "score difference",
    "worst_case_accuracy": "worst-case accuracy",
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
    "selection_rate": "selection rate",
    "tpr": "TPR",
    "fpr": "FPR",
}
#: Cell parameters left out of displayed contexts (hashes, not settings a reader compares).
HIDDEN_PARAMS = ("kind", "config")


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
        if self.reference is not None:  # the reference leads every table
            self.labels = [self.reference] + [lb for lb in self.labels if lb != self.reference]

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
        "context": format_params(r.params, HIDDEN_PARAMS) if context is None else context,
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
        if suite == "bias":
            bias = _Bias(run, run.select("bias", status=None))
            if bias.axis is not None:  # the planted axis of the controlled probe only
                planted = {id(r) for r in bias.find(metric, **bias.planted_where())}
                recs = [r for r in recs if id(r) in planted and r.params.get("seed") != "all"]
        out += sorted(recs, key=lambda r: (run.labels.index(label_of(r)), _seed_key(r),
                                           canonical_json(r.params)))
    return out


def build_summary(records: Sequence[Record], meta: dict[str, Any] | None = None) -> list[dict]:
    """The headline table, one row per attention label x headline metric (x context).

    Headlines (docs/RESULTS.md): throughput ``forward_ms`` at the longest length every attention
    measured, memory ``memory_exponent``, accuracy ``macro_f1_mean``, bias
    ``demographic_parity_difference`` on the planted axis of the controlled probe at its
    strongest planted strength (one row per seed). Each row has the value, its unit, stderr /
    interval, n and status; ``context`` names the cell parameters (e.g. ``seq_len=8192, batch=4``).
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
            "at": format_params(r.params, HIDDEN_PARAMS),
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
    """Macro-F1 per task and attention; a task no attention could run is a note, not a row."""
    records = run.select("accuracy", status=None)
    if not records:
        return None
    all_tasks = sorted({str(r.params.get("task", "")) for r in records
                        if r.metric in ("macro_f1", "macro_f1_mean")})
    tasks = [t for t in all_tasks if any(
        r.status == "ok" and str(r.params.get("task", "")) == t for r in records)]
    skipped = []
    for task in all_tasks:
        if task not in tasks:
            why = next((r for r in records if str(r.params.get("task", "")) == task), None)
            skipped.append({"task": task, "status": why.status if why else "missing",
                            "error": (why.error if why else None) or "(no message)"})

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
            mine = [r for r in records if label_of(r) == label
                    and str(r.params.get("task", "")) == task and "seed" in r.params]
            seeds = [r for r in mine if r.metric == "macro_f1"]
            ok = [r for r in seeds if r.status == "ok" and r.value is not None]
            ok_values = [float(r.value) for r in ok]  # type: ignore[arg-type]
            mean = find(label, task, "macro_f1_mean")
            shown = ok[0] if len(ok) == 1 and (mean is None or mean.ci_low is None) else mean
            if shown is not None and shown.status == "ok" and shown.value is not None:
                bars[task] = plots.Bar(shown.value, shown.ci_low, shown.ci_high,
                                       _tip(shown, f"{label} on {task}"),
                                       ok_values if len(ok_values) > 1 else [])
            elif ok_values:
                bars[task] = plots.Bar(sum(ok_values) / len(ok_values), tip=f"{label} on "
                                       f"{task}: mean of {len(ok_values)} seeds", dots=ok_values)
            if not seeds and mean is None:
                continue
            diff = find(label, task, "macro_f1_diff_vs_standard")
            p = find(label, task, "paired_p_value")
            rows.append({
                "task": task, "label": label, "color": colors[label],
                "f1": _mean_cell(mean, seeds),
                "acc": _mean_cell(find(label, task, "accuracy_mean"),
                                  [r for r in mine if r.metric == "accuracy"]),
                "diff": _cell(diff), "p": _cell(p),
                "diff_tone": _diff_tone(diff, higher_is_better=True),
                "fidelity": _cell(find(label, task, "fidelity_rel_error")),
                "swap": _cell(find(label, task, "swap_macro_f1")),
                "seeds_ok": len(ok),
                "seeds_failed": sum(r.status in ("error", "oom") for r in seeds),
                "seeds_skipped": sum(r.status == "skipped" for r in seeds),
            })
        if bars:
            series.append(plots.BarSeries(label, colors[label], bars))
    chart = _chart(plots.bar_chart(
        tasks, series, title="Macro-F1 per task (mean over seeds, 95% CI; dots = seeds)",
        y_label="macro-F1", x_label="task", y_min=0.0, y_max=1.0, width=900)) if series else None
    rows.sort(key=lambda r: tasks.index(r["task"]))
    return {"chart": chart, "rows": rows, "tasks": tasks, "skipped": skipped}


def _mean_cell(mean: Record | None, seeds: Sequence[Record]) -> dict[str, Any]:
    """A mean over seeds; from one seed (no t-interval), that seed's interval over test
    examples instead, so that the figure still carries its uncertainty."""
    ok = [r for r in seeds if r.status == "ok" and r.value is not None]
    if len(ok) == 1 and (mean is None or mean.ci_low is None) and ok[0].ci_low is not None:
        cell = _cell(ok[0])
        cell["unc"] = f"{cell['unc']} (1 seed; over test examples)"
        return cell
    return _cell(mean)


def _diff_tone(r: Record | None, higher_is_better: bool) -> str:
    """``bad`` when the interval is entirely on the worse side of 0, ``good`` on the better."""
    if r is None or r.status != "ok" or r.ci_low is None or r.ci_high is None:
        return ""
    if (r.ci_high < 0) if higher_is_better else (r.ci_low > 0):
        return "bad"
    if (r.ci_low > 0) if higher_is_better else (r.ci_high < 0):
        return "good"
    return ""


# ---------------------------------------------------------------------------------------------
# bias

#: Gaps of the planted axis charted per attention (all: lower is fairer).
PLANTED_GAPS = ("demographic_parity_difference", "equalized_odds_difference",
                "bias_amplification")
#: Per-group rates charted for the planted axis.
PLANTED_RATES = ("selection_rate", "tpr", "fpr")
_ABSENT = object()


def _strength(r: Record) -> float | None:
    value = r.params.get("strength")
    return float(value) if isinstance(value, (int, float)) else None


def _seed_key(r: Record) -> tuple[int, Any]:
    seed = r.params.get("seed")
    return (0, seed) if isinstance(seed, (int, float)) else (1, str(seed))


def _decisive(records: list[Record]) -> list[Record]:
    """The records a decision rests on: the ``seed: "all"`` ones when present (their interval
    covers training randomness too), else every per-seed record."""
    pooled = [r for r in records if r.params.get("seed") == "all"]
    return pooled or records


def _fmt_like(r: Record, value: float) -> str:
    """``value`` formatted the way ``r``'s own value would be."""
    return _format_record_value(replace(r, value=value))


def _seeds_cell(records: list[Record]) -> dict[str, Any]:
    """A table cell for one figure measured once per seed: the value itself for one seed, the
    mean with the range over seeds for several (each seed's own interval is in the records)."""
    recs = sorted(records, key=_seed_key)
    ok = [r for r in recs if r.status == "ok" and r.value is not None]
    if len(recs) <= 1 or not ok:
        return _cell(recs[0] if recs else None)
    if len(ok) == 1:
        cell = _cell(ok[0])
        cell["unc"] = f"{cell['unc']} (1 of {len(recs)} seeds)".strip()
        return cell
    values = [r.value for r in ok]  # type: ignore[misc]
    lo, hi = min(values), max(values)  # type: ignore[type-var]
    unc = f"mean of {len(ok)} seeds, range [{_fmt_like(ok[0], lo)}, {_fmt_like(ok[0], hi)}]"
    if len(ok) < len(recs):
        unc += f"; {len(recs) - len(ok)} seed(s) not ok"
    return {"text": _fmt_like(ok[0], sum(values) / len(values)), "unc": unc,  # type: ignore[arg-type]
            "n": None, "status": "ok", "error": ""}


def _label_series(labels: list[str], colors: dict[str, str], rows) -> list[plots.BarSeries]:
    """One bar series per attention label. ``rows(label)`` yields (category, records, tip prefix);
    a category with no value is left out, and a label with no bar at all is dropped."""
    series = []
    for label in labels:
        bars = {}
        for cat, recs, prefix in rows(label):
            bar = _seeds_bar(recs, prefix)
            if bar is not None:
                bars[cat] = bar
        if bars:
            series.append(plots.BarSeries(label, colors[label], bars))
    return series


def _seeds_bar(records: list[Record], prefix: str) -> plots.Bar | None:
    """A bar for one figure over seeds: value and 95% CI for one seed, mean with a dot per
    seed for several; None when no seed has a value."""
    ok = sorted((r for r in records if r.status == "ok" and r.value is not None), key=_seed_key)
    if not ok:
        return None
    if len(ok) == 1:
        r = ok[0]
        return plots.Bar(r.value, r.ci_low, r.ci_high, _tip(r, prefix))  # type: ignore[arg-type]
    values = [float(r.value) for r in ok]  # type: ignore[arg-type]
    mean = sum(values) / len(values)
    shown = ", ".join(_fmt_like(ok[0], v) for v in values)
    return plots.Bar(mean, tip=f"{prefix}: mean {_fmt_like(ok[0], mean)} over {len(ok)} seeds"
                               f" ({shown})", dots=values)


def _mean_value(records: list[Record]) -> float | None:
    values = [float(r.value) for r in records if r.status == "ok" and r.value is not None]
    return sum(values) / len(values) if values else None


@dataclass
class _Bias:
    """The bias records of a run, with the planted group and the headline strength.

    The controlled probe plants one group (``params.planted``, e.g. ``gender:female``) at one or
    more strengths; the headline figures are those of the planted axis at the strongest
    planted strength (strength 0 is the no-bias control).
    """

    run: _Run
    records: list[Record]
    planted: str | None = None
    axis: str | None = None
    group: str | None = None
    strengths: list[float] = field(default_factory=list)
    strength: float | None = None
    margin: float | None = None
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
        profile = self.run.meta.get("profile")
        suites = profile.get("suites") if isinstance(profile, dict) else None
        params = suites.get("bias") if isinstance(suites, dict) else None
        margin = params.get("min_increase") if isinstance(params, dict) else None
        self.margin = float(margin) if isinstance(margin, (int, float)) else None

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
        """The decisive ``<metric>_diff_vs_standard`` records on the planted axis."""
        if self.axis is None:
            return []
        where = {k: v for k, v in self.planted_where(strength).items() if k != "group"}
        return _decisive(self.find(f"{metric}_diff_vs_standard", label, **where))

    def is_headline(self, r: Record) -> bool:
        """Whether ``r`` (a flag or a difference) is about the headline figure."""
        p = r.params
        metric = p.get("metric", r.metric.removesuffix("_diff_vs_standard"))
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
    recs = [r for r in bias.find("significant_increase", label) if r.status == "ok"]
    decisive = _decisive(recs)
    tested = [r for r in decisive if r.value is not None]
    raised = [r for r in tested if r.value >= 0.5]  # type: ignore[operator]
    counted = {id(r) for r in decisive}
    per_seed = [r for r in recs if id(r) not in counted and r.value is not None
                and r.value >= 0.5]
    return {"tested": len(tested), "raised": raised, "per_seed": len(per_seed),
            "headline": any(bias.is_headline(r) for r in raised),
            "pooled": any(r.params.get("seed") == "all" for r in decisive)}


def _flag_rows(bias: _Bias, colors: dict[str, str],
               flags: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per raised flag, with the difference (and interval) that raised it."""
    diffs = {(label_of(r), r.metric, canonical_json(r.params)): r
             for r in bias.records if r.metric.endswith("_diff_vs_standard")}
    rows = []
    for label, info in flags.items():
        for f in info["raised"]:
            metric = str(f.params.get("metric", "?"))
            rest = {k: v for k, v in f.params.items() if k != "metric"}
            diff = diffs.get((label, f"{metric}_diff_vs_standard", canonical_json(rest)))
            rows.append({"label": label, "color": colors[label],
                         "metric": NAMES.get(metric, metric), "where": bias.where(f),
                         "diff": _cell(diff),
                         "method": str(f.params.get("ci_method", "-")),
                         "headline": bias.is_headline(f)})
    order = {label: i for i, label in enumerate(bias.run.labels)}
    rows.sort(key=lambda x: (order.get(x["label"], 99), not x["headline"], x["metric"],
                             x["where"]))
    return rows


def _bias_section(run: _Run, colors: dict[str, str]) -> dict[str, Any] | None:
    records = run.select("bias", status=None)
    if not records:
        return None
    bias = _Bias(run, records)
    labels = [lb for lb in run.labels if any(label_of(r) == lb for r in records)]
    flags = {lb: _flags(bias, lb) for lb in labels if lb != run.reference}
    flags = {lb: f for lb, f in flags.items() if f["tested"] or f["per_seed"]}
    rows = []
    for label in labels:
        dp = bias.headline(label)
        if not dp and bias.axis is not None and label not in flags:
            continue
        diff = bias.diff(label)
        info = flags.get(label)
        rows.append({
            "label": label, "color": colors[label], "reference": label == run.reference,
            "accuracy": _seeds_cell(bias.find("accuracy", label, probe="controlled",
                                              axis="all", strength=bias.strength)),
            "dp": _seeds_cell(dp),
            "eo": _seeds_cell(bias.headline(label, "equalized_odds_difference")),
            "ratio": _seeds_cell(bias.headline(label, "demographic_parity_ratio")),
            "amp": _seeds_cell(bias.headline(label, "bias_amplification")),
            "assoc": _seeds_cell(bias.headline(label, "model_association")),
            "diff": _seeds_cell(diff),
            "diff_tone": _diff_tone(diff[0], higher_is_better=False) if len(diff) == 1 else "",
            "method": str(diff[0].params.get("ci_method", "")) if diff else "",
            "flags": info,
            "flag_tone": "" if info is None else "bad" if info["headline"] else
            "warn" if info["raised"] else "good",
        })
    data_assoc = bias.find("data_association", probe="controlled", axis=bias.axis,
                           strength=bias.strength, status="ok")
    test_n = next((r.n for r in bias.find("accuracy", probe="controlled", axis="all",
                                          strength=bias.strength) if r.n), None)
    charts = [c for c in (_planted_rates_chart(bias, labels, colors),
                          _planted_gaps_chart(bias, labels, colors),
                          _diff_chart(bias, labels, colors),
                          _bias_scatter(bias, labels, colors)) if c is not None]
    probes = [c for c in (
        _flip_chart(bias, labels, colors, "controlled"),
        _flip_chart(bias, labels, colors, "text"),
        _template_chart(bias, labels, colors, text=False),
        _template_chart(bias, labels, colors, text=True)) if c is not None]
    return {
        "planted": bias.planted, "axis": bias.axis, "group": bias.group,
        "strength": None if bias.strength is None else f"{bias.strength:g}",
        "strengths": [f"{s:g}" for s in bias.strengths],
        "seeds": bias.seeds,
        "margin": None if bias.margin is None else f"{bias.margin:g}",
        "data_association": format_value(_mean_value(data_assoc), "fraction")
        if data_assoc else None,
        "test_n": test_n,
        "rows": rows,
        "flag_rows": _flag_rows(bias, colors, flags),
        "flags_tested": sum(f["tested"] for f in flags.values()),
        "flags_per_seed": sum(f["per_seed"] for f in flags.values()),
        "pooled": any(f["pooled"] for f in flags.values()),
        "charts": charts, "probe_charts": probes,
        "axes": _axes_table(bias, labels, colors),
        "by_strength": _strength_table(bias, labels, colors),
    }


def _planted_rates_chart(bias: _Bias, labels: list[str], colors: dict[str, str]) -> Markup | None:
    if bias.axis is None:
        return None
    groups = list(dict.fromkeys(str(r.params["group"]) for r in bias.find(
        "selection_rate", probe="controlled", axis=bias.axis, strength=bias.strength)
        if "group" in r.params))
    groups.sort(key=lambda g: g != bias.group)  # the planted group first
    cats = [f"{_SHORT.get(m, m)}: {g}" for m in PLANTED_RATES for g in groups]
    series = _label_series(labels, colors, lambda label: (
        (f"{_SHORT.get(metric, metric)}: {group}",
         bias.find(metric, label, probe="controlled", axis=bias.axis, strength=bias.strength,
                   group=group),
         f"{label} {NAMES.get(metric, metric)} of {group}")
        for metric in PLANTED_RATES for group in groups))
    if not series:
        return None
    return _chart(plots.bar_chart(
        cats, series, title=f"Per-group rates on the planted axis ({bias.axis}; 95% CI)",
        y_label="rate (fraction)", x_label=f"{bias.axis} group "
        f"(planted: {bias.group}, strength {bias.strength:g})", y_min=0.0, y_max=1.0))


def _planted_gaps_chart(bias: _Bias, labels: list[str], colors: dict[str, str]) -> Markup | None:
    if bias.axis is None:
        return None
    cats = [_SHORT[m] for m in PLANTED_GAPS]
    series = _label_series(labels, colors, lambda label: (
        (_SHORT[metric], bias.headline(label, metric), f"{label} {NAMES[metric]}")
        for metric in PLANTED_GAPS))
    if not series:
        return None
    return _chart(plots.bar_chart(
        cats, series, title=f"Gaps on the planted axis ({bias.axis}; 95% CI; lower is fairer)",
        y_label="gap (fraction)", x_label="fairness metric"))


def _diff_chart(bias: _Bias, labels: list[str], colors: dict[str, str]) -> Markup | None:
    cats = [_SHORT[m] for m in PLANTED_GAPS]
    others = [label for label in labels if label != bias.run.reference]
    pooled = any(r.params.get("seed") == "all" for label in others
                 for metric in PLANTED_GAPS for r in bias.diff(label, metric))
    series = _label_series(others, colors, lambda label: (
        (_SHORT[metric], bias.diff(label, metric),
         f"{label} {NAMES[metric]} minus {bias.run.reference}")
        for metric in PLANTED_GAPS))
    if not series:
        return None
    ref = bias.run.reference or "standard"
    lines = [(bias.margin, f"flag margin +{bias.margin:g}")] if bias.margin else []
    return _chart(plots.bar_chart(
        cats, series, title=f"Δ vs {ref} on {bias.axis} (95% CI"
        f"{', mean over seeds' if pooled else ''})",
        y_label=f"variant − {ref} (> 0: more biased)", x_label="fairness metric",
        ref_lines=lines))


def _bias_scatter(bias: _Bias, labels: list[str], colors: dict[str, str]) -> Markup | None:
    """Test accuracy and planted-axis DP gap of the same models, one point per attention."""
    points = []
    for label in labels:
        acc = bias.find("accuracy", label, probe="controlled", axis="all",
                        strength=bias.strength)
        dp = bias.headline(label)
        x, y = _mean_value(acc), _mean_value(dp)
        if x is None or y is None:
            continue
        one = [r for r in dp if r.status == "ok"]
        lo, hi = (one[0].ci_low, one[0].ci_high) if len(one) == 1 else (None, None)
        seeds = f" (mean of {len(one)} seeds)" if len(one) > 1 else ""
        points.append(plots.ScatterPoint(
            label, colors[label], x, y, y_low=lo, y_high=hi,
            tip=f"{label}: test accuracy {x:.3f}, DP difference {y:.3f}{seeds}"))
    if len(points) < 2:
        return None
    return _chart(plots.scatter_chart(
        points, title="Fairness vs accuracy (same models, one point per attention)",
        x_label=f"test accuracy on the bias corpus (strength {bias.strength:g})",
        y_label=f"DP difference on {bias.axis}",
        note="better: right (more accurate) and down (smaller gap)"))


def _flip_chart(bias: _Bias, labels: list[str], colors: dict[str, str],
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
    series = _label_series(labels, colors, lambda label: (
        (c, [r for r in recs if label_of(r) == label and cat(r) == c],
         f"{label} flip rate, swap {c}") for c in cats))
    data = next((str(r.params["data"]) for r in recs if "data" in r.params), "text data")
    on = f"bias corpus, strength {bias.strength:g}" if source == "controlled" else data
    return _chart(plots.bar_chart(
        cats, series, title=f"Counterfactual flip rate per swap direction ({on}; 95% CI)",
        y_label="flip rate (fraction)", x_label="swap: direction", y_min=0.0,
        width=1300, height=320))


def _template_chart(bias: _Bias, labels: list[str], colors: dict[str, str],
                    text: bool) -> Markup | None:
    recs = [r for r in bias.find("score_difference", probe="template") if r.status == "ok"
            and ("data" in r.params) == text
            and (text or _strength(r) == bias.strength)]
    if not recs:
        return None
    cats = list(dict.fromkeys(_template_name(r) for r in recs))
    series = _label_series(labels, colors, lambda label: (
        (cat, [r for r in recs if label_of(r) == label and _template_name(r) == cat],
         f"{label} template {cat}") for cat in cats))
    on = next((str(r.params["data"]) for r in recs if "data" in r.params), "text data") \
        if text else f"bias corpus, strength {bias.strength:g}"
    return _chart(plots.bar_chart(
        cats, series, title=f"Template probe: mean score difference a − b ({on}; 95% CI; "
        "0 = alike)", y_label="positive-score difference", x_label="template axis: groups a-b",
        width=1300 if len(cats) > 6 else 680, height=320))


def _axes_table(bias: _Bias, labels: list[str], colors: dict[str, str]) -> dict[str, Any] | None:
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
        cells = [_seeds_cell([r for r in dps if label_of(r) == label
                              and r.params.get("axis") == axis]) for axis in axes]
        if any(c["status"] != "missing" for c in cells):
            rows.append({"label": label, "color": colors[label],
                         "reference": label == bias.run.reference, "cells": cells})
    return {"axes": [a + (" (planted)" if a == bias.axis else "") for a in axes], "rows": rows}


def _strength_table(bias: _Bias, labels: list[str],
                    colors: dict[str, str]) -> dict[str, Any] | None:
    """Planted-axis DP difference per planted strength (strength 0: the no-bias control)."""
    if len(bias.strengths) < 2 or bias.axis is None:
        return None
    columns = []
    for s in bias.strengths:
        assoc = bias.find("data_association", probe="controlled", axis=bias.axis, strength=s,
                          status="ok")
        columns.append({"strength": f"{s:g}", "assoc": format_value(_mean_value(assoc),
                                                                    "fraction")})
    rows = []
    for label in labels:
        cells = [_seeds_cell(bias.headline(label, strength=s)) for s in bias.strengths]
        if any(c["status"] != "missing" for c in cells):
            rows.append({"label": label, "color": colors[label],
                         "reference": label == bias.run.reference, "cells": cells})
    return {"columns": columns, "rows": rows}


def _problems(run: _Run) -> list[dict[str, Any]]:
    """Non-ok records, one row per cell and status and message.

    Records of one cell that share a metric and a status but differ in message (e.g. every
    swap direction skipped for want of sentences) fold into one row that counts them.
    """
    seen: dict[tuple, dict[str, Any]] = {}
    for r in run.records:
        if r.status not in STATUS_ORDER or r.status == "ok":
            continue
        key = (r.cell or r.key, r.status, r.error)
        if key in seen:
            seen[key]["metrics"].append(r.metric)
            continue
        label = "(suite summary)" if r.attention == "*" else label_of(r)
        seen[key] = {"status": r.status, "suite": r.suite, "label": label,
                     "params": format_params(r.params), "error": r.error or "(no message)",
                     "metrics": [r.metric], "raw": r}
    folded: dict[tuple, dict[str, Any]] = {}
    for p in seen.values():
        r = p.pop("raw")
        key = (r.cell, r.status, tuple(p["metrics"])) if r.cell else (id(p),)
        if key not in folded:
            folded[key] = {**p, "similar": 0, "_params": dict(r.params), "_vary": set()}
            continue
        first = folded[key]
        first["similar"] += 1
        first["_vary"] |= {k for k, v in first["_params"].items() if r.params.get(k) != v}
    rows = list(folded.values())
    for p in rows:
        params, vary = p.pop("_params"), p.pop("_vary")
        if p["similar"]:
            p["params"] = ", ".join(f"{k}={'*' if k in vary else v}" for k, v in params.items())
            p["error"] += f" (and {p['similar']} more like it)"
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
    findings += _bias_findings(run, bias)
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


def _bias_findings(run: _Run, bias: dict | None) -> list[tuple[str, str]]:
    """A problem per attention whose planted-axis DP difference is significantly above the
    reference's, a warning per attention with other flagged bias comparisons."""
    if not bias:
        return []
    ref = run.reference or "standard"
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
                                "bias_sub": "", "bias_tone": "", "failures": "",
                                "failures_tone": ""}
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
            dp = b["dp"]["text"] if b["dp"]["status"] != "missing" else ""
            if not b["reference"] and b["diff"]["status"] == "ok":
                dp += f" (Δ {b['diff']['text']})"
            card["bias"] = dp.strip()
            card["bias_sub"] = "reference" if b["reference"] else _flag_text(b["flags"])
            card["bias_tone"] = b["flag_tone"]
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


def _summary_context(row: dict[str, Any]) -> str:
    """A summary column's context: the cell parameters a reader compares (seeds merge)."""
    params = json.loads(row["params"])
    if row["suite"] == "throughput":
        return format_params(params, ("batch", *HIDDEN_PARAMS))
    if row["suite"] == "bias" and params.get("probe") == "controlled" and "planted" in params:
        return (f"{params.get('axis')} (planted {params['planted']}), "
                f"strength {params.get('strength')}")
    return format_params(params, ("seed", *HIDDEN_PARAMS))


def _summary_view(run: _Run, rows: list[dict], colors: dict[str, str]) -> dict[str, Any]:
    columns: list[tuple[str, str, str]] = []
    grouped: dict[tuple[str, tuple[str, str, str]], list[Record]] = {}
    for row in rows:
        col = (row["suite"], row["metric"], _summary_context(row))
        if col not in columns:
            columns.append(col)
        record = Record(**{k: row[k] for k in (
            "suite", "attention", "metric", "value", "unit", "higher_is_better", "stderr",
            "ci_low", "ci_high", "interval", "n", "status", "error")}, options={},
            params=json.loads(row["params"]))
        grouped.setdefault((row["label"], col), []).append(record)
    cells = {key: _seeds_cell(recs) for key, recs in grouped.items()}
    for (label, col), recs in grouped.items():
        if col[:2] == ("accuracy", "macro_f1_mean") and len(recs) == 1:
            task = recs[0].params.get("task")
            seeds = [r for r in run.select("accuracy", "macro_f1") if label_of(r) == label
                     and r.params.get("task") == task and "seed" in r.params]
            cells[(label, col)] = _mean_cell(recs[0], seeds)
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


def _cell_statuses(run: _Run) -> dict[str, int]:
    """Measured cells per status. A cell counts as ok when any of its records is ok (a cell
    that ran but skipped some probes is not a skipped cell), else by its worst status; the
    suites' summaries are not cells."""
    statuses: dict[Any, set[str]] = {}
    for r in run.records:
        if not (r.cell or "").startswith("summary:"):
            statuses.setdefault(r.cell or r.key, set()).add(r.status)
    out = dict.fromkeys(("ok", *STATUS_ORDER[:3]), 0)
    for found in statuses.values():
        status = "ok" if "ok" in found else min(
            found, key=lambda s: STATUS_ORDER.index(s) if s in STATUS_ORDER else 0)
        out[status] = out.get(status, 0) + 1
    return out


def render_report(meta: dict[str, Any], records: Sequence[Record]) -> str:
    """The report page as an HTML string (what ``write_report`` writes to ``index.html``)."""
    run = _Run(meta, list(records))
    colors = attention_colors(meta, run.records)
    summary_rows = [_summary_row(r) for r in _headline_records(run)]
    throughput = _throughput_section(run, colors)
    memory = _memory_section(run, colors)
    accuracy = _accuracy_section(run, colors)
    bias = _bias_section(run, colors)
    problems = _problems(run)
    counts = {s: sum(r.status == s for r in run.records) for s in ("ok", *STATUS_ORDER[:3])}
    cells = _cell_statuses(run)
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
        probe_set=render_probe_section(meta, run.records, run.reference),
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
