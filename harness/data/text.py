"""Text classification through HF ``datasets``: a hub dataset (online) or local files.

Local files: ``data_files={"train": PATH, "validation": PATH, "test": PATH}`` or the string
``"train=PATH,test=PATH[,validation=PATH]"``; the format follows the extension: ``.csv``, ``.tsv``
(csv builder, tab delimiter, quoting off so quotes inside sentences stay verbatim), ``.json`` /
``.jsonl`` (json builder), ``.parquet``. Missing splits are filled from train, seeded:

* validation and test given: used as they are;
* only test: validation = ``val_fraction`` of train held out;
* only validation: test = the given validation file, and a new validation = ``val_fraction`` of
  train held out (GLUE-style data whose test labels are hidden);
* neither: validation and test are each ``val_fraction`` of train.

``info["split_sources"]`` records which rule applied. Labels may be ints or strings; they are mapped
to ids in sorted order (``label_names`` keeps the originals, or the hub's class names).
"""

from __future__ import annotations

import csv
import math
import socket
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
import torch

from harness.data.base import Split, TaskData, Tokenizer, check_fraction, check_int, derive_seed
from harness.data.registry import register_task
from harness.data.tokenization import TOKENIZER_KINDS, TRUNCATIONS, build_tokenizer, pack

__all__ = ["MIN_CLASS_ROWS", "MIN_SPLIT_ROWS", "TRUNCATION_WARN", "check_text_data",
           "count_records", "length_stats", "load_text", "parse_data_files", "read_split_files"]

#: The report warns when more than this share of a split's texts is cut at ``max_len``.
TRUNCATION_WARN = 0.10

#: A benchmark run refuses local data with fewer rows than this in a split (after holding out)...
MIN_SPLIT_ROWS = 20
#: ...or fewer rows than this of any class in train (scores on a handful of rows mean nothing).
MIN_CLASS_ROWS = 5
#: Label cells that spell a missing value (read as text by the csv/tsv readers).
_MISSING_LABELS = {"nan", "na", "n/a", "null", "<na>"}
_TEXT_FORMATS = ("csv", "tsv", "json")

SPLITS = ("train", "validation", "test")
_SPLIT_ALIASES = {
    "train": "train",
    "validation": "validation",
    "valid": "validation",
    "val": "validation",
    "dev": "validation",
    "test": "test",
}
_FORMATS = {".csv": "csv", ".tsv": "tsv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}
_OFFLINE_HINT = (
    "pass local files instead, e.g. data_files='train=train.tsv,validation=dev.tsv'"
    " (csv/tsv/json/jsonl/parquet)"
)

RawSplit = tuple[list[Any], list[Any]]  # texts, raw labels


def parse_data_files(data_files: str | Mapping[str, str | Path]) -> dict[str, Path]:
    """Normalize ``data_files`` to ``{split: Path}``; checks split names, formats and existence."""
    if isinstance(data_files, str):
        entries: dict[str, str | Path] = {}
        for part in filter(None, (p.strip() for p in data_files.split(","))):
            split, sep, path = part.partition("=")
            if not sep or not path.strip():
                raise ValueError(
                    f"text: data_files entry {part!r} is not SPLIT=PATH; write e.g."
                    " 'train=train.csv,test=test.csv'"
                )
            entries[split.strip()] = path.strip()
    elif isinstance(data_files, Mapping):
        entries = dict(data_files)
    else:
        raise ValueError(
            f"text: data_files must be a dict {{split: path}} or 'train=PATH,test=PATH',"
            f" got {type(data_files).__name__}"
        )
    files: dict[str, Path] = {}
    for split, path in entries.items():
        canonical = _SPLIT_ALIASES.get(str(split).lower())
        if canonical is None:
            raise ValueError(
                f"text: unknown split {split!r} in data_files; use train, validation (or dev/val)"
                " and test"
            )
        if canonical in files:
            raise ValueError(f"text: split {canonical!r} given twice in data_files")
        path = Path(path).expanduser()
        if path.suffix.lower() not in _FORMATS:
            raise ValueError(
                f"text: cannot tell the format of {path} (split {canonical!r}) from its extension;"
                f" use one of {', '.join(_FORMATS)}"
            )
        if not path.is_file():
            raise ValueError(f"text: {canonical} file not found: {path}")
        if _FORMATS[path.suffix.lower()] in _TEXT_FORMATS:
            with open(path, "rb") as fh:
                head = fh.read(8192)
            if b"\x00" in head:
                raise ValueError(
                    f"text: {canonical} file {path} is binary (NUL bytes), not"
                    f" {path.suffix.lower()[1:]} text; pass a text file or a .parquet file"
                )
        files[canonical] = path
    if "train" not in files:
        raise ValueError(
            f"text: data_files needs a train file; got splits {sorted(files) or 'none'}"
        )
    return files


def _quiet_datasets() -> tuple[Any, bool]:
    import datasets

    was_disabled = datasets.are_progress_bars_disabled()
    datasets.disable_progress_bars()
    return datasets, was_disabled


def _restore(datasets: Any, was_disabled: bool) -> None:
    if not was_disabled:
        datasets.enable_progress_bars()


def _tsv_quoting(path: Path) -> int:
    """``csv.QUOTE_NONE`` when every line of the TSV splits into the header's field count (quotes
    inside sentences stay verbatim, as in SST-2), else ``csv.QUOTE_MINIMAL``: the file quotes
    fields, e.g. reviews that span several lines (read with ``QUOTE_NONE`` such a file's line
    breaks end records mid-review and pandas stops with "Expected 2 fields in line 3, saw 3")."""
    with open(path, encoding="utf-8-sig", newline="") as fh:
        header = fh.readline().rstrip("\r\n")
        width = header.count("\t")
        for line in fh:
            body = line.rstrip("\r\n")
            if body and body.count("\t") != width:
                return csv.QUOTE_MINIMAL
    return csv.QUOTE_NONE


def count_records(path: Path, fmt: str, quoting: int = csv.QUOTE_MINIMAL) -> int:
    """Data records of a csv/tsv file as Python's csv module reads it (quoted line breaks
    included; blank lines skipped), not counting the header."""
    delimiter = "\t" if fmt == "tsv" else ","
    with open(path, encoding="utf-8-sig", errors="replace", newline="") as fh:
        reader = csv.reader(fh, delimiter=delimiter, quoting=quoting)
        return max(0, sum(1 for row in reader if row) - 1)


def _reason(err: BaseException) -> str:
    """The innermost cause of a ``datasets`` error (its own message says only "An error
    occurred while generating the dataset"): e.g. the JSON parser's message and position."""
    seen = err
    while seen.__cause__ is not None or seen.__context__ is not None:
        seen = seen.__cause__ or seen.__context__  # type: ignore[assignment]
    text = f"{type(seen).__name__}: {seen}".strip()
    if "corresponds to no data" in text or "EmptyDatasetError" in text:
        return "no rows (the file has no data rows)"
    return text


def _json_problem(path: Path) -> str | None:
    """Where a JSON (one document) or JSON-lines file fails to parse: line, column, reason."""
    import json

    text = path.read_text(encoding="utf-8-sig", errors="replace")
    try:
        json.loads(text)
        return None
    except json.JSONDecodeError as whole:
        if path.suffix.lower() == ".json" and text.lstrip().startswith(("[", "{\n")):
            return f"invalid JSON at line {whole.lineno} column {whole.colno}: {whole.msg}"
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                json.loads(line)
            except json.JSONDecodeError as err:
                return f"invalid JSON at line {number} column {err.colno}: {err.msg}"
    return None


def read_split_files(files: Mapping[str, Path], cache_dir: str | None = None) -> dict[str, Any]:
    """Load each local file with the matching ``datasets`` builder: ``{split: Dataset}``.

    A 0-byte file is refused ("file is empty"), a file with a header and no rows ("no rows"),
    and csv/tsv files are checked to yield exactly their records (quoted line breaks count once).
    Column names are stripped of surrounding spaces (and a UTF-8 BOM)."""
    datasets, was_disabled = _quiet_datasets()
    try:
        loaded = {}
        for split, path in files.items():
            fmt = _FORMATS[path.suffix.lower()]
            if path.stat().st_size == 0:
                raise ValueError(f"text: {split} file {path} is empty (0 bytes); pass a file"
                                 " with a header row and data rows")
            kwargs: dict[str, Any] = {}
            quoting = csv.QUOTE_MINIMAL
            if fmt == "tsv":
                builder = "csv"
                quoting = _tsv_quoting(path)
                kwargs = {"delimiter": "\t", "quoting": quoting, "keep_default_na": False}
            elif fmt == "csv":
                builder, kwargs = "csv", {"keep_default_na": False}
            else:
                builder = fmt
            if fmt in ("csv", "tsv"):
                kwargs["encoding"] = "utf-8-sig"
            try:
                ds = datasets.load_dataset(
                    builder,
                    data_files={"train": str(path)},
                    split="train",
                    cache_dir=cache_dir,
                    **kwargs,
                )
            except Exception as err:  # malformed file: name it and the parser's reason
                why = (_json_problem(path) if fmt == "json" else None) or _reason(err)
                raise ValueError(
                    f"text: could not read {split} file {path} as {fmt}: {why}"
                ) from err
            if len(ds) == 0:
                raise ValueError(f"text: {split} file {path} has no rows (a header only?); add"
                                 " data rows")
            if fmt in ("csv", "tsv"):
                expected = count_records(path, fmt, quoting)
                if expected != len(ds):
                    raise ValueError(
                        f"text: {split} file {path}: read {len(ds)} rows but the file holds"
                        f" {expected} {fmt} records; check its quoting (a field with a line"
                        " break or a delimiter must be quoted)")
            renames = {c: c.strip().lstrip("\ufeff").strip() for c in ds.column_names}
            renames = {a: b for a, b in renames.items() if a != b and b}
            if renames and len(set(renames.values()) | (set(ds.column_names) - set(renames))) \
                    == len(ds.column_names):
                ds = ds.rename_columns(renames)
            loaded[split] = ds
        return loaded
    finally:
        _restore(datasets, was_disabled)


def _hub_reachable(timeout: float = 3.0) -> bool:
    import datasets.config

    url = urlparse(str(datasets.config.HF_ENDPOINT))
    host, port = (
        url.hostname or "huggingface.co",
        url.port or (443 if url.scheme == "https" else 80),
    )
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _load_hub(dataset: str | Sequence[str], cache_dir: str | None) -> tuple[dict[str, Any], str]:
    """``{split: Dataset}`` from the hub; ``RuntimeError`` with advice when offline/unreachable."""
    if isinstance(dataset, str):
        path, sep, config = dataset.partition(":")
        candidates = [(path, config or None)]
        if not sep and path.count("/") == 1:  # "glue/sst2": a repo id, else dataset + config
            candidates.append(tuple(path.split("/")))  # type: ignore[arg-type]
    elif (
        isinstance(dataset, Sequence)
        and len(dataset) in (1, 2)
        and all(isinstance(p, str) for p in dataset)
    ):
        candidates = [(dataset[0], dataset[1] if len(dataset) == 2 else None)]
    else:
        raise ValueError(
            f"text: dataset must be a hub name like 'imdb', 'glue/sst2', 'glue:sst2' or a tuple"
            f" ('glue', 'sst2'); got {dataset!r}"
        )
    datasets, was_disabled = _quiet_datasets()
    label = f"{dataset!r}"
    try:
        if not datasets.config.HF_HUB_OFFLINE and not _hub_reachable():
            raise RuntimeError(
                f"text: the Hugging Face hub ({datasets.config.HF_ENDPOINT}) is unreachable, so hub"
                f" dataset {label} cannot be downloaded; {_OFFLINE_HINT}. If it is already in your"
                " datasets cache, set HF_HUB_OFFLINE=1"
            )
        errors = []
        for path, config in candidates:
            try:
                loaded = datasets.load_dataset(path, config, cache_dir=cache_dir)
                return dict(loaded), f"{path}" + (f":{config}" if config else "")
            except Exception as err:
                errors.append(f"{path}" + (f" ({config})" if config else "") + f": {err}")
        offline = " (HF_HUB_OFFLINE is set)" if datasets.config.HF_HUB_OFFLINE else ""
        raise RuntimeError(
            f"text: could not load hub dataset {label}{offline}: {' | '.join(errors)};"
            f" {_OFFLINE_HINT}"
        )
    finally:
        _restore(datasets, was_disabled)


_COLUMN_FLAGS = "--text-column/--label-column (profile data.text_column/data.label_column)"


def _columns(ds: Any, split: str, text_column: str | None, label_column: str) -> tuple[str, str]:
    names = list(ds.column_names)
    if text_column is None:
        found = next((c for c in ("sentence", "text") if c in names), None)
        if found is None:
            raise ValueError(
                f"text: {split} split has no 'sentence' or 'text' column; name the text column"
                f" with --text-column (profile data.text_column); available columns:"
                f" {', '.join(names)}"
            )
        text_column = found
    elif text_column not in names:
        raise ValueError(
            f"text: text_column {text_column!r} not in the {split} split (name it with"
            f" --text-column, profile data.text_column); available columns: {', '.join(names)}"
        )
    if label_column not in names:
        raise ValueError(
            f"text: label_column {label_column!r} not in the {split} split (name it with"
            f" --label-column, profile data.label_column); available columns: {', '.join(names)}"
        )
    return text_column, label_column


def _same_columns(loaded: Mapping[str, Any], text_column: str | None, label_column: str) -> None:
    """Files whose column sets differ and lack a needed column in some split: one message
    naming every split's columns and the flags that map them."""
    sets = {split: list(ds.column_names) for split, ds in loaded.items()}
    if len({tuple(sorted(c)) for c in sets.values()}) < 2:
        return
    wanted = [c for c in (text_column, label_column) if c]
    if text_column is None:
        common = set.intersection(*(set(c) for c in sets.values()))
        if not any(c in common for c in ("sentence", "text")):
            wanted.append("sentence/text")
    missing = [s for s, cols in sets.items() if any(w not in cols and not (
        w == "sentence/text" and ({"sentence", "text"} & set(cols))) for w in wanted)]
    if not missing:
        return
    listing = "; ".join(f"{s}: [{', '.join(cols)}]" for s, cols in sets.items())
    raise ValueError(
        f"text: the files have different columns ({listing}); every split needs the text and"
        f" label columns ({', '.join(map(repr, wanted))}): rename them in the files, or map"
        f" them with {_COLUMN_FLAGS}"
    )


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _missing_label(value: Any) -> bool:
    """A missing label: None, NaN, an empty cell or a cell spelling NaN/NA/null."""
    if _missing(value):
        return True
    return isinstance(value, str) and (not value.strip() or value.strip().lower() in
                                       _MISSING_LABELS)


def _raw(ds: Any, split: str, text_col: str, label_col: str) -> RawSplit:
    texts, labels = list(ds[text_col]), list(ds[label_col])
    for row, (t, y) in enumerate(zip(texts, labels, strict=True)):
        if _missing(t):
            raise ValueError(f"text: {split} row {row} has no text in column {text_col!r}")
        if _missing_label(y):
            raise ValueError(f"text: {split} row {row} has no label in column {label_col!r}"
                             f" (found {y!r}); fill or drop the rows without a label")
    return [str(t) for t in texts], labels


def _label_map(
    raw: Mapping[str, RawSplit], class_names: list[str] | None
) -> tuple[dict, list[str]]:
    values = {y for _, labels in raw.values() for y in labels}
    ints = all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values)
    strs = all(isinstance(v, str) for v in values)
    if not (ints or strs):
        kinds = sorted({type(v).__name__ for v in values})
        raise ValueError(f"text: labels must be all ints or all strings, found {', '.join(kinds)}")
    ordered = sorted(values)
    if len(ordered) < 2:
        raise ValueError(f"text: need at least 2 distinct labels, found {ordered}")
    mapping = {v: i for i, v in enumerate(ordered)}
    if ints and class_names and all(0 <= int(v) < len(class_names) for v in ordered):
        names = [class_names[int(v)] for v in ordered]
    else:
        names = [str(v) for v in ordered]
    return mapping, names


def _sample(n: int, k: int | None, seed: int) -> np.ndarray:
    """Sorted seeded subsample of ``range(n)`` of size ``min(n, k)`` (all when ``k`` is None)."""
    if k is None or k >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).permutation(n)[:k])


def _take(raw: RawSplit, index: np.ndarray) -> RawSplit:
    return [raw[0][i] for i in index], [raw[1][i] for i in index]


def _cap_splits(raw: dict[str, RawSplit], max_train: int | None, max_eval: int | None,
                seed: int, task: str) -> None:
    """Cut each split of ``raw`` in place to its cap (``max_train``; ``max_eval`` for validation
    and test) by seeded subsampling; None keeps a split whole."""
    caps = {"train": max_train, "validation": max_eval, "test": max_eval}
    for split in SPLITS:
        index = _sample(len(raw[split][0]), caps[split], derive_seed(seed, task, "cap", split))
        raw[split] = _take(raw[split], index)


def _fill_missing_splits(
    raw: dict[str, RawSplit], val_fraction: float, seed: int
) -> dict[str, str]:
    """Complete ``raw`` to train/validation/test in place (rules in the module doc); sources."""
    sources = {s: "given" for s in raw}
    n_train_all = len(raw["train"][0])
    order = np.random.default_rng(derive_seed(seed, "text", "holdout")).permutation(n_train_all)
    n_hold = max(1, round(val_fraction * n_train_all))
    held = 0
    if "test" not in raw and "validation" in raw:
        raw["test"] = raw.pop("validation")
        sources["test"] = "the given validation split (no test split)"
    for split in ("test", "validation"):
        if split not in raw:
            part = order[held * n_hold : (held + 1) * n_hold]
            raw[split] = _take(raw["train"], np.sort(part))
            sources[split] = f"held out of train (val_fraction={val_fraction})"
            held += 1
    if held:
        rest = np.sort(order[held * n_hold :])
        if rest.size < 1:
            raise ValueError("text: nothing left in train after holding out; lower val_fraction")
        raw["train"] = _take(raw["train"], rest)
        sources["train"] = f"given train minus {held * n_hold} held-out rows"
    return sources


def _raw_splits(
    loaded: Mapping[str, Any], text_column: str | None, label_column: str
) -> tuple[dict[str, RawSplit], list[str], tuple[str, str] | None]:
    """Texts and raw labels of each loaded split (checked), the splits dropped for hidden
    labels, and the columns used."""
    raw: dict[str, RawSplit] = {}
    dropped: list[str] = []
    columns: tuple[str, str] | None = None
    _same_columns(loaded, text_column, label_column)
    for split, ds in loaded.items():
        columns = _columns(ds, split, text_column, label_column)
        texts, labels = _raw(ds, split, *columns)
        if split != "train" and all(isinstance(y, (int, np.integer)) and y < 0 for y in labels):
            dropped.append(split)  # hidden test labels (e.g. GLUE's -1)
            continue
        raw[split] = (texts, labels)
    if len(raw["train"][0]) < 3:
        raise ValueError(f"text: the train split has {len(raw['train'][0])} rows; need at least 3")
    return raw, dropped, columns


def _check_text_arguments(*, one_source: bool, seed: int, val_fraction: float,
                          max_train: int | None, max_eval: int | None, truncation: str,
                          max_len: int | None, tokenizer: str | Tokenizer) -> float:
    """Validate :func:`load_text`'s arguments (a ``ValueError`` naming the bad one); the
    validation fraction as a float. ``one_source``: exactly one of dataset/data_files given."""
    task = "text"
    if not one_source:
        raise ValueError(
            "text: pass exactly one of dataset= (a hub name, needs a network) or data_files="
            " ('train=PATH,test=PATH' or a dict)"
        )
    check_int("seed", seed, task)
    val_fraction = check_fraction("val_fraction", val_fraction, task, open_right=True)
    if val_fraction <= 0:
        raise ValueError("text: val_fraction must be > 0 to hold out missing splits from train")
    for label, cap in (("max_train", max_train), ("max_eval", max_eval)):
        if cap is not None:
            check_int(label, cap, task, minimum=1)
    if truncation not in TRUNCATIONS:
        raise ValueError(f"text: truncation must be one of {TRUNCATIONS}, got {truncation!r}")
    if max_len is not None:
        check_int("max_len", max_len, task, minimum=2)
    if isinstance(tokenizer, str) and tokenizer not in TOKENIZER_KINDS:
        raise ValueError(
            f"text: unknown tokenizer {tokenizer!r}; choose one of {', '.join(TOKENIZER_KINDS)}"
            " or pass a tokenizer object"
        )
    return val_fraction


def _read_text_source(dataset: str | Sequence[str] | None,
                      data_files: str | Mapping[str, str | Path] | None, label_column: str,
                      cache_dir: str | None
                      ) -> tuple[dict[str, Any], dict[str, Any], list[str] | None]:
    """The splits of local ``data_files`` or of a hub ``dataset`` (under canonical split names),
    the description of that source, and the hub's class names of ``label_column`` (if any)."""
    if data_files is not None:
        files = parse_data_files(data_files)
        loaded = read_split_files(files, cache_dir=cache_dir)
        return loaded, {"data_files": {k: str(v) for k, v in files.items()}}, None
    hub, name = _load_hub(dataset, cache_dir)  # type: ignore[arg-type]
    loaded = {}
    for split, ds in hub.items():
        canonical = _SPLIT_ALIASES.get(split.lower())
        if canonical and canonical not in loaded:
            loaded[canonical] = ds
    if "train" not in loaded:
        raise ValueError(f"text: hub dataset {name!r} has no train split (splits: {list(hub)})")
    feature = loaded["train"].features.get(label_column)
    class_names = list(getattr(feature, "names", None) or []) or None
    return loaded, {"dataset": name, "hub_splits": list(hub)}, class_names


def _text_tokenizer(tokenizer: str | Tokenizer, train_texts: list[str], vocab_size: int,
                    truncation: str) -> Tokenizer:
    """A tokenizer of kind ``tokenizer`` trained on ``train_texts``, or the tokenizer object
    given, checked to offer what packing needs."""
    if isinstance(tokenizer, str):
        tok = build_tokenizer(tokenizer, train_texts, vocab_size=vocab_size, where="text")
        tok.truncation = truncation  # new texts (e.g. counterfactuals) are cut the same way
    else:
        tok = tokenizer
    if not isinstance(tok, Tokenizer):
        raise ValueError(
            "text: tokenizer object must offer encode_batch(texts, max_len), vocab_size, pad_id and"
            f" cls_id; got {type(tok).__name__}"
        )
    return tok


def _text_split(split: str, raw: RawSplit, encoded: list[np.ndarray], mapping: dict,
                width: int, tok: Tokenizer, truncation: str) -> Split:
    """A split's token ids packed to ``width`` (CLS first, cut on the ``truncation`` side), its
    labels mapped to class indices, its texts kept."""
    texts, labels = raw
    try:
        ids, mask = pack(encoded, width, tok.pad_id, tok.cls_id, truncation)
    except ValueError as err:
        raise ValueError(f"text: {split} split: {err}") from None
    y = torch.tensor([mapping[v] for v in labels], dtype=torch.long)
    return Split(ids, mask, y, texts=texts)


@register_task("text")
def load_text(
    *,
    dataset: str | Sequence[str] | None = None,
    data_files: str | Mapping[str, str | Path] | None = None,
    text_column: str | None = None,
    label_column: str = "label",
    tokenizer: str | Tokenizer = "byte",
    vocab_size: int = 8000,
    max_len: int | None = 256,
    truncation: str = "right",
    val_fraction: float = 0.1,
    max_train: int | None = None,
    max_eval: int | None = None,
    seed: int = 0,
    cache_dir: str | None = None,
) -> TaskData:
    """A text-classification task from a hub ``dataset`` or local ``data_files`` (see module doc).

    ``tokenizer``: ``"byte"`` (UTF-8 bytes), ``"word"``, ``"bpe"`` or ``"wordpiece"`` (trained on
    the train split with ``vocab_size``), or a ready tokenizer object. ``max_len`` counts CLS;
    ``None`` fits the longest example. ``max_train``/``max_eval`` cap sizes by seeded subsampling.
    """
    task = "text"
    val_fraction = _check_text_arguments(
        one_source=(dataset is None) != (data_files is None), seed=seed, val_fraction=val_fraction,
        max_train=max_train, max_eval=max_eval, truncation=truncation, max_len=max_len,
        tokenizer=tokenizer)
    loaded, source, class_names = _read_text_source(dataset, data_files, label_column, cache_dir)
    rows_read = {split: len(ds) for split, ds in loaded.items()}
    raw, dropped, columns = _raw_splits(loaded, text_column, label_column)
    sources = _fill_missing_splits(raw, val_fraction, seed)

    full_sizes = {s: len(raw[s][0]) for s in SPLITS}
    _cap_splits(raw, max_train, max_eval, seed, task)

    mapping, label_names = _label_map(raw, class_names)
    tok = _text_tokenizer(tokenizer, raw["train"][0], vocab_size, truncation)
    encoded = {s: _encode(tok, raw[s][0]) for s in SPLITS}
    longest = max((len(e) for seqs in encoded.values() for e in seqs), default=0) + 1
    width = max(longest, 2) if max_len is None else max_len
    splits = {split: _text_split(split, raw[split], encoded[split], mapping, width, tok,
                                 truncation) for split in SPLITS}
    truncated = {s: int(sum(len(e) + 1 > width for e in encoded[s])) for s in SPLITS}

    info = {
        "source": source,
        "columns": {"text": columns[0], "label": columns[1]} if columns else None,
        "split_sources": sources,
        "dropped_unlabeled_splits": dropped,
        "sizes_before_caps": full_sizes,
        "sizes": {s: len(splits[s]) for s in SPLITS},
        "caps": {"max_train": max_train, "max_eval": max_eval},
        "label_map": {str(k): v for k, v in mapping.items()},
        "label_counts": {
            s: [int(c) for c in torch.bincount(splits[s].labels, minlength=len(label_names))]
            for s in SPLITS
        },
        "tokenizer": tokenizer if isinstance(tokenizer, str) else type(tok).__name__,
        "vocab_size": int(tok.vocab_size),
        "max_len": width,
        "truncation": truncation,
        "truncated": truncated,
        "truncated_fraction": {s: round(truncated[s] / max(len(encoded[s]), 1), 6)
                               for s in SPLITS},
        "token_lengths": {s: length_stats([len(e) + 1 for e in encoded[s]]) for s in SPLITS},
        "rows_read": rows_read,
        "seed": seed,
        "val_fraction": val_fraction,
    }
    return TaskData(name="text", train=splits["train"], validation=splits["validation"],
                    test=splits["test"], num_classes=len(label_names),
                    vocab_size=int(tok.vocab_size), pad_id=int(tok.pad_id), max_len=width,
                    label_names=label_names, tokenizer=tok, info=info)


def check_text_data(
    *,
    data_files: str | Mapping[str, str | Path],
    text_column: str | None = None,
    label_column: str | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
) -> dict[str, Any]:
    """Pre-flight check of local text data, before a run starts: every problem ``load_text``
    would meet (missing files, binary files, missing columns, rows without text or label), plus
    sizes a benchmark can score: each split at least ``MIN_SPLIT_ROWS`` rows and each class at
    least ``MIN_CLASS_ROWS`` rows in train. Nothing is tokenized. Returns the split sizes and
    the train rows per class; ``ValueError`` names the problem and the fix.
    """
    loaded = read_split_files(parse_data_files(data_files))
    rows_read = {split: len(ds) for split, ds in loaded.items()}
    raw, _, _ = _raw_splits(loaded, text_column, label_column or "label")
    _fill_missing_splits(raw, val_fraction, seed)
    mapping, names = _label_map(raw, None)
    sizes = {split: len(raw[split][0]) for split in SPLITS}
    small = [f"{split} has {n}" for split, n in sizes.items() if n < MIN_SPLIT_ROWS]
    if small:
        raise ValueError(
            f"text: too few rows to benchmark on ({', '.join(small)}; each split needs at least"
            f" {MIN_SPLIT_ROWS} after holding out validation/test from train); use more data"
        )
    counts = [0] * len(names)
    for y in raw["train"][1]:
        counts[mapping[y]] += 1
    rare = [f"{name!r}: {count}" for name, count in zip(names, counts, strict=True)
            if count < MIN_CLASS_ROWS]
    if rare:
        raise ValueError(
            f"text: too few train rows of class {', '.join(rare)} (each class needs at least"
            f" {MIN_CLASS_ROWS}); add examples or drop the class"
        )
    return {"rows_read": rows_read, "sizes": sizes, "label_names": names,
            "train_label_counts": counts}


def length_stats(lengths: Sequence[int]) -> dict[str, float]:
    """Median, 90th percentile and maximum of token lengths (CLS included); zeros when empty."""
    if not len(lengths):
        return {"median": 0.0, "p90": 0.0, "max": 0.0}
    arr = np.asarray(lengths, dtype=float)
    return {"median": float(np.median(arr)), "p90": float(np.percentile(arr, 90)),
            "max": float(arr.max())}


def _encode(tok: Tokenizer, texts: list[str]) -> list[np.ndarray]:
    encode_many = getattr(tok, "encode_many", None)
    if encode_many is None:
        raise ValueError(
            "text: the tokenizer object needs encode_many(texts) -> list of id arrays (without"
            f" CLS) so lengths can be measured; {type(tok).__name__} lacks it"
        )
    return encode_many(texts)
