"""Accuracy for attention-harness, as a self-contained HF ``evaluate`` metric module.

Loaded from this file by ``harness.metrics.load_metric("accuracy")`` (never from the hub).
Computes with scikit-learn.
"""

from typing import Any

import datasets
import evaluate
from sklearn.metrics import accuracy_score

_DESCRIPTION = (
    "Accuracy: the fraction (or, with normalize=False, the count) of examples whose predicted "
    "class equals the true class. Shipped with attention-harness."
)

_INPUTS = """
Args:
    predictions (list of int): predicted class ids.
    references (list of int): true class ids.
    normalize (bool): return the fraction (default) instead of the count of correct examples.
    sample_weight (list of float, optional): per-example weights.
Returns:
    accuracy (float).
"""


class HarnessAccuracy(evaluate.Metric):
    """Accuracy, computed with scikit-learn."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_INPUTS,
            features=datasets.Features(
                {"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}
            ),
            reference_urls=[
                "https://scikit-learn.org/stable/modules/generated/sklearn.metrics.accuracy_score.html"
            ],
        )

    def _compute(
        self,
        predictions: list[int],
        references: list[int],
        normalize: bool = True,
        sample_weight: list[float] | None = None,
    ) -> dict[str, Any]:
        score = accuracy_score(
            references, predictions, normalize=normalize, sample_weight=sample_weight
        )
        return {"accuracy": float(score)}
