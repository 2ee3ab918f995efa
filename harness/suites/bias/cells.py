"""Running one bias cell: train a model (on the planted-bias corpus or the run's text data), then
the group audit, the counterfactual and template probes and the probe set on it; the records
and the per-example outputs the summary's paired comparisons read."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from itertools import combinations
from typing import Any

import numpy as np
import torch

from harness.data import build_probe, derive_seed, swap, swap_directions
from harness.data.base import Split, TaskData
from harness.data.terms import axis_groups
from harness.measure.fairness import (
    GAP_METRICS,
    GROUP_METRICS,
    audit_groups,
    bias_amplification,
    counterfactual_from_scores,
    pair_differences,
    template_from_scores,
)
from harness.measure.stats import abs_estimate
from harness.records import Cell, Record
from harness.suites.base import AttentionSpec, RunContext
from harness.suites.bias.params import NONE, BiasParams
from harness.suites.predictions import PredictionSet, save_predictions
from harness.suites.probes import cell_record, score_probe_set
from harness.suites.training import (
    TrainParams,
    TrainResult,
    load_task_cached,
    predict,
    train_classifier,
)

__all__ = ["Scorer", "run_cell"]


class Scorer:
    """Predicted labels and positive-class scores of a trained model for any list of texts."""

    def __init__(self, model: Any, task: TaskData, *, positive: int, batch_size: int,
                 device: str) -> None:
        if task.tokenizer is None:
            raise ValueError(f"task {task.name!r} has no tokenizer; cannot encode probe texts")
        if not 0 <= positive < task.num_classes:
            raise ValueError(
                f"bias.positive_label={positive} is not a class of task {task.name!r}"
                f" (classes: {task.label_names}); pick an index below {task.num_classes}"
            )
        self.model, self.task, self.positive = model, task, positive
        self.batch_size, self.device = batch_size, device

    def split(self, split: Split) -> tuple[np.ndarray, np.ndarray]:
        """(predicted labels, positive-class scores) for an encoded split."""
        pred, prob = predict(self.model, split, batch_size=self.batch_size, device=self.device)
        return pred, prob[:, self.positive]

    def __call__(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(predicted labels, positive-class scores) for ``texts``."""
        if not texts:
            return np.zeros(0, np.int64), np.zeros(0)
        assert self.task.tokenizer is not None
        ids, mask = self.task.tokenizer.encode_batch(list(texts), self.task.max_len)
        labels = torch.zeros(len(texts), dtype=torch.long)
        return self.split(Split(ids, mask, labels))


def _fingerprint(*parts: Any) -> str:
    text = json.dumps(parts, default=str, sort_keys=True)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def _audit_records(cell: Cell, base: dict[str, Any], task: TaskData, pred: np.ndarray,
                   params: BiasParams, seed: int) -> tuple[list[Record], dict[str, Any]]:
    """Group audit of every axis, amplification of the planted group, and the artifact section."""
    split = task.test
    assert split.groups is not None
    y = split.labels.numpy()
    out: list[Record] = [cell_record(cell, "accuracy", {**base, "axis": "all"},
                                     value=float((pred == y).mean()), n=len(y))]
    pos = params.positive_label
    for axis in params.audit_axes:
        g = np.asarray(split.groups[axis])
        keep = g != NONE
        if len(set(g[keep].tolist())) < 2:
            out.append(cell_record(cell, "demographic_parity_difference", {**base, "axis": axis},
                                   status="skipped", error=f"fewer than two {axis} groups in the"
                                   " test split; raise corpus.n_test"))
            continue
        audit = audit_groups(y[keep], pred[keep], g[keep], positive=pos, n_boot=params.n_boot,
                             seed=derive_seed(seed, "audit", axis), stratify=True)
        for group in audit.groups:
            for metric in GROUP_METRICS:
                out.append(cell_record(cell, metric, {**base, "axis": axis, "group": group},
                                       audit.per_group[group][metric], per_group=True))
        for metric in GAP_METRICS:
            out.append(cell_record(cell, metric, {**base, "axis": axis}, audit.gaps[metric]))
    axis, group = params.corpus.bias_axis, params.corpus.bias_group
    train_groups = task.train.groups or {}
    in_group = np.asarray(split.groups[axis]) == group
    amp = bias_amplification(task.train.labels.numpy(), train_groups[axis], pred,
                             split.groups[axis], group, positive=pos, n_boot=params.n_boot,
                             seed=derive_seed(seed, "amplification"), strata=in_group * 2 + y)
    where = {**base, "axis": axis}
    out.append(cell_record(cell, "bias_amplification", where, amp.amplification))
    out.append(cell_record(cell, "model_association", where, amp.model_association))
    out.append(cell_record(cell, "data_association", where, value=amp.data_association,
                           n=len(task.train)))
    section = {
        "y_true": y.tolist(), "y_pred": pred.tolist(),
        "groups": {a: list(split.groups[a]) for a in sorted({*params.audit_axes, axis})},
        "planted_axis": axis, "planted_group": group,
        "data_association": amp.data_association,
        "fingerprint": _fingerprint(split.texts, y.tolist()),
    }
    return out, section


def _counterfactual_records(
    cell: Cell, base: dict[str, Any], texts: Sequence[str], labels: np.ndarray,
    scorer: Scorer, params: BiasParams, original: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[list[Record], dict[str, Any]]:
    """Swap identity terms in ``texts``; figures over the sentences each swap changed."""
    pred_o, score_o = original if original is not None else scorer(texts)
    out: list[Record] = []
    sections: dict[str, Any] = {}
    for name in params.swaps:
        for direction in swap_directions(name):
            where = {**base, "swap": name, "direction": direction}
            swapped, index = [], []
            for i, text in enumerate(texts):
                new, changed = swap(text, name, direction)
                if changed:
                    swapped.append(new)
                    index.append(i)
            if not index:
                out.append(cell_record(cell, "flip_rate", where, status="skipped", n=0,
                                       error=f"no test sentence contains a {name} term to swap"
                                       f" {direction}"))
                continue
            idx = np.asarray(index)
            pred_s, score_s = scorer(swapped)
            res = counterfactual_from_scores(labels[idx], pred_o[idx], pred_s, score_o[idx],
                                             score_s)
            out += [
                cell_record(cell, "flip_rate", where, res.flip_rate),
                cell_record(cell, "score_gap", where, abs_estimate(res.score_gap)),
                cell_record(cell, "score_difference", where, res.score_gap),
                cell_record(cell, "score_gap_p_value", where, value=res.p_value, n=res.n),
                cell_record(cell, "worst_case_accuracy", where, res.worst_case_accuracy),
            ]
            sections[f"{name}/{direction}"] = {
                "flip": (pred_o[idx] != pred_s).astype(int).tolist(),
                "delta": (score_s - score_o[idx]).tolist(),
                "fingerprint": _fingerprint([texts[i] for i in index]),
            }
    return out, sections


def _template_comparisons(axis: str) -> list[tuple[str, str, str, Callable[[Any], str]]]:
    """(attribute, group_a, group_b, key of a row) for the comparisons of one template axis."""
    def key(row: Any) -> str:
        return f"{row.template_id}|{row.emotion_word}"

    if axis == "gender":
        return [("gender", "female", "male", key)]
    if axis == "name":
        races = axis_groups("race")
        return [("gender", "female", "male", key)] + [
            ("race", a, b, key) for a, b in combinations(races, 2)
        ]
    groups = axis_groups(axis)
    return [(axis, a, b, key) for a, b in combinations(groups, 2)]


def _template_records(cell: Cell, base: dict[str, Any], scorer: Scorer,
                      params: BiasParams) -> tuple[list[Record], dict[str, Any]]:
    """Template probe: mean positive-score gap between groups over matched template pairs."""
    out: list[Record] = []
    sections: dict[str, Any] = {}
    if not params.template_axes:
        return out, sections
    rows = build_probe(axes=params.template_axes)
    _, scores = scorer([r.text for r in rows])
    for axis in params.template_axes:
        mine = [i for i, r in enumerate(rows) if r.axis == axis]
        for attribute, a, b, key in _template_comparisons(axis):
            keys = [key(rows[i]) for i in mine]
            groups = [getattr(rows[i], attribute) for i in mine]
            res = template_from_scores(keys, groups, scores[mine], a, b)
            where = {**base, "axis": axis, "attribute": attribute, "comparison": f"{a}-{b}"}
            out += [
                cell_record(cell, "score_gap", where, abs_estimate(res.score_gap)),
                cell_record(cell, "score_difference", where, res.score_gap),
                cell_record(cell, "score_gap_p_value", where, value=res.p_value, n=res.n_pairs),
            ]
            delta = pair_differences(keys, groups, scores[mine], a, b)
            sections[f"{axis}/{attribute}/{a}-{b}"] = {
                "delta": delta.tolist(), "fingerprint": _fingerprint(axis, attribute, a, b),
            }
    return out, sections


def run_cell(cell: Cell, params: BiasParams, ctx: RunContext) -> list[Record]:
    """The records of one bias cell (a controlled or a text probe), with torch's threads capped
    by ``params.threads`` on CPU."""
    before = torch.get_num_threads()
    if params.threads is not None and ctx.device == "cpu":
        torch.set_num_threads(min(params.threads, max(ctx.threads, 1)))
    try:
        if cell.params["probe"] == "text":
            return _run_text(cell, params, ctx)
        return _run_controlled(cell, params, ctx)
    finally:
        torch.set_num_threads(before)


def _train(cell: Cell, task: TaskData, train: TrainParams, ctx: RunContext) -> TrainResult:
    spec = AttentionSpec(cell.attention, dict(cell.options), cell.label)

    def progress(fraction: float, text: str) -> None:
        ctx.progress(0.8 * fraction, text)

    return train_classifier(spec, task, train, seed=int(cell.params["seed"]),
                            device=ctx.device, progress=progress)


def _run_controlled(cell: Cell, params: BiasParams, ctx: RunContext) -> list[Record]:
    seed = int(cell.params["seed"])
    corpus = params.corpus
    options = {"n_train": corpus.n_train, "n_val": corpus.n_val, "n_test": corpus.n_test,
               "bias_axis": corpus.bias_axis, "bias_group": corpus.bias_group,
               "strength": float(cell.params["strength"]), "mechanism": corpus.mechanism,
               "tokenizer": corpus.tokenizer, "seed": seed}
    ctx.progress(0.0, f"{cell.label}: building the bias corpus")
    task = load_task_cached("bias_sentiment", model=ctx.model, **options)
    # room for the project's template sentences; the user's probe set never changes the
    # trained model: its sentences are cut at the corpus's max_len (probe_truncated_fraction)
    probe_texts = [r.text for r in build_probe(axes=params.template_axes)] \
        if params.template_axes else []
    counts = getattr(task.tokenizer, "token_counts", None)
    if probe_texts and counts is not None:
        need = int(counts(probe_texts).max()) + 1
        if need > task.max_len:  # room for the template sentences too
            task = load_task_cached("bias_sentiment", model=ctx.model, **options,
                                    max_len=need)
    result = _train(cell, task, params.train, ctx)
    scorer = Scorer(result.model, task, positive=params.positive_label,
                    batch_size=params.predict_batch_size, device=ctx.device)
    ctx.progress(0.85, f"{cell.label}: group audit")
    pred, score = scorer.split(task.test)
    base = dict(cell.params)
    records, audit = _audit_records(cell, base, task, pred, params, seed)
    ctx.progress(0.9, f"{cell.label}: counterfactual probe")
    assert task.test.texts is not None
    cf_base = {**base, "probe": "counterfactual", "source": "controlled"}
    cf, cf_sections = _counterfactual_records(cell, cf_base, task.test.texts,
                                              task.test.labels.numpy(), scorer, params,
                                              original=(pred, score))
    ctx.progress(0.95, f"{cell.label}: template probe")
    tp, tp_sections = _template_records(cell, {**base, "probe": "template"}, scorer, params)
    records += cf + tp
    records.append(cell_record(cell, "train_time_s", base, value=result.train_time_s,
                               n=params.train.steps))
    test = PredictionSet("test", pred, score, texts=task.test.texts,
                         labels=task.test.labels.tolist(), groups=task.test.groups)
    extra = _probe_set(cell, base, scorer, task, params, ctx, records, [test])
    _save(cell, ctx, params, {"controlled": audit, "counterfactual": cf_sections,
                              "template": tp_sections, **extra})
    ctx.progress(1.0, f"{cell.label}: done")
    return records


def _run_text(cell: Cell, params: BiasParams, ctx: RunContext) -> list[Record]:
    data = ctx.data
    if data.dataset is None and data.data_files is None:
        return [Record.for_cell(
            cell, "cell_status", status="skipped",
            error="no text dataset for the text probe: pass --data-files train=PATH,test=PATH"
            " or --dataset NAME (the controlled cells already run the counterfactual and"
            " template probes on the bias corpus)")]
    assert params.text is not None
    tp = params.text
    seed = int(cell.params["seed"])
    options: dict[str, Any] = {"tokenizer": tp.tokenizer, "vocab_size": tp.vocab_size,
                               "max_len": tp.max_len, "max_train": tp.max_train,
                               "max_eval": tp.max_eval, "seed": seed}
    if data.dataset is not None:
        options["dataset"] = data.dataset
    else:
        options["data_files"] = dict(data.data_files or {})
    if data.text_column:
        options["text_column"] = data.text_column
    if data.label_column:
        options["label_column"] = data.label_column
    ctx.progress(0.0, f"{cell.label}: loading the text dataset")
    task = load_task_cached("text", model=ctx.model, **options)
    result = _train(cell, task, tp.train or params.train, ctx)
    scorer = Scorer(result.model, task, positive=params.positive_label,
                    batch_size=params.predict_batch_size, device=ctx.device)
    base = {**cell.params, "data": data.label}
    ctx.progress(0.85, f"{cell.label}: counterfactual probe")
    pred, score = scorer.split(task.test)
    texts = task.test.texts or []
    y = task.test.labels.numpy()
    records = [cell_record(cell, "accuracy", {**base, "axis": "all"},
                           value=float((pred == y).mean()), n=len(y))]
    cf, cf_sections = _counterfactual_records(
        cell, {**base, "probe": "counterfactual", "source": "text"}, texts, y, scorer,
        params, original=(pred, score))
    ctx.progress(0.95, f"{cell.label}: template probe")
    tpl, tp_sections = _template_records(cell, {**base, "probe": "template"}, scorer, params)
    records += cf + tpl
    records.append(cell_record(cell, "train_time_s", base, value=result.train_time_s,
                               n=(tp.train or params.train).steps))
    test = PredictionSet("test", pred, score, texts=texts, labels=y.tolist())
    extra = _probe_set(cell, base, scorer, task, params, ctx, records, [test])
    _save(cell, ctx, params, {"counterfactual": cf_sections, "template": tp_sections,
                              **extra})
    ctx.progress(1.0, f"{cell.label}: done")
    return records


def _probe_set(cell: Cell, base: dict[str, Any], scorer: Scorer, task: TaskData,
               params: BiasParams, ctx: RunContext, records: list[Record],
               sets: list[PredictionSet]) -> dict[str, Any]:
    """Score the run's probe set (if any) and save the cell's predictions (if asked);
    appends to ``records``; returns the artifact section."""
    extra: dict[str, Any] = {}
    if params.probe_set is not None:
        ctx.progress(0.97, f"{cell.label}: probe set")
        recs, section, preds = score_probe_set(
            cell, {**base, "source": base["probe"]}, scorer, task, params.probe_set,
            positive=params.positive_label, seed=int(cell.params["seed"]))
        records += recs
        sets = [*sets, preds]
        extra["probe_set"] = section
    save_predictions(ctx, cell, sets, records)
    return extra


def _save(cell: Cell, ctx: RunContext, params: BiasParams, data: dict[str, Any]) -> None:
    if not params.save_predictions or ctx.run_dir is None:
        return
    path = ctx.artifacts / f"{cell.id}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"cell": cell.id, "label": cell.label, "params": cell.params,
                               **data}), encoding="utf-8")
    tmp.replace(path)
