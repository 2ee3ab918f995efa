"""Running one accuracy cell: train and score a model on its task, or probe the trained
reference model's fidelity with another attention swapped in."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from harness.measure.stats import Estimate, accuracy_statistic, bootstrap_ci
from harness.records import Cell, Record
from harness.suites.accuracy.params import (
    BASELINE,
    DATA_KEYS,
    MEDIA_KEYS,
    AccuracyParams,
    TaskEntry,
)
from harness.suites.base import AttentionSpec, RunContext, Suite
from harness.suites.inputs import input_records
from harness.suites.predictions import PredictionSet, save_predictions
from harness.suites.training import (
    build_for_task,
    load_task_cached,
    macro_f1_scores,
    make_batch,
    predict,
    train_classifier,
)

if TYPE_CHECKING:
    from harness.data.base import Split, TaskData

__all__ = [
    "fidelity_errors",
    "is_reference",
    "load_cached",
    "run_cell",
    "score_predictions",
    "task_kwargs",
]


def is_reference(item: Cell | Record, ctx: RunContext) -> bool:
    """Whether a cell or record is the run's reference attention (profile ``reference``)."""
    return ctx.is_reference(item.label or item.attention)


def task_kwargs(entry: TaskEntry, params: AccuracyParams, ctx: RunContext) -> dict[str, Any]:
    """``load_task`` keyword arguments of ``entry``: its params, and for the text or media entry
    the run's data (``ctx.data``)."""
    kwargs = dict(entry.params)
    if params.is_run_data(entry):
        data = ctx.data
        for key in MEDIA_KEYS if params.is_run_media(entry) else DATA_KEYS:
            value = getattr(data, key)
            if value is not None:
                kwargs[key] = dict(value) if isinstance(value, dict) else value
    return kwargs


def _has_run_data(ctx: RunContext, media: bool = False) -> bool:
    return ctx.data.media_given if media else ctx.data.given


def load_cached(name: str, kwargs: dict[str, Any], model: Any = None) -> TaskData:
    """``load_task`` through the suites' shared in-process cache (cells of one task share data);
    ``model``: the run's user model, which the task is encoded for."""
    return load_task_cached(name, model=model, **kwargs)


def _split_fingerprint(split: Split) -> str:
    h = hashlib.sha1()
    h.update(split.inputs.numpy().tobytes())
    h.update(split.labels.numpy().tobytes())
    return h.hexdigest()[:16]


def score_predictions(
    y_true: np.ndarray, y_pred: np.ndarray, *, n_boot: int, seed: int = 0
) -> dict[str, Estimate]:
    """Test ``macro_f1`` and ``accuracy`` (through the shipped HF ``evaluate`` metrics) with 95%
    percentile-bootstrap intervals and bootstrap standard errors (none when ``n_boot`` < 2)."""
    from harness.metrics import accuracy, macro_f1

    out: dict[str, Estimate] = {}
    for name, value, stat in (("macro_f1", macro_f1(y_true, y_pred), macro_f1_scores),
                              ("accuracy", accuracy(y_true, y_pred), accuracy_statistic)):
        est = bootstrap_ci((y_true, y_pred), stat, n_boot=n_boot, seed=seed, vectorized=True)
        out[name] = replace(est, value=float(value))
    return out


def fidelity_errors(
    model: Any,
    split: Split,
    attention: Any,
    *,
    batch_size: int = 64,
    device: str = "cpu",
) -> np.ndarray:
    """Per example, the relative error ``||A(q,k,v) - S(q,k,v)|| / ||S(q,k,v)||`` of ``attention``
    against the model's own exact attention ``S``, on the q, k, v that reach each layer.

    Norms are Frobenius over layers, heads and real (non-padding) query positions.
    """
    errors: list[np.ndarray] = []
    attention = attention.to(device).eval()
    for start in range(0, len(split), batch_size):
        index = torch.arange(start, min(start + batch_size, len(split)))
        ids, mask, _ = make_batch(split, index, device, True)
        num = torch.zeros(len(index), dtype=torch.float64, device=device)
        den = torch.zeros_like(num)
        with torch.no_grad():
            inputs = model.attention_inputs(ids, mask)
            for layer, (q, k, v, kpm) in zip(model.layers, inputs, strict=True):
                exact = layer.attention.attn(q, k, v, key_padding_mask=kpm)
                approx = attention(q, k, v, key_padding_mask=kpm)
                keep = (torch.ones_like(exact[:, :1, :, :1]) if kpm is None
                        else kpm[:, None, :, None].to(exact.dtype))
                num += (((approx - exact) * keep).double() ** 2).sum(dim=(1, 2, 3))
                den += ((exact * keep).double() ** 2).sum(dim=(1, 2, 3))
        errors.append((num.sqrt() / den.sqrt().clamp_min(1e-30)).cpu().numpy())
    return np.concatenate(errors) if errors else np.zeros(0)


@contextmanager
def _threads(n: int | None) -> Iterator[None]:
    """Run with ``n`` torch threads (unchanged when None), restoring the count afterwards."""
    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def run_cell(suite: Suite, cell: Cell, params: AccuracyParams, ctx: RunContext) -> list[Record]:
    """The records of one cell of ``suite``: a fidelity probe, or a training cell (whose records
    on the run's own data carry that data's name, so runs on different datasets never match in
    `harness compare`)."""
    if cell.params.get("probe") == "fidelity":
        with _threads(params.threads):
            return _run_fidelity(suite, cell, params, ctx)
    with _threads(params.threads):
        records = _run_training(suite, cell, params, ctx)
    entry = params.task(cell.params["task"])
    media = params.is_run_media(entry)
    if params.is_run_data(entry) and _has_run_data(ctx, media):
        label = ctx.data.media_label if media else ctx.data.label
        for r in records:
            r.params = {**r.params, "data": label}
    return records


def _run_training(suite: Suite, cell: Cell, params: AccuracyParams, ctx: RunContext
                  ) -> list[Record]:
    """Train the cell's model, score it on test, save its predictions (and, for the reference's
    first seed, its checkpoint for the fidelity probes)."""
    entry = params.task(cell.params["task"])
    media = params.is_run_media(entry)
    if params.is_run_data(entry) and not _has_run_data(ctx, media):
        reason = ("no image/audio data: pass --data-dir PATH --data-format imagefolder|"
                  "audiofolder (or --dataset NAME --data-format ...) to run the media task"
                  if media else
                  "no text data: pass --data-files train=PATH,test=PATH or --dataset NAME "
                  "to run the text task")
        return [suite.record(cell, "macro_f1", status="skipped", error=reason)]
    seed = int(cell.params["seed"])
    train = params.train_for(entry)
    ctx.progress(0.0, f"{cell.label} {entry.key}: loading data")
    from harness.data.base import TaskUnavailable

    try:
        task = load_cached(entry.name, task_kwargs(entry, params, ctx), ctx.model)
    except TaskUnavailable as err:  # e.g. the speech task without espeak-ng
        return [suite.record(cell, "macro_f1", status="skipped", error=str(err))]
    baseline = cell.attention == BASELINE
    spec = AttentionSpec("standard" if baseline else cell.attention, dict(cell.options),
                         cell.label)
    result = train_classifier(spec, task, train, seed=seed, device=ctx.device,
                              progress=ctx.progress, token_mixing=not baseline)
    ctx.progress(1.0, f"{cell.label} {entry.key}: scoring on test")
    preds, probs = predict(result.model, task.test, batch_size=params.predict_batch_size,
                           device=ctx.device, trim_padding=train.trim_padding)
    y = task.test.labels.numpy()
    scores = score_predictions(y, preds, n_boot=params.n_boot, seed=seed)
    artifacts = ctx.artifacts
    (artifacts / f"{cell.id}.json").write_text(json.dumps({
        "suite": suite.name, "task": entry.key, "seed": seed, "attention": cell.attention,
        "label": cell.label, "options": cell.options, "test_fingerprint":
        _split_fingerprint(task.test), "labels": y.tolist(), "predictions": preds.tolist(),
        "num_classes": task.num_classes, "best_step": result.best_step,
        "history": result.history, "task_summary": task.summary(),
    }, default=str))
    first_seed = seed not in ctx.seeds or seed == min(ctx.seeds)
    if params.fidelity and first_seed and is_reference(cell, ctx):
        torch.save({k: v.cpu() for k, v in result.model.state_dict().items()},
                   artifacts / f"{cell.id}.pt")
    records = [
        suite.record(cell, "macro_f1", **scores["macro_f1"].record_fields()),
        suite.record(cell, "accuracy", **scores["accuracy"].record_fields()),
        suite.record(cell, "val_macro_f1", value=result.best_val_score,
                     n=len(task.validation)),
        suite.record(cell, "train_time_s", value=result.train_time_s, n=1),
        suite.record(cell, "n_params", value=result.n_params, n=1),
        suite.record(cell, "best_step", value=result.best_step, n=1),
    ]
    records += input_records(cell, task.info)
    score = probs[:, 1] if probs.shape[1] == 2 else probs.max(axis=1)
    save_predictions(ctx, cell, [PredictionSet("test", preds, score, texts=task.test.texts,
                                               labels=y.tolist())], records)
    return records


def _run_fidelity(suite: Suite, cell: Cell, params: AccuracyParams, ctx: RunContext
                  ) -> list[Record]:
    """The fidelity probe cell: the reference model (its checkpoint from the dependency's
    artifacts) with this attention swapped in, on the same q, k, v and test examples."""
    from harness.attention import get_attention

    task_key = str(cell.params["task"])
    ref_id, ref = next(((cid, r) for cid, rows in ctx.inputs.items() for r in rows
                        if r.metric == "macro_f1" and r.status == "ok"
                        and is_reference(r, ctx)), (None, None))
    if ref is None:
        reason = (f"no reference model on {task_key}: the run's reference "
                  f"({ctx.reference}) has no trained first-seed model on it")
        return [Record.for_cell(cell, "cell_status", status="skipped", error=reason)]
    ckpt = ctx.artifacts / f"{ref_id}.pt"
    if not ckpt.is_file():
        raise RuntimeError(f"fidelity on {task_key}: reference checkpoint {ckpt} not found")
    entry = params.task(task_key)
    ctx.progress(0.0, f"fidelity {cell.label} on {task_key}: loading data")
    task = load_cached(entry.name, task_kwargs(entry, params, ctx), ctx.model)
    spec = AttentionSpec(ref.attention, dict(ref.options), ref.label or "")
    train = params.train_for(entry)
    model = build_for_task(spec, task, train, seed=int(ref.params["seed"]))
    model.load_state_dict(torch.load(ckpt, map_location="cpu", weights_only=True))
    model.to(ctx.device).eval()
    test = task.test
    if len(test) > params.fidelity_max_examples:
        test = test.subset(range(params.fidelity_max_examples))
    y = task.test.labels.numpy()
    ctx.progress(0.2, f"fidelity {cell.label} on {task_key}")
    attn = get_attention(cell.attention, **cell.options)
    errors = fidelity_errors(model, test, attn, batch_size=params.predict_batch_size,
                             device=ctx.device)
    est = bootstrap_ci(errors, np.mean, n_boot=params.n_boot, vectorized=True)
    ctx.progress(0.6, f"swap {cell.label} on {task_key}")
    model.set_attention(cell.attention, **cell.options)
    preds, _ = predict(model, task.test, batch_size=params.predict_batch_size,
                       device=ctx.device, trim_padding=train.trim_padding)
    scores = score_predictions(y, preds, n_boot=params.n_boot)
    ctx.progress(1.0, f"fidelity {cell.label} on {task_key}: done")
    # the same identity as the other per-task summaries (no seed)
    where = {"task": task_key, "config": cell.params.get("config")}
    return [
        suite.record(cell, "fidelity_rel_error", params=where, **est.record_fields()),
        suite.record(cell, "swap_macro_f1", params=where, **scores["macro_f1"].record_fields()),
    ]
