"""Per-example predictions of the training suites, written next to ``results.jsonl``.

With ``save_predictions`` on (``--save-predictions`` or the profile's ``predictions: {save:
true}``), every accuracy and bias cell writes ``predictions/<cell id>.parquet`` (or ``.jsonl``)
in the run directory, one row per scored example, and its records carry the relative path in
their ``predictions`` field. Columns (docs/RESULTS.md): ``set`` (which examples: ``test``,
``probe_set``), ``id``, ``text`` (or null with ``text: hash``), ``text_sha1``, ``label`` (class
index, null when the examples have none), ``predicted``, ``score`` (positive-class probability;
for more than two classes the predicted class's), and one ``group.<name>`` column per group.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np

from harness.records import Cell, Record
from harness.suites.base import RunContext, SuiteParams

__all__ = ["PREDICTIONS_DIR", "PredictionOptions", "PredictionSet", "save_predictions"]

PREDICTIONS_DIR = "predictions"


class PredictionOptions(SuiteParams):
    """Whether and how cells write their per-example predictions (profile key ``predictions``)."""

    save: bool = False
    format: Literal["parquet", "jsonl"] = "parquet"
    text: Literal["full", "hash"] = "full"


class PredictionSet:
    """The examples one model scored: texts (or None), labels, predictions, scores, groups."""

    def __init__(self, name: str, predicted: np.ndarray, score: np.ndarray, *,
                 texts: Sequence[str] | None = None, labels: Sequence[int] | None = None,
                 groups: Mapping[str, Sequence[Any]] | None = None,
                 ids: Sequence[str] | None = None) -> None:
        n = len(predicted)
        for what, seq in (("texts", texts), ("labels", labels), ("score", score),
                          ("ids", ids), *((f"group {k}", v) for k, v in (groups or {}).items())):
            if seq is not None and len(seq) != n:
                raise ValueError(f"predictions {name}: {what} has {len(seq)} entries for {n}"
                                 " predictions")
        self.name, self.predicted, self.score = name, predicted, score
        self.texts, self.labels, self.groups, self.ids = texts, labels, dict(groups or {}), ids

    def rows(self, text_mode: str, group_names: Sequence[str]) -> list[dict[str, Any]]:
        out = []
        for i in range(len(self.predicted)):
            text = None if self.texts is None else str(self.texts[i])
            row: dict[str, Any] = {
                "set": self.name,
                "id": str(self.ids[i]) if self.ids is not None else f"{self.name}:{i}",
                "text": text if text_mode == "full" else None,
                "text_sha1": None if text is None else hashlib.sha1(text.encode()).hexdigest(),
                "label": None if self.labels is None else int(self.labels[i]),
                "predicted": int(self.predicted[i]),
                "score": float(self.score[i]),
            }
            for g in group_names:
                value = self.groups.get(g)
                row[f"group.{g}"] = None if value is None or value[i] is None else str(value[i])
            out.append(row)
        return out


def save_predictions(ctx: RunContext, cell: Cell, sets: Sequence[PredictionSet],
                     records: list[Record]) -> str | None:
    """Write ``sets`` to ``predictions/<cell id>.<format>`` and point ``records`` at it.

    Does nothing (returns None) unless the run asks for predictions and has a run directory.
    """
    opts: PredictionOptions | None = ctx.predictions
    if opts is None or not opts.save or ctx.run_dir is None or not sets:
        return None
    folder = ctx.run_dir / PREDICTIONS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    groups = list(dict.fromkeys(g for s in sets for g in s.groups))
    rows = [row for s in sets for row in s.rows(opts.text, groups)]
    ext = "parquet" if opts.format == "parquet" else "jsonl"
    path = folder / f"{cell.id}.{ext}"
    tmp = path.with_name(path.name + ".tmp")
    if ext == "parquet":
        import pandas as pd

        frame = pd.DataFrame(rows, columns=list(rows[0]) if rows else None)
        for col in ("label",):
            frame[col] = frame[col].astype("Int64")
        frame.to_parquet(tmp, index=False)
    else:
        with tmp.open("w", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    os.replace(tmp, path)
    rel = f"{PREDICTIONS_DIR}/{path.name}"
    for r in records:
        r.predictions = rel
    return rel
