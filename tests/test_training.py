"""The shared trainer: seeding, best-validation checkpoint, divergence, metrics, schedule."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from sklearn.metrics import f1_score

from harness.data import load_task
from harness.suites.base import AttentionSpec
from harness.suites.training import (
    TrainingDiverged,
    TrainParams,
    _lr_factor,
    macro_f1_scores,
    predict,
    train_classifier,
)

TINY = TrainParams(steps=12, batch_size=16, lr=3e-3, eval_every=4, hidden_size=16, num_layers=1,
                   num_heads=2, ffn_size=32, dropout=0.1)


@pytest.fixture(scope="module")
def task():
    return load_task("recall", n_train=96, n_val=32, n_test=40, seq_len=24, n_pairs=4,
                     n_queries=2, num_keys=12, num_values=4)


def test_macro_f1_scores_matches_sklearn():
    rng = np.random.default_rng(0)
    for _ in range(50):
        n, c = int(rng.integers(1, 40)), int(rng.integers(2, 6))
        t, p = rng.integers(0, c, n), rng.integers(0, c, n)
        assert macro_f1_scores(t, p) == pytest.approx(f1_score(t, p, average="macro"), abs=1e-12)
    T, P = rng.integers(0, 4, (5, 30)), rng.integers(0, 4, (5, 30))
    rows = macro_f1_scores(T, P, axis=-1)
    assert rows.shape == (5,)
    assert np.allclose(rows, [f1_score(a, b, average="macro") for a, b in zip(T, P, strict=True)])
    with pytest.raises(ValueError, match="differs"):
        macro_f1_scores([0, 1], [0])


def test_macro_f1_scores_matches_shipped_metric():
    from harness.metrics import macro_f1

    y, p = [0, 1, 2, 2, 1, 0, 2], [0, 2, 2, 2, 1, 1, 0]
    assert macro_f1_scores(np.array(y), np.array(p)) == pytest.approx(macro_f1(y, p), abs=1e-12)


def test_same_seed_same_result_and_best_checkpoint(task):
    spec = AttentionSpec("standard")
    a = train_classifier(spec, task, TINY, seed=3)
    b = train_classifier(spec, task, TINY, seed=3)
    def strip(history):
        return [{k: v for k, v in h.items() if k != "elapsed_s"} for h in history]

    assert strip(a.history) == strip(b.history)
    assert a.best_step == b.best_step
    for (ka, va), (kb, vb) in zip(a.model.state_dict().items(), b.model.state_dict().items(),
                                  strict=True):
        assert ka == kb and torch.equal(va, vb)
    pa, proba = predict(a.model, task.test)
    pb, _ = predict(b.model, task.test)
    assert np.array_equal(pa, pb)
    assert proba.shape == (len(task.test), task.num_classes)
    assert np.allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    # the returned weights are the best-validation checkpoint: its val score is the recorded best
    val_pred, _ = predict(a.model, task.validation)
    score = macro_f1_scores(task.validation.labels.numpy(), val_pred)
    assert score == pytest.approx(a.best_val_score)
    assert a.best_val_score == max(h["val_macro_f1"] for h in a.history)
    assert [h["step"] for h in a.history] == [4, 8, 12]
    assert a.n_params == sum(p.numel() for p in a.model.parameters())
    assert not a.model.training
    c = train_classifier(spec, task, TINY, seed=4)
    assert any(not torch.equal(x, y) for x, y in zip(a.model.state_dict().values(),
                                                     c.model.state_dict().values(), strict=True))


def test_every_attention_trains_with_the_same_budget(task):
    specs = (AttentionSpec("sparse", {"block_size": 4}), AttentionSpec("lsh", {"chunk_size": 4}),
             AttentionSpec("linear", {"feature_map": "favor"}))
    for spec in specs:
        params = TINY.model_copy(update={"steps": 4, "eval_every": 4})
        result = train_classifier(spec, task, params, seed=0)
        assert result.best_step == 4 and math.isfinite(result.best_val_score)
        assert result.model.config.attention == spec.name


def test_divergence_names_the_step(task):
    params = TINY.model_copy(update={"lr": math.inf})
    with pytest.raises(TrainingDiverged, match=r"step \d+/12"):
        train_classifier(AttentionSpec("standard"), task, params, seed=0)


def test_lr_schedule_warms_up_then_decays():
    factors = [_lr_factor(s, 10, 2) for s in range(10)]
    assert factors[:2] == [0.5, 1.0]
    assert factors[2] == 1.0 and factors[-1] == pytest.approx(0.125)
    assert all(a >= b for a, b in itertools.pairwise(factors[1:]))
    assert _lr_factor(0, 10, 0) == 1.0


def test_bad_params_are_value_errors():
    with pytest.raises(ValueError, match=r"divisible by train\.num_heads"):
        TrainParams(hidden_size=30, num_heads=4)
    with pytest.raises(ValueError):
        TrainParams(steps=0)
    with pytest.raises(ValueError, match="batch_size"):
        predict(None, None, batch_size=0)  # type: ignore[arg-type]


def test_empty_train_split_is_rejected(task):
    from dataclasses import replace

    empty = replace(task, train=task.train.subset([]))
    with pytest.raises(ValueError, match="train split is empty"):
        train_classifier(AttentionSpec("standard"), empty, TINY, seed=0)


def test_no_attention_baseline_removes_token_mixing(task):
    """Without token mixing a token's hidden state ignores every other token (with mixing, a
    change elsewhere reaches it: the check fails on a model that still mixes)."""
    from harness.suites.training import build_for_task

    spec = AttentionSpec("standard")
    ids = task.test.input_ids[:2].clone()
    other = ids.clone()
    other[:, 5] = (other[:, 5] + 1) % task.vocab_size
    for mixing in (True, False):
        model = build_for_task(spec, task, TINY, seed=0, token_mixing=mixing).eval()
        with torch.no_grad():
            h1, h2 = model.encode(ids), model.encode(other)
        moved = not torch.allclose(h1[:, 0], h2[:, 0])
        assert moved == mixing
    mixed = build_for_task(spec, task, TINY, seed=0)
    bare = build_for_task(spec, task, TINY, seed=0, token_mixing=False)
    assert sum(p.numel() for p in bare.parameters()) < sum(p.numel() for p in mixed.parameters())
    with pytest.raises(ValueError, match="pooling: mean"):
        build_for_task(spec, task, TINY.model_copy(update={"pooling": "cls"}), seed=0,
                       token_mixing=False)
