"""Probe sets: the user's own group-annotated sentences, scored by a trained model.

A probe set is one or more local files (csv, tsv, json/jsonl, parquet: read exactly as text data,
see :mod:`harness.data.text`) or a hub dataset, with

* a text column (one sentence per row; empty or repeated sentences are refused),
* one or more group columns (e.g. ``Gender``, ``Race``), each with at least two levels,
* optionally pair columns (e.g. ``Template``, ``Emotion word``): rows sharing the pair key and
  the values of every other group column differ only in one group column and form pairs (the
  Equity Evaluation Corpus protocol, Kiritchenko & Mohammad 2018),
* optionally a label column (the expected class, for per-group accuracy and equalized odds).

Empty group values (e.g. a race for "my mother") are kept as their own level (``empty="level"``,
named ``empty_level``) or left out of that column's analyses (``empty="drop"``).

Every problem found is raised as :class:`ProbeSetError` (a ``ValueError``) naming the file and the
column, before any model is trained.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "INTERSECTION_SEP",
    "ProbeSet",
    "ProbeSetError",
    "load_probe_set",
]

#: Joins the levels (and names) of the group columns in their intersection: ``female × Black``.
INTERSECTION_SEP = " × "
_FORMATS = (".csv", ".tsv", ".json", ".jsonl", ".parquet")


class ProbeSetError(ValueError):
    """A probe set is unusable; the message names the file and the column."""


@dataclass
class ProbeSet:
    """A loaded, validated probe set.

    ``groups[column]`` holds each row's level (empty values already mapped to ``empty_level`` or
    to ``None`` when dropped); ``keys`` the pair key of each row (``None`` without pair columns);
    ``labels`` the raw label values (``None`` without a label column); ``origin[i]`` the file
    (or hub split) and row number of row ``i``.
    """

    name: str
    texts: list[str]
    groups: dict[str, list[str | None]]
    keys: list[str] | None
    labels: list[Any] | None
    origin: list[str]
    pair_columns: list[str] = field(default_factory=list)
    template_column: str | None = None
    templates: list[str] | None = None
    columns: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def fingerprint(self) -> str:
        """sha1 prefix of the texts, groups, keys and labels (pairs artifacts with this set)."""
        h = hashlib.sha1()
        for part in (self.texts, sorted(self.groups.items()), self.keys, self.labels):
            h.update(repr(part).encode())
        return h.hexdigest()[:16]

    @property
    def group_columns(self) -> list[str]:
        return list(self.groups)

    def analysis_columns(self) -> dict[str, list[str | None]]:
        """Each group column, and with two or more their intersection (``A × B``): row levels,
        ``None`` where a row is left out (a dropped empty value in any of the columns)."""
        out = dict(self.groups)
        if len(self.groups) > 1:
            name = INTERSECTION_SEP.join(self.groups)
            rows = zip(*self.groups.values(), strict=True)
            out[name] = [None if any(v is None for v in row) else INTERSECTION_SEP.join(row)
                         for row in rows]
        return out

    def pair_keys(self, column: str) -> list[str | None]:
        """Keys under which rows differ only in ``column``: the pair key plus the values of the
        other group columns; ``None`` for rows left out (no pair columns, or dropped)."""
        if self.keys is None:
            return [None] * len(self)
        others = [c for c in self.groups if c != column]
        out: list[str | None] = []
        for i, key in enumerate(self.keys):
            if self.groups[column][i] is None:
                out.append(None)
                continue
            rest = [str(self.groups[c][i]) for c in others]
            out.append("\x1f".join([key, *rest]))
        return out

    def summary(self) -> dict[str, Any]:
        """Sizes and levels, for records and the report."""
        return {
            "name": self.name, "rows": len(self), "fingerprint": self.fingerprint,
            "levels": {c: dict(Counter(v for v in vals if v is not None))
                       for c, vals in self.groups.items()},
            "pair_columns": self.pair_columns, "label": self.labels is not None,
            **self.columns,
        }


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or (
        isinstance(value, str) and not value.strip())


def _check_files(files: Sequence[str | Path]) -> list[Path]:
    paths = []
    for raw in files:
        path = Path(raw).expanduser()
        if path.suffix.lower() not in _FORMATS:
            raise ProbeSetError(
                f"probe file {path}: cannot tell its format from the extension; use one of"
                f" {', '.join(_FORMATS)}")
        if not path.is_file():
            raise ProbeSetError(f"probe file {path}: not found")
        paths.append(path)
    if not paths:
        raise ProbeSetError("probe set: no files given; pass --probe-files PATH[,PATH]")
    if len({p.resolve() for p in paths}) != len(paths):
        raise ProbeSetError(f"probe set: a file is given twice in {[str(p) for p in paths]}")
    return paths


def _read_tables(files: Sequence[str | Path] | None, dataset: str | None,
                 cache_dir: str | None) -> list[tuple[str, Any]]:
    """``[(where, datasets.Dataset)]``: one per local file, or per split of a hub dataset."""
    from harness.data.text import _load_hub, read_split_files

    if (files is None) == (dataset is None):
        raise ProbeSetError("probe set: pass exactly one of probe files or a probe dataset")
    if dataset is not None:
        try:
            loaded, name = _load_hub(dataset, cache_dir)
        except RuntimeError as err:
            raise ProbeSetError(f"probe dataset {dataset!r}: {err}") from None
        return [(f"probe dataset {name} split {split}", ds) for split, ds in loaded.items()]
    paths = _check_files(files or [])
    tables = []
    for path in paths:
        try:
            ds = read_split_files({"probe": path}, cache_dir=cache_dir)["probe"]
        except ValueError as err:
            raise ProbeSetError(f"probe file {path}: {err}") from None
        tables.append((f"probe file {path}", ds))
    return tables


def load_probe_set(
    *,
    files: Sequence[str | Path] | None = None,
    dataset: str | None = None,
    text_column: str,
    group_columns: Sequence[str],
    pair_columns: Sequence[str] = (),
    label_column: str | None = None,
    template_column: str | None = None,
    empty: str = "level",
    empty_level: str = "(empty)",
    cache_dir: str | None = None,
) -> ProbeSet:
    """Read and validate a probe set (see the module doc); :class:`ProbeSetError` on bad input."""
    if empty not in ("level", "drop"):
        raise ProbeSetError(f"probe set: empty must be 'level' or 'drop', got {empty!r}")
    group_columns, pair_columns = list(group_columns), list(pair_columns)
    if not group_columns:
        raise ProbeSetError("probe set: name at least one group column (--group-columns A,B)")
    named = [text_column, *group_columns, *pair_columns, *([label_column] if label_column else [])]
    repeated = sorted({c for c in named if named.count(c) > 1})
    if repeated:
        raise ProbeSetError(f"probe set: column(s) {repeated} named in two roles; the text,"
                            " group, pair and label columns must differ")
    if template_column is not None and template_column not in pair_columns:
        raise ProbeSetError(f"probe set: template column {template_column!r} must be one of the"
                            f" pair columns {pair_columns}")
    tables = _read_tables(files, dataset, cache_dir)
    texts: list[str] = []
    origin: list[str] = []
    raw_groups: dict[str, list[Any]] = {c: [] for c in group_columns}
    raw_pairs: dict[str, list[Any]] = {c: [] for c in pair_columns}
    labels: list[Any] = []
    for where, ds in tables:
        names = list(ds.column_names)
        for role, col in [("text", text_column), *(("group", c) for c in group_columns),
                          *(("pair", c) for c in pair_columns),
                          *([("label", label_column)] if label_column else [])]:
            if col not in names:
                raise ProbeSetError(f"{where}: {role} column {col!r} not found; columns:"
                                    f" {', '.join(names)}")
        for row, text in enumerate(ds[text_column]):
            if _missing(text):
                raise ProbeSetError(f"{where}, column {text_column!r}: row {row + 1} has an"
                                    " empty sentence; fill or remove it")
            texts.append(str(text).strip())
            origin.append(f"{where} row {row + 1}")
        for col in group_columns:
            raw_groups[col] += list(ds[col])
        for col in pair_columns:
            for row, value in enumerate(ds[col]):
                if _missing(value):
                    raise ProbeSetError(f"{where}, pair column {col!r}: row {row + 1} is empty;"
                                        " every row needs a pair key")
                raw_pairs[col].append(value)
        if label_column:
            for row, value in enumerate(ds[label_column]):
                if _missing(value):
                    raise ProbeSetError(f"{where}, label column {label_column!r}: row {row + 1}"
                                        " has no label")
                labels.append(value)
    if not texts:
        raise ProbeSetError(f"{tables[0][0] if tables else 'probe set'}: no rows")
    seen: dict[str, int] = {}
    for i, text in enumerate(texts):
        if text in seen:
            raise ProbeSetError(
                f"{origin[i]}, column {text_column!r}: duplicate sentence {text!r} (also"
                f" {origin[seen[text]]}); each probe sentence must appear once")
        seen[text] = i
    groups: dict[str, list[str | None]] = {}
    for col in group_columns:
        values = [None if _missing(v) else str(v).strip() for v in raw_groups[col]]
        if empty == "level":
            values = [empty_level if v is None else v for v in values]
        levels = sorted({v for v in values if v is not None})
        if len(levels) < 2:
            where = "; ".join(w for w, _ in tables)
            raise ProbeSetError(
                f"{where}: group column {col!r} has {len(levels)} level(s) {levels}"
                f" (empty={empty}); a group comparison needs at least two")
        groups[col] = values
    keys = None
    if pair_columns:
        keys = ["\x1f".join(str(raw_pairs[c][i]).strip() for c in pair_columns)
                for i in range(len(texts))]
    template = template_column or (pair_columns[0] if pair_columns else None)
    probe = ProbeSet(
        name=dataset or ",".join(Path(f).name for f in files or []),
        texts=texts, groups=groups, keys=keys, labels=labels if label_column else None,
        origin=origin, pair_columns=pair_columns, template_column=template,
        templates=[str(v).strip() for v in raw_pairs[template]] if template else None,
        columns={"text_column": text_column, "label_column": label_column, "empty": empty},
    )
    if keys is not None and not any(_has_pairs(probe, c) for c in group_columns):
        where = "; ".join(w for w, _ in tables)
        raise ProbeSetError(
            f"{where}: pair columns {pair_columns} form no pairs: no key holds two levels of any"
            f" group column ({', '.join(group_columns)}) with the other group columns equal;"
            " check the pair columns (e.g. Template, Emotion word)")
    return probe


def _has_pairs(probe: ProbeSet, column: str) -> bool:
    levels: dict[str, set[str]] = {}
    for key, level in zip(probe.pair_keys(column), probe.groups[column], strict=True):
        if key is not None and level is not None:
            levels.setdefault(key, set()).add(level)
            if len(levels[key]) > 1:
                return True
    return False


def label_ids(probe: ProbeSet, label_names: Sequence[str], num_classes: int, *,
              positive: int = 1, label_map: Mapping[str, int] | None = None) -> list[int]:
    """The probe labels as class indices of a model: through ``label_map`` if given, else a value
    naming a class (``positive``), an integer index below ``num_classes``, or, for two classes,
    ``positive``/``negative`` (any case) as the ``positive`` class and the other one;
    :class:`ProbeSetError` names the first label that is none of these."""
    assert probe.labels is not None
    names: dict[str, int] = {str(n): i for i, n in enumerate(label_names)}
    if label_map is not None:
        names = {str(k): int(v) for k, v in label_map.items()}
    elif num_classes == 2 and not {"positive", "negative"} & set(names):
        names |= {"positive": positive, "negative": 1 - positive}
    out = []
    for i, value in enumerate(probe.labels):
        text = str(value).strip()
        if label_map is None and text.lower() in ("positive", "negative") and text not in names:
            text = text.lower()
        if text in names and 0 <= names[text] < num_classes:
            out.append(names[text])
            continue
        try:
            number = int(float(text))
        except ValueError:
            number = -1
        if 0 <= number < num_classes and float(text) == number:
            out.append(number)
            continue
        raise ProbeSetError(
            f"{probe.origin[i]}, label column {probe.columns.get('label_column')!r}: label"
            f" {value!r} is not a class of the trained model (classes {list(label_names)} or"
            f" indices 0..{num_classes - 1}); map it with probe_set.label_map, e.g."
            " {positive: 1, negative: 0}")
    return out
