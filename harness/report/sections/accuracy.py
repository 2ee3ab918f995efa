"""The accuracy section: macro-F1 per task and attention, paired differences to the reference.

No verdict without signal: a task whose ``task_signal`` is 0 gets a "no signal" banner with the
record's reason, and its comparisons (``status: skipped``, ``error`` starting ``no_signal``) are
greyed out and never findings. ``chance_macro_f1`` (the best label-blind guess) is shown per
task with its interval. The no-attention baseline (attention ``none``, ``params.ablation:
no_token_mixing``) is a baseline row per task, not an attention: it gets no at-a-glance cell and
no finding; ``macro_f1_gain_vs_no_attention`` says what each attention's token mixing adds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from harness.report import plots
from harness.report._common import format_params, label_of
from harness.report.sections import interval_cell
from harness.report.view import (
    HIDDEN_PARAMS,
    Glance,
    GlanceCell,
    HeadlineRow,
    RunView,
    Section,
    chart,
    diff_tone,
)
from harness.run.store import Record

__all__ = ["render"]

#: The no-attention baseline's attention name (an ablation row, not a registry attention).
BASELINE = "none"


def is_baseline(view: RunView, label: str) -> bool:
    """Whether ``label`` is the no-attention baseline row rather than an attention."""
    return view.attention_of.get(label) == BASELINE


def no_signal(r: Record | None) -> bool:
    """A comparison the suite withheld because its task did not learn (not a finding)."""
    return r is not None and r.status == "skipped" and (r.error or "").startswith("no_signal")


def _comparison_cell(view: RunView, r: Record | None) -> dict[str, Any]:
    """A comparison's cell; a no-signal one keeps its value (greyed out, reason on hover)."""
    if not no_signal(r):
        return interval_cell(view, r)
    assert r is not None
    shown = replace(r, status="ok", error=None)
    cell = interval_cell(view, shown)
    cell.update(status="no_signal", sort=None, no_signal=True,
                error=f"{r.error}; {cell['error']}" if cell["error"] else str(r.error))
    return cell


def _tasks(view: RunView, records: list[Record], tasks: list[str]) -> list[dict[str, Any]]:
    """Per task: the chance level (with its interval) and whether the task carries signal."""
    out = []
    for task in tasks:
        mine = [r for r in records if str(r.params.get("task", "")) == task
                and "seed" not in r.params]
        chance = next((r for r in mine if r.metric == "chance_macro_f1"), None)
        signal = next((r for r in mine if r.metric == "task_signal"), None)
        if chance is None and signal is None:
            continue
        out.append({
            "task": task, "chance": interval_cell(view, chance),
            "signal": None if signal is None or signal.status != "ok" or signal.value is None
            else signal.value >= 0.5,
            "why": (signal.error or "").removeprefix("no_signal:").strip()
            if signal is not None else "",
            "unknown": signal is not None and signal.status != "ok",
        })
    return out


def _mean_cell(view: RunView, mean: Record | None, seeds: Sequence[Record]) -> dict[str, Any]:
    """A mean over seeds; from one seed (no t-interval), that seed's interval over test
    examples instead, so that the figure still carries its uncertainty."""
    ok = [r for r in seeds if r.status == "ok" and r.value is not None]
    if len(ok) == 1 and (mean is None or mean.ci_low is None) and ok[0].ci_low is not None:
        cell = interval_cell(view, ok[0])
        cell["unc"] = f"{cell['unc']} (1 seed; over test examples)"
        return cell
    return interval_cell(view, mean)


def render(view: RunView) -> Section | None:
    """Macro-F1 per task and attention; a task no attention could run is a note, not a row."""
    records = view.select("accuracy", status=None)
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
    summaries = {(label_of(r), str(r.params.get("task", "")), r.metric): r
                 for r in reversed(records) if "seed" not in r.params}

    def find(label: str, task: str, metric: str) -> Record | None:
        return summaries.get((label, task, metric))

    series, rows, with_dots = [], [], False
    baselines = [lb for lb in view.labels if is_baseline(view, lb)]
    for label in [lb for lb in view.labels if lb not in baselines] + baselines:
        bars = {}
        for task in tasks:
            mine = [r for r in records if label_of(r) == label
                    and str(r.params.get("task", "")) == task and "seed" in r.params]
            seeds = [r for r in mine if r.metric == "macro_f1"]
            ok = [r for r in seeds if r.status == "ok" and r.value is not None]
            values = [float(r.value) for r in ok]  # type: ignore[arg-type]
            dots = values if len(values) > 1 else []
            with_dots |= bool(dots)
            mean = find(label, task, "macro_f1_mean")
            shown = ok[0] if len(ok) == 1 and (mean is None or mean.ci_low is None) else mean
            if shown is not None and shown.status == "ok" and shown.value is not None:
                bars[task] = plots.Bar(shown.value, shown.ci_low, shown.ci_high,
                                       view.tip(shown, f"{label} on {task}"), dots)
            elif values:
                bars[task] = plots.Bar(sum(values) / len(values), tip=f"{label} on {task}: "
                                       f"mean of {len(values)} seeds", dots=dots)
            if not seeds and mean is None:
                continue
            diff = find(label, task, "macro_f1_diff_vs_reference")
            gain = find(label, task, "macro_f1_gain_vs_no_attention")
            rows.append({
                "task": task, "label": label, "color": view.color(label),
                "reference": label == view.reference, "baseline": label in baselines,
                "f1": _mean_cell(view, mean, seeds),
                "acc": _mean_cell(view, find(label, task, "accuracy_mean"),
                                  [r for r in mine if r.metric == "accuracy"]),
                "diff": _comparison_cell(view, diff),
                "p": _comparison_cell(view, find(label, task, "paired_p_value")),
                "diff_tone": "" if no_signal(diff) else diff_tone(diff, higher_is_better=True),
                "gain": _comparison_cell(view, gain),
                "gain_tone": "" if no_signal(gain) else diff_tone(gain, higher_is_better=True),
                "fidelity": interval_cell(view, find(label, task, "fidelity_rel_error")),
                "swap": interval_cell(view, find(label, task, "swap_macro_f1")),
                "seeds_ok": len(ok),
                "seeds_failed": sum(r.status in ("error", "oom") for r in seeds),
                "seeds_skipped": sum(r.status == "skipped" for r in seeds),
            })
        if bars:
            series.append(plots.BarSeries(label, view.color(label), bars))
    how = "mean over seeds, 95% CI; dots = seeds" if with_dots else \
        "95% CI over test examples" if rows and max(r["seeds_ok"] for r in rows) <= 1 else \
        "mean over seeds, 95% CI"
    bar_chart = chart(plots.bar_chart(
        tasks, series, title=f"Macro-F1 per task ({how})", y_label="macro-F1",
        x_label="task", y_min=0.0, y_max=1.0, width=900)) if series else None
    rows.sort(key=lambda r: tasks.index(r["task"]))
    html = view.template("sections/accuracy.html", chart=bar_chart, rows=rows,
                         skipped=skipped, tasks=_tasks(view, records, tasks),
                         has_gain=any(r["gain"]["status"] != "missing" for r in rows))
    glance, findings = _glance(view, rows)
    return Section("accuracy", "Accuracy", html, findings, glance, _headline(view, records))


def _glance(view: RunView, rows: list[dict[str, Any]]) -> tuple[Glance, list[tuple[str, str]]]:
    ref = view.reference or "the reference"
    glance = Glance("macro-F1 per task", f"Δ vs {ref}")
    findings = []
    for label in view.labels:
        mine = [r for r in rows if r["label"] == label and not r["baseline"]]
        if not mine:
            continue
        parts = []
        for r in mine:
            delta = not r["reference"] and r["diff"]["status"] == "ok"
            parts.append(f"{r['task']} {r['f1']['text']}" +
                         (f" (Δ {r['diff']['text']})" if delta else "") +
                         (" (no signal)" if r["diff"].get("no_signal") else ""))
        worse = [r for r in mine if r["diff_tone"] == "bad"]
        glance.cells[label] = GlanceCell("; ".join(parts), tone="warn" if worse else "")
        if worse:
            drops = ", ".join(f"{r['task']} {r['diff']['text']} ({r['diff']['unc']})"
                              for r in worse)
            findings.append(("warn", f"{label}: macro-F1 significantly below {ref} on "
                                     f"{drops}."))
    return glance, findings


def _headline(view: RunView, records: list[Record]) -> list[HeadlineRow]:
    """macro_f1_mean per attention and task; one seed: that seed's interval over test data."""
    out = []
    for label in view.labels:
        for r in sorted((r for r in records if r.metric == "macro_f1_mean"
                         and label_of(r) == label), key=lambda r: str(r.params.get("task"))):
            seeds = [s for s in records if s.metric == "macro_f1" and label_of(s) == label
                     and s.params.get("task") == r.params.get("task") and "seed" in s.params]
            context = format_params(r.params, ("seed", *HIDDEN_PARAMS))
            out.append(HeadlineRow(r, context, _mean_cell(view, r, seeds)))
    return out
