"""Shipped metric modules: loaded offline from their local files, values checked against sklearn."""

import socket

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score

from harness import metrics as hm

evaluate = pytest.importorskip("evaluate")


@pytest.fixture
def offline(monkeypatch):
    """No hub: offline env vars, no sockets, and any non-local module factory fails the test."""
    import evaluate.config
    import evaluate.loading

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_EVALUATE_OFFLINE", "1")
    monkeypatch.setattr(evaluate.config, "HF_EVALUATE_OFFLINE", True)

    def no_network(*args, **kwargs):
        raise AssertionError("network access attempted while loading a shipped metric")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    for factory in ("HubEvaluationModuleFactory", "CachedEvaluationModuleFactory"):
        monkeypatch.setattr(evaluate.loading, factory, no_network)

    loaded_from = []
    local_factory = evaluate.loading.LocalEvaluationModuleFactory

    class SpyFactory(local_factory):
        def __init__(self, path, *args, **kwargs):
            loaded_from.append(path)
            super().__init__(path, *args, **kwargs)

    monkeypatch.setattr(evaluate.loading, "LocalEvaluationModuleFactory", SpyFactory)
    monkeypatch.setattr(hm, "_LOADED", {})
    return loaded_from


def _labels(seed, n=200, classes=3):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, size=n)
    pred = np.where(rng.random(n) < 0.6, y, rng.integers(0, classes, size=n))
    return y, pred


def test_available_metrics_ship_as_local_files():
    assert {"accuracy", "f1"} <= set(hm.available_metrics())
    path = hm.metric_path("f1")
    assert path.is_file() and path.name == "f1.py" and path.is_absolute()


def test_load_metric_uses_the_local_module_file(offline):
    metric = hm.load_metric("f1")
    assert offline == [str(hm.metric_path("f1"))]
    assert type(metric).__name__ == "HarnessF1"
    assert isinstance(metric, evaluate.EvaluationModule)
    y, pred = _labels(0)
    out = metric.compute(predictions=pred, references=y, average=None)
    assert out["f1"] == pytest.approx(f1_score(y, pred, average=None).tolist())


def test_macro_f1_and_accuracy_match_sklearn(offline):
    for seed in range(3):
        y, pred = _labels(seed)
        assert hm.macro_f1(y, pred) == pytest.approx(f1_score(y, pred, average="macro"))
        assert hm.accuracy(y, pred) == pytest.approx(accuracy_score(y, pred))
    assert sorted(offline) == sorted([str(hm.metric_path("f1")), str(hm.metric_path("accuracy"))])
    # A class never predicted nor present counts as F1 = 0 when named in labels.
    y, pred = [0, 1, 1, 0], [0, 1, 0, 0]
    expected = f1_score(y, pred, labels=[0, 1, 2], average="macro", zero_division=0)
    assert hm.macro_f1(y, pred, labels=[0, 1, 2]) == pytest.approx(expected)
    assert hm.macro_f1([True, False], [True, False]) == 1.0


def test_bad_inputs_raise_value_errors():
    with pytest.raises(ValueError, match="unknown metric 'bleu'"):
        hm.load_metric("bleu")
    with pytest.raises(ValueError, match="y_pred has 2"):
        hm.macro_f1([0, 1, 1], [0, 1])
    with pytest.raises(ValueError, match="integers"):
        hm.accuracy([0.5, 1.0], [0, 1])
    with pytest.raises(ValueError, match="empty"):
        hm.accuracy([], [])
