"""The HTML report of one run: ``write_report(run_dir)`` -> ``index.html`` + ``summary.csv/.json``.

The report reads only the results store (``run.json`` + ``results.jsonl``) and never re-runs
anything. The page is generic: each suite's section comes from the renderer the suite declared
(run.json ``suites_meta``, see :mod:`harness.report.sections`), and so do the suite's verdict
findings, its at-a-glance column and its summary-table rows. The page is self-contained: inline
CSS and SVG charts, one inline script that makes tables sortable (optional: without it the page
reads the same), no external URLs. Every string taken from the data is escaped (jinja2
autoescape; the SVG helpers escape their text).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.report._common import (
    STATUS_ORDER,
    format_bytes,
    format_params,
    format_seconds,
    format_uncertainty,
    label_of,
    render,
    run_header,
)
from harness.report.nodes import grouped_section
from harness.report.sections import interval_cell, renderer
from harness.report.sections.accuracy import is_baseline
from harness.report.view import HIDDEN_PARAMS, HeadlineRow, RunView, Section, seed_key
from harness.run.store import (
    Record,
    canonical_json,
    check_run_dir,
    read_records,
    read_run,
    resolve_run_dir,
    upgrade_run,
    write_in_run_dir,
)

__all__ = [
    "SUMMARY_FIELDS",
    "build_summary",
    "render_report",
    "summary_table",
    "write_report",
]

SUMMARY_FIELDS = (
    "suite", "label", "attention", "metric", "context", "value", "unit", "higher_is_better",
    "stderr", "ci_low", "ci_high", "interval", "n", "status", "error", "params",
)
_DIRECTION = {True: "higher is better", False: "lower is better"}


def _sections(view: RunView) -> list[Section]:
    """Each suite's section, in the run's suite order (suites without one are left out)."""
    found = (grouped_section(view, suite, renderer(view, suite)) for suite in view.suites())
    return [s for s in found if s is not None]


def _headline_rows(view: RunView, sections: Sequence[Section]) -> list[HeadlineRow]:
    """The summary-table rows: each section's choice, else every record of the suite's
    declared headline metric (without a ``group`` parameter), in attention order."""
    rows: list[HeadlineRow] = []
    for section in sections:
        if section.headline is not None:
            rows += section.headline
            continue
        metric = view.headline_metric(section.suite)
        recs = [r for r in view.select(section.suite, metric, None)
                if metric and "group" not in r.params and label_of(r) in view.labels]
        recs.sort(key=lambda r: (view.labels.index(label_of(r)), seed_key(r),
                                 canonical_json(r.params)))
        rows += [HeadlineRow(r, format_params(r.params, ("seed", *HIDDEN_PARAMS)))
                 for r in recs]
    return rows


# ---------------------------------------------------------------------------------------------
# summary table


def _summary_row(r: Record) -> dict[str, Any]:
    return {
        "suite": r.suite, "label": label_of(r), "attention": r.attention, "metric": r.metric,
        "context": format_params(r.params, HIDDEN_PARAMS), "value": r.value, "unit": r.unit,
        "higher_is_better": r.higher_is_better, "stderr": r.stderr, "ci_low": r.ci_low,
        "ci_high": r.ci_high, "interval": r.interval, "n": r.n, "status": r.status,
        "error": r.error, "params": canonical_json(r.params),
    }


def build_summary(records: Sequence[Record], meta: dict[str, Any] | None = None) -> list[dict]:
    """The headline table, one row per attention label x headline metric (x context).

    The headline of each suite is its declared headline metric (run.json ``suites_meta``);
    its section may narrow it (docs/RESULTS.md: throughput ``forward_ms`` at the longest length
    every attention measured, bias ``demographic_parity_difference`` on the planted axis at
    the strongest planted strength, one row per seed). Each row has the value, its unit,
    stderr / interval, n and status; ``context`` names the cell parameters.
    """
    view = RunView(meta or {}, list(records))
    return [_summary_row(row.record) for row in _headline_rows(view, _sections(view))]


def summary_table(records: Sequence[Record],
                  meta: dict[str, Any] | None = None) -> list[dict[str, str]]:
    """The headline table as display strings, for printing in a terminal.

    One dict per row with the keys ``attention``, ``suite``, ``metric``, ``at`` (the cell
    parameters), ``value``, ``uncertainty`` and ``n``; empty when no headline metric exists.
    """
    view = RunView(meta or {}, list(records))
    rows = []
    for row in _headline_rows(view, _sections(view)):
        r, ok = row.record, row.record.status == "ok"
        rows.append({
            "attention": label_of(r), "suite": r.suite, "metric": r.metric,
            "at": format_params(r.params, HIDDEN_PARAMS),
            "value": view.value_text(r) if ok else r.status,
            "uncertainty": format_uncertainty(r) if ok else (r.error or "")[:80],
            "n": "" if r.n is None else str(r.n),
        })
    return rows


def _write_summary(rows: list[dict], run_dir: Path) -> None:
    fh = io.StringIO(newline="")
    writer = csv.DictWriter(fh, fieldnames=SUMMARY_FIELDS)
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if row[k] is None else row[k] for k in SUMMARY_FIELDS})
    write_in_run_dir(run_dir / "summary.csv", fh.getvalue())  # never through a link
    write_in_run_dir(run_dir / "summary.json", json.dumps(rows, indent=1) + "\n")


def _summary_view(view: RunView, rows: list[HeadlineRow]) -> dict[str, Any]:
    """Columns (suite, metric, context) x attention rows; a column holding several records of
    one attention (seeds) shows their mean and range."""
    columns: list[tuple[str, str, str]] = []
    grouped: dict[tuple[str, tuple[str, str, str]], list[HeadlineRow]] = {}
    for row in rows:
        r = row.record
        col = (r.suite, r.metric, row.context)
        if col not in columns:
            columns.append(col)
        grouped.setdefault((label_of(r), col), []).append(row)
    cells = {key: rs[0].cell if len(rs) == 1 and rs[0].cell is not None else
             view.seeds_cell([x.record for x in rs]) for key, rs in grouped.items()}
    return {
        "columns": [{"suite": s, "metric": view.display(s, m), "context": c,
                     "direction": _DIRECTION.get(view.metric(s, m).get("higher_is_better"), "")}
                    for s, m, c in columns],
        "rows": [{"label": label, "color": view.color(label), "reference": label ==
                  view.reference, "cells": [cells.get((label, col)) for col in columns]}
                 for label in view.labels if any((label, col) in cells for col in columns)],
    }


# ---------------------------------------------------------------------------------------------
# verdict, problems, environment


def _verdict(view: RunView, sections: list[Section],
             problems: list[dict[str, Any]]) -> dict[str, Any]:
    findings: list[tuple[str, str]] = []
    status = str(view.meta.get("status") or "unknown")
    errors = [p for p in problems if p["status"] == "error"]
    if errors:
        findings.append(("bad", f"{len(errors)} cell(s) failed with an error; see Failed, "
                                "out-of-memory and skipped cells below."))
    if status not in ("finished", "failed"):
        findings.append(("warn", f"The run is {status}: results may be incomplete."))
    for section in sections:
        findings += section.findings
    from harness.report.inputs import input_findings

    findings += input_findings(view.meta, view.records)
    bad = sum(tone == "bad" for tone, _ in findings)
    warn = sum(tone == "warn" for tone, _ in findings)
    if bad:
        headline, tone = f"Needs attention: {bad} problem(s), {warn} warning(s)", "bad"
    elif warn:
        headline, tone = f"Usable with caveats: {warn} warning(s)", "warn"
    else:
        headline, tone = "No problems found", "good"
    order = {"bad": 0, "warn": 1, "good": 2}
    findings.sort(key=lambda f: order.get(f[0], 3))
    glances = [s.glance for s in sections if s.glance is not None]
    cards = []
    for label in view.labels:
        if is_baseline(view, label):
            continue  # the no-attention ablation: a baseline row of its section, not an attention
        mine = [p for p in problems if p["label"] == label]
        counts = {s: sum(p["status"] == s for p in mine) for s in STATUS_ORDER[:3]}
        cards.append({"label": label, "color": view.color(label),
                      "reference": label == view.reference,
                      "cells": [g.cells.get(label) for g in glances],
                      "failures": ", ".join(f"{n} {s}" for s, n in counts.items() if n) or
                      "none", "failures_tone": "bad" if counts["error"] else ""})
    return {"headline": headline, "tone": tone, "glances": glances, "cards": cards,
            "findings": [{"tone": t, "text": s} for t, s in findings]}


def _problems(view: RunView) -> list[dict[str, Any]]:
    """Non-ok records, one row per cell and status and message.

    Records of one cell that share a metric and a status but differ in message (e.g. every
    swap direction skipped for want of sentences) fold into one row that counts them.
    """
    seen: dict[tuple, dict[str, Any]] = {}
    for r in view.records:
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


def _all_records(view: RunView) -> list[dict[str, Any]]:
    out = []
    for suite in view.suites():
        recs = [r for r in view.records if r.suite == suite]
        out.append({"suite": suite, "count": len(recs), "rows": [
            {"label": label_of(r), "metric": r.metric, "params": format_params(r.params),
             "cell": interval_cell(view, r)} for r in recs]})
    return out


def _readable(key: str, value: Any) -> str:
    """A run.json or environment value as people read it: sizes in GiB, durations in min."""
    if value is None:
        return "-"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if key == "memory_budget" or key.endswith("_bytes"):
            return format_bytes(value)
        if key.endswith("_s"):
            return format_seconds(value)
    if isinstance(value, list):
        return (" " if key == "command" else ", ").join(str(v) for v in value) or "-"
    if isinstance(value, dict):
        return ", ".join(f"{k} {v}" for k, v in value.items()) if all(
            not isinstance(v, (dict, list)) for v in value.values()) else canonical_json(value)
    return str(value)


def _environment(meta: dict[str, Any]) -> dict[str, Any]:
    skip = {"environment", "profile", "attentions", "counts", "suites_meta"}
    run_rows = [(k, _readable(k, v)) for k, v in meta.items() if k not in skip]
    env = meta.get("environment") or {}
    env_rows = [(k, _readable(k, v)) for k, v in env.items()]
    specs = []
    for spec in meta.get("attentions") or []:
        if isinstance(spec, dict):
            specs.append({"label": str(spec.get("label", "")), "name": str(spec.get("name", "")),
                          "options": canonical_json(spec.get("options", {})),
                          "capabilities": canonical_json(spec.get("capabilities", {}))
                          if spec.get("capabilities") else ""})
    suites = []
    for name, info in (meta.get("suites_meta") or {}).items():
        if isinstance(info, dict):
            metrics = [m for m in info.get("metrics") or [] if isinstance(m, dict)]
            suites.append({"name": str(name), "version": str(info.get("version", "-")),
                           "headline": next((str(m.get("name")) for m in metrics
                                             if m.get("headline")), "-"),
                           "metrics": ", ".join(str(m.get("name")) for m in metrics)})
    profile = meta.get("profile")
    return {"run": run_rows, "env": env_rows, "specs": specs, "suites": suites,
            "profile": json.dumps(profile, indent=2, default=str) if profile else ""}


def _cell_statuses(view: RunView) -> dict[str, int]:
    """Measured cells per status. A cell counts as ok when any of its records is ok (a cell
    that ran but skipped some probes is not a skipped cell), else by its worst status; the
    suites' summaries are not cells."""
    statuses: dict[Any, set[str]] = {}
    for r in view.records:
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
    view = RunView(meta, list(records))
    sections = _sections(view)
    problems = _problems(view)
    counts = {s: sum(r.status == s for r in view.records) for s in ("ok", *STATUS_ORDER[:3])}
    return render(
        "report.html",
        header=run_header(meta),
        counts=counts,
        cells=_cell_statuses(view),
        n_records=len(view.records),
        suites=view.suites(),
        reference=view.reference,
        verdict=_verdict(view, sections, problems),
        summary=_summary_view(view, _headline_rows(view, sections)),
        sections=sections,
        problems=problems,
        all_records=_all_records(view),
        environment=_environment(meta),
    )


def write_report(run_dir: str | Path) -> Path:
    """Write ``index.html``, ``summary.csv`` and ``summary.json`` into the run directory.

    Reads only ``run.json`` and ``results.jsonl``; raises ``StoreError`` when they are missing,
    corrupt or of an unreadable schema version. Returns the path of ``index.html``.
    """
    run_dir = check_run_dir(resolve_run_dir(run_dir))
    meta, records = upgrade_run(read_run(run_dir), read_records(run_dir))
    _write_summary(build_summary(records, meta), run_dir)
    return write_in_run_dir(run_dir / "index.html", render_report(meta, records))
