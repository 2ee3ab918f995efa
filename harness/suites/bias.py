"""Bias-probe suite: does a model treat groups alike, and does the attention variant change that?

Two kinds of cell per attention and seed (every attention gets the same :class:`TrainParams`):

* ``{"probe": "controlled", "planted": "<axis>:<group>", "strength": s, "seed": k}`` trains on the
  data layer's ``bias_sentiment`` corpus, whose training labels tie one group to the negative class
  with strength ``s`` (0 = no association), and scores the balanced test split where group and
  label are independent. It writes the group audit of every demographic attribute (fairlearn
  ``MetricFrame``: per-group rates, demographic-parity and equalized-odds gaps, bootstrap CIs),
  the bias amplification of the planted group, a counterfactual probe on the test sentences and
  the template probe.
* ``{"probe": "text", "seed": k}`` trains on the run's text dataset (``--data-files`` or
  ``--dataset``, capped by ``text``) and runs the counterfactual and template probes on it;
  without external data the cell is recorded as skipped.

``summarize`` compares every bias metric of each variant with the run's reference (profile
``reference``, ``standard`` by default) on the same examples: a paired bootstrap over test
examples from the per-example outputs each cell saves to ``artifacts/<cell id>.json``
(``params.ci_method = "paired_bootstrap"``), or, when those files are missing, a normal
approximation from the two records' intervals assuming independence
(``"normal_approx"``). Those intervals cover the sampling of test examples only, not training
randomness; with two or more seeds a ``seed: "all"`` record adds the mean difference over seeds
with a t-interval (``"t_over_seeds"``).

Flags: every comparison of an efficient attention tests one-sided whether it is more than
``min_increase`` more biased than the reference (``increase_p_value``: a Wald test on the paired
bootstrap's standard error, or Student's t over seeds). The comparisons of one attention at one
seed (or ``all``) and one planted strength (or data source) are one family: their p-values are
adjusted together (``multiplicity``: Holm by default, or Benjamini-Hochberg;
``increase_p_adjusted``) and ``significant_increase`` is 1 where the adjusted p-value is at most
``alpha``. Tested alone at 95%, about half the null families carried a false flag; adjusted, at
most ``alpha`` of them do (``scripts/prove_bias_calibration.py``).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import replace
from itertools import combinations
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field, NonNegativeInt, PositiveInt, field_validator, model_validator
from scipy.stats import norm

from harness.data import build_probe, derive_seed, list_swaps, swap, swap_directions
from harness.data.base import Split, TaskData
from harness.data.terms import ATTRIBUTES, AXES, axis_groups
from harness.measure.fairness import (
    GAP_METRICS,
    GROUP_METRICS,
    amplification_statistic,
    audit_groups,
    bias_amplification,
    counterfactual_from_scores,
    gap_statistic,
    mean_statistic,
    pair_differences,
    template_from_scores,
)
from harness.measure.stats import (
    Estimate,
    adjust_pvalues,
    normal_interval,
    one_sided_p,
    paired_bootstrap,
    t_interval,
)
from harness.records import Cell, Record
from harness.suites.base import (
    AttentionSpec,
    MetricSpec,
    RunContext,
    Suite,
    SuiteParams,
    register_suite,
)
from harness.suites.predictions import PredictionSet, save_predictions
from harness.suites.probes import (
    PROBE_METRIC_SPECS,
    ProbeSetParams,
    score_probe_set,
    summarize_probe_set,
)
from harness.suites.training import TrainParams, load_task_cached, predict, train_classifier

__all__ = [
    "BIAS_METRICS",
    "BiasParams",
    "BiasSuite",
    "CorpusParams",
    "Scorer",
    "TextProbeParams",
]

_NONE = "none"
def _default_train() -> TrainParams:
    return TrainParams(steps=200, batch_size=32, lr=2e-3, eval_every=50, hidden_size=32,
                       num_layers=1, num_heads=2, ffn_size=64, dropout=0.0)


class CorpusParams(SuiteParams):
    """The planted-bias corpus (``bias_sentiment``): sizes, the planted group and its mechanism."""

    n_train: PositiveInt = 2000
    n_val: PositiveInt = 300
    n_test: PositiveInt = 1000
    bias_axis: str = "gender"
    bias_group: str = "female"
    mechanism: Literal["label_flip", "sampling"] = "label_flip"
    tokenizer: Literal["word", "byte"] = "word"

    @model_validator(mode="after")
    def _known_group(self) -> CorpusParams:
        if self.bias_axis not in ATTRIBUTES:
            raise ValueError(
                f"corpus.bias_axis must be one of {', '.join(ATTRIBUTES)}, got {self.bias_axis!r}"
            )
        groups = axis_groups(self.bias_axis)
        if self.bias_group not in groups:
            raise ValueError(
                f"corpus.bias_group {self.bias_group!r} is not a {self.bias_axis} group;"
                f" choose one of {', '.join(groups)}"
            )
        return self


def _check_attention_options(value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    from harness.attention import attention_class, attention_options, list_attentions

    for name, options in value.items():
        if name not in list_attentions():
            raise ValueError(f"attention_options: unknown attention {name!r}; registered:"
                             f" {', '.join(list_attentions())}")
        unknown = sorted(set(options) - set(attention_options(attention_class(name))))
        if unknown:
            valid = ", ".join(attention_options(attention_class(name)))
            raise ValueError(f"attention_options.{name}: unknown option(s)"
                             f" {', '.join(unknown)}; valid: {valid}")
    return value


class TextProbeParams(SuiteParams):
    """Training on the run's text dataset (``--data-files``/``--dataset``) for the text probes.

    ``attention_options`` apply on top of the suite's for the text cells (longer inputs).
    """

    tokenizer: Literal["byte", "word", "bpe", "wordpiece"] = "bpe"
    vocab_size: PositiveInt = 4000
    max_len: int = Field(default=48, ge=8)
    max_train: PositiveInt | None = 2000
    max_eval: PositiveInt | None = 1000
    train: TrainParams | None = None  # None: the suite's ``train``
    attention_options: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @field_validator("attention_options")
    @classmethod
    def _options(cls, v: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        return _check_attention_options(v)


class BiasParams(SuiteParams):
    """Parameters of the bias suite (see the module doc for the cells they plan).

    ``min_increase``: the practical-significance floor. ``significant_increase`` tests whether a
    variant is more than this margin more biased than the reference (0: any increase). Scores and
    rates live on [0, 1], so one margin fits every bias metric; it keeps negligible but
    "significant" differences (e.g. 0.005 in the positive score of a saturated model) from
    raising flags.

    ``multiplicity`` / ``alpha``: the flags of one attention (per seed and planted strength or
    data source) form one family of tests, adjusted together: ``holm`` (default) bounds the
    chance of *any* false flag in the family by ``alpha`` (family-wise error), under any
    dependence between the tests; ``bh`` (Benjamini-Hochberg) bounds the expected share of false
    flags among the flags instead (more power, weaker promise); ``none`` tests each comparison
    alone (the pre-adjustment behaviour: about half the null families carry a false flag).

    ``threads`` caps torch's CPU threads inside a cell: models this small train fastest on one
    thread (more threads only add synchronisation, and spin badly on a shared CPU); ``None``
    keeps the run's setting.

    ``attention_options`` (per attention name) fill in options a profile's attention spec leaves
    unset. The corpus's sentences are ~15 tokens, so block-sparse and LSH need small blocks and
    chunks (e.g. ``{sparse: {block_size: 2, random_blocks: 0}, lsh: {chunk_size: 4}}``) to be
    anything but full attention; the options that ran are in every record's ``options``.
    """

    strengths: list[float] = Field(default_factory=lambda: [0.8])
    corpus: CorpusParams = Field(default_factory=CorpusParams)
    train: TrainParams = Field(default_factory=_default_train)
    audit_axes: list[str] = Field(default_factory=lambda: list(ATTRIBUTES))
    swaps: list[str] = Field(default_factory=list_swaps)
    template_axes: list[str] = Field(default_factory=lambda: ["gender", "name"])
    n_boot: NonNegativeInt = 200
    positive_label: NonNegativeInt = 1
    predict_batch_size: PositiveInt = 512
    save_predictions: bool = True
    min_increase: float = Field(default=0.0, ge=0.0, lt=1.0)
    multiplicity: Literal["holm", "bh", "none"] = "holm"
    alpha: float = Field(default=0.05, gt=0.0, lt=1.0)
    threads: PositiveInt | None = 1
    attention_options: dict[str, dict[str, Any]] = Field(default_factory=dict)
    text: TextProbeParams | None = Field(default_factory=TextProbeParams)
    probe_set: ProbeSetParams | None = None
    #: Time limit of one cell (seconds): past it the cell is stopped and recorded ``timeout``.
    timeout_s: float = Field(default=14400.0, gt=0.0)

    @field_validator("attention_options")
    @classmethod
    def _options(cls, v: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        return _check_attention_options(v)

    @field_validator("strengths")
    @classmethod
    def _strengths(cls, v: list[float]) -> list[float]:
        if not v:
            raise ValueError("strengths needs at least one value in [0, 1], e.g. [0.0, 0.8]")
        bad = [s for s in v if not 0.0 <= s <= 1.0]
        if bad:
            raise ValueError(f"strengths must lie in [0, 1]; got {bad}")
        if len(set(v)) != len(v):
            raise ValueError(f"strengths must not repeat, got {v}")
        return [float(s) for s in v]

    @field_validator("audit_axes")
    @classmethod
    def _axes(cls, v: list[str]) -> list[str]:
        bad = [a for a in v if a not in ATTRIBUTES]
        if bad or not v:
            raise ValueError(f"audit_axes: unknown {bad or v}; choose from {', '.join(ATTRIBUTES)}")
        return v

    @field_validator("swaps")
    @classmethod
    def _swaps(cls, v: list[str]) -> list[str]:
        bad = [s for s in v if s not in list_swaps()]
        if bad:
            raise ValueError(f"swaps: unknown {bad}; choose from {', '.join(list_swaps())}")
        return v

    @field_validator("template_axes")
    @classmethod
    def _template_axes(cls, v: list[str]) -> list[str]:
        bad = [a for a in v if a not in AXES or a == _NONE]
        if bad:
            allowed = ", ".join(a for a in AXES if a != _NONE)
            raise ValueError(f"template_axes: unknown {bad}; choose from {allowed}")
        return v


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


def _rec(cell: Cell, metric: str, params: dict[str, Any], est: Estimate | None = None, *,
         value: float | None = None, n: int | None = None, status: str = "ok",
         error: str | None = None, per_group: bool = False) -> Record:
    """A record of a metric :class:`BiasSuite` declares (see ``Suite.record``)."""
    fields = est.record_fields() if est is not None else {"value": value, "n": n}
    if n is not None:
        fields["n"] = n
    return BiasSuite.record(cell, metric, params=params, status=status, error=error,
                            per_group=per_group, **fields)


def _abs_estimate(est: Estimate) -> Estimate:
    """|mean| with the interval mapped through |.| (from 0 when the interval spans 0)."""
    if est.value is None:
        return est
    if est.ci_low is None or est.ci_high is None:
        return replace(est, value=abs(est.value))
    lo, hi = sorted((abs(est.ci_low), abs(est.ci_high)))
    if est.ci_low <= 0 <= est.ci_high:
        lo = 0.0
    return replace(est, value=abs(est.value), ci_low=lo, ci_high=hi)


# ---------------------------------------------------------------------------------------------
# probes on one trained model


def _audit_records(cell: Cell, base: dict[str, Any], task: TaskData, pred: np.ndarray,
                   params: BiasParams, seed: int) -> tuple[list[Record], dict[str, Any]]:
    """Group audit of every axis, amplification of the planted group, and the artifact section."""
    split = task.test
    assert split.groups is not None
    y = split.labels.numpy()
    out: list[Record] = [_rec(cell, "accuracy", {**base, "axis": "all"},
                              value=float((pred == y).mean()), n=len(y))]
    pos = params.positive_label
    for axis in params.audit_axes:
        g = np.asarray(split.groups[axis])
        keep = g != _NONE
        if len(set(g[keep].tolist())) < 2:
            out.append(_rec(cell, "demographic_parity_difference", {**base, "axis": axis},
                            status="skipped", error=f"fewer than two {axis} groups in the test"
                            " split; raise corpus.n_test"))
            continue
        audit = audit_groups(y[keep], pred[keep], g[keep], positive=pos, n_boot=params.n_boot,
                             seed=derive_seed(seed, "audit", axis), stratify=True)
        for group in audit.groups:
            for metric in GROUP_METRICS:
                out.append(_rec(cell, metric, {**base, "axis": axis, "group": group},
                                audit.per_group[group][metric], per_group=True))
        for metric in GAP_METRICS:
            out.append(_rec(cell, metric, {**base, "axis": axis}, audit.gaps[metric]))
    axis, group = params.corpus.bias_axis, params.corpus.bias_group
    train_groups = task.train.groups or {}
    in_group = np.asarray(split.groups[axis]) == group
    amp = bias_amplification(task.train.labels.numpy(), train_groups[axis], pred,
                             split.groups[axis], group, positive=pos, n_boot=params.n_boot,
                             seed=derive_seed(seed, "amplification"), strata=in_group * 2 + y)
    where = {**base, "axis": axis}
    out.append(_rec(cell, "bias_amplification", where, amp.amplification))
    out.append(_rec(cell, "model_association", where, amp.model_association))
    out.append(_rec(cell, "data_association", where, value=amp.data_association,
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
                out.append(_rec(cell, "flip_rate", where, status="skipped", n=0,
                                error=f"no test sentence contains a {name} term to swap"
                                f" {direction}"))
                continue
            idx = np.asarray(index)
            pred_s, score_s = scorer(swapped)
            res = counterfactual_from_scores(labels[idx], pred_o[idx], pred_s, score_o[idx],
                                             score_s)
            out += [
                _rec(cell, "flip_rate", where, res.flip_rate),
                _rec(cell, "score_gap", where, _abs_estimate(res.score_gap)),
                _rec(cell, "score_difference", where, res.score_gap),
                _rec(cell, "score_gap_p_value", where, value=res.p_value, n=res.n),
                _rec(cell, "worst_case_accuracy", where, res.worst_case_accuracy),
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
                _rec(cell, "score_gap", where, _abs_estimate(res.score_gap)),
                _rec(cell, "score_difference", where, res.score_gap),
                _rec(cell, "score_gap_p_value", where, value=res.p_value, n=res.n_pairs),
            ]
            delta = pair_differences(keys, groups, scores[mine], a, b)
            sections[f"{axis}/{attribute}/{a}-{b}"] = {
                "delta": delta.tolist(), "fingerprint": _fingerprint(axis, attribute, a, b),
            }
    return out, sections


# ---------------------------------------------------------------------------------------------
# the suite

#: The cell metrics (``compared=True``: the summary compares them with the run's reference, as
#: ``<metric>_diff_vs_reference``).
_CELL_SPECS = (
    MetricSpec("demographic_parity_difference", "demographic-parity difference", "fraction",
               False, headline=True, compared=True,
               description="on the planted axis of the controlled probe"),
    MetricSpec("demographic_parity_ratio", "demographic-parity ratio", "fraction", True,
               compared=True),
    MetricSpec("equalized_odds_difference", "equalized-odds difference", "fraction", False,
               compared=True),
    MetricSpec("bias_amplification", "bias amplification", "fraction", False, compared=True),
    MetricSpec("flip_rate", "counterfactual flip rate", "fraction", False, compared=True),
    MetricSpec("score_gap", "score gap", "score", False, compared=True),
    MetricSpec("selection_rate", "selection rate", "fraction"),
    MetricSpec("tpr", "true-positive rate", "fraction"),
    MetricSpec("fpr", "false-positive rate", "fraction"),
    MetricSpec("accuracy", "accuracy", "fraction", True),
    MetricSpec("f1", "F1", "fraction"),
    MetricSpec("model_association", "model association", "fraction"),
    MetricSpec("data_association", "data association", "fraction"),
    MetricSpec("score_difference", "score difference", "score", format="signed"),
    MetricSpec("score_gap_p_value", "score-gap p-value", "p"),
    MetricSpec("worst_case_accuracy", "worst-case accuracy", "fraction", True),
    MetricSpec("train_time_s", "training time", "s", False),
)
#: The compared metrics and whether higher is better (from their specs).
BIAS_METRICS = {m.name: m.higher_is_better for m in _CELL_SPECS if m.compared}
_METRIC_SPECS = (
    *_CELL_SPECS,
    *(MetricSpec(f"{m.name}_diff_vs_reference", f"Δ {m.display} vs the reference", m.unit,
                 m.higher_is_better, format="signed", summary=True)
      for m in _CELL_SPECS if m.compared),
    MetricSpec("significant_increase", "significant increase vs the reference", "flag", False,
               summary=True, description="over seeds: more than min_increase more biased than"
               " the reference, after multiplicity control within the attention's family"),
    MetricSpec("increase_p_value", "p-value of the increase (raw)", "p", summary=True),
    MetricSpec("increase_p_adjusted", "p-value of the increase (adjusted)", "p", summary=True,
               description="Holm or Benjamini-Hochberg within the family; n = family size"),
    *PROBE_METRIC_SPECS,
)


@register_suite
class BiasSuite(Suite):
    name = "bias"
    description = ("fairlearn group audits, bias amplification, counterfactual and template"
                   " probes per attention")
    Params = BiasParams
    version = 2  # 2: flags over seeds with multiplicity control
    section = "harness.report.sections.bias:render"
    metrics = _METRIC_SPECS

    def plan(self, params: BiasParams, attentions: list[AttentionSpec],
             seeds: list[int]) -> list[Cell]:
        planted = f"{params.corpus.bias_axis}:{params.corpus.bias_group}"
        if params.probe_set is not None:
            params.probe_set.load()  # bad probe input stops the run before anything trains
        cells = []
        for spec in attentions:
            suite_wide = params.attention_options.get(spec.name, {})
            options = {**spec.resolved_options, **suite_wide, **spec.options}
            for seed in seeds:
                for strength in params.strengths:
                    cells.append(Cell(self.name, spec.name, options,
                                      {"probe": "controlled", "planted": planted,
                                       "strength": strength, "seed": seed}, spec.label))
                if params.text is not None:
                    text_options = {**spec.resolved_options, **suite_wide,
                                    **params.text.attention_options.get(spec.name, {}),
                                    **spec.options}
                    cells.append(Cell(self.name, spec.name, text_options,
                                      {"probe": "text", "seed": seed}, spec.label))
        return cells

    def cell_weight(self, cell: Cell) -> float:
        return 1.0

    def run_cell(self, cell: Cell, params: BiasParams, ctx: RunContext) -> list[Record]:
        before = torch.get_num_threads()
        if params.threads is not None and ctx.device == "cpu":
            torch.set_num_threads(min(params.threads, max(ctx.threads, 1)))
        try:
            if cell.params["probe"] == "text":
                return self._run_text(cell, params, ctx)
            return self._run_controlled(cell, params, ctx)
        finally:
            torch.set_num_threads(before)

    def _train(self, cell: Cell, task: TaskData, train: TrainParams, ctx: RunContext):
        spec = AttentionSpec(cell.attention, dict(cell.options), cell.label)

        def progress(fraction: float, text: str) -> None:
            ctx.progress(0.8 * fraction, text)

        return train_classifier(spec, task, train, seed=int(cell.params["seed"]),
                                device=ctx.device, progress=progress)

    def _run_controlled(self, cell: Cell, params: BiasParams, ctx: RunContext) -> list[Record]:
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
        result = self._train(cell, task, params.train, ctx)
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
        records.append(_rec(cell, "train_time_s", base, value=result.train_time_s,
                            n=params.train.steps))
        test = PredictionSet("test", pred, score, texts=task.test.texts,
                             labels=task.test.labels.tolist(), groups=task.test.groups)
        extra = self._probe_set(cell, base, scorer, task, params, ctx, records, [test])
        self._save(cell, ctx, params, {"controlled": audit, "counterfactual": cf_sections,
                                       "template": tp_sections, **extra})
        ctx.progress(1.0, f"{cell.label}: done")
        return records

    def _run_text(self, cell: Cell, params: BiasParams, ctx: RunContext) -> list[Record]:
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
        result = self._train(cell, task, tp.train or params.train, ctx)
        scorer = Scorer(result.model, task, positive=params.positive_label,
                        batch_size=params.predict_batch_size, device=ctx.device)
        base = {**cell.params, "data": data.label}
        ctx.progress(0.85, f"{cell.label}: counterfactual probe")
        pred, score = scorer.split(task.test)
        texts = task.test.texts or []
        y = task.test.labels.numpy()
        records = [_rec(cell, "accuracy", {**base, "axis": "all"},
                        value=float((pred == y).mean()), n=len(y))]
        cf, cf_sections = _counterfactual_records(
            cell, {**base, "probe": "counterfactual", "source": "text"}, texts, y, scorer,
            params, original=(pred, score))
        ctx.progress(0.95, f"{cell.label}: template probe")
        tpl, tp_sections = _template_records(cell, {**base, "probe": "template"}, scorer, params)
        records += cf + tpl
        records.append(_rec(cell, "train_time_s", base, value=result.train_time_s,
                            n=(tp.train or params.train).steps))
        test = PredictionSet("test", pred, score, texts=texts, labels=y.tolist())
        extra = self._probe_set(cell, base, scorer, task, params, ctx, records, [test])
        self._save(cell, ctx, params, {"counterfactual": cf_sections, "template": tp_sections,
                                       **extra})
        ctx.progress(1.0, f"{cell.label}: done")
        return records

    @staticmethod
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

    @staticmethod
    def _save(cell: Cell, ctx: RunContext, params: BiasParams, data: dict[str, Any]) -> None:
        if not params.save_predictions or ctx.run_dir is None:
            return
        path = ctx.artifacts / f"{cell.id}.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps({"cell": cell.id, "label": cell.label, "params": cell.params,
                                   **data}), encoding="utf-8")
        tmp.replace(path)

    # -----------------------------------------------------------------------------------------
    # across attentions

    def summarize(self, records: list[Record], params: BiasParams,
                  ctx: RunContext) -> list[Record]:
        """Each variant's bias metrics minus the reference's on the same probe and seed, and, with
        two or more seeds, the mean difference over seeds with a t-interval (``seed: "all"``),
        which also covers training randomness; then the flags, family by family."""
        probe_shifts = [] if params.probe_set is None else summarize_probe_set(
            records, params.probe_set, ctx, self.name)
        mine = [r for r in records if r.suite == self.name and r.status == "ok"
                and r.metric in BIAS_METRICS and r.value is not None
                and r.params.get("probe") != "probe_set"
                and not (r.cell or "").startswith("summary:")]
        reference = {(json.dumps(r.params, sort_keys=True), r.metric): r
                     for r in mine if ctx.is_reference(r.label or r.attention)}
        if not reference:
            return probe_shifts
        # another backend of the reference's attention is a sanity check, not a finding
        ref_attentions = {r.attention for r in reference.values()}
        cache: dict[str, dict[str, Any] | None] = {}
        out: list[Record] = []
        tests: list[tuple[Record, dict[str, Any], Estimate]] = []
        per_seed: dict[str, list[tuple[Record, Estimate]]] = {}
        for r in mine:
            if ctx.is_reference(r.label or r.attention):
                continue
            ref = reference.get((json.dumps(r.params, sort_keys=True), r.metric))
            if ref is None:
                continue
            est, method = self._difference(r, ref, params, ctx, cache)
            where = {**r.params, "ci_method": method}
            out.append(self._diff_record(r, where, est))
            if r.attention not in ref_attentions:
                tests.append((r, where, est))
            if "seed" in r.params:
                rest = {k: v for k, v in r.params.items() if k != "seed"}
                key = json.dumps([r.label, r.attention, r.options, r.metric, rest],
                                 sort_keys=True, default=str)
                per_seed.setdefault(key, []).append((r, est))
        for rows in per_seed.values():
            values = [est.value for _, est in rows if est.value is not None]
            if len(values) < 2:
                continue
            first = rows[0][0]
            where = {**{k: v for k, v in first.params.items() if k != "seed"}, "seed": "all",
                     "ci_method": "t_over_seeds"}
            est = t_interval(values)
            out.append(self._diff_record(first, where, est))
            if first.attention not in ref_attentions:
                tests.append((first, where, est))
        return out + self._flags(tests, params) + probe_shifts

    def _diff_record(self, r: Record, where: dict[str, Any], est: Estimate) -> Record:
        """``<metric>_diff_vs_reference``: variant minus the reference with its interval."""
        return self.record(r, f"{r.metric}_diff_vs_reference", params=where,
                           **est.record_fields())

    def _flags(self, tests: list[tuple[Record, dict[str, Any], Estimate]],
               params: BiasParams) -> list[Record]:
        """Tests of "more biased than the reference", with multiplicity control per family.

        Each comparison tests ``H0: the variant is at most min_increase more biased than the
        reference`` one-sided (``increase_p_value``); the p-values of one family (one attention,
        one seed or ``all``, one planted strength or data source) are adjusted together with
        ``params.multiplicity`` (``increase_p_adjusted``, whose ``n`` is the family size).

        ``significant_increase`` (adjusted p <= ``alpha``) is a verdict on the attention, so it
        is given only over seeds (``seed: "all"``): one seed's interval covers the sampling of
        test examples, not training randomness, and two models trained alike differ in their
        spurious associations (on the quick corpus at strength 0, Holm-adjusted per-seed tests
        still flagged most (attention, seed) families, while the over-seed tests flagged none).
        With a single seed the flag is recorded as skipped, with that reason.
        """
        raw: list[float | None] = []
        for r, _, est in tests:
            if est.value is None or est.stderr is None:
                raw.append(None)
                continue
            if BIAS_METRICS[r.metric]:  # higher is better: more biased = lower
                raw.append(one_sided_p(est, -params.min_increase, "less"))
            else:
                raw.append(one_sided_p(est, params.min_increase, "greater"))
        families: dict[str, list[int]] = {}
        for i, (r, where, _) in enumerate(tests):
            family = json.dumps([r.label or r.attention, r.options, where.get("seed"),
                                 where.get("strength", where.get("source", where.get("probe")))],
                                sort_keys=True, default=str)
            families.setdefault(family, []).append(i)
        adjusted: list[float | None] = [None] * len(tests)
        sizes = [0] * len(tests)
        for members in families.values():
            values = adjust_pvalues([raw[i] for i in members], params.multiplicity)
            size = sum(raw[i] is not None for i in members)
            for i, value in zip(members, values, strict=True):
                adjusted[i], sizes[i] = value, size
        out: list[Record] = []
        over_seeds: set[tuple[str, str]] = set()
        single: dict[tuple[str, str], tuple[Record, dict[str, Any]]] = {}
        for (r, where, est), p_raw, p_adj, size in zip(tests, raw, adjusted, sizes, strict=True):
            flag_params = {**where, "metric": r.metric}
            common = {"source": r, "params": flag_params}
            missing = None if p_adj is not None else "no standard error for the difference"
            group = (r.label or r.attention, str(where.get("strength", where.get("source"))))
            if where.get("seed") == "all":
                over_seeds.add(group)
                worse = None if p_adj is None else float(p_adj <= params.alpha)
                out.append(self.record(**common, metric="significant_increase", value=worse,
                                       n=est.n, error=missing))
            else:
                single.setdefault(group, (r, where))
            out += [
                self.record(**common, metric="increase_p_value", value=p_raw, n=est.n,
                            error=missing),
                self.record(**common, metric="increase_p_adjusted", value=p_adj, n=size,
                            error=missing),
            ]
        for group, (r, where) in sorted(single.items(), key=lambda kv: kv[0]):
            if group in over_seeds:
                continue
            keep = {k: where[k] for k in ("probe", "planted", "strength", "source", "data")
                    if k in where}
            out.append(self.record(
                r, "significant_increase", params={**keep, "seed": "all"}, status="skipped",
                error="a verdict on the attention needs two or more seeds (one seed's interval"
                " covers test sampling, not training randomness); see increase_p_adjusted for"
                " this model against the reference's"))
        return out

    def _difference(self, r: Record, ref: Record, params: BiasParams, ctx: RunContext,
                    cache: dict[str, dict[str, Any] | None]) -> tuple[Estimate, str]:
        arrays = [self._arrays(x, params, ctx, cache) for x in (r, ref)]
        if arrays[0] is not None and arrays[1] is not None:
            (a, stat, fa, strata), (b, _, fb, _) = arrays
            if fa == fb and len(next(iter(a.values()))) == len(next(iter(b.values()))):
                seed = derive_seed(int(r.params.get("seed", 0)), "diff", r.metric,
                                   json.dumps(r.params, sort_keys=True))
                return paired_bootstrap(a, b, stat, n_boot=max(params.n_boot, 2), seed=seed,
                                        strata=strata).difference, "paired_bootstrap"
        return _normal_difference(r, ref), "normal_approx"

    @staticmethod
    def _arrays(r: Record, params: BiasParams, ctx: RunContext,
                cache: dict[str, dict[str, Any] | None]):
        """(per-example arrays, statistic, fingerprint, strata) behind ``r``, from its cell's
        artifact; None when the artifact or its section is missing."""
        if ctx.run_dir is None or not r.cell:
            return None
        if r.cell not in cache:
            path = Path(ctx.run_dir) / "artifacts" / f"{r.cell}.json"
            try:
                cache[r.cell] = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                cache[r.cell] = None
        art = cache[r.cell]
        if art is None:
            return None
        p = r.params
        probe = p.get("probe")
        if probe == "controlled" and "controlled" in art and "axis" in p:
            sec = art["controlled"]
            groups = sec["groups"].get(p["axis"])
            if groups is None:
                return None
            y, pred = np.asarray(sec["y_true"]), np.asarray(sec["y_pred"])
            g = np.asarray(groups)
            pos = params.positive_label
            if r.metric == "bias_amplification":
                inside = g == sec["planted_group"]
                arrays = {"y_pred": (pred == pos).astype(int), "in_group": inside,
                          "data_association": np.full(len(y), sec["data_association"])}
                return (arrays, amplification_statistic, sec["fingerprint"],
                        inside * 2 + (y == pos))
            keep = g != _NONE
            arrays = {"y_true": (y[keep] == pos).astype(int),
                      "y_pred": (pred[keep] == pos).astype(int), "group": g[keep]}
            strata = np.char.add(g[keep].astype(str), (y[keep] == pos).astype(int).astype(str))
            return arrays, gap_statistic(r.metric), sec["fingerprint"], strata
        if probe == "counterfactual":
            sec = art.get("counterfactual", {}).get(f"{p.get('swap')}/{p.get('direction')}")
            if sec is None:
                return None
            key, stat = ("flip", mean_statistic("flip")) if r.metric == "flip_rate" else \
                ("delta", mean_statistic("delta", absolute=True))
            return {key: np.asarray(sec[key], dtype=float)}, stat, sec["fingerprint"], None
        if probe == "template":
            name = f"{p.get('axis')}/{p.get('attribute')}/{p.get('comparison')}"
            sec = art.get("template", {}).get(name)
            if sec is None:
                return None
            return ({"delta": np.asarray(sec["delta"], dtype=float)},
                    mean_statistic("delta", absolute=True), sec["fingerprint"], None)
        return None


def _normal_difference(r: Record, ref: Record) -> Estimate:
    """Difference of two independent estimates with a normal-approximation 95% interval."""
    diff = float(r.value) - float(ref.value)  # type: ignore[arg-type]

    def se(x: Record) -> float | None:
        if x.stderr is not None:
            return x.stderr
        if x.ci_low is not None and x.ci_high is not None and x.interval == "ci95":
            return (x.ci_high - x.ci_low) / (2 * float(norm.ppf(0.975)))
        return None

    s1, s2 = se(r), se(ref)
    n = min(x for x in (r.n, ref.n) if x is not None) if (r.n or ref.n) else None
    if s1 is None or s2 is None:
        return Estimate(diff, n=n)
    return normal_interval(diff, math.sqrt(s1 * s1 + s2 * s2), n)
