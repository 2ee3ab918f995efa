"""Statistics helpers checked against scipy references and known values."""

import math

import numpy as np
import pytest
from scipy import stats as sps

from harness.measure.stats import (
    bootstrap_ci,
    fit_power_law,
    mcnemar,
    median_iqr,
    paired_bootstrap_test,
    paired_ttest,
    summarize,
)


def test_summarize_matches_scipy_t_interval():
    values = [1.0, 2.0, 4.0, 7.0, 11.0]
    out = summarize(values)
    low, high = sps.t.interval(0.95, df=4, loc=np.mean(values), scale=sps.sem(values))
    assert out["n"] == 5
    assert out["mean"] == pytest.approx(5.0)
    assert out["std"] == pytest.approx(np.std(values, ddof=1))
    assert out["stderr"] == pytest.approx(sps.sem(values))
    assert (out["ci_low"], out["ci_high"]) == pytest.approx((low, high))


def test_summarize_single_value_has_no_spread():
    assert summarize([3.5]) == {
        "mean": 3.5,
        "std": None,
        "n": 1,
        "stderr": None,
        "ci_low": None,
        "ci_high": None,
    }


@pytest.mark.parametrize("bad", [[], [1.0, float("nan")], [[1.0, 2.0], [3.0, 4.0]]])
def test_summarize_rejects_bad_input(bad):
    with pytest.raises(ValueError, match="values"):
        summarize(bad)


def test_median_iqr_matches_numpy():
    values = [5.0, 1.0, 9.0, 3.0, 7.0, 2.0]
    q1, med, q3 = np.percentile(values, [25, 50, 75])
    out = median_iqr(values)
    assert (out["median"], out["q1"], out["q3"]) == pytest.approx((med, q1, q3))
    assert out["iqr"] == pytest.approx(q3 - q1)
    assert out["n"] == 6


def test_bootstrap_ci_covers_true_mean_at_roughly_nominal_rate():
    rng = np.random.default_rng(123)
    trials, covered = 150, 0
    for trial in range(trials):
        sample = rng.normal(loc=1.0, scale=2.0, size=40)
        _, low, high, _ = bootstrap_ci(sample, np.mean, n_boot=400, seed=trial, vectorized=True)
        covered += low <= 1.0 <= high
    assert 0.85 <= covered / trials <= 0.99


def test_bootstrap_vectorized_and_loop_agree_and_stderr_is_sensible():
    rng = np.random.default_rng(0)
    data = rng.exponential(size=60)
    vec = bootstrap_ci(data, np.mean, n_boot=300, seed=7, vectorized=True)
    loop = bootstrap_ci(data, np.mean, n_boot=300, seed=7)
    assert vec == pytest.approx(loop)
    point, low, high, stderr = vec
    assert point == pytest.approx(data.mean())
    assert low < point < high
    assert stderr == pytest.approx(data.std(ddof=1) / math.sqrt(data.size), rel=0.25)


def test_bootstrap_paired_arrays_are_resampled_together():
    y = np.array([0, 1, 1, 0, 1, 0, 1, 1])
    # Predictions equal to the labels: every paired resample has accuracy exactly 1.
    point, low, high, stderr = bootstrap_ci((y, y.copy()), lambda a, b: np.mean(a == b), n_boot=50)
    assert (point, low, high, stderr) == (1.0, 1.0, 1.0, 0.0)


def test_bootstrap_rejects_bad_input():
    with pytest.raises(ValueError, match="equal lengths"):
        bootstrap_ci(([1, 2, 3], [1, 2]), lambda a, b: 0.0)
    with pytest.raises(ValueError, match="at least 1"):
        bootstrap_ci([], np.mean)
    with pytest.raises(ValueError, match="one value per resample"):
        bootstrap_ci([1.0, 2.0, 3.0], lambda x, axis: x, vectorized=True)
    with pytest.raises(ValueError, match="alpha"):
        bootstrap_ci([1.0, 2.0], np.mean, alpha=1.5)


def test_paired_bootstrap_test_detects_a_clearly_better_system():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, size=300)
    good = y.copy()
    good[:15] = 1 - good[:15]  # 95% accurate
    coin = rng.integers(0, 2, size=300)  # about 50% accurate

    def acc(t, p):
        return float(np.mean(t == p))

    diff, low, high, p = paired_bootstrap_test(acc, y, good, coin, n_boot=500, seed=3)
    assert diff == pytest.approx(acc(y, good) - acc(y, coin))
    assert 0 < low < diff < high
    assert p < 0.01
    same = paired_bootstrap_test(acc, y, good, good.copy(), n_boot=200)
    assert same[0] == 0.0
    assert same[3] == 1.0
    with pytest.raises(ValueError, match="equal lengths"):
        paired_bootstrap_test(acc, y, good[:-1], coin)


def test_mcnemar_exact_matches_scipy_binomtest():
    a = np.array([1] * 7 + [0] * 2 + [1] * 10 + [0] * 5, dtype=bool)
    b = np.array([0] * 7 + [1] * 2 + [1] * 10 + [0] * 5, dtype=bool)
    stat, p = mcnemar(a, b)
    assert stat == 2.0
    assert p == pytest.approx(sps.binomtest(2, 9, 0.5).pvalue)
    assert mcnemar(a, a) == (0.0, 1.0)


def test_mcnemar_chi_square_matches_textbook_example():
    # 2x2 table: both right 101, only A right 121, only B right 59, both wrong 33.
    a = np.repeat([1, 1, 0, 0], [101, 121, 59, 33]).astype(bool)
    b = np.repeat([1, 0, 1, 0], [101, 121, 59, 33]).astype(bool)
    stat, p = mcnemar(a, b)
    assert stat == pytest.approx(61**2 / 180)
    assert p == pytest.approx(sps.chi2.sf(61**2 / 180, df=1))
    assert p < 1e-5
    with pytest.raises(ValueError, match="0/1"):
        mcnemar([0, 2], [1, 1])
    with pytest.raises(ValueError, match="equal lengths"):
        mcnemar([0, 1, 1], [1, 1])


def test_paired_ttest_matches_scipy_and_handles_zero_variance():
    rng = np.random.default_rng(5)
    a = rng.normal(size=12)
    b = a + rng.normal(0.3, 0.5, size=12)
    mean_diff, t, p = paired_ttest(a, b)
    ref = sps.ttest_rel(a, b)
    assert mean_diff == pytest.approx(np.mean(a - b))
    assert (t, p) == pytest.approx((ref.statistic, ref.pvalue))
    assert paired_ttest([1.0, 2.0, 3.0], [1.0, 2.0, 3.0]) == (0.0, 0.0, 1.0)
    diff, t_inf, p_zero = paired_ttest([2.0, 3.0, 4.0], [1.0, 2.0, 3.0])
    assert (diff, t_inf, p_zero) == (pytest.approx(1.0), math.inf, 0.0)
    with pytest.raises(ValueError, match="at least 2"):
        paired_ttest([1.0], [2.0])
    with pytest.raises(ValueError, match="equal lengths"):
        paired_ttest([1.0, 2.0, 3.0], [1.0, 2.0])


def test_fit_power_law_recovers_known_exponent():
    rng = np.random.default_rng(11)
    n = np.array([64, 128, 256, 512, 1024, 2048, 4096], dtype=float)
    y = 3.0 * n**1.5 * np.exp(rng.normal(0, 0.05, size=n.size))
    fit = fit_power_law(n, y)
    ref = sps.linregress(np.log(n), np.log(y))
    assert fit.exponent == pytest.approx(1.5, abs=0.05)
    assert fit.exponent == pytest.approx(ref.slope)
    assert fit.stderr == pytest.approx(ref.stderr)
    assert fit.intercept == pytest.approx(ref.intercept)
    assert fit.r2 == pytest.approx(ref.rvalue**2)
    assert fit.coefficient == pytest.approx(3.0, rel=0.3)
    assert fit.n_points == 7
    assert fit.predict(1000.0) == pytest.approx(fit.coefficient * 1000.0**fit.exponent)


def test_fit_power_law_two_points_and_bad_input():
    fit = fit_power_law([10, 100], [5.0, 500.0])
    assert fit.exponent == pytest.approx(2.0)
    assert fit.stderr is None
    assert fit.r2 == 1.0
    with pytest.raises(ValueError, match="at least 2"):
        fit_power_law([10], [5.0])
    with pytest.raises(ValueError, match="> 0"):
        fit_power_law([10, 20], [0.0, 1.0])
    with pytest.raises(ValueError, match="distinct"):
        fit_power_law([10, 10], [1.0, 2.0])
    with pytest.raises(ValueError, match="equal lengths"):
        fit_power_law([10, 20, 30], [1.0, 2.0])
