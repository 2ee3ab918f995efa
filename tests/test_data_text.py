"""Text task: local csv/tsv/json/jsonl/parquet files, split filling, labels, tokenizers, SST-2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from harness.data import ByteTokenizer, load_task
from harness.data import text as text_module

SST2 = Path(__file__).resolve().parents[2] / "shared" / "data" / "sst2"

SENTENCES = [
    ("a charming , funny film .", "pos"),
    ('he said "wow" , then left .', "pos"),
    ('"quoted start and end"', "neg"),
    ("it 's dull , flat and long", "neg"),
    ("café au lait , naïve but sweet", "pos"),
    ("one, two, three commas", "neg"),
]


def _rows(n: int) -> list[tuple[str, str]]:
    return [(f"{s} #{i}", y) for i in range(n) for s, y in SENTENCES][:n]


def _write_tsv(path: Path, rows, header=("sentence", "label")) -> Path:
    lines = ["\t".join(header)] + [f"{s}\t{y}" for s, y in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _write_csv(path: Path, rows, header=("text", "label")) -> Path:
    import csv

    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _write_jsonl(path: Path, rows, text_key="text") -> Path:
    path.write_text(
        "".join(json.dumps({text_key: s, "label": y}) + "\n" for s, y in rows), encoding="utf-8"
    )
    return path


def _load(tmp_path: Path, **kwargs):
    kwargs.setdefault("cache_dir", str(tmp_path / "cache"))
    return load_task("text", **kwargs)


def test_tsv_keeps_quotes_and_maps_string_labels(tmp_path: Path) -> None:
    train = _write_tsv(tmp_path / "train.tsv", _rows(60))
    test = _write_tsv(tmp_path / "test.tsv", SENTENCES)
    task = _load(tmp_path, data_files=f"train={train},test={test}", max_len=64)
    assert task.test.texts == [s for s, _ in SENTENCES]  # quotes and accents verbatim
    assert task.label_names == ["neg", "pos"]
    assert task.test.labels.tolist() == [1, 1, 0, 0, 1, 0]
    assert len(task.train) + len(task.validation) == 60 and len(task.validation) == 6
    assert task.info["split_sources"]["validation"].startswith("held out of train")
    byte = ByteTokenizer()
    for text, row, n in zip(
        task.test.texts, task.test.input_ids, task.test.lengths.tolist(), strict=True
    ):
        assert row[0] == task.tokenizer.cls_id
        assert byte.decode(row[1:n].tolist()) == text
    assert task.test.input_ids.shape == (6, 64)
    assert task.test.lengths.tolist() == [len(s.encode()) + 1 for s, _ in SENTENCES]


def test_csv_with_commas_and_quotes(tmp_path: Path) -> None:
    train = _write_csv(tmp_path / "train.csv", _rows(40))
    valid = _write_csv(tmp_path / "dev.csv", SENTENCES)
    task = _load(tmp_path, data_files={"train": train, "dev": valid})
    # no test file: the validation file becomes test, validation is held out of train
    assert task.test.texts == [s for s, _ in SENTENCES]
    assert "validation" in task.info["split_sources"]["test"]
    assert len(task.validation) == 4 and len(task.train) == 36
    assert task.info["columns"] == {"text": "text", "label": "label"}


def test_jsonl_json_and_parquet(tmp_path: Path) -> None:
    import pandas as pd

    rows = [(s, 1 if y == "pos" else 0) for s, y in _rows(30)]
    train = _write_jsonl(tmp_path / "train.jsonl", rows, text_key="review")
    (tmp_path / "val.json").write_text(
        json.dumps([{"review": s, "label": y} for s, y in rows[:5]]), encoding="utf-8"
    )
    pd.DataFrame(rows[:7], columns=["review", "label"]).to_parquet(tmp_path / "test.parquet")
    task = _load(
        tmp_path,
        data_files={
            "train": train,
            "validation": tmp_path / "val.json",
            "test": tmp_path / "test.parquet",
        },
        text_column="review",
        max_len=None,
    )
    assert task.label_names == ["0", "1"]
    assert [len(task.train), len(task.validation), len(task.test)] == [30, 5, 7]
    assert task.test.labels.tolist() == [y for _, y in rows[:7]]
    assert task.max_len == max(len(s.encode()) for s, _ in rows) + 1
    assert sum(task.info["truncated"].values()) == 0


def test_train_only_holds_out_both_seeded(tmp_path: Path) -> None:
    train = _write_tsv(tmp_path / "train.tsv", _rows(50))
    a = _load(tmp_path, data_files={"train": train}, val_fraction=0.2, seed=1)
    b = _load(tmp_path, data_files={"train": train}, val_fraction=0.2, seed=1)
    c = _load(tmp_path, data_files={"train": train}, val_fraction=0.2, seed=2)
    assert [len(a.train), len(a.validation), len(a.test)] == [30, 10, 10]
    assert a.test.texts == b.test.texts and a.validation.texts == b.validation.texts
    assert a.test.texts != c.test.texts
    assert not set(a.train.texts) & set(a.test.texts) and not set(a.train.texts) & set(
        a.validation.texts
    )


def test_caps_subsample(tmp_path: Path) -> None:
    train = _write_tsv(tmp_path / "train.tsv", _rows(60))
    test = _write_tsv(tmp_path / "test.tsv", _rows(30))
    task = _load(tmp_path, data_files={"train": train, "test": test}, max_train=20, max_eval=4)
    assert [len(task.train), len(task.validation), len(task.test)] == [20, 4, 4]
    assert task.info["sizes_before_caps"] == {"train": 54, "validation": 6, "test": 30}


def test_truncation_sides(tmp_path: Path) -> None:
    rows = [("abcdefghij", "a"), ("xyz", "b")] * 3
    train = _write_tsv(tmp_path / "train.tsv", rows)
    right = _load(
        tmp_path, data_files={"train": train, "test": train, "validation": train}, max_len=5
    )
    left = _load(
        tmp_path,
        data_files={"train": train, "test": train, "validation": train},
        max_len=5,
        truncation="left",
    )
    byte = ByteTokenizer()
    assert byte.decode(right.test.input_ids[0, 1:].tolist()) == "abcd"
    assert byte.decode(left.test.input_ids[0, 1:].tolist()) == "ghij"
    assert right.info["truncated"]["test"] == 3
    # the task's tokenizer cuts new texts on the same side
    again, _ = left.tokenizer.encode_batch(["abcdefghij"], 5)
    assert byte.decode(again[0, 1:].tolist()) == "ghij"
    with pytest.raises(ValueError, match="raise max_len"):
        _load(tmp_path, data_files={"train": train, "test": train}, max_len=5, truncation="error")


@pytest.mark.parametrize("kind", ["bpe", "wordpiece", "word"])
def test_trained_tokenizers(tmp_path: Path, kind: str) -> None:
    train = _write_tsv(tmp_path / "train.tsv", _rows(120))
    task = _load(
        tmp_path, data_files={"train": train}, tokenizer=kind, vocab_size=120, max_len=None
    )
    assert task.vocab_size <= 120 + 3 and task.tokenizer.vocab_size == task.vocab_size
    assert int(task.train.input_ids.max()) < task.vocab_size
    ids, mask = task.tokenizer.encode_batch(["a charming film"], task.max_len)
    assert ids[0, 0] == task.tokenizer.cls_id and int(mask.sum()) >= 3
    saved = task.tokenizer.save(tmp_path / "tok.json")
    again = type(task.tokenizer).load(saved)
    assert again.encode_batch(task.test.texts, task.max_len)[0].equal(task.test.input_ids)


def test_missing_file_column_and_bad_specs(tmp_path: Path) -> None:
    train = _write_tsv(tmp_path / "train.tsv", _rows(20))
    missing = tmp_path / "nope.tsv"
    with pytest.raises(ValueError, match=r"nope\.tsv"):
        _load(tmp_path, data_files={"train": train, "test": missing})
    with pytest.raises(ValueError, match="available columns: sentence, label"):
        _load(tmp_path, data_files={"train": train}, text_column="review")
    with pytest.raises(ValueError, match="available columns: sentence, label"):
        _load(tmp_path, data_files={"train": train}, label_column="stars")
    odd = _write_tsv(tmp_path / "odd.tsv", _rows(20), header=("body", "label"))
    with pytest.raises(ValueError, match=r"no 'sentence' or 'text' column.*body, label"):
        _load(tmp_path, data_files={"train": odd})
    with pytest.raises(ValueError, match="SPLIT=PATH"):
        _load(tmp_path, data_files=f"train:{train}")
    with pytest.raises(ValueError, match="unknown split"):
        _load(tmp_path, data_files={"train": train, "holdout": train})
    with pytest.raises(ValueError, match="needs a train file"):
        _load(tmp_path, data_files={"test": train})
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(ValueError, match="extension"):
        _load(tmp_path, data_files={"train": tmp_path / "x.txt"})
    with pytest.raises(ValueError, match="exactly one"):
        _load(tmp_path)
    with pytest.raises(ValueError, match="unknown tokenizer"):
        _load(tmp_path, data_files={"train": train}, tokenizer="chars")


def test_hub_unreachable_is_a_clear_error(tmp_path: Path, monkeypatch) -> None:
    import datasets.config

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(text_module, "_hub_reachable", lambda timeout=3.0: False)
    with pytest.raises(RuntimeError, match=r"unreachable.*data_files="):
        _load(tmp_path, dataset="glue/sst2")
    with pytest.raises(ValueError, match="hub name"):
        _load(tmp_path, dataset=("a", "b", "c"))


@pytest.fixture(scope="module")
def sst2(tmp_path_factory):
    if not (SST2 / "train_full.tsv").is_file() or not (SST2 / "dev.tsv").is_file():
        pytest.skip("shared SST-2 data (../shared/data/sst2) is absent")
    return load_task(
        "text",
        data_files={"train": SST2 / "train_full.tsv", "validation": SST2 / "dev.tsv"},
        max_train=2000,
        max_eval=None,
        max_len=128,
        cache_dir=str(tmp_path_factory.mktemp("hf-cache")),
    )


def test_sst2_local_files(sst2) -> None:
    assert sst2.label_names == ["0", "1"]
    # dev.tsv becomes test (872 rows: 428 negative, 444 positive)
    assert len(sst2.test) == 872
    assert torch.bincount(sst2.test.labels).tolist() == [428, 444]
    assert sst2.info["sizes_before_caps"]["validation"] == round(0.1 * 67349)
    assert len(sst2.train) == 2000 and len(sst2.validation) == 6735
    assert sst2.test.texts[0].startswith("it 's a charming and often affecting journey")
    assert int(sst2.train.input_ids.max()) < sst2.vocab_size == 258
