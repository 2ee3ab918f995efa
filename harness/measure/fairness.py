"""Bias-probe computations: group audits (fairlearn), bias amplification, counterfactual and
template probes, and paired comparisons between two models scored on the same examples.

Everything here works on plain arrays (labels, predictions, positive-class scores) and is
independent of how the model was trained; :mod:`harness.suites.bias` wires it to the trainer.
Intervals, tests and the paired bootstrap come from :mod:`harness.measure.stats`.

Point values of the group audit come from fairlearn's ``MetricFrame``; the bootstrap intervals
come from a vectorized recomputation on per-group confusion counts (fairlearn's own bootstrap
rebuilds a ``MetricFrame`` per resample, far too slow for a benchmark loop). Both follow
fairlearn's conventions: a rate whose denominator is empty is 0, a ratio whose maximum is 0 is
undefined (None). The tests check the two against each other.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.measure.stats import (
    Estimate,
    check_n_boot,
    index_chunks,
    paired_ttest,
    percentile_estimate,
    resample_indices,
    t_interval,
    wilson_interval,
)

__all__ = [
    "GAP_METRICS",
    "GROUP_METRICS",
    "AmplificationResult",
    "CounterfactualResult",
    "Estimate",
    "GroupAudit",
    "TemplateResult",
    "amplification_statistic",
    "association",
    "audit_groups",
    "bias_amplification",
    "counterfactual_from_scores",
    "gap_statistic",
    "group_gap_samples",
    "mean_statistic",
    "pair_differences",
    "template_from_scores",
]

#: Per-group rates reported by :func:`audit_groups` (informational: no direction).
GROUP_METRICS = ("selection_rate", "tpr", "fpr", "accuracy", "f1")
#: Between-group gaps (their units and directions: the bias suite's metric declarations).
GAP_METRICS = ("demographic_parity_difference", "demographic_parity_ratio",
               "equalized_odds_difference")


def _labels(values: Any, name: str, where: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(
            f"{where}: {name} must be 1-D (one entry per example), got shape {arr.shape}"
        )
    if arr.size == 0:
        raise ValueError(f"{where}: {name} is empty; pass at least one example")
    return arr


def _binary(values: Any, name: str, where: str, positive: Any) -> np.ndarray:
    arr = _labels(values, name, where)
    return (arr == positive).astype(np.int64)


def _same_length(where: str, **arrays: np.ndarray) -> int:
    sizes = {k: len(v) for k, v in arrays.items()}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"{where}: inputs must have one entry per example, got lengths {sizes}")
    return next(iter(sizes.values()))


# ---------------------------------------------------------------------------------------------
# group audit


def _confusion(codes: np.ndarray, n_groups: int, idx: np.ndarray) -> np.ndarray:
    """Per-resample, per-group confusion counts ``(B, G, 2, 2)``, indexed ``[y_true][y_pred]``.

    ``codes`` packs ``group * 4 + y_true * 2 + y_pred`` per example; ``idx`` is ``(B, n)``.
    """
    width = 4 * n_groups
    out = []
    for part in index_chunks(idx):
        b = part.shape[0]
        flat = (codes[part] + width * np.arange(b)[:, None]).ravel()
        out.append(np.bincount(flat, minlength=b * width).reshape(b, n_groups, 2, 2))
    return np.concatenate(out, axis=0) if out else np.zeros((0, n_groups, 2, 2), np.int64)


def _rates(counts: np.ndarray) -> dict[str, np.ndarray]:
    """Per-group rates from confusion counts ``(..., G, 2, 2)``; empty denominators give 0
    (fairlearn's convention), an empty group gives NaN selection rate and accuracy."""
    tn, fp = counts[..., 0, 0].astype(float), counts[..., 0, 1].astype(float)
    fn, tp = counts[..., 1, 0].astype(float), counts[..., 1, 1].astype(float)
    total = tn + fp + fn + tp

    def div(a: np.ndarray, b: np.ndarray, empty: float) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(b > 0, a / np.where(b > 0, b, 1.0), empty)

    return {
        "selection_rate": div(tp + fp, total, np.nan),
        "tpr": div(tp, tp + fn, 0.0),
        "fpr": div(fp, fp + tn, 0.0),
        "accuracy": div(tp + tn, total, np.nan),
        "f1": div(2 * tp, 2 * tp + fp + fn, 0.0),
    }


def _gaps(rates: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Between-group gaps (fairlearn's ``between_groups`` / ``worst_case``) over the last axis."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        sr = rates["selection_rate"]
        hi, lo = np.nanmax(sr, axis=-1), np.nanmin(sr, axis=-1)
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = np.where(hi > 0, lo / np.where(hi > 0, hi, 1.0), np.nan)
        tpr_gap = np.nanmax(rates["tpr"], axis=-1) - np.nanmin(rates["tpr"], axis=-1)
        fpr_gap = np.nanmax(rates["fpr"], axis=-1) - np.nanmin(rates["fpr"], axis=-1)
    return {
        "demographic_parity_difference": hi - lo,
        "demographic_parity_ratio": ratio,
        "equalized_odds_difference": np.maximum(tpr_gap, fpr_gap),
    }


@dataclass
class GroupAudit:
    """Per-group rates and between-group gaps of one sensitive attribute.

    ``per_group[group][metric]`` and ``gaps[metric]`` are :class:`Estimate` s; ``counts[group]`` is
    the number of test examples in the group.
    """

    groups: list[str]
    counts: dict[str, int]
    per_group: dict[str, dict[str, Estimate]]
    gaps: dict[str, Estimate]


def _encode(
    y_true: np.ndarray, y_pred: np.ndarray, sensitive: np.ndarray
) -> tuple[np.ndarray, list[str]]:
    groups = sorted({str(s) for s in sensitive})
    index = {g: i for i, g in enumerate(groups)}
    gid = np.fromiter((index[str(s)] for s in sensitive), dtype=np.int64, count=len(sensitive))
    return gid * 4 + y_true * 2 + y_pred, groups


def audit_groups(
    y_true: Any,
    y_pred: Any,
    sensitive: Sequence[Any],
    *,
    positive: Any = 1,
    n_boot: int = 200,
    seed: int = 0,
    stratify: bool = False,
) -> GroupAudit:
    """Audit predictions by group with fairlearn's ``MetricFrame``, plus bootstrap 95% intervals.

    Per group: selection rate, TPR, FPR, accuracy and F1 for the ``positive`` class; between
    groups: demographic-parity difference and ratio and equalized-odds difference. Intervals
    resample test examples (``n_boot`` resamples, ``seed``); ``n_boot=0`` gives point values only.
    """
    from fairlearn.metrics import (
        MetricFrame,
        demographic_parity_difference,
        demographic_parity_ratio,
        equalized_odds_difference,
        false_positive_rate,
        selection_rate,
        true_positive_rate,
    )
    from sklearn.metrics import accuracy_score, f1_score

    where = "audit_groups"
    check_n_boot(n_boot, where)
    yt = _binary(y_true, "y_true", where, positive)
    yp = _binary(y_pred, "y_pred", where, positive)
    sf = _labels(sensitive, "sensitive", where).astype(str)
    n = _same_length(where, y_true=yt, y_pred=yp, sensitive=sf)
    codes, groups = _encode(yt, yp, sf)
    if len(groups) < 2:
        raise ValueError(
            f"{where}: the sensitive attribute has a single group {groups}; a gap needs at least"
            " two groups (check that the test split mixes groups)"
        )

    def f1(a: np.ndarray, b: np.ndarray) -> float:
        return float(f1_score(a, b, zero_division=0))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        frame = MetricFrame(
            metrics={
                "selection_rate": selection_rate,
                "tpr": true_positive_rate,
                "fpr": false_positive_rate,
                "accuracy": accuracy_score,
                "f1": f1,
            },
            y_true=yt,
            y_pred=yp,
            sensitive_features=sf,
        )
        points = {
            "demographic_parity_difference": demographic_parity_difference(
                yt, yp, sensitive_features=sf),
            "demographic_parity_ratio": demographic_parity_ratio(yt, yp, sensitive_features=sf),
            "equalized_odds_difference": equalized_odds_difference(
                yt, yp, sensitive_features=sf),
        }
    by_group = frame.by_group
    strata = codes // 2 if stratify else None  # group * 2 + y_true
    idx = resample_indices(n, n_boot, seed, strata)
    boot_rates = _rates(_confusion(codes, len(groups), idx))
    boot_gaps = _gaps(boot_rates)
    counts = {g: int(np.count_nonzero(sf == g)) for g in groups}
    per_group = {
        g: {
            m: percentile_estimate(float(by_group.loc[g, m]), boot_rates[m][:, j], counts[g])
            for m in GROUP_METRICS
        }
        for j, g in enumerate(groups)
    }
    gaps = {m: percentile_estimate(float(points[m]), boot_gaps[m], n) for m in GAP_METRICS}
    return GroupAudit(groups=groups, counts=counts, per_group=per_group, gaps=gaps)


def group_gap_samples(
    y_true: np.ndarray, y_pred: np.ndarray, sensitive: np.ndarray, idx: np.ndarray,
    *, positive: Any = 1,
) -> dict[str, np.ndarray]:
    """Gap metrics (:data:`GAP_METRICS`) on each row of ``idx`` (``(B, n)``): ``(B,)`` arrays."""
    where = "group_gap_samples"
    yt = _binary(y_true, "y_true", where, positive)
    yp = _binary(y_pred, "y_pred", where, positive)
    sf = _labels(sensitive, "sensitive", where).astype(str)
    _same_length(where, y_true=yt, y_pred=yp, sensitive=sf)
    codes, groups = _encode(yt, yp, sf)
    return _gaps(_rates(_confusion(codes, len(groups), idx)))


# ---------------------------------------------------------------------------------------------
# bias amplification


def association(values: Any, groups: Sequence[Any], group: str, *, positive: Any = 1) -> float:
    """Group-label association: rate of ``positive`` among ``group`` minus the rate in the rest."""
    where = "association"
    v = _binary(values, "values", where, positive)
    g = _labels(groups, "groups", where).astype(str)
    _same_length(where, values=v, groups=g)
    inside = g == str(group)
    if not inside.any() or inside.all():
        present = sorted(set(g.tolist()))
        raise ValueError(
            f"{where}: group {group!r} must hold some but not all examples; groups present:"
            f" {present}"
        )
    return float(v[inside].mean() - v[~inside].mean())


def _association_samples(v: np.ndarray, inside: np.ndarray, idx: np.ndarray) -> np.ndarray:
    out = []
    for part in index_chunks(idx):
        vi, gi = v[part], inside[part]
        n_in = gi.sum(axis=1)
        n_out = gi.shape[1] - n_in
        with np.errstate(invalid="ignore", divide="ignore"):
            a = (vi * gi).sum(axis=1) / n_in - (vi * ~gi).sum(axis=1) / n_out
        out.append(np.where((n_in > 0) & (n_out > 0), a, np.nan))
    return np.concatenate(out) if out else np.zeros(0)


@dataclass(frozen=True)
class AmplificationResult:
    """Bias amplification: model association (test predictions) - data association (train)."""

    amplification: Estimate
    model_association: Estimate
    data_association: float
    group: str


def _amplified(model: Any, data: float) -> Any:
    """Model association beyond the data's, in the direction of the data's association."""
    if data == 0:
        return np.abs(model)
    return np.sign(data) * (np.asarray(model) - data)


def bias_amplification(
    train_labels: Any,
    train_groups: Sequence[Any],
    test_pred: Any,
    test_groups: Sequence[Any],
    group: str,
    *,
    positive: Any = 1,
    n_boot: int = 200,
    seed: int = 0,
    strata: Sequence[Any] | None = None,
) -> AmplificationResult:
    """How much more (or less) the model ties ``group`` to the label than its data does.

    Association is the positive rate in ``group`` minus the positive rate in the other groups;
    the model's is measured on its test predictions, the data's on the training labels.
    Amplification is measured in the direction of the data's association (Zhao et al. 2017):
    ``sign(data) * (model - data)``, positive when the model's association is stronger than the
    data's, negative when weaker; with no association in the data it is ``|model|``. The
    interval resamples test examples (the training data is fixed), within ``strata`` if given.
    """
    check_n_boot(n_boot, "bias_amplification")
    data = association(train_labels, train_groups, group, positive=positive)
    model = association(test_pred, test_groups, group, positive=positive)
    v = _binary(test_pred, "test_pred", "bias_amplification", positive)
    inside = np.asarray(test_groups).astype(str) == str(group)
    idx = resample_indices(len(v), n_boot, seed, strata)
    samples = _association_samples(v, inside, idx)
    model_est = percentile_estimate(model, samples, len(v))
    amp = percentile_estimate(_amplified(model, data), _amplified(samples, data), len(v))
    return AmplificationResult(amp, model_est, data, str(group))


# ---------------------------------------------------------------------------------------------
# counterfactual probe


@dataclass(frozen=True)
class CounterfactualResult:
    """One swap direction over the ``n`` sentences it changed.

    ``flip_rate``: share of predictions that change; ``score_gap``: mean (swapped - original)
    positive-class score with a t-interval, and ``p_value`` of a paired t-test; the accuracies are
    on the original, the swapped, and worst case over both (HELM: an example counts as correct only
    if it is correct in both versions).
    """

    n: int
    flip_rate: Estimate
    score_gap: Estimate
    p_value: float | None
    accuracy_original: float | None
    accuracy_swapped: float | None
    worst_case_accuracy: Estimate


def counterfactual_from_scores(
    labels: Any,
    pred_original: Any,
    pred_swapped: Any,
    score_original: Any,
    score_swapped: Any,
) -> CounterfactualResult:
    """Counterfactual figures from the model's outputs on original/swapped versions of ``n`` texts.

    Pass only the texts the swap changed. Scores are positive-class probabilities.
    """
    where = "counterfactual_from_scores"
    y = _labels(labels, "labels", where)
    po = _labels(pred_original, "pred_original", where)
    ps = _labels(pred_swapped, "pred_swapped", where)
    so = _labels(score_original, "score_original", where).astype(float)
    ss = _labels(score_swapped, "score_swapped", where).astype(float)
    n = _same_length(where, labels=y, pred_original=po, pred_swapped=ps, score_original=so,
                     score_swapped=ss)
    diff = ss - so
    p_value = paired_ttest(ss, so)[2] if n >= 2 else None
    right_o, right_s = po == y, ps == y
    return CounterfactualResult(
        n=n,
        flip_rate=wilson_interval(po != ps),
        score_gap=t_interval(diff),
        p_value=p_value,
        accuracy_original=float(right_o.mean()),
        accuracy_swapped=float(right_s.mean()),
        worst_case_accuracy=wilson_interval(right_o & right_s),
    )


# ---------------------------------------------------------------------------------------------
# template probe


@dataclass(frozen=True)
class TemplateResult:
    """Mean positive-score gap ``group_a - group_b`` over matched pairs with a paired t-test."""

    group_a: str
    group_b: str
    n_pairs: int
    score_gap: Estimate
    p_value: float | None
    mean_a: float
    mean_b: float


def pair_differences(
    keys: Sequence[Any], groups: Sequence[Any], scores: Any, group_a: str, group_b: str
) -> np.ndarray:
    """Per key present in both groups (sorted): mean score of ``group_a`` minus mean of ``group_b``.

    Several rows of one group under the same key (e.g. several person terms) are averaged first.
    """
    where = "template probe"
    k = [str(x) for x in _labels(np.asarray(keys, dtype=object), "keys", where)]
    g = _labels(groups, "groups", where).astype(str)
    s = _labels(scores, "scores", where).astype(float)
    _same_length(where, keys=np.asarray(k, dtype=object), groups=g, scores=s)
    sums: dict[tuple[str, str], list[float]] = {}
    for key, grp, score in zip(k, g.tolist(), s.tolist(), strict=True):
        if grp in (group_a, group_b):
            acc = sums.setdefault((key, grp), [0.0, 0.0])
            acc[0] += score
            acc[1] += 1
    shared = sorted({key for key, grp in sums if grp == group_a}
                    & {key for key, grp in sums if grp == group_b})
    if len(shared) < 2:
        raise ValueError(
            f"{where}: groups {group_a!r} and {group_b!r} share {len(shared)} template key(s);"
            " a paired test needs at least 2 (check the group names against the rows' groups)"
        )

    def mean(key: str, grp: str) -> float:
        total, count = sums[(key, grp)]
        return total / count

    return np.array([mean(key, group_a) - mean(key, group_b) for key in shared])


def template_from_scores(
    keys: Sequence[Any], groups: Sequence[Any], scores: Any, group_a: str, group_b: str
) -> TemplateResult:
    """Pair template sentences that share a key (template + emotion word) across two groups and
    test the mean score difference ``group_a - group_b`` (paired t-test; see
    :func:`pair_differences`)."""
    diff = pair_differences(keys, groups, scores, group_a, group_b)
    p = paired_ttest(diff, np.zeros_like(diff))[2]
    a_minus_b = t_interval(diff)
    g = np.asarray(groups).astype(str)
    s = np.asarray(scores, dtype=float)
    return TemplateResult(group_a, group_b, int(diff.size), a_minus_b, p,
                          float(s[g == group_a].mean()), float(s[g == group_b].mean()))


# ---------------------------------------------------------------------------------------------
# comparing two models on the same examples


def mean_statistic(key: str, *, absolute: bool = False) -> Callable[
        [dict[str, np.ndarray], np.ndarray], np.ndarray]:
    """Statistic for :func:`~harness.measure.stats.paired_bootstrap`: the mean of
    ``arrays[key]`` per resample (its magnitude with ``absolute``, e.g. for signed score gaps)."""

    def stat(arrays: dict[str, np.ndarray], idx: np.ndarray) -> np.ndarray:
        values = np.asarray(arrays[key], dtype=float)[idx].mean(axis=-1)
        return np.abs(values) if absolute else values

    return stat


def gap_statistic(metric: str) -> Callable[[dict[str, np.ndarray], np.ndarray], np.ndarray]:
    """Statistic for :func:`~harness.measure.stats.paired_bootstrap`: a :data:`GAP_METRICS`
    entry computed from ``arrays["y_true"]``, ``arrays["y_pred"]`` (0/1) and
    ``arrays["group"]`` per resample."""
    if metric not in GAP_METRICS:
        raise ValueError(
            f"gap_statistic: unknown metric {metric!r}; choose from {list(GAP_METRICS)}"
        )

    def stat(arrays: dict[str, np.ndarray], idx: np.ndarray) -> np.ndarray:
        return group_gap_samples(arrays["y_true"], arrays["y_pred"], arrays["group"], idx)[metric]

    return stat


def amplification_statistic(arrays: dict[str, np.ndarray], idx: np.ndarray) -> np.ndarray:
    """Statistic for :func:`~harness.measure.stats.paired_bootstrap`: bias amplification per
    resample, from ``arrays["y_pred"]`` (0/1), ``arrays["in_group"]`` (bool) and the constant
    ``arrays["data_association"]``."""
    v = np.asarray(arrays["y_pred"], dtype=np.int64)
    inside = np.asarray(arrays["in_group"], dtype=bool)
    offset = float(np.asarray(arrays["data_association"], dtype=float)[0])
    return _amplified(_association_samples(v, inside, idx), offset)
