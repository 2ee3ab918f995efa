"""The throughput section: time per call vs length (log-log), time exponents, full-model rates.

The time exponent is the suite's own ``time_exponent`` record (``params.kind: exponent``, per
``pass`` and ``batch``; a t-interval from the fit over the lengths where time grows, the note in
``error``); the report fits nothing itself. An exponent that is missing or skipped shows its
reason, never a bare (possibly negative) slope.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from harness.report import plots
from harness.report._common import format_params, label_of
from harness.report.sections import interval_cell
from harness.report.view import (
    Glance,
    GlanceCell,
    HeadlineRow,
    RunView,
    Section,
    chart,
    seq_len,
)
from harness.run.store import Record

__all__ = ["percent_cell", "render"]


def _is_layer(r: Record) -> bool:
    """Attention-layer records and their summaries (time exponents, crossovers), which carry
    the layer's batch size; not the full-model ones."""
    return r.params.get("kind", "attention") != "model"


def _exponents(records: list[Record]) -> dict[tuple[str, str], Record]:
    """The suite's ``time_exponent`` record per (label, pass), from the records shown."""
    found: dict[tuple[str, str], Record] = {}
    for r in records:
        if r.metric == "time_exponent":
            found.setdefault((label_of(r), str(r.params.get("pass", ""))), r)
    return found


def exponent_cell(view: RunView, r: Record | None) -> dict[str, Any]:
    """A time exponent with its interval and note; a missing, skipped or negative one shows
    why there is no exponent instead of a number."""
    if r is None:
        return {**view.cell(None), "note": ""}
    if r.status == "ok" and r.value is not None and r.value < 0:  # never a bare negative slope
        cell = view.cell(r)
        return {**cell, "text": "no growth", "unc": "", "sort": None, "note": (
            f"time falls with N over the fitted lengths ({view.value_text(r)}): "
            "constant-dominated; measure longer inputs")}
    cell = interval_cell(view, r)
    return {**cell, "note": r.error or ""}


def percent_cell(view: RunView, r: Record | None) -> dict[str, Any]:
    """A fraction of peak as a percentage, its IQR too, and the peak it is taken of."""
    cell = view.cell(r)
    if r is None or r.status != "ok" or r.ci_low is None or r.ci_high is None:
        return cell
    peak = (r.load or {}).get("peak_flops_per_s")
    of = f" of {peak / 1e9:.4g} GFLOP/s" if isinstance(peak, (int, float)) else ""
    return {**cell, "unc": f"IQR [{r.ci_low * 100:.1f}%, {r.ci_high * 100:.1f}%]{of}"}


def _records(view: RunView) -> list[Record]:
    """Throughput records of one batch size (the largest measured) plus model-level ones.

    Attention-layer cells (``kind`` absent or ``attention``) can sweep several batch sizes;
    plots and headlines use the largest batch so that lines stay comparable.
    """
    records = view.select("throughput", status=None)
    batches = {r.params.get("batch") for r in records
               if r.metric == "forward_ms" and r.status == "ok" and _is_layer(r)}
    batches.discard(None)
    if len(batches) < 2:
        return records
    chosen = max(batches, key=lambda b: (isinstance(b, (int, float)), b))
    return [r for r in records if not _is_layer(r) or r.params.get("batch", chosen) == chosen]


def _common_length(records: Iterable[Record]) -> float | None:
    """The longest seq_len at which every attention with a measurement has one."""
    by_label: dict[str, set[float]] = {}
    for r in records:
        n = seq_len(r)
        if n is not None and r.value is not None:
            by_label.setdefault(label_of(r), set()).add(n)
    if not by_label:
        return None
    common = set.intersection(*by_label.values())
    return max(common) if common else None


def _charts(view: RunView, records: list[Record],
            exponents: dict[tuple[str, str], Record]) -> list:
    charts = []
    batches = {r.params.get("batch") for r in records if r.metric == "forward_ms"}
    batch_note = f" (batch {batches.pop()})" if len(batches) == 1 else ""
    for metric in ("forward_ms", "fwd_bwd_ms"):
        recs = [r for r in records if _is_layer(r) and seq_len(r) is not None
                and (r.metric == metric or (r.metric == "cell_status" and r.status == "oom"))]
        if not any(r.status == "ok" for r in recs):
            continue
        series = []
        for label in view.labels:
            mine = [r for r in recs if label_of(r) == label]
            if not mine:
                continue
            pts = [plots.Point(seq_len(r), r.value, r.ci_low, r.ci_high,  # type: ignore[arg-type]
                               view.tip(r, f"{label} N={seq_len(r):g}"))
                   for r in mine if r.status == "ok" and r.value is not None]
            exp = exponent_cell(view, exponents.get((label, metric.removesuffix("_ms"))))
            claim = view.capability(label, "time_complexity")
            legend = label + (f" · exponent {exp['text']}" if exp["status"] == "ok" else "")
            legend += f" (claim {claim})" if claim else ""
            series.append(plots.LineSeries(legend, view.color(label), pts, [
                seq_len(r) for r in mine if r.status == "oom"]))  # type: ignore[misc]
        title = view.display("throughput", metric)
        charts.append(chart(plots.line_chart(
            series, title=f"{title[0].upper()}{title[1:]} vs sequence length{batch_note}",
            x_label="sequence length N (tokens, log scale)",
            y_label="time per call (ms, log scale)", x_format=plots.format_length)))
    return charts


def _headline(view: RunView, records: list[Record]) -> list[HeadlineRow]:
    """forward_ms at the longest length every attention measured (else each one's longest)."""
    fwd = [r for r in records if r.metric == "forward_ms" and seq_len(r) is not None]
    common = _common_length(r for r in fwd if r.status == "ok")
    rows = []
    for label in view.labels:
        mine = [r for r in fwd if label_of(r) == label]
        if not mine:
            continue
        mine_ok = [r for r in mine if r.status == "ok" and r.value is not None]
        target = common if common is not None else max(
            (seq_len(r) or 0.0 for r in mine_ok), default=None)
        at = [r for r in (mine_ok or mine) if seq_len(r) == target] or \
            [max(mine, key=lambda r: seq_len(r) or 0.0)]
        rows.append(HeadlineRow(at[0], format_params(at[0].params, ("batch", "kind"))))
    if len({row.context for row in rows}) > 1:  # lengths differ: one column, length per cell
        for row in rows:
            cell = view.cell(row.record)
            cell["unc"] = f"{cell['unc']} at {row.context}".strip()
            row.context, row.cell = "longest measured length", cell
    return rows


def render(view: RunView) -> Section | None:
    records = _records(view)
    if not records:
        return None
    exponents = _exponents(records)
    charts = _charts(view, records, exponents)
    fwd_ok = [r for r in records if r.metric == "forward_ms" and r.status == "ok"]
    common = _common_length(fwd_ok)
    rows = []
    for label in view.labels:
        mine = [r for r in records if label_of(r) == label]
        if not mine:
            continue

        def at(metric: str, mine: list[Record] = mine) -> Record | None:
            found = [r for r in mine if r.metric == metric and seq_len(r) == common]
            if not found:  # model-level metrics have their own lengths: take the longest
                found = sorted((r for r in mine if r.metric == metric and not _is_layer(r)),
                               key=lambda r: seq_len(r) or 0.0, reverse=True)
            return found[0] if found else None

        cross = [r for r in mine if r.metric == "crossover_seq_len"]
        fwd = at("forward_ms")
        exp = exponent_cell(view, exponents.get((label, "forward")))
        failed = sorted({seq_len(r) for r in mine
                         if r.status == "oom" and seq_len(r) and _is_layer(r)})
        rows.append({
            "label": label, "color": view.color(label), "reference": label == view.reference,
            "claim": view.capability(label, "time_complexity") or "-",
            "exponent": exp,
            "forward": view.cell(fwd),
            "tokens": view.cell(at("forward_tokens_per_s")),
            "peak": percent_cell(view, at("forward_peak_fraction")),
            "peak_bwd": percent_cell(view, at("fwd_bwd_peak_fraction")),
            "train": view.cell(at("train_steps_per_s")),
            "infer": view.cell(at("inference_tokens_per_s")),
            "crossover": ("reference" if label == view.reference else
                          view.cell(cross[0])["text"] if cross else "-"),
            "crossover_none": bool(cross) and cross[0].value is None,
            "oom": ", ".join(plots.format_length(n) for n in failed),
            "forward_ms": fwd.value if fwd is not None and common is not None else None,
        })
    model = [r for r in records if not _is_layer(r) and r.status == "ok"]
    model_at = format_params(max(model, key=lambda r: seq_len(r) or 0.0).params, ("kind",)) \
        if model else ""
    shown = f"{common:g}" if common is not None else None
    glance, findings = _glance(view, rows, shown)
    html = view.template("sections/throughput.html", charts=charts, rows=rows,
                         model_at=model_at, common=shown)
    return Section("throughput", "Throughput", html, findings, glance,
                   _headline(view, records))


def _glance(view: RunView, rows: list[dict[str, Any]],
            common: str | None) -> tuple[Glance, list[tuple[str, str]]]:
    """Speed vs the reference at the common length, and the fastest attention there."""
    glance = Glance(f"speed vs {view.reference or 'reference'}",
                    f"forward at N={common or '?'}")
    ref_ms = next((r["forward_ms"] for r in rows if r["reference"]), None)
    ratios = {}
    for row in rows:
        ms, text = row["forward_ms"], row["forward"]["text"]
        if row["forward"]["status"] != "ok":
            continue
        if not (ms and ref_ms):
            glance.cells[row["label"]] = GlanceCell(text)
            continue
        ratio = ref_ms / ms
        ratios[row["label"]] = ms
        if row["reference"]:
            glance.cells[row["label"]] = GlanceCell(f"{text} (reference)")
            continue
        word, shown = ("faster", ratio) if ratio >= 1 else ("slower", 1 / ratio)
        tone = "good" if ratio >= 1.1 else "warn" if ratio < 0.9 else ""
        glance.cells[row["label"]] = GlanceCell(f"{shown:.2g}× {word} ({text})", tone=tone)
    findings = []
    best = min(ratios, key=lambda lb: ratios[lb], default=None)
    if common and view.reference and best is not None and best != view.reference:
        speed = glance.cells[best].text
        findings.append(("good", f"Fastest forward at N={common}: {best} ({speed})."))
    return glance, findings
