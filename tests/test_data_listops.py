"""ListOps: evaluator on hand-written expressions, generator rules, determinism, lengths."""

from __future__ import annotations

import random

import numpy as np
import pytest
from scipy import stats

from harness.data import evaluate_listops, load_task
from harness.data.listops import LISTOPS_TOKENS, OPERATORS, generate_listops


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ("7", 7),
        ("[MAX 2 9 [MIN 4 7 ] 0 ]", 9),
        ("[MIN 3 8 ]", 3),
        ("[MED 5 1 9 ]", 5),
        ("[MED 1 2 3 4 ]", 2),  # median 2.5 rounded down
        ("[MED 3 8 ]", 5),  # 5.5 -> 5
        ("[MED 0 9 ]", 4),
        ("[SM 7 8 9 ]", 4),  # 24 mod 10
        ("[SM 0 0 ]", 0),
        ("[MIN [MAX 1 2 ] [SM 5 6 ] ]", 1),  # min(2, 1)
        ("[SM [MED 9 9 1 ] [MAX 0 3 ] 8 ]", 0),  # (9 + 3 + 8) mod 10
        ("[MAX [MIN [SM 9 9 ] 9 ] [MED 2 2 4 6 ] ]", 8),  # max(min(8, 9), 3)
    ],
)
def test_evaluator_hand_written(expression: str, value: int) -> None:
    assert evaluate_listops(expression) == value
    assert evaluate_listops(expression.split()) == value


@pytest.mark.parametrize("bad", ["", "[MAX 1 2", "1 2", "[FOO 1 ]", "]", "[MAX ]", "[SM 1 ] ]"])
def test_evaluator_rejects_malformed(bad: str) -> None:
    with pytest.raises(ValueError, match="evaluate_listops"):
        evaluate_listops(bad)


def _shape(expression: str) -> tuple[int, int, int]:
    """(max nesting depth counting a digit root as 1, min args, max args) of an expression."""
    depth = deepest = 1
    counts: list[int] = []
    arity: list[int] = []
    for token in expression.split():
        if token in OPERATORS:
            if counts:
                counts[-1] += 1
            counts.append(0)
            deepest = max(deepest, depth + 1)
            depth += 1
        elif token == "]":
            arity.append(counts.pop())
            depth -= 1
        elif counts:
            counts[-1] += 1
    return deepest, min(arity, default=2), max(arity, default=2)


@pytest.fixture(scope="module")
def task():
    return load_task(
        "listops",
        n_train=300,
        n_val=50,
        n_test=50,
        min_len=40,
        max_len=120,
        max_depth=6,
        max_args=5,
        seed=3,
    )


def test_labels_match_evaluator_and_lengths_in_bounds(task) -> None:
    for split in task.splits.values():
        assert [evaluate_listops(t) for t in split.texts] == split.labels.tolist()
        lengths = split.lengths
        assert int(lengths.min()) >= 40 and int(lengths.max()) <= 120
        assert lengths.tolist() == [len(t.split()) + 1 for t in split.texts]
        assert (split.input_ids[:, 0] == task.tokenizer.cls_id).all()
        assert (split.input_ids[~split.attention_mask] == task.pad_id).all()
        for text, row, n in zip(
            split.texts[:20], split.input_ids[:20], lengths.tolist()[:20], strict=True
        ):
            assert task.tokenizer.decode(row[:n].tolist()) == text
        for text in split.texts:
            deepest, low, high = _shape(text)
            assert deepest <= 6 and low >= 2 and high <= 5


def test_task_metadata(task) -> None:
    assert task.num_classes == 10 and task.max_len == 120
    assert task.vocab_size == len(LISTOPS_TOKENS) + 3
    assert task.train.input_ids.shape == (300, 120)
    assert sum(task.info["class_counts"]["train"]) == 300
    texts = [t for s in task.splits.values() for t in s.texts]
    assert len(set(texts)) == len(texts)  # unique across splits


def test_seeded_determinism() -> None:
    kwargs = dict(n_train=40, n_val=10, n_test=10, min_len=20, max_len=60, max_depth=5, max_args=4)
    a, b = load_task("listops", seed=7, **kwargs), load_task("listops", seed=7, **kwargs)
    c = load_task("listops", seed=8, **kwargs)
    for name in ("train", "validation", "test"):
        assert a.splits[name].texts == b.splits[name].texts
        assert a.splits[name].input_ids.equal(b.splits[name].input_ids)
    assert a.train.texts != c.train.texts


def _reference(n: int, min_len: int, max_len: int, depth: int, args: int, seed: int):
    """LRA's node-by-node recursion with rejection and a set (independent reference)."""
    rng = random.Random(seed)

    def grow(d: int, out: list[str]) -> None:
        if d < depth and rng.random() < 0.25:
            out.append(rng.choice(OPERATORS))
            for _ in range(rng.randint(2, args)):
                grow(d + 1, out)
            out.append("]")
        else:
            out.append(str(rng.randint(0, 9)))

    seen: set[str] = set()
    while len(seen) < n:
        out: list[str] = []
        grow(1, out)
        if min_len <= len(out) + 1 <= max_len:
            seen.add(" ".join(out))
    texts = sorted(seen)
    return [len(t.split()) for t in texts], [evaluate_listops(t) for t in texts]


def test_same_law_as_recursive_generator() -> None:
    ref_len, ref_lab = _reference(3000, 10, 50, 5, 4, seed=11)
    texts, labels = generate_listops(3000, min_len=10, max_len=50, max_depth=5, max_args=4, seed=12)
    ours = [len(t.split()) for t in texts]
    assert stats.ks_2samp(ref_len, ours).pvalue > 1e-3
    table = np.stack([np.bincount(ref_lab, minlength=10), np.bincount(labels, minlength=10)])
    assert stats.chi2_contingency(table)[1] > 1e-3


def test_bad_parameters() -> None:
    with pytest.raises(ValueError, match="at most"):
        load_task("listops", min_len=100, max_len=200, max_depth=2, max_args=2)
    with pytest.raises(ValueError, match="n_train"):
        load_task("listops", n_train=-1)
    with pytest.raises(ValueError, match="max_len"):
        load_task("listops", min_len=50, max_len=20)
    with pytest.raises(ValueError, match="valid parameters: n_train"):
        load_task("listops", depth=3)
