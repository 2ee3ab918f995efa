"""The memory section: peak memory vs length (log-log) per mode, fitted exponent vs the claim.

A complexity claim is an upper bound: ``exponent_matches_claim`` is 1 when the exponent's upper
95% bound is within it, 0 when the whole interval is above it, null when inconclusive (the reason
in the record's ``error``). ``constant_dominated`` = 1 (much slower growth than claimed: fixed
costs dominate at these lengths) is an informational note, not a caveat.
"""

from __future__ import annotations

from typing import Any

from harness.report import plots
from harness.report._common import label_of
from harness.report.sections import headline_rows, interval_cell
from harness.report.view import Glance, GlanceCell, RunView, Section, chart, seq_len
from harness.run.store import Record

__all__ = ["render"]

_SUMMARY = ("memory_exponent", "claimed_exponent", "exponent_matches_claim",
            "constant_dominated", "max_seq_len_under_budget")


def _bytes_tick(v: float) -> str:
    for limit, suffix in ((2**40, "TiB"), (2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if v >= limit:
            return f"{v / limit:g} {suffix}"
    return f"{v:g} B"


def render(view: RunView) -> Section | None:
    records = view.select("memory", status=None)
    if not records:
        return None
    peak = [r for r in records if seq_len(r) is not None and (
        r.metric == "peak_bytes" or (r.metric == "cell_status" and r.status == "oom"))]
    modes = list(dict.fromkeys(str(r.params.get("mode", "")) for r in peak))
    modes.sort(key=lambda m: {"forward": 0, "fwd_bwd": 1}.get(m, 2))
    found = {(label_of(r), str(r.params.get("mode", "")), r.metric): r
             for r in reversed(records) if r.metric in _SUMMARY}

    def summ(label: str, mode: str, metric: str) -> Record | None:
        return found.get((label, mode, metric))

    charts = []
    for mode in modes:
        series = []
        for label in view.labels:
            mine = [r for r in peak
                    if label_of(r) == label and str(r.params.get("mode", "")) == mode]
            if not mine:
                continue
            pts = [plots.Point(seq_len(r), r.value, tip=view.tip(r, f"{label} N={seq_len(r):g}"))  # type: ignore[arg-type]
                   for r in mine if r.status == "ok" and r.value is not None]
            exp, claim = summ(label, mode, "memory_exponent"), summ(label, mode, "claimed_exponent")
            legend = label
            if exp is not None and exp.value is not None:
                legend += f" · fitted {exp.value:.2f}"
            if claim is not None and claim.value is not None:
                legend += f" (claim N^{claim.value:g})"
            series.append(plots.LineSeries(legend, view.color(label), pts, [
                seq_len(r) for r in mine if r.status == "oom"]))  # type: ignore[misc]
        charts.append(chart(plots.line_chart(
            series, title=f"Peak memory vs sequence length ({mode or 'all'})",
            x_label="sequence length N (tokens, log scale)", y_label="peak memory (log scale)",
            x_format=plots.format_length, y_format=_bytes_tick, y_base2=True)))
    rows = []
    summary_modes = list(dict.fromkeys([*modes, *(mode for _, mode, _ in found)]))
    for label in view.labels:
        for mode in summary_modes:
            exp = summ(label, mode, "memory_exponent")
            if exp is None:
                continue
            claim = summ(label, mode, "claimed_exponent")
            match = summ(label, mode, "exponent_matches_claim")
            const = summ(label, mode, "constant_dominated")
            rows.append({
                "label": label, "color": view.color(label), "mode": mode or "-",
                "exponent": interval_cell(view, exp), "claim": f"N^{claim.value:g}"
                if claim is not None and claim.value is not None else "-",
                "complexity": view.capability(label, "memory_complexity") or "-",
                "matches": None if match is None or match.value is None else match.value >= 0.5,
                "inconclusive": match is not None and match.value is None,
                "why": (match.error or "") if match is not None else "",
                "constant": const is not None and const.status == "ok" and bool(const.value),
                "constant_why": (const.error or "") if const is not None else "",
                "budget": view.cell(summ(label, mode, "max_seq_len_under_budget")),
            })
    notes = [r for r in rows if r["constant"]]
    html = view.template("sections/memory.html", charts=charts, rows=rows, notes=notes)
    glance, findings = _glance(view, rows)
    return Section("memory", "Memory", html, findings, glance, headline_rows(view, "memory"))


def _glance(view: RunView, rows: list[dict[str, Any]]) -> tuple[Glance, list[tuple[str, str]]]:
    """The fitted exponent vs the claim per attention; a warning where they disagree."""
    glance = Glance("memory growth", "fitted exponent vs claim")
    findings = []
    for label in view.labels:
        mine = [r for r in rows if r["label"] == label]
        if not mine:
            continue
        m = mine[0]
        mark = " ✓" if m["matches"] else " ✗" if m["matches"] is False else \
            " (inconclusive)" if m["inconclusive"] else ""
        tone = "good" if m["matches"] else "warn" if m["matches"] is False else ""
        glance.cells[label] = GlanceCell(
            f"N^{m['exponent']['text']} vs claim ≤ {m['claim']}{mark} ({m['mode']})",
            m["exponent"]["unc"], tone=tone)
        off = [r for r in mine if r["matches"] is False]
        if off:
            fits = ", ".join(f"N^{r['exponent']['text']} {r['exponent']['unc']} ({r['mode']})"
                             for r in off)
            findings.append(("warn", f"{label}: memory grows as {fits}: the whole interval "
                                     f"lies above the claimed bound {off[0]['claim']}."))
    return glance, findings
