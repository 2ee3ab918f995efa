"""Tokenizers, packing, registry and result types."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from harness.data import (
    ByteTokenizer,
    Split,
    SubwordTokenizer,
    TaskData,
    WordTokenizer,
    list_tasks,
    load_task,
    load_tokenizer,
    task_options,
)
from harness.data.tokenization import pack


def test_pack_cls_padding_and_truncation() -> None:
    ids, mask = pack([[5, 6, 7], [8]], max_len=4, pad_id=0, cls_id=1)
    assert ids.tolist() == [[1, 5, 6, 7], [1, 8, 0, 0]]
    assert mask.tolist() == [[True] * 4, [True, True, False, False]]
    assert ids.dtype == torch.long and mask.dtype == torch.bool
    ids, _ = pack([[5, 6, 7, 9]], max_len=3, pad_id=0, cls_id=1, truncation="left")
    assert ids.tolist() == [[1, 7, 9]]
    with pytest.raises(ValueError, match="max_len"):
        pack([[5, 6]], max_len=2, pad_id=0, cls_id=1, truncation="error")
    with pytest.raises(ValueError, match="truncation"):
        pack([[5]], max_len=4, pad_id=0, cls_id=1, truncation="middle")


def test_byte_tokenizer_round_trip(tmp_path: Path) -> None:
    tok = ByteTokenizer()
    text = "naïve café ☕"
    ids, mask = tok.encode_batch([text, ""], max_len=32)
    n = int(mask[0].sum())
    assert n == len(text.encode("utf-8")) + 1 and int(mask[1].sum()) == 1
    assert tok.decode(ids[0, 1:n].tolist()) == text
    assert isinstance(load_tokenizer(tok.save(tmp_path / "b.json")), ByteTokenizer)
    with pytest.raises(ValueError, match="list of strings"):
        tok.encode_batch("abc", 8)  # type: ignore[arg-type]


def test_word_and_subword_save_load(tmp_path: Path) -> None:
    texts = ["the cat sat on the mat", "a dog, a cat!", "mats and cats"] * 5
    word = WordTokenizer.from_texts(texts, lowercase=True)
    assert word.vocab[3] == "the" or word.vocab[3] == "a"
    ids, _ = word.encode_batch(["The unknown cat"], 6)
    assert ids[0].tolist()[:4] == [1, word.index["the"], word.unk_id, word.index["cat"]]
    for tok in (
        word,
        SubwordTokenizer.train(texts, "bpe", 40),
        SubwordTokenizer.train(texts, "wordpiece", 40),
    ):
        again = load_tokenizer(tok.save(tmp_path / f"{tok.kind}.json"))
        assert again.encode_batch(texts, 12)[0].equal(tok.encode_batch(texts, 12)[0])
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ValueError, match="not a tokenizer file"):
        load_tokenizer(tmp_path / "bad.json")
    with pytest.raises(ValueError, match="file not found"):
        load_tokenizer(tmp_path / "missing.json")


def test_registry() -> None:
    assert {"listops", "recall", "text", "bias_sentiment"} <= set(list_tasks())
    assert task_options("recall")["alpha"] == 1.0
    with pytest.raises(ValueError, match="registered: bias_sentiment, digits, listops, media, "
                       "pathfinder, recall, speech, text"):
        load_task("imdb")
    with pytest.raises(ValueError, match=r"unknown parameter.*valid parameters: n_train=2000"):
        load_task("recall", n_keys=4)


def test_split_and_taskdata_validation() -> None:
    ids = torch.ones(3, 4, dtype=torch.long)
    mask = torch.ones(3, 4, dtype=torch.bool)
    labels = torch.tensor([0, 1, 0])
    split = Split(ids, mask, labels, texts=["a", "b", "c"], groups={"g": ["x", "y", "z"]})
    sub = split.subset([2, 0])
    assert sub.texts == ["c", "a"] and sub.groups == {"g": ["z", "x"]} and len(sub) == 2
    with pytest.raises(ValueError, match="attention_mask"):
        Split(ids, mask.long(), labels)
    with pytest.raises(ValueError, match="labels"):
        Split(ids, mask, labels[:2])
    with pytest.raises(ValueError, match="groups"):
        Split(ids, mask, labels, groups={"g": ["x"]})
    with pytest.raises(ValueError, match="labels outside"):
        TaskData(
            "t",
            split,
            split,
            split,
            num_classes=1,
            vocab_size=5,
            pad_id=0,
            max_len=4,
            label_names=["a"],
        )
    with pytest.raises(ValueError, match="vocab_size"):
        TaskData(
            "t",
            split,
            split,
            split,
            num_classes=2,
            vocab_size=1,
            pad_id=0,
            max_len=4,
            label_names=["a", "b"],
        )
