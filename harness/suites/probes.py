"""Audits on the user's probe set: per-group scores, paired differences, shifts vs the reference.

Every bias cell that trains a model (the planted corpus or the run's text data) scores the probe
set (:mod:`harness.data.probes`) and writes, per analysis column (each group column and, with two
or more, their intersection ``A × B``):

* per level (params ``column``, ``group``): ``positive_score`` (mean positive-class probability,
  t-interval) and ``selection_rate`` (predicted-positive rate, Wilson interval), point values from
  fairlearn's ``MetricFrame``; with a label column also ``accuracy``, ``f1``, ``tpr``, ``fpr``
  (bootstrap intervals on per-level confusion counts);
* between levels (params ``column``): ``positive_score_gap`` (max - min level mean),
  ``demographic_parity_difference`` (bootstrap intervals stratified by level) and, with labels,
  ``equalized_odds_difference``.

With pair columns, for every group column and two of its levels (params ``column``,
``comparison: "a-b"``): the EEC protocol. Rows that share the pair key and the values of the other
group columns differ only in this column; per key the mean score of level ``a`` minus that of
``b`` (several rows of a level under one key, e.g. several names, are averaged first).
``score_difference`` is the mean over keys with a t-interval, ``score_difference_bootstrap`` the
same with a bootstrap interval over keys, ``score_difference_p_value`` the paired t-test and
``score_difference_p_adjusted`` that p-value adjusted over every comparison of the cell (Holm by
default), ``flip_rate`` the share of cross-level row pairs under a key whose predicted labels
differ, and ``score_difference`` with a ``template`` param the same per template.

:func:`summarize_probe_set` compares each variant with the run's reference on the same probe rows
(``<metric>_shift_vs_reference``, paired t-tests over rows or keys, p-values adjusted per variant
and cell). ``significant_shift`` needs both an adjusted p below ``alpha`` and a shift of at least
``min_shift`` (default 0.01 on the [0, 1] score and rate scales): two backends of one attention
differ by rounding on every row, which a paired t-test over thousands of rows calls significant.
The tests cover the sampling of probe sentences for fixed trained models, not training
randomness.

Wide-format pairs (``pair_text_columns: [A, B]``, CrowS-Pairs style: two sentences per row): for
all rows (``column: all``) and per level of each group column (``column``, ``group``), with
``comparison: "A-B"``: ``pair_difference`` (mean of score(A) - score(B) over rows, t-interval),
``pair_difference_bootstrap``, ``pair_difference_p_value`` (paired t-test),
``pair_difference_p_adjusted`` (over the cell's subsets, Holm by default) and
``pair_a_higher_rate`` (share of rows whose A sentence scores higher, Wilson interval); the
summary adds ``pair_difference_shift_vs_reference`` per subset (paired t over rows).

Every probe cell also records ``probe_truncated_fraction``: the share of probe sentences longer
than the trained model's ``max_len`` (they are cut, never allowed to change the model).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from dataclasses import replace
from functools import lru_cache
from itertools import combinations
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, PositiveInt, model_validator

from harness.data import derive_seed
from harness.data.probes import ProbeSet, label_ids, load_probe_set
from harness.measure.fairness import _confusion, _rates
from harness.measure.stats import (
    Estimate,
    adjust_pvalues,
    bootstrap_mean,
    level_means,
    level_spread,
    mean_t_test,
    paired_spread_difference,
    percentile_estimate,
    ratio_bootstrap,
    resample_indices,
    wilson_interval,
)
from harness.records import Cell, Record, canonical_json
from harness.suites.base import MetricSpec, RunContext, SuiteParams, get_suite

__all__ = [
    "PROBE_GROUP_METRICS",
    "ProbeSetParams",
    "cell_record",
    "group_scores",
    "paired_comparisons",
    "probe_set_records",
    "summarize_probe_set",
]

PROBE = "probe_set"
#: Per-level metrics (labels add accuracy, f1, tpr, fpr).
PROBE_GROUP_METRICS = ("positive_score", "selection_rate")
_LABEL_METRICS = ("accuracy", "f1", "tpr", "fpr")
_SHIFTED = {"positive_score": ("mean positive score", "score"),
            "selection_rate": ("selection rate", "fraction"),
            "score_difference": ("paired score difference", "score"),
            "positive_score_gap": ("positive-score gap", "score"),
            "demographic_parity_difference": ("demographic-parity difference", "fraction"),
            "pair_difference": ("wide-pair score difference A − B", "score")}
#: The shifted gaps between groups (lower is better); the other shifts have no direction.
_GAPS = ("positive_score_gap", "demographic_parity_difference")
#: The metrics the probe-set audit adds to the bias suite (the others it writes, e.g.
#: ``selection_rate`` or ``flip_rate``, the suite already declares).
PROBE_METRIC_SPECS = (
    MetricSpec("probe_rows", "probe-set rows scored", "count"),
    MetricSpec("positive_score", "mean positive score", "score",
               description="mean positive-class probability over a probe-set group"),
    MetricSpec("positive_score_gap", "positive-score gap", "score", False,
               description="max - min of the groups' mean positive scores"),
    MetricSpec("score_difference_bootstrap", "paired score difference (bootstrap CI)", "score",
               format="signed"),
    MetricSpec("score_difference_p_value", "paired t-test p-value", "p"),
    MetricSpec("score_difference_p_adjusted", "paired t-test p-value, adjusted", "p"),
    MetricSpec("probe_truncated_fraction", "probe sentences cut at max_len", "fraction", False),
    MetricSpec("pair_difference", "wide-pair score difference A − B", "score",
               format="signed", description="mean positive score of column A minus column B,"
               " over the probe rows (CrowS-Pairs style)"),
    MetricSpec("pair_difference_bootstrap", "wide-pair difference (bootstrap CI)", "score",
               format="signed"),
    MetricSpec("pair_difference_p_value", "wide-pair paired t-test p-value", "p"),
    MetricSpec("pair_difference_p_adjusted", "wide-pair paired t-test p-value, adjusted", "p"),
    MetricSpec("pair_a_higher_rate", "share of rows where A scores higher", "fraction"),
    *(MetricSpec(f"{m}_shift_vs_reference", f"Δ {display} vs the reference (probe set)", unit,
                 False if m in _GAPS else None, format="signed", summary=True)
      for m, (display, unit) in _SHIFTED.items()),
    MetricSpec("shift_p_value", "shift p-value", "p", summary=True),
    MetricSpec("shift_p_adjusted", "shift p-value, adjusted", "p", summary=True),
    MetricSpec("significant_shift", "significant shift vs the reference", "flag", False,
               summary=True, description="adjusted p below alpha and a shift of at least"
               " min_shift"),
)


class ProbeSetParams(SuiteParams):
    """Where the probe set comes from and how its columns are read (``bias.probe_set``)."""

    files: list[str] | None = None
    dataset: str | None = None
    text_column: str = "sentence"
    group_columns: list[str] = Field(default_factory=list)
    pair_columns: list[str] = Field(default_factory=list)
    pair_text_columns: list[str] = Field(default_factory=list)
    label_column: str | None = None
    template_column: str | None = None
    label_map: dict[str, int] | None = None
    empty: Literal["level", "drop"] = "level"
    empty_level: str = "(empty)"
    multiplicity: Literal["holm", "bh", "none"] = "holm"
    alpha: float = Field(default=0.05, gt=0.0, lt=1.0)
    min_shift: float = Field(default=0.01, ge=0.0, lt=1.0)
    n_boot: PositiveInt = 500

    @model_validator(mode="after")
    def _one_source(self) -> ProbeSetParams:
        if (self.files is None) == (self.dataset is None):
            raise ValueError("probe_set needs exactly one of files: [PATH, ...] or dataset: NAME")
        if self.files is not None and not self.files:
            raise ValueError("probe_set.files is empty; list at least one file")
        if self.pair_text_columns and len(self.pair_text_columns) != 2:
            raise ValueError("probe_set.pair_text_columns needs exactly two columns [A, B],"
                             f" got {self.pair_text_columns}")
        if not self.group_columns and not self.pair_text_columns:
            raise ValueError("probe_set.group_columns: name at least one group column")
        return self

    def load(self) -> ProbeSet:
        """The validated probe set (cached per settings and file size/mtime)."""
        stamp = []
        for f in self.files or []:
            try:
                st = Path(f).expanduser().stat()
                stamp.append((f, st.st_size, st.st_mtime_ns))
            except OSError:
                stamp.append((f, None, None))
        return _load_cached(canonical_json([self.model_dump(mode="json"), stamp]))


@lru_cache(maxsize=4)
def _load_cached(key: str) -> ProbeSet:
    data = json.loads(key)[0]
    return load_probe_set(
        files=data["files"], dataset=data["dataset"], text_column=data["text_column"],
        group_columns=data["group_columns"], pair_columns=data["pair_columns"],
        label_column=data["label_column"], template_column=data["template_column"],
        empty=data["empty"], empty_level=data["empty_level"],
        pair_text_columns=data["pair_text_columns"])


# ---------------------------------------------------------------------------------------------
# per-group figures


def group_scores(score: np.ndarray, positive: np.ndarray, levels: Sequence[str], *,
                 n_boot: int, seed: int, y_true: np.ndarray | None = None
                 ) -> tuple[dict[str, dict[str, Estimate]], dict[str, Estimate]]:
    """Per level and between levels, from one fairlearn ``MetricFrame`` (point values).

    ``score``: positive-class probabilities; ``positive``: 1 where the predicted label is the
    positive class; ``y_true``: 1 where the expected label is (None: no label metrics).
    Per level: ``positive_score`` (t-interval), ``selection_rate`` (Wilson) and, with labels,
    ``accuracy``, ``f1``, ``tpr``, ``fpr`` (bootstrap); between levels (max - min, bootstrap
    stratified by level): ``positive_score_gap``, ``demographic_parity_difference`` and, with
    labels, ``equalized_odds_difference``.
    """
    from fairlearn.metrics import MetricFrame, false_positive_rate, true_positive_rate
    from sklearn.metrics import accuracy_score, f1_score

    lv = np.asarray(levels, dtype=object).astype(str)
    names = sorted(set(lv.tolist()))
    yt = (positive if y_true is None else y_true).astype(np.int64)
    yp = positive.astype(np.int64)
    metrics: dict[str, Any] = {"positive_score": lambda a, b, score: float(np.mean(score)),
                               "selection_rate": lambda a, b: float(np.mean(b))}
    params: dict[str, Any] = {"positive_score": {"score": score.astype(float)}}
    if y_true is not None:
        metrics |= {"accuracy": accuracy_score, "tpr": true_positive_rate,
                    "fpr": false_positive_rate,
                    "f1": lambda a, b: float(f1_score(a, b, zero_division=0))}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        by = MetricFrame(metrics=metrics, y_true=yt, y_pred=yp, sensitive_features=lv,
                         sample_params=params).by_group
    codes = np.searchsorted(np.asarray(names), lv)
    idx = resample_indices(len(lv), n_boot, seed, strata=codes)
    boot = _rates(_confusion(codes * 4 + yt * 2 + yp, len(names), idx))
    per: dict[str, dict[str, Estimate]] = {}
    for j, g in enumerate(names):
        mask = lv == g
        n = int(mask.sum())
        t_est, _ = mean_t_test(score[mask])
        w = wilson_interval(yp[mask])
        per[g] = {
            "positive_score": replace(t_est, value=float(by.loc[g, "positive_score"])),
            "selection_rate": replace(w, value=float(by.loc[g, "selection_rate"])),
        }
        if y_true is not None:
            for metric in _LABEL_METRICS:
                per[g][metric] = percentile_estimate(float(by.loc[g, metric]),
                                                     boot[metric][:, j], n)
    full = np.arange(len(lv))[None, :]
    point = _rates(_confusion(codes * 4 + yt * 2 + yp, len(names), full))
    gaps = {"positive_score_gap": percentile_estimate(
        float(level_spread(level_means(score.astype(float), codes, len(names), full))[0]),
        level_spread(level_means(score.astype(float), codes, len(names), idx)), len(lv))}
    sel = np.array([per[g]["selection_rate"].value for g in names], dtype=float)
    gaps["demographic_parity_difference"] = percentile_estimate(
        float(sel.max() - sel.min()), level_spread(boot["selection_rate"]), len(lv))
    if y_true is not None:
        def eo(rates: dict[str, np.ndarray]) -> np.ndarray:
            return np.maximum(level_spread(rates["tpr"]), level_spread(rates["fpr"]))

        gaps["equalized_odds_difference"] = percentile_estimate(float(eo(point)[0]), eo(boot),
                                                                len(lv))
    return per, gaps


# ---------------------------------------------------------------------------------------------
# paired (EEC) comparisons


def _key_members(keys: Sequence[str | None], levels: Sequence[str | None]
                 ) -> dict[str, dict[str, list[int]]]:
    out: dict[str, dict[str, list[int]]] = {}
    for i, (k, g) in enumerate(zip(keys, levels, strict=True)):
        if k is not None and g is not None:
            out.setdefault(k, {}).setdefault(g, []).append(i)
    return out


def paired_comparisons(keys: Sequence[str | None], levels: Sequence[str | None]
                       ) -> dict[tuple[str, str], tuple[list[str], list[list[int]],
                                                        list[list[int]]]]:
    """For every two levels ``a < b``: the keys holding both, and per key the rows of each."""
    members = _key_members(keys, levels)
    names = sorted({g for g in levels if g is not None})
    out = {}
    for a, b in combinations(names, 2):
        shared = sorted(k for k, by in members.items() if a in by and b in by)
        out[(a, b)] = (shared, [members[k][a] for k in shared], [members[k][b] for k in shared])
    return out


def _key_differences(values: np.ndarray, rows_a: list[list[int]],
                     rows_b: list[list[int]]) -> np.ndarray:
    return np.array([values[ra].mean() - values[rb].mean()
                     for ra, rb in zip(rows_a, rows_b, strict=True)], dtype=float)


def _flip_counts(pos: np.ndarray, rows_a: list[list[int]], rows_b: list[list[int]]
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Per key: cross-level row pairs whose predicted labels differ, and all cross pairs."""
    flips, pairs = [], []
    for ra, rb in zip(rows_a, rows_b, strict=True):
        pa, pb = pos[ra].sum(), pos[rb].sum()
        na, nb = len(ra), len(rb)
        flips.append(pa * (nb - pb) + (na - pa) * pb)
        pairs.append(na * nb)
    return np.asarray(flips, dtype=float), np.asarray(pairs, dtype=float)


# ---------------------------------------------------------------------------------------------
# one cell


def cell_record(cell: Cell, metric: str, params: dict[str, Any], est: Estimate | None = None, *,
                value: float | None = None, n: int | None = None, status: str = "ok",
                error: str | None = None, per_group: bool = False) -> Record:
    """A record of a metric the cell's suite declares (see ``Suite.record``)."""
    fields = est.record_fields() if est is not None else {"value": value, "n": n}
    return get_suite(cell.suite).record(cell, metric, params=params, status=status, error=error,
                                        per_group=per_group, **fields)


def probe_set_records(cell: Cell, base: dict[str, Any], probe: ProbeSet, pred: np.ndarray,
                      score: np.ndarray, *, positive: int, label_names: Sequence[str],
                      num_classes: int, params: ProbeSetParams, seed: int
                      ) -> tuple[list[Record], dict[str, Any]]:
    """The probe-set records of one trained model (see the module doc) and its artifact section.

    ``pred`` are predicted class indices and ``score`` positive-class probabilities, one per
    probe row in order; ``base`` the params every record carries.
    """
    where = {**base, "probe": PROBE, "set": probe.name}
    pos = (pred == positive).astype(np.int64)
    if probe.wide is not None:
        out = [cell_record(cell, "probe_rows", where, value=float(probe.rows), n=probe.rows)]
        out += wide_pair_records(cell, where, probe, score, params, seed)
        return out, {"fingerprint": probe.fingerprint, "score": score.astype(float).tolist(),
                     "positive": pos.tolist()}
    y = np.asarray(label_ids(probe, label_names, num_classes, positive=positive,
                             label_map=params.label_map)) if probe.labels is not None else None
    out = [cell_record(cell, "probe_rows", where, value=float(len(probe)), n=len(probe))]
    if y is not None:
        out.append(cell_record(cell, "accuracy", {**where, "column": "all"},
                               wilson_interval((pred == y).astype(float))))
    for column, levels in probe.analysis_columns().items():
        keep = np.array([v is not None for v in levels])
        lv = [str(v) for v in levels if v is not None]
        if len(set(lv)) < 2:
            out.append(cell_record(cell, "positive_score_gap", {**where, "column": column},
                                   status="skipped", error=f"column {column!r} has fewer than two"
                                   " levels after dropping empty values"))
            continue
        per, gaps = group_scores(
            score[keep], pos[keep], lv, n_boot=params.n_boot,
            seed=derive_seed(seed, "probe_set", column),
            y_true=None if y is None else (y[keep] == positive).astype(np.int64))
        for g, metrics in per.items():
            at = {**where, "column": column, "group": g}
            for metric, est in metrics.items():
                out.append(cell_record(cell, metric, at, est, per_group=True))
        for metric, est in gaps.items():
            out.append(cell_record(cell, metric, {**where, "column": column}, est))
    out += _paired_records(cell, where, probe, pos, score, params, seed)
    section = {"fingerprint": probe.fingerprint, "score": score.astype(float).tolist(),
               "positive": pos.tolist()}
    return out, section


def _paired_records(cell: Cell, where: dict[str, Any], probe: ProbeSet, pos: np.ndarray,
                    score: np.ndarray, params: ProbeSetParams, seed: int) -> list[Record]:
    if probe.keys is None:
        return []
    out: list[Record] = []
    tested: list[tuple[dict[str, Any], float, int]] = []
    templates = probe.templates or []
    for column in probe.group_columns:
        keys = probe.pair_keys(column)
        for (a, b), (shared, rows_a, rows_b) in paired_comparisons(
                keys, probe.groups[column]).items():
            at = {**where, "column": column, "comparison": f"{a}-{b}"}
            if len(shared) < 2:
                out.append(cell_record(cell, "score_difference", at, status="skipped",
                                       n=len(shared), error=f"levels {a!r} and {b!r} of {column!r}"
                                       f" share {len(shared)} pair key(s); a paired test needs 2"))
                continue
            diff = _key_differences(score, rows_a, rows_b)
            est, p = mean_t_test(diff)
            s = derive_seed(seed, "probe_pairs", column, a, b)
            boot = bootstrap_mean(diff, params.n_boot, s)
            flips, pairs = _flip_counts(pos, rows_a, rows_b)
            out += [
                cell_record(cell, "score_difference", at, est),
                cell_record(cell, "score_difference_bootstrap", at, boot),
                cell_record(cell, "score_difference_p_value", at, value=p, n=diff.size),
                cell_record(cell, "flip_rate", at, ratio_bootstrap(flips, pairs, params.n_boot, s)),
            ]
            if p is not None:
                tested.append((at, p, diff.size))
            out += _subset_records(cell, at, probe, diff, rows_a)
            if templates:
                by_template: dict[str, list[int]] = {}
                for j, ra in enumerate(rows_a):
                    by_template.setdefault(templates[ra[0]], []).append(j)
                for template, js in sorted(by_template.items()):
                    t_est, _ = mean_t_test(diff[js])
                    out.append(cell_record(cell, "score_difference", {**at, "template": template},
                                           t_est))
    adjusted = adjust_pvalues([p for _, p, _ in tested], params.multiplicity)
    for (at, _, n), q in zip(tested, adjusted, strict=True):
        out.append(cell_record(cell, "score_difference_p_adjusted",
                               {**at, "multiplicity": params.multiplicity}, value=q, n=n))
    return out


def _subset_records(cell: Cell, at: dict[str, Any], probe: ProbeSet, diff: np.ndarray,
                    rows_a: list[list[int]]) -> list[Record]:
    """With keys holding an empty pair value (e.g. EEC's neutral templates, which have no
    emotion word) and keys without: ``score_difference`` for each kind apart (``pairs``
    param: ``complete`` or ``empty <columns>``)."""
    if not probe.pair_empty or not any(probe.pair_empty) or all(probe.pair_empty):
        return []
    empty = np.array([probe.pair_empty[ra[0]] for ra in rows_a], dtype=bool)
    out = []
    label = "empty " + ", ".join(probe.pair_columns)
    for name, mask in (("complete", ~empty), (label, empty)):
        if mask.sum() == 0:
            continue
        est, _ = mean_t_test(diff[mask])
        out.append(cell_record(cell, "score_difference", {**at, "pairs": name}, est))
    return out


def _wide_subsets(probe: ProbeSet) -> list[tuple[str, str | None, np.ndarray]]:
    """``(column, group, row mask)``: every row (``all``), then each level of each group
    column (rows with a dropped empty value left out)."""
    n = probe.rows
    out: list[tuple[str, str | None, np.ndarray]] = [("all", None, np.ones(n, dtype=bool))]
    for column, levels in probe.groups.items():
        for g in sorted({v for v in levels if v is not None}):
            out.append((column, g, np.array([v == g for v in levels], dtype=bool)))
    return out


def wide_pair_records(cell: Cell, where: dict[str, Any], probe: ProbeSet, score: np.ndarray,
                      params: ProbeSetParams, seed: int) -> list[Record]:
    """The wide-format pair records of one model (module doc): ``score`` holds every row's A
    score, then every row's B score."""
    n = probe.rows
    diff = score[:n].astype(float) - score[n:].astype(float)
    comparison = "-".join(probe.pair_text_columns)
    out: list[Record] = []
    tested: list[tuple[dict[str, Any], float, int]] = []
    for column, group, mask in _wide_subsets(probe):
        at = {**where, "column": column, "comparison": comparison,
              **({"group": group} if group is not None else {})}
        d = diff[mask]
        if d.size < 2:
            out.append(cell_record(cell, "pair_difference", at, status="skipped", n=int(d.size),
                                   error=f"{d.size} row(s) in this subset; a paired test needs 2"))
            continue
        est, p = mean_t_test(d)
        s = derive_seed(seed, "probe_wide", column, group or "")
        out += [
            cell_record(cell, "pair_difference", at, est),
            cell_record(cell, "pair_difference_bootstrap", at, bootstrap_mean(d, params.n_boot, s)),
            cell_record(cell, "pair_difference_p_value", at, value=p, n=int(d.size)),
            cell_record(cell, "pair_a_higher_rate", at, wilson_interval((d > 0).astype(float))),
        ]
        if p is not None:
            tested.append((at, p, int(d.size)))
    adjusted = adjust_pvalues([p for _, p, _ in tested], params.multiplicity)
    for (at, _, k), q in zip(tested, adjusted, strict=True):
        out.append(cell_record(cell, "pair_difference_p_adjusted",
                               {**at, "multiplicity": params.multiplicity}, value=q, n=k))
    return out


# ---------------------------------------------------------------------------------------------
# across attentions


def _artifact(ctx: RunContext, cell_id: str | None, cache: dict[str, Any]) -> dict | None:
    if ctx.run_dir is None or not cell_id:
        return None
    if cell_id not in cache:
        path = Path(ctx.run_dir) / "artifacts" / f"{cell_id}.json"
        try:
            cache[cell_id] = json.loads(path.read_text(encoding="utf-8")).get(PROBE)
        except (OSError, ValueError):
            cache[cell_id] = None
    return cache[cell_id]


def summarize_probe_set(records: list[Record], params: ProbeSetParams, ctx: RunContext,
                        suite: str) -> list[Record]:
    """Each variant minus the run's reference on the same probe rows (same cell params): shifts
    of per-level scores and rates (paired t over rows), of paired differences (paired t over
    keys) and of the gaps (paired bootstrap); p-values adjusted per variant and cell."""
    rows = [r for r in records if r.suite == suite and r.metric == "probe_rows"
            and r.status == "ok" and not (r.cell or "").startswith("summary:")]
    refs = {canonical_json(r.params): r for r in rows if ctx.is_reference(r.label or r.attention)}
    if not refs:
        return []
    probe = params.load()
    cache: dict[str, Any] = {}
    out: list[Record] = []
    for r in rows:
        ref = refs.get(canonical_json(r.params))
        if ref is None or ref is r or ctx.is_reference(r.label or r.attention):
            continue
        mine, theirs = _artifact(ctx, r.cell, cache), _artifact(ctx, ref.cell, cache)
        if not mine or not theirs or not mine["fingerprint"] == theirs["fingerprint"] \
                == probe.fingerprint:
            out.append(_shift_rec(r, "positive_score_shift_vs_reference", r.params,
                                  status="skipped", error="no per-example scores of this"
                                  " probe set for the variant or the reference (artifacts missing"
                                  " or from other probe files)"))
            continue
        out += _shifts(r, probe, mine, theirs, params)
    return out


def _shift_rec(r: Record, metric: str, params: dict[str, Any], est: Estimate | None = None,
               **kwargs: Any) -> Record:
    """A summary record of ``r``'s variant (a metric its suite declares, see ``Suite.record``)."""
    fields = est.record_fields() if est is not None else {}
    return get_suite(r.suite).record(r, metric, params=params, **{**fields, **kwargs})


def _shifts(r: Record, probe: ProbeSet, mine: dict, theirs: dict,
            params: ProbeSetParams) -> list[Record]:
    score_v, score_r = np.asarray(mine["score"], float), np.asarray(theirs["score"], float)
    pos_v, pos_r = np.asarray(mine["positive"], float), np.asarray(theirs["positive"], float)
    seed = derive_seed(int(r.params.get("seed", 0)), "probe_shift", r.label or r.attention)
    tests: list[tuple[str, dict[str, Any], Estimate, float | None]] = []
    out: list[Record] = []
    if probe.wide is not None:
        n = probe.rows
        d = (score_v[:n] - score_v[n:]) - (score_r[:n] - score_r[n:])
        comparison = "-".join(probe.pair_text_columns)
        for column, group, mask in _wide_subsets(probe):
            if mask.sum() < 2:
                continue
            est, p = mean_t_test(d[mask])
            tests.append(("pair_difference", {**r.params, "column": column,
                                              "comparison": comparison,
                                              **({"group": group} if group else {})}, est, p))
    for column, levels in ({} if probe.wide is not None else
                           probe.analysis_columns()).items():
        lv = np.array(["" if v is None else str(v) for v in levels], dtype=object)
        keep = np.array([v is not None for v in levels])
        names = sorted(set(lv[keep].tolist()))
        if len(names) < 2:
            continue
        for g in names:
            mask = keep & (lv == g)
            at = {**r.params, "column": column, "group": g}
            for metric, v, ref in (("positive_score", score_v, score_r),
                                   ("selection_rate", pos_v, pos_r)):
                est, p = mean_t_test(v[mask] - ref[mask])
                tests.append((metric, at, est, p))
        codes = np.searchsorted(np.asarray(names), lv[keep].astype(str))
        for metric, v, ref in (("positive_score_gap", score_v, score_r),
                               ("demographic_parity_difference", pos_v, pos_r)):
            est = paired_spread_difference(v[keep], ref[keep], codes, len(names), params.n_boot,
                                           derive_seed(seed, column))
            out.append(_shift_rec(r, f"{metric}_shift_vs_reference",
                                  {**r.params, "column": column}, est))
    if probe.keys is not None and probe.wide is None:
        for column in probe.group_columns:
            for (a, b), (shared, rows_a, rows_b) in paired_comparisons(
                    probe.pair_keys(column), probe.groups[column]).items():
                if len(shared) < 2:
                    continue
                d = (_key_differences(score_v, rows_a, rows_b)
                     - _key_differences(score_r, rows_a, rows_b))
                est, p = mean_t_test(d)
                tests.append(("score_difference",
                              {**r.params, "column": column, "comparison": f"{a}-{b}"}, est, p))
    adjusted = iter(adjust_pvalues([p for *_, p in tests if p is not None], params.multiplicity))
    for metric, at, est, p in tests:
        out.append(_shift_rec(r, f"{metric}_shift_vs_reference", at, est))
        if p is None:
            continue
        q = next(adjusted)
        where = {**at, "metric": metric}
        out += [
            _shift_rec(r, "shift_p_value", where, value=p, n=est.n),
            _shift_rec(r, "shift_p_adjusted", {**where, "multiplicity": params.multiplicity},
                       value=q, n=est.n),
            _shift_rec(r, "significant_shift", {**where, "alpha": params.alpha,
                                                "min_shift": params.min_shift},
                       value=float(q < params.alpha and abs(est.value or 0.0) >= params.min_shift),
                       n=est.n),
        ]
    return out


def score_probe_set(cell: Cell, base: dict[str, Any], scorer: Any, task: Any,
                    params: ProbeSetParams, *, positive: int, seed: int
                    ) -> tuple[list[Record], dict[str, Any], Any]:
    """Score the probe set with ``scorer`` (texts -> predicted labels, positive scores) of the
    model trained on ``task``: its records, artifact section and :class:`PredictionSet`."""
    from harness.suites.predictions import PredictionSet

    probe = params.load()
    pred, score = scorer(probe.texts)
    records, section = probe_set_records(
        cell, base, probe, pred, score, positive=positive, label_names=task.label_names,
        num_classes=task.num_classes, params=params, seed=seed)
    counts = getattr(task.tokenizer, "token_counts", None)
    if counts is not None and probe.texts:
        cut = int((np.asarray(counts(probe.texts)) + 1 > task.max_len).sum())
        records.insert(1, cell_record(cell, "probe_truncated_fraction",
                                      {**base, "probe": PROBE, "set": probe.name},
                                      value=cut / len(probe.texts), n=len(probe.texts)))
    labels = label_ids(probe, task.label_names, task.num_classes, positive=positive,
                       label_map=params.label_map) if probe.labels is not None else None
    groups: dict[str, Any] = dict(probe.groups)
    if probe.wide is not None:
        groups = {c: list(v) * 2 for c, v in probe.groups.items()}
        groups["pair_side"] = [probe.pair_text_columns[i >= probe.rows]
                               for i in range(len(probe.texts))]
        groups["pair_row"] = [str(i % probe.rows) for i in range(len(probe.texts))]
    if probe.keys is not None:
        groups["pair_key"] = [None if k is None else k.replace("\x1f", " | ")
                              for k in probe.keys]
    preds = PredictionSet(PROBE, pred, score, texts=probe.texts, labels=labels, groups=groups,
                          ids=[f"{PROBE}:{i}" for i in range(len(probe))])
    return records, section, preds
