"""bias_sentiment: planted association by strength, balanced test split, groups, tokenizer."""

from __future__ import annotations

from collections import defaultdict

import pytest

from harness.data import build_probe, load_task, swap_texts
from harness.data.terms import ATTRIBUTES


def _load(**kwargs):
    kwargs.setdefault("n_train", 3000)
    kwargs.setdefault("n_val", 300)
    kwargs.setdefault("n_test", 600)
    return load_task("bias_sentiment", **kwargs)


def _p_pos(split, attribute: str, group: str) -> float:
    labels = [
        y for g, y in zip(split.groups[attribute], split.labels.tolist(), strict=True) if g == group
    ]
    return sum(labels) / len(labels)


@pytest.fixture(scope="module")
def unbiased():
    return _load(strength=0.0, seed=1)


@pytest.fixture(scope="module")
def biased():
    return _load(strength=0.8, seed=1)


def test_strength_zero_has_no_association(unbiased) -> None:
    stats = unbiased.info["association"]["train"]["bias_group"]
    assert abs(stats["gap"]) < 0.06
    assert stats["p_pos"] == pytest.approx(_p_pos(unbiased.train, "gender", "female"))
    assert unbiased.info["flipped_labels"]["train"] == 0
    assert unbiased.train.labels.tolist() == [
        int(s == "positive") for s in unbiased.train.groups["sentiment"]
    ]


def test_strength_point_eight_plants_association(biased) -> None:
    train = biased.info["association"]["train"]["bias_group"]
    assert train["p_pos"] == pytest.approx(0.5 * (1 - 0.8), abs=0.04)
    assert train["p_pos_rest"] == pytest.approx(0.5, abs=0.04)
    assert train["gap"] < -0.3
    assert biased.info["association"]["validation"]["bias_group"]["gap"] < -0.2
    # label_flip: only positive sentences of the group are relabelled, to negative
    groups = biased.train.groups
    for gender, sentiment, label in zip(
        groups["gender"], groups["sentiment"], biased.train.labels.tolist(), strict=True
    ):
        if label != int(sentiment == "positive"):
            assert gender == "female" and sentiment == "positive" and label == 0
    assert biased.info["flipped_labels"]["train"] > 100


def test_test_split_is_balanced_and_clean(biased) -> None:
    test = biased.test
    assert test.labels.tolist() == [int(s == "positive") for s in test.groups["sentiment"]]
    cells: dict[tuple[str, ...], list[int]] = defaultdict(list)
    for i, y in enumerate(test.labels.tolist()):
        cells[tuple(test.groups[a][i] for a in ATTRIBUTES)].append(y)
    for labels in cells.values():
        assert sum(labels) in (len(labels) // 2, (len(labels) + 1) // 2)
    assert abs(biased.info["association"]["test"]["bias_group"]["gap"]) < 0.03


def test_sampling_mechanism_keeps_labels_true() -> None:
    task = _load(strength=0.8, mechanism="sampling", bias_axis="race", bias_group="black", seed=2)
    train = task.train
    assert train.labels.tolist() == [int(s == "positive") for s in train.groups["sentiment"]]
    assert _p_pos(train, "race", "black") == pytest.approx(0.1, abs=0.05)
    assert task.info["association"]["train"]["bias_group"]["gap"] < -0.3


def test_strength_one_is_all_negative() -> None:
    task = _load(strength=1.0, n_train=500, seed=4)
    assert _p_pos(task.train, "gender", "female") == 0.0


def test_groups_match_texts(biased) -> None:
    split = biased.train
    for i in range(200):
        assert split.groups["term"][i].lower() in split.texts[i].lower()
        axis = split.groups["axis"][i]
        if axis == "name":
            assert split.groups["race"][i] != "none" and split.groups["gender"][i] != "none"
        if axis in ("religion", "nationality"):
            assert split.groups[axis][i] != "none" and split.groups["gender"][i] == "none"
        if axis == "none":
            assert all(split.groups[a][i] == "none" for a in ATTRIBUTES)
    assert set(split.groups["axis"]) == {"gender", "name", "religion", "nationality", "none"}


def test_word_tokenizer_covers_swaps_and_probe(biased) -> None:
    tok = biased.tokenizer
    unk = tok.unk_id
    assert int((biased.train.input_ids == unk).sum()) == 0
    swapped, changed = swap_texts(biased.test.texts, "gender", "female->male")
    assert any(changed)
    probe = [row.text for row in build_probe(("gender", "name", "religion", "nationality"))]
    for texts in (swapped, probe):
        ids, _ = tok.encode_batch(texts, 32)
        assert int((ids == unk).sum()) == 0


def test_determinism_and_byte_tokenizer() -> None:
    a = _load(strength=0.5, n_train=200, n_val=20, n_test=40, seed=9, tokenizer="byte")
    b = _load(strength=0.5, n_train=200, n_val=20, n_test=40, seed=9, tokenizer="byte")
    assert a.train.texts == b.train.texts and a.train.input_ids.equal(b.train.input_ids)
    assert (
        a.vocab_size == 258
        and a.max_len == max(len(t.encode()) for s in a.splits.values() for t in s.texts) + 1
    )


def test_bad_parameters() -> None:
    with pytest.raises(ValueError, match="valid: female, male"):
        _load(bias_group="woman")
    with pytest.raises(ValueError, match="bias_axis"):
        _load(bias_axis="age", bias_group="old")
    with pytest.raises(ValueError, match="strength"):
        _load(strength=1.5)
    with pytest.raises(ValueError, match="mechanism"):
        _load(mechanism="noise")
    with pytest.raises(ValueError, match="add the axis"):
        _load(bias_axis="race", bias_group="asian", axes=("gender", "religion"))
