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
named ``empty_level``) or left out of that column's analyses (``empty="drop"``). Empty pair values
follow the same rule: with ``level`` an empty value is a value of its own (the Equity Evaluation
Corpus's four neutral templates have no emotion word: they pair among themselves, and
``pair_empty`` marks their rows so their pairs are reported apart); with ``drop`` such rows are
left out of the paired analyses.

Wide-format pairs (CrowS-Pairs style, ``pair_text_columns=(A, B)``): each row holds two sentences
that differ in the group mentioned; ``texts`` holds every row's A sentence, then every row's B
sentence (``wide`` rows each), and the group columns (e.g. ``bias_type``, any number of levels)
annotate the rows. Repeated sentences are allowed there; a row whose A and B are equal is not.

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
    keys: list[str | None] | None
    labels: list[Any] | None
    origin: list[str]
    pair_columns: list[str] = field(default_factory=list)
    template_column: str | None = None
    templates: list[str] | None = None
    columns: dict[str, Any] = field(default_factory=dict)
    pair_empty: list[bool] | None = None
    pair_text_columns: list[str] = field(default_factory=list)
    wide: int | None = None

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def rows(self) -> int:
        """File rows: sentences, or sentence pairs in wide format."""
        return self.wide if self.wide is not None else len(self.texts)

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
            if key is None or self.groups[column][i] is None:
                out.append(None)
                continue
            rest = [str(self.groups[c][i]) for c in others]
            out.append("\x1f".join([key, *rest]))
        return out

    def summary(self) -> dict[str, Any]:
        """Sizes and levels, for records and the report."""
        return {
            "name": self.name, "rows": self.rows, "fingerprint": self.fingerprint,
            "levels": {c: dict(Counter(v for v in vals if v is not None))
                       for c, vals in self.groups.items()},
            "pair_columns": self.pair_columns, "label": self.labels is not None,
            "pair_text_columns": self.pair_text_columns,
            "empty_pair_rows": sum(self.pair_empty or []),
            **self.columns,
        }


#: Label cells that spell a missing value.
_MISSING_LABELS = {"nan", "na", "n/a", "null", "none", "<na>"}


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or (
        isinstance(value, str) and not value.strip())


def _missing_label(value: Any) -> bool:
    return _missing(value) or (isinstance(value, str) and value.strip().lower()
                               in _MISSING_LABELS)


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
            reason = str(err).removeprefix("text: ").replace(f"probe file {path}", "file")
            raise ProbeSetError(f"probe file {path}: {reason}") from None
        tables.append((f"probe file {path}", ds))
    return tables


def _check_column_roles(empty: str, text_column: str, group_columns: list[str],
                        pair_columns: list[str], wide: list[str], label_column: str | None,
                        template_column: str | None) -> list[str]:
    """Check the columns named for each role fit together (before any file is read); the text
    columns (the two of a wide pair, else the one text column)."""
    if empty not in ("level", "drop"):
        raise ProbeSetError(f"probe set: empty must be 'level' or 'drop', got {empty!r}")
    if wide and len(wide) != 2:
        raise ProbeSetError(f"probe set: pair text columns need exactly two names (A,B), got"
                            f" {wide}")
    if wide and (pair_columns or label_column):
        raise ProbeSetError("probe set: wide-format pairs (--pair-text-columns) take neither"
                            " --pair-columns nor a label column; each row is its own pair")
    if not group_columns and not wide:
        raise ProbeSetError("probe set: name at least one group column (--group-columns A,B)")
    text_columns = wide or [text_column]
    named = [*text_columns, *group_columns, *pair_columns,
             *([label_column] if label_column else [])]
    repeated = sorted({c for c in named if named.count(c) > 1})
    if repeated:
        raise ProbeSetError(f"probe set: column(s) {repeated} named in two roles; the text,"
                            " group, pair and label columns must differ")
    if template_column is not None and template_column not in pair_columns:
        raise ProbeSetError(f"probe set: template column {template_column!r} must be one of the"
                            f" pair columns {pair_columns}")
    return text_columns


def _check_columns_present(where: str, names: list[str], text_columns: list[str],
                           group_columns: list[str], pair_columns: list[str],
                           label_column: str | None, *, wide: bool) -> None:
    """Every named column is in the table ``where`` (columns ``names``); the error names the
    option that named a missing one."""
    roles = [*((("text" if not wide else f"pair text {'AB'[j]}"), c)
               for j, c in enumerate(text_columns)),
             *(("group", c) for c in group_columns), *(("pair", c) for c in pair_columns),
             *([("label", label_column)] if label_column else [])]
    for role, col in roles:
        if col not in names:
            flag = {"text": "--probe-text-column", "group": "--group-columns",
                    "pair": "--pair-columns", "label": "--probe-label-column"}.get(
                role, "--pair-text-columns")
            raise ProbeSetError(f"{where}: {role} column {col!r} not found ({flag});"
                                f" columns: {', '.join(names)}")


def _check_sentences_differ(texts: list[str], second: list[str], origin: list[str],
                            text_column: str, wide: list[str]) -> None:
    """Each probe sentence appears once; in a wide pair, the two sentences of a row differ."""
    if wide:
        same = next((i for i, (a, b) in enumerate(zip(texts, second, strict=True)) if a == b),
                    None)
        if same is not None:
            raise ProbeSetError(f"{origin[same]}: columns {wide[0]!r} and {wide[1]!r} hold the"
                                f" same sentence {texts[same]!r}; a pair needs two sentences")
        return
    seen: dict[str, int] = {}
    for i, text in enumerate(texts):
        if text in seen:
            raise ProbeSetError(
                f"{origin[i]}, column {text_column!r}: duplicate sentence {text!r} (also"
                f" {origin[seen[text]]}); each probe sentence must appear once")
        seen[text] = i


def _group_values(raw: list[Any], col: str, empty: str, empty_level: str, sources: str, *,
                  min_levels: int) -> list[str | None]:
    """A group column's values as text; an empty value becomes ``empty_level`` (``empty=
    "level"``) or None (``"drop"``). Fewer than ``min_levels`` levels is an error."""
    values = [None if _missing(v) else str(v).strip() for v in raw]
    if empty == "level":
        values = [empty_level if v is None else v for v in values]
    levels = sorted({v for v in values if v is not None})
    if len(levels) < min_levels:
        raise ProbeSetError(
            f"{sources}: group column {col!r} has {len(levels)} level(s) {levels}"
            f" (empty={empty}); a group comparison needs at least two")
    return values


def _pair_keys(raw_pairs: dict[str, list[Any]], pair_columns: list[str], n_rows: int,
               empty: str, empty_level: str, sources: str
               ) -> tuple[list[str | None], list[bool]]:
    """Each row's pair key (its pair columns' values joined) and whether any was empty; a row
    with an empty value has no key under ``empty="drop"``. No key at all is an error."""
    keys: list[str | None] = []
    pair_empty: list[bool] = []
    for i in range(n_rows):
        parts = [None if _missing(raw_pairs[c][i]) else str(raw_pairs[c][i]).strip()
                 for c in pair_columns]
        pair_empty.append(any(p is None for p in parts))
        if pair_empty[-1] and empty == "drop":
            keys.append(None)
            continue
        keys.append("\x1f".join(empty_level if p is None else p for p in parts))
    if all(k is None for k in keys):
        raise ProbeSetError(f"{sources}: every row has an empty"
                            f" pair value in {pair_columns} (empty=drop); fill them or use"
                            " --probe-empty level")
    return keys, pair_empty


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
    pair_text_columns: Sequence[str] = (),
    cache_dir: str | None = None,
) -> ProbeSet:
    """Read and validate a probe set (see the module doc); :class:`ProbeSetError` on bad input."""
    group_columns, pair_columns = list(group_columns), list(pair_columns)
    wide = list(pair_text_columns)
    text_columns = _check_column_roles(empty, text_column, group_columns, pair_columns, wide,
                                       label_column, template_column)
    tables = _read_tables(files, dataset, cache_dir)
    texts: list[str] = []
    second: list[str] = []
    origin: list[str] = []
    raw_groups: dict[str, list[Any]] = {c: [] for c in group_columns}
    raw_pairs: dict[str, list[Any]] = {c: [] for c in pair_columns}
    labels: list[Any] = []
    for where, ds in tables:
        _check_columns_present(where, list(ds.column_names), text_columns, group_columns,
                               pair_columns, label_column, wide=bool(wide))
        for j, col in enumerate(text_columns):
            for row, text in enumerate(ds[col]):
                if _missing(text):
                    raise ProbeSetError(f"{where}, column {col!r}: row {row + 1} has an"
                                        " empty sentence; fill or remove it")
                (second if j else texts).append(str(text).strip())
                if not j:
                    origin.append(f"{where} row {row + 1}")
        for col in group_columns:
            raw_groups[col] += list(ds[col])
        for col in pair_columns:
            raw_pairs[col] += list(ds[col])
        if label_column:
            for row, value in enumerate(ds[label_column]):
                if _missing_label(value):
                    raise ProbeSetError(f"{where}, label column {label_column!r}: row {row + 1}"
                                        f" has no label (found {value!r}); fill or remove it")
                labels.append(value)
    if not texts:
        raise ProbeSetError(f"{tables[0][0] if tables else 'probe set'}: no rows")
    _check_sentences_differ(texts, second, origin, text_column, wide)
    sources = "; ".join(w for w, _ in tables)
    groups = {col: _group_values(raw_groups[col], col, empty, empty_level, sources,
                                 min_levels=1 if wide else 2) for col in group_columns}
    keys: list[str | None] | None = None
    pair_empty: list[bool] | None = None
    if pair_columns:
        keys, pair_empty = _pair_keys(raw_pairs, pair_columns, len(texts), empty, empty_level,
                                      sources)
    template = template_column or (pair_columns[0] if pair_columns else None)
    names_of = dataset or ",".join(Path(f).name for f in files or [])
    probe = ProbeSet(
        name=names_of, texts=texts + second, groups=groups, keys=keys,
        labels=labels if label_column else None,
        origin=origin + [f"{o} ({wide[1]})" for o in origin] if wide else origin,
        pair_columns=pair_columns, template_column=template,
        templates=[empty_level if _missing(v) else str(v).strip() for v in raw_pairs[template]]
        if template else None,
        columns={"text_column": text_column if not wide else None,
                 "label_column": label_column, "empty": empty},
        pair_empty=pair_empty, pair_text_columns=wide, wide=len(texts) if wide else None,
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
