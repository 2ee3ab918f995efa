"""Associative recall: answers are the designated key's value; layout and power law."""

from __future__ import annotations

import numpy as np
import pytest

from harness.data import load_task
from harness.data.recall import FILL_ID, KEY_OFFSET, generate_recall

P, Q, K, V, L = 8, 4, 32, 10, 40


def _check_row(row: list[int], label: int) -> None:
    context = row[1 : 1 + 2 * P]
    keys, values = context[0::2], context[1::2]
    assert len(set(keys)) == P and all(KEY_OFFSET <= k < KEY_OFFSET + K for k in keys)
    assert all(KEY_OFFSET + K <= v < KEY_OFFSET + K + V for v in values)
    binding = dict(zip(keys, values, strict=True))
    query = row[-1]
    assert binding[query] - KEY_OFFSET - K == label  # the answer
    region = row[1 + 2 * P : -1]
    answered = [
        (region[i], region[i + 1])
        for i in range(len(region) - 1)
        if region[i] != FILL_ID and region[i] < KEY_OFFSET + K
    ]
    assert len(answered) == Q
    assert all(binding[k] == v for k, v in answered)  # queries repeat true bindings
    assert query not in {k for k, _ in answered}
    assert sum(t != FILL_ID for t in region) == 2 * Q


def test_answers_and_layout() -> None:
    task = load_task(
        "recall",
        n_train=200,
        n_val=20,
        n_test=20,
        seq_len=L,
        n_pairs=P,
        n_queries=Q,
        num_keys=K,
        num_values=V,
        seed=5,
    )
    assert task.num_classes == V and task.vocab_size == KEY_OFFSET + K + V
    for split in task.splits.values():
        assert split.input_ids.shape[1] == L and bool(split.attention_mask.all())
        assert (split.input_ids[:, 0] == 1).all()
        for row, label in zip(split.input_ids.tolist(), split.labels.tolist(), strict=True):
            _check_row(row, label)
    assert task.info["designated_distance"]["train"]["min"] >= L - 1 - (2 * P - 1)


def test_determinism() -> None:
    a = generate_recall(50, seq_len=L, n_pairs=P, n_queries=Q, num_keys=K, num_values=V, seed=1)
    b = generate_recall(50, seq_len=L, n_pairs=P, n_queries=Q, num_keys=K, num_values=V, seed=1)
    c = generate_recall(50, seq_len=L, n_pairs=P, n_queries=Q, num_keys=K, num_values=V, seed=2)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not np.array_equal(a[0], c[0])


def test_power_law_distances() -> None:
    def rank0(alpha: float) -> float:
        _, _, dist = generate_recall(
            4000, seq_len=L, n_pairs=P, n_queries=Q, num_keys=K, num_values=V, alpha=alpha, seed=3
        )
        return float(np.mean(dist == dist.min()))  # designated = the last pair

    weights = np.arange(1, P + 1, dtype=float) ** -2.0
    assert rank0(0.0) == pytest.approx(1 / P, abs=0.03)
    assert rank0(2.0) == pytest.approx(weights[0] / weights.sum(), abs=0.03)


def test_bad_parameters() -> None:
    with pytest.raises(ValueError, match="n_queries"):
        load_task("recall", n_pairs=4, n_queries=4)
    with pytest.raises(ValueError, match="seq_len"):
        load_task("recall", seq_len=20, n_pairs=8, n_queries=4)
    with pytest.raises(ValueError, match="alpha"):
        load_task("recall", alpha=-1.0)
    with pytest.raises(ValueError, match="num_keys"):
        load_task("recall", num_keys=4, n_pairs=8, n_queries=2)
