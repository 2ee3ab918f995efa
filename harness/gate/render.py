"""Rendering a comparison: the verdict line, the rich table, grouped new/vanished cells, the
per-suite power and the HTML page."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.table import Table
from rich.text import Text

from harness.gate.compare import ROW_STATUSES, CompareRow, Comparison
from harness.records import Record
from harness.report._common import (
    attention_colors,
    format_params,
    format_uncertainty,
    format_value,
    render,
    run_header,
)

__all__ = [
    "power_lines",
    "render_compare_table",
    "unmatched_summary",
    "verdict_line",
    "write_compare_html",
]

#: How a regression is decided, in the table's caption and the HTML page.
RULE = ("Regression: worse by > {threshold}, and beyond noise: timings by a one-sided Welch t over"
        " per-process or per-window estimates (Mann-Whitney over rounds with one window per"
        " run), confirmed"
        " by the speed vs the side-by-side reference (on a busy machine that ratio alone"
        " decides); per-seed scores by a paired t over seeds; others by their intervals."
        " Bonferroni (family-wise 5%): the suites with rows beyond the threshold share it"
        " equally, and those rows share their suite's part.")


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
    why = {"fail": "regression or vanished cells",
           "inconclusive": "a would-be regression the side-by-side evidence cannot decide",
           "pass": "no regression beyond threshold and noise"}[cmp.verdict]
    return Text.assemble((f"{cmp.verdict.upper()} (exit {cmp.exit_code})",
                          _VERDICT_STYLES[cmp.verdict]), f": {why}. {counts}.")


def power_lines(cmp: Comparison) -> list[Text]:
    """Per suite, the smallest regression the gate could have caught (its power), and for an
    inconclusive verdict what would make it conclusive."""
    lines = [Text.assemble(("power ", "bold"), p.text()) for p in cmp.power]
    lines += [Text.assemble(("to decide: ", "bold yellow"), hint) for hint in cmp.advice]
    return lines


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
    caption = [RULE.format(threshold=f"{cmp.threshold:.0%}")]
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
              "inconclusive": "Inconclusive (would-be regressions the side-by-side evidence"
                              " cannot decide)",
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
        warnings=cmp.warnings, groups=groups, rule=RULE.format(threshold=f"{cmp.threshold:.0%}"),
        power=[p.text() for p in cmp.power], advice=cmp.advice,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html, encoding="utf-8")
    return path
