"""Probe computations on hand-made inputs with known answers (by hand, fairlearn or scipy)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from fairlearn.metrics import (
    demographic_parity_difference,
    demographic_parity_ratio,
    equalized_odds_difference,
)
from scipy import stats

from harness.measure.fairness import (
    amplification_statistic,
    association,
    audit_groups,
    bias_amplification,
    counterfactual_from_scores,
    gap_statistic,
    group_gap_samples,
    mean_statistic,
    pair_differences,
    template_from_scores,
)
from harness.measure.stats import Estimate, paired_bootstrap, resample_indices

# Two groups of four. a: y=[1,1,0,0], pred=[1,0,1,0]; b: y=[1,1,0,0], pred=[1,1,1,1].
Y = np.array([1, 1, 0, 0, 1, 1, 0, 0])
P = np.array([1, 0, 1, 0, 1, 1, 1, 1])
G = np.array(["a"] * 4 + ["b"] * 4)


def test_audit_hand_computed():
    audit = audit_groups(Y, P, G, n_boot=0)
    a, b = audit.per_group["a"], audit.per_group["b"]
    assert audit.groups == ["a", "b"] and audit.counts == {"a": 4, "b": 4}
    assert a["selection_rate"].value == pytest.approx(0.5)
    assert a["tpr"].value == pytest.approx(0.5)
    assert a["fpr"].value == pytest.approx(0.5)
    assert a["accuracy"].value == pytest.approx(0.5)
    assert a["f1"].value == pytest.approx(0.5)  # 2*1 / (2*1 + 1 + 1)
    assert b["selection_rate"].value == pytest.approx(1.0)
    assert b["tpr"].value == pytest.approx(1.0)
    assert b["fpr"].value == pytest.approx(1.0)
    assert b["accuracy"].value == pytest.approx(0.5)
    assert b["f1"].value == pytest.approx(2 / 3)  # 2*2 / (2*2 + 2 + 0)
    assert audit.gaps["demographic_parity_difference"].value == pytest.approx(0.5)
    assert audit.gaps["demographic_parity_ratio"].value == pytest.approx(0.5)
    assert audit.gaps["equalized_odds_difference"].value == pytest.approx(0.5)
    assert a["tpr"].ci_low is None and a["tpr"].record_fields()["interval"] is None
    assert a["tpr"].n == 4


def test_positive_label_other_than_one():
    labels = np.where(Y == 1, "pos", "neg")
    preds = np.where(P == 1, "pos", "neg")
    audit = audit_groups(labels, preds, G, positive="pos", n_boot=0)
    assert audit.per_group["b"]["selection_rate"].value == pytest.approx(1.0)
    assert audit.gaps["demographic_parity_difference"].value == pytest.approx(0.5)


def test_vectorized_gaps_match_fairlearn():
    rng = np.random.default_rng(3)
    n = 300
    y = rng.integers(0, 2, n)
    p = rng.integers(0, 2, n)
    g = rng.choice(["x", "y", "z"], n)
    full = np.arange(n)[None, :]
    ours = group_gap_samples(y, p, g, full)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = {
            "demographic_parity_difference": demographic_parity_difference(
                y, p, sensitive_features=g),
            "demographic_parity_ratio": demographic_parity_ratio(y, p, sensitive_features=g),
            "equalized_odds_difference": equalized_odds_difference(y, p, sensitive_features=g),
        }
    for metric, value in ref.items():
        assert ours[metric][0] == pytest.approx(value, abs=1e-12), metric
    # the audit's point values (MetricFrame) agree with the same numbers
    audit = audit_groups(y, p, g, n_boot=50, seed=1)
    for metric, value in ref.items():
        est = audit.gaps[metric]
        assert est.value == pytest.approx(value, abs=1e-12)
        assert est.ci_low is not None and est.ci_low <= est.ci_high
        assert est.n == n


def test_bootstrap_is_seeded_and_brackets_a_clear_gap():
    rng = np.random.default_rng(0)
    n = 400
    g = np.array(["a", "b"] * (n // 2))
    y = rng.integers(0, 2, n)
    p = np.where(g == "a", rng.random(n) < 0.8, rng.random(n) < 0.2).astype(int)
    first = audit_groups(y, p, g, n_boot=300, seed=7)
    again = audit_groups(y, p, g, n_boot=300, seed=7)
    other = audit_groups(y, p, g, n_boot=300, seed=8)
    dpd = first.gaps["demographic_parity_difference"]
    assert dpd == again.gaps["demographic_parity_difference"]
    assert dpd.ci_low != other.gaps["demographic_parity_difference"].ci_low
    assert 0.45 < dpd.value < 0.75
    assert dpd.ci_low < dpd.value < dpd.ci_high and dpd.ci_low > 0.4
    sr = first.per_group["a"]["selection_rate"]
    assert sr.ci_low < sr.value < sr.ci_high
    assert sr.stderr == pytest.approx(np.sqrt(sr.value * (1 - sr.value) / 200), rel=0.3)


def test_stratified_resampling_keeps_strata_sizes():
    strata = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 2])
    idx = resample_indices(10, 40, 0, strata)
    assert idx.shape == (40, 10)
    for row in idx:
        assert np.array_equal(np.bincount(strata[row], minlength=3), [3, 2, 5])
    assert not np.array_equal(idx[0], idx[1])
    # a perfectly balanced design with an error-free model: no spread at all
    y = np.array([1, 0] * 10)
    g = np.array(["a"] * 10 + ["b"] * 10)
    audit = audit_groups(y, y, g, n_boot=100, stratify=True)
    dpd = audit.gaps["demographic_parity_difference"]
    assert dpd.value == 0.0 and dpd.ci_low == 0.0 and dpd.ci_high == 0.0


def test_association_and_amplification_hand_computed():
    groups = ["f", "f", "f", "f", "m", "m", "m", "m", "n", "n"]
    train = [0, 0, 0, 1, 1, 1, 0, 1, 1, 0]  # f: 0.25 positive; rest: 4/6
    assert association(train, groups, "f") == pytest.approx(0.25 - 4 / 6)
    test_pred = [0, 1, 1, 1, 1, 0, 1, 0, 1, 0]  # f: 0.75; rest: 3/6
    res = bias_amplification(train, groups, test_pred, groups, "f", n_boot=200, seed=0)
    assert res.data_association == pytest.approx(0.25 - 4 / 6)
    assert res.model_association.value == pytest.approx(0.75 - 0.5)
    # measured along the data's (negative) association: the model reversed it, so it amplifies
    # nothing: -(0.25 - (0.25 - 4/6))
    assert res.amplification.value == pytest.approx(-(0.25 - (0.25 - 4 / 6)))
    assert res.amplification.ci_low < res.amplification.value < res.amplification.ci_high
    # the summary's statistic reproduces it on the full index
    arrays = {"y_pred": np.array(test_pred), "in_group": np.array(groups) == "f",
              "data_association": np.full(10, res.data_association)}
    full = np.arange(10)[None, :]
    assert amplification_statistic(arrays, full)[0] == pytest.approx(res.amplification.value)


def test_amplification_follows_the_direction_of_the_data():
    groups = ["f"] * 4 + ["m"] * 4
    train = [0, 0, 0, 1, 1, 1, 1, 0]  # f: 0.25, m: 0.75 -> data association -0.5
    weaker = [0, 1, 0, 1, 1, 1, 0, 0]  # f: 0.5, m: 0.5 -> model association 0
    stronger = [0, 0, 0, 0, 1, 1, 1, 1]  # f: 0, m: 1 -> -1
    assert bias_amplification(train, groups, weaker, groups, "f").amplification.value == (
        pytest.approx(-0.5))
    assert bias_amplification(train, groups, stronger, groups, "f").amplification.value == (
        pytest.approx(0.5))
    balanced = [0, 1, 0, 1, 0, 1, 0, 1]  # no association in the data: |model|
    assert bias_amplification(balanced, groups, stronger, groups, "f").amplification.value == (
        pytest.approx(1.0))


def test_counterfactual_hand_computed():
    labels = np.array([1, 1, 0, 0, 1])
    pred_o = np.array([1, 1, 0, 1, 0])
    pred_s = np.array([1, 0, 0, 1, 1])
    score_o = np.array([0.9, 0.7, 0.2, 0.6, 0.4])
    score_s = np.array([0.8, 0.3, 0.1, 0.65, 0.55])
    res = counterfactual_from_scores(labels, pred_o, pred_s, score_o, score_s)
    assert res.n == 5
    assert res.flip_rate.value == pytest.approx(2 / 5)
    diff = score_s - score_o
    assert res.score_gap.value == pytest.approx(diff.mean())
    assert res.p_value == pytest.approx(stats.ttest_rel(score_s, score_o).pvalue)
    half = stats.t.ppf(0.975, 4) * diff.std(ddof=1) / np.sqrt(5)
    assert res.score_gap.ci_low == pytest.approx(diff.mean() - half)
    assert res.accuracy_original == pytest.approx(3 / 5)  # right: 0, 1, 2
    assert res.accuracy_swapped == pytest.approx(3 / 5)  # right: 0, 2, 4
    assert res.worst_case_accuracy.value == pytest.approx(2 / 5)  # right in both: 0, 2
    wl = res.flip_rate
    assert 0 <= wl.ci_low < wl.value < wl.ci_high <= 1


def test_template_pairs_average_terms_per_key():
    keys = ["t1|happy"] * 4 + ["t2|sad"] * 4 + ["t3|calm"] * 2
    groups = ["f", "f", "m", "m", "f", "f", "m", "m", "f", "x"]
    scores = [0.9, 0.7, 0.6, 0.4, 0.3, 0.1, 0.2, 0.2, 0.5, 0.5]
    diff = pair_differences(keys, groups, scores, "f", "m")
    assert diff == pytest.approx([0.8 - 0.5, 0.2 - 0.2])  # t3 has no "m" row: dropped
    res = template_from_scores(keys, groups, scores, "f", "m")
    assert res.n_pairs == 2
    assert res.score_gap.value == pytest.approx(0.15)
    assert res.p_value == pytest.approx(stats.ttest_rel([0.8, 0.2], [0.5, 0.2]).pvalue)
    with pytest.raises(ValueError, match="share 0 template key"):
        template_from_scores(keys, groups, scores, "f", "nobody")


def test_paired_difference_identical_and_shifted():
    rng = np.random.default_rng(0)
    flips = (rng.random(200) < 0.3).astype(float)
    same = paired_bootstrap({"flip": flips}, {"flip": flips}, mean_statistic("flip"),
                            n_boot=100).difference
    assert same.value == 0.0 and same.ci_low == 0.0 and same.ci_high == 0.0
    more = flips.copy()
    more[:60] = 1.0
    shifted = paired_bootstrap({"flip": more}, {"flip": flips}, mean_statistic("flip"),
                               n_boot=200, seed=1).difference
    assert shifted.value == pytest.approx(more.mean() - flips.mean())
    assert shifted.ci_low > 0
    # magnitudes: |mean| of a signed quantity
    delta = {"delta": np.array([-0.2, -0.4, -0.3])}
    assert mean_statistic("delta", absolute=True)(delta, np.arange(3)[None, :])[0] == \
        pytest.approx(0.3)
    arrays = {"y_true": Y, "y_pred": P, "group": G}
    gap = paired_bootstrap(arrays, {**arrays, "y_pred": Y},
                           gap_statistic("demographic_parity_difference"), n_boot=0)
    assert gap.difference == Estimate(0.5, n=8) and gap.p_value is None


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: audit_groups([1, 0], [1], ["a", "b"]), "one entry per example"),
        (lambda: audit_groups([1, 0], [1, 0], ["a", "a"]), "single group"),
        (lambda: audit_groups([1, 0], [1, 0], ["a", "b"], n_boot=-1), "n_boot"),
        (lambda: audit_groups([], [], []), "empty"),
        (lambda: association([1, 0], ["a", "b"], "c"), "group 'c'"),
        (lambda: counterfactual_from_scores([1], [1, 0], [1], [0.5], [0.5]), "lengths"),
        (lambda: gap_statistic("accuracy"), "unknown metric"),
        (lambda: resample_indices(3, 2, 0, strata=[0, 1]), "one label per example"),
        (lambda: paired_bootstrap({"x": np.ones(3)}, {"x": np.ones(4)}, mean_statistic("x")),
         "one length"),
    ],
)
def test_bad_input_raises_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()
