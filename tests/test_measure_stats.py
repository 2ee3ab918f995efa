"""Statistics helpers checked against scipy references and known values."""

import dataclasses
import math

import numpy as np
import pytest
from scipy import stats as sps

from harness.measure.stats import (
    Estimate,
    accuracy_statistic,
    adjust_pvalues,
    bootstrap_ci,
    bootstrap_mean,
    exponent_verdict,
    fit_power_law,
    level_means,
    level_spread,
    mean_t_test,
    median_iqr,
    normal_difference,
    normal_interval,
    one_sided_p,
    paired_bootstrap,
    paired_metric_difference,
    paired_spread_difference,
    paired_ttest,
    ratio_bootstrap,
    resample_indices,
    stderr_from_ci95,
    summarize,
    t_interval,
    wilson_interval,
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
        est = bootstrap_ci(sample, np.mean, n_boot=400, seed=trial, vectorized=True)
        covered += est.ci_low <= 1.0 <= est.ci_high
    assert 0.85 <= covered / trials <= 0.99


def test_bootstrap_vectorized_and_loop_agree_and_stderr_is_sensible():
    rng = np.random.default_rng(0)
    data = rng.exponential(size=60)
    vec = bootstrap_ci(data, np.mean, n_boot=300, seed=7, vectorized=True)
    loop = bootstrap_ci(data, np.mean, n_boot=300, seed=7)
    assert vec == loop
    assert (vec.method, vec.n) == ("bootstrap", 60)
    point, low, high, stderr = vec.value, vec.ci_low, vec.ci_high, vec.stderr
    assert point == pytest.approx(data.mean())
    assert low < point < high
    assert stderr == pytest.approx(data.std(ddof=1) / math.sqrt(data.size), rel=0.25)


def test_bootstrap_paired_arrays_are_resampled_together():
    y = np.array([0, 1, 1, 0, 1, 0, 1, 1])
    # Predictions equal to the labels: every paired resample has accuracy exactly 1.
    est = bootstrap_ci((y, y.copy()), lambda a, b: np.mean(a == b), n_boot=50)
    assert (est.value, est.ci_low, est.ci_high, est.stderr) == (1.0, 1.0, 1.0, 0.0)
    # no resamples: the point value only, no interval
    assert bootstrap_ci(y, np.mean, n_boot=0) == Estimate(0.625, n=8)


def test_bootstrap_rejects_bad_input():
    with pytest.raises(ValueError, match="equal lengths"):
        bootstrap_ci(([1, 2, 3], [1, 2]), lambda a, b: 0.0)
    with pytest.raises(ValueError, match="at least 1"):
        bootstrap_ci([], np.mean)
    with pytest.raises(ValueError, match="one value per resample"):
        bootstrap_ci([1.0, 2.0, 3.0], lambda x, axis: x, vectorized=True)
    with pytest.raises(ValueError, match="alpha"):
        bootstrap_ci([1.0, 2.0], np.mean, alpha=1.5)


def test_paired_bootstrap_detects_a_clearly_better_system():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, size=300)
    good = y.copy()
    good[:15] = 1 - good[:15]  # 95% accurate
    coin = rng.integers(0, 2, size=300)  # about 50% accurate

    def acc(arrays, idx):
        return np.mean(arrays["y"][idx] == arrays["p"][idx], axis=-1)

    res = paired_bootstrap({"y": y, "p": good}, {"y": y, "p": coin}, acc, n_boot=500, seed=3)
    diff = res.difference
    assert diff.value == pytest.approx(np.mean(y == good) - np.mean(y == coin))
    assert 0 < diff.ci_low < diff.value < diff.ci_high
    assert (diff.method, diff.n) == ("paired_bootstrap", 300)
    assert res.p_value < 0.01
    same = paired_bootstrap({"y": y, "p": good}, {"y": y, "p": good.copy()}, acc, n_boot=200)
    assert same.difference.value == 0.0
    assert same.p_value == 1.0
    with pytest.raises(ValueError, match="one length"):
        paired_bootstrap({"y": y, "p": good[:-1]}, {"y": y, "p": coin}, acc)
    with pytest.raises(ValueError, match="statistic"):
        paired_bootstrap({"y": y}, {"y": y})


def test_paired_bootstrap_is_calibrated_on_a_null_and_strata_are_kept():
    """Identical distributions: p < 0.05 in about 5% of trials; a shift: nearly always."""
    rng = np.random.default_rng(2)
    null_hits = shift_hits = 0
    trials = 200
    for trial in range(trials):
        a, b = rng.normal(size=80), rng.normal(size=80)
        null_hits += paired_bootstrap(a, b, n_boot=200, seed=trial).p_value < 0.05
        shift_hits += paired_bootstrap(a + 0.6, b, n_boot=200, seed=trial).p_value < 0.05
    assert null_hits / trials <= 0.10
    assert shift_hits / trials >= 0.95
    # strata: a difference that is constant within each stratum has no spread at all
    strata = np.repeat([0, 1], 20)
    x = np.where(strata == 0, 1.0, 0.0)
    res = paired_bootstrap(x, np.zeros(40), n_boot=100, strata=strata)
    assert res.difference.ci_low == res.difference.ci_high == 0.5


def test_t_interval_wilson_and_normal_state_method_and_n():
    values = [1.0, 2.0, 4.0, 7.0]
    est = t_interval(values)
    low, high = sps.t.interval(0.95, df=3, loc=np.mean(values), scale=sps.sem(values))
    assert (est.ci_low, est.ci_high) == pytest.approx((low, high))
    assert (est.method, est.n) == ("t", 4)
    assert est.record_fields()["ci_method"] == "t"
    assert t_interval([2.0]).record_fields()["interval"] is None
    # Wilson 95% for 3 of 10 (Newcombe 1998, table I: 0.1078 to 0.6032)
    w = wilson_interval(3, 10)
    assert (w.ci_low, w.ci_high) == pytest.approx((0.1078, 0.6032), abs=1e-4)
    assert w == wilson_interval([1, 1, 1] + [0] * 7)
    assert (w.method, w.n) == ("wilson", 10)
    assert wilson_interval(0, 5).ci_low == 0.0  # never below 0, unlike the Wald interval
    with pytest.raises(ValueError, match="0/1"):
        wilson_interval([0, 2])
    with pytest.raises(ValueError, match="successes"):
        wilson_interval(6, 5)
    z = normal_interval(1.0, 0.5, n=9)
    assert (z.ci_low, z.ci_high) == pytest.approx((1 - 1.959964 * 0.5, 1 + 1.959964 * 0.5))
    assert normal_interval(1.0, None).method is None


def test_one_sided_p_uses_t_for_t_estimates_and_normal_otherwise():
    est = Estimate(0.3, 0.0, 0.6, 0.1, 5, "t")
    assert one_sided_p(est, 0.1) == pytest.approx(sps.t.sf(2.0, df=4))
    assert one_sided_p(est, 0.5, "less") == pytest.approx(sps.t.sf(2.0, df=4))
    boot = Estimate(0.3, 0.0, 0.6, 0.1, 500, "paired_bootstrap")
    assert one_sided_p(boot, 0.1) == pytest.approx(sps.norm.sf(2.0))
    with pytest.raises(ValueError, match="standard error"):
        one_sided_p(Estimate(0.3))


def test_adjust_pvalues_holm_and_bh_known_values():
    p = [0.01, 0.04, 0.03, 0.005]
    # Holm: sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1, then running max
    assert adjust_pvalues(p, "holm") == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # BH: sorted p * m / rank, then running min from the top
    assert adjust_pvalues(p, "bh") == pytest.approx([0.02, 0.04, 0.04, 0.02])
    assert adjust_pvalues([0.2, None, 0.01], "holm") == pytest.approx([0.2, None, 0.02])
    assert adjust_pvalues(p, "none") == p
    assert adjust_pvalues([], "holm") == []
    assert adjust_pvalues([0.9, 0.8], "holm") == [1.0, 1.0]
    with pytest.raises(ValueError, match="method"):
        adjust_pvalues(p, "bonferroni")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        adjust_pvalues([1.5])


def test_holm_controls_family_wise_error_on_a_true_null():
    """50 true-null tests per family: raw testing flags most families, Holm about 5%."""
    rng = np.random.default_rng(4)
    families, raw_any, holm_any = 400, 0, 0
    for _ in range(families):
        p = list(rng.uniform(size=50))
        raw_any += min(p) <= 0.05
        holm_any += min(adjust_pvalues(p, "holm")) <= 0.05  # type: ignore[type-var]
    assert raw_any / families > 0.9
    assert holm_any / families <= 0.08


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


def test_fit_power_law_interval_uses_t_quantiles():
    n = np.array([1024, 2048, 4096, 8192], dtype=float)
    y = n ** np.array([1.0, 1.1, 0.95, 1.05])
    fit = fit_power_law(n, y)
    half = sps.t.ppf(0.975, df=2) * fit.stderr
    assert (fit.ci_low, fit.ci_high) == pytest.approx((fit.exponent - half, fit.exponent + half))
    assert half > 2 * 1.96 * fit.stderr  # 4.30 with 2 degrees of freedom, not 1.96
    est = fit.estimate()
    assert (est.method, est.n) == ("ols_t", 4)
    assert fit_power_law([10, 100], [5.0, 500.0]).estimate().method is None


@pytest.mark.parametrize(
    ("exponents", "claimed", "verdict"),
    [
        ([1.0, 1.0, 1.0, 1.0], 1.0, "holds"),
        ([2.0, 2.0, 2.0, 2.0], 1.0, "violated"),
        ([0.1, 0.1, 0.1, 0.1], 1.0, "constant_dominated"),
        ([0.1, 0.1, 0.1, 0.1], 2.0, "constant_dominated"),
        ([0.5, 2.5, 0.5, 2.5], 1.0, "inconclusive"),
    ],
)
def test_exponent_verdict_treats_claims_as_upper_bounds(exponents, claimed, verdict):
    n = np.array([1024, 2048, 4096, 8192], dtype=float)
    logy = np.cumsum(np.log(2) * np.array(exponents))
    fit = fit_power_law(n, np.exp(logy))
    got, reason = exponent_verdict(fit, claimed, 0.2)
    assert got == verdict, reason
    assert exponent_verdict(fit_power_law([10, 100], [1.0, 10.0]), 1.0, 0.2)[0] == \
        "inconclusive"


def test_exact_power_law_fit_collapses_its_interval():
    """Identical peaks fit exactly (zero residual error): the interval is the point estimate,
    never nan, and the verdict judges it (a constant against O(N) is constant-dominated)."""
    n = [256, 512, 1024, 2048]
    flat = fit_power_law(n, [100.0] * 4)
    assert (flat.exponent, flat.stderr, flat.ci_low, flat.ci_high) == (0.0, 0.0, 0.0, 0.0)
    assert (flat.estimate().method, flat.r2) == ("ols_t", 1.0)
    verdict, reason = exponent_verdict(flat, 1.0, 0.3)
    assert verdict == "constant_dominated" and "nan" not in reason.lower()
    exact = fit_power_law(n, [float(x) ** 2 for x in n])  # exact in y, not in log(y) rounding
    assert exact.ci_low == pytest.approx(2.0) and exact.ci_high == pytest.approx(2.0)
    assert exponent_verdict(exact, 1.0, 0.3)[0] == "violated"
    # a fit whose interval is still not finite is inconclusive, and the reason says why
    broken = dataclasses.replace(flat, ci_low=math.nan, ci_high=math.nan)
    verdict, reason = exponent_verdict(broken, 1.0, 0.3)
    assert verdict == "inconclusive" and "no finite interval" in reason
    assert "nan" not in reason.lower()


def test_shift_tests_match_scipy_one_sided() -> None:
    from harness.measure.stats import detectable_shift, paired_shift, rank_shift, welch_shift

    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, 6), rng.normal(0.8, 2, 5)
    w = welch_shift(a, b, "greater")
    ref = sps.ttest_ind(b, a, equal_var=False, alternative="greater")
    assert w.p == pytest.approx(ref.pvalue) and w.statistic == pytest.approx(ref.statistic)
    assert welch_shift(a, b, "less").p == pytest.approx(1 - ref.pvalue)
    # the detectable shift is where the test's p reaches alpha
    d = detectable_shift(w, 0.05)
    assert d is not None and sps.t.sf(d / w.se, w.df) == pytest.approx(0.05)
    shifted = a + 0.5 + rng.normal(0, 0.1, 6)
    p = paired_shift(a, shifted, "greater")
    assert p.p == pytest.approx(sps.ttest_rel(shifted, a, alternative="greater").pvalue)
    assert p.test == "paired_t" and p.df == 5 and p.p < 1e-4
    r = rank_shift([1, 2, 3], [4, 5, 6], "greater")
    assert r.p == pytest.approx(sps.mannwhitneyu([4, 5, 6], [1, 2, 3],
                                                 alternative="greater").pvalue)
    assert detectable_shift(r, 0.05) is None
    # no spread: the sign decides
    assert welch_shift([1, 1], [2, 2], "greater").p == 0.0
    assert welch_shift([1, 1], [2, 2], "less").p == 1.0
    assert paired_shift([1, 2], [1, 2], "greater").p == 1.0
    with pytest.raises(ValueError, match="alternative"):
        welch_shift([1, 2], [3, 4], "two-sided")  # type: ignore[arg-type]


def test_robust_sd_is_the_sd_of_normal_data_and_ignores_a_few_outliers() -> None:
    from harness.measure.stats import robust_sd

    x = np.random.default_rng(1).normal(0, 0.05, 4000)
    assert robust_sd(x) == pytest.approx(0.05, rel=0.05)
    assert robust_sd(np.concatenate([x, [5.0] * 400])) == pytest.approx(0.05, rel=0.15)
    with pytest.raises(ValueError):
        robust_sd([])


# --- the suites' statistics ---------------------------------------------------------------------


def test_normal_difference_adds_standard_errors_in_quadrature():
    diff = normal_difference(0.7, 0.4, 0.03, 0.04, n=50)
    assert diff.value == pytest.approx(0.3) and diff.stderr == pytest.approx(0.05)
    assert diff.ci_low == pytest.approx(0.3 - sps.norm.ppf(0.975) * 0.05)
    assert (diff.method, diff.n) == ("normal_approx", 50)
    assert normal_difference(0.7, 0.4, None, 0.04) == Estimate(pytest.approx(0.3))
    est = normal_interval(0.2, 0.01)  # a 95% interval gives its standard error back
    assert stderr_from_ci95(est.ci_low, est.ci_high) == pytest.approx(0.01)


def test_mean_t_test_is_the_one_sample_t_test():
    diff = np.array([0.1, 0.3, -0.05, 0.2, 0.15])
    est, p = mean_t_test(diff)
    assert p == pytest.approx(sps.ttest_1samp(diff, 0.0).pvalue)
    assert est == t_interval(diff)
    assert mean_t_test(np.array([0.2]))[1] is None
    assert mean_t_test(np.zeros(0)) == (Estimate(None, n=0), None)


def test_bootstrap_mean_and_ratio_resample_their_rows():
    rng = np.random.default_rng(3)
    values = rng.normal(1.0, 1.0, 400)
    est = bootstrap_mean(values, 500, seed=1)
    idx = resample_indices(values.size, 500, 1)
    means = np.sort(values[idx].mean(axis=1))
    assert est.value == pytest.approx(values.mean()) and est.n == 400
    assert est.ci_low == pytest.approx(np.quantile(means, 0.025))
    assert est.stderr == pytest.approx(values.std() / math.sqrt(400), rel=0.15)
    num, den = rng.integers(0, 4, 300).astype(float), np.full(300, 4.0)
    ratio = ratio_bootstrap(num, den, 500, seed=2)
    assert ratio.value == pytest.approx(num.sum() / 1200) and ratio.n == 1200
    assert ratio.ci_low < ratio.value < ratio.ci_high


def test_level_means_and_spread():
    values = np.array([1.0, 3.0, 10.0, 20.0])
    codes = np.array([0, 0, 1, 1])
    full = np.arange(4)[None, :]
    means = level_means(values, codes, 3, full)  # level 2 is empty: NaN
    assert means[0, :2].tolist() == [2.0, 15.0] and np.isnan(means[0, 2])
    assert level_spread(means).tolist() == [13.0]
    idx = resample_indices(4, 50, 0, strata=codes)
    assert level_means(values, codes, 2, idx).shape == (50, 2)


def test_accuracy_statistic_and_paired_metric_difference():
    y = np.array([0, 1, 1, 0, 1, 0, 1, 1])
    a = np.array([0, 1, 1, 0, 1, 0, 0, 1])
    b = np.array([1, 1, 0, 0, 1, 1, 0, 1])
    assert accuracy_statistic(y, a) == pytest.approx(7 / 8)
    rows = accuracy_statistic(np.stack([y, y]), np.stack([a, b]), axis=-1)
    assert rows.tolist() == pytest.approx([7 / 8, 4 / 8])
    res = paired_metric_difference(y, [a], [b], accuracy_statistic, n_boot=200, seed=0)
    assert res.difference.value == pytest.approx(3 / 8)
    assert res.difference.method == "paired_bootstrap" and res.difference.n == 8
    with pytest.raises(ValueError, match="same positive number"):
        paired_metric_difference(y, [a, a], [b], accuracy_statistic)


def test_paired_spread_difference():
    rng = np.random.default_rng(5)
    codes = np.repeat([0, 1], 200)
    base = rng.normal(0.5, 0.1, 400)
    same = paired_spread_difference(base, base, codes, 2, 200, seed=0)
    assert (same.value, same.ci_low, same.ci_high) == (0.0, 0.0, 0.0)
    wider = base + 0.2 * codes  # level 1 shifted up by 0.2: the gap grows by about 0.2
    est = paired_spread_difference(wider, base, codes, 2, 200, seed=0)
    gap = abs(wider[200:].mean() - wider[:200].mean()) - abs(base[200:].mean() - base[:200].mean())
    assert est.value == pytest.approx(gap) and est.n == 400
    assert 0 < est.ci_low < est.value < est.ci_high

