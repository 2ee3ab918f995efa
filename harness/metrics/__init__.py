"""Metric modules shipped with the package, loaded through HF ``evaluate`` from local files.

Each metric lives in ``harness/metrics/<name>/<name>.py`` as an ``evaluate.Metric`` subclass that
computes with scikit-learn. :func:`load_metric` hands ``evaluate.load`` the absolute path of that
file, so no hub lookup happens and runs work offline.

>>> from harness.metrics import macro_f1
>>> round(macro_f1([0, 1, 1, 0], [0, 1, 0, 0]), 4)
0.7333
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import evaluate

__all__ = ["METRICS_DIR", "accuracy", "available_metrics", "load_metric", "macro_f1", "metric_path"]

#: Folder holding one sub-folder per shipped metric.
METRICS_DIR = Path(__file__).resolve().parent

_LOADED: dict[str, evaluate.EvaluationModule] = {}


def available_metrics() -> list[str]:
    """Names of the shipped metrics (folders ``<name>/`` holding ``<name>.py``)."""
    return sorted(
        entry.name
        for entry in METRICS_DIR.iterdir()
        if entry.is_dir() and (entry / f"{entry.name}.py").is_file()
    )


def metric_path(name: str) -> Path:
    """Absolute path of the module file of the shipped metric ``name``."""
    names = available_metrics()
    if name not in names:
        raise ValueError(f"unknown metric {name!r}; shipped metrics are {names}")
    return METRICS_DIR / name / f"{name}.py"


def load_metric(name: str, **kwargs: Any) -> evaluate.EvaluationModule:
    """Load the shipped metric ``name`` with ``evaluate.load`` from its local file (never the hub).

    ``kwargs`` go to ``evaluate.load``; ``keep_in_memory`` defaults to True so computing writes no
    cache files.
    """
    import evaluate

    kwargs.setdefault("keep_in_memory", True)
    return evaluate.load(str(metric_path(name)), **kwargs)


def _cached(name: str) -> evaluate.EvaluationModule:
    if name not in _LOADED:
        _LOADED[name] = load_metric(name)
    return _LOADED[name]


def _labels(values: Sequence[int] | np.ndarray, what: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{what}: expected a 1-D sequence of class ids, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{what}: is empty; pass at least one example")
    if arr.dtype.kind == "b":
        arr = arr.astype(np.int64)
    if arr.dtype.kind not in "iu":
        if arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise ValueError(
                f"{what}: class ids must be integers, got dtype {arr.dtype}; "
                "map labels to ints first"
            )
    return arr.astype(np.int64)


def _pair(y_true: Sequence[int], y_pred: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    ref, pred = _labels(y_true, "y_true"), _labels(y_pred, "y_pred")
    if ref.shape != pred.shape:
        raise ValueError(
            f"y_true has {ref.size} examples but y_pred has {pred.size}; pass one prediction "
            "per example"
        )
    return ref, pred


def macro_f1(
    y_true: Sequence[int], y_pred: Sequence[int], labels: Sequence[int] | None = None
) -> float:
    """Macro-averaged F1 over ``labels`` (default: every class in either input), via the shipped
    ``f1`` metric. Classes never predicted nor present count as F1 = 0."""
    ref, pred = _pair(y_true, y_pred)
    result = _cached("f1").compute(
        predictions=pred.tolist(),
        references=ref.tolist(),
        average="macro",
        labels=None if labels is None else [int(v) for v in labels],
    )
    return float(result["f1"])


def accuracy(y_true: Sequence[int], y_pred: Sequence[int]) -> float:
    """Fraction of examples predicted correctly, via the shipped ``accuracy`` metric."""
    ref, pred = _pair(y_true, y_pred)
    result = _cached("accuracy").compute(predictions=pred.tolist(), references=ref.tolist())
    return float(result["accuracy"])
