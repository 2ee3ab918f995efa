"""Statistics for benchmark results: summaries, bootstrap intervals, paired tests, power-law fits.

Only numpy and scipy are used. Every function validates its input and raises ``ValueError`` naming
the argument, what was wrong and how to fix it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats as _sps

__all__ = [
    "PowerFit",
    "bootstrap_ci",
    "fit_power_law",
    "mcnemar",
    "median_iqr",
    "paired_bootstrap_test",
    "paired_ttest",
    "summarize",
]

#: Upper bound on resampled elements held at once by the bootstrap (bounds its memory).
_BOOT_CHUNK_ELEMENTS = 4_000_000
#: McNemar's test uses the exact binomial below this many discordant pairs, chi-square above.
_MCNEMAR_EXACT_BELOW = 25


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


def _check_same_length(arrays: Sequence[np.ndarray], names: Sequence[str]) -> None:
    lengths = {name: arr.shape[0] for arr, name in zip(arrays, names, strict=True)}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"paired inputs must have equal lengths, got {lengths}; align them first")


def summarize(values: Sequence[float], confidence: float = 0.95) -> dict[str, float | int | None]:
    """Mean, sample std (ddof=1), count, standard error and a Student-t confidence interval.

    With a single value the spread is unknown: ``std``, ``stderr``, ``ci_low``, ``ci_high``
    are None.
    """
    arr = _as_1d(values, "values")
    _check_alpha(1.0 - confidence)
    n = int(arr.size)
    mean = float(arr.mean())
    if n == 1:
        return {"mean": mean, "std": None, "n": 1, "stderr": None, "ci_low": None, "ci_high": None}
    std = float(arr.std(ddof=1))
    stderr = std / math.sqrt(n)
    half = float(_sps.t.ppf(0.5 + confidence / 2.0, df=n - 1)) * stderr
    return {
        "mean": mean,
        "std": std,
        "n": n,
        "stderr": stderr,
        "ci_low": mean - half,
        "ci_high": mean + half,
    }


def median_iqr(values: Sequence[float]) -> dict[str, float | int]:
    """Median, first and third quartiles (linear interpolation), IQR and count."""
    arr = _as_1d(values, "values")
    q1, median, q3 = (float(q) for q in np.percentile(arr, [25.0, 50.0, 75.0]))
    return {"median": median, "q1": q1, "q3": q3, "iqr": q3 - q1, "n": int(arr.size)}


def _resample_statistics(
    arrays: Sequence[np.ndarray],
    statistic: Callable[..., Any],
    n_boot: int,
    rng: np.random.Generator,
    vectorized: bool,
) -> np.ndarray:
    """Statistic of ``n_boot`` paired resamples (same indices for every array), chunked."""
    n = arrays[0].shape[0]
    out = np.empty(n_boot, dtype=float)
    chunk = max(1, min(n_boot, _BOOT_CHUNK_ELEMENTS // max(n, 1)))
    for start in range(0, n_boot, chunk):
        stop = min(n_boot, start + chunk)
        idx = rng.integers(0, n, size=(stop - start, n))
        if vectorized:
            values = np.asarray(statistic(*(arr[idx] for arr in arrays), axis=-1), dtype=float)
            if values.shape != (stop - start,):
                raise ValueError(
                    f"statistic with vectorized=True must return one value per resample "
                    f"(shape {(stop - start,)}), got shape {values.shape}; reduce along axis=-1"
                )
            out[start:stop] = values
        else:
            for row, row_idx in enumerate(idx):
                out[start + row] = float(statistic(*(arr[row_idx] for arr in arrays)))
    return out


def bootstrap_ci(
    data: Any,
    statistic: Callable[..., Any] = np.mean,
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
    *,
    vectorized: bool = False,
) -> tuple[float, float, float, float]:
    """Percentile bootstrap interval of ``statistic(*data)``.

    Args:
        data: one 1-D array, or a tuple/list of equal-length arrays that are resampled together
            (paired), e.g. ``(y_true, y_pred)``.
        statistic: called as ``statistic(*arrays)`` and returning a number. With ``vectorized=True``
            it is called as ``statistic(*arrays_2d, axis=-1)`` on a batch of resamples (one per row)
            and must return one value per row, which is much faster (``np.mean`` qualifies).
        n_boot: number of resamples; alpha: two-sided level (0.05 -> 95% interval); seed: RNG seed.

    Returns:
        ``(point, low, high, stderr)``: the statistic on the full data, the percentile interval and
        the standard deviation of the bootstrap distribution.
    """
    if isinstance(data, (tuple, list)) and len(data) > 0 and np.ndim(data[0]) >= 1:
        arrays = [_as_1d(arr, f"data[{i}]", dtype=None) for i, arr in enumerate(data)]
        _check_same_length(arrays, [f"data[{i}]" for i in range(len(arrays))])
    else:
        arrays = [_as_1d(data, "data", dtype=None)]
    if n_boot < 2:
        raise ValueError(f"n_boot must be >= 2, got {n_boot}; use e.g. 1000")
    _check_alpha(alpha)
    rng = np.random.default_rng(seed)
    if vectorized:
        point_arr = np.asarray(
            statistic(*(arr[np.newaxis] for arr in arrays), axis=-1), dtype=float
        )
        if point_arr.shape != (1,):
            raise ValueError(
                f"statistic with vectorized=True must return one value per resample "
                f"(shape (1,) for one row), got shape {point_arr.shape}; reduce along axis=-1"
            )
        point = float(point_arr[0])
    else:
        point = float(statistic(*arrays))
    boot = _resample_statistics(arrays, statistic, n_boot, rng, vectorized)
    low, high = np.quantile(boot, [alpha / 2.0, 1.0 - alpha / 2.0])
    return point, float(low), float(high), float(boot.std(ddof=1))


def paired_bootstrap_test(
    metric_fn: Callable[[np.ndarray, np.ndarray], float],
    y_true: Any,
    pred_a: Any,
    pred_b: Any,
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> tuple[float, float, float, float]:
    """Paired bootstrap comparison of two systems scored on the same examples.

    ``diff = metric_fn(y_true, pred_a) - metric_fn(y_true, pred_b)``. Examples are resampled
    with the same indices for both systems. The two-sided p-value tests ``diff == 0`` using the
    bootstrap distribution shifted to the null: ``(1 + #{|d* - diff| >= |diff|}) / (n_boot + 1)``.

    Returns:
        ``(diff, low, high, p_value)`` with the percentile interval of the difference.
    """
    y = _as_1d(y_true, "y_true", dtype=None)
    a = _as_1d(pred_a, "pred_a", dtype=None)
    b = _as_1d(pred_b, "pred_b", dtype=None)
    _check_same_length([y, a, b], ["y_true", "pred_a", "pred_b"])
    if n_boot < 2:
        raise ValueError(f"n_boot must be >= 2, got {n_boot}; use e.g. 1000")
    _check_alpha(alpha)

    def diff_fn(yy: np.ndarray, aa: np.ndarray, bb: np.ndarray) -> float:
        return float(metric_fn(yy, aa)) - float(metric_fn(yy, bb))

    diff = diff_fn(y, a, b)
    boot = _resample_statistics([y, a, b], diff_fn, n_boot, np.random.default_rng(seed), False)
    low, high = np.quantile(boot, [alpha / 2.0, 1.0 - alpha / 2.0])
    extreme = int(np.count_nonzero(np.abs(boot - diff) >= abs(diff) - 1e-12))
    p_value = min(1.0, (1 + extreme) / (n_boot + 1))
    return diff, float(low), float(high), p_value


def mcnemar(correct_a: Any, correct_b: Any, *, exact: bool | None = None) -> tuple[float, float]:
    """McNemar's test on paired per-example correctness of two classifiers.

    With ``b`` = examples only A gets right and ``c`` = only B gets right: the exact form
    (default when ``b + c < 25``) returns ``(min(b, c), two-sided binomial p at 0.5)``; otherwise
    the chi-square form with continuity correction ``(|b - c| - 1)^2 / (b + c)`` on 1 degree of
    freedom. No discordant pairs -> ``(0.0, 1.0)``.
    """
    ca = _as_1d(correct_a, "correct_a", dtype=None)
    cb = _as_1d(correct_b, "correct_b", dtype=None)
    _check_same_length([ca, cb], ["correct_a", "correct_b"])
    for arr, name in ((ca, "correct_a"), (cb, "correct_b")):
        if not np.all(np.isin(arr, (0, 1))):
            raise ValueError(f"{name}: must hold booleans or 0/1 per example, got other values")
    ca, cb = ca.astype(bool), cb.astype(bool)
    b = int(np.count_nonzero(ca & ~cb))
    c = int(np.count_nonzero(~ca & cb))
    n = b + c
    if n == 0:
        return 0.0, 1.0
    use_exact = n < _MCNEMAR_EXACT_BELOW if exact is None else exact
    if use_exact:
        k = min(b, c)
        return float(k), float(_sps.binomtest(k, n, 0.5, alternative="two-sided").pvalue)
    statistic = (abs(b - c) - 1.0) ** 2 / n
    return float(statistic), float(_sps.chi2.sf(statistic, df=1))


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
    t = mean_diff / (sd / math.sqrt(d.size))
    p = float(2.0 * _sps.t.sf(abs(t), df=d.size - 1))
    return mean_diff, float(t), p


@dataclass(frozen=True)
class PowerFit:
    """Least-squares fit of ``log(y) = intercept + exponent * log(n)`` (natural logs).

    ``stderr`` is the standard error of the exponent (None with only two points).
    """

    exponent: float
    stderr: float | None
    intercept: float
    r2: float
    n_points: int

    @property
    def coefficient(self) -> float:
        """The prefactor ``c`` in ``y = c * n ** exponent``."""
        return math.exp(self.intercept)

    def predict(self, n: Any) -> np.ndarray:
        """Fitted ``y`` at ``n`` (array-like, positive)."""
        return self.coefficient * np.asarray(n, dtype=float) ** self.exponent

    def to_dict(self) -> dict[str, float | int | None]:
        """Plain dict for a results record."""
        return asdict(self)


def fit_power_law(n: Any, y: Any) -> PowerFit:
    """Fit ``y = c * n ** k`` by least squares in log-log space: slope ``k`` and its error.

    Needs at least two distinct positive ``n`` and positive ``y`` of equal length.
    """
    x = _as_1d(n, "n", min_len=2)
    v = _as_1d(y, "y", min_len=2)
    _check_same_length([x, v], ["n", "y"])
    if np.any(x <= 0) or np.any(v <= 0):
        raise ValueError(
            "fit_power_law: n and y must be > 0 (logs are taken); drop non-positive points"
        )
    if np.unique(x).size < 2:
        raise ValueError("fit_power_law: n needs at least two distinct values to fit a slope")
    lx, ly = np.log(x), np.log(v)
    k = x.size
    mx, my = lx.mean(), ly.mean()
    sxx = float(np.sum((lx - mx) ** 2))
    slope = float(np.sum((lx - mx) * (ly - my)) / sxx)
    intercept = float(my - slope * mx)
    resid = ly - (intercept + slope * lx)
    ss_res = float(np.sum(resid**2))
    ss_tot = float(np.sum((ly - my) ** 2))
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else 1.0
    stderr = math.sqrt(ss_res / (k - 2) / sxx) if k > 2 else None
    return PowerFit(exponent=slope, stderr=stderr, intercept=intercept, r2=r2, n_points=k)
