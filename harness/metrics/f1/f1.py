"""F1 score for attention-harness, as a self-contained HF ``evaluate`` metric module.

Loaded from this file by ``harness.metrics.load_metric("f1")`` (never from the hub). Computes
with scikit-learn. The default average is ``"macro"`` (the accuracy suite's headline figure).
"""

from typing import Any

import datasets
import evaluate
from sklearn.metrics import f1_score

_DESCRIPTION = (
    "F1 = 2 * precision * recall / (precision + recall), per class, averaged as asked "
    "(macro by default: the unweighted mean over classes). Shipped with attention-harness."
)

_INPUTS = """
Args:
    predictions (list of int): predicted class ids.
    references (list of int): true class ids.
    average (str): 'macro' (default), 'micro', 'weighted', 'binary' or None (per-class scores).
    labels (list of int, optional): classes to include; default all classes seen.
    pos_label (int): the positive class when average='binary' (default 1).
    sample_weight (list of float, optional): per-example weights.
    zero_division (0, 1 or 'warn'): score of a class with no predicted and no true examples
        (default 0).
Returns:
    f1 (float, or list of float when average is None).
"""


class HarnessF1(evaluate.Metric):
    """F1 score (macro-averaged by default), computed with scikit-learn."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_INPUTS,
            features=datasets.Features(
                {"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}
            ),
            reference_urls=[
                "https://scikit-learn.org/stable/modules/generated/sklearn.metrics.f1_score.html"
            ],
        )

    def _compute(
        self,
        predictions: list[int],
        references: list[int],
        average: str | None = "macro",
        labels: list[int] | None = None,
        pos_label: int = 1,
        sample_weight: list[float] | None = None,
        zero_division: int | str = 0,
    ) -> dict[str, Any]:
        score = f1_score(
            references,
            predictions,
            labels=labels,
            pos_label=pos_label,
            average=average,
            sample_weight=sample_weight,
            zero_division=zero_division,
        )
        return {"f1": score.tolist() if average is None else float(score)}
