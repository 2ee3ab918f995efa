"""The throughput section: time per call vs length (log-log), fitted slopes, full-model rates."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

from harness.report import plots
from harness.report._common import format_params, label_of
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

__all__ = ["loglog_slope", "render"]


def _is_layer(r: Record) -> bool:
    return r.params.get("kind", "attention") != "model"


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


def loglog_slope(points: Sequence[tuple[float, float]]) -> tuple[float, float, int] | None:
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
        n = seq_len(r)
        if n is not None and r.value is not None:
            by_label.setdefault(label_of(r), set()).add(n)
    if not by_label:
        return None
    common = set.intersection(*by_label.values())
    return max(common) if common else None


def _charts(view: RunView, records: list[Record]) -> tuple[list, dict[str, Any]]:
    charts, slopes = [], {}
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
            fit = loglog_slope([(p.x, p.y) for p in pts])
            if metric == "forward_ms":
                slopes[label] = fit
            claim = view.capability(label, "time_complexity")
            legend = label + (f" · slope {fit[0]:.2f}" if fit else "")
            legend += f" (claim {claim})" if claim else ""
            series.append(plots.LineSeries(legend, view.color(label), pts, [
                seq_len(r) for r in mine if r.status == "oom"]))  # type: ignore[misc]
        title = view.display("throughput", metric)
        charts.append(chart(plots.line_chart(
            series, title=f"{title[0].upper()}{title[1:]} vs sequence length{batch_note}",
            x_label="sequence length N (tokens, log scale)",
            y_label="time per call (ms, log scale)", x_format=plots.format_length)))
    return charts, slopes


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
    charts, slopes = _charts(view, records)
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
        fit = slopes.get(label)
        failed = sorted({seq_len(r) for r in mine
                         if r.status == "oom" and seq_len(r) and _is_layer(r)})
        rows.append({
            "label": label, "color": view.color(label), "reference": label == view.reference,
            "claim": view.capability(label, "time_complexity") or "-",
            "slope": f"{fit[0]:.2f} ± {fit[1]:.2f}" if fit else "-", "slope_sort":
            fit[0] if fit else None, "slope_n": fit[2] if fit else None,
            "forward": view.cell(fwd),
            "tokens": view.cell(at("forward_tokens_per_s")),
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
