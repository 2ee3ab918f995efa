"""The accuracy suite's summary: means over seeds, paired comparisons with the reference and the
no-attention baseline on the same test examples, and each task's signal (chance level)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from harness.measure.stats import (
    PairedResult,
    chance_macro_f1,
    paired_metric_difference,
    t_interval,
)
from harness.records import Record
from harness.suites.accuracy.cells import is_reference
from harness.suites.accuracy.params import BASELINE, AccuracyParams
from harness.suites.base import RunContext, Suite
from harness.suites.training import macro_f1_scores

__all__ = ["paired_diff", "summarize"]


def paired_diff(
    y_true: np.ndarray,
    preds_a: list[np.ndarray],
    preds_b: list[np.ndarray],
    *,
    n_boot: int = 1000,
    seed: int = 0,
) -> PairedResult:
    """Mean over seed pairs of macro-F1(a_s) - macro-F1(b_s) on the same test examples
    (:func:`~harness.measure.stats.paired_metric_difference`)."""
    return paired_metric_difference(y_true, preds_a, preds_b, macro_f1_scores, n_boot=n_boot,
                                    seed=seed)


def summarize(suite: Suite, records: list[Record], params: AccuracyParams, ctx: RunContext
              ) -> list[Record]:
    """Per attention and task: means over seeds; then the comparisons and task signals."""
    mine = [r for r in records if r.suite == suite.name and r.status == "ok"
            and r.value is not None and "seed" in r.params]
    groups: dict[tuple[str, str], dict[str, list[Record]]] = {}
    for r in mine:
        groups.setdefault((str(r.params["task"]), r.label or r.attention), {}) \
            .setdefault(r.metric, []).append(r)
    out: list[Record] = []
    for (task_key, _label), by_metric in sorted(groups.items()):
        out.extend(_means(suite, task_key, by_metric))
    out.extend(_comparisons(suite, mine, params, ctx))
    return out


def _summary_record(suite: Suite, first: Record, task_key: str, metric: str, **kwargs: Any
                    ) -> Record:
    return suite.record(first, metric, params={"task": task_key,
                                               "config": first.params.get("config")}, **kwargs)


def _means(suite: Suite, task_key: str, by_metric: dict[str, list[Record]]) -> list[Record]:
    out = []
    for metric in ("macro_f1", "accuracy", "train_time_s"):
        rows = sorted(by_metric.get(metric, []), key=lambda r: r.params["seed"])
        if not rows:
            continue
        est = t_interval([r.value for r in rows])  # ci_method "t": Student-t over seeds
        out.append(_summary_record(suite, rows[0], task_key, f"{metric}_mean",
                                   **est.record_fields()))
    return out


def _load_artifact(ctx: RunContext, cell_id: str | None) -> dict[str, Any] | None:
    if cell_id is None or ctx.run_dir is None:
        return None
    path = Path(ctx.run_dir) / "artifacts" / f"{cell_id}.json"
    if not path.is_file():
        return None
    return json.loads(path.read_text())


def _paired(rows: list[Record], others: dict[tuple[str, Any], Record], n_boot: int,
            ctx: RunContext) -> PairedResult | None:
    """``rows``' macro-F1 minus their ``others`` (same task and seed) on the same test
    examples, averaged over seeds, from the cells' saved predictions."""
    ys, pa, pb, seeds = None, [], [], []
    for r in rows:
        other = others.get((str(r.params["task"]), r.params["seed"]))
        if other is None:
            continue
        mine_art = _load_artifact(ctx, r.cell)
        other_art = _load_artifact(ctx, other.cell)
        if mine_art is None or other_art is None or \
                mine_art["test_fingerprint"] != other_art["test_fingerprint"]:
            continue
        ys = np.asarray(other_art["labels"])
        pa.append(np.asarray(mine_art["predictions"]))
        pb.append(np.asarray(other_art["predictions"]))
        seeds.append(r.params["seed"])
    if ys is None:
        return None
    return paired_diff(ys, pa, pb, n_boot=n_boot, seed=min(seeds))


def _signal(suite: Suite, task_key: str, refs: list[Record], params: AccuracyParams,
            ctx: RunContext) -> tuple[list[Record], str | None]:
    """``chance_macro_f1`` and ``task_signal`` of one task; the no-signal reason, if any.

    The task has signal when every seed's reference macro-F1 has its lower 95% bound above
    the chance level (:func:`~harness.measure.stats.chance_macro_f1` on the test labels).
    """
    art = next((a for a in (_load_artifact(ctx, r.cell) for r in refs) if a), None)
    if not refs or art is None:
        return [], None
    first = refs[0]
    chance = chance_macro_f1(np.asarray(art["labels"]), n_boot=params.n_boot,
                             seed=int(first.params["seed"]))
    out = [_summary_record(suite, first, task_key, "chance_macro_f1", **chance.record_fields())]
    lows = [r.ci_low for r in refs]
    assert chance.value is not None
    if any(low is None for low in lows):
        out.append(_summary_record(
            suite, first, task_key, "task_signal", status="skipped", n=len(refs),
            error="no interval on the reference's macro-F1 (n_boot < 2): signal unknown"))
        return out, None
    worst = min(low for low in lows if low is not None)
    has_signal = worst > chance.value
    reason = None if has_signal else (
        f"no_signal: the reference's macro-F1 lower 95% bound {worst:.3f} does not exceed"
        f" chance {chance.value:.3f} (majority class / uniform guess) on {task_key}; the"
        " task did not learn within its budget, so differences on it are not findings")
    out.append(_summary_record(suite, first, task_key, "task_signal", value=float(has_signal),
                               n=len(refs), error=reason))
    return out, reason


def _comparisons(suite: Suite, mine: list[Record], params: AccuracyParams, ctx: RunContext
                 ) -> list[Record]:
    f1 = [r for r in mine if r.metric == "macro_f1"]
    refs = {(str(r.params["task"]), r.params["seed"]): r for r in f1 if is_reference(r, ctx)}
    bases = {(str(r.params["task"]), r.params["seed"]): r for r in f1
             if r.attention == BASELINE}
    sizes = {(str(r.params["task"]), r.label): r.value for r in mine if r.metric == "n_params"}
    ref_sizes = {str(r.params["task"]): r.value for r in mine
                 if r.metric == "n_params" and is_reference(r, ctx)}
    by_group: dict[tuple[str, str], list[Record]] = {}
    for r in f1:
        by_group.setdefault((str(r.params["task"]), r.label or r.attention), []).append(r)
    out: list[Record] = []
    no_signal: dict[str, str | None] = {}
    for task_key in sorted({t for t, _ in refs}):
        task_refs = sorted((r for (t, _), r in refs.items() if t == task_key),
                           key=lambda r: r.params["seed"])
        records, no_signal[task_key] = _signal(suite, task_key, task_refs, params, ctx)
        out += records
    for (task_key, label), rows in sorted(by_group.items()):
        rows = sorted(rows, key=lambda r: r.params["seed"])
        first = rows[0]
        reason = no_signal.get(task_key)
        verdict: dict[str, Any] = {"status": "skipped", "error": reason} if reason else {}
        if first.attention != BASELINE and (task_key, first.params["seed"]) in bases:
            gain = _paired(rows, bases, params.n_boot, ctx)
            if gain is not None:
                out.append(_summary_record(
                    suite, first, task_key, "macro_f1_gain_vs_no_attention",
                    **{**gain.difference.record_fields(), **verdict}))
        if is_reference(first, ctx):
            continue
        if task_key in ref_sizes and (task_key, label) in sizes:
            out.append(_summary_record(
                suite, first, task_key, "n_params_ratio_vs_reference",
                value=sizes[(task_key, label)] / ref_sizes[task_key], n=1))
        diff = _paired(rows, refs, params.n_boot, ctx)
        if diff is None:
            continue
        out.append(_summary_record(suite, first, task_key, "macro_f1_diff_vs_reference",
                                   **{**diff.difference.record_fields(), **verdict}))
        p_error = None if diff.p_value is not None else "n_boot < 2: no test"
        out.append(_summary_record(suite, first, task_key, "paired_p_value", value=diff.p_value,
                                   n=diff.difference.n, **(verdict or {"error": p_error})))
    return out
