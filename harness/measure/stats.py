"""Statistics for benchmark results, in one place: intervals, tests, multiplicity, power-law fits.

Built on numpy and scipy. Every interval is an :class:`Estimate` that states its method and its
sample count, so a record can say how its interval was made:

* :func:`t_interval` - Student-t interval of a mean (``method="t"``); :func:`summarize` is the
  dict form used for means over seeds.
* :func:`wilson_interval` - Wilson score interval of a proportion, through
  ``scipy.stats.binomtest(...).proportion_ci`` (``method="wilson"``).
* :func:`bootstrap_ci` - percentile bootstrap of one statistic (``method="bootstrap"``).
* :func:`paired_bootstrap` - two systems scored on the same examples, resampled with the same
  indices (optionally within strata): the interval of the difference and its p-values
  (``method="paired_bootstrap"``). The only paired bootstrap in the package.
* :func:`paired_ttest` - paired t-test.
* :func:`welch_shift`, :func:`paired_shift`, :func:`rank_shift` - one-sided tests that one
  sample is shifted against another (Welch's t, paired t, Mann-Whitney U) as a
  :class:`ShiftTest` (statistic, p, degrees of freedom, standard error), and
  :func:`detectable_shift`, the smallest shift such a test rejects at a level (its power).
* :func:`adjust_pvalues` - Holm (family-wise error) or Benjamini-Hochberg (false discovery rate).
* :func:`fit_power_law` - ``scipy.stats.linregress`` in log-log space with a t-quantile interval
  of the exponent (``method="ols_t"``), and :func:`exponent_verdict` for complexity claims.
* The suites' statistics, on arrays the suites build: :func:`accuracy_statistic` and
  :func:`chance_macro_f1` (accuracy's bootstrap statistic and chance level),
  :func:`paired_metric_difference` (a metric's paired difference over seeds),
  :func:`abs_estimate`, :func:`stderr_from_ci95` and :func:`normal_difference` (bias
  differences), :func:`mean_t_test`, :func:`bootstrap_mean`, :func:`ratio_bootstrap`,
  :func:`level_means`, :func:`level_spread` and :func:`paired_spread_difference` (the probe-set
  audit).

Every function but the suites' statistics validates its input and raises ``ValueError`` naming
the argument, what was wrong and how to fix it.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

import numpy as np
from scipy import stats as _sps

__all__ = [
    "MULTIPLICITY_METHODS",
    "Estimate",
    "PairedResult",
    "PowerFit",
    "ShiftTest",
    "abs_estimate",
    "accuracy_statistic",
    "adjust_pvalues",
    "bootstrap_ci",
    "bootstrap_mean",
    "chance_macro_f1",
    "check_n_boot",
    "detectable_shift",
    "exponent_verdict",
    "fit_power_law",
    "index_chunks",
    "level_means",
    "level_spread",
    "mean_t_test",
    "median_iqr",
    "normal_difference",
    "normal_interval",
    "one_sided_p",
    "paired_bootstrap",
    "paired_metric_difference",
    "paired_shift",
    "paired_spread_difference",
    "paired_ttest",
    "percentile_estimate",
    "rank_shift",
    "ratio_bootstrap",
    "resample_indices",
    "robust_sd",
    "stderr_from_ci95",
    "summarize",
    "t_interval",
    "welch_shift",
    "wilson_interval",
]

#: Upper bound on resampled elements held at once by the bootstraps (bounds their memory).
_BOOT_CHUNK_ELEMENTS = 2_000_000
#: Multiplicity adjustments :func:`adjust_pvalues` knows.
MULTIPLICITY_METHODS = ("holm", "bh", "none")


def _as_1d(values: Any, name: str, *, min_len: int = 1, dtype: Any = float) -> np.ndarray:
    """Convert ``values`` to a finite 1-D array; ValueError on bad shape, size or content."""
    try:
        arr = np.asarray(values, dtype=dtype)
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"{name}: could not convert to a numeric array ({err}); pass numbers"
        ) from err
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1:
        raise ValueError(
            f"{name}: expected a 1-D sequence, got shape {arr.shape}; flatten it first"
        )
    if arr.size < min_len:
        raise ValueError(
            f"{name}: needs at least {min_len} value(s), got {arr.size}; pass more observations"
        )
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: contains NaN or infinite values; drop or fix them first")
    return arr


def _check_alpha(alpha: float) -> None:
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}; use e.g. 0.05 for a 95% interval")


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}; use e.g. 0.95")


def _check_same_length(arrays: Sequence[np.ndarray], names: Sequence[str]) -> None:
    lengths = {name: arr.shape[0] for arr, name in zip(arrays, names, strict=True)}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"paired inputs must have equal lengths, got {lengths}; align them first")


def check_n_boot(n_boot: int, where: str) -> None:
    """ValueError unless ``n_boot`` is an int >= 0."""
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 0:
        raise ValueError(f"{where}: n_boot must be an int >= 0 (0 = no interval), got {n_boot!r}")


# ---------------------------------------------------------------------------------------------
# estimates


@dataclass(frozen=True)
class Estimate:
    """A figure with its interval, standard error, sample count and how the interval was made.

    ``method``: ``t``, ``wilson``, ``bootstrap``, ``paired_bootstrap``, ``normal_approx``,
    ``ols_t`` or None (no interval). ``confidence``: the interval's two-sided level.
    """

    value: float | None
    ci_low: float | None = None
    ci_high: float | None = None
    stderr: float | None = None
    n: int | None = None
    method: str | None = None
    confidence: float = 0.95

    @property
    def has_interval(self) -> bool:
        return self.ci_low is not None and self.ci_high is not None

    def record_fields(self) -> dict[str, Any]:
        """The fields of a :class:`~harness.records.Record` this estimate fills in."""
        ci = self.has_interval and math.isclose(self.confidence, 0.95)
        return {
            "value": self.value,
            "ci_low": self.ci_low if ci else None,
            "ci_high": self.ci_high if ci else None,
            "stderr": self.stderr,
            "n": self.n,
            "interval": "ci95" if ci else None,
            "ci_method": self.method if ci else None,
        }

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _finite(x: float) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def t_interval(values: Any, confidence: float = 0.95) -> Estimate:
    """Mean with a Student-t interval (``n - 1`` degrees of freedom); no interval when n == 1."""
    arr = _as_1d(values, "values")
    _check_confidence(confidence)
    n = int(arr.size)
    mean = float(arr.mean())
    if n == 1:
        return Estimate(mean, n=1, confidence=confidence)
    stderr = float(arr.std(ddof=1)) / math.sqrt(n)
    half = float(_sps.t.ppf(0.5 + confidence / 2.0, df=n - 1)) * stderr
    return Estimate(mean, mean - half, mean + half, stderr, n, "t", confidence)


def summarize(values: Sequence[float], confidence: float = 0.95) -> dict[str, float | int | None]:
    """Mean, sample std (ddof=1), count, standard error and a Student-t confidence interval.

    With a single value the spread is unknown: ``std``, ``stderr``, ``ci_low``, ``ci_high``
    are None. The dict form of :func:`t_interval`.
    """
    arr = _as_1d(values, "values")
    est = t_interval(arr, confidence)
    return {
        "mean": est.value,
        "std": float(arr.std(ddof=1)) if arr.size > 1 else None,
        "n": est.n,
        "stderr": est.stderr,
        "ci_low": est.ci_low,
        "ci_high": est.ci_high,
    }


def wilson_interval(successes: Any, n: int | None = None, confidence: float = 0.95) -> Estimate:
    """Proportion with a Wilson score interval (``scipy.stats.binomtest(...).proportion_ci``).

    Pass either a count and ``n``, or per-example booleans / 0-1 values and no ``n``.
    ``stderr`` is the plug-in binomial standard error ``sqrt(p (1 - p) / n)``.
    """
    _check_confidence(confidence)
    if n is None:
        hits = _as_1d(successes, "successes", dtype=None)
        if not np.all(np.isin(hits, (0, 1))):
            raise ValueError("successes: per-example values must be booleans or 0/1")
        k, total = int(np.count_nonzero(hits)), int(hits.size)
    else:
        k, total = int(successes), int(n)
        if total < 1 or not 0 <= k <= total:
            raise ValueError(
                f"wilson_interval: need 0 <= successes <= n and n >= 1, got {k} of {total}"
            )
    p = k / total
    ci = _sps.binomtest(k, total).proportion_ci(confidence_level=confidence, method="wilson")
    return Estimate(p, float(ci.low), float(ci.high), math.sqrt(p * (1 - p) / total), total,
                    "wilson", confidence)


def normal_interval(value: float, stderr: float | None, n: int | None = None,
                    confidence: float = 0.95) -> Estimate:
    """``value +- z * stderr`` (normal approximation); no interval when ``stderr`` is None."""
    _check_confidence(confidence)
    if stderr is None or not math.isfinite(stderr):
        return Estimate(_finite(value), n=n, confidence=confidence)
    half = float(_sps.norm.ppf(0.5 + confidence / 2.0)) * stderr
    return Estimate(float(value), value - half, value + half, float(stderr), n, "normal_approx",
                    confidence)


def median_iqr(values: Sequence[float]) -> dict[str, float | int]:
    """Median, first and third quartiles (linear interpolation), IQR and count."""
    arr = _as_1d(values, "values")
    q1, median, q3 = (float(q) for q in np.percentile(arr, [25.0, 50.0, 75.0]))
    return {"median": median, "q1": q1, "q3": q3, "iqr": q3 - q1, "n": int(arr.size)}


# ---------------------------------------------------------------------------------------------
# bootstrap


def resample_indices(
    n: int, n_boot: int, seed: int, strata: Sequence[Any] | np.ndarray | None = None
) -> np.ndarray:
    """``(n_boot, n)`` bootstrap indices into ``n`` examples, seeded (one row per resample).

    With ``strata`` (one label per example) each stratum is resampled within itself, so every
    resample keeps the strata sizes: use it when the test set was built balanced by design
    (e.g. half positive within every group), so that the interval reflects the model's errors
    rather than a resampled imbalance the design rules out.
    """
    if n < 1:
        raise ValueError(f"resample_indices: need at least one example, got n={n}")
    check_n_boot(n_boot, "resample_indices")
    rng = np.random.default_rng(seed)
    if strata is None:
        return rng.integers(0, n, size=(n_boot, n))
    labels = np.asarray(strata)
    if labels.shape != (n,):
        raise ValueError(
            f"resample_indices: strata needs one label per example ({n}), got shape {labels.shape}"
        )
    _, codes = np.unique(labels, return_inverse=True)
    out = np.empty((n_boot, n), dtype=np.int64)
    for code in range(int(codes.max()) + 1):
        members = np.flatnonzero(codes == code)
        out[:, members] = members[rng.integers(0, members.size, size=(n_boot, members.size))]
    return out


def index_chunks(idx: np.ndarray) -> list[np.ndarray]:
    """Split ``(B, n)`` resample indices into row blocks that bound memory when gathered."""
    if idx.size == 0:
        return [idx]
    step = max(1, _BOOT_CHUNK_ELEMENTS // max(idx.shape[1], 1))
    return [idx[i : i + step] for i in range(0, idx.shape[0], step)]


def percentile_estimate(point: float, samples: np.ndarray, n: int, alpha: float = 0.05,
                        method: str = "bootstrap") -> Estimate:
    """Percentile interval from a point value and its bootstrap samples (NaN samples dropped)."""
    good = samples[np.isfinite(samples)]
    if good.size < 2 or not math.isfinite(point):
        return Estimate(_finite(point), n=n, confidence=1 - alpha)
    low, high = np.quantile(good, [alpha / 2, 1 - alpha / 2])
    return Estimate(float(point), float(low), float(high), float(good.std(ddof=1)), n, method,
                    1 - alpha)


def bootstrap_ci(
    data: Any,
    statistic: Callable[..., Any] = np.mean,
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
    *,
    vectorized: bool = False,
    strata: Sequence[Any] | None = None,
) -> Estimate:
    """Percentile bootstrap interval of ``statistic(*data)`` over examples.

    Args:
        data: one 1-D array, or a tuple/list of equal-length arrays resampled together, e.g.
            ``(y_true, y_pred)``.
        statistic: called as ``statistic(*arrays)`` and returning a number. With ``vectorized=True``
            it is called as ``statistic(*arrays_2d, axis=-1)`` on a batch of resamples (one per row)
            and must return one value per row, which is much faster (``np.mean`` qualifies).
        n_boot: resamples (0 or 1: point value only); alpha: two-sided level; seed: RNG seed;
        strata: resample within these labels (see :func:`resample_indices`).

    Returns:
        an :class:`Estimate` (``method="bootstrap"``): the statistic on the full data, the
        percentile interval and the standard deviation of the bootstrap distribution.
    """
    if isinstance(data, (tuple, list)) and len(data) > 0 and np.ndim(data[0]) >= 1:
        arrays = [_as_1d(arr, f"data[{i}]", dtype=None) for i, arr in enumerate(data)]
        _check_same_length(arrays, [f"data[{i}]" for i in range(len(arrays))])
    else:
        arrays = [_as_1d(data, "data", dtype=None)]
    check_n_boot(n_boot, "bootstrap_ci")
    _check_alpha(alpha)
    n = arrays[0].shape[0]

    def stat(idx: np.ndarray) -> np.ndarray:
        if vectorized:
            values = np.asarray(statistic(*(arr[idx] for arr in arrays), axis=-1), dtype=float)
            if values.shape != (idx.shape[0],):
                raise ValueError(
                    f"statistic with vectorized=True must return one value per resample "
                    f"(shape {(idx.shape[0],)}), got shape {values.shape}; reduce along axis=-1"
                )
            return values
        return np.array([float(statistic(*(arr[row] for arr in arrays))) for row in idx])

    point = float(stat(np.arange(n)[None, :])[0])
    if n_boot < 2 or n < 2:
        return Estimate(point, n=n, confidence=1 - alpha)
    idx = resample_indices(n, n_boot, seed, strata)
    boot = np.concatenate([stat(part) for part in index_chunks(idx)])
    return percentile_estimate(point, boot, n, alpha, "bootstrap")


@dataclass(frozen=True)
class PairedResult:
    """A paired comparison ``a - b``: the difference with its interval and test p-values.

    ``p_value``: two-sided test of ``difference == 0``; :func:`one_sided_p` gives one-sided tests
    against a margin from ``difference``.
    """

    difference: Estimate
    p_value: float | None
    test: str


Statistic = Callable[[Mapping[str, np.ndarray], np.ndarray], np.ndarray]


def _mean_of(key: str) -> Statistic:
    def stat(arrays: Mapping[str, np.ndarray], idx: np.ndarray) -> np.ndarray:
        return np.asarray(arrays[key], dtype=float)[idx].mean(axis=-1)

    return stat


def paired_bootstrap(
    a: Mapping[str, Any] | Any,
    b: Mapping[str, Any] | Any,
    statistic: Statistic | None = None,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
    strata: Sequence[Any] | None = None,
) -> PairedResult:
    """Paired bootstrap of ``statistic(a) - statistic(b)`` for two systems on the same examples.

    ``a`` and ``b`` are per-example arrays of one length ``n`` (the same examples in the same
    order): either plain 1-D arrays (the statistic is then their mean unless given) or mappings
    of names to arrays. ``statistic(arrays, idx)`` returns one value per row of the ``(B, n)``
    index array ``idx``. Both systems are resampled with the same indices (within ``strata`` if
    given), so what the examples share cancels out.

    The interval is the percentile interval of the bootstrap differences; the p-value is the
    two-sided Wald test ``difference / bootstrap stderr`` against the normal distribution (smooth,
    unlike a count of resamples, so it survives multiplicity adjustment with hundreds of
    resamples). With ``n_boot`` < 2 only the difference is given.
    """
    where = "paired_bootstrap"
    check_n_boot(n_boot, where)
    _check_alpha(alpha)
    if not isinstance(a, Mapping):
        a, b = {"x": _as_1d(a, "a")}, {"x": _as_1d(b, "b")}
        statistic = statistic or _mean_of("x")
    elif statistic is None:
        raise ValueError(f"{where}: pass a statistic(arrays, idx) with mapping inputs")
    if not isinstance(b, Mapping):
        raise ValueError(f"{where}: a and b must both be arrays or both be mappings of arrays")
    sizes = {f"a[{k}]": len(v) for k, v in a.items()} | {f"b[{k}]": len(v) for k, v in b.items()}
    if not sizes or len(set(sizes.values())) != 1:
        raise ValueError(
            f"{where}: both systems need per-example arrays of one length, got {sizes};"
            " score both on the same examples"
        )
    n = next(iter(sizes.values()))
    if n < 1:
        raise ValueError(f"{where}: no examples; pass at least one per system")
    full = np.arange(n)[None, :]
    point = float(statistic(a, full)[0] - statistic(b, full)[0])
    if n_boot < 2 or n < 2:
        return PairedResult(Estimate(_finite(point), n=n, confidence=1 - alpha), None,
                            "paired_bootstrap")
    idx = resample_indices(n, n_boot, seed, strata)
    samples = np.concatenate([np.asarray(statistic(a, part), dtype=float)
                              - np.asarray(statistic(b, part), dtype=float)
                              for part in index_chunks(idx)])
    est = percentile_estimate(point, samples, n, alpha, "paired_bootstrap")
    result = PairedResult(est, None, "paired_bootstrap")
    if est.stderr is None:
        return result
    p_two = 2.0 * min(one_sided_p(est, 0.0, "greater"), one_sided_p(est, 0.0, "less"))
    return replace(result, p_value=min(1.0, p_two))


def one_sided_p(est: Estimate, margin: float = 0.0,
                alternative: Literal["greater", "less"] = "greater") -> float:
    """One-sided p-value of ``est.value`` against ``margin`` from its standard error.

    ``greater`` tests ``H0: true value <= margin`` against ``> margin``; ``less`` the mirror.
    A ``t`` estimate uses Student's t with ``n - 1`` degrees of freedom, anything else the normal
    distribution (a Wald test). Zero standard error gives 0 or 1. ValueError without a standard
    error (nothing to test with).
    """
    if alternative not in ("greater", "less"):
        raise ValueError(
            f"one_sided_p: alternative must be 'greater' or 'less', got {alternative!r}"
        )
    if est.value is None or est.stderr is None or not math.isfinite(est.stderr):
        raise ValueError("one_sided_p: the estimate has no value or standard error to test")
    shift = est.value - margin if alternative == "greater" else margin - est.value
    if est.stderr <= 0:
        return 0.0 if shift > 0 else 1.0
    z = shift / est.stderr
    if est.method == "t" and est.n is not None and est.n > 1:
        return float(_sps.t.sf(z, df=est.n - 1))
    return float(_sps.norm.sf(z))


def paired_ttest(a: Any, b: Any) -> tuple[float, float, float]:
    """Paired t-test of ``a - b`` against zero: ``(mean_diff, t, p_value)`` (two-sided).

    Zero variance in the differences is handled: all differences equal to zero -> ``t = 0, p = 1``;
    all equal to a non-zero constant -> ``t = +/-inf, p = 0``.
    """
    x = _as_1d(a, "a", min_len=2)
    y = _as_1d(b, "b", min_len=2)
    _check_same_length([x, y], ["a", "b"])
    d = x - y
    mean_diff = float(d.mean())
    sd = float(d.std(ddof=1))
    scale = max(1.0, float(np.max(np.abs(np.concatenate([x, y])))))
    if sd <= 1e-12 * scale:
        if abs(mean_diff) <= 1e-12 * scale:
            return 0.0, 0.0, 1.0
        return mean_diff, math.copysign(math.inf, mean_diff), 0.0
    res = _sps.ttest_rel(x, y)
    return mean_diff, float(res.statistic), float(res.pvalue)


# ---------------------------------------------------------------------------------------------
# the suites' statistics: classifier scores, bias differences, probe-set tests


def accuracy_statistic(y_true: np.ndarray, y_pred: np.ndarray, axis: int = -1) -> np.ndarray:
    """Share of predictions equal to their labels along ``axis``: one value per resample row
    (the ``bootstrap_ci(vectorized=True)`` calling convention)."""
    return np.mean(y_true == y_pred, axis=axis)


def chance_macro_f1(y_true: np.ndarray, *, n_boot: int, seed: int = 0) -> Estimate:
    """Macro-F1 a model reaches without learning, on these test labels, with a bootstrap interval.

    The better of two label-blind predictors: always the majority class (of the test labels
    themselves, the strongest constant guess), and a uniformly random class (expected F1 of class
    ``c`` with share ``p_c`` among ``K`` classes: ``2 p_c / K / (p_c + 1 / K)``).
    """
    y = np.unique(np.asarray(y_true), return_inverse=True)[1].astype(np.int64)
    k = int(y.max()) + 1  # the classes the test labels hold

    def stat(labels: np.ndarray, axis: int = -1) -> np.ndarray:
        rows = labels.reshape(-1, labels.shape[-1])
        counts = np.stack([(rows == c).sum(axis=1) for c in range(k)], axis=1)
        share = counts / rows.shape[1]
        top = share.max(axis=1)
        majority = 2 * top / (1 + top) / (counts > 0).sum(axis=1)
        uniform = (2 * share / k / (share + 1 / k)).sum(axis=1) / k
        return np.maximum(majority, uniform)

    return bootstrap_ci(y, stat, n_boot=n_boot, seed=seed, vectorized=True)


def paired_metric_difference(
    y_true: np.ndarray,
    preds_a: Sequence[np.ndarray],
    preds_b: Sequence[np.ndarray],
    metric: Callable[..., Any],
    *,
    n_boot: int = 1000,
    seed: int = 0,
) -> PairedResult:
    """Mean over seed pairs of ``metric(a_s) - metric(b_s)`` on the same test examples, by
    :func:`paired_bootstrap` (the same resampled examples for every system and seed).

    ``metric(y, p, axis=-1)`` must accept 2-D batches of resamples.
    """
    where = "paired_metric_difference"
    y = np.asarray(y_true)
    if not preds_a or len(preds_a) != len(preds_b):
        raise ValueError(f"{where}: need the same positive number of prediction arrays per "
                         f"system, got {len(preds_a)} and {len(preds_b)}")
    for p in (*preds_a, *preds_b):
        if np.shape(p) != y.shape:
            raise ValueError(f"{where}: predictions of shape {np.shape(p)} do not match "
                             f"y_true {y.shape}; both systems must score the same test examples")

    def mean_metric(arrays: Mapping[str, np.ndarray], idx: np.ndarray) -> np.ndarray:
        yy = arrays["y"][idx]
        per_seed = [np.asarray(metric(yy, arrays[f"p{i}"][idx], axis=-1), dtype=float)
                    for i in range(len(preds_a))]
        return np.mean(per_seed, axis=0)

    a = {"y": y, **{f"p{i}": np.asarray(p) for i, p in enumerate(preds_a)}}
    b = {"y": y, **{f"p{i}": np.asarray(p) for i, p in enumerate(preds_b)}}
    return paired_bootstrap(a, b, mean_metric, n_boot=n_boot, seed=seed)


def abs_estimate(est: Estimate) -> Estimate:
    """|value| with the interval mapped through |.| (from 0 when the interval spans 0)."""
    if est.value is None:
        return est
    if est.ci_low is None or est.ci_high is None:
        return replace(est, value=abs(est.value))
    lo, hi = sorted((abs(est.ci_low), abs(est.ci_high)))
    if est.ci_low <= 0 <= est.ci_high:
        lo = 0.0
    return replace(est, value=abs(est.value), ci_low=lo, ci_high=hi)


def stderr_from_ci95(ci_low: float, ci_high: float) -> float:
    """The standard error behind a two-sided normal 95% interval: its width over ``2 z_0.975``."""
    return (ci_high - ci_low) / (2 * float(_sps.norm.ppf(0.975)))


def normal_difference(a: float, b: float, stderr_a: float | None, stderr_b: float | None,
                      n: int | None = None) -> Estimate:
    """``a - b`` of two independent figures with a normal-approximation 95% interval (their
    standard errors added in quadrature); no interval when either standard error is None."""
    diff = float(a) - float(b)
    if stderr_a is None or stderr_b is None:
        return Estimate(diff, n=n)
    return normal_interval(diff, math.sqrt(stderr_a * stderr_a + stderr_b * stderr_b), n)


def mean_t_test(diff: np.ndarray) -> tuple[Estimate, float | None]:
    """Mean of ``diff`` with a Student-t 95% interval, and the two-sided one-sample t-test
    p-value against 0 (None below two values; no value at all for an empty array)."""
    if diff.size == 0:
        return Estimate(None, n=0), None
    est = t_interval(diff)
    p = paired_ttest(diff, np.zeros_like(diff))[2] if diff.size > 1 else None
    return est, p


def bootstrap_mean(values: np.ndarray, n_boot: int, seed: int) -> Estimate:
    """Mean of ``values`` with a percentile-bootstrap interval over them (``n_boot`` resamples
    drawn by :func:`resample_indices`)."""
    idx = resample_indices(values.size, n_boot, seed)
    return percentile_estimate(float(values.mean()), values[idx].mean(axis=1), values.size)


def ratio_bootstrap(num: np.ndarray, den: np.ndarray, n_boot: int, seed: int) -> Estimate:
    """``sum(num) / sum(den)`` with a percentile-bootstrap interval over the (num, den) pairs;
    ``n`` is ``sum(den)``."""
    point = float(num.sum() / den.sum())
    idx = resample_indices(num.size, n_boot, seed)
    samples = num[idx].sum(axis=1) / den[idx].sum(axis=1)
    return percentile_estimate(point, samples, int(den.sum()))


def level_means(values: np.ndarray, codes: np.ndarray, n_levels: int,
                idx: np.ndarray) -> np.ndarray:
    """Per-resample mean of ``values`` per level: ``(B, n_levels)`` (NaN for an empty level).

    ``idx`` must be resampled within levels (``resample_indices(..., strata=codes)``, or the
    identity row): the columns of a level then hold that level's resampled rows.
    """
    out = np.full((idx.shape[0], n_levels), np.nan)
    start = 0
    for part in index_chunks(idx):
        taken = values[part]
        for j in range(n_levels):
            cols = codes == j
            if cols.any():
                out[start: start + part.shape[0], j] = taken[:, cols].mean(axis=1)
        start += part.shape[0]
    return out


def level_spread(means: np.ndarray) -> np.ndarray:
    """Max minus min along the last axis, NaN levels left out (the gap between groups)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmax(means, axis=-1) - np.nanmin(means, axis=-1)


def paired_spread_difference(a: np.ndarray, b: np.ndarray, codes: np.ndarray, n_levels: int,
                             n_boot: int, seed: int) -> Estimate:
    """The spread of ``a``'s level means (:func:`level_spread`) minus ``b``'s, for two systems'
    values on the same rows (level ``codes``), with a percentile interval from the same
    resamples of both, drawn within levels."""
    n = int(a.size)
    idx = np.concatenate([np.arange(n)[None, :], resample_indices(n, n_boot, seed, strata=codes)])
    d = (level_spread(level_means(a, codes, n_levels, idx))
         - level_spread(level_means(b, codes, n_levels, idx)))
    return percentile_estimate(float(d[0]), d[1:], n)


# ---------------------------------------------------------------------------------------------
# one-sided shift tests (the release gate's evidence)

Alternative = Literal["greater", "less"]


@dataclass(frozen=True)
class ShiftTest:
    """A one-sided test that ``new`` is shifted above (``greater``) or below ``base``.

    ``effect``: mean(new) - mean(base) (Mann-Whitney: the median difference); ``se``: its
    standard error and ``df`` its degrees of freedom (None for the rank test, which has none).
    """

    test: Literal["welch_t", "paired_t", "mann_whitney"]
    statistic: float
    p: float
    effect: float
    se: float | None
    df: float | None
    n_base: int
    n_new: int


def _check_alternative(alternative: str, where: str) -> None:
    if alternative not in ("greater", "less"):
        raise ValueError(f"{where}: alternative must be 'greater' or 'less', got {alternative!r}")


def _sign_p(effect: float, alternative: str) -> float:
    """p of a test without spread: the sign of the effect decides."""
    if effect == 0:
        return 1.0
    return 0.0 if (effect > 0) == (alternative == "greater") else 1.0


def welch_shift(base: Any, new: Any, alternative: Alternative) -> ShiftTest:
    """Welch's unequal-variance t-test of mean(new) against mean(base), one-sided.

    Needs >= 2 values a side; with no spread on either side the sign of the difference decides
    (p 0 or 1, ``se`` 0). ``df`` is the Welch-Satterthwaite value.
    """
    _check_alternative(alternative, "welch_shift")
    b = _as_1d(base, "base", min_len=2)
    n = _as_1d(new, "new", min_len=2)
    effect = float(n.mean() - b.mean())
    vb, vn = float(b.var(ddof=1)) / len(b), float(n.var(ddof=1)) / len(n)
    se = math.sqrt(vb + vn)
    if se <= 1e-12 * max(1.0, float(np.max(np.abs(np.concatenate([b, n]))))):
        return ShiftTest("welch_t", math.copysign(math.inf, effect) if effect else 0.0,
                         _sign_p(effect, alternative), effect, 0.0, None, len(b), len(n))
    df = (vb + vn) ** 2 / (vb ** 2 / (len(b) - 1) + vn ** 2 / (len(n) - 1))
    t = effect / se
    p = _sps.t.sf(t, df) if alternative == "greater" else _sps.t.cdf(t, df)
    return ShiftTest("welch_t", t, float(p), effect, se, df, len(b), len(n))


def paired_shift(base: Any, new: Any, alternative: Alternative) -> ShiftTest:
    """Paired t-test of mean(new - base) against 0, one-sided (pairs in the given order).

    Needs >= 2 pairs; equal differences (no spread) let their sign decide (p 0 or 1).
    """
    _check_alternative(alternative, "paired_shift")
    b = _as_1d(base, "base", min_len=2)
    n = _as_1d(new, "new", min_len=2)
    _check_same_length([b, n], ["base", "new"])
    d = n - b
    effect = float(d.mean())
    se = float(d.std(ddof=1)) / math.sqrt(len(d))
    if se <= 1e-12 * max(1.0, float(np.max(np.abs(np.concatenate([b, n]))))):
        return ShiftTest("paired_t", math.copysign(math.inf, effect) if effect else 0.0,
                         _sign_p(effect, alternative), effect, 0.0, len(d) - 1.0, len(b), len(n))
    t = effect / se
    df = len(d) - 1.0
    p = _sps.t.sf(t, df) if alternative == "greater" else _sps.t.cdf(t, df)
    return ShiftTest("paired_t", t, float(p), effect, se, df, len(b), len(n))


def rank_shift(base: Any, new: Any, alternative: Alternative) -> ShiftTest:
    """Mann-Whitney U test that ``new`` tends to be larger (``greater``) or smaller than
    ``base``, one-sided; ``effect`` is the difference of the medians."""
    _check_alternative(alternative, "rank_shift")
    b = _as_1d(base, "base", min_len=1)
    n = _as_1d(new, "new", min_len=1)
    res = _sps.mannwhitneyu(n, b, alternative=alternative)
    return ShiftTest("mann_whitney", float(res.statistic), float(res.pvalue),
                     float(np.median(n) - np.median(b)), None, None, len(b), len(n))


def robust_sd(values: Any) -> float:
    """1.4826 x the median absolute deviation from the median: the standard deviation of
    normal data, barely moved by a minority of outliers (>= 1 value)."""
    x = _as_1d(values, "values", min_len=1)
    return 1.4826 * float(np.median(np.abs(x - np.median(x))))


def detectable_shift(test: ShiftTest, alpha: float) -> float | None:
    """The smallest shift of the mean the one-sided ``test`` rejects at level ``alpha`` with the
    spread it measured (``t_{1-alpha, df} * se``; 0 without spread), or None for a test without
    a standard error (the rank test)."""
    _check_alpha(alpha)
    if test.se is None:
        return None
    if test.se == 0:
        return 0.0
    return float(_sps.t.ppf(1 - alpha, test.df)) * test.se if test.df else None


# ---------------------------------------------------------------------------------------------
# multiplicity


def adjust_pvalues(pvalues: Sequence[float | None],
                   method: Literal["holm", "bh", "none"] = "holm") -> list[float | None]:
    """Multiplicity-adjusted p-values of one family of tests (None entries stay None, and do not
    count in the family).

    ``holm``: Holm's step-down adjustment; rejecting where the adjusted p <= alpha controls the
    family-wise error rate (the chance of any false flag) at alpha under any dependence.
    ``bh``: Benjamini-Hochberg step-up; controls the false discovery rate (the expected share of
    false flags among the flags) at alpha for independent or positively dependent tests.
    ``none``: the raw p-values.
    """
    if method not in MULTIPLICITY_METHODS:
        raise ValueError(
            f"adjust_pvalues: method must be one of {MULTIPLICITY_METHODS}, got {method!r}"
        )
    present = [i for i, p in enumerate(pvalues) if p is not None]
    raw = np.array([float(pvalues[i]) for i in present], dtype=float)  # type: ignore[arg-type]
    if raw.size and (not np.all(np.isfinite(raw)) or raw.min() < 0 or raw.max() > 1):
        raise ValueError(f"adjust_pvalues: p-values must lie in [0, 1], got {raw.tolist()}")
    out: list[float | None] = [None] * len(pvalues)
    if raw.size == 0:
        return out
    m = raw.size
    if method == "none":
        adjusted = raw
    elif method == "holm":
        order = np.argsort(raw, kind="stable")
        steps = np.maximum.accumulate((m - np.arange(m)) * raw[order])
        adjusted = np.empty(m)
        adjusted[order] = np.minimum(steps, 1.0)
    else:
        adjusted = _sps.false_discovery_control(raw, method="bh")
    for i, value in zip(present, adjusted, strict=True):
        out[i] = float(value)
    return out


# ---------------------------------------------------------------------------------------------
# power laws


@dataclass(frozen=True)
class PowerFit:
    """Least-squares fit of ``log(y) = intercept + exponent * log(n)`` (natural logs).

    ``stderr`` is the standard error of the exponent and ``ci_low``/``ci_high`` its t-quantile
    interval (``n_points - 2`` degrees of freedom) at ``confidence``; all None with two points.
    """

    exponent: float
    stderr: float | None
    intercept: float
    r2: float
    n_points: int
    ci_low: float | None = None
    ci_high: float | None = None
    confidence: float = 0.95

    @property
    def coefficient(self) -> float:
        """The prefactor ``c`` in ``y = c * n ** exponent``."""
        return math.exp(self.intercept)

    def predict(self, n: Any) -> np.ndarray:
        """Fitted ``y`` at ``n`` (array-like, positive)."""
        return self.coefficient * np.asarray(n, dtype=float) ** self.exponent

    def estimate(self) -> Estimate:
        """The exponent as an :class:`Estimate` (``method="ols_t"``)."""
        method = "ols_t" if self.ci_low is not None else None
        return Estimate(self.exponent, self.ci_low, self.ci_high, self.stderr, self.n_points,
                        method, self.confidence)

    def to_dict(self) -> dict[str, float | int | None]:
        """Plain dict for a results record."""
        return asdict(self)


def fit_power_law(n: Any, y: Any, confidence: float = 0.95) -> PowerFit:
    """Fit ``y = c * n ** k`` by least squares in log-log space (``scipy.stats.linregress``):
    slope ``k``, its standard error and its t-quantile interval.

    Needs at least two distinct positive ``n`` and positive ``y`` of equal length.
    """
    x = _as_1d(n, "n", min_len=2)
    v = _as_1d(y, "y", min_len=2)
    _check_same_length([x, v], ["n", "y"])
    _check_confidence(confidence)
    if np.any(x <= 0) or np.any(v <= 0):
        raise ValueError(
            "fit_power_law: n and y must be > 0 (logs are taken); drop non-positive points"
        )
    if np.unique(x).size < 2:
        raise ValueError("fit_power_law: n needs at least two distinct values to fit a slope")
    lx, ly = np.log(x), np.log(v)
    k = int(x.size)
    res = _sps.linregress(lx, ly)
    slope, intercept = float(res.slope), float(res.intercept)
    r2 = float(res.rvalue) ** 2 if np.ptp(ly) > 0 else 1.0
    if k <= 2:
        return PowerFit(slope, None, intercept, r2, k, confidence=confidence)
    stderr = float(res.stderr)
    if not math.isfinite(stderr):
        # linregress leaves the slope's error undefined when log(y) is constant (identical
        # peaks): the fit is exact, so the interval collapses to the point estimate
        resid = ly - (intercept + slope * lx)
        stderr = math.sqrt(float(resid @ resid) / (k - 2) / float(((lx - lx.mean()) ** 2).sum()))
    half = float(_sps.t.ppf(0.5 + confidence / 2.0, df=k - 2)) * stderr
    return PowerFit(slope, stderr, intercept, r2, k, slope - half, slope + half, confidence)


def exponent_verdict(fit: PowerFit, claimed: float, tolerance: float) -> tuple[str, str]:
    """Judge a claim ``O(N^claimed)`` (an upper bound) against a fitted exponent.

    Returns ``(verdict, reason)`` with verdict one of:

    * ``holds`` - the interval's upper bound is <= ``claimed + tolerance``;
    * ``constant_dominated`` - it holds and even the upper bound lies below
      ``claimed - tolerance``: growth is much slower than claimed at these lengths because fixed
      costs dominate (informational, not a violation);
    * ``violated`` - the lower bound exceeds ``claimed + tolerance``;
    * ``inconclusive`` - the interval straddles ``claimed + tolerance`` (or there is no interval).
    """
    if tolerance < 0:
        raise ValueError(f"exponent_verdict: tolerance must be >= 0, got {tolerance}")
    limit = claimed + tolerance
    hi = fit.ci_high if fit.ci_high is not None else None
    lo = fit.ci_low if fit.ci_low is not None else None
    level = f"{fit.confidence:.0%}"
    if hi is None or lo is None:
        return "inconclusive", (f"exponent {fit.exponent:.2f} from {fit.n_points} lengths has no"
                                " interval; fit at least 3 lengths")
    if not all(math.isfinite(x) for x in (fit.exponent, lo, hi)):
        return "inconclusive", (f"the exponent fitted from {fit.n_points} lengths has no finite"
                                " interval (a degenerate fit); measure lengths whose values differ")
    span = f"{fit.exponent:.2f} [{lo:.2f}, {hi:.2f}] ({level}, t, {fit.n_points} lengths)"
    if hi <= limit:
        if hi < claimed - tolerance:
            return "constant_dominated", (f"measured {span} is well below the claimed"
                                          f" N^{claimed:g}: constant-dominated at these lengths")
        return "holds", f"measured {span} within the claimed N^{claimed:g} + {tolerance:g}"
    if lo > limit:
        return "violated", f"measured {span} exceeds the claimed N^{claimed:g} + {tolerance:g}"
    return "inconclusive", (f"measured {span} straddles the claimed N^{claimed:g} +"
                            f" {tolerance:g}; measure more lengths")
